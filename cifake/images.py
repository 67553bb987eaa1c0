"""Users' image files: finding them, reading their headers and EXIF, and decoding them to 32x32.

The one way every command reads images it did not make (predict, explain, serve, the Python API):
headers first (``limits.image_header``), so files over the pixel or size cap are never decoded;
EXIF-rotated photos decoded upright by Pillow; the rest through the training loader's decoders
(``data.decode_files``), so a file scores the same wherever it enters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import limits
from .decode import IMAGE_SIZE, decode_files, pil_decode_why
from .errors import UserError
from .text import printable, shorten


def image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def not_a_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an image file (a broken link, a pipe, a socket, a device); None for a
    regular file (or a link to one) and for a folder."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else None
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO), not a file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a file"
    return "not a regular file"


def collect(paths: list[str], skipped: list[tuple[str, str]] | None = None) -> list[str]:
    """Files named directly, plus every file with an image extension under named folders (recursive,
    in sorted order; links to folders are followed once, so a loop ends).

    Entries that cannot be image files (broken links, pipes, sockets, devices), named or found with an
    image extension, go to ``skipped`` as (path, why) when a list is given; without one, a named one
    is an error. The walk keeps its own stack, so a folder tree thousands of levels deep is no problem.
    """
    exts = image_extensions()
    found: list[str] = []
    for raw in paths:
        shown = shorten(printable(raw), 120)
        encoded = os.fsencode(raw)
        if len(encoded) >= 4096 or any(len(part) > 255 for part in encoded.split(b"/")):  # PATH_MAX, NAME_MAX
            raise UserError(f"a file name or path is too long for the file system: {shown}")
        why = not_a_file(raw)
        if why is not None:
            if skipped is None:
                raise UserError(f"{shown} is {why}")
            skipped.append((raw, why))
        elif os.path.isdir(raw):
            files, odd = _walk(Path(raw), exts)
            found.extend(files)
            if skipped is not None:
                skipped.extend(odd)
        elif os.path.isfile(raw):
            found.append(raw)
        else:
            raise UserError(f"no such file or folder: {shown}")
    return found


def _walk(root: Path, exts: set[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(image files, [(odd entry, why)]) under ``root``, without recursion, each real folder visited once."""
    files: list[Path] = []
    odd: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            continue  # unreadable folder: nothing found in it, as before
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir():
                stack.append(path)
            elif path.suffix.lower() in exts:
                if entry.is_file():
                    files.append(path)
                elif (why := not_a_file(entry.path)) is not None:
                    odd.append((entry.path, why))
    return [str(p) for p in sorted(files)], sorted(odd)


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
        arr, why = pil_decode_why(files[i])
        if arr is None:
            problems[i] = why
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
