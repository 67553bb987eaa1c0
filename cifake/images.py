"""Users' image files: finding them, reading their headers and EXIF, and decoding them to 32x32.

The one way every command reads images it did not make (predict, explain, serve, the Python API):
headers first (``limits.image_header``), so files over the pixel or size cap are never decoded;
EXIF-rotated photos decoded upright by Pillow; the rest through the training loader's decoders
(``data.decode_files``), so a file scores the same wherever it enters.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import limits
from .data import IMAGE_SIZE, decode_files, pil_decode
from .errors import UserError


def image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def collect(paths: list[str]) -> list[str]:
    """Files named directly, plus every file with an image extension under named folders (recursive)."""
    exts = image_extensions()
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in exts)
        elif path.is_file():
            found.append(str(path))
        else:
            raise UserError(f"no such file or folder: {raw}")
    return found


class Loaded(NamedTuple):
    images: np.ndarray  # (N, 32, 32, 3) uint8, the readable files in input order
    ok: list[str]  # their paths
    unreadable: list[tuple[str, str]]  # (path, why) of the others
    sizes: list[tuple[int, int]]  # (width, height) of each readable file as stored (upright), (0, 0) if unknown


def load_images(files: list[str]) -> Loaded:
    """The readable images of ``files`` at 32x32, their original sizes, and why the others were skipped.

    Headers first (``limits.image_header``): files over the pixel or size cap are never decoded; photos whose
    EXIF orientation says "rotated" are decoded upright by Pillow (TensorFlow's decoders ignore
    EXIF). The rest go through the loader's parallel decoders, with Pillow as the fallback for
    formats TensorFlow does not read.
    """
    refused: dict[int, str] = {}
    upright: list[int] = []
    sizes: list[tuple[int, int]] = []
    for i, f in enumerate(files):
        header = limits.image_header(f)
        w, h, orientation = header or (0, 0, 1)
        sizes.append((h, w) if orientation in (5, 6, 7, 8) else (w, h))  # EXIF 5-8 swap the axes
        if why := limits.file_size_problem(f) or (limits.size_problem(*header[:2]) if header else None):
            refused[i] = why
        elif orientation != 1:
            upright.append(i)
    plain = sorted(set(range(len(files))) - set(refused) - set(upright))
    images = np.zeros((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    decoded, bad = decode_files([files[i] for i in plain], progress=len(plain) > 5000)
    images[plain] = decoded
    problems = dict(refused)
    for i in [plain[j] for j in bad] + upright:
        arr = pil_decode(files[i])
        if arr is None:
            problems[i] = "not an image this tool can read"
        else:
            images[i] = arr
    keep = [i for i in range(len(files)) if i not in problems]
    return Loaded(
        images[keep],
        [files[i] for i in keep],
        [(files[i], problems[i]) for i in sorted(problems)],
        [sizes[i] for i in keep],
    )


def resized_note(sizes: list[tuple[int, int]]) -> str | None:
    """One warning for a run in which some images were not 32x32 (said once, not per file)."""
    return resized_note_counts(sum((w, h) != (IMAGE_SIZE, IMAGE_SIZE) for w, h in sizes), len(sizes))


def resized_note_counts(other: int, total: int) -> str | None:
    if not other:
        return None
    return (
        f"{other} of {total} image(s) were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized to it (bicubic); "
        "the detector was trained on 32x32 CIFAKE images only, so its scores on them are less reliable"
    )
