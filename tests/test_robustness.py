"""evaluate --corruptions (the robustness report), --calibrate (temperature scaling), robust augmentations."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest

from cifake.base.metrics import expected_calibration_error
from cifake.cli import main
from cifake.config import load_config
from cifake.data.corruptions import CORRUPTIONS
from cifake.data.listing import Split
from cifake.data.pipelines import train_dataset
from cifake.models.calibrate import apply_temperature, fit_temperature, logits

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rob")
    data = make_dataset(root / "cifake", per_class=60)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", f"train.runs_dir={root}"]
    assert main([*args, "data.fraction=1.0", "train.epochs=3", "train.batch_size=16", "--name", "r"]) == 0
    return root / "r"


@pytest.mark.slow
def test_evaluate_corruptions_reports_every_operation(run, capsys):
    assert main(["evaluate", str(run), "--split", "val", "--corruptions", "all"]) == 0
    out = capsys.readouterr().out
    rob = json.loads((run / "metrics.json").read_text())["evaluate"]["val"]["robustness"]
    assert {r["operation"] for r in rob["battery"]} == set(CORRUPTIONS)
    assert len(rob["battery"]) == sum(len(c.levels) for c in CORRUPTIONS.values())
    for r in rob["battery"]:
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["roc_auc"] <= 1
    assert rob["worst"]["accuracy"] == min(r["accuracy"] for r in rob["battery"])
    assert "worst case:" in out and "jpeg:30" in out
    assert (run / "eval-val" / "robustness.png").stat().st_size > 10_000


def test_bad_corruption_spec_fails_before_scoring(run, capsys):
    assert main(["evaluate", str(run), "--split", "val", "--corruptions", "jpeg:500"]) == 2
    assert "not a valid level" in capsys.readouterr().err


def test_temperature_fit_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 20_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)  # calibrated at T = 1
    overconfident = 1 / (1 + np.exp(-2.5 * z))  # as if the logits were 2.5x too large
    t = fit_temperature(overconfident, y)
    assert t == pytest.approx(2.5, rel=0.06)
    fixed = apply_temperature(overconfident, t)
    assert expected_calibration_error(y, fixed) < expected_calibration_error(y, overconfident) / 3
    assert np.array_equal(fixed >= 0.5, overconfident >= 0.5)  # labels unchanged


@pytest.mark.slow
def test_calibrate_folds_the_temperature_into_a_new_checkpoint(run, capsys):
    assert main(["evaluate", str(run), "--split", "val", "--calibrate", "--no-plots"]) == 0
    out = capsys.readouterr().out
    cal = json.loads((run / "metrics.json").read_text())["evaluate"]["val"]["calibration"]
    assert cal["ece_after"] <= cal["ece_before"] + 1e-9 and "ECE" in out
    orig = keras.models.load_model(run / "best.keras", safe_mode=True)
    new = keras.models.load_model(run / "best-calibrated.keras", safe_mode=True)  # built-in layers only
    x = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3)).astype("float32")
    p, q = orig.predict(x, verbose=0).ravel(), new.predict(x, verbose=0).ravel()
    assert np.allclose(q, apply_temperature(p, cal["temperature"], cal["bias"]), atol=1e-4)
    assert main(["evaluate", str(run), "--split", "train", "--calibrate"]) == 2

    def val_report() -> dict:
        return json.loads((run / "metrics.json").read_text())["evaluate"]["val"]

    # the calibrated file evaluated again (threshold, battery) keeps the record of its calibration ...
    assert main(["evaluate", str(run / "best-calibrated.keras"), "--split", "val", "--no-plots"]) == 0
    assert val_report()["calibration"] == cal and val_report()["checkpoint"].endswith("best-calibrated.keras")
    # ... which another checkpoint's evaluation does not inherit
    assert main(["evaluate", str(run / "best.keras"), "--split", "val", "--no-plots"]) == 0
    assert "calibration" not in val_report()


def test_platt_fit_recovers_a_known_scale_and_shift():
    from cifake.models.calibrate import fit_platt

    rng = np.random.default_rng(1)
    z = rng.normal(0, 3, 40_000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-z))).astype(float)
    skewed = 1 / (1 + np.exp(-(2.0 * z + 1.5)))  # the model's logit is 2z + 1.5: fix with T = 2, b = -0.75
    t, b = fit_platt(skewed, y)
    assert t == pytest.approx(2.0, rel=0.05) and b == pytest.approx(-0.75, abs=0.08)
    assert expected_calibration_error(y, apply_temperature(skewed, t, b)) < 0.01


def test_folding_divides_the_logit_by_the_temperature():
    from cifake.models.calibrate import fold_into_model

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    images = np.random.default_rng(2).integers(0, 256, (32, 32, 32, 3)).astype("float32")
    before = model.predict(images, verbose=0).ravel()
    fold_into_model(model, 2.5, 0.3)
    after = model.predict(images, verbose=0).ravel()
    assert np.allclose(logits(after), logits(before) / 2.5 + 0.3, atol=1e-4)


def test_robust_augmentations_are_seeded_and_resume_exactly():
    rng = np.random.default_rng(0)
    split = Split(
        rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), np.repeat([0, 1], 32).astype(np.int32), [""] * 64
    )
    cfg = load_config(None, ["augment.jpeg=0.5", "augment.blur=0.5", "augment.resize=0.5", "augment.noise=0.5"]).augment

    def batches(**kw):
        return [(x.numpy(), y.numpy()) for x, y in train_dataset(split, 16, seed=3, epochs=2, robust=cfg, **kw)]

    full, again, resumed = batches(), batches(), batches(initial_epoch=1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(full, again, strict=True))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(full[4:], resumed, strict=True))
    plain = [x.numpy() for x, _ in train_dataset(split, 16, seed=3, epochs=2)]
    changed = np.mean([np.any(a[0] != b, axis=(1, 2, 3)).mean() for a, b in zip(full, plain, strict=True)])
    assert 0.5 < changed < 1.0  # each op at p=0.5: most images touched by at least one, not all


def test_jpeg_quality_range_must_be_ordered(capsys):
    assert main(["config", "augment.jpeg_quality_min=90", "augment.jpeg_quality_max=40"]) == 2
    assert "is above augment.jpeg_quality_max" in capsys.readouterr().err


def test_predict_reports_original_sizes_and_warns_once_about_resizing(tmp_path, capfd):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "native.png")
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / f"photo{i}.png")
    out = tmp_path / "p.csv"
    assert main(["predict", str(tmp_path), "--out", str(out)]) == 0
    err = capfd.readouterr().err
    assert err.count("were not 32x32") == 1 and "3 of 4 image(s)" in err
    import csv

    with open(out) as f:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert (rows["native.png"]["width"], rows["native.png"]["height"]) == ("32", "32")
    assert (rows["photo0.png"]["width"], rows["photo0.png"]["height"]) == ("64", "48")
    assert main(["predict", str(tmp_path / "native.png")]) == 0
    assert "were not 32x32" not in capfd.readouterr().err


def test_color_augmentation_moves_brightness_contrast_and_saturation_both_ways_and_resumes():
    """augment.color: per image, brightness, contrast and saturation change by factors in 1 +- strength."""
    from cifake.base.tfutil import import_tf
    from cifake.data.augment import _color

    tf = import_tf()
    rng = np.random.default_rng(1)
    x = tf.constant(rng.uniform(60, 190, (256, 32, 32, 3)), tf.float32)
    seed = tf.constant([5, 9], tf.int64)
    out = _color(tf, x, 0.4, 1.0, seed).numpy()
    assert np.array_equal(out, _color(tf, x, 0.4, 1.0, seed).numpy())  # seeded
    assert out.min() >= 0 and out.max() <= 255
    ratio = out.mean(axis=(1, 2, 3)) / x.numpy().mean(axis=(1, 2, 3))
    assert ratio.min() < 0.85 and ratio.max() > 1.15  # darker and brighter images
    assert ratio.min() > 0.55 and ratio.max() < 1.5  # within the drawn range (plus contrast/saturation spill)
    spread = out.std(axis=(1, 2, 3)) / x.numpy().std(axis=(1, 2, 3))
    assert spread.min() < 0.8 and spread.max() > 1.2  # flatter and punchier images
    untouched = _color(tf, x, 0.4, 0.0, seed).numpy()
    assert np.array_equal(untouched, x.numpy())  # share 0: nothing changes
    split = Split(
        rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), np.repeat([0, 1], 16).astype(np.int32), [""] * 32
    )
    cfg = load_config(None, ["augment.color=0.7"]).augment
    full = [x.numpy() for x, _ in train_dataset(split, 8, seed=3, epochs=2, robust=cfg)]
    resumed = [x.numpy() for x, _ in train_dataset(split, 8, seed=3, epochs=2, initial_epoch=1, robust=cfg)]
    assert all(np.array_equal(a, b) for a, b in zip(full[4:], resumed, strict=True))


def test_ease_off_lowers_every_share_in_the_last_epochs_only_and_resumes_exactly():
    from cifake.data.augment import ease_factor

    cfg = load_config(None, ["train.epochs=6", "augment.ease_off_epochs=3", "augment.ease_off_to=0.0"]).augment
    factors = [round(float(ease_factor(e, 6, cfg)), 4) for e in range(6)]
    assert factors == [1.0, 1.0, 1.0, round(2 / 3, 4), round(1 / 3, 4), 0.0]
    assert float(ease_factor(5, 6, load_config(None, []).augment)) == 1.0  # off by default

    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), np.zeros(64, np.int32), [""] * 64)
    cfg = load_config(
        None, ["train.epochs=2", "augment.noise=1.0", "augment.ease_off_epochs=1", "augment.ease_off_to=0.0"]
    ).augment
    batches = [x.numpy() for x, _ in train_dataset(split, 64, seed=3, epochs=2, robust=cfg)]
    # epoch 0: every image noised (share 1.0); epoch 1 (eased to 0): every image clean, just reordered
    originals = {split.images[i].tobytes() for i in range(64)}
    assert not any(img.tobytes() in originals for img in batches[0])
    assert all(img.tobytes() in originals for img in batches[1])
    resumed = [x.numpy() for x, _ in train_dataset(split, 64, seed=3, epochs=2, initial_epoch=1, robust=cfg)]
    assert np.array_equal(resumed[0], batches[1])
    with pytest.raises(Exception, match="ease_off_epochs"):
        load_config(None, ["train.epochs=2", "augment.ease_off_epochs=3"])
