"""The libjpeg-turbo fast path for 32x32 JPEGs (decode.small_jpeg) gives Pillow's pixels, and leaves every
other file (other sizes, EXIF orientation, CMYK, damaged) to Pillow with Pillow's verdict."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cifake.data.decode as decode
import cifake.data.images as images
from cifake.data.decode import small_jpeg
from cifake.data.images import load_images, read_image


def _jpeg(arr: np.ndarray, mode: str = "RGB", **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).convert(mode).save(buf, "JPEG", **kw)
    return buf.getvalue()


def _pillow(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _picture(seed: int, side: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 9, (side, side, 3)), 0), 1)  # edges and gradients, like photos
    return np.clip(128 + smooth - smooth.mean(), 0, 255).astype(np.uint8)


@pytest.mark.parametrize(
    "mode, kw",
    [
        ("RGB", {}),
        ("RGB", {"quality": 30}),
        ("RGB", {"quality": 97, "subsampling": 0}),
        ("RGB", {"subsampling": 1}),
        ("RGB", {"progressive": True}),
        ("L", {}),
    ],
)
def test_the_same_pixels_as_pillow(mode, kw):
    for seed in range(20):
        data = _jpeg(_picture(seed), mode, **kw)
        fast = small_jpeg(data)
        assert fast is not None and fast.dtype == np.uint8 and fast.shape == (32, 32, 3)
        np.testing.assert_array_equal(fast, _pillow(data))


def test_everything_else_is_left_to_pillow():
    assert small_jpeg(_jpeg(_picture(0, 64))) is None  # another size: Pillow resizes it
    assert small_jpeg(_jpeg(_picture(0), "CMYK")) is None
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: Pillow applies the orientation
    assert small_jpeg(_jpeg(_picture(0), exif=exif.tobytes())) is None
    data = _jpeg(_picture(0))
    assert small_jpeg(data[: len(data) // 2]) is None  # truncated: Pillow gives the verdict
    assert small_jpeg(b"\x89PNG\r\n\x1a\n" + data) is None
    assert small_jpeg(b"") is None


def test_files_read_the_same_with_and_without_the_fast_path(tmp_path: Path, monkeypatch):
    files = []
    for i, (mode, kw) in enumerate([("RGB", {}), ("L", {}), ("RGB", {"quality": 40}), ("CMYK", {})]):
        (f := tmp_path / f"{i}.jpg").write_bytes(_jpeg(_picture(i), mode, **kw))
        files.append(str(f))
    exif = Image.Exif()
    exif[0x0112] = 6
    (f := tmp_path / "rotated.jpg").write_bytes(_jpeg(_picture(9, 32)[:, :20], exif=exif.tobytes()))
    files.append(str(f))
    (f := tmp_path / "big.jpeg").write_bytes(_jpeg(_picture(5, 80)))
    files.append(str(f))
    whole = _jpeg(_picture(7))
    (f := tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 3])
    files.append(str(f))
    (f := tmp_path / "noise.jpg").write_bytes(b"\xff\xd8\xff" + bytes(200))
    files.append(str(f))
    padded = _jpeg(_picture(8))  # a 32x32 JPEG with a large comment: too big for the fast path's read
    comment = b"\xff\xfe\xff\xff" + bytes(65533)  # COM segments of the largest length, twice
    (f := tmp_path / "padded.jpg").write_bytes(padded[:2] + comment * 2 + padded[2:])
    files.append(str(f))

    assert small_jpeg((tmp_path / "padded.jpg").read_bytes()) is not None  # decodable: only too large to read
    assert images._opened(str(tmp_path / "padded.jpg"))[2] is None  # so Pillow reads it, from the path
    assert images._opened(files[0])[2] == Path(files[0]).read_bytes()
    fast = load_images(files)
    monkeypatch.setattr(decode, "_simplejpeg", None)
    slow = load_images(files)
    assert fast.ok == slow.ok and fast.sizes == slow.sizes and fast.unreadable == slow.unreadable
    np.testing.assert_array_equal(fast.images, slow.images)
    assert str(tmp_path / "noise.jpg") in dict(slow.unreadable)
    assert str(tmp_path / "padded.jpg") in fast.ok
    assert read_image(str(tmp_path / "rotated.jpg"))[2] == (32, 20)  # stored 20x32, shown upright


def test_the_fast_path_is_taken_for_cifake_sized_jpegs(tmp_path: Path, monkeypatch):
    (f := tmp_path / "a.jpg").write_bytes(_jpeg(_picture(3)))
    called = []
    monkeypatch.setattr(images, "pil_to_array", lambda *a, **k: called.append(1))
    arr, why, size = read_image(str(f))
    assert why == "" and size == (32, 32) and not called
    np.testing.assert_array_equal(arr, _pillow(f.read_bytes()))
