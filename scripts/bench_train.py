#!/usr/bin/env python
"""Training benchmark: the Keras-notebook baseline beside a cifake recipe, same split, one run.

    python scripts/bench_train.py --data-dir data/cifake --config configs/small_cnn.yaml

Contenders, each trained until it reaches --target validation accuracy and then --budget-s more
seconds at most (or its configured epochs, for the recipe):
  baseline  the notebook users start from: keras.utils.image_dataset_from_directory (JPEGs decoded
            every epoch), batch 32, Rescaling, 2 x (Conv2D 32 + MaxPool), Flatten, Dense 64,
            Dense 1 sigmoid, Adam 1e-3 (cifake's `notebook_cnn` model).
  cifake    the recipe given by --config, through cifake's own loader (a cold decode, no cache) and
            trainer pieces (model, optimizer, schedule, augmentation).
Both see the same images: the baseline reads a folder of symlinks to cifake's training split.
The clock covers data loading and training steps; validation checks (every --eval-every of an
epoch, on the same 10,000 validation images) pause it. Printed per contender: training images/s,
seconds to the target, validation accuracy at the end, parameters.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class Clock:
    def __init__(self):
        self.total = 0.0
        self.started = None

    def start(self):
        self.started = time.perf_counter()

    def stop(self):
        self.total += time.perf_counter() - self.started
        self.started = None

    def now(self) -> float:
        return self.total + (time.perf_counter() - self.started if self.started else 0.0)


def make_probe(
    keras, clock: Clock, val_x, val_y, steps_per_epoch: int, every: float, target: float, budget_after: float, log: list
):
    """Callback: every ``every`` epochs, pause the clock, measure val accuracy, stop when done."""
    interval = max(1, round(every * steps_per_epoch))

    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0
            self.hit = None

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            if self.step % interval:
                return
            clock.stop()
            p = self.model.predict(val_x, batch_size=1024, verbose=0).ravel()
            acc = float(((p >= 0.5) == val_y.astype(bool)).mean())
            log.append((self.step / steps_per_epoch, clock.total, acc))
            print(f"    epoch {self.step / steps_per_epoch:5.2f}  {clock.total:7.1f}s  val acc {acc:.4f}", flush=True)
            if self.hit is None and acc >= target:
                self.hit = clock.total
            if self.hit is not None and clock.total - self.hit >= budget_after:
                self.model.stop_training = True
            clock.start()

    return Probe()


def link_split(split, root: Path) -> Path:
    for path, label in zip(split.paths, split.labels, strict=True):
        folder = root / ("FAKE" if label else "REAL")
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.abspath(path), folder / Path(path).name)
    return root


def run_baseline(args, splits, val_x, val_y, tmp: Path) -> dict:
    import keras

    from cifake.config import ModelConfig
    from cifake.models import build_model

    train_dir = link_split(splits["train"], tmp / "train")
    keras.utils.set_random_seed(0)
    clock, log = Clock(), []
    clock.start()
    ds = keras.utils.image_dataset_from_directory(
        train_dir,
        labels="inferred",
        label_mode="binary",
        class_names=["REAL", "FAKE"],
        image_size=(32, 32),
        batch_size=32,
        seed=0,
        verbose=False,
    )
    model = build_model(ModelConfig(name="notebook_cnn"))
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    steps = math.ceil(len(splits["train"]) / 32)
    probe = make_probe(keras, clock, val_x, val_y, steps, args.eval_every, args.target, args.budget_s, log)
    model.fit(ds, epochs=args.baseline_epochs, callbacks=[probe], verbose=0)
    clock.stop()
    return summarize("baseline (notebook)", model, log, probe, clock, steps * 32)


def run_cifake(args, splits, val_x, val_y) -> dict:
    import keras

    from cifake.config import load_config
    from cifake.data import load_splits, train_dataset
    from cifake.models import build_model
    from cifake.schedule import lr_callback
    from cifake.train import compile_model

    cfg = load_config(
        args.config,
        [f"data.dir={args.data_dir}", f"data.fraction={args.fraction}", "data.cache=false", *args.overrides],
    )
    keras.utils.set_random_seed(cfg.train.seed)
    clock, log = Clock(), []
    clock.start()
    split = load_splits(cfg.data, progress=False)["train"]  # a cold decode: counted
    bs = cfg.train.batch_size
    steps = math.ceil(len(split) / bs)
    model = build_model(cfg.model)
    compile_model(model, cfg)
    probe = make_probe(keras, clock, val_x, val_y, steps, args.eval_every, args.target, args.budget_s, log)
    ds = train_dataset(
        split, bs, seed=cfg.train.seed, epochs=cfg.train.epochs, flip=cfg.augment.flip, shift=cfg.augment.shift
    )
    model.fit(
        ds,
        epochs=cfg.train.epochs,
        steps_per_epoch=steps,
        callbacks=[lr_callback(cfg.train, steps), probe],
        verbose=0,
        shuffle=False,
    )
    clock.stop()
    return summarize(f"cifake {Path(args.config).stem}", model, log, probe, clock, steps * bs)


def summarize(name, model, log, probe, clock, images_per_epoch) -> dict:
    epochs = log[-1][0] if log else 0.0
    return {
        "name": name,
        "params": model.count_params(),
        "img_s": epochs * images_per_epoch / clock.total,
        "to_target": probe.hit,
        "final": log[-1][2] if log else float("nan"),
        "best": max(a for _, _, a in log) if log else float("nan"),
        "seconds": clock.total,
        "epochs": epochs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument("--config", default="configs/small_cnn.yaml")
    ap.add_argument("overrides", nargs="*", help="key=value overrides for the cifake recipe")
    ap.add_argument("--target", type=float, default=0.93, help="validation accuracy to time")
    ap.add_argument(
        "--budget-s", type=float, default=0.0, help="seconds to keep training after the target (0: stop at the target)"
    )
    ap.add_argument("--baseline-epochs", type=int, default=10, help="most epochs the baseline gets")
    ap.add_argument("--eval-every", type=float, default=0.25, help="validation check interval, in epochs")
    ap.add_argument("--only", choices=("baseline", "cifake"), help="run one contender")
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the train split (quick checks only)")
    args = ap.parse_args()

    import tensorflow as tf

    from cifake.config import DataConfig
    from cifake.data import load_splits

    splits = load_splits(
        DataConfig(dir=args.data_dir, fraction=args.fraction), progress=False
    )  # warm cache: only for the split and val arrays
    val_x, val_y = splits["val"].images, splits["val"].labels
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for who in ("baseline", "cifake"):
            if args.only and who != args.only:
                continue
            print(f"\n== {who}", flush=True)
            results.append(
                run_baseline(args, splits, val_x, val_y, Path(tmp))
                if who == "baseline"
                else run_cifake(args, splits, val_x, val_y)
            )
            shutil.rmtree(Path(tmp) / "train", ignore_errors=True)
    print(
        f"\nmachine: {os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}, TensorFlow {tf.__version__}; "
        f"train {len(splits['train']):,} / val {len(val_y):,} images from {args.data_dir}"
    )
    print(
        f"{'contender':<26} {'params':>9} {'train img/s':>11} {f's to {args.target:.0%}':>9} {'val acc end':>11} {'best':>7} {'epochs':>6} {'seconds':>8}"
    )
    for r in results:
        hit = f"{r['to_target']:.1f}" if r["to_target"] is not None else "never"
        print(
            f"{r['name']:<26} {r['params']:>9,} {r['img_s']:>11,.0f} {hit:>9} {r['final']:>11.4f} {r['best']:>7.4f} {r['epochs']:>6.2f} {r['seconds']:>8.1f}"
        )
    if len(results) == 2 and all(r["to_target"] for r in results):
        print(f"speed-up to {args.target:.0%}: {results[0]['to_target'] / results[1]['to_target']:.1f}x")


if __name__ == "__main__":
    main()
