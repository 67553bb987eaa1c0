"""Multi-worker training: two worker processes on 127.0.0.1 against one process, and TF_CONFIG checks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cifake.base.errors import UserError
from cifake.cli import main
from cifake.training.devices import cluster_from_env, parse_tf_config

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]
# 80 per class -> 128 train / 32 val (smoke.yaml's val_fraction 0.2): 4 global batches of 32, no remainder
SETTINGS = ["data.fraction=1.0", "train.epochs=2", "train.batch_size=32", "train.optimizer=sgd", "train.lr=0.05"]
SETTINGS += ["model.batch_norm=false", "train.schedule=constant"]  # plain SGD: gradient scaling errors would show
# float32 on every CPU: the comparison below is of summation order (1e-4), which bfloat16's 8-bit
# mantissa (chosen by auto on CPUs with bf16 units) would swamp
SETTINGS += ["train.mixed_precision=off"]


def free_ports(n: int) -> list[int]:
    """Ports free now (bound to 0 and released); TensorFlow's servers bind them a moment later."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def train_args(data: Path, runs: Path, *extra: str) -> list[str]:
    return ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", f"train.runs_dir={runs}"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("mw") / "cifake", per_class=80)


def run_workers(tmp_path: Path, args_of) -> list[str]:
    """Start two workers on free 127.0.0.1 ports (each in its own folder, with its own TMPDIR); their outputs."""
    hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        cwd, tmp = tmp_path / f"worker{index}", tmp_path / f"tmp{index}"
        cwd.mkdir(exist_ok=True)
        tmp.mkdir(exist_ok=True)
        tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(tmp), "CUDA_VISIBLE_DEVICES": ""}
        cmd = [sys.executable, "-m", "cifake", *args_of(index)]
        procs.append(
            subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    try:
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outs
    return outs


def test_two_workers_match_one_process_and_resume_together(data, tmp_path):
    outs = run_workers(tmp_path, lambda i: [*train_args(data, tmp_path / f"runs{i}"), *SETTINGS, "--name", "mw"])
    assert "MultiWorkerMirroredStrategy: 2 workers, this is worker 0 (chief)" in outs[0]
    assert "global batch 32 = 16 per replica" in outs[0]
    assert "worker 1 done after 2 epoch(s)" in outs[1]
    chief = tmp_path / "runs0" / "mw"
    for name in ("config.yaml", "data.json", "results.csv", "best.keras", "last.keras", "metrics.json", "curves.png"):
        assert (chief / name).is_file(), name
    assert not (tmp_path / "runs1").exists()  # the non-chief wrote nothing under its runs_dir ...
    assert list((tmp_path / "worker1").iterdir()) == []  # ... nor in its working folder ...
    assert list((tmp_path / "tmp1").iterdir()) == []  # ... and removed its temporary checkpoints
    rows = (chief / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("1,") and rows[2].startswith("2,")

    assert main([*train_args(data, tmp_path / "single"), *SETTINGS, "--name", "one"]) == 0
    import keras

    one = keras.models.load_model(tmp_path / "single" / "one" / "last.keras", compile=False)
    two = keras.models.load_model(chief / "last.keras", compile=False)
    # Same data, same order, same initial weights; only the order of float32 additions differs (each worker
    # sums its 16 rows, then the two sums are added): after 8 SGD steps the weights agree to ~1e-6 relative.
    for a, b in zip(one.get_weights(), two.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    m1 = json.loads((tmp_path / "single" / "one" / "metrics.json").read_text())
    m2 = json.loads((chief / "metrics.json").read_text())
    assert abs(m1["accuracy"] - m2["accuracy"]) <= 1 / 32  # at most one of the 32 validation images flips

    # A worker died after epoch 2 (before the run finished): every worker restarts with --resume and
    # more epochs; both continue from the chief's last.keras, and the first two rows stay as they were.
    (chief / "metrics.json").unlink()
    before = (chief / "results.csv").read_text().splitlines()
    outs = run_workers(tmp_path, lambda i: ["train", "--resume", str(chief), "train.epochs=3"])
    assert all("resuming after epoch 2" in out for out in outs)
    after = (chief / "results.csv").read_text().splitlines()
    assert len(after) == 4 and [r.rsplit(",", 1)[0] for r in after[:3]] == [r.rsplit(",", 1)[0] for r in before]
    assert (chief / "metrics.json").is_file() and list((tmp_path / "tmp1").iterdir()) == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "no 'cluster'"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}}', "no 'task'"),
        ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}', "out of range"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}', "not one of"),
        ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "'chief' and"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": true}}', "out of range"),
    ],
)
def test_malformed_tf_config_is_one_line_exit_2_before_anything_is_written(
    data, tmp_path, monkeypatch, capsys, text, why
):
    with pytest.raises(UserError, match=why):
        parse_tf_config(text)
    monkeypatch.setenv("TF_CONFIG", text)
    assert main([*train_args(data, tmp_path / "runs"), *SETTINGS, "train.distribute=multi_worker"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cifake train: error: TF_CONFIG") and why in err[0]
    assert not (tmp_path / "runs").exists()


def test_chief_and_auto_rules(monkeypatch):
    two = {"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "worker", "index": 0}}
    cluster = parse_tf_config(json.dumps(two))
    assert cluster.tasks == 2 and not cluster.is_chief  # with a chief, worker 0 is not it
    one = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(one))
    assert cluster_from_env("auto") is None  # a one-task cluster is single-machine training
    assert cluster_from_env("multi_worker").is_chief
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert cluster_from_env("auto").tasks == 2
    assert cluster_from_env("none") is None
    monkeypatch.delenv("TF_CONFIG")
    with pytest.raises(UserError, match="needs the TF_CONFIG"):
        cluster_from_env("multi_worker")


def test_global_batch_must_divide_over_the_workers(data, tmp_path, monkeypatch, capsys):
    two = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(two))
    assert main([*train_args(data, tmp_path / "runs"), *SETTINGS, "train.batch_size=33"]) == 2
    assert "multiple of 2" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
