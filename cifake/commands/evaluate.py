"""cifake evaluate: metrics, per-class accuracy, plots and mistakes of a checkpoint on a split."""

from __future__ import annotations

import argparse

from ._options import add_scoring_args

HELP = "metrics, per-class accuracy and plots for a checkpoint"
DESCRIPTION = (
    "Evaluate a .keras model (or a run directory: its best.keras) on a split of data.dir and write\n"
    "metrics.json and plots next to the checkpoint."
)
EXAMPLE = "cifake evaluate runs/small_cnn --split val"


def add_arguments(p) -> None:
    from ..data.corruptions import battery_help

    p.add_argument("checkpoint", help=".keras file or run directory")
    p.add_argument("--data-dir", default=None, help="dataset root (default: the run's data.dir, else data/cifake)")
    p.add_argument("--split", choices=("test", "val", "train"), default=None, help="default: test if present, else val")
    p.add_argument(
        "--choose-threshold",
        action="store_true",
        help="pick the accuracy-maximising threshold on --split val and store it in threshold.json next to the "
        "checkpoint, where later evaluations and predictions of that file find it (a shipped model's goes to --out)",
    )
    p.add_argument(
        "--plots", action=argparse.BooleanOptionalAction, default=True, help="draw the figures (--no-plots skips them)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="where metrics.json and eval-SPLIT/ go (default: the checkpoint's folder; for a shipped model, "
        "runs/pretrained/: nothing is written inside the package)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="with --split val: fit a temperature on the validation split, fold it into the last layer and write "
        "CHECKPOINT-calibrated.keras beside the checkpoint; prints ECE before and after",
    )
    p.add_argument(
        "--corruptions",
        nargs="?",
        const="all",
        metavar="all|NAME[:LEVEL],...",
        help=f"also score the split under the corruption battery ({battery_help()}); a robustness table, "
        "metrics.json section and robustness.png",
    )
    add_scoring_args(p)


EXIT_SOME_UNREADABLE = 3  # as cifake predict: the figures stand, but some files were left out


def run(args) -> int:
    import sys

    from ..tasks.evaluate import evaluate

    report = evaluate(
        args.checkpoint,
        split=args.split,
        data_dir=args.data_dir,
        threshold=args.threshold,
        batch_size=args.batch_size,
        plots=args.plots,
        out=args.out,
        choose_threshold=args.choose_threshold,
        tta=args.tta,
        corruptions=args.corruptions,
        calibrate=args.calibrate,
    )
    sys.stdout.flush()
    return EXIT_SOME_UNREADABLE if report["skipped"] else 0
