"""``cifake cache``: what the decode cache of a dataset folder holds, and clearing it.

The cache (``<data.dir>/.cifake-cache``) keeps each whole split decoded to 32x32 uint8 (about
3 KB per image; 300 MB for the 100,000 training images), written by ``cifake download`` when it
verifies the data and by the first run on a whole split. Every ``data.fraction`` is a slice of it.
A file whose key no longer matches the split's files (images added, removed or touched, or a
cache written by an older cifake) is stale: never read again, only taking space.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .data import CACHE_DIRNAME, CLASS_NAMES, cache_file_for, list_split
from .errors import UserError


def current_files(root: Path) -> dict[Path, str]:
    """The cache file each complete split of ``root`` would use -> the split's name and size."""
    names = {}
    for split in ("train", "test"):
        if all((root / split / c).is_dir() for c in CLASS_NAMES):
            paths, _ = list_split(root, split)
            if paths:
                names[cache_file_for(paths, root)] = f"{split} ({len(paths):,} images)"
    return names


def clear(root: Path) -> str:
    """Remove the decode cache of ``root``; returns what was done, in a sentence."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder (the dataset root, config key data.dir)")
    folder = root / CACHE_DIRNAME
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        kind = "a symbolic link" if folder.is_symlink() else "a file"
        raise UserError(f"{folder} is {kind}, not a cache folder cifake wrote: nothing removed (remove it yourself)")
    if not folder.is_dir():
        return f"no decode cache in {root}: nothing to remove"
    total = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    shutil.rmtree(folder)
    return f"removed {folder} ({total / 1e6:,.0f} MB); the next run decodes the images again"


def listing(root: Path) -> list[str]:
    """One line per cache file of ``root`` (size, and the split it serves or 'stale'), then a total."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder (the dataset root, config key data.dir)")
    folder = root / CACHE_DIRNAME
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        return [f"no decode cache in {root} (it is written by cifake download and by the first run on a whole split)"]
    current = current_files(root)
    lines, total = [], 0
    for f in files:
        size = f.stat().st_size
        total += size
        what = current.get(f, "stale: matches no split as it is now (cifake cache --clear removes it)")
        lines.append(f"{f.name}  {size / 1e6:>8,.0f} MB  {what}")
    return [*lines, f"{len(files)} file(s), {total / 1e6:,.0f} MB in {folder}"]
