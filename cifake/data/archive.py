"""Importing a CIFAKE zip (the full Kaggle download or the train-only archive) into a dataset folder.

Safety: members are extracted into a temporary sibling folder, each copy bounded by the size its
header declared, verified, marked complete and only then renamed onto ``data.dir``, so an
interrupted or failed run never leaves a half dataset that looks whole. Members whose path would
escape the target are refused, and the whole archive with them.
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

from ..base import limits
from ..base.errors import UserError
from ..base.progress import bars_shown, say
from ..base.text import printable
from .images import DATASET_EXTENSIONS
from .layout import MARKER, check_target, clean_stale, verify

_MEMBER_RE = re.compile(r"^(?:(?P<prefix>.*)/)?(?P<split>train|test)/(?P<cls>REAL|FAKE)/(?P<name>[^/]+)$")


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
        if match and match["name"].lower().endswith(DATASET_EXTENSIONS) and not match["name"].startswith("."):
            rel = f"{match['split']}/{match['cls']}/{match['name']}"
            if rel in targets:  # e.g. a/train/REAL/x.jpg and b/train/REAL/x.jpg: one would overwrite the other
                raise UserError(
                    f"refusing {archive}: members {targets[rel]!r} and {name!r} would both be extracted to {rel}"
                )
            targets[rel] = name
            plan.append((info, rel))
    limits.check_zip_members([info for info, _ in plan], str(archive))
    return plan


def import_archive(archive: str | Path, data_dir: str | Path, *, force: bool = False) -> int:
    """Extract a CIFAKE zip (full Kaggle download or train-only) into ``data_dir``, verified."""
    archive, data_dir = Path(archive), Path(data_dir)
    if archive.is_dir():
        raise UserError(f"{{archive}} {archive} is a folder; pass the .zip file itself", options=("archive",))
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
            _extract(zf, plan, tmp)
            say(f"verifying {len(plan):,} files (layout, counts, every image decodes) ...")
            errors, notes = verify(tmp)
            if errors:
                shown = "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
                raise UserError(f"{archive} failed verification: {shown}")
            (tmp / MARKER).write_text(json.dumps({"source": str(archive), "files": len(plan), "time": time.time()}))
            _move_into_place(tmp, data_dir, force)
        except (zipfile.BadZipFile, EOFError, zlib_error()) as e:
            raise UserError(f"{archive} is corrupt ({e}); download it again") from None
        except OSError as e:
            raise UserError(
                f"could not write {data_dir}: {e.strerror or e} ({printable(str(e.filename or ''))})"
            ) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for line in notes:
        say(f"  {line}")
    say(f"done: {len(plan):,} images verified in {data_dir}")
    return 0


def _extract(zf: zipfile.ZipFile, plan, tmp: Path) -> None:
    """Every planned member into ``tmp``, each copy bounded by the size its header declared."""
    from tqdm import tqdm

    made: set[str] = set()
    for info, rel in tqdm(
        plan,
        desc="extract",
        unit="file",
        file=sys.stderr,
        mininterval=0.5,
        disable=len(plan) < 1000 or not bars_shown(),
    ):
        target = tmp / rel
        if target.parent.as_posix() not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent.as_posix())
        with zf.open(info) as src, open(target, "wb") as dst:
            limits.copy_bounded(src, dst, info.file_size, info.filename)


def _move_into_place(tmp: Path, data_dir: Path, force: bool) -> None:
    """Rename the verified ``tmp`` to ``data_dir``; an existing dataset is replaced only with ``force``."""
    if not data_dir.exists():
        os.rename(tmp, data_dir)
        return
    if not force and any(data_dir.iterdir()):
        raise UserError(f"{data_dir} already holds a dataset: use {{force}} to replace it", options=("force",))
    check_target(data_dir, force)  # again: it may have changed during the extraction
    old = data_dir.parent / f".{data_dir.name}.old-{os.getpid()}"
    os.rename(data_dir, old)
    os.rename(tmp, data_dir)
    shutil.rmtree(old, ignore_errors=True)


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error
