"""cifake evaluate and cifake predict on generated data, and the detector shipped in the package."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from cifake.cli import main
from cifake.models.detector import model_card
from cifake.models.presets import PRETRAINED

from .conftest import make_dataset, synth_image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir with train and test, finished run dir) trained on the generated set."""
    root = tmp_path_factory.mktemp("ev")
    data = make_dataset(root / "cifake", per_class=100, splits=("train", "test"))
    args = [
        "train",
        "--config",
        str(REPO / "configs" / "smoke.yaml"),
        f"data.dir={data}",
        f"train.runs_dir={root / 'runs'}",
    ]
    assert main([*args, "data.fraction=1.0", "train.epochs=4", "train.batch_size=16", "--name", "m"]) == 0
    return data, root / "runs" / "m"


def test_evaluate_defaults_to_test_and_writes_everything(trained, capsys):
    _, run = trained
    assert main(["evaluate", str(run)]) == 0
    out = capsys.readouterr().out
    assert "test: 200 images, threshold 0.5000 (default)" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert "accuracy" in metrics  # the trainer's own figures are kept
    report = metrics["evaluate"]["test"]
    assert report["accuracy"] > 0.8 and report["roc_auc"] > 0.9
    assert set(report) >= {"fake", "real", "average_precision", "log_loss", "brier", "ece", "confusion", "per_subject"}
    # generated names carry all ten CIFAR-10 subjects: 10 REAL + 10 FAKE each
    assert len(report["per_subject"]) == 10
    assert all(row["images"] == 20 for row in report["per_subject"].values())
    for name in ("confusion.png", "roc_pr.png", "reliability.png", "predictions.csv"):
        assert (run / "eval-test" / name).is_file()
    with open(run / "eval-test" / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 200 and rows[0].keys() == {"path", "p_fake", "label"}


def test_threshold_chosen_on_val_is_used_later(trained, tmp_path, capsys):
    _, run = trained
    assert main(["evaluate", str(run), "--split", "test", "--choose-threshold"]) == 2
    assert "only works on --split val" in capsys.readouterr().err
    assert main(["evaluate", str(run / "best.keras"), "--split", "val", "--choose-threshold", "--no-plots"]) == 0
    chosen = json.loads((run / "threshold.json").read_text())["threshold"]
    capsys.readouterr()
    assert main(["evaluate", str(run), "--split", "test", "--no-plots"]) == 0
    assert f"threshold {chosen:.4f} ({run / 'threshold.json'} (chosen on val))" in capsys.readouterr().out
    assert (
        main(["evaluate", str(run), "--split", "test", "--threshold", "0.9", "--no-plots", "--out", str(tmp_path)]) == 0
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["evaluate"]["test"]["threshold"] == 0.9
    (run / "threshold.json").unlink()


@pytest.mark.parametrize("case", ["missing", "not_keras", "wrong_shape"])
def test_evaluate_bad_checkpoints_exit_2(case, tmp_path, capsys):
    path = tmp_path / "m.keras"
    if case == "not_keras":
        path.write_text("hello")
    elif case == "wrong_shape":
        inp = keras.Input((64, 64, 3))
        keras.Model(inp, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(inp))).save(path)
    assert main(["evaluate", str(path), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    expected = {
        "missing": "checkpoint not found",
        "not_keras": "not a .keras model file",
        "wrong_shape": "cifake models take (N, 32, 32, 3)",
    }[case]
    assert expected in err


def _images_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(5)
    folder = tmp_path / "mine"
    (folder / "nested").mkdir(parents=True)
    Image.fromarray(synth_image(rng, True)).save(folder / "fake.jpg")
    Image.fromarray(synth_image(rng, False)).save(folder / "nested" / "real.jpg")
    rgba = np.dstack([synth_image(rng, True), np.full((32, 32), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(folder / "alpha.png")
    Image.fromarray(np.repeat(np.repeat(synth_image(rng, False), 2, 0), 2, 1)).save(folder / "big.webp", lossless=True)
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (folder / "notes.txt").write_text("not an image, not an image extension: ignored")
    return folder


def test_predict_folder_with_corrupt_and_alpha(trained, tmp_path, capsys):
    _, run = trained
    folder = _images_folder(tmp_path)
    out = tmp_path / "pred.csv"
    assert main(["predict", str(folder), "--model", str(run), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert f"skipped {folder / 'corrupt.jpg'}: not an image this tool can read" in err
    with open(out) as f:
        rows = {Path(r["path"]).name: r for r in csv.DictReader(f)}
    assert set(rows) == {"fake.jpg", "real.jpg", "alpha.png", "big.webp"}
    assert rows["alpha.png"]["label"] == "FAKE" and rows["fake.jpg"]["label"] == "FAKE"
    assert rows["real.jpg"]["label"] == "REAL" and rows["big.webp"]["label"] == "REAL"
    # alpha is dropped exactly as the RGB image would be scored
    Image.open(folder / "alpha.png").convert("RGB").save(tmp_path / "rgb.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "rgb.png"), "--model", str(run)]) == 0
    table = capsys.readouterr().out
    assert f"{float(rows['alpha.png']['p_fake']):.4f}" in table


def test_predict_nothing_to_score(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty")]) == 2
    assert main(["predict", str(tmp_path / "nope.jpg")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_shipped_detector_loads_safely_and_scores(tmp_path, capsys):
    model = keras.models.load_model(PRETRAINED, safe_mode=True)
    x = np.stack([synth_image(np.random.default_rng(0), False)])
    p = model.predict(x, verbose=0)
    assert p.shape == (1, 1) and 0.0 <= float(p[0, 0]) <= 1.0
    assert PRETRAINED.stat().st_size <= 2_800_000  # weights only (no optimizer state): 656k float32 parameters
    card = model_card()
    assert card["validation"]["accuracy"] > 0.95 and card["limitations"]
    Image.fromarray(x[0]).save(tmp_path / "one.jpg")
    assert main(["predict", str(tmp_path / "one.jpg")]) == 0
    assert "one.jpg" in capsys.readouterr().out


def test_robust_is_the_old_name_of_the_one_shipped_detector_and_says_so(tmp_path, capsys):
    from cifake.models.detector import resolve_checkpoint
    from cifake.models.presets import preset

    assert preset("robust").path == PRETRAINED
    assert resolve_checkpoint("robust") == PRETRAINED
    assert "will be removed in the next release" in capsys.readouterr().err
    assert resolve_checkpoint("pretrained") == PRETRAINED and capsys.readouterr().err == ""
    card = model_card()
    rob = card["robustness"]
    assert {r["operation"] for r in rob["battery"]} >= {"jpeg", "blur", "resize", "noise", "brightness", "contrast"}
    assert rob["worst"]["accuracy"] == min(r["accuracy"] for r in rob["battery"])
    x = np.stack([synth_image(np.random.default_rng(0), True)])
    Image.fromarray(x[0]).save(tmp_path / "one.png")
    assert main(["predict", str(tmp_path / "one.png"), "--model", "robust"]) == 0
    out = capsys.readouterr()
    assert "one.png" in out.out and "'robust' now names the one shipped detector" in out.err
