#!/usr/bin/env python
"""Leave-one-out: does a detector catch a generator, or a family of generators, it was never shown?

    python scripts/leave_one_out.py --fakes fakes --config configs/detector.yaml train.epochs=5
    python scripts/leave_one_out.py --generators generators --by group --config configs/detector.yaml train.epochs=5

For a folder written by `cifake fakes --out DIR` or `cifake generators SOURCE --out DIR` (both lay out
DIR/train/FAKE/<generator>/ and DIR/val/{REAL,FAKE/<generator>}), trains one run per row with the CLI:
  none          CIFAKE only (no extra fakes): the baseline every lever is compared with
  -UNIT         CIFAKE plus every generator's training samples but UNIT's
where a UNIT is one generator (--by generator, the default for --fakes) or one benchmark family of
generators.json (--by group: GAN, diffusion, flow, other; the default for --generators). --extra FOLDER
adds a FAKE folder to every run but the baseline (e.g. `cifake fakes`' made-here families beside the
31: a lever). Each run is then evaluated on DIR/val (`cifake evaluate RUN --data-dir DIR/val`): per
generator ROC AUC and FAKE recall against the validation photos, and per unit the mean over its
generators; the held-out unit's cell is the leave-one-out figure, and the mean over held-out units
is the benchmark's score. A run whose metrics exist is not trained again (rerun to resume a table).
Writes --json with every figure.
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
    if subprocess.run(cmd).returncode not in (0, 3):  # 3: some files skipped (said on stderr)
        sys.exit(f"failed: {' '.join(cmd)}")


def finished(run: Path) -> bool:
    try:
        return "train_seconds" in json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return False


def units_of(root: Path, generators: list[str], by: str) -> dict[str, list[str]]:
    """{unit: its generators}: one generator each, or generators.json's benchmark groups."""
    if by == "generator":
        return {g: [g] for g in generators}
    manifest = root / "generators.json"
    try:
        info = json.loads(manifest.read_text())["generators"]
    except (OSError, ValueError, KeyError):
        sys.exit(f"--by group needs {manifest} (written by cifake generators)")
    units: dict[str, list[str]] = {}
    for g in generators:
        units.setdefault(info.get(g, {}).get("group", "other"), []).append(g)
    return dict(sorted(units.items()))


def mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--fakes", type=Path, help="the --out folder of cifake fakes")
    src.add_argument("--generators", type=Path, help="the --out folder of cifake generators")
    ap.add_argument("--by", choices=("generator", "group"), help="what is held out (see above)")
    ap.add_argument("--extra", type=Path, action="append", default=[], help="a FAKE folder added to every run but none")
    ap.add_argument("--config", default="configs/detector.yaml")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs"))
    ap.add_argument("--prefix", default="logo", help="run names: PREFIX_none, PREFIX_UNIT")
    ap.add_argument("--json", type=Path, default=None, help="write the table here")
    ap.add_argument("overrides", nargs="*", help="config overrides for every run (e.g. train.epochs=5)")
    args = ap.parse_args()
    root = args.fakes or args.generators
    by = args.by or ("group" if args.generators else "generator")
    generators = sorted(p.name for p in (root / "train" / "FAKE").iterdir() if p.is_dir())
    if len(generators) < 2:
        sys.exit(f"{root}/train/FAKE needs at least two generators' folders (cifake fakes or cifake generators)")
    units = units_of(root, generators, by)
    if len(units) < 2:
        sys.exit(f"{root}: only one {by} ({', '.join(units)}): nothing to hold out")
    table = {}
    for held in ["none", *units]:
        name = f"{args.prefix}_{held}"
        run = args.runs_dir / name
        trained = [g for g in generators if held != "none" and g not in units[held]]
        extra = [str(root / "train" / "FAKE" / g) for g in trained]
        extra += [str(f) for f in args.extra] if held != "none" else []
        if not finished(run):
            cifake(
                "train", "--config", args.config, *args.overrides, f"data.extra_fake=[{','.join(extra)}]",
                f"train.runs_dir={args.runs_dir}", "--name", name,
            )  # fmt: skip
        out = run / "eval-generators"
        if not (out / "metrics.json").is_file():
            cifake("evaluate", str(run), "--data-dir", str(root / "val"), "--out", str(out), "--no-plots")
        ev = json.loads((out / "metrics.json").read_text())["evaluate"]["sources"]
        val = json.loads((run / "metrics.json").read_text())
        per = {g: {k: r[k] for k in ("roc_auc", "fake_recall", "images")} for g, r in ev["per_source"].items()}
        table[held] = {
            "trained_with": trained,
            "extra": [str(f) for f in args.extra] if held != "none" else [],
            "val_accuracy": val.get("accuracy"),
            "sources": per,
            "units": {
                u: {
                    "roc_auc": mean([per[g]["roc_auc"] for g in gs if g in per]),
                    "fake_recall": mean([per[g]["fake_recall"] for g in gs if g in per]),
                }
                for u, gs in units.items()
            },
        }
    held_out = [table[u]["units"][u]["roc_auc"] for u in units]
    summary = {"by": by, "units": units, "held_out_mean_roc_auc": mean(held_out), "rows": table}
    print(f"\nleave-one-{by}-out ({args.config} {' '.join(args.overrides)}; mean ROC AUC / FAKE recall of each")
    print(f"{by}'s generators against {root}/val/REAL)")
    print(f"{'run':24s} {'CIFAKE val':>10s}  " + "  ".join(f"{u[:16]:>16s}" for u in units))
    for held, row in table.items():
        cells = []
        for u in units:
            s = row["units"][u]
            mark = "*" if u == held else " "
            cells.append(f"{s['roc_auc']:.3f} / {s['fake_recall']:.2f}{mark}" if s["roc_auc"] is not None else "-")
        label = "CIFAKE only" if held == "none" else f"all but {held}"
        acc = row["val_accuracy"]
        print(
            f"{label:24s} {acc if acc is None else format(acc, '.4f'):>10s}  " + "  ".join(f"{c:>16s}" for c in cells)
        )
    print(f"* = the {by} left out of that run's training: the leave-one-out figure")
    if summary["held_out_mean_roc_auc"] is not None:
        print(f"mean ROC AUC over held-out {by}s: {summary['held_out_mean_roc_auc']:.3f}")
    if by == "group":
        print(f"\nper generator (ROC AUC / FAKE recall), held-out {by}'s run first:")
        for u, gs in units.items():
            for g in gs:
                held_row = table[u]["sources"].get(g)
                base = table["none"]["sources"].get(g)
                if held_row and base:
                    print(
                        f"  {u:10s} {g:32s} held out {held_row['roc_auc']:.3f} / {held_row['fake_recall']:.2f}   "
                        f"CIFAKE only {base['roc_auc']:.3f} / {base['fake_recall']:.2f}"
                    )
    if args.json:
        args.json.write_text(json.dumps(summary if by == "group" else table, indent=2) + "\n")


if __name__ == "__main__":
    main()
