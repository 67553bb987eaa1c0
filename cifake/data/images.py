"""Users' image files: finding them, reading their headers and EXIF, and decoding them to 32x32.

The one way every command reads images it did not make (predict, explain, serve, the Python API):
headers first (``headers.open_header``), so files over the pixel or size cap are never decoded; then
Pillow (first frame, EXIF orientation, RGB, antialiased bicubic resize to 32x32), so a file scores the
same wherever it enters, and scoring with a LiteRT model never loads TensorFlow. A 32x32 JPEG without
EXIF skips Pillow (``decode.small_jpeg``: libjpeg-turbo directly, the same pixels, ~4x faster).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..base import limits
from ..base.errors import UserError
from ..base.text import printable, shorten
from . import headers
from .decode import IMAGE_SIZE, JPEG_SIGNATURE, PNG_SIGNATURE, pil_to_array, png_checksums, small_jpeg

# What counts as an image file, defined here only. In a dataset folder (train/ and test/, data.extra_*,
# an archive, an evaluation folder of sources): the formats the training decoder reads directly
# (TensorFlow: JPEG, PNG, BMP, GIF) and WebP. Among the files a user asks to score (predict, explain,
# serve): anything Pillow opens (``image_extensions()``).
DATASET_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


def image_extensions() -> set[str]:
    """Every extension Pillow opens: what ``collect`` finds in a folder a user asks to score."""
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
            files, odd = walk(Path(raw), exts)
            found.extend(files)
            if skipped is not None:
                skipped.extend(odd)
        elif os.path.isfile(raw):
            found.append(raw)
        else:
            raise UserError(f"no such file or folder: {shown}")
    return found


def walk(root: Path, exts: set[str] | tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files with one of ``exts``, [(odd entry, why)]) under ``root``, in sorted order, without recursion;
    each real folder is visited once, so a symbolic link that loops back ends the walk instead of running it forever."""
    files: list[str] = []
    odd: list[tuple[str, str]] = []
    seen: set[tuple[int, int]] = set()
    above = _folders_above(root)  # a link back to one of these would walk everything above the root
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
        here = str(folder) != "."  # pathlib's spelling: "name", not "./name", for entries of "."
        for entry in entries:
            path = entry.path if here else entry.name
            try:
                is_dir = entry.is_dir()
                if is_dir and entry.is_symlink() and _inode(path) in above:
                    odd.append((path, "a link to a folder that holds the one searched: not followed"))
                    continue
            except OSError as e:  # a link whose target cannot be looked at (permission, a loop)
                odd.append((path, f"cannot be looked at ({e.strerror or type(e).__name__})"))
                continue
            if is_dir:
                stack.append(Path(path))
            elif os.path.splitext(entry.name)[1].lower() in exts:
                if entry.is_file():
                    files.append(path)
                elif (why := not_a_file(path)) is not None:
                    odd.append((path, why))
    # strings, sorted by path components as pathlib sorts them (a/x before a.b/x): 20,000 files in
    # milliseconds, where building and sorting Path objects took a quarter of a second
    return sorted(files, key=_parts), sorted(odd, key=lambda o: _parts(o[0]))


def _inode(path: str | Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _folders_above(root: Path) -> set[tuple[int, int]]:
    """(device, inode) of every folder strictly above ``root`` (resolved), up to ``/``."""
    out = set()
    try:
        for parent in root.resolve().parents:
            out.add(_inode(parent))
    except OSError:
        pass
    return out


def _parts(path: str) -> list[str]:
    return path.split(os.sep)


class Loaded(NamedTuple):
    images: np.ndarray  # (N, 32, 32, 3) uint8, the readable files in input order
    ok: list[str]  # their paths
    unreadable: list[tuple[str, str]]  # (path, why) of the others
    sizes: list[tuple[int, int]]  # (width, height) of each readable file as stored (upright), (0, 0) if unknown


def read_image(path: str) -> tuple[np.ndarray | None, str, tuple[int, int]]:
    """One file as (32x32 RGB uint8 or None, why not, (width, height) as stored, upright).

    The file's byte size is checked first, then its header (``headers.open_header``: the file is
    opened once, no pixels read); only a file within the caps is decoded, from that same open
    (``decode.pil_to_array``). A file whose size no header tells is never decoded.
    """
    if why := limits.file_size_problem(path):
        return None, why, (0, 0)
    source, why, jpeg = _opened(path)
    if why:
        return None, why, (0, 0)
    if jpeg is not None and (arr := small_jpeg(jpeg)) is not None:  # the common case, without Pillow
        return arr, "", (IMAGE_SIZE, IMAGE_SIZE)
    im, header = headers.open_header(source)
    if im is None:
        why = limits.size_problem(*header[:2]) if header else None
        return None, why or "not an image this tool can read", (0, 0)
    w, h, orientation = header
    size = (h, w) if orientation in (5, 6, 7, 8) else (w, h)  # EXIF 5-8 swap the axes
    with im:
        if why := limits.size_problem(w, h):
            return None, why, size
        try:
            arr, why = pil_to_array(im, orientation)
        except Exception:  # noqa: BLE001 - any failure while decoding means unreadable
            return None, "not an image this tool can read", size
    return arr, why, size


SMALL_JPEG_BYTES = 1 << 16  # a 32x32 JPEG is a few KB even at quality 100; larger files are not read twice


def _opened(path: str):
    """(what Pillow opens: ``path``, or for a PNG with a repaired ancillary checksum its bytes
    (``decode.png_checksums``); why a damaged PNG is not read, or ""; the bytes of a JPEG file of at most
    ``SMALL_JPEG_BYTES``, else None)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(PNG_SIGNATURE))
            if head.startswith(JPEG_SIGNATURE):  # small enough to be 32x32: its bytes; a photo: Pillow's way
                data = head + f.read(SMALL_JPEG_BYTES)
                return path, "", (data if not f.read(1) else None)
            if head != PNG_SIGNATURE:
                return path, "", None
            data = head + f.read()
    except OSError:
        return path, "", None  # the open that follows says why
    fixed, why = png_checksums(data)
    if why:
        return path, why, None
    return (path if fixed is data else io.BytesIO(fixed)), "", None


def load_images(files: list[str]) -> Loaded:
    """The readable images of ``files`` at 32x32, their original sizes, and why the others were skipped.

    Each file is read by ``read_image`` (caps from its header before any pixel is decoded; Pillow:
    first frame, EXIF orientation, RGB, antialiased bicubic resize; 32x32 JPEGs: ``decode.small_jpeg``), one after another: for images
    this small the work is Python's, under the GIL, and a thread pool made it 2.4x slower (176 against
    74 us a file on 2 cores). TensorFlow is not involved, so scoring with a LiteRT model never loads it.
    """
    images = np.zeros((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    keep: list[int] = []
    sizes: list[tuple[int, int]] = []
    unreadable: list[tuple[str, str]] = []
    for i, f in enumerate(files):
        arr, why, size = read_image(f)
        if arr is None:
            unreadable.append((f, why))
        else:
            images[i] = arr
            keep.append(i)
            sizes.append(size)
    return Loaded(images[keep], [files[i] for i in keep], unreadable, sizes)


def as_batch(images) -> np.ndarray:
    """What ``Detector.predict`` accepts, as (N, 32, 32, 3) uint8: paths (files, folders), PIL images,
    or uint8 RGB arrays (H, W, 3) / (N, H, W, 3); resized and read exactly as ``load_images`` does."""
    return gather(images, errors="raise").images


class Gathered(NamedTuple):
    """``gather``'s answer: the 32x32 batch, each image's file (None for an array or PIL image given
    directly) and original (width, height), and the files skipped with why."""

    images: np.ndarray
    paths: list[str | None]
    sizes: list[tuple[int, int]]
    skipped: list[tuple[str, str]]


def gather(images, errors: str = "raise") -> Gathered:
    """``as_batch`` with what a result needs: paths and original sizes per image. ``errors``: 'raise'
    (a file that cannot be read is a ``UserError`` naming it) or 'skip' (it goes to ``skipped``)."""
    from PIL import Image

    if errors not in ("raise", "skip"):
        raise UserError(f"errors must be 'raise' or 'skip', got {str(errors)[:40]!r}")
    if isinstance(images, np.ndarray):
        shape = images.shape[-3:-1][::-1] if images.ndim in (3, 4) else (0, 0)
        batch = _array_batch(images)
        return Gathered(batch, [None] * len(batch), [tuple(shape)] * len(batch), [])
    if isinstance(images, (bytes, bytearray, memoryview)):
        raise UserError(
            "cannot score raw bytes: give a path, a PIL image (PIL.Image.open(io.BytesIO(data))) or a uint8 array"
        )
    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (str, os.PathLike)):
        images = [images]
    try:
        items = list(images)
    except TypeError:
        items = [images]
    if items and all(isinstance(x, Image.Image) for x in items):
        out = []
        for n, im in enumerate(items):
            arr, why = pil_to_array(im)
            if arr is None:
                raise UserError(f"image {n} of {len(items)}: {why}")
            out.append(arr)
        return Gathered(np.stack(out), [None] * len(out), [im.size for im in items], [])
    if not all(isinstance(x, (str, os.PathLike)) for x in items):
        kinds = sorted({type(x).__name__ for x in items})
        raise UserError(f"cannot score {', '.join(kinds)}: give paths, PIL images, or a uint8 array (N, H, W, 3)")
    files = collect([os.fspath(x) for x in items])
    if not files:
        raise UserError(f"no image files found in {', '.join(shorten(printable(os.fspath(x)), 80) for x in items)}")
    loaded = load_images(files)
    if loaded.unreadable and errors == "raise":
        shown = "; ".join(f"{printable(p)}: {why}" for p, why in loaded.unreadable[:3])
        raise UserError(f"{len(loaded.unreadable)} of {len(files)} file(s) could not be read ({shorten(shown, 300)})")
    return Gathered(loaded.images, list(loaded.ok), list(loaded.sizes), list(loaded.unreadable))


def _array_batch(arr: np.ndarray) -> np.ndarray:
    from PIL import Image

    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise UserError(f"expected RGB pixels (H, W, 3) or (N, H, W, 3), got an array of shape {arr.shape}")
    if arr.shape[1] * arr.shape[2] > limits.max_pixels():  # the cap files get, before any copy or resize
        raise UserError(
            f"an image of {arr.shape[2]}x{arr.shape[1]} pixels is over the cap of {limits.max_pixels():,} pixels "
            "(the same as for files; raise it with --max-megapixels, or limits.set_max_megapixels in Python)"
        )
    if arr.dtype != np.uint8:
        real = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
        if not real or not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
            raise UserError(f"expected pixels 0..255 (uint8, or real numbers in that range), got {arr.dtype}")
        if np.issubdtype(arr.dtype, np.floating) and 0 < arr.max() <= 1.0:
            raise UserError(
                "got floating-point pixels in [0, 1]; cifake models take 0..255 (multiply by 255 first): read as "
                "they are, they would be scored as near-black images"
            )
        arr = np.round(arr).astype(np.uint8)
    if arr.shape[1:3] == (IMAGE_SIZE, IMAGE_SIZE):
        return arr
    return np.stack([pil_to_array(Image.fromarray(a))[0] for a in arr])


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
