"""The corruption battery: each operation changes images in the expected direction, deterministically."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cifake.base.errors import UserError
from cifake.data import corruptions

from .conftest import synth_image


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([synth_image(rng, i % 2 == 1) for i in range(32)])


def high_freq_energy(x: np.ndarray) -> float:
    """Mean squared difference between horizontal and vertical neighbours: the finest texture."""
    f = x.astype(np.float64)
    return float((np.diff(f, axis=1) ** 2).mean() + (np.diff(f, axis=2) ** 2).mean())


@pytest.mark.parametrize(("name", "level"), [(c.name, lv) for c in corruptions.CORRUPTIONS.values() for lv in c.levels])
def test_every_operation_keeps_shape_and_dtype_and_is_deterministic(images, name, level):
    a = corruptions.apply(name, level, images, seed=1)
    assert a.shape == images.shape and a.dtype == np.uint8
    assert np.array_equal(a, corruptions.apply(name, level, images, seed=1))
    assert not np.array_equal(a, images), "every level must change the images"


@pytest.mark.parametrize(("name", "levels"), [("blur", (0.5, 0.8, 1.2)), ("resize", (24, 16))])
def test_low_pass_operations_lower_high_frequency_energy_with_severity(images, name, levels):
    energies = [high_freq_energy(images)] + [high_freq_energy(corruptions.apply(name, lv, images)) for lv in levels]
    assert all(a > b for a, b in itertools.pairwise(energies)), energies


def test_jpeg_harder_compression_moves_further(images):
    err = {q: np.abs(corruptions.apply("jpeg", q, images).astype(int) - images).mean() for q in (90, 30)}
    assert err[30] > err[90] > 0


def test_noise_has_the_requested_spread_and_depends_on_the_seed(images):
    flat = np.full((64, 32, 32, 3), 128, np.uint8)
    noisy = corruptions.apply("noise", 8, flat, seed=3).astype(float) - 128
    assert abs(noisy.std() - 8) < 0.3
    assert not np.array_equal(corruptions.apply("noise", 8, images, 3), corruptions.apply("noise", 8, images, 4))


def test_brightness_and_contrast_directions(images):
    assert corruptions.apply("brightness", 1.4, images).mean() > images.mean()
    assert corruptions.apply("brightness", 0.6, images).mean() < images.mean()
    assert corruptions.apply("contrast", 0.6, images).astype(float).std() < images.astype(float).std()


def test_spec_parsing():
    assert len(corruptions.parse_spec("all")) == sum(len(c.levels) for c in corruptions.CORRUPTIONS.values())
    assert corruptions.parse_spec("jpeg:40,blur") == [("jpeg", 40.0), ("blur", 0.5), ("blur", 0.8), ("blur", 1.2)]
    for bad in ("jpg:40", "jpeg:0", "blur:nan", "resize:64", "noise:x"):
        with pytest.raises(UserError):
            corruptions.parse_spec(bad)
