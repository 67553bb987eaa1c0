"""No decoder may outrun the pixel cap: sizes come from the header bytes when Pillow cannot read them,
and GIFs are decoded one frame, never every frame (TensorFlow decodes all of them)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from cifake.cli import main
from cifake.config import ModelConfig
from cifake.data import decode, headers
from cifake.models.registry import build_model


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def iccp_bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG declaring width x height whose iCCP profile inflates past Pillow's limit, so Pillow refuses it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    profile = b"icc\0\0" + zlib.compress(b"\0" * 4_000_000, 9)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"iCCP", profile)
    png += _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    path.write_bytes(png)
    return path


def test_the_size_of_a_png_pillow_refuses_comes_from_its_header_bytes(tmp_path):
    bomb = iccp_bomb_png(tmp_path / "bomb.png", 12000, 12000)
    try:
        with Image.open(bomb) as im:
            im.size  # noqa: B018 - Pillow must refuse it, or this test does not test the bypass
        raise AssertionError("Pillow opened the iCCP bomb; the fixture no longer reproduces the bypass")
    except (ValueError, OSError):
        pass
    assert headers.image_header(bomb) == (12000, 12000, 1)
    assert "144 megapixels is over" in headers.image_size_problem(bomb)


def test_predict_refuses_the_iccp_bomb_before_decoding(tmp_path, capsys):
    model = tmp_path / "m.keras"
    build_model(ModelConfig(filters=[8])).save(model)
    bomb = iccp_bomb_png(tmp_path / "bomb.png", 12000, 12000)
    assert main(["predict", str(bomb), "--model", str(model)]) == 2
    assert "over the 50 MP cap" in capsys.readouterr().err


def test_raw_dimensions_of_each_format(tmp_path):
    for fmt, suffix in (("PNG", "png"), ("GIF", "gif"), ("BMP", "bmp"), ("JPEG", "jpg")):
        Image.new("RGB", (37, 23)).save(tmp_path / f"x.{suffix}", format=fmt)
        assert headers.raw_dimensions(tmp_path / f"x.{suffix}") == (37, 23), fmt
    (tmp_path / "x.txt").write_text("not an image")
    assert headers.raw_dimensions(tmp_path / "x.txt") is None
    assert headers.image_size_problem(tmp_path / "x.txt") == "its size cannot be read from its header"


def test_gifs_are_decoded_one_frame_without_tensorflow(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(40)]
    gif = tmp_path / "anim.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    png = tmp_path / "still.png"
    Image.open(gif).convert("RGB").save(png)
    decoded_by_tensorflow: list[str] = []
    real = decode._decode_into

    def spy(out, seen, paths, indices, decoder, batch, bar):
        decoded_by_tensorflow.extend(paths[i] for i in indices)
        return real(out, seen, paths, indices, decoder, batch, bar)

    monkeypatch.setattr(decode, "_decode_into", spy)
    images, bad = decode.decode_files([str(gif), str(png)])
    assert bad == [] and str(gif) not in decoded_by_tensorflow and str(png) in decoded_by_tensorflow
    assert np.array_equal(images[0], images[1])  # the first frame, as TensorFlow would have returned it
