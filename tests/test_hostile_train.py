"""Careless and hostile input to `cifake train` and `cifake config`: exit 2, one line, nothing written.

Each test reproduces a probe that once exited 0 with meaningless results, or 1 with a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from cifake.cli import main
from cifake.data.cache import CACHE_DIRNAME

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "smoke.yaml")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "cifake", per_class=40)


def _train(data_dir: Path, runs: Path, *extra: str) -> int:
    args = ["train", "--config", SMOKE, f"data.dir={data_dir}", f"train.runs_dir={runs}", "data.fraction=1.0"]
    return main([*args, "train.epochs=2", "train.batch_size=16", *extra])


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert lines and "Traceback" not in err, err
    return lines[-1]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.lr=.inf", "finite number"),
        ("train.lr=.nan", "finite number"),
        ("train.weight_decay=1e400", "finite number"),
        ("train.seed=4294967296", "<= 4294967295"),
        ("train.threads=100000", "<= 1024"),
        ("train.name=../../escape", "one folder name"),
        ("train.name=/tmp/abs", "one folder name"),
        ("train.name=a/b", "one folder name"),
        ("model.filters=[]", "at least one conv block"),
        ("model.filters=[8,8,8,8,8,8]", "below 1x1 at block 6"),
        ("model.name=resnet_9000", "expected one of"),
        ("data.fraction=0.0001", "at least 5 per class"),
    ],
)
def test_bad_values_refused_before_a_run_directory_exists(data_dir, tmp_path, capfd, override, expected):
    runs = tmp_path / "runs"
    assert _train(data_dir, runs, override) == 2
    assert expected in _one_error_line(capfd.readouterr().err)
    assert not runs.exists() or not any(runs.iterdir()), "a refused run must leave no run directory"


@pytest.mark.parametrize("name", ["../escape", "/abs", "a/b"])
def test_name_option_with_a_path_is_refused(data_dir, tmp_path, capfd, name):
    assert _train(data_dir, tmp_path / "runs", "--name", name) == 2
    assert "one folder name" in capfd.readouterr().err
    assert not (tmp_path / "escape").exists() and not Path("/abs").exists()


@pytest.mark.parametrize("override", ["model.filters=[8,8,8,8,8,8]", "model.filters=[]", "model.name=nope"])
def test_config_command_checks_the_model_shape(override, capfd):
    assert main(["config", override]) == 2
    assert "Traceback" not in capfd.readouterr().err


def test_read_only_runs_dir(data_dir, tmp_path, capfd):
    if os.geteuid() == 0:
        blocker = tmp_path / "runs"  # root ignores permissions: a file in the way fails the same code path
        blocker.write_text("not a folder")
    else:
        blocker = tmp_path / "ro"
        blocker.mkdir(mode=0o500)
    assert _train(data_dir, blocker / "sub") == 2
    assert "cannot create a run directory" in capfd.readouterr().err


@pytest.mark.slow
def test_diverging_loss_stops_with_exit_2_and_no_finished_run(data_dir, tmp_path, capfd):
    runs = tmp_path / "runs"
    code = _train(data_dir, runs, "train.optimizer=sgd", "train.lr=1e30", "train.schedule=constant", "--name", "nan")
    assert code == 2
    assert "training diverged" in capfd.readouterr().err
    assert not (runs / "nan" / "metrics.json").exists()


@pytest.mark.slow
def test_resume_on_other_data_is_refused(data_dir, tmp_path, capfd):
    runs = tmp_path / "runs"
    assert _train(data_dir, runs, "--name", "r", "train.epochs=1") == 0
    (runs / "r" / "metrics.json").unlink()  # as if killed before the end
    small = make_dataset(tmp_path / "small", per_class=30)
    assert main(["train", "--resume", str(runs / "r"), f"data.dir={small}", "train.epochs=2"]) == 2
    assert "cannot resume" in capfd.readouterr().err
    assert not (runs / "r" / "metrics.json").exists()


def test_truncated_decode_cache_is_rebuilt(tmp_path, capfd):
    from cifake.config import DataConfig
    from cifake.data.listing import load_splits

    data = make_dataset(tmp_path / "cifake", per_class=20)
    cfg = DataConfig(dir=str(data), val_fraction=0.25)
    first = load_splits(cfg, progress=False)
    (cache,) = (data / CACHE_DIRNAME).glob("*.npz")
    cache.write_bytes(cache.read_bytes()[:1000])  # cut short, as by a full disk
    again = load_splits(cfg, progress=False)
    assert "rebuilding" in capfd.readouterr().err
    assert np.array_equal(first["train"].images, again["train"].images)
    assert len(cache.read_bytes()) > 1000  # rewritten whole


def test_non_utf8_file_name_in_the_training_set(tmp_path):
    from cifake.config import DataConfig
    from cifake.data.listing import load_splits

    data = make_dataset(tmp_path / "cifake", per_class=20)
    src = data / "train" / "FAKE" / "0000.jpg"
    odd = os.path.join(os.fsencode(src.parent), b"caf\xe9 (2).jpg")  # Latin-1 bytes: not valid UTF-8
    shutil.copy(src, odd)
    splits = load_splits(DataConfig(dir=str(data), val_fraction=0.25, cache=True), progress=False)
    assert len(splits["train"]) + len(splits["val"]) == 41
    assert any("\udce9" in p for s in splits.values() for p in s.paths)


def test_data_json_records_split_sizes(data_dir, tmp_path):
    assert _train(data_dir, tmp_path / "runs", "--name", "d", "train.epochs=1") == 0
    info = json.loads((tmp_path / "runs" / "d" / "data.json").read_text())
    assert info["train_images"] + info["val_images"] == 80 and info["steps_per_epoch"] >= 1
