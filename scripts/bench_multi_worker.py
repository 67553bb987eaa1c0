#!/usr/bin/env python
"""Training throughput of one process against two MultiWorkerMirroredStrategy workers on 127.0.0.1.

    python scripts/bench_multi_worker.py --data-dir data/cifake [--config configs/small_cnn.yaml] [--fraction 0.05]

Runs, one after the other and on the same seeded data, `cifake train` for 2 epochs as:
  1 process    one process, train.threads = all cores, the global batch
  2 workers    two processes with TF_CONFIG on free 127.0.0.1 ports, train.threads = cores / 2 each,
               each computing half of every global batch and all-reducing the gradients
  half alone   one process, train.threads = cores / 2, half the batch: what each worker computes,
               without any communication
Epoch 2's seconds (epoch 1 includes tracing) from results.csv give images/s; the communication and
synchronisation cost per step is the 2-worker step time minus the half-alone step time.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def epoch2(run_dir: Path) -> tuple[float, float]:
    with open(run_dir / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return float(rows[1]["seconds"]), float(rows[1]["val_accuracy"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--config", default="configs/small_cnn.yaml")
    ap.add_argument("--fraction", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    args = ap.parse_args()
    cores = os.cpu_count() or 2
    half = max(1, cores // 2)
    base = [sys.executable, "-m", "cifake", "train", "--config", args.config, f"data.dir={args.data_dir}"]
    base += [f"data.fraction={args.fraction}", "train.epochs=2", "train.early_stopping=0"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("TF_CONFIG", None)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp)

        def single(name: str, threads: int, batch: int) -> None:
            cmd = [
                *base,
                f"train.runs_dir={runs}",
                f"train.threads={threads}",
                f"train.batch_size={batch}",
                "--name",
                name,
            ]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            results[name] = (*epoch2(runs / name), batch)

        single("one", cores, args.batch_size)
        hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
        procs = []
        for i in range(2):
            tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}}
            cmd = [*base, f"train.runs_dir={runs / f'w{i}'}", f"train.threads={half}"]
            cmd += [f"train.batch_size={args.batch_size}", "train.distribute=multi_worker", "--name", "two"]
            procs.append(
                subprocess.Popen(cmd, env={**env, "TF_CONFIG": json.dumps(tf_config)}, stdout=subprocess.DEVNULL)
            )
        if any(p.wait() for p in procs):
            sys.exit("a worker failed")
        results["two"] = (*epoch2(runs / "w0" / "two"), args.batch_size)
        single("half", half, args.batch_size // 2)

    from cifake.config import load_config
    from cifake.data.listing import list_split, stratified_split, stratified_subset

    _, labels = list_split(args.data_dir, "train")
    cfg = load_config(args.config)
    n = len(stratified_subset(labels, args.fraction, cfg.data.split_seed))
    n_train = len(stratified_split(labels[:n], cfg.data.val_fraction, cfg.data.split_seed)[0])
    print(f"\n{cores} cores; {args.config}, {n_train:,} training images, epoch 2 of 2 (includes validation)")
    print(f"{'contender':<44} {'batch':>6} {'s/epoch':>8} {'images/s':>9} {'ms/step':>8} {'val acc':>8}")
    names = {
        "one": f"1 process, {cores} threads",
        "two": f"2 workers on 127.0.0.1, {half} thread(s) each",
        "half": f"half alone: 1 process, {half} thread(s), half batch",
    }
    step_ms = {}
    for key in ("one", "two", "half"):
        seconds, acc, batch = results[key]
        steps = math.ceil(n_train / batch)
        step_ms[key] = 1000 * seconds / steps
        print(
            f"{names[key]:<44} {batch:>6} {seconds:>8.1f} {n_train / seconds:>9,.0f} {step_ms[key]:>8.1f} {acc:>8.4f}"
        )
    print(f"2 workers / 1 process: {results['one'][0] / results['two'][0]:.2f}x images/s")
    print(
        f"communication + synchronisation per step: {step_ms['two'] - step_ms['half']:.1f} ms "
        f"(2-worker step {step_ms['two']:.1f} ms - half-batch step alone {step_ms['half']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
