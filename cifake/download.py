"""Kaggle download, offline archive import, and layout/count/decode verification.

Safety: archives are extracted into a temporary sibling folder, verified, marked complete and only
then renamed onto ``data.dir``, so an interrupted or failed run never leaves a half dataset that
looks whole. Members whose path would escape the target are refused, and the whole archive with them.

Client: ``kagglehub`` (over ``kagglesdk``). It resolves the same credentials as the ``kaggle`` CLI,
resumes an interrupted transfer with an HTTP Range request, checks the server's MD5, and honours
``KAGGLE_API_ENVIRONMENT=TEST`` (http://localhost:7777), which the tests use with a stand-in server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path, PurePosixPath

from . import limits
from .data import CACHE_DIRNAME, CLASS_NAMES, IMAGE_EXTENSIONS, decode_files, list_split, load_images
from .errors import UserError
from .limits import printable

DATASET = "birdy654/cifake-real-and-ai-generated-synthetic-images"
EXPECTED_COUNTS = {"train": 50_000, "test": 10_000}  # images per class in the official release
MARKER = ".cifake-complete.json"
_MEMBER_RE = re.compile(r"^(?:(?P<prefix>.*)/)?(?P<split>train|test)/(?P<cls>REAL|FAKE)/(?P<name>[^/]+)$")

TOKEN_HELP = (
    "create a token at https://www.kaggle.com/settings (API > Create New Token) and either "
    "export KAGGLE_API_TOKEN=<token>, or save it as ~/.kaggle/access_token (chmod 600); with a legacy "
    "username and key, export KAGGLE_USERNAME=<name> KAGGLE_KEY=<key> or put kaggle.json in ~/.kaggle/. "
    "Or import a zip you have: cifake download --archive PATH.zip"
)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- verification --------------------------------------------------------------------------------


def scan(root: str | Path) -> dict[str, dict[str, list[str]]]:
    """{split: {class: [paths]}} for every split/class folder that exists under ``root``."""
    found: dict[str, dict[str, list[str]]] = {}
    for split in EXPECTED_COUNTS:
        for cls in CLASS_NAMES:
            folder = Path(root) / split / cls
            if folder.is_dir():
                files = sorted(str(p) for p in folder.iterdir() if p.is_file())
                found.setdefault(split, {})[cls] = files
    return found


def verify(root: str | Path) -> tuple[list[str], list[str]]:
    """(errors, notes) for the dataset at ``root``: layout, counts per split and class, decodability.

    Missing train/{REAL,FAKE}, files that are not images or do not decode, are errors. Counts that
    differ from the official release are warnings (notes starting with "WARNING"): a subset may be
    imported on purpose, and the counts are printed either way.
    """
    errors: list[str] = []
    notes: list[str] = []
    found = scan(root)
    for split, classes in found.items():
        for cls in CLASS_NAMES:
            if cls not in classes:
                errors.append(f"{Path(root) / split / cls}: folder missing")
    if "train" not in found:
        errors.append(f"{Path(root) / 'train'}/{{REAL,FAKE}}: not found")
    paths: list[str] = []
    for split, classes in found.items():
        for cls, files in classes.items():
            images = [p for p in files if p.lower().endswith(IMAGE_EXTENSIONS)]
            for p in sorted(set(files) - set(images))[:5]:
                errors.append(f"{p}: not an image file")
            paths.extend(images)
            expected = EXPECTED_COUNTS[split]
            if len(images) != expected:
                notes.append(
                    f"WARNING {split}/{cls}: {len(images):,} images (the full CIFAKE release has {expected:,})"
                )
            else:
                notes.append(f"{split}/{cls}: {len(images):,} images")
    if paths:
        bad_paths = decode_and_cache(root, found, paths)
        errors.extend(f"{p}: does not decode as an image" for p in bad_paths[:20])
        if len(bad_paths) > 20:
            errors.append(f"... and {len(bad_paths) - 20} more files that do not decode")
    return errors, notes


def decode_and_cache(root: str | Path, found: dict, paths: list[str]) -> list[str]:
    """Decode every image once, and keep what the decoding of each complete split produced as its
    decode cache, so the first ``cifake train`` starts at once instead of decoding it all again."""
    bad: list[str] = []
    covered: set[str] = set()
    for split, classes in found.items():
        if not all(cls in classes for cls in CLASS_NAMES):
            continue
        split_paths, _ = list_split(root, split)
        _, split_bad = load_images(split_paths, root, cache=True, on_bad_file="skip", progress=len(split_paths) > 5000)
        bad += [split_paths[i] for i in split_bad]
        covered.update(split_paths)
    rest = [p for p in paths if p not in covered]
    if rest:
        _, rest_bad = decode_files(rest, progress=len(rest) > 5000)
        bad += [rest[i] for i in rest_bad]
    return bad


def is_complete(root: str | Path) -> bool:
    return (Path(root) / MARKER).is_file()


# --- archive import ------------------------------------------------------------------------------


def _plan(zf: zipfile.ZipFile, archive: Path) -> list[tuple[zipfile.ZipInfo, str]]:
    """(member, relative target) for every dataset file; refuses unsafe or colliding member names outright."""
    plan = []
    targets: dict[str, str] = {}
    for info in zf.infolist():
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise UserError(f"refusing archive: member {name!r} would be written outside the target folder")
        if info.is_dir():
            continue
        match = _MEMBER_RE.match(name.replace("\\", "/"))
        if match and match["name"].lower().endswith(IMAGE_EXTENSIONS) and not match["name"].startswith("."):
            rel = f"{match['split']}/{match['cls']}/{match['name']}"
            if rel in targets:  # e.g. a/train/REAL/x.jpg and b/train/REAL/x.jpg: one would overwrite the other
                raise UserError(
                    f"refusing {archive}: members {targets[rel]!r} and {name!r} would both be extracted to {rel}"
                )
            targets[rel] = name
            plan.append((info, rel))
    limits.check_zip_members([info for info, _ in plan], str(archive))
    return plan


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def clean_stale(data_dir: Path) -> None:
    """Remove ``.NAME.partial-PID`` / ``.NAME.old-PID`` folders left by a killed import, saying so.

    Only folders whose PID is no longer running are touched. An ``.old`` folder is the previous
    dataset, moved aside just before the new one was renamed into place: if ``data_dir`` is missing
    (killed between the two renames) it is put back instead of deleted.
    """
    parent = data_dir.parent
    if not parent.is_dir():
        return
    pattern = re.compile(rf"^\.{re.escape(data_dir.name)}\.(partial|old)-(\d+)$")
    for entry in sorted(parent.iterdir()):
        m = pattern.match(entry.name)
        if not m or not entry.is_dir() or _pid_alive(int(m[2])):
            continue
        if m[1] == "old" and not data_dir.exists():
            os.rename(entry, data_dir)
            _say(f"restored {data_dir} from {entry.name}, left by an import that was killed (pid {m[2]})")
            continue
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        shutil.rmtree(entry, ignore_errors=True)
        _say(f"removed {entry} ({size / 2**20:,.1f} MiB) left by an import that was killed (pid {m[2]})")


_DATASET_ENTRIES = {"train", "test", MARKER, CACHE_DIRNAME}


def foreign_entries(root: Path, limit: int = 5) -> list[str]:
    """Entries under ``root`` that are not part of a cifake dataset folder (empty: safe to replace).

    A dataset folder holds only ``train``/``test`` with ``REAL``/``FAKE`` folders of files, plus
    cifake's own completion marker and decode cache. Anything else (a user's photos, notes, a
    subfolder) means the folder is not ours, and ``--force`` must not delete it.
    """
    found: list[str] = []
    for entry in sorted(root.iterdir()):
        if entry.name not in _DATASET_ENTRIES or (entry.name in ("train", "test") and not entry.is_dir()):
            found.append(entry.name)
        elif entry.name in ("train", "test"):
            for sub in sorted(entry.iterdir()):
                if sub.name not in CLASS_NAMES or not sub.is_dir():
                    found.append(f"{entry.name}/{sub.name}")
                else:
                    found.extend(f"{entry.name}/{sub.name}/{f.name}" for f in sub.iterdir() if not f.is_file())
        if len(found) >= limit:
            break
    return [printable(f) for f in found[:limit]]


def _refuse_file(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(f"--data-dir {data_dir} is a file, not a folder: choose a folder for the dataset")


def check_target(data_dir: Path, force: bool) -> None:
    """Refuse a ``--data-dir`` that must not be written or replaced, before anything is extracted."""
    _refuse_file(data_dir)
    resolved = data_dir.resolve()
    protected = {Path.cwd().resolve(), Path.home().resolve(), Path(resolved.anchor)}
    if force and (resolved in protected or resolved in Path.cwd().resolve().parents):
        raise UserError(
            f"refusing to replace {data_dir} ({resolved}): it is the current folder, one above it, your home or the root; "
            "choose a dedicated folder such as data/cifake"
        )
    if data_dir.is_dir() and any(data_dir.iterdir()):
        other = foreign_entries(data_dir)
        if other:
            raise UserError(
                f"{data_dir} is not a cifake dataset folder (it holds {', '.join(other)}"
                f"{' ...' if len(other) >= 5 else ''}); nothing was changed: choose another --data-dir"
            )


def import_archive(archive: str | Path, data_dir: str | Path, *, force: bool = False) -> int:
    """Extract a CIFAKE zip (full Kaggle download or train-only) into ``data_dir``, verified."""
    from tqdm import tqdm

    archive, data_dir = Path(archive), Path(data_dir)
    if archive.is_dir():
        raise UserError(f"--archive {archive} is a folder; pass the .zip file itself")
    if not archive.is_file():
        raise UserError(f"archive not found: {archive}")
    check_target(data_dir, force)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{archive} is not a readable zip ({e}); it may be truncated: download it again") from None
    with zf:
        plan = _plan(zf, archive)
        if not plan:
            raise UserError(
                f"{archive} holds no train/REAL, train/FAKE (or test/...) image folders: is it the CIFAKE zip?"
            )
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        clean_stale(data_dir)
        limits.check_free_space(data_dir.parent, sum(info.file_size for info, _ in plan), f"extracting {archive}")
        tmp = data_dir.parent / f".{data_dir.name}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            made: set[str] = set()
            for info, rel in tqdm(
                plan, desc="extract", unit="file", file=sys.stderr, mininterval=0.5, disable=len(plan) < 1000
            ):
                target = tmp / rel
                if target.parent.as_posix() not in made:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    made.add(target.parent.as_posix())
                with zf.open(info) as src, open(target, "wb") as dst:
                    limits.copy_bounded(src, dst, info.file_size, info.filename)
            _say(f"verifying {len(plan):,} files (layout, counts, every image decodes) ...")
            errors, notes = verify(tmp)
            if errors:
                shown = "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
                raise UserError(f"{archive} failed verification: {shown}")
            (tmp / MARKER).write_text(json.dumps({"source": str(archive), "files": len(plan), "time": time.time()}))
            if data_dir.exists():
                if not force and any(data_dir.iterdir()):
                    raise UserError(f"{data_dir} already holds a dataset: use --force to replace it")
                check_target(data_dir, force)  # again: it may have changed during the extraction
                old = data_dir.parent / f".{data_dir.name}.old-{os.getpid()}"
                os.rename(data_dir, old)
                os.rename(tmp, data_dir)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, data_dir)
        except (zipfile.BadZipFile, EOFError, zlib_error()) as e:
            raise UserError(f"{archive} is corrupt ({e}); download it again") from None
        except OSError as e:
            raise UserError(
                f"could not write {data_dir}: {e.strerror or e} ({printable(str(e.filename or ''))})"
            ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in notes:
        _say(f"  {line}")
    _say(f"done: {len(plan):,} images verified in {data_dir}")
    return 0


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


# --- Kaggle --------------------------------------------------------------------------------------


def kaggle_download(data_dir: str | Path, *, force: bool = False, attempts: int = 3) -> int:
    """Download the dataset zip with kagglehub's client (resuming after a dropped connection), then import it."""
    from kagglehub.clients import download_file, get_user_agent
    from kagglehub.config import get_kaggle_credentials
    from kagglehub.handle import parse_dataset_handle
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest
    from kagglesdk.kaggle_client import KaggleClient
    from kagglesdk.kaggle_env import get_env

    try:
        creds = get_kaggle_credentials()
    except ValueError as e:  # a kaggle.json that is not JSON or lacks keys
        raise UserError(f"Kaggle credentials unreadable: {e}. {TOKEN_HELP}") from None
    if creds is None:
        raise UserError(f"no Kaggle credentials found: {TOKEN_HELP}")
    data_dir = Path(data_dir)
    staging = data_dir.parent / f".{data_dir.name}.download"
    made_staging = not staging.exists()
    staging.mkdir(parents=True, exist_ok=True)
    archive = staging / "cifake.zip"
    handle = parse_dataset_handle(DATASET)
    request = ApiDownloadDatasetRequest()
    request.owner_slug, request.dataset_slug = DATASET.split("/")
    # verbose=False: kagglesdk's verbose mode prints request headers, i.e. the credential.
    client = KaggleClient(
        env=get_env(),
        verbose=False,
        username=creds.username,
        password=creds.key,
        api_token=creds.api_key,
        user_agent=get_user_agent(),
    )
    _say(f"downloading {DATASET} from Kaggle ...")
    try:
        _fetch(client, request, archive, handle, attempts, download_file)
    finally:
        # nothing arrived (offline, refused): leave no empty staging folder behind
        if made_staging and not any(staging.iterdir()):
            staging.rmdir()
    import_archive(archive, data_dir, force=force)
    shutil.rmtree(staging, ignore_errors=True)
    return 0


def _fetch(client, request, archive: Path, handle, attempts: int, download_file) -> None:
    """Download with retries; "resuming" is said only when part of the file arrived before the drop."""
    import requests

    with client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.datasets.dataset_api_client.download_dataset(request)
                download_file(response, str(archive), handle)
                break
            except requests.HTTPError as e:
                status = e.response.status_code if e.response is not None else None
                if status in (401, 403):
                    raise UserError(f"Kaggle rejected the credentials (HTTP {status}): {TOKEN_HELP}") from None
                raise UserError(f"Kaggle answered HTTP {status}; try again later") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as e:
                partial = archive.is_file() and archive.stat().st_size > 0
                if attempt == attempts:
                    raise UserError(
                        f"download failed after {attempts} attempts ({type(e).__name__}: is this machine online?); "
                        + ("run the same command to resume" if partial else "nothing was downloaded")
                    ) from None
                what = "resuming" if partial else "retrying"
                _say(f"connection failed ({type(e).__name__}); {what} (attempt {attempt + 1}/{attempts}) ...")


# --- the subcommand ------------------------------------------------------------------------------


def run(data_dir: str, archive: str | None = None, force: bool = False, verify_only: bool = False) -> int:
    """``cifake download``: verify, import or download, idempotently; never deletes a folder it did not make."""
    root = Path(data_dir)
    _refuse_file(root)  # --verify too
    if verify_only:
        if not root.is_dir():
            raise UserError(f"{root} does not exist: fetch it with cifake download --data-dir {root}")
        errors, notes = verify(root)
        for line in notes:
            print(f"ok    {line}")
        for line in errors:
            print(f"ERROR {printable(line)}")
        if errors:
            raise UserError(f"{root}: {len(errors)} problem(s) found (listed above); re-import with --force")
        print(f"{root}: verified")
        return 0
    clean_stale(root)
    if is_complete(root) and not force:
        print(f"{root} is already complete (verified when it was imported); nothing to do. Use --force to replace it.")
        return 0
    check_target(root, force)  # a folder that is not a dataset is refused, with or without --force
    if root.exists() and any(root.iterdir()) and not force:
        raise UserError(
            f"{root} holds an incomplete dataset not made by cifake download: check it with --verify, "
            "or replace it with --force"
        )
    if archive:
        return import_archive(archive, root, force=True)
    return kaggle_download(root, force=True)
