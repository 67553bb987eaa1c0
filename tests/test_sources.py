"""Several generators: extra training fakes (training split only) and per-source evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cifake.cli import main
from cifake.config import load_config
from cifake.data.listing import load_splits

from .conftest import make_dataset, synth_image

REPO = Path(__file__).resolve().parents[1]


def _images(folder: Path, n: int, fake: bool, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(synth_image(rng, fake)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("sources")
    data = make_dataset(root / "data", per_class=40)
    argv = ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", "data.fraction=1.0"]
    assert main([*argv, f"train.runs_dir={root / 'runs'}", "train.batch_size=16", "--name", "r"]) == 0
    return data, root / "runs" / "r"


def test_per_source_figures_tell_a_seen_generator_from_an_unseen_one(trained, tmp_path, capsys):
    _, run = trained
    d = tmp_path / "generators"
    _images(d / "REAL", 30, fake=False, seed=1)
    _images(d / "FAKE" / "checkerboard_gan", 30, fake=True, seed=2)  # the artefact the model was trained on
    _images(d / "FAKE" / "smooth_vae", 30, fake=False, seed=3)  # fakes that carry none of it
    out = tmp_path / "ev"
    assert main(["evaluate", str(run), "--data-dir", str(d), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "per source (each against all 30 REAL images)" in printed and "smooth_vae" in printed
    report = json.loads((out / "metrics.json").read_text())["evaluate"]["sources"]
    rows = report["per_source"]
    assert set(rows) == {"checkerboard_gan", "smooth_vae"}
    assert rows["checkerboard_gan"]["images"] == 30 and report["images"] == 90
    assert rows["checkerboard_gan"]["roc_auc"] > 0.9 and rows["checkerboard_gan"]["fake_recall"] > 0.8
    assert rows["smooth_vae"]["roc_auc"] < 0.8  # same distribution as REAL: near chance
    assert report["roc_auc"] < rows["checkerboard_gan"]["roc_auc"]  # pooled, between the two
    assert (out / "eval-sources" / "sources.png").stat().st_size > 5_000


def test_extra_fakes_reach_the_training_split_only(trained, tmp_path, capsys):
    data, _ = trained
    extra = _images(tmp_path / "more" / "gan", 12, fake=True, seed=4)
    (tmp_path / "more" / "notes.txt").write_text("not an image")
    common = [f"data.dir={data}", "data.val_fraction=0.25"]
    base = load_splits(load_config(None, common).data, progress=False)
    more = load_splits(load_config(None, [*common, f"data.extra_fake=[{extra.parent}]"]).data, progress=False)
    assert more["val"].paths == base["val"].paths  # validation untouched
    assert len(more["train"]) == len(base["train"]) + 12
    added = [i for i, p in enumerate(more["train"].paths) if p.startswith(str(extra))]
    assert len(added) == 12 and (more["train"].labels[added] == 1).all()
    assert not any(p.startswith(str(extra)) for p in more["val"].paths)
    assert main(["config", f"data.extra_real=[{tmp_path / 'none'}]", f"data.dir={data}"]) == 0  # checked when loading
    argv = ["train", *common, f"data.extra_real=[{tmp_path / 'none'}]", f"train.runs_dir={tmp_path / 'r'}"]
    assert main(argv) == 2
    assert "data.extra_real" in capsys.readouterr().err and not (tmp_path / "r").exists()
