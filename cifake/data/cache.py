"""``cifake cache``: what the decode cache of a dataset folder holds, and clearing it.

The cache (``<data.dir>/.cifake-cache``) keeps each whole split decoded to 32x32 uint8 (about
3 KB per image; 300 MB for the 100,000 training images) and each file's content hash (``dedup``), written by ``cifake download`` when it
verifies the data and by the first run on a whole split. Every ``data.fraction`` is a slice of it.
A file whose key no longer matches the split's files (images added, removed or touched, or a
cache written by an older cifake) is stale: never read again, only taking space.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.files import atomic_open
from .decode import IMAGE_SIZE

log = logging.getLogger(__name__)

CACHE_DIRNAME = ".cifake-cache"
CACHE_FORMAT = (
    b"v2: jpeg INTEGER_ACCURATE, hashes\n"  # what the pixels were decoded with: a change makes old caches stale
)


def _cache_key(paths: list[str], root: str | Path) -> str:
    """Names relative to the dataset root, sizes and modification times: a folder moved or renamed
    as a whole (``cifake download`` verifies in a temporary folder, then renames it) keeps its cache."""
    h = hashlib.sha1(CACHE_FORMAT)
    for p in paths:
        st = os.stat(p)
        h.update(os.fsencode(os.path.relpath(p, root)) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_file_for(paths: list[str], root: str | Path) -> Path:
    return Path(root) / CACHE_DIRNAME / f"{_cache_key(paths, root)}.npz"


def read_cache(cache_file: Path, n: int) -> tuple[np.ndarray, list[int], np.ndarray | None] | None:
    """The cached (images, bad, content hashes) if the file is whole and matches ``n`` paths; else None
    (and it is removed). The hashes are None in a cache written before they were kept.

    A cache cut short (disk full, a kill during a copy) or edited by hand is treated as absent and
    rebuilt, instead of failing every later run until someone deletes it.
    """
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            images, bad = z["images"], z["bad"]
            hashes = z["hashes"] if "hashes" in z.files else None
        if images.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8 or bad.ndim != 1:
            raise ValueError(f"holds {images.shape} {images.dtype}, expected ({n}, 32, 32, 3) uint8")
        if len(bad) and (bad.min() < 0 or bad.max() >= n):
            raise ValueError("bad-file indices out of range")
        if hashes is not None and (hashes.shape != (n,) or hashes.dtype != np.uint64):
            raise ValueError(f"holds {hashes.shape} {hashes.dtype} hashes, expected ({n},) uint64")
        return images, bad.astype(np.int64).tolist(), hashes
    except Exception as e:  # noqa: BLE001 - any unreadable cache is rebuilt, never fatal
        log.warning(f"note: decode cache {cache_file} is unreadable ({type(e).__name__}: {e}); rebuilding it")
        with contextlib.suppress(OSError):
            cache_file.unlink()
        return None


def write_cache(cache_file: Path, images: np.ndarray, bad: list[int], hashes: np.ndarray) -> None:
    """Write the cache atomically (readers see the old file or the whole new one); a failure is a note."""
    try:
        cache_file.parent.mkdir(exist_ok=True)
        with atomic_open(cache_file, "wb") as f:
            np.savez(f, images=images, bad=np.asarray(bad, np.int64), hashes=hashes)
    except OSError as e:  # read-only dataset folder or a full disk: carry on without a cache
        log.warning(f"note: could not write the decode cache ({e}); set data.cache=false to silence")


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


def listing(root: Path, in_use: dict[Path, str]) -> list[str]:
    """One line per cache file of ``root`` (size, and the split it serves or 'stale'), then a total.

    ``in_use``: the cache file each complete split would use -> what it serves
    (``data.cache_files_in_use``, which knows the dataset's layout: this module does not)."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder (the dataset root, config key data.dir)")
    folder = root / CACHE_DIRNAME
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    if not files:
        return [f"no decode cache in {root} (it is written by cifake download and by the first run on a whole split)"]
    current = in_use
    lines, total = [], 0
    for f in files:
        size = f.stat().st_size
        total += size
        what = current.get(f, "stale: matches no split as it is now (cifake cache --clear removes it)")
        lines.append(f"{f.name}  {size / 1e6:>8,.0f} MB  {what}")
    return [*lines, f"{len(files)} file(s), {total / 1e6:,.0f} MB in {folder}"]
