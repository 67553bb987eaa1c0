#!/usr/bin/env python
"""Leave-one-generator-out: does a detector catch a generator it was never shown?

    python scripts/leave_one_out.py --fakes fakes --config configs/detector.yaml train.epochs=5

For the folder written by `cifake fakes --out fakes`, trains one run per row with the CLI:
  none          CIFAKE only (no extra fakes): the baseline every lever is compared with
  -GENERATOR    CIFAKE plus every generator's training fakes but GENERATOR's
then evaluates each run on fakes/val (REAL validation copies against each generator's evaluation
fakes) with `cifake evaluate RUN --data-dir fakes/val`, and prints per run its CIFAKE validation
accuracy and, per generator, ROC AUC and FAKE recall; the held-out generator's cell is the
leave-one-out figure. A run whose metrics already exist is not trained again (rerun to resume a
table). Writes --json with every figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def cifake(*argv: str) -> None:
    cmd = [sys.executable, "-m", "cifake", *argv]
    print("$ cifake " + " ".join(argv), flush=True)
    if subprocess.run(cmd).returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}")


def finished(run: Path) -> bool:
    try:
        return "train_seconds" in json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fakes", type=Path, required=True, help="the --out folder of cifake fakes")
    ap.add_argument("--config", default="configs/detector.yaml")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"))
    ap.add_argument("--prefix", default="logo", help="run names: PREFIX_none, PREFIX_GENERATOR")
    ap.add_argument("--json", type=Path, default=None, help="write the table here")
    ap.add_argument("overrides", nargs="*", help="config overrides for every run (e.g. train.epochs=5)")
    args = ap.parse_args()
    generators = sorted(p.name for p in (args.fakes / "train" / "FAKE").iterdir() if p.is_dir())
    if len(generators) < 2:
        sys.exit(f"{args.fakes}/train/FAKE needs at least two generators' folders (make them with cifake fakes)")
    table = {}
    for held in ["none", *generators]:
        name = f"{args.prefix}_{held}"
        run = args.runs_dir / name
        extra = [str(args.fakes / "train" / "FAKE" / g) for g in generators if held != "none" and g != held]
        if not finished(run):
            cifake(
                "train", "--config", args.config, *args.overrides, f"data.extra_fake=[{','.join(extra)}]",
                f"train.runs_dir={args.runs_dir}", "--name", name,
            )  # fmt: skip
        out = run / "eval-generators"
        if not (out / "metrics.json").is_file():
            cifake("evaluate", str(run), "--data-dir", str(args.fakes / "val"), "--out", str(out), "--no-plots")
        ev = json.loads((out / "metrics.json").read_text())["evaluate"]["sources"]
        val = json.loads((run / "metrics.json").read_text())
        table[held] = {
            "trained_with": [g for g in generators if held != "none" and g != held],
            "val_accuracy": val.get("accuracy"),
            "sources": {g: {k: r[k] for k in ("roc_auc", "fake_recall")} for g, r in ev["per_source"].items()},
        }
    print(
        f"\nleave-one-generator-out ({args.config} {' '.join(args.overrides)}; AUC / FAKE recall on {args.fakes}/val)"
    )
    print(f"{'run':22s} {'CIFAKE val':>10s}  " + "  ".join(f"{g:>16s}" for g in generators))
    for held, row in table.items():
        cells = []
        for g in generators:
            s = row["sources"].get(g)
            mark = "*" if g == held else " "
            cells.append(f"{s['roc_auc']:.3f} / {s['fake_recall']:.2f}{mark}" if s else "-")
        label = "CIFAKE only" if held == "none" else f"all but {held}"
        acc = row["val_accuracy"]
        print(
            f"{label:22s} {acc if acc is None else format(acc, '.4f'):>10s}  " + "  ".join(f"{c:>16s}" for c in cells)
        )
    print("* = the generator left out of that run's training: the leave-one-out figure")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n")


if __name__ == "__main__":
    main()
