"""cifake config: the resolved config as YAML, or the reference of every key."""

from __future__ import annotations

from ._options import add_config_args

HELP = "print the resolved config as YAML (or the reference of every key)"
DESCRIPTION = (
    "Print the config that defaults, --config and overrides resolve to. The output is valid\n"
    "YAML that loads back to the same config."
)
EXAMPLE = "cifake config --config configs/small_cnn.yaml train.lr=2e-3"


def add_arguments(p) -> None:
    add_config_args(p)
    p.add_argument("--reference", action="store_true", help="list every key with its default and meaning")
    p.add_argument(
        "--markdown", action="store_true", help="with --reference: as the Markdown page docs/config.md holds"
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="also build the model and print its layers, parameters and multiply-accumulates per image",
    )


def run(args) -> int:
    import sys

    from ..base.errors import UserError
    from ..config import DEFAULT_RECIPE, load_config, reference, reference_markdown
    from ..models.registry import check_model_config

    if args.markdown and not args.reference:
        raise UserError("--markdown formats --reference: cifake config --reference --markdown")
    if args.reference and args.markdown:
        print(reference_markdown(), end="")
        return 0
    if args.reference:
        rows = reference()
        width = max(len(k) for k, _, _ in rows)
        for key, default, text in rows:
            print(f"{key:<{width}}  {default:<14}  {text}")
        return 0
    cfg = load_config(args.config or DEFAULT_RECIPE, args.overrides)
    check_model_config(cfg.model)
    print(cfg.to_yaml(), end="")
    if args.summary:  # stdout stays YAML that loads back: the model goes to stderr
        from ..models.registry import build_model, describe, summary_text

        model = build_model(cfg.model)

        print(summary_text(model), file=sys.stderr)

        print(describe(model), file=sys.stderr)
    return 0
