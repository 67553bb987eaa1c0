"""The evaluation battery: real-world degradations of uint8 RGB images, each with named severity levels.

Deliberately independent of the training augmentations (``data.py`` / tf.data): Pillow's real JPEG
encoder and resampling filters and NumPy arithmetic, so a bug in one cannot hide in the other.
Every operation maps (N, H, W, 3) uint8 to the same shape and dtype and is deterministic for a
seed (only ``noise`` draws random numbers, from NumPy's PCG64 seeded by (seed, level)).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..base.errors import UserError


def _per_image(fn: Callable) -> Callable[[np.ndarray, float, int], np.ndarray]:
    """Lift a Pillow function of one image to a batch; images are processed in threads (Pillow
    releases the GIL while encoding and resampling)."""

    def batch(images: np.ndarray, level: float, seed: int) -> np.ndarray:
        from PIL import Image

        def one(img: np.ndarray) -> np.ndarray:
            return np.asarray(fn(Image.fromarray(img), level), dtype=np.uint8)

        with ThreadPoolExecutor() as pool:
            return np.stack(list(pool.map(one, images, chunksize=256))) if len(images) else images.copy()

    return batch


def _jpeg(im, quality: float):
    from PIL import Image

    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=int(quality))  # Pillow's defaults: 4:2:0 chroma subsampling, as on the web
    buf.seek(0)
    with Image.open(buf) as out:
        return out.convert("RGB")


def _resize(im, size: float):
    from PIL import Image

    w, h = im.size
    return im.resize((int(size), int(size)), Image.Resampling.BICUBIC).resize((w, h), Image.Resampling.BICUBIC)


def _brightness(im, factor: float):
    from PIL import ImageEnhance

    return ImageEnhance.Brightness(im).enhance(factor)


def _contrast(im, factor: float):
    from PIL import ImageEnhance

    return ImageEnhance.Contrast(im).enhance(factor)


def gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Separable Gaussian blur with reflected borders, in float64, rounded back to uint8."""
    k = gaussian_kernel(sigma)
    r = len(k) // 2
    x = images.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (r, r)
        padded = np.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(i, i + n), axis=axis) for i, w in enumerate(k))
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, round(sigma * 1000)])
    noisy = images.astype(np.float32) + rng.normal(0.0, sigma, images.shape).astype(np.float32)
    return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Corruption:
    """One operation of the battery: everything the spec parser, tables, help and figures need."""

    name: str
    fn: Callable[[np.ndarray, float, int], np.ndarray]  # (images, level, seed) -> images
    levels: tuple[float, ...]  # the defaults, mild to severe
    unit: str
    low: float  # valid levels: low < v <= high (low <= v when low_inclusive)
    high: float
    low_inclusive: bool = False
    severe_is_low: bool = False  # JPEG quality and the resize size fall as the damage grows

    def valid(self, v: float) -> bool:
        return math.isfinite(v) and (self.low <= v if self.low_inclusive else self.low < v) and v <= self.high

    def rule(self) -> str:
        lo = "[" if self.low_inclusive else "("
        return f"a {self.unit.split(' ')[0]} in {lo}{self.low:g}, {self.high:g}]"


_BATTERY = (
    Corruption("jpeg", _per_image(_jpeg), (90, 70, 50, 40, 30), "quality", 1, 100, True, severe_is_low=True),
    Corruption("blur", _blur, (0.5, 0.8, 1.2), "sigma (px)", 0, 10),
    Corruption("noise", _noise, (4, 8, 16), "sigma (of 255)", 0, 128),
    Corruption("resize", _per_image(_resize), (24, 16), "size (px), down and back up (bicubic)", 2, 31, True, True),
    Corruption("brightness", _per_image(_brightness), (0.6, 1.4), "factor", 0, 4),
    Corruption("contrast", _per_image(_contrast), (0.6, 1.4), "factor", 0, 4),
)
CORRUPTIONS: dict[str, Corruption] = {c.name: c for c in _BATTERY}


def battery_help() -> str:
    """``jpeg:90/70/50/40/30, blur:0.5/0.8/1.2, ...``: the default battery in one line."""
    return ", ".join(f"{c.name}:{'/'.join(f'{v:g}' for v in c.levels)}" for c in _BATTERY)


def apply(name: str, level: float, images: np.ndarray, seed: int = 0) -> np.ndarray:
    """``images`` (N, H, W, 3) uint8 degraded by operation ``name`` at ``level``."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    return CORRUPTIONS[name].fn(images, float(level), seed)


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """``all`` | ``NAME[:LEVEL],...`` -> [(name, level)]; a NAME alone means its default levels."""
    spec = spec.strip()
    if spec in ("", "all"):
        return [(c.name, lv) for c in _BATTERY for lv in c.levels]
    out: list[tuple[str, float]] = []
    for part in spec.split(","):
        name, _, level = part.strip().partition(":")
        if name not in CORRUPTIONS:
            raise UserError(
                f"corruptions: unknown operation {name!r}; expected all, or NAME[:LEVEL],... with NAME one of "
                f"{', '.join(CORRUPTIONS)}"
            )
        if not level:
            out.extend((name, lv) for lv in CORRUPTIONS[name].levels)
            continue
        try:
            value = float(level)
        except ValueError:
            value = float("nan")
        if not CORRUPTIONS[name].valid(value):
            raise UserError(f"corruptions: {name}:{level} is not a valid level ({CORRUPTIONS[name].rule()})")
        out.append((name, value))
    return out


def label(name: str, level: float) -> str:
    """``jpeg:40``: how an operation and level are written in specs, tables and figures."""
    return f"{name}:{level:g}"
