"""A dataset folder: its layout and counts verified, its completion marker, and what may replace it.

A folder is complete when ``cifake download`` verified it (counts, every image decodes) and wrote
``MARKER``; leftovers of killed imports are recognised by their names and removed; a folder that
holds anything but a dataset is never replaced.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..base.errors import UserError
from ..base.leftovers import pid_alive
from ..base.progress import say
from ..base.text import printable
from .cache import CACHE_DIRNAME
from .decode import decode_files
from .dedup import describe
from .images import DATASET_EXTENSIONS
from .listing import CLASS_NAMES, list_split, load_decoded

EXPECTED_COUNTS = {"train": 50_000, "test": 10_000}  # images per class in the official release
MARKER = ".cifake-complete.json"


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
            images = [p for p in files if p.lower().endswith(DATASET_EXTENSIONS)]
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
        bad_paths, hashes = decode_and_cache(root, found, paths)
        notes.extend(describe(hashes))
        errors.extend(f"{p}: does not decode as an image" for p in bad_paths[:20])
        if len(bad_paths) > 20:
            errors.append(f"... and {len(bad_paths) - 20} more files that do not decode")
    return errors, notes


def decode_and_cache(root: str | Path, found: dict, paths: list[str]) -> tuple[list[str], dict]:
    """Decode every image once, and keep what the decoding of each complete split produced as its
    decode cache, so the first ``cifake train`` starts at once instead of decoding it all again.
    Returns the bad files and each complete split's content hashes."""
    bad: list[str] = []
    hashes: dict = {}
    covered: set[str] = set()
    for split, classes in found.items():
        if not all(cls in classes for cls in CLASS_NAMES):
            continue
        split_paths, _ = list_split(root, split)
        _, split_bad, hashes[split] = load_decoded(
            split_paths, root, cache=True, on_bad_file="skip", progress=len(split_paths) > 5000
        )
        bad += [split_paths[i] for i in split_bad]
        covered.update(split_paths)
    rest = [p for p in paths if p not in covered]
    if rest:
        _, rest_bad = decode_files(rest, progress=len(rest) > 5000)
        bad += [rest[i] for i in rest_bad]
    return bad, hashes


def is_complete(root: str | Path) -> bool:
    return (Path(root) / MARKER).is_file()


# --- archive import ------------------------------------------------------------------------------


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
        if not m or not entry.is_dir() or pid_alive(int(m[2])):
            continue
        if m[1] == "old" and not data_dir.exists():
            os.rename(entry, data_dir)
            say(f"restored {data_dir} from {entry.name}, left by an import that was killed (pid {m[2]})")
            continue
        size = sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        shutil.rmtree(entry, ignore_errors=True)
        say(f"removed {entry} ({size / 2**20:,.1f} MiB) left by an import that was killed (pid {m[2]})")


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


def refuse_file(data_dir: Path) -> None:
    if data_dir.exists() and not data_dir.is_dir():
        raise UserError(
            f"{{data_dir}} {data_dir} is a file, not a folder: choose a folder for the dataset", options=("data_dir",)
        )


def check_target(data_dir: Path, force: bool) -> None:
    """Refuse a ``--data-dir`` that must not be written or replaced, before anything is extracted."""
    refuse_file(data_dir)
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
                f"{' ...' if len(other) >= 5 else ''}); nothing was changed: choose another {{data_dir}}",
                options=("data_dir",),
            )


def inside_image_folders(path: str | Path, data_dir: str | Path) -> bool:
    """Whether ``path`` is (inside) one of ``data_dir``'s image folders ({train,test}/{REAL,FAKE}), where
    every file written would be read back as a training or test image."""
    target = Path(path).resolve()
    folders = [(Path(data_dir) / s / c).resolve() for s in ("train", "test") for c in CLASS_NAMES]
    return any(target == f or f in target.parents for f in folders)
