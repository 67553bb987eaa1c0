#!/usr/bin/env python
"""Ship a finished run's model as cifake's one detector, with its int8 export and its model card.

    python scripts/export_pretrained.py runs/detector --checkpoint best-calibrated.keras \
        --generators fakes/val --other-generators generators/val --leave-one-out logo.json

Writes cifake/pretrained/detector.keras (weights and architecture only: no optimizer state, so it
stays small), detector-int8.tflite with its parity card (`cifake export --int8`, checked on the
whole validation split), and detector.json: recipe, validation metrics and the corruption battery
measured with `cifake evaluate`'s own code on the run's seeded validation split, per-generator
figures on --generators (a `cifake fakes` val folder) and on --other-generators (a `cifake
generators` val folder: other projects' generators, with each family's mean), the leave-one-out
table of scripts/leave_one_out.py, date, versions and limitations in plain words.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from cifake.base.tfutil import import_keras
from cifake.data.listing import image_files
from cifake.models.detector import THRESHOLD_FILE, load_model_file
from cifake.models.presets import PRETRAINED_DIR, PRETRAINED_INT8
from cifake.tasks.evaluate import evaluate
from cifake.training.rundir import run_config

LIMITATIONS = [
    "Sees 32x32 RGB only: larger images are downscaled first, which removes most generator traces.",
    "Trained on CIFAKE (REAL = CIFAR-10 photos, FAKE = Stable Diffusion 1.4 images in CIFAR-10's style) plus "
    "fakes of four small generators made with `cifake fakes` on the training photos (autoencoder and diffusion "
    "reconstructions, VAE and DCGAN samples). 'generators' below shows how it scores each of them on held-out "
    "images, and 'leave_one_out' how a detector trained without one of them scores it: a generator unlike all "
    "of these can still be called REAL.",
    "Robust to the operations of the corruption battery ('robustness': JPEG down to quality 30, blur, "
    "down-and-up resizing, noise, brightness and contrast), because it was trained with them from the first "
    "epoch; anything beyond those operations (crops, filters, screenshots, heavy edits) is unknown until measured.",
    "Validation figures come from a seeded split of the Kaggle train split; the official test split was not used.",
    "Other projects' generators of CIFAR-10-like images may pass it: 'other_generators' (when given) scores it on "
    "the evaluation halves of `cifake generators`' folders.",
]


def other_generators(model: Path, folder: Path) -> dict:
    """``per_source`` on a `cifake generators` val folder, with each benchmark group's mean ROC AUC."""
    figures = per_source(model, folder)
    manifest = json.loads((folder.parent / "generators.json").read_text())["generators"]
    groups: dict[str, list[float]] = {}
    for name, r in figures["per_source"].items():
        figures["per_source"][name]["group"] = manifest.get(name, {}).get("group", "other")
        groups.setdefault(figures["per_source"][name]["group"], []).append(r["roc_auc"])
    figures["group_mean_roc_auc"] = {g: sum(v) / len(v) for g, v in sorted(groups.items())}
    return figures


def per_source(model: Path, folder: Path) -> dict:
    """Each generator's figures on a `cifake fakes` val folder (REAL copies against each FAKE/<generator>/)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate(model, data_dir=str(folder), plots=False, out=tmp)
    return {
        "folder": str(folder),
        "images": report["images"],
        "pooled": {"accuracy": report["accuracy"], "roc_auc": report["roc_auc"]},
        "per_source": report["per_source"],
    }


def export_int8(target: Path, data_dir: str) -> dict:
    """cifake export --int8 of the shipped file, written outside the package, then moved in beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / PRETRAINED_INT8.name
        cmd = [sys.executable, "-m", "cifake", "export", str(target), "--int8", "--out", str(out)]
        subprocess.run([*cmd, "--data-dir", data_dir, "--check-images", "0"], check=True)
        card = json.loads(out.with_name(out.name + ".json").read_text())
        shutil.move(out, PRETRAINED_INT8)
        card["file"], card["source"] = PRETRAINED_INT8.name, target.name
        PRETRAINED_INT8.with_name(PRETRAINED_INT8.name + ".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument(
        "--checkpoint",
        default="best.keras",
        help="file in the run directory to ship, e.g. best-calibrated.keras (from cifake evaluate --calibrate)",
    )
    ap.add_argument("--generators", type=Path, help="a `cifake fakes` val folder: per-generator figures for the card")
    ap.add_argument(
        "--other-generators",
        type=Path,
        help="a `cifake generators` val folder: other projects' generators, per generator",
    )
    ap.add_argument("--leave-one-out", type=Path, help="the --json of scripts/leave_one_out.py, copied into the card")
    ap.add_argument("--data-dir", default=None, help="dataset of the checks (default: the run's data.dir)")
    args = ap.parse_args()
    keras = import_keras()
    target = PRETRAINED_DIR / "detector.keras"
    source = args.run_dir / args.checkpoint
    cfg = run_config(source)
    model = load_model_file(source)  # compile=False: no optimizer is carried over
    PRETRAINED_DIR.mkdir(exist_ok=True)
    model.save(target)
    keras.models.load_model(target, safe_mode=True)  # the shipped file must load safely
    data_dir = args.data_dir or cfg.data.dir
    threshold_file = PRETRAINED_DIR / THRESHOLD_FILE
    threshold_file.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # the threshold, chosen on the validation split
        evaluate(target, split="val", data_dir=data_dir, plots=False, out=tmp, choose_threshold=True)
        chosen = json.loads((Path(tmp) / THRESHOLD_FILE).read_text())
    chosen.pop("model", None)  # applies to detector.keras and to its int8 export alike
    threshold_file.write_text(json.dumps(chosen, indent=2) + "\n")
    with tempfile.TemporaryDirectory() as tmp:  # every figure of the card at that threshold
        report = evaluate(target, split="val", data_dir=data_dir, plots=False, out=tmp, corruptions="all")
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
            "extra_fake": {f: len(image_files(f)) for f in cfg.data.extra_fake if Path(f).is_dir()},
            "extra_real": {f: len(image_files(f)) for f in cfg.data.extra_real if Path(f).is_dir()},
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
        "generators": per_source(target, args.generators) if args.generators else None,
        "other_generators": other_generators(target, args.other_generators) if args.other_generators else None,
        "leave_one_out": json.loads(args.leave_one_out.read_text()) if args.leave_one_out else None,
        "calibrated": args.checkpoint.endswith("-calibrated.keras"),
        "calibration": run_metrics.get("evaluate", {}).get("val", {}).get("calibration"),
        "threshold": chosen,
        "train_seconds": run_metrics.get("train_seconds"),
        "epochs": run_metrics.get("epochs_run"),
        "versions": {"tensorflow": __import__("tensorflow").__version__, "keras": keras.__version__},
        "input": "RGB uint8 or float 0..255, shape (N, 32, 32, 3)",
        "output": "P(FAKE), shape (N, 1); FAKE = 1",
        "limitations": LIMITATIONS,
    }
    target.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    for old in ("robust.keras", "robust.json"):  # one detector: 'robust' is now a name for detector.keras
        (PRETRAINED_DIR / old).unlink(missing_ok=True)
    int8 = export_int8(target, data_dir)
    print(f"wrote {PRETRAINED_INT8} (label agreement {int8['label_agreement']:.4f} on {int8['images']:,} images)")
    print(
        f"wrote {target} ({card['bytes']:,} bytes, {card['parameters']:,} parameters); val accuracy "
        f"{report['accuracy']:.4f}, worst case {card['robustness']['worst']}"
    )


if __name__ == "__main__":
    main()
