"""No output may replace an input, and no CSV cell may run as a spreadsheet formula."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake.base.text import csv_cell
from cifake.cli import main
from cifake.config import ModelConfig
from cifake.models.registry import build_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "m.keras"
    build_model(ModelConfig(filters=[8])).save(path)
    return path


def _photos(folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = []
    for name in names:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / name)
        out.append(folder / name)
    return out


def test_predict_out_may_not_be_an_input_image(model_file, tmp_path, capsys):
    photo, _ = _photos(tmp_path / "in", ["photo.jpg", "other.png"])
    before = photo.read_bytes()
    assert main(["predict", str(tmp_path / "in"), "--model", str(model_file), "--out", str(photo)]) == 2
    assert "one of the images being scored" in capsys.readouterr().err
    assert photo.read_bytes() == before


def test_predict_out_may_not_be_the_model(model_file, tmp_path, capsys):
    _photos(tmp_path / "in", ["a.jpg"])
    before = model_file.read_bytes()
    assert main(["predict", str(tmp_path / "in"), "--model", str(model_file), "--out", str(model_file)]) == 2
    assert "the model or a file it reads" in capsys.readouterr().err
    assert model_file.read_bytes() == before


@pytest.mark.parametrize("value", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"])
def test_formula_cells_are_neutralised(value):
    assert csv_cell(value) == "'" + value
    assert csv_cell("photo.jpg") == "photo.jpg" and csv_cell(0.5) == 0.5


def test_predict_csv_neutralises_formula_file_names(model_file, tmp_path):
    names = ["=HYPERLINK(1).png", "+a.png", "-b.png", "@c.png", "plain.png"]
    _photos(tmp_path / "in", names)
    here = os.getcwd()
    os.chdir(tmp_path / "in")
    try:
        assert main(["predict", ".", "--model", str(model_file), "--out", str(tmp_path / "p.csv")]) == 0
    finally:
        os.chdir(here)
    with open(tmp_path / "p.csv", newline="") as f:
        paths = sorted(r["path"] for r in csv.DictReader(f))
    assert paths == sorted(["'=HYPERLINK(1).png", "'+a.png", "'-b.png", "'@c.png", "plain.png"])


def test_evaluating_a_shipped_model_writes_nothing_inside_the_package(tmp_path, monkeypatch):
    from cifake.models.presets import PRETRAINED_DIR

    from .conftest import make_dataset

    data = make_dataset(tmp_path / "cifake", per_class=60)  # the shipped model's val_fraction 0.1: 6 per class
    before = {p.name: p.stat().st_mtime_ns for p in PRETRAINED_DIR.iterdir()}
    monkeypatch.chdir(tmp_path)
    args = ["evaluate", "pretrained", "--data-dir", str(data), "--split", "val", "--no-plots"]
    assert main([*args, "--choose-threshold", "--calibrate"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in PRETRAINED_DIR.iterdir()} == before
    out = tmp_path / "runs" / "pretrained"  # presets.OUTPUTS_DIR: beside the runs, never in the package
    assert {"metrics.json", "threshold.json", "detector-calibrated.keras", "eval-val"} <= {
        p.name for p in out.iterdir()
    }
    assert json.loads((out / "threshold.json").read_text())["model"] == "detector.keras"


def test_a_threshold_applies_only_to_the_model_it_was_chosen_for(tmp_path):
    from cifake.models.detector import read_threshold

    (tmp_path / "threshold.json").write_text(json.dumps({"threshold": 0.3, "chosen_on": "val", "model": "best.keras"}))
    assert read_threshold(tmp_path / "best.keras")[0] == 0.3
    assert read_threshold(tmp_path / "best-int8.tflite") is None  # an export beside it keeps 0.5
    (tmp_path / "threshold.json").write_text(json.dumps({"threshold": 0.3, "chosen_on": "val"}))
    assert read_threshold(tmp_path / "best-int8.tflite")[0] == 0.3  # older files name no model: they apply


def test_outputs_of_the_shipped_detector_go_to_runs_pretrained_and_the_last_line_names_them(
    tmp_path, monkeypatch, capsys
):
    from PIL import Image

    from cifake.cli import main

    from .conftest import synth_image

    monkeypatch.chdir(tmp_path)
    Image.fromarray(synth_image(np.random.default_rng(0), fake=False)).save(tmp_path / "photo.png")
    assert main(["explain", "pretrained", "photo.png"]) == 0
    out = tmp_path / "runs" / "pretrained" / "explain"
    assert [p.name for p in out.iterdir()] == ["photo_gradcam.png"]
    assert (
        capsys.readouterr().out.strip().splitlines()[-1] == f"wrote 1 figure(s) to {Path('runs/pretrained/explain')}/"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png", "runs"]  # nothing else in the current folder
