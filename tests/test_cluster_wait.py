"""Multi-worker training waits for its cluster with a bound, says whom it waits for, and stops on a signal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cifake.cli import main

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]


def _tf_config(chief: str) -> str:
    return json.dumps(
        {"cluster": {"chief": [chief], "worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}
    )


def _argv(data: Path, runs: Path, timeout: float) -> list[str]:
    return ["train", "--config", str(REPO / "configs" / "smoke.yaml"), f"data.dir={data}", f"train.runs_dir={runs}",
            "train.batch_size=16", f"train.cluster_timeout={timeout}"]  # fmt: skip


def test_a_chief_that_never_answers_is_one_line_after_the_timeout(tmp_path, monkeypatch, capsys):
    data = make_dataset(tmp_path / "cifake", per_class=20)
    monkeypatch.setenv("TF_CONFIG", _tf_config("127.0.0.1:1"))
    t = time.monotonic()
    assert main(_argv(data, tmp_path / "runs", 2)) == 2
    assert time.monotonic() - t < 60
    captured = capsys.readouterr()
    assert "waiting for the chief at 127.0.0.1:1" in captured.out
    assert "no answer from the chief at 127.0.0.1:1 after 2 s" in captured.err
    assert not (tmp_path / "runs").exists()


def _spawn(data: Path, runs: Path, chief: str, timeout: float) -> subprocess.Popen:
    env = {**os.environ, "TF_CONFIG": _tf_config(chief), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "cifake", *_argv(data, runs, timeout)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_sigterm_stops_a_worker_waiting_for_its_chief(tmp_path):
    data = make_dataset(tmp_path / "cifake", per_class=20)
    proc = _spawn(data, tmp_path / "runs", "127.0.0.1:1", 300)
    line = proc.stdout.readline()  # TensorFlow's import, then the first waiting line
    while line and "waiting for the chief" not in line:
        line = proc.stdout.readline()
    assert "waiting for the chief" in line
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    assert "terminated" in proc.stderr.read()
    assert not (tmp_path / "runs").exists()


def test_a_chief_port_that_answers_but_never_joins_is_bounded_too(tmp_path):
    """The port accepts connections but speaks no gRPC: the wait inside TensorFlow is bounded by the watchdog."""
    data = make_dataset(tmp_path / "cifake", per_class=20)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        proc = _spawn(data, tmp_path / "runs", f"127.0.0.1:{listener.getsockname()[1]}", 8)
        try:
            code = proc.wait(timeout=180)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the worker did not give up within 180 s")
        err = proc.stderr.read()
        assert code == 2, err[-800:]
        assert "no answer from the other 1 worker(s) of the cluster" in err and "within 8 s" in err
        assert "Traceback" not in err
        assert not (tmp_path / "runs").exists()
    finally:
        listener.close()
