"""Is the robust augmentation a bottleneck? Pipeline images/s against training images/s, same run.

Prints (1) images/s of the tf.data training pipeline alone, with flip + shift and with the robust
augmentations of a config on top, and (2) images/s of `fit` on the config's model with each
pipeline (30 steps after 10 warm-up steps). If (2) is the same with and without the robust
augmentations, they are not the bottleneck.

    python scripts/bench_augment.py --data-dir data/cifake --config configs/detector.yaml
"""

from __future__ import annotations

import argparse
import time

from cifake.config import load_config
from cifake.data.listing import load_splits
from cifake.data.pipelines import train_dataset
from cifake.models.registry import build_model
from cifake.training.train import compile_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--config", default="configs/detector.yaml")
    ap.add_argument("--fraction", type=float, default=0.2, help="share of the train split to load")
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    cfg = load_config(args.config, [f"data.dir={args.data_dir}", f"data.fraction={args.fraction}", "model.init="])
    split = load_splits(cfg.data, progress=False)["train"]
    bs = cfg.train.batch_size

    def dataset(robust: bool):
        aug = cfg.augment
        return train_dataset(
            split, bs, seed=0, epochs=3, flip=aug.flip, shift=aug.shift, robust=aug if robust else None
        )

    rows = []
    for robust in (False, True):
        it = iter(dataset(robust))
        for _ in range(5):
            next(it)
        t = time.perf_counter()
        for _ in range(args.steps):
            next(it)
        rows.append((f"pipeline only, robust={robust}", args.steps * bs / (time.perf_counter() - t)))
    for robust in (False, True):
        model = build_model(cfg.model)
        compile_model(model, cfg)
        model.fit(dataset(robust), steps_per_epoch=10, epochs=1, verbose=0)
        t = time.perf_counter()
        model.fit(dataset(robust), steps_per_epoch=args.steps, epochs=1, verbose=0)
        rows.append((f"training step (fit), robust={robust}", args.steps * bs / (time.perf_counter() - t)))
    for what, rate in rows:
        print(f"{what:<40} {rate:>9,.0f} images/s")


if __name__ == "__main__":
    main()
