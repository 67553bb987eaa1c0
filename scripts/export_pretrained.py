#!/usr/bin/env python
"""Export a finished run's best.keras as the detector shipped in the package, with its model card.

    python scripts/export_pretrained.py runs/small_cnn

Writes cifake/pretrained/detector.keras (weights and architecture only: no optimizer state, so it
stays small) and cifake/pretrained/detector.json (recipe, validation metrics measured here with
`cifake evaluate`'s own code on the run's seeded validation split, date, versions, limitations).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

from cifake.detector import PRETRAINED_DIR, load_model_file
from cifake.evaluate import evaluate
from cifake.rundir import run_config
from cifake.tfutil import import_keras

LIMITATIONS = [
    "Sees 32x32 RGB only: larger images are downscaled first, which removes most generator traces.",
    "Trained on CIFAKE: REAL = CIFAR-10 photos, FAKE = Stable Diffusion 1.4 images in CIFAR-10's style. "
    "It has not been shown to work on other generators or other subjects; its accuracy under JPEG, blur, "
    "resizing, noise and brightness changes is measured on CIFAKE validation images in 'robustness' below, "
    "and anything beyond those operations is unknown until measured.",
    "Validation figures come from a seeded split of the Kaggle train split; the official test split was not used.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument(
        "--checkpoint",
        default="best.keras",
        help="file in the run directory to ship, e.g. best-calibrated.keras (from cifake evaluate --calibrate)",
    )
    ap.add_argument(
        "--as",
        dest="name",
        default="detector",
        choices=("detector", "robust"),
        help="detector: the default model of predict/serve; robust: the one chosen with --model robust",
    )
    args = ap.parse_args()
    keras = import_keras()
    target = PRETRAINED_DIR / f"{args.name}.keras"
    source = args.run_dir / args.checkpoint
    cfg = run_config(source)
    model = load_model_file(source)  # compile=False: no optimizer is carried over
    PRETRAINED_DIR.mkdir(exist_ok=True)
    model.save(target)
    keras.models.load_model(target, safe_mode=True)  # the shipped file must load safely
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate(source, split="val", plots=False, out=tmp, corruptions="all")
    run_metrics = json.loads((args.run_dir / "metrics.json").read_text())
    card = {
        "name": "cifake detector",
        "file": target.name,
        "bytes": target.stat().st_size,
        "parameters": model.count_params(),
        "trained": date.today().isoformat(),
        "recipe": {
            "model": vars(cfg.model),
            "augment": vars(cfg.augment),
            "train": {k: v for k, v in vars(cfg.train).items() if k not in ("runs_dir",)},
        },
        "data": {
            "train_images": round(
                100_000 * cfg.data.fraction * (1 - cfg.data.val_fraction)
            ),  # of the 100,000-image train split
            "val_fraction": cfg.data.val_fraction,
            "split_seed": cfg.data.split_seed,
            "fraction": cfg.data.fraction,
        },
        "validation": {
            k: report[k]
            for k in (
                "images",
                "threshold",
                "accuracy",
                "roc_auc",
                "average_precision",
                "log_loss",
                "brier",
                "ece",
                "fake",
                "real",
                "confusion",
            )
        },
        "robustness": {k: report["robustness"][k] for k in ("clean", "battery", "worst")},
        "calibrated": args.checkpoint.endswith("-calibrated.keras"),
        "train_seconds": run_metrics.get("train_seconds"),
        "epochs": run_metrics.get("epochs_run"),
        "versions": {"tensorflow": __import__("tensorflow").__version__, "keras": keras.__version__},
        "input": "RGB uint8 or float 0..255, shape (N, 32, 32, 3)",
        "output": "P(FAKE), shape (N, 1); FAKE = 1",
        "limitations": LIMITATIONS,
    }
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    print(
        f"wrote {target} ({card['bytes']:,} bytes, {card['parameters']:,} parameters); val accuracy "
        f"{report['accuracy']:.4f}, worst case {card['robustness']['worst']}"
    )


if __name__ == "__main__":
    main()
