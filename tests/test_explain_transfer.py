"""Grad-CAM for every registry model, and the keras.applications transfer family."""

from __future__ import annotations

import urllib.error

import keras
import numpy as np
import pytest
from PIL import Image

from cifake.base.errors import UserError
from cifake.cli import main
from cifake.config import Config, ModelConfig
from cifake.models.gradcam import find_target_layer, gradcam
from cifake.models.registry import REGISTRY, build_model
from cifake.training.train import set_backbone_frozen, stages

from .conftest import synth_image

SMALL = {"filters": [8, 16], "input_size": 96}  # transfer backbones: 96 px gives a 3x3 map


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_gradcam_shape_and_input_dependence(name):
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(name=name, **SMALL))
    rng = np.random.default_rng(0)
    x = np.stack([synth_image(rng, True), synth_image(rng, False)])
    x[0, :16] = 255  # a bright top half: a different input must give a different map
    cams, p = gradcam(model, x)
    layer = find_target_layer(model)
    h, w = layer.output.shape[1:3]
    assert cams.shape == (2, h, w) and p.shape == (2,)
    assert np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1
    assert np.allclose(p, model.predict(x, verbose=0).ravel(), atol=1e-4)
    if cams[0].max() > 0 or cams[1].max() > 0:
        assert not np.allclose(cams[0], cams[1])


@pytest.mark.parametrize("stem", ["whiten", "conv", "none"])
def test_gradcam_of_a_model_with_a_residual_stem(stem):
    """Two stems merge before the convs (the shipped detector's graph): not a chain of layers."""
    keras.utils.set_random_seed(0)
    cfg = ModelConfig(stem=stem, stem_filters=8 if stem == "conv" else 0, residual_filters=4, filters=[8, 16])
    model = build_model(cfg)
    assert "stems" in [layer.name for layer in model.layers]
    rng = np.random.default_rng(0)
    x = np.stack([synth_image(rng, True), synth_image(rng, False)])
    cams, p = gradcam(model, x)
    h, w = find_target_layer(model).output.shape[1:3]
    assert cams.shape == (2, h, w) and np.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1
    assert np.allclose(p, model.predict(x, verbose=0).ravel(), atol=1e-4)
    cams_stem, _ = gradcam(model, x, "stems")  # a layer inside the branching part of the graph
    assert cams_stem.shape[0] == 2 and np.isfinite(cams_stem).all()


def test_gradcam_of_trained_like_model_changes_with_input():
    keras.utils.set_random_seed(1)  # an unseeded init can give an all-zero map (ReLU of a negative sum) for both
    model = build_model(ModelConfig(filters=[8, 16]))
    rng = np.random.default_rng(1)
    a = synth_image(rng, True)[None]
    b = a.copy()
    b[:, :, :16] = 0
    ca, _ = gradcam(model, a)
    cb, _ = gradcam(model, b)
    assert ca.shape == cb.shape == (1, 16, 16)  # block2_act: after one 2x2 pooling
    assert not np.allclose(ca, cb)


def test_explain_cli_writes_overlays(tmp_path, capsys):
    model = build_model(ModelConfig(filters=[8, 16]))
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(2)
    for i in range(2):
        Image.fromarray(synth_image(rng, bool(i))).save(tmp_path / f"img{i}.jpg")
    out = tmp_path / "cams"
    assert (
        main(
            [
                "explain",
                str(tmp_path / "m.keras"),
                str(tmp_path / "img0.jpg"),
                str(tmp_path / "img1.jpg"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == ["img0_gradcam.png", "img1_gradcam.png"]
    assert Image.open(out / files[0]).size[0] >= 400  # upscaled so a person can see it
    assert main(["explain", str(tmp_path / "m.keras"), str(tmp_path / "img0.jpg"), "--layer", "nope"]) == 2
    assert "4-D layers: " in capsys.readouterr().err


def test_transfer_weights_options(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="expected none, imagenet, or the path"):
        build_model(ModelConfig(name="mobilenet_v3_small", weights=str(tmp_path / "missing.h5")))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    import keras.src.applications.mobilenet_v3 as mv3

    monkeypatch.setattr(mv3.file_utils, "get_file", offline, raising=False)
    with pytest.raises(UserError, match="could not fetch ImageNet weights for MobileNetV3Small"):
        build_model(ModelConfig(name="mobilenet_v3_small", weights="imagenet", input_size=32))


def test_transfer_local_weights_file(tmp_path):
    donor = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, include_preprocessing=True
    )
    donor.layers[3].set_weights([w + 0.5 for w in donor.layers[3].get_weights()])
    path = tmp_path / "backbone.weights.h5"
    donor.save_weights(path)
    model = build_model(ModelConfig(name="mobilenet_v3_small", weights=str(path), input_size=32))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert np.allclose(backbone.layers[3].get_weights()[0], donor.layers[3].get_weights()[0])


def test_freeze_then_finetune_stages():
    cfg = Config()
    cfg.model = ModelConfig(name="mobilenet_v3_small", input_size=32, freeze_epochs=2)
    cfg.train.epochs = 5
    assert stages(cfg, 0) == [(0, 2), (2, 5)]
    assert stages(cfg, 3) == [(3, 5)]
    model = build_model(cfg.model)
    from cifake.training.train import compile_model

    compile_model(model, cfg)
    trainable_all = len(model.trainable_weights)
    set_backbone_frozen(model, True, cfg, step=0)
    assert len(model.trainable_weights) < trainable_all
    set_backbone_frozen(model, False, cfg, step=40)
    assert len(model.trainable_weights) == trainable_all
    assert int(model.optimizer.iterations.numpy()) == 40


def test_from_scratch_backbone_uses_fast_batchnorm_statistics():
    model = build_model(ModelConfig(name="mobilenet_v3_small", input_size=32))
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    momenta = {layer.momentum for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)}
    assert momenta == {0.9}


def test_explain_takes_folders_and_keeps_images_with_the_same_stem_apart(tmp_path, capsys):
    model = build_model(ModelConfig(filters=[8, 16]))
    model.save(tmp_path / "m.keras")
    rng = np.random.default_rng(3)
    for sub in ("a", "b"):
        (tmp_path / "imgs" / sub).mkdir(parents=True)
        Image.fromarray(synth_image(rng, sub == "b")).save(tmp_path / "imgs" / sub / "photo.png")
    out = tmp_path / "cams"
    assert main(["explain", str(tmp_path / "m.keras"), str(tmp_path / "imgs"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo-2_gradcam.png", "photo_gradcam.png"]
    printed = capsys.readouterr().out
    assert "a/photo.png: P(FAKE)" in printed and "b/photo.png: P(FAKE)" in printed
    first, second = (np.asarray(Image.open(out / n)) for n in ("photo_gradcam.png", "photo-2_gradcam.png"))
    assert first.shape == second.shape and not np.array_equal(first, second)  # two figures, not one written twice
    assert main(["explain", str(tmp_path / "m.keras"), str(tmp_path / "nothing-here")]) == 2
