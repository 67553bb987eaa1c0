"""End-to-end training on a generated dataset: run directory, learning, reproducibility, resume."""

from __future__ import annotations

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from cifake.cli import main
from cifake.config import Config, load_config
from cifake.training.schedule import lr_at

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "cifake", per_class=100)


def _args(data_dir: Path, runs: Path, *extra: str) -> list[str]:
    # the generated set is tiny: use all of it, and a few more epochs than the CI smoke config
    return [
        "train",
        "--config",
        SMOKE,
        f"data.dir={data_dir}",
        f"train.runs_dir={runs}",
        "data.fraction=1.0",
        "train.epochs=4",
        "train.batch_size=16",
        *extra,
    ]


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_smoke_run_writes_run_directory_and_learns(data_dir, tmp_path, capsys):
    assert main(_args(data_dir, tmp_path / "runs", "--name", "e2e")) == 0
    run = tmp_path / "runs" / "e2e"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "results.csv",
        "best.keras",
        "last.keras",
        "metrics.json",
        "curves.png",
    }
    rows = _rows(run)
    assert len(rows) == 4
    assert list(rows[0]) == [
        "epoch",
        "loss",
        "accuracy",
        "precision",
        "recall",
        "auc",
        "val_loss",
        "val_accuracy",
        "val_precision",
        "val_recall",
        "val_auc",
        "lr",
        "seconds",
    ]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.75, metrics  # chance is 0.5
    assert metrics["images"] == 40
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["seed"] == 0 and "tensorflow" in (run / "config.yaml").read_text().splitlines()[0]
    model = keras.models.load_model(run / "best.keras", safe_mode=True)
    assert model.predict(np.zeros((2, 32, 32, 3), np.uint8), verbose=0).shape == (2, 1)
    out = capsys.readouterr().out
    assert out.count(f"run directory: {run}") == 2
    assert "epoch   4/4" in out
    # a second run with the same name gets a new directory
    assert main(_args(data_dir, tmp_path / "runs", "--name", "e2e", "train.epochs=1")) == 0
    assert (tmp_path / "runs" / "e2e-2" / "metrics.json").is_file()


@pytest.mark.slow
def test_same_seed_same_results(data_dir, tmp_path):
    for name in ("a", "b"):
        assert (
            main(_args(data_dir, tmp_path, "--name", name, "train.epochs=2", "augment.flip=true", "augment.shift=2"))
            == 0
        )
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(tmp_path / "a")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in _rows(tmp_path / "b")]


@pytest.mark.slow
def test_sigkill_mid_training_then_resume(data_dir, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "cifake",
        *_args(data_dir, runs, "--name", "k", "train.epochs=6", "train.batch_size=16"),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.time() + 120
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if line.startswith("epoch   2/6"):
            break
    time.sleep(0.3)  # somewhere inside epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = runs / "k"
    assert (run / "last.keras").is_file(), "".join(lines)
    assert not (run / "metrics.json").exists()
    keras.models.load_model(run / "last.keras", safe_mode=True)  # never a torn file, even after SIGKILL
    done = len(_rows(run))
    assert 2 <= done < 6
    assert main(["train", "--resume", str(run)]) == 0
    rows = _rows(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    keras.models.load_model(run / "best.keras", safe_mode=True)
    keras.models.load_model(run / "last.keras", safe_mode=True)


@pytest.mark.slow
def test_resume_rules(data_dir, tmp_path, capsys):
    assert main(_args(data_dir, tmp_path, "--name", "r", "train.epochs=1")) == 0
    run = tmp_path / "r"
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "already finished" in capsys.readouterr().err
    (run / "metrics.json").unlink()  # pretend it was interrupted after epoch 1
    assert main(["train", "--resume", str(run), "train.lr=0.5"]) == 2
    assert "cannot change train.lr" in capsys.readouterr().err
    assert main(["train", "--resume", str(run), "train.epochs=2"]) == 0
    assert len(_rows(run)) == 2
    assert load_config(run / "config.yaml").train.epochs == 2
    assert main(["train", "--resume", str(tmp_path / "nope")]) == 2


def test_schedules_shape():
    cfg = Config().train
    cfg.lr, cfg.warmup_epochs = 1.0, 1.0
    steps = [lr_at(s, 1000, 100, cfg) for s in range(1000)]
    assert steps[0] == pytest.approx(0.01) and steps[99] == pytest.approx(1.0)
    assert steps[-1] < 1e-4 and all(a >= b for a, b in itertools.pairwise(steps[100:]))
    cfg.schedule = "onecycle"
    one = [lr_at(s, 1000, 100, cfg) for s in range(1000)]
    assert one[0] == pytest.approx(0.04) and max(one) == pytest.approx(1.0, rel=1e-3)
    assert int(np.argmax(one)) == 300 and one[-1] < 1e-3
    cfg.schedule, cfg.warmup_epochs = "constant", 0.0
    assert {lr_at(s, 1000, 100, cfg) for s in range(0, 1000, 97)} == {1.0}


@pytest.mark.slow
def test_model_init_starts_from_another_runs_weights(data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(_args(data_dir, runs, "--name", "a", "train.epochs=1")) == 0
    a = keras.models.load_model(runs / "a" / "best.keras")
    # lr so small that one epoch cannot move the weights: the run must start from a's
    extra = [f"model.init={runs / 'a'}", "train.epochs=1", "train.lr=1e-12", "train.schedule=constant", "--name", "b"]
    assert main(_args(data_dir, runs, *extra)) == 0
    b = keras.models.load_model(runs / "b" / "best.keras")
    dense = [w for w in a.trainable_weights if "kernel" in w.path]
    assert all(
        np.allclose(x.numpy(), y.numpy(), atol=1e-6)
        for x, y in zip(dense, [w for w in b.trainable_weights if "kernel" in w.path], strict=True)
    )
    capsys.readouterr()
    assert main(_args(data_dir, runs, f"model.init={runs / 'a'}", "model.filters=[8]", "--name", "c")) == 2
    assert "another architecture" in capsys.readouterr().err
    assert not (runs / "c").exists()


def test_the_run_estimate_comes_once_early_from_steady_steps(monkeypatch):
    """Said within the first epoch, from the pace after the warm-up steps, for every step left."""
    from cifake.base import progress

    clock = iter(range(10_000))
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(clock)))  # one second a step
    est = progress.RunEstimate(steps=200, epochs=3)
    est.epoch_begins(0)
    lines = [(step, est.step_done(step)) for step in range(1, 201)]
    said = [(s, line) for s, line in lines if line]
    assert len(said) == 1
    step, line = said[0]
    assert step == progress.ESTIMATE_WARM_STEPS + 15  # 15 s of steady steps timed
    assert f"about {progress.duration(3 * 200 - step)} of training left" in line and "3 epoch(s)" in line
    est.epoch_begins(1)
    assert all(est.step_done(s) is None for s in range(1, 201))  # once per run


def test_no_estimate_for_an_epoch_too_short_to_time():
    from cifake.base import progress

    est = progress.RunEstimate(steps=4, epochs=2)
    est.epoch_begins(0)
    assert all(est.step_done(s) is None for s in range(1, 5))
