"""cifake runs: a table of run directories, or their validation curves in one figure."""

from __future__ import annotations

HELP = "a table of the runs under a folder, or their validation curves in one figure"
DESCRIPTION = (
    "List the run directories under RUNS_DIR: model, parameters, multiply-accumulates, epochs done /\n"
    "planned, best validation accuracy and its epoch, training time, finished or not. With --compare,\n"
    "draw the validation accuracy and loss of the given runs in one figure. Reads only the files the\n"
    "trainer wrote, so it works on runs still going."
)
EXAMPLE = "cifake runs --compare small_cnn best fast --out compare.png"


def add_arguments(p) -> None:
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR", help="folder of run directories")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="run directories or names under RUNS_DIR")
    p.add_argument("--out", default="runs-compare.png", help="the --compare figure")


def run(args) -> int:
    from pathlib import Path

    from ..base.errors import UserError
    from ..training.runs import find_runs, run_summary, table

    if args.compare:
        from ..models.plots import compare_curves
        from ..training.rundir import read_results

        runs = {}
        for raw in args.compare:
            path = Path(raw) if Path(raw).is_dir() else Path(args.runs_dir) / raw
            if not (path / "results.csv").is_file():
                raise UserError(f"{raw}: no results.csv there (give run directories, or names under {args.runs_dir})")
            runs[path.name if path.name not in runs else str(path)] = read_results(path / "results.csv")
        out = compare_curves(runs, args.out)
        print(f"wrote {out} ({len(runs)} runs)")
        return 0
    found = find_runs(Path(args.runs_dir))
    if not found:
        print(f"no runs in {args.runs_dir} (start one: cifake train --config configs/smoke.yaml)")
        return 0
    print(table([run_summary(p) for p in found]))
    print(
        "train time: the epochs' own seconds (no loading, no final evaluation); see tensorboard --logdir "
        f"{args.runs_dir} for the curves"
    )
    return 0
