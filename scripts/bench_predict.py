#!/usr/bin/env python
"""Prediction throughput: `cifake predict`'s path beside image_dataset_from_directory + model.predict.

    python scripts/bench_predict.py --data-dir data/cifake [--model runs/NAME] [--images 20000]

Builds a folder of --images JPEGs (symlinks to half REAL, half FAKE files of the train split), reads
every file once so both contenders start from a warm page cache, then times, with the same model:
  keras     keras.utils.image_dataset_from_directory(folder, labels=None, image_size=(32, 32),
            batch_size=32, shuffle=False) followed by model.predict (the notebook's way)
  cifake    cifake.predict.predict_files: file listing, parallel decode, batched model calls
Both load the model from disk inside the timed call, as a user's command does.
Each contender runs --repeats times; the best time counts. Prints images/s and the ratio.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--model", default=None, help=".keras file or run directory (default: the shipped detector)")
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from cifake.data import list_split
    from cifake.detector import load_detector, resolve_checkpoint
    from cifake.predict import PRETRAINED, collect, predict_files
    from cifake.tfutil import import_keras, import_tf

    keras, tf = import_keras(), import_tf()
    checkpoint = resolve_checkpoint(args.model or PRETRAINED)
    paths, labels = list_split(args.data_dir, "train")
    half = args.images // 2
    chosen = [p for p, y in zip(paths, labels, strict=True) if y == 0][:half] + [
        p for p, y in zip(paths, labels, strict=True) if y == 1
    ][:half]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i, p in enumerate(chosen):
            os.symlink(os.path.abspath(p), folder / f"{i:06d}.jpg")
            Path(p).read_bytes()  # warm the page cache for both contenders
        model = load_detector(checkpoint)

        def keras_way() -> int:
            ds = keras.utils.image_dataset_from_directory(
                folder, labels=None, image_size=(32, 32), batch_size=32, shuffle=False, verbose=False
            )
            return len(model.predict(ds, verbose=0))

        def cifake_way() -> int:
            rows_, _, _ = predict_files(collect([str(folder)]), checkpoint)
            return len(rows_)

        keras_way()  # one warm-up each: graph tracing is not what we measure
        cifake_way()
        for name, fn in (
            ("keras image_dataset_from_directory + predict", keras_way),
            ("cifake predict (predict_files)", cifake_way),
        ):
            best = float("inf")
            for _ in range(args.repeats):
                t = time.perf_counter()
                n = fn()
                best = min(best, time.perf_counter() - t)
            rows.append((name, n, best))
    print(
        f"\nmachine: {os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}, TensorFlow {tf.__version__}; model {checkpoint} ({model.count_params():,} parameters)"
    )
    print(f"{'contender':<48} {'images':>7} {'seconds':>8} {'images/s':>9}")
    for name, n, s in rows:
        print(f"{name:<48} {n:>7,} {s:>8.2f} {n / s:>9,.0f}")
    print(f"cifake / keras: {(rows[1][1] / rows[1][2]) / (rows[0][1] / rows[0][2]):.2f}x")


if __name__ == "__main__":
    main()
