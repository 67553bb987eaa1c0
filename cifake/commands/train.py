"""cifake train: a new run from a recipe, its model summary, or the resumption of a run."""

from __future__ import annotations

from ..config import DEFAULT_RECIPE, RESUMABLE_KEYS
from ._options import add_config_args, add_pixel_cap

HELP = "train a detector from a YAML recipe"
DESCRIPTION = (
    "Train a model and write a run directory (runs/NAME; NAME-2, ... if taken) holding config.yaml,\n"
    "results.csv (one row per epoch), best.keras, last.keras, metrics.json and curves.png.\n"
    "Precedence: defaults < --config FILE < key=value overrides. Ctrl-C saves and prints the\n"
    "command that resumes."
)
EXAMPLE = "cifake train --config configs/small_cnn.yaml train.epochs=3 --name quick"


def add_arguments(p) -> None:
    add_config_args(p)
    p.add_argument("--name", help="run directory name (config key train.name; default: the config file's stem)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help=f"continue an interrupted run; only {', '.join(RESUMABLE_KEYS[:-1])} and {RESUMABLE_KEYS[-1]} may "
        "change (more epochs stretch the cosine schedule: see docs/commands.md)",
    )
    p.add_argument("--summary", action="store_true", help="print the model's layers and parameters, then exit")
    add_pixel_cap(p)


def run(args) -> int:
    from pathlib import Path

    from ..base.errors import UserError
    from ..config import check_run_name, load_config
    from ..models.registry import check_model_config
    from ..training.train import resolve_resume, train

    if args.resume:
        if args.config:
            raise UserError(
                "--resume uses the run's own config.yaml: drop --config (overrides such as train.epochs=N are allowed)"
            )
        run_dir = Path(args.resume)
        cfg, changed = resolve_resume(run_dir, args.overrides)
        train(cfg, run_dir, resume=True, config_changed=changed)
        return 0
    cfg = load_config(args.config or DEFAULT_RECIPE, args.overrides)
    if args.name:
        cfg.train.name = check_run_name(args.name, "--name")
    check_model_config(cfg.model)  # before the data is loaded: a bad shape fails in a second
    if args.summary:
        from ..models.registry import build_model, describe, summary_text

        model = build_model(cfg.model)
        print(summary_text(model))
        print(describe(model))
        return 0
    train(cfg)
    return 0
