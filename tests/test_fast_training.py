"""Fast training: the airbench model, MACs, the whitening stem, EMA, the triangle schedule, alternating
flips, TTA views, and exact resume with every new key on."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from cifake.cli import main
from cifake.config import Config, ModelConfig, load_config
from cifake.data.listing import Split
from cifake.data.pipelines import train_dataset
from cifake.models.detector import predict_images, predict_tta, tta_views
from cifake.models.registry import build_model, macs
from cifake.models.whiten import fit_whitening, whitening_weights
from cifake.training.schedule import lr_at

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
RECIPES = ["fast.yaml", "small_cnn.yaml", "best.yaml", "detector.yaml"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("fast") / "cifake", per_class=60)


def test_macs_of_the_notebook_model_by_hand():
    # conv 3->32 3x3 valid on 32x32 (30x30 out), conv 32->32 on 15x15 (13x13 out), dense 6*6*32->64, dense 64->1
    expected = 30 * 30 * 27 * 32 + 13 * 13 * 288 * 32 + 1152 * 64 + 64
    assert macs(build_model(ModelConfig(name="notebook_cnn"))) == expected


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_are_under_a_million_parameters(recipe):
    model = build_model(load_config(REPO / "configs" / recipe).model)
    assert model.count_params() < 1_000_000
    assert macs(model) > 0


@pytest.mark.parametrize("stem", ["conv", "whiten"])
def test_airbench_keeps_the_model_contract(tmp_path, stem):
    cfg = ModelConfig(name="airbench", stem=stem, stem_filters=16, filters=[16, 32], convs_per_block=2)
    model = build_model(cfg)
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names)) and {"stem_conv", "block1_conv1", "block2_conv2", "p_fake"} <= set(names)
    images = np.random.default_rng(0).integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    fit_whitening(model, images, seed=0)
    p_uint8 = np.asarray(model(images, training=False))
    p_float = np.asarray(model(images.astype(np.float32), training=False))
    assert p_uint8.shape == (64, 1) and p_uint8.dtype == np.float32
    assert np.allclose(p_uint8, p_float, atol=1e-6)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(np.asarray(again(images, training=False)), p_uint8, atol=1e-6)
    assert again.get_layer("stem_conv").trainable == (stem == "conv")


def test_whitening_is_the_same_for_the_same_seed_and_whitens():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (2000, 32, 32, 1), dtype=np.int16)  # correlated channels, as in photos
    images = np.clip(base + rng.integers(-20, 21, (2000, 32, 32, 3)), 0, 255).astype(np.uint8)
    k1, b1 = whitening_weights(images, 2, 1, seed=3)
    k2, b2 = whitening_weights(images, 2, 1, seed=3)
    k3, _ = whitening_weights(images, 2, 1, seed=4)
    assert np.array_equal(k1, k2) and np.array_equal(b1, b2)
    assert not np.array_equal(k1, k3)  # another seed samples other images (2000 x 961 patches > the sample)
    assert k1.shape == (2, 2, 3, 24)
    # the first half of the channels are whitened patches: identity covariance, zero mean, on the images
    x = images[:300].astype(np.float64) / 127.5 - 1
    win = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(1, 2)).transpose(0, 1, 2, 4, 5, 3)
    out = win.reshape(-1, 12) @ k1.reshape(12, 24)[:, :12] + b1[:12]
    assert np.abs(out.mean(axis=0)).max() < 0.05
    assert np.allclose(np.cov(out, rowvar=False), np.eye(12), atol=0.1)


def test_triangle_schedule():
    cfg = Config().train
    cfg.lr, cfg.warmup_epochs, cfg.schedule = 1.0, 2.0, "triangle"
    lrs = [lr_at(s, 1000, 100, cfg) for s in range(1000)]
    assert lrs[0] == pytest.approx(0.005) and lrs[199] == pytest.approx(1.0)
    assert lrs[600] == pytest.approx(0.5) and lrs[-1] == pytest.approx(1 / 800)
    assert all(a <= b for a, b in itertools.pairwise(lrs[:200]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[200:]))


def test_alternating_flips_mirror_each_image_every_other_epoch():
    n = 32
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    split = Split(images, np.arange(n, dtype=np.int32), [""] * n)  # labels carry the index of each image
    batches = list(train_dataset(split, n, seed=5, epochs=3, flip=True, alternate_flip=True))
    seen = []
    for x, y in batches:
        x, idx = x.numpy(), y.numpy().ravel().astype(int)
        mirrored = np.array([not np.array_equal(x[j], images[i]) for j, i in enumerate(idx)])
        for j, i in enumerate(idx):  # every view is the image or its mirror
            assert np.array_equal(x[j], images[i][:, ::-1] if mirrored[j] else images[i])
        seen.append(dict(zip(idx, mirrored, strict=True)))
    assert 0 < sum(seen[0].values()) < n  # epoch 1: a coin per image
    assert all(seen[1][i] != seen[0][i] and seen[2][i] == seen[0][i] for i in range(n))
    resumed = list(train_dataset(split, n, seed=5, epochs=3, initial_epoch=2, flip=True, alternate_flip=True))
    assert np.array_equal(resumed[0][0].numpy(), batches[2][0].numpy())


def test_tta_is_the_mean_of_its_views():
    model = build_model(ModelConfig(filters=[8, 16]))
    images = np.random.default_rng(2).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    views = tta_views(images, "shift")
    assert len(views) == 6 and len(tta_views(images, "flip")) == 2 and len(tta_views(images, False)) == 1
    assert np.array_equal(views[1], images[:, :, ::-1])
    assert np.array_equal(views[2][:, 1:, 1:], images[:, :-1, :-1])  # moved one pixel down-right
    assert np.array_equal(views[3][:, :-1, :-1], images[:, 1:, 1:])  # and up-left
    expected = np.mean([predict_images(model, v) for v in views], axis=0)
    assert np.allclose(predict_tta(model, images, tta="shift"), expected, atol=1e-6)
    assert np.allclose(predict_tta(model, images, tta=True), predict_tta(model, images, tta="flip"))


KEYS = [
    "model.name=airbench",
    "model.stem=whiten",
    "model.filters=[8, 16]",
    "model.convs_per_block=2",
    "train.ema=0.9",
    "train.optimizer=sgd",
    "train.lr=0.05",
    "train.schedule=triangle",
    "train.warmup_epochs=0.5",
    "train.label_smoothing=0.1",
    "augment.flip=true",
    "augment.alternate_flip=true",
    "train.mixed_precision=off",
]


def _train(data_dir: Path, runs: Path, name: str, *extra: str) -> Path:
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data_dir}"]
    args += [f"train.runs_dir={runs}", "data.fraction=1.0", "train.batch_size=16", *KEYS, *extra, "--name", name]
    assert main(args) == 0
    return runs / name


def _rows(run: Path) -> list[dict]:
    with open(run / "results.csv") as f:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]


def test_every_new_key_resumes_exactly(data_dir, tmp_path, capsys, monkeypatch):
    import cifake.training.train as train_module

    whole = _train(data_dir, tmp_path / "runs", "whole", "train.epochs=3")
    assert "multiply-accumulates per image" in capsys.readouterr().out
    assert json.loads((whole / "metrics.json").read_text())["macs"] > 0

    real = train_module.format_row

    def interrupt_after_epoch_1(row, epochs):  # Ctrl-C once epoch 1's files are written
        if row["epoch"] == 1:
            raise KeyboardInterrupt
        return real(row, epochs)

    monkeypatch.setattr(train_module, "format_row", interrupt_after_epoch_1)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data_dir}"]
    args += [f"train.runs_dir={tmp_path / 'runs'}", "data.fraction=1.0", "train.batch_size=16", *KEYS]
    assert main([*args, "train.epochs=3", "--name", "cut"]) == 130
    monkeypatch.setattr(train_module, "format_row", real)
    cut = tmp_path / "runs" / "cut"
    assert len(_rows(cut)) == 1
    assert main(["train", "--resume", str(cut)]) == 0
    assert _rows(cut) == _rows(whole)
    a = keras.models.load_model(whole / "last.keras", safe_mode=True)
    b = keras.models.load_model(cut / "last.keras", safe_mode=True)
    assert all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_ema_weights_are_the_ones_validated_and_saved(data_dir, tmp_path):
    from cifake.training.train import averaged_weights

    one = _train(data_dir, tmp_path / "runs", "one", "train.epochs=1")  # epoch 1 is the best epoch
    last = keras.models.load_model(one / "last.keras", safe_mode=True)
    best = keras.models.load_model(one / "best.keras", safe_mode=True)
    averaged = averaged_weights(last)  # the optimizer state in last.keras carries the average
    assert averaged is not None
    assert all(np.allclose(x, y) for x, y in zip(best.get_weights(), averaged, strict=True))
    assert not all(np.allclose(x, y) for x, y in zip(best.get_weights(), last.get_weights(), strict=True))
    metrics = json.loads((one / "metrics.json").read_text())
    with open(one / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert metrics["accuracy"] == pytest.approx(float(row["val_accuracy"]), abs=1e-6)  # validated = saved


def test_tta_shift_from_the_cli(data_dir, tmp_path, capsys):
    run = _train(data_dir, tmp_path / "runs", "t", "train.epochs=1")
    capsys.readouterr()
    assert (
        main(["evaluate", str(run), "--split", "val", "--tta", "shift", "--no-plots", "--out", str(tmp_path / "ev")])
        == 0
    )
    report = json.loads((tmp_path / "ev" / "metrics.json").read_text())["evaluate"]["val"]
    assert report["tta"] == "shift"
    assert main(["predict", str(data_dir / "train" / "FAKE"), "--model", str(run), "--tta", "shift"]) == 0
    assert main(["predict", str(data_dir / "train" / "FAKE"), "--model", str(run), "--tta", "wobble"]) == 2


def test_explain_works_on_the_airbench_model(data_dir, tmp_path):
    run = _train(data_dir, tmp_path / "runs", "x", "train.epochs=1")
    image = sorted((data_dir / "train" / "FAKE").iterdir())[0]
    assert main(["explain", str(run), str(image), "--out", str(tmp_path / "cam")]) == 0
    assert [p.suffix for p in (tmp_path / "cam").iterdir()] == [".png"]
