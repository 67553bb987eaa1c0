#!/usr/bin/env python
"""Prediction end to end: `cifake predict` beside image_dataset_from_directory + model.predict.

    python scripts/bench_predict.py --data-dir data/cifake [--images 20000] [--memory-files 200000]

Builds a folder of --images JPEGs (symlinks to half REAL, half FAKE files of the train split), reads
every file once so all contenders start from a warm page cache, then runs each contender as its own
process, timed from process start to CSV written, with its peak resident memory:
  keras          python: keras.utils.image_dataset_from_directory(folder, labels=None, image_size=(32, 32),
                 batch_size=32, shuffle=False) + model.predict on the shipped Keras detector + csv
                 (the notebook's way)
  cifake keras   cifake predict FOLDER --model pretrained --out CSV (the same Keras model)
  cifake int8    cifake predict FOLDER --out CSV (the default: the shipped int8 LiteRT export)
  one decoder    the same with --workers 0: files always decoded on one thread beside the model
                 (the default times its first 1,024 files and moves the rest to one worker process
                 per core only when they were slow, as photos are and CIFAKE's JPEGs are not)
Each runs --repeats times; the best time counts. --memory-files N adds one run of the default
`cifake predict` on N files (links to the same JPEGs) and prints its peak memory, to show that it
does not grow with the input. Prints the machine, images/s and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASELINE = """
import csv, sys, numpy as np, keras
folder, model_path, out = sys.argv[1:4]
model = keras.models.load_model(model_path, compile=False)
ds = keras.utils.image_dataset_from_directory(folder, labels=None, image_size=(32, 32), batch_size=32,
                                              shuffle=False, verbose=False)
p = model.predict(ds, verbose=0).ravel()
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["path", "p_fake"])
    w.writerows(zip(ds.file_paths, (f"{q:.6f}" for q in p)))
"""


def run(cmd: list[str]) -> tuple[float, int]:
    """(seconds, peak RSS in bytes) of one child process, which must exit 0 or 3."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 3):
        sys.exit(f"{' '.join(cmd[:4])} ... failed ({code}): {proc.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss * 1024


def rows_in(csv_path: Path) -> int:
    return sum(1 for _ in open(csv_path)) - 1


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory-files", type=int, default=0, help="also run cifake predict on this many files")
    args = ap.parse_args()

    from cifake.data.listing import list_split
    from cifake.models.detector import default_model, export_card
    from cifake.models.presets import PRETRAINED, PRETRAINED_INT8

    paths, labels = list_split(args.data_dir, "train")
    half = args.images // 2
    chosen = [p for p, y in zip(paths, labels, strict=True) if y == 0][:half]
    chosen += [p for p, y in zip(paths, labels, strict=True) if y == 1][:half]
    cifake = [sys.executable, "-m", "cifake", "predict"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, p in enumerate(chosen):
            os.symlink(os.path.abspath(p), folder / f"{i:06d}.jpg")
            Path(p).read_bytes()  # warm the page cache for every contender
        out = Path(tmp) / "out.csv"
        contenders = [
            (
                "keras image_dataset_from_directory + predict",
                [sys.executable, "-c", BASELINE, str(folder), str(PRETRAINED), str(out)],
            ),
            (
                "cifake predict --model pretrained (Keras)",
                [*cifake, str(folder), "--model", "pretrained", "--out", str(out)],
            ),
            (f"cifake predict (default: {default_model().name})", [*cifake, str(folder), "--out", str(out)]),
            (
                "cifake predict --workers 0 (one decoding thread)",
                [*cifake, str(folder), "--out", str(out), "--workers", "0"],
            ),
        ]
        for name, cmd in contenders:
            best, rss = float("inf"), 0
            for _ in range(args.repeats):
                out.unlink(missing_ok=True)  # every contender writes a new file (cifake predict never
                # replaces a CSV it did not write, such as the notebook's)
                seconds, peak = run(cmd)
                best, rss = min(best, seconds), max(rss, peak)
            results.append((name, rows_in(out), best, rss))
        if args.memory_files:
            many = Path(tmp) / "many"
            many.mkdir()
            files = sorted(folder.iterdir())
            for i in range(args.memory_files):
                os.symlink(files[i % len(files)].resolve(), many / f"{i:07d}.jpg")
            out.unlink(missing_ok=True)
            seconds, peak = run([*cifake, str(many), "--out", str(out)])
            results.append((f"cifake predict (default) on {args.memory_files:,} files", rows_in(out), seconds, peak))

    import tensorflow as tf

    print(
        f"\nmachine: {cpu_name()}, {os.cpu_count()} cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}; "
        f"TensorFlow {tf.__version__}; end to end (process start to CSV written), best of {args.repeats}"
    )
    print(f"{'contender':<52} {'images':>8} {'seconds':>8} {'images/s':>9} {'peak RSS':>9}")
    for name, n, s, rss in results:
        print(f"{name:<52} {n:>8,} {s:>8.2f} {n / s:>9,.0f} {rss / 2**30:>7.2f} GiB")
    base = results[0][1] / results[0][2]
    for name, n, s, _ in results[1:4]:
        print(f"{name} / keras: {(n / s) / base:.2f}x")
    card = export_card(PRETRAINED_INT8)
    if card:
        print(
            f"int8 card ({PRETRAINED_INT8.name}): accuracy {card['accuracy_export']:.4f} vs Keras {card['accuracy_keras']:.4f} "
            f"on {card['images']:,} validation images; labels agree {card['label_agreement']:.2%}; "
            f"max |delta p| {card['max_abs_delta']:.4f}"
        )
    print(
        json.dumps({"results": [dict(zip(("name", "images", "seconds", "peak_rss"), r, strict=True)) for r in results]})
    )


if __name__ == "__main__":
    main()
