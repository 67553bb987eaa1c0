"""cifake export: every format matches the Keras model it came from, and .tflite runs wherever a model is accepted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cifake.cli import main
from cifake.models import detector, presets
from cifake.models.litert import LiteModel

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, finished run dir) of a small model trained on the generated set."""
    root = tmp_path_factory.mktemp("export")
    data = make_dataset(root / "cifake", per_class=80)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}"]
    args += [f"train.runs_dir={root / 'runs'}", "data.fraction=1.0", "train.epochs=3", "train.batch_size=16"]
    assert main([*args, "--name", "m"]) == 0
    return data, root / "runs" / "m"


def _card(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())


def _csv(path: Path) -> dict[str, tuple[float, str]]:
    with open(path) as f:
        return {r["path"]: (float(r["p_fake"]), r["label"]) for r in csv.DictReader(f)}


@pytest.mark.parametrize(
    ("fmt", "extra", "name", "tolerance"),
    [
        ("litert", [], "m.tflite", 1e-4),  # float32: the same arithmetic, reordered
        ("litert", ["--int8-activations"], "m-int8.tflite", 0.08),  # 8-bit weights and activations
        ("litert", ["--int8"], "m-int8.tflite", 0.03),  # 8-bit weights, float activations
        ("savedmodel", [], "m-savedmodel", 1e-5),
        ("onnx", [], "m.onnx", 1e-4),
    ],
)
def test_every_format_is_checked_against_keras_and_carries_a_card(run, tmp_path, fmt, extra, name, tolerance, capsys):
    _, run_dir = run
    out = tmp_path / name
    assert main(["export", str(run_dir), "--format", fmt, *extra, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "labels agree on" in printed and "accuracy keras" in printed
    card = _card(out)
    assert card["format"] == fmt and card["int8"] == bool(extra)
    assert card["images"] == 32  # the whole seeded validation split: 20% of 160 (smoke.yaml)
    assert card["max_abs_delta"] <= tolerance
    assert card["label_agreement"] >= (0.9 if extra else 1.0)
    assert abs(card["accuracy_export"] - card["accuracy_keras"]) <= (0.1 if extra else 0)
    calibrated = extra == ["--int8-activations"]
    assert (card["calibration"] or "").startswith("128 images of the training split" if calibrated else "")
    assert card["quantization"] == (
        "float32"
        if not extra
        else "full-integer int8 (weights and activations)"
        if calibrated
        else "int8 weights, float activations (dynamic range)"
    )
    assert out.exists() and not list(tmp_path.glob(".*"))  # no staging folder left behind


def test_savedmodel_serves_uint8_and_float_pixels_alike(run, tmp_path):
    import tensorflow as tf

    _, run_dir = run
    out = tmp_path / "sm"
    assert main(["export", str(run_dir), "--format", "savedmodel", "--out", str(out)]) == 0
    loaded = tf.saved_model.load(str(out))
    x = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    a = loaded.serve(tf.constant(x.astype(np.float32))).numpy()
    b = loaded.serve_uint8(tf.constant(x)).numpy()
    assert a.shape == (8, 1) and np.allclose(a, b, atol=1e-6)


def test_int8_below_the_agreement_bar_is_refused_and_not_written(run, tmp_path, monkeypatch, capsys):
    import cifake.tasks.export

    monkeypatch.setattr(cifake.tasks.export, "PARITY_MIN_AGREEMENT", 1.01)  # no export can reach it
    out = tmp_path / "refused.tflite"
    assert main(["export", str(run[1]), "--int8", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "int8 export refused" in err and "labels agree on" in err and "101.0%" in err
    assert list(tmp_path.iterdir()) == []  # neither the model nor its card nor the staging folder


def test_export_refusals_before_any_work(run, tmp_path, capsys):
    _, run_dir = run
    assert main(["export", str(run_dir), "--format", "onnx", "--int8"]) == 2
    assert "--int8" in capsys.readouterr().err
    assert main(["export", str(run_dir / "best.keras"), "--out", str(run_dir / "best.keras")]) == 2
    assert "is the model being exported" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--data-dir", str(tmp_path / "nothing")]) == 2
    assert "validation images" in capsys.readouterr().err
    (tmp_path / "m.tflite").write_bytes(b"not a flatbuffer" * 10)
    assert main(["export", str(tmp_path / "m.tflite")]) == 2  # an export is not a source for another
    assert "needs a Keras model" in capsys.readouterr().err


def test_tflite_runs_in_predict_evaluate_and_is_refused_by_explain(run, tmp_path, capsys):
    data, run_dir = run
    lite = tmp_path / "m.tflite"
    assert main(["export", str(run_dir), "--out", str(lite)]) == 0
    folder = data / "train" / "FAKE"
    assert main(["predict", str(folder), "--model", str(run_dir), "--out", str(tmp_path / "k.csv")]) == 0
    assert main(["predict", str(folder), "--model", str(lite), "--out", str(tmp_path / "l.csv")]) == 0
    keras_rows, lite_rows = _csv(tmp_path / "k.csv"), _csv(tmp_path / "l.csv")
    assert keras_rows.keys() == lite_rows.keys() and len(keras_rows) == 80
    assert max(abs(keras_rows[k][0] - lite_rows[k][0]) for k in keras_rows) < 1e-4
    capsys.readouterr()
    assert main(["evaluate", str(lite), "--data-dir", str(data), "--split", "val", "--no-plots"]) == 0
    assert "val: 32 images" in capsys.readouterr().out
    assert main(["explain", str(lite), str(next(folder.iterdir())), "--out", str(tmp_path / "x")]) == 2
    assert "needs a Keras model" in capsys.readouterr().err


def test_a_file_that_is_not_litert_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    assert main(["predict", str(REPO / "README.md"), "--model", str(bad)]) == 2
    assert "not a loadable LiteRT model" in capsys.readouterr().err


def test_litert_quantizes_uint8_pixels_with_the_models_own_scale(run, tmp_path):
    out = tmp_path / "q.tflite"
    assert main(["export", str(run[1]), "--int8-activations", "--out", str(out)]) == 0
    model = LiteModel(out)
    assert model.quantized and model.input_dtype == np.uint8
    x = np.random.default_rng(1).integers(0, 256, (300, 32, 32, 3), dtype=np.uint8)
    whole = model.predict(x, batch_size=256)  # one full batch and one padded one
    single = np.concatenate([model.predict(x[i : i + 1], batch_size=1) for i in range(0, 300, 37)])
    assert whole.shape == (300,) and np.allclose(whole[::37], single, atol=1e-6)
    assert ((whole >= 0) & (whole <= 1)).all()


def test_predict_defaults_to_the_int8_export_only_when_its_card_shows_parity(tmp_path, monkeypatch):
    lite = tmp_path / "detector-int8.tflite"
    lite.write_bytes(b"x")
    monkeypatch.setattr(detector, "PRETRAINED_INT8", lite)
    assert detector.default_model() == detector.PRETRAINED  # no card: the Keras detector
    card = lite.with_name(lite.name + ".json")
    card.write_text(json.dumps({"label_agreement": 0.99}))
    assert detector.default_model() == detector.PRETRAINED  # below 99.5%
    card.write_text(json.dumps({"label_agreement": 0.999}))
    assert detector.default_model() == lite
    card.write_text("{not json")
    assert detector.default_model() == detector.PRETRAINED


def test_serve_scores_with_a_tflite_model_without_gradcam(tmp_path):
    from PIL import Image

    from cifake.models.presets import PRETRAINED_INT8
    from cifake.tasks.serve import model_choices, score_uploads

    from .conftest import synth_image

    rng = np.random.default_rng(4)
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"u{i}.png"))
        Image.fromarray(synth_image(rng, bool(i % 2))).save(files[-1])
    choices = model_choices([str(PRETRAINED_INT8)])  # checked at start like any model
    assert choices[str(PRETRAINED_INT8)] == PRETRAINED_INT8
    rows, gallery, status = score_uploads(files, PRETRAINED_INT8, 10_000_000, {})
    assert [r[0] for r in rows] == ["u0.png", "u1.png", "u2.png"] and all(0 <= r[1] <= 1 for r in rows)
    assert all("no Grad-CAM for .tflite" in caption for _, caption in gallery)
    assert "Scored 3 image(s)" in status


def test_a_model_trained_in_bfloat16_exports_to_litert(tmp_path, capsys):
    """Forced bf16 (native or emulated): last.keras keeps bf16 ops, which LiteRT cannot convert; export
    converts a float32 copy and checks it against the file."""
    data = make_dataset(tmp_path / "cifake", per_class=40)
    args = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}"]
    args += [f"train.runs_dir={tmp_path / 'runs'}", "data.fraction=1.0", "train.epochs=1", "train.batch_size=16"]
    assert main([*args, "train.mixed_precision=bf16", "--name", "b"]) == 0
    out = tmp_path / "b.tflite"
    last = tmp_path / "runs" / "b" / "last.keras"
    assert main(["export", str(last), "--format", "litert", "--out", str(out)]) == 0
    card = _card(out)
    assert card["label_agreement"] >= 0.9 and card["max_abs_delta"] <= 0.05  # bf16 Keras vs float32 LiteRT
    assert LiteModel(out).predict(np.zeros((2, 32, 32, 3), np.uint8)).shape == (2,)


def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_export_replaces_only_its_own_kind_of_file_and_only_when_told(run, tmp_path, capsys):
    """An output is never an input, never inside the package, and replaces only an export of its format, with --force."""
    _, run_dir = run
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main(["export", str(run_dir), "--out", str(notes)]) == 2
    assert "is not a litert export" in capsys.readouterr().err and notes.read_text() == "my notes"
    shipped = presets.PRETRAINED_DIR / "detector-int8.tflite"
    before = shipped.read_bytes() if shipped.is_file() else None
    assert main(["export", str(run_dir), "--out", str(shipped)]) == 2
    assert "inside the installed package" in capsys.readouterr().err
    assert (shipped.read_bytes() if shipped.is_file() else None) == before
    assert main(["export", str(run_dir), "--out", str(run_dir / "threshold.json")]) == 2
    out = tmp_path / "m.tflite"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    first = out.stat().st_mtime_ns
    assert main(["export", str(run_dir), "--out", str(out)]) == 2
    assert "pass --force to replace it" in capsys.readouterr().err and out.stat().st_mtime_ns == first
    (tmp_path / "m.tflite.json").write_text("not a card")
    assert main(["export", str(run_dir), "--out", str(out), "--force"]) == 2
    assert "is not an export card" in capsys.readouterr().err
    (tmp_path / "m.tflite.json").unlink()
    assert main(["export", str(run_dir), "--out", str(out), "--force"]) == 0
    assert _card(out)["format"] == "litert"


def test_a_killed_exports_staging_folder_is_removed_by_the_next_export(run, tmp_path):
    _, run_dir = run
    out = tmp_path / "k.tflite"
    left = tmp_path / f".k.tflite.{_dead_pid()}.staging"
    left.mkdir()
    (left / "k.tflite").write_bytes(b"half")
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    assert not left.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.tflite", "k.tflite.json"]


def test_int8_weights_keep_the_scores_resolution_and_a_quarter_of_the_size(run, tmp_path):
    """--int8 (dynamic range): float pixels in, float activations, P(FAKE) not in steps of 1/256."""
    full, small = tmp_path / "f.tflite", tmp_path / "w8.tflite"
    assert main(["export", str(run[1]), "--out", str(full)]) == 0
    assert main(["export", str(run[1]), "--int8", "--out", str(small)]) == 0
    model = LiteModel(small)
    x = np.random.default_rng(2).integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    p = model.predict(x)
    steps = np.unique(np.round(p * 256, 6))
    assert model.input_dtype == np.float32 and len(np.unique(p)) > len(steps) / 2
    assert not np.allclose(p * 256, np.round(p * 256), atol=1e-4)  # not on the 1/256 grid
    assert small.stat().st_size < 0.5 * full.stat().st_size
    assert (
        main(["export", str(run[1]), "--int8", "--calibration", str(tmp_path), "--out", str(tmp_path / "x.tflite")])
        == 2
    )
