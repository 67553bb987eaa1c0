"""The Python API: cifake.load_detector().predict(...) on every input kind scores what `cifake predict` scores."""

from __future__ import annotations

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cifake
from cifake.base.errors import UserError
from cifake.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Images of several sizes, formats and modes, as users have them."""
    root = tmp_path_factory.mktemp("api")
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(root / "a.png")
    Image.fromarray(rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)).save(root / "b.jpg", quality=90)
    Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA").save(root / "c.png")
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), "L").save(root / "d.bmp")
    return root


def cli_scores(folder: Path, tmp_path: Path) -> dict[str, float]:
    out = tmp_path / "p.csv"
    assert main(["predict", str(folder), "--out", str(out)]) == 0
    with open(out) as f:
        return {r["path"]: float(r["p_fake"]) for r in csv.DictReader(f)}


def test_every_input_kind_scores_what_the_cli_scores(folder, tmp_path):
    expected = cli_scores(folder, tmp_path)
    paths = sorted(expected)
    want = np.array([expected[p] for p in paths])
    detector = cifake.load_detector()
    assert detector.path.name == "detector-int8.tflite"  # the same default as `cifake predict`
    assert np.allclose(detector.predict(folder), want, atol=1e-6)  # a folder, in sorted order
    assert np.allclose(detector.predict(str(folder)), want, atol=1e-6)
    assert np.allclose(detector.predict(paths), want, atol=1e-6)  # a list of paths
    assert np.allclose(detector.predict(paths[1]), want[1:2], atol=1e-6)  # one path
    pil = [Image.open(p) for p in paths]
    assert np.allclose(detector.predict(pil), want, atol=1e-6)  # PIL images
    assert np.allclose(detector.predict(pil[3]), want[3:4], atol=1e-6)
    rgb = np.asarray(Image.open(paths[1]).convert("RGB"))  # (48, 40, 3): resized like the CLI
    assert np.allclose(detector.predict(rgb), want[1:2], atol=1e-6)
    same = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in (paths[0], paths[2])])  # (2, 32, 32, 3)
    assert np.allclose(detector.predict(same), want[[0, 2]], atol=1e-6)
    assert np.allclose(detector.predict(same.astype(np.float32)), want[[0, 2]], atol=1e-6)
    p = detector.predict(folder)
    assert p.dtype == np.float32 and p.shape == (4,)
    assert list(detector.label(p)) == ["FAKE" if x >= detector.threshold else "REAL" for x in p]


def test_threshold_label_card_and_the_keras_file(folder):
    detector = cifake.load_detector(threshold=0.9)
    assert detector.threshold == 0.9 and detector.threshold_source == "given"
    shipped = cifake.load_detector()  # its threshold was chosen on validation (pretrained/threshold.json)
    assert 0 < shipped.threshold < 1 and "threshold.json (chosen on val)" in shipped.threshold_source
    t = shipped.threshold
    assert list(shipped.label([t - 0.01, t, t + 0.01])) == ["REAL", "FAKE", "FAKE"]
    assert cifake.load_detector().card["label_agreement"] >= 0.995  # the int8 export's parity card
    keras = cifake.load_detector("pretrained")
    assert keras.is_keras and keras.card  # detector.json: recipe, validation figures
    int8 = cifake.load_detector()
    # the export was made from, and checked against, this very file (its card names the file's hash)
    assert int8.card["source_sha256"] == hashlib.sha256(keras.path.read_bytes()).hexdigest()
    assert int8.predict(folder).shape == keras.predict(folder).shape == (4,)
    assert {"load_detector", "Detector"} <= set(cifake.__all__)


@pytest.mark.parametrize(
    ("bad", "said"),
    [
        (np.zeros((32, 32)), "expected RGB pixels"),
        (np.full((1, 32, 32, 3), 300.0), "expected pixels 0..255"),
        (123, "cannot score int"),
        ("no/such/file.png", "no such file or folder"),
    ],
)
def test_bad_inputs_are_one_clear_error(bad, said):
    with pytest.raises(UserError, match=said):
        cifake.load_detector().predict(bad)


def test_a_litert_prediction_never_imports_tensorflow(folder):
    code = (
        "import sys, cifake; from cifake.cli import main\n"
        f"p = cifake.load_detector().predict({str(folder)!r})\n"
        f"assert main(['predict', {str(folder / 'a.png')!r}]) == 0\n"
        "print('TF' if 'tensorflow' in sys.modules else 'NO-TF', len(p))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["NO-TF", "4"]


def test_one_auc_the_trainers_metrics_equal_evaluates(tmp_path, capsys):
    """metrics.json at the end of training holds the exact figures `cifake evaluate --split val` prints."""
    import json

    from .conftest import make_dataset

    repo = Path(__file__).resolve().parents[1]
    data = make_dataset(tmp_path / "data", per_class=40)
    argv = ["train", "--config", str(repo / "configs" / "smoke.yaml"), f"data.dir={data}", "data.fraction=1.0"]
    assert main([*argv, f"train.runs_dir={tmp_path / 'runs'}", "train.batch_size=16", "--name", "r"]) == 0
    run = tmp_path / "runs" / "r"
    trained = json.loads((run / "metrics.json").read_text())
    assert "exact" in trained["auc_kind"]
    assert main(["evaluate", str(run), "--split", "val", "--no-plots"]) == 0
    report = json.loads((run / "metrics.json").read_text())["evaluate"]["val"]
    assert trained["auc"] == report["roc_auc"]
    assert trained["accuracy"] == report["accuracy"] and trained["loss"] == report["log_loss"]
    assert f"ROC AUC {trained['auc']:.4f}" in capsys.readouterr().out


def test_calling_a_detector_gives_results_with_paths_and_skips_unreadable_files(folder, tmp_path):
    detector = cifake.load_detector()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for f in folder.iterdir():
        (mixed / f.name).write_bytes(f.read_bytes())
    (mixed / "e.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    with pytest.warns(UserWarning) as said:
        results = detector(mixed)
    messages = " ".join(str(w.message) for w in said)
    assert "skipped 1 file(s)" in messages and "were resized" in messages  # b.jpg and d.bmp are not 32x32
    assert len(results) == 4 and [Path(p).name for p in results.paths] == ["a.png", "b.jpg", "c.png", "d.bmp"]
    assert [Path(p).name for p, _ in results.skipped] == ["e.png"]
    np.testing.assert_allclose(results.p_fake, detector.predict(folder), atol=1e-6)
    assert results.labels == list(detector.label(results.p_fake))
    assert results[1].size == (40, 48) and results[1].resized and not results[0].resized
    with open(results.to_csv(tmp_path / "r.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["label"] for r in rows] == results.labels and rows[1]["width"] == "40"
    with pytest.raises(UserError, match="1 of 5 file"):
        detector(mixed, errors="raise")
    with pytest.raises(UserError, match="errors must be"):
        detector(mixed, errors="ignore")
    arrays = detector(np.zeros((2, 32, 32, 3), np.uint8))
    assert arrays.paths == [None, None] and "2 image(s)" in repr(arrays)


def test_predict_warns_when_it_resizes_as_the_command_line_does(folder):
    detector = cifake.load_detector()
    with pytest.warns(UserWarning, match="2 of 4 image"):
        detector.predict(folder)


def test_train_takes_a_recipe_file_and_keyword_overrides(tmp_path):
    from cifake.config import ConfigError

    from .conftest import make_dataset

    data = make_dataset(tmp_path / "data", per_class=60)
    recipe = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
    run = cifake.train(
        recipe, dir=str(data), fraction=1.0, val_fraction=0.2, epochs=1, runs_dir=str(tmp_path / "runs"),
        tensorboard=False, train__name="api",
    )  # fmt: skip
    assert run == tmp_path / "runs" / "api" and (run / "metrics.json").is_file()
    assert "epochs: 1" in (run / "config.yaml").read_text()
    with pytest.raises(ConfigError, match="ambiguous; write model__name or train__name"):
        cifake.train(recipe, name="x")


def test_the_card_has_the_same_keys_whatever_the_model_file(tmp_path):
    from cifake.models.detector import CARD_KEYS

    shipped, int8 = cifake.load_detector("pretrained"), cifake.load_detector("pretrained-int8")
    keras_model = shipped.model
    keras_model.save(tmp_path / "bare.keras")  # a file with no card, no run around it
    bare = cifake.load_detector(tmp_path / "bare.keras")
    for d, kind in ((shipped, "shipped detector"), (int8, "export"), (bare, "model file")):
        assert set(CARD_KEYS) <= set(d.card) and d.card["kind"] == kind and d.card["threshold"] == d.threshold
    assert shipped.card["accuracy"] > 0.9 and int8.card["accuracy"] > 0.9 and bare.card["accuracy"] is None
    assert int8.card["format"] == "litert" and shipped.card["format"] == "keras"
    assert int8.card["label_agreement"] >= 0.995 and shipped.card["label_agreement"] is None
