"""cifake eda on a generated dataset with planted duplicates."""

from __future__ import annotations

import csv
import shutil

import numpy as np
from PIL import Image

from cifake.cli import main
from cifake.tasks.eda import dhash

from .conftest import make_dataset


def test_dhash_ignores_reencoding_but_not_content():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    brighter = np.clip(a.astype(int) + 3, 0, 255).astype(np.uint8)
    other = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    h = dhash(np.concatenate([a, brighter, other]))
    assert h[0] == h[1] and h[0] != h[2]


def test_eda_report_lists_duplicates(tmp_path, capsys):
    data = make_dataset(tmp_path / "cifake", per_class=30, splits=("train", "test"))
    fake = sorted((data / "train" / "FAKE").iterdir())
    shutil.copy(fake[0], data / "train" / "FAKE" / "dup (2).jpg")  # byte-identical within train
    shutil.copy(fake[1], data / "test" / "FAKE" / "leak.jpg")  # identical across splits
    yy, xx = np.mgrid[0:32, 0:32]
    smooth = np.stack([yy * 8, xx * 8, (yy + xx) * 4], axis=-1).astype(np.uint8)  # clear gradients
    Image.fromarray(smooth).save(data / "train" / "REAL" / "smooth.jpg", quality=95)
    Image.fromarray(smooth).save(data / "train" / "REAL" / "reencoded.jpg", quality=70)  # near-duplicate
    out = tmp_path / "report"
    assert main(["eda", "--data-dir", str(data), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "| train | 32 | 31 | 63 |" in text and "| test | 30 | 31 | 61 |" in text
    assert "| train | automobile | 3 | 4 |" in text  # "dup (2).jpg" counts as an automobile
    assert "| train | unknown | 2 | 0 |" in text
    for fig in ("samples.png", "mean_spectrum.png"):
        assert (out / fig).stat().st_size > 1000
    with open(out / "duplicates.csv") as f:
        rows = list(csv.DictReader(f))
    identical = {}
    for r in rows:
        if r["kind"] == "identical":
            identical.setdefault(r["group"], set()).add((r["split"], r["path"].rsplit("/", 1)[-1]))
    assert {("train", fake[0].name), ("train", "dup (2).jpg")} in identical.values()
    assert {("train", fake[1].name), ("test", "leak.jpg")} in identical.values()
    near = {r["path"].rsplit("/", 1)[-1] for r in rows if r["kind"] == "near"}
    assert {"reencoded.jpg", "smooth.jpg"} <= near
    assert "1 groups span splits" in text or "groups span splits" in text


def test_eda_missing_data_exit_2(tmp_path, capsys):
    assert main(["eda", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "cifake download" in capsys.readouterr().err
