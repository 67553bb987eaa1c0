"""Image headers, read before any decoder touches a file: Pillow's lazy open (no pixels), and the
formats' own header bytes where Pillow cannot identify a file. What ``limits`` bounds (pixels, bytes)
is measured here, so that a file over a cap is refused from its header alone.
"""

from __future__ import annotations

import os
import struct
import threading

from ..base.limits import file_size_problem, size_problem

_header_lock = threading.Lock()
EXIF_ORIENTATION = 0x0112


def open_header(path: str | bytes | os.PathLike):
    """(the Pillow image, opened lazily: no pixels read yet, (width, height, EXIF orientation 1-8)), or
    (None, (width, height, 1) from the format's header bytes (``raw_dimensions``) or None) when Pillow
    cannot identify the file. The caller closes the image, and decodes it only after checking the size.

    Pillow's own bomb check is lifted for this open only (under a lock: serve is threaded), so a
    huge image is measured and refused by ``limits.size_problem`` with its real size.
    """
    from PIL import Image, UnidentifiedImageError

    with _header_lock:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            im = Image.open(path)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error):
            raw = raw_dimensions(path) if isinstance(path, str | bytes | os.PathLike) else None
            return None, ((*raw, 1) if raw else None)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    try:
        width, height = im.size
        orientation = im.getexif().get(EXIF_ORIENTATION, 1) if "exif" in im.info or im.format == "TIFF" else 1
    except (OSError, ValueError, SyntaxError, struct.error):
        im.close()
        raw = raw_dimensions(path) if isinstance(path, str | bytes | os.PathLike) else None
        return None, ((*raw, 1) if raw else None)
    return im, (width, height, orientation if isinstance(orientation, int) and 1 <= orientation <= 8 else 1)


def image_header(path: str | bytes | os.PathLike) -> tuple[int, int, int] | None:
    """(width, height, EXIF orientation 1-8) from the header alone (Pillow reads no pixels). Where
    Pillow cannot identify the file, the size comes from the format's header bytes
    (``raw_dimensions``); None when neither can tell, and then no decoder may touch the file
    (``image_size_problem`` refuses it)."""
    im, header = open_header(path)
    if im is not None:
        im.close()
    return header


def raw_dimensions(path: str | bytes | os.PathLike) -> tuple[int, int] | None:
    """(width, height) read from the format's own header bytes, without an image library, for the
    formats TensorFlow decodes (PNG, GIF, BMP, JPEG); None for anything else or a damaged header.

    The fallback when Pillow cannot identify a file that TensorFlow might still decode (a PNG with an
    iCCP chunk Pillow refuses to inflate, say): such a file is measured here, never decoded blind.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            return struct.unpack(">II", head[16:24])
        if head[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", head[6:10])
        if head[:2] == b"BM" and len(head) >= 26:
            width, height = struct.unpack("<ii", head[18:26])
            return abs(width), abs(height)
        if head[:2] == b"\xff\xd8":  # JPEG: walk the markers to the first start-of-frame
            i = 2
            while i + 9 <= len(head):
                if head[i] != 0xFF:
                    return None
                marker, length = head[i + 1], struct.unpack(">H", head[i + 2 : i + 4])[0]
                if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                    height, width = struct.unpack(">HH", head[i + 5 : i + 9])
                    return width, height
                i += 2 + length
    except struct.error:
        return None
    return None


def is_gif(path: str | bytes | os.PathLike) -> bool:
    """A GIF by its magic bytes: TensorFlow decodes every frame of one, so cifake decodes GIFs itself."""
    try:
        with open(path, "rb") as f:
            return f.read(6) in (b"GIF87a", b"GIF89a")
    except OSError:
        return False


def image_size_problem(path: str | bytes | os.PathLike) -> str | None:
    """Why ``path`` must not be decoded (too many pixels per its header, too big a file, or a size no
    header tells), or None."""
    if why := file_size_problem(path):
        return why
    header = image_header(path)
    return size_problem(*header[:2]) if header else "its size cannot be read from its header"
