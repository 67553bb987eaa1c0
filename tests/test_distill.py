"""Distillation (train.teacher): targets, loss and metrics on [label, target] rows, the teacher's split
check, teacher.npy and resume, and a best.keras that loads without cifake."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from cifake.base.errors import UserError
from cifake.cli import main
from cifake.config import load_config
from cifake.data.listing import Split, load_splits
from cifake.data.pipelines import train_dataset
from cifake.models.detector import Detector
from cifake.training.distill import (
    TEACHER_FILE,
    LabelAccuracy,
    LabelAUC,
    LabelPrecision,
    LabelRecall,
    TargetCrossentropy,
    mixed_targets,
)
from cifake.training.rundir import run_config

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


def test_targets_mix_label_and_teacher():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.2, 0.9, 0.4, 0.0], np.float32)
    np.testing.assert_allclose(mixed_targets(y, p, 0.5), [0.1, 0.95, 0.7, 0.0], atol=1e-7)
    np.testing.assert_allclose(mixed_targets(y, p, 0.0), y)
    np.testing.assert_allclose(mixed_targets(y, p, 1.0), p)


def test_loss_reads_the_target_and_metrics_the_label():
    rows = np.array([[1.0, 0.7], [0.0, 0.2], [1.0, 0.9], [0.0, 0.6]], np.float32)
    q = np.array([[0.8], [0.3], [0.4], [0.1]], np.float32)
    bce = keras.losses.BinaryCrossentropy()
    assert float(TargetCrossentropy()(rows, q)) == pytest.approx(float(bce(rows[:, 1:], q)), rel=1e-5)
    assert float(TargetCrossentropy()(rows[:, :1], q)) == pytest.approx(float(bce(rows[:, :1], q)), rel=1e-5)
    smooth = keras.losses.BinaryCrossentropy(label_smoothing=0.1)
    assert float(TargetCrossentropy(0.1)(rows, q)) == pytest.approx(float(smooth(rows[:, 1:], q)), rel=1e-5)
    for ours, builtin in (
        (LabelAccuracy(), keras.metrics.BinaryAccuracy()),
        (LabelPrecision(), keras.metrics.Precision()),
        (LabelRecall(), keras.metrics.Recall()),
        (LabelAUC(), keras.metrics.AUC()),
    ):
        ours.update_state(rows, q)
        builtin.update_state(rows[:, :1], q)
        assert float(ours.result()) == pytest.approx(float(builtin.result()))
    acc = LabelAccuracy()
    acc.update_state(rows, q)
    assert float(acc.result()) == pytest.approx(0.75)  # 3 of 4 labels right; the targets would say otherwise


def test_batches_carry_label_and_target_of_the_same_image():
    n = 40
    images = np.zeros((n, 32, 32, 3), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # each image says which it is
    labels = (np.arange(n) % 2).astype(np.int32)
    split = Split(images, labels, [f"{i}.png" for i in range(n)])
    targets = np.linspace(0.01, 0.99, n).astype(np.float32)
    seen = 0
    for x, y in train_dataset(split, 16, seed=1, epochs=1, targets=targets):
        idx = x.numpy()[:, 0, 0, 0].astype(int)
        np.testing.assert_array_equal(y.numpy()[:, 0], labels[idx])
        np.testing.assert_allclose(y.numpy()[:, 1], targets[idx])
        seen += len(idx)
    assert seen == n
    _, y = next(iter(train_dataset(split, 16, seed=1, epochs=1)))
    assert y.shape == (16, 1)  # without a teacher the rows stay one label each


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "cifake", per_class=60)


def _train(data_dir: Path, runs: Path, name: str, *extra: str) -> Path:
    args = ["train", "--config", SMOKE, f"data.dir={data_dir}", f"train.runs_dir={runs}", "data.fraction=1.0"]
    assert main([*args, "train.batch_size=16", "--name", name, *extra]) == 0
    return runs / name


@pytest.fixture(scope="module")
def teacher(data_dir, tmp_path_factory) -> Path:
    return _train(data_dir, tmp_path_factory.mktemp("runs"), "teacher", "train.epochs=2")


@pytest.mark.slow
def test_distilled_run_scores_once_resumes_and_saves_a_plain_model(data_dir, teacher, tmp_path, caplog):
    runs = tmp_path / "runs"
    student = _train(
        data_dir, runs, "student", f"train.teacher=[{teacher}]", "train.distill_weight=0.5", "train.epochs=1"
    )
    p = np.load(student / TEACHER_FILE)
    train = load_splits(run_config(student / "best.keras").data)["train"]
    assert p.shape == (len(train),)
    np.testing.assert_allclose(p, Detector.load(teacher).predict(train.images), atol=1e-5)
    with open(student / "results.csv") as f:
        row = next(csv.DictReader(f))
    assert 0 <= float(row["accuracy"]) <= 1 and 0 <= float(row["precision"]) <= 1

    # resume reads teacher.npy instead of scoring again: a changed file shows in the next targets
    np.save(student / TEACHER_FILE, np.full_like(p, 0.5))
    (student / "metrics.json").unlink()  # as if interrupted after epoch 1
    caplog.clear()
    assert main(["train", "--resume", str(student), "train.epochs=2"]) == 0
    assert "distillation: teacher 1/1" not in caplog.text  # not scored again
    fake_share = float((train.labels == 1).mean())
    assert f"teachers agree with {fake_share:.2%}" in caplog.text  # every score 0.5: FAKE for all
    np.testing.assert_array_equal(np.load(student / TEACHER_FILE), 0.5)

    with open(student / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 2

    # a resume that lost teacher.npy scores again, keeps the scores, and still records the new length
    (student / "metrics.json").unlink()
    (student / TEACHER_FILE).unlink()
    caplog.clear()
    assert main(["train", "--resume", str(student), "train.epochs=3"]) == 0
    assert "teacher.npy is missing" in caplog.text and "distillation: teacher 1/1" in caplog.text
    np.testing.assert_allclose(np.load(student / TEACHER_FILE), p, atol=1e-5)
    assert load_config(student / "config.yaml").train.epochs == 3

    # best.keras loads in a Python that never imported cifake (no custom loss or metric in it)
    code = f"import keras; m = keras.models.load_model({str(student / 'best.keras')!r}); print(m.output.shape)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert "(None, 1)" in out.stdout


@pytest.mark.slow
def test_a_teacher_that_saw_validation_images_is_refused(data_dir, tmp_path, capsys):
    other = _train(data_dir, tmp_path / "runs", "other-split", "data.split_seed=7", "train.epochs=1")
    code = main(["train", "--config", SMOKE, f"data.dir={data_dir}", f"train.runs_dir={tmp_path / 'r2'}",
                 "data.fraction=1.0", f"train.teacher=[{other}]"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "validation images" in err and "other-split" in err, err
    assert not (tmp_path / "r2").exists() or not any((tmp_path / "r2").iterdir())  # nothing was started


def test_a_damaged_teacher_file_is_a_user_error(tmp_path):
    from types import SimpleNamespace

    from cifake.training.distill import run_scores

    split = Split(np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 1, 1], np.int32), ["a", "b", "c"])
    cfg = SimpleNamespace(train=SimpleNamespace(teacher=["t.keras"], distill_weight=0.5))
    for content, why in (
        (b"not numpy", "damaged"),
        (np.array([0.1, 0.2], np.float32), "holds 2 teacher scores for 3"),
        (np.array([0.1, np.nan, 0.3], np.float32), "not probabilities"),
    ):
        f = tmp_path / TEACHER_FILE
        if isinstance(content, bytes):
            f.write_bytes(content)
        else:
            np.save(f, content)
        with pytest.raises(UserError, match=why):
            run_scores(cfg, split, split, tmp_path)
    np.save(tmp_path / TEACHER_FILE, np.array([0.2, 0.9, 0.4], np.float32))
    p = run_scores(cfg, split, split, tmp_path)
    np.testing.assert_allclose(mixed_targets(split.labels, p, 0.5), [0.1, 0.95, 0.7], atol=1e-6)
    np.testing.assert_allclose(p, [0.2, 0.9, 0.4])


def test_a_teacher_without_a_run_is_refused(tmp_path):
    from cifake.training.distill import check_teacher

    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(1, "sigmoid")])
    path = tmp_path / "loose.keras"
    model.save(path)
    val = Split(np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.int32), ["a.png"], np.zeros(1, np.uint64))
    with pytest.raises(UserError, match="images it trained on are unknown"):
        check_teacher(path, val)
