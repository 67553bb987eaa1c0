"""Decoding image files to 32x32 RGB uint8: TensorFlow's decoders in parallel for the dataset
(``decode_files``), Pillow for users' files (``pil_to_array``: ``images.load_images`` and the Python
API) and for what TensorFlow would mishandle (animated GIFs). Bounded by ``limits``.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from tqdm import tqdm

from ..base import limits
from ..base.progress import bars_shown
from ..base.tfutil import import_tf, quiet_native_stderr
from . import headers

IMAGE_SIZE = 32


def decode_files(paths: list[str], *, batch: int = 2048, progress: bool = False) -> tuple[np.ndarray, list[int]]:
    """Decode image files to (N, 32, 32, 3) uint8 in parallel; return the array and indices of bad files.

    Any format TensorFlow decodes (JPEG, PNG, BMP, GIF first frame); other sizes are resized to 32x32
    (bicubic, antialiased). Files named .jpg/.jpeg go through the JPEG decoder directly (about 20%
    faster than format sniffing); whatever fails there is retried with the generic decoder. A file
    that fails both is left zero and reported by index.

    Bounded (``limits``): files over IMAGE_MAX_FILE_BYTES are never read; a JPEG whose header
    declares more pixels than the cap is refused in the graph before decoding, and every other file
    has its header read by Pillow first. Names may be any bytes (they reach TensorFlow as bytes).
    The decoders' own complaints ("Premature end of JPEG file") are kept off the terminal: such
    files are reported as bad by index instead.
    """
    n = len(paths)
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    seen = np.zeros(n, bool)
    jpeg = [
        i for i, p in enumerate(paths) if p.lower().endswith((".jpg", ".jpeg")) and limits.file_size_problem(p) is None
    ]
    with (
        quiet_native_stderr() as err,
        tqdm(
            total=n,
            desc="decode",
            unit="img",
            file=err,
            mininterval=1.0,
            disable=not progress or n == 0 or not bars_shown(),
        ) as bar,
    ):
        _decode_into(out, seen, paths, jpeg, "jpeg", batch, bar)
        rest = [i for i in np.flatnonzero(~seen).tolist() if headers.image_size_problem(paths[i]) is None]
        gifs = {i for i in rest if headers.is_gif(paths[i])}  # TensorFlow would decode every frame
        _decode_into(out, seen, paths, [i for i in rest if i not in gifs], "any", batch, bar)
        for i in sorted(gifs):
            if (arr := pil_decode(paths[i])) is not None:
                out[i], seen[i] = arr, True
            bar.update(1)
    return out, np.flatnonzero(~seen).tolist()


def pil_decode(path: str) -> np.ndarray | None:
    """Pillow: the first frame only, EXIF orientation applied, RGB (alpha dropped, as TensorFlow does),
    resized with Pillow's antialiased bicubic (``pil_to_array``); None if unreadable. Pillow's own pixel
    cap is ``limits``' (set there)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return pil_to_array(im)[0]
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return None


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"

try:  # libjpeg-turbo called directly (simplejpeg): see small_jpeg
    import simplejpeg as _simplejpeg
except ImportError:  # a dependency, but without it Pillow reads every JPEG as before
    _simplejpeg = None


def small_jpeg(data: bytes) -> np.ndarray | None:
    """A 32x32 colour (YCbCr) or grey JPEG without EXIF, decoded to RGB uint8 straight by libjpeg-turbo
    (``simplejpeg``): about 5x faster than through Pillow (26 against 134 us a CIFAKE file, 2-core EPYC)
    and the same pixels, as both run libjpeg-turbo with its accurate integer DCT and smooth upsampling
    (tests compare them). None for anything else, which Pillow reads as before: another size (resized),
    EXIF (orientation), CMYK, a damaged or truncated file (its own verdict), or no simplejpeg."""
    if _simplejpeg is None or not data.startswith(JPEG_SIGNATURE):
        return None
    try:
        h, w, colorspace, _ = _simplejpeg.decode_jpeg_header(data)
        if (w, h) != (IMAGE_SIZE, IMAGE_SIZE) or colorspace not in ("YCbCr", "Gray") or b"Exif" in data:
            return None
        arr = _simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True)
    except ValueError:  # damaged: a warning counts as an error (strict), and Pillow gives the verdict
        return None
    return arr if arr.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) else None


def png_checksums(data: bytes) -> tuple[bytes, str]:
    """libpng's checksum policy, which training's decoder (TensorFlow) follows, for Pillow to follow too:
    (the bytes to decode, why not). A critical chunk (IHDR, PLTE, IDAT, IEND: upper-case first letter)
    that fails its CRC makes the file damaged (Pillow alone would decode a bad IDAT); an ancillary one
    (text, colour profile, ...) is repaired (Pillow alone would refuse the whole file)."""
    import struct
    import zlib

    if not data.startswith(PNG_SIGNATURE):
        return data, ""
    out, pos, repaired = bytearray(data), len(PNG_SIGNATURE), False
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        end = pos + 8 + length
        if end + 4 > len(data):
            break  # truncated: the decoder says so
        kind = data[pos + 4 : pos + 8]
        crc = zlib.crc32(data[pos + 4 : end]) & 0xFFFFFFFF
        if struct.unpack(">I", data[end : end + 4])[0] != crc:
            if kind[:1].isupper():
                return b"", f"a damaged PNG: its {kind.decode('latin-1')} chunk fails its checksum"
            out[end : end + 4], repaired = struct.pack(">I", crc), True
        pos = end + 4
    return (bytes(out) if repaired else data), ""


# Pillow modes whose values have no fixed range (32-bit float or integer samples): converting them to
# 8-bit clips everything to black or white, which would then be scored as if it were a photo.
AMBIGUOUS_MODES = {"F": "32-bit floating-point", "I": "32-bit integer"}


def pil_to_array(im, orientation: int | None = None) -> tuple[np.ndarray | None, str]:
    """An open Pillow image as 32x32 RGB uint8: first frame, EXIF orientation applied, alpha dropped,
    16-bit grey scaled to 8 bits, other sizes resized with Pillow's antialiased bicubic; (None, why) for
    images whose samples have no fixed range (32-bit float or integer). ``orientation`` 1 (read from
    the header already) skips parsing the EXIF block again."""
    from PIL import Image, ImageOps

    im.seek(0)
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
    if im.mode in AMBIGUOUS_MODES:
        return None, f"a {AMBIGUOUS_MODES[im.mode]} image (mode {im.mode}): cifake reads 8- and 16-bit images"
    if im.mode.startswith("I;16"):  # 16-bit grey: keep the top 8 bits of each sample
        grey = (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8)
        im = Image.fromarray(np.repeat(grey[..., None], 3, axis=-1))
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    if rgb.size != (IMAGE_SIZE, IMAGE_SIZE):
        rgb = rgb.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8), ""


@functools.cache
def _loader(decoder: str, cap: int):
    """(index, path bytes) -> (index, 32x32x3 uint8), traced once per decoder and pixel cap.

    tf.data maps it for large sets; a handful of files (one upload, one photo) call it directly,
    which skips building a pipeline (~50 ms of tracing per call otherwise).
    """
    tf = import_tf()

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string)])
    def load(i, path):
        data = tf.io.read_file(path)
        if decoder == "jpeg":
            hw = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
            with tf.control_dependencies([tf.debugging.assert_less_equal(hw[0] * hw[1], tf.constant(cap, tf.int64))]):
                # the accurate integer DCT is what Pillow (users' files, predict) uses: the same pixels
                # in training as in scoring, where TensorFlow's default (INTEGER_FAST) differs by a few levels
                img = tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE")
        else:
            img = tf.io.decode_image(data, channels=3, expand_animations=False)
        shape = tf.shape(img)
        img = tf.cond(
            tf.logical_and(shape[0] == IMAGE_SIZE, shape[1] == IMAGE_SIZE),
            lambda: img,
            lambda: tf.cast(
                tf.clip_by_value(
                    tf.round(tf.image.resize(img, [IMAGE_SIZE, IMAGE_SIZE], "bicubic", antialias=True)), 0, 255
                ),
                tf.uint8,
            ),
        )
        return i, tf.ensure_shape(img, [IMAGE_SIZE, IMAGE_SIZE, 3])

    return load


_DIRECT_MAX = 64  # up to this many files are decoded by direct calls rather than a tf.data pipeline


def _decode_into(
    out: np.ndarray, seen: np.ndarray, paths: list[str], indices: list[int], decoder: str, batch: int, bar
) -> None:
    if not indices:
        return
    tf = import_tf()
    load = _loader(decoder, limits.max_pixels())
    names = np.array([os.fsencode(paths[i]) for i in indices], dtype=object)  # bytes: any file name works
    if len(indices) <= _DIRECT_MAX:
        for i, name in zip(indices, names, strict=True):
            try:
                out[i] = load(tf.constant(i, tf.int64), tf.constant(name))[1].numpy()
                seen[i] = True
            except tf.errors.OpError:
                pass
            bar.update(1)
        return
    ds = (
        tf.data.Dataset.from_tensor_slices((np.asarray(indices, dtype=np.int64), names))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .ignore_errors()
        .batch(batch)
        .prefetch(2)
    )
    for idx, imgs in ds.as_numpy_iterator():
        out[idx] = imgs
        seen[idx] = True
        bar.update(len(idx))
