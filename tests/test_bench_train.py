"""scripts/bench_train.py: several recipes and the baseline in one run, the JSON contract, the plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_frontier_json_and_plot(tmp_path):
    data = make_dataset(tmp_path / "cifake", per_class=60)
    out, png = tmp_path / "bench.json", tmp_path / "frontier.png"
    cmd = [sys.executable, str(REPO / "scripts" / "bench_train.py"), "--data-dir", str(data)]
    cmd += [
        "--config",
        str(REPO / "configs" / "smoke.yaml"),
        "--config",
        f"{REPO / 'configs' / 'smoke.yaml'} train.ema=0.9",
    ]
    cmd += ["--baseline-epochs", "1", "--eval-every", "0.5", "--json", str(out), "--plot", str(png)]
    cmd += ["data.fraction=1.0", "train.epochs=2", "train.mixed_precision=off"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "cores" in result["machine"]
    names = [c["name"] for c in result["contenders"]]
    assert names == ["baseline", "smoke", "smoke train.ema=0.9"]  # the baseline once, each recipe by its stem
    for c in result["contenders"]:
        assert {"name", "config", "params", "macs", "seconds_to", "final_val_accuracy", "best_val_accuracy"} <= set(c)
        assert set(c["seconds_to"]) == {"0.93", "0.95", "0.97", "0.98"}
        assert all(v is None or v > 0 for v in c["seconds_to"].values())
        assert c["params"] > 0 and c["macs"] > 0 and 0 <= c["final_val_accuracy"] <= 1
        assert c["best_val_accuracy"] >= c["final_val_accuracy"]
    assert result["contenders"][0]["config"] is None and result["contenders"][1]["epochs"] == pytest.approx(2.0)
    assert set(result["contenders"][1]["final_val_accuracy_tta"]) == {"flip", "shift"}
    assert png.stat().st_size > 10_000 and "smoke train.ema=0.9" in done.stdout
    again = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "bench_train.py"), "--from-json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and "baseline" in again.stdout
