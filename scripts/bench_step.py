#!/usr/bin/env python
"""Training-step throughput of recipes' models by precision and XLA, on random batches in memory.

    python scripts/bench_step.py --config configs/fast.yaml --config configs/small_cnn.yaml

For each recipe, each train.mixed_precision in --precision and each train.jit_compile in --jit:
build the model, compile it as cifake train does, run --warmup steps, then time --steps steps of
train.batch_size random uint8 images (no data pipeline cost: this isolates the step). Prints
images/s and each setting's speed relative to float32 without XLA in the same run. This is what
decides `auto` (bfloat16 on CPUs with AMX-BF16/AVX512-BF16) and the recipes' train.jit_compile.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", help="recipe (repeat); default: the three of configs/")
    ap.add_argument("--precision", default="off,bf16", help="train.mixed_precision values, comma-separated")
    ap.add_argument("--jit", default="off,on", help="train.jit_compile values, comma-separated")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()

    import numpy as np

    from cifake.base.tfutil import import_keras, import_tf
    from cifake.config import load_config
    from cifake.models.registry import build_model, macs
    from cifake.training.devices import setup_devices
    from cifake.training.train import compile_model

    keras, tf = import_keras(), import_tf()
    configs = args.config or ["configs/fast.yaml", "configs/small_cnn.yaml", "configs/best.yaml"]
    print(f"{'recipe':<12} {'precision':<15} {'XLA':<4} {'params':>9} {'MMACs':>6} {'img/s':>7} {'vs float32':>10}")
    for config in configs:
        reference = None
        for precision in args.precision.split(","):
            for jit in args.jit.split(","):
                cfg = load_config(config, [f"train.mixed_precision={precision}", f"train.jit_compile={jit}"])
                setup_devices(cfg)
                bs = cfg.train.batch_size
                rng = np.random.default_rng(0)
                x = rng.integers(0, 256, (bs * 4, 32, 32, 3), dtype=np.uint8)
                y = rng.integers(0, 2, (bs * 4, 1)).astype(np.float32)
                ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(bs).repeat().prefetch(4)
                model = build_model(cfg.model)
                compile_model(model, cfg)
                model.fit(ds, steps_per_epoch=args.warmup, epochs=1, verbose=0)
                t = time.perf_counter()
                model.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
                speed = args.steps * bs / (time.perf_counter() - t)
                policy = keras.mixed_precision.global_policy().name
                reference = reference or speed
                print(
                    f"{Path(config).stem:<12} {policy:<15} {jit:<4} {model.count_params():>9,} "
                    f"{macs(model) / 1e6:>6.2f} {speed:>7,.0f} {speed / reference:>9.2f}x",
                    flush=True,
                )
                keras.mixed_precision.set_global_policy("float32")


if __name__ == "__main__":
    main()
