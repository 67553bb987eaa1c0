"""The numbers that bound untrusted input, defined once and used by every reader.

Anything cifake reads may come from someone else: archives, image files, uploads, configs, model
files, file names. Each is checked against these bounds *before* it is expanded (from a zip's
central directory, an image header, a file's size), so a small hostile file cannot make cifake
allocate gigabytes, fill a disk or hang. Generous on purpose: a CIFAKE image is ~1 KB and 32x32.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

from .errors import UserError

# --- images --------------------------------------------------------------------------------------
DEFAULT_MAX_MEGAPIXELS = 50.0  # width x height of one image, decoded (50 MP = 150 MB of RGB); --max-megapixels
_max_pixels = int(DEFAULT_MAX_MEGAPIXELS * 1e6)

IMAGE_MAX_FILE_BYTES = 256 * 2**20  # one image file on disk; read whole before decoding

# --- archives (cifake download --archive, and the Kaggle zip) -------------------------------------
ARCHIVE_MAX_MEMBERS = 1_000_000  # the full release has 120,000 files
ARCHIVE_MAX_MEMBER_BYTES = 32 * 2**20  # one member, uncompressed (a CIFAKE image is ~1 KB)
ARCHIVE_MAX_TOTAL_BYTES = 8 * 2**30  # all extracted members together (the full release is ~130 MB)
ARCHIVE_MAX_RATIO = 200  # uncompressed / compressed size of one member (JPEGs barely compress)
ARCHIVE_RATIO_MIN_BYTES = 1 * 2**20  # the ratio check applies to members above this size

# --- model files (.keras is a zip) ----------------------------------------------------------------
MODEL_MAX_TOTAL_BYTES = 4 * 2**30  # every member of a .keras file, uncompressed

# --- configs --------------------------------------------------------------------------------------
CONFIG_MAX_BYTES = 1 * 2**20  # a YAML recipe is ~1 KB
YAML_MAX_NODES = 10_000  # nodes after alias expansion: refuses "billion laughs" in a few ms

# --- training -------------------------------------------------------------------------------------
MIN_IMAGES_PER_CLASS = 5  # in each of the train and validation splits, after data.fraction


def max_pixels() -> int:
    return _max_pixels


MIN_MEGAPIXELS, MAX_MEGAPIXELS = 0.001024, 1e6  # a 32x32 image; a million megapixels (a terapixel)


def set_max_megapixels(megapixels: float) -> None:
    """Raise or lower the per-image pixel cap (``--max-megapixels``) for this process."""
    if not (math.isfinite(megapixels) and MIN_MEGAPIXELS <= megapixels <= MAX_MEGAPIXELS):
        raise UserError(
            f"{{max_megapixels}}: got {megapixels:g}; expected a number from {MIN_MEGAPIXELS:g} "
            f"(one 32x32 image) to {MAX_MEGAPIXELS:g}",
            options=("max_megapixels",),
        )
    set_max_pixels(int(megapixels * 1e6))


def set_max_pixels(pixels: int) -> None:
    """The cap in pixels, as ``max_pixels`` returns it (how a worker process gets its parent's cap)."""
    global _max_pixels
    _max_pixels = int(pixels)
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = _max_pixels  # Pillow errors at twice this: ours is the check users meet


def size_problem(width: int, height: int) -> str | None:
    if width * height > _max_pixels:
        return (
            f"{width}x{height} = {width * height / 1e6:.3g} megapixels is over the {_max_pixels / 1e6:g} MP cap "
            "(raise max_megapixels, --max-megapixels on the command line, to admit it)"
        )
    return None


def file_size_problem(path: str | bytes | os.PathLike) -> str | None:
    try:
        if os.stat(path).st_size > IMAGE_MAX_FILE_BYTES:
            return f"the file is over {IMAGE_MAX_FILE_BYTES // 2**20} MB"
    except OSError:
        pass
    return None


def can_create(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` if new files can be made there, else None.

    Output paths are checked with this before any work, so a bad ``--out`` fails in a second,
    not after minutes of scoring.
    """
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK) else None


# --- zip archives ----------------------------------------------------------------------------------


def check_zip_members(
    infos: list[zipfile.ZipInfo],
    what: str,
    *,
    max_member: int = ARCHIVE_MAX_MEMBER_BYTES,
    max_total: int = ARCHIVE_MAX_TOTAL_BYTES,
) -> int:
    """Refuse a zip whose central directory promises too much; return the declared total bytes.

    Checked from the directory alone, before anything is extracted: member count, each member's
    declared size, the compression ratio of large members, and the total. Extraction must then
    stop if a member's real size exceeds its declared one (``copy_bounded``).
    """
    if len(infos) > ARCHIVE_MAX_MEMBERS:
        raise UserError(f"refusing {what}: {len(infos):,} members (at most {ARCHIVE_MAX_MEMBERS:,} are accepted)")
    total = 0
    for info in infos:
        if info.file_size > max_member:
            raise UserError(
                f"refusing {what}: member {info.filename!r} declares {info.file_size / 2**20:,.1f} MiB "
                f"(at most {max_member / 2**20:,.0f} MiB per file)"
            )
        if info.file_size > ARCHIVE_RATIO_MIN_BYTES and info.file_size > ARCHIVE_MAX_RATIO * max(info.compress_size, 1):
            raise UserError(
                f"refusing {what}: member {info.filename!r} expands {info.file_size / max(info.compress_size, 1):,.0f}x "
                f"(a zip bomb? at most {ARCHIVE_MAX_RATIO}x is accepted)"
            )
        total += info.file_size
    if total > max_total:
        raise UserError(
            f"refusing {what}: members total {total / 2**30:,.2f} GiB uncompressed (at most {max_total / 2**30:,.0f} GiB)"
        )
    return total


def copy_bounded(src, dst, limit: int, name: str, chunk: int = 1 << 16) -> int:
    """Copy a stream, failing as soon as more than ``limit`` bytes arrive (a lying zip header)."""
    written = 0
    while True:
        block = src.read(min(chunk, limit + 1 - written))
        if not block:
            return written
        written += len(block)
        if written > limit:
            raise UserError(
                f"refusing archive: member {name!r} holds more data than its header declares ({limit} bytes)"
            )
        dst.write(block)


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse early when ``needed`` bytes (plus 5% headroom) do not fit on ``folder``'s filesystem."""
    import shutil

    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if needed * 1.05 > free:
        raise UserError(
            f"{what} needs {needed / 2**20:,.0f} MiB but {folder} has {free / 2**20:,.0f} MiB free: free some space"
        )


def read_json_object(path: Path, max_bytes: int = 1 << 20) -> dict | None:
    """The JSON object in ``path``; None when it is absent, over ``max_bytes``, unreadable, nested past
    Python's recursion limit, or not an object. For the small side files cifake reads (model cards,
    metrics): a damaged one is treated as missing."""
    import json

    try:
        data = json.loads(path.read_text()) if path.is_file() and path.stat().st_size < max_bytes else None
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None
