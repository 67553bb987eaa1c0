#!/usr/bin/env python
"""Training frontier: the Keras-notebook baseline beside any number of cifake recipes, same split, one run.

    python scripts/bench_train.py --data-dir data/cifake \
        --config configs/fast.yaml --config configs/small_cnn.yaml --json bench.json --plot docs/frontier.png

Contenders (the baseline once, then each --config in order):
  baseline  the notebook users start from: keras.utils.image_dataset_from_directory (JPEGs decoded
            every epoch), batch 32, Rescaling, 2 x (Conv2D 32 + MaxPool), Flatten, Dense 64,
            Dense 1 sigmoid, Adam 1e-3 (cifake's `notebook_cnn` model), until it reaches the
            highest of --targets it can within --baseline-epochs.
  <stem>    each recipe, run by the very ``Trainer`` that ``cifake train`` runs (a cold decode of
            the train and validation images, no cache; model, whitening stem, optimizer with EMA,
            schedule, augmentation, checkpoints), for its configured epochs, in a temporary runs
            folder; validation uses the averaged weights when train.ema is on, as cifake train does.
Every contender sees the same images: the baseline reads a folder of symlinks to cifake's training
split. The clock covers data loading and training steps (for a recipe also its checkpoint writes);
validation checks (every --eval-every of an epoch, on the same validation images, and cifake train's
own pass at each epoch's end) pause it. Printed per contender: parameters, multiply-
accumulates per image, training images/s, seconds to each of --targets, final and best accuracy, and
the final model's accuracy with test-time augmentation (flip: 2 views, shift: 6), clock stopped.
Speed is only comparable within one run (same machine, same load): compare ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGETS = (0.93, 0.95, 0.97, 0.98)


class Clock:
    def __init__(self):
        self.total = 0.0
        self.started = None

    def start(self):
        self.started = time.perf_counter()

    def stop(self):
        self.total += time.perf_counter() - self.started
        self.started = None


def make_probe(keras, clock: Clock, val_x, val_y, args, stop_after_first: bool, log: list, steps: int | None = None):
    """Callback: every ``args.eval_every`` epochs, pause the clock and measure validation accuracy (with the
    averaged weights when the optimizer keeps them); with ``stop_after_first``, stop --budget-s after the
    first target is reached (the baseline only has to give B)."""
    from cifake.training.train import averaged_weights

    class Probe(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.step = 0
            self.hits: dict[float, float] = {}

        def on_test_begin(self, logs=None):  # cifake train's own validation pass: not training time
            clock.stop()

        def on_test_end(self, logs=None):
            clock.start()

        def on_train_batch_end(self, batch, logs=None):
            self.step += 1
            steps_per_epoch = steps or self.params["steps"]
            if self.step % max(1, round(args.eval_every * steps_per_epoch)):
                return
            clock.stop()
            averaged = averaged_weights(self.model)
            live = self.model.get_weights() if averaged is not None else None
            if averaged is not None:
                self.model.set_weights(averaged)
            p = self.model.predict(val_x, batch_size=1024, verbose=0).ravel()
            if live is not None:
                self.model.set_weights(live)
            acc = accuracy(p, val_y)
            log.append((self.step / steps_per_epoch, clock.total, acc))
            print(f"    epoch {self.step / steps_per_epoch:5.2f}  {clock.total:7.1f}s  val acc {acc:.4f}", flush=True)
            for t in args.targets:
                if t not in self.hits and acc >= t:
                    self.hits[t] = clock.total
            first = min(self.hits.values()) if self.hits else None
            if stop_after_first and first is not None and clock.total - first >= args.budget_s:
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
    from cifake.models.registry import build_model

    keras.mixed_precision.set_global_policy("float32")  # a notebook user's default
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
    probe = make_probe(keras, clock, val_x, val_y, args, True, log, steps)
    model.fit(ds, epochs=args.baseline_epochs, callbacks=[probe], verbose=0)
    clock.stop()
    return summarize("baseline", None, model, log, probe, clock, steps * 32, "float32")


def run_recipe(args, config: str, val_x, val_y) -> dict:
    import keras

    from cifake.config import load_config
    from cifake.models.detector import predict_tta
    from cifake.training.train import Trainer, averaged_weights

    path, *own = config.split()  # "configs/fast.yaml train.ema=0": a recipe and overrides of its own
    runs = tempfile.mkdtemp(prefix="bench-runs-")
    cfg = load_config(
        path,
        [
            f"data.dir={args.data_dir}",
            f"data.fraction={args.fraction}",
            "data.cache=false",
            f"train.runs_dir={runs}",
            "train.tensorboard=false",
            *args.overrides,
            *own,
        ],
    )
    clock, log = Clock(), []
    probe = make_probe(keras, clock, val_x, val_y, args, False, log)
    trainer = Trainer(cfg, callbacks=[probe])  # the very object `cifake train` runs
    try:
        clock.start()
        trainer.setup()  # devices, a cold decode, the model: counted
        trainer.fit()
        clock.stop()
        model = trainer.model
        precision = keras.mixed_precision.global_policy().name
        averaged = averaged_weights(model)
        if averaged is not None:  # the weights cifake train would save in best.keras
            model.set_weights(averaged)
        tta = {mode: accuracy(predict_tta(model, val_x, 1024, mode), val_y) for mode in ("flip", "shift")}
    finally:
        keras.mixed_precision.set_global_policy("float32")
        shutil.rmtree(runs, ignore_errors=True)
    name = " ".join([Path(path).stem, *own])
    images = trainer.steps_per_epoch * cfg.train.batch_size
    return {**summarize(name, config, model, log, probe, clock, images, precision), "final_val_accuracy_tta": tta}


def accuracy(p, y) -> float:
    return float(((p >= 0.5) == y.astype(bool)).mean())


def summarize(name, config, model, log, probe, clock, images_per_epoch, precision: str) -> dict:
    from cifake.models.registry import macs

    epochs = log[-1][0] if log else 0.0
    return {
        "name": name,
        "config": config,
        "params": model.count_params(),
        "macs": macs(model),
        "precision": precision,
        "images_per_second": round(epochs * images_per_epoch / clock.total, 1),
        "seconds_to": {f"{t:.2f}": (round(probe.hits[t], 1) if t in probe.hits else None) for t in TARGETS},
        "final_val_accuracy": log[-1][2] if log else None,
        "best_val_accuracy": max(a for _, _, a in log) if log else None,
        "seconds": round(clock.total, 1),
        "epochs": epochs,
        "curve": [[round(e, 3), round(s, 2), round(a, 5)] for e, s, a in log],
    }


def machine() -> str:
    import tensorflow as tf

    from cifake.base.tfutil import cpu_flags
    from cifake.training.devices import choose_precision

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    auto = choose_precision("auto", [], cpu_flags())[0]
    gpus = len(tf.config.list_physical_devices("GPU"))
    return (
        f"{model}, {os.cpu_count()} cores, GPUs: {gpus}, TensorFlow {tf.__version__}; auto precision on the CPU: {auto}"
    )


def print_table(result: dict) -> None:
    rows = result["contenders"]
    base = next((r for r in rows if r["name"] == "baseline"), None)
    b = base["seconds_to"]["0.93"] if base else None
    print(f"\nmachine: {result['machine']}")
    print(f"data: {result['data']}")
    w = max(16, *(len(r["name"]) for r in rows))
    head = f"{'contender':<{w}} {'params':>9} {'MMACs':>6} {'img/s':>7}"
    head += "".join(f" {'s to ' + format(t, '.0%'):>9}" for t in TARGETS)
    print(head + f" {'final':>7} {'best':>7} {'+flip':>7} {'+shift':>7} {'epochs':>6}")
    for r in rows:
        line = f"{r['name']:<{w}} {r['params']:>9,} {r['macs'] / 1e6:>6.2f} {r['images_per_second']:>7,.0f}"
        for t in TARGETS:
            s = r["seconds_to"][f"{t:.2f}"]
            line += f" {(f'{s:.1f}' if s is not None else '-'):>9}"
        tta = r.get("final_val_accuracy_tta") or {}
        flip, shift = (f"{tta[m]:.4f}" if m in tta else "-" for m in ("flip", "shift"))
        line += f" {r['final_val_accuracy'] or 0:>7.4f} {r['best_val_accuracy'] or 0:>7.4f} {flip:>7} {shift:>7}"
        print(line + f" {r['epochs']:>6.2f}")
    if b:
        print(f"\nB = the baseline's seconds to 93% = {b:.1f} s; each recipe as a multiple of B:")
        for r in rows:
            if r is base:
                continue
            parts = [
                f"{t:.0%} at {r['seconds_to'][f'{t:.2f}'] / b:.2f}B"
                for t in TARGETS
                if r["seconds_to"][f"{t:.2f}"] is not None
            ]
            print(f"  {r['name']:<{w}} {', '.join(parts) or 'no target reached'}")


def markdown(result: dict) -> str:
    """The table as Markdown (docs/benchmarks.md), seconds and multiples of B where a baseline ran."""
    rows = result["contenders"]
    base = next((r for r in rows if r["name"] == "baseline"), None)
    b = base["seconds_to"]["0.93"] if base else None
    head = "| contender | parameters | MACs | train img/s | " + " | ".join(f"s to {t:.0%}" for t in TARGETS)
    out = [head + " | final | best | final +flip TTA | final +shift TTA |", "|---" + "|---:" * (len(TARGETS) + 7) + "|"]
    for r in rows:
        cells = [f"`{r['name']}`", f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}M", f"{r['images_per_second']:,.0f}"]
        for t in TARGETS:
            sec = r["seconds_to"][f"{t:.2f}"]
            cells.append("-" if sec is None else f"{sec:.1f}" + (f" ({sec / b:.2f}B)" if b and r is not base else ""))
        tta = r.get("final_val_accuracy_tta") or {}
        cells += [f"{r['final_val_accuracy']:.4f}", f"{r['best_val_accuracy']:.4f}"]
        cells += [f"{tta[m]:.4f}" if m in tta else "-" for m in ("flip", "shift")]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for r in result["contenders"]:
        if r["curve"]:
            _, secs, accs = zip(*r["curve"], strict=True)
            ax.plot(
                secs,
                accs,
                marker=".",
                label=f"{r['name']} ({r['params'] / 1e3:.0f}k params, {r['macs'] / 1e6:.1f}M MACs)",
            )
    for t in TARGETS:
        ax.axhline(t, color="grey", lw=0.5, ls=":")
    base = next((r for r in result["contenders"] if r["name"] == "baseline"), None)
    if base and base["seconds_to"]["0.93"]:
        b = base["seconds_to"]["0.93"]
        for mult, label in ((0.2, "B/5"), (3, "3B"), (20, "20B")):
            ax.axvline(mult * b, color="tab:red", lw=0.6, ls="--")
            ax.text(mult * b, 0.905, f" {label}", color="tab:red", fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(0.9, 1.0)
    ax.set_xlabel("seconds of data loading and training (validation pauses excluded), log scale")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"cifake training frontier\n{result['machine']}", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data/cifake")
    ap.add_argument(
        "--config",
        action="append",
        help="a recipe to time (repeat for several), optionally with overrides of its own in the same argument: "
        "--config 'configs/fast.yaml train.ema=0' (an ablation); default: configs/small_cnn.yaml",
    )
    ap.add_argument("overrides", nargs="*", help="key=value overrides applied to every recipe")
    ap.add_argument(
        "--budget-s", type=float, default=0.0, help="seconds the baseline keeps training after 93%% (0: stop there)"
    )
    ap.add_argument("--baseline-epochs", type=int, default=10, help="most epochs the baseline gets")
    ap.add_argument("--no-baseline", action="store_true", help="time the recipes only (no B: quick checks)")
    ap.add_argument("--eval-every", type=float, default=0.25, help="validation check interval, in epochs")
    ap.add_argument("--fraction", type=float, default=1.0, help="share of the train split (quick checks only)")
    ap.add_argument("--json", type=Path, help="write the figures (and curves) to this JSON file")
    ap.add_argument("--plot", type=Path, help="draw validation accuracy against seconds to this PNG")
    ap.add_argument("--from-json", type=Path, help="print and plot an earlier --json file instead of training")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args()
    args.targets = TARGETS

    if args.from_json:
        result = json.loads(args.from_json.read_text())
        print_table(result)
        if args.markdown:
            print("\n" + markdown(result))
        if args.plot:
            plot(result, args.plot)
        return

    from cifake.base import logs
    from cifake.config import DataConfig
    from cifake.data.listing import load_splits

    logs.setup()  # cifake's own lines (devices, epochs) as `cifake train` prints them
    splits = load_splits(DataConfig(dir=args.data_dir, fraction=args.fraction), progress=False)  # split + val arrays
    val_x, val_y = splits["val"].images, splits["val"].labels
    result = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "data": f"train {len(splits['train']):,} / val {len(val_y):,} images from {args.data_dir}",
        "contenders": [],
    }
    for path in splits["train"].paths:  # warm the OS file cache: neither contender pays for the disk
        Path(path).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_baseline:
            print("\n== baseline", flush=True)
            result["contenders"].append(run_baseline(args, splits, val_x, val_y, Path(tmp)))
            shutil.rmtree(Path(tmp) / "train", ignore_errors=True)
    for config in args.config or ["configs/small_cnn.yaml"]:
        print(f"\n== {config}", flush=True)
        result["contenders"].append(run_recipe(args, config, val_x, val_y))
        if args.json:  # after every contender: a long run that dies keeps what it measured
            args.json.write_text(json.dumps(result, indent=1) + "\n")
    print_table(result)
    if args.markdown:
        print("\n" + markdown(result))
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
