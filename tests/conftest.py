"""Shared fixtures: tiny CIFAKE-shaped datasets generated in tmp_path (no network, no real data)."""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
REAL_ZIP = REPO.parent / "shared" / "data" / "cifake-train.zip"


@pytest.fixture(autouse=True)
def cli_logging():
    """The library logs through ``logging`` (cifake/base/logs.py) and shows nothing by itself; tests read
    its messages as the ``cifake`` command prints them (INFO to stdout, warnings and status to stderr).
    ``tests/test_house.py`` checks the library's own silence with this routing taken away."""
    from cifake.base import logs, renames

    renames.forget()  # an old name's note is said once per process: once per test here
    with logs.routed("normal"):
        yield


def cifake_name(i: int, subject: int) -> str:
    """CIFAKE file naming: no suffix for airplane (subject 0), ' (k)' for subject k-1."""
    return f"{i:04d}.jpg" if subject == 0 else f"{i:04d} ({subject + 1}).jpg"


def synth_image(rng: np.random.Generator, fake: bool) -> np.ndarray:
    """A 32x32 RGB image; FAKE ones carry a fine checkerboard a small CNN learns in a few steps."""
    base = rng.integers(60, 200, size=(1, 1, 3)) + rng.normal(0, 12, size=(32, 32, 3))
    if fake:
        yy, xx = np.mgrid[0:32, 0:32]
        base = base + 45 * (((yy + xx) % 2)[..., None] * 2 - 1)
    return np.clip(base, 0, 255).astype(np.uint8)


def make_dataset(root: Path, per_class: int = 40, splits: tuple[str, ...] = ("train",), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in splits:
        for cls in ("REAL", "FAKE"):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = synth_image(rng, cls == "FAKE")
                Image.fromarray(img).save(folder / cifake_name(i // 10, i % 10), quality=95)
    return root


def make_zip(
    path: Path, per_class: int = 20, prefix: str = "", splits: tuple[str, ...] = ("train", "test"), padding: int = 0
) -> Path:
    """A CIFAKE-layout zip; ``padding`` bytes of random data in an extra non-image member first."""
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        if padding:
            zf.writestr(f"{prefix}LICENSE.bin", rng.bytes(padding))
        for split in splits:
            for cls in ("REAL", "FAKE"):
                for i in range(per_class):
                    buf = io.BytesIO()
                    Image.fromarray(synth_image(rng, cls == "FAKE")).save(buf, format="JPEG")
                    zf.writestr(f"{prefix}{split}/{cls}/{cifake_name(i // 10, i % 10)}", buf.getvalue())
    return path


def png_bomb(path: Path, side: int = 23_000) -> Path:
    """A real, valid PNG of side x side black pixels, a few MB on disk (streamed: never held in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * side)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def zip_bomb(path: Path, size: int) -> Path:
    """One zero-filled member ``train/REAL/bomb.jpg`` of ``size`` bytes, deflated and streamed (never held in memory)."""
    chunk = b"\0" * (1 << 20)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("train/REAL/bomb.jpg", "w", force_zip64=True) as f,
    ):
        for _ in range(size // len(chunk)):
            f.write(chunk)
    return path


def laughs_yaml(levels: int) -> str:
    """A "billion laughs" YAML: ``levels`` levels of ten aliases to the level below (10**levels values)."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """train/{REAL,FAKE} with 40 images each."""
    return make_dataset(tmp_path / "cifake", per_class=40)
