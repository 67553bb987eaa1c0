"""Model registry: config -> architecture, the I/O contract, and .keras round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cifake.base.errors import ConfigError
from cifake.cli import main
from cifake.config import ModelConfig
from cifake.models.registry import REGISTRY, build_model


@pytest.mark.parametrize(
    ("kw", "convs", "params_min"),
    [
        ({"filters": [8]}, 1, 200),
        ({"filters": [8, 16], "convs_per_block": 2, "batch_norm": False, "pooling": "avg"}, 4, 3000),
        ({"filters": [16, 32, 64], "head": "flatten", "dense": [32], "dropout": 0.3, "kernel_size": 5}, 3, 50_000),
        ({"filters": [8, 8], "pooling": "none", "activation": "gelu"}, 2, 700),
    ],
)
def test_config_shapes_the_model(kw, convs, params_min):
    model = build_model(ModelConfig(**kw))
    names = [layer.name for layer in model.layers]
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in model.layers) == convs
    assert len(names) == len(set(names))
    assert "block1_conv1" in names and "p_fake" in names
    assert ("block1_bn1" in names) == ModelConfig(**kw).batch_norm
    assert model.count_params() >= params_min
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 1)
    if kw.get("dense"):
        assert model.get_layer("head_dense1").units == kw["dense"][0]


def test_uint8_and_float_inputs_agree():
    model = build_model(ModelConfig(filters=[8, 16]))
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    p8 = np.asarray(model(x, training=False))
    pf = np.asarray(model(x.astype("float32"), training=False))
    assert p8.shape == (5, 1) and np.allclose(p8, pf, atol=1e-6)
    assert ((p8 > 0) & (p8 < 1)).all()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_save_load_safe_mode_identical(name, tmp_path):
    model = build_model(ModelConfig(name=name, filters=[8, 16], dense=[16], dropout=0.2))
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    model.fit(x, np.arange(16) % 2, epochs=1, verbose=0)  # moves batch-norm statistics off their defaults
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert np.array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_unknown_model_name_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'small_cnn'"):
        build_model(ModelConfig(name="smal_cnn"))


def test_summary_prints_layers(capsys):
    assert main(["train", "--summary", "model.filters=[8, 16]"]) == 0
    out = capsys.readouterr().out
    assert "block2_conv1" in out and "Total params" in out


@pytest.mark.parametrize(
    ("kw", "side"),
    [
        ({"stem": "whiten", "stem_kernel": 2, "stem_stride": 2}, 16),
        ({"stem_filters": 8, "stem_stride": 2}, 16),
        ({}, 32),
    ],
)
def test_residual_stem_sees_only_what_a_local_mean_misses_and_round_trips(kw, side, tmp_path):
    cfg = ModelConfig(filters=[8, 16], residual_filters=6, **kw)
    model = build_model(cfg)
    plain = build_model(ModelConfig(filters=[8, 16], **kw))
    first = plain.get_layer("stem_act").output.shape[-1] if kw else 3
    assert model.get_layer("stems").output.shape[1:] == (side, side, first + 6)
    assert model.count_params() > plain.count_params()
    residual = keras.Model(model.input, model.get_layer("residual").output)
    flat = np.full((2, 32, 32, 3), 137, np.uint8)  # a flat image: nothing for the residual stem, borders included
    noisy = np.random.default_rng(2).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert np.abs(np.asarray(residual(flat))).max() < 1e-5
    assert np.abs(np.asarray(residual(noisy))).mean() > 0.1
    model.save(tmp_path / "r.keras")
    loaded = keras.models.load_model(tmp_path / "r.keras", safe_mode=True)
    assert np.allclose(model.predict(noisy, verbose=0), loaded.predict(noisy, verbose=0), atol=1e-6)
