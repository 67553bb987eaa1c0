#!/usr/bin/env python
"""Data-loading benchmark: cifake's loader beside keras.utils.image_dataset_from_directory.

Prints images/s for (1) the first pass over the train split (read + decode, no cache), (2) a
reload from the on-disk decode cache, (3) one shuffled training epoch from memory (batch 256,
with and without flip+shift augmentation), and (4) one epoch of image_dataset_from_directory
(batch 256, the notebook's loader), all in one run on the same folder.

    python scripts/bench_data.py --data-dir data/cifake [--fraction 1.0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the train split to use")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--skip-keras", action="store_true", help="skip the image_dataset_from_directory baseline")
    args = ap.parse_args()

    import keras
    import tensorflow as tf

    from cifake.config import DataConfig
    from cifake.data.cache import CACHE_DIRNAME
    from cifake.data.listing import load_split
    from cifake.data.pipelines import train_dataset

    cfg = DataConfig(dir=args.data_dir, fraction=args.fraction, cache=True)
    shutil.rmtree(Path(args.data_dir) / CACHE_DIRNAME, ignore_errors=True)
    rows = []

    t = time.perf_counter()
    split = load_split(cfg, "train", progress=False)
    dt = time.perf_counter() - t
    n = len(split)
    rows.append(("cifake first pass (list + decode + write cache)", n, dt))

    t = time.perf_counter()
    split = load_split(cfg, "train", progress=False)
    rows.append(("cifake restart from decode cache", n, time.perf_counter() - t))

    from cifake.config import load_config

    robust = load_config(Path(__file__).resolve().parents[1] / "configs" / "detector.yaml").augment
    for label, aug in (
        ("cifake cached epoch, no augmentation", {}),
        ("cifake cached epoch, flip + shift 2", {"flip": True, "shift": 2}),
        (
            "cifake cached epoch, detector.yaml (flip, JPEG, blur, resize, noise, colour)",
            {"flip": True, "robust": robust},
        ),
    ):
        ds = train_dataset(split, args.batch_size, seed=0, epochs=2, **aug)
        it = iter(ds)
        steps = -(-n // args.batch_size)
        for _ in range(steps):  # epoch 0 warms up the graph
            next(it)
        t = time.perf_counter()
        for _ in range(steps):
            x, _y = next(it)
        _ = x.numpy()
        rows.append((label, n, time.perf_counter() - t))

    if not args.skip_keras:
        t = time.perf_counter()
        kds = keras.utils.image_dataset_from_directory(
            Path(args.data_dir) / "train",
            labels="inferred",
            label_mode="binary",
            class_names=["REAL", "FAKE"],
            image_size=(32, 32),
            batch_size=args.batch_size,
            shuffle=True,
            seed=0,
            verbose=False,
        )
        count = 0
        for x, _y in kds:
            count += int(x.shape[0])
        rows.append(("keras image_dataset_from_directory, one epoch", count, time.perf_counter() - t))
        kds = kds.cache()
        for _ in kds:
            pass
        t = time.perf_counter()
        for _ in kds:
            pass
        rows.append(("keras image_dataset_from_directory + .cache(), cached epoch", count, time.perf_counter() - t))

    print(
        f"\nmachine: {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}; data: {args.data_dir} (train, fraction {args.fraction})"
    )
    print(f"{'what':<74} {'images':>8} {'seconds':>8} {'images/s':>10}")
    for what, count, seconds in rows:
        print(f"{what:<74} {count:>8,} {seconds:>8.2f} {count / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
