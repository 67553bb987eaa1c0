"""The ``cifake`` command: argument parsing and the exit-code policy, nothing else.

Each subcommand calls one function of the package. TensorFlow is imported only inside the
subcommands that need it, so ``cifake --help`` and ``cifake SUB --help`` are instant.

Exit codes (one place for all subcommands): 0 success; 2 user error (one line per problem on
stderr, no traceback unless ``--debug``); 1 anything unexpected; 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import traceback
from collections.abc import Callable

from . import __version__, limits
from .errors import UserError

LABELS_NOTE = "Labels: FAKE = 1 is the positive class everywhere (P(FAKE), precision, recall, CSV columns)."
OVERRIDES_HELP = "config overrides as key=value, applied after --config (e.g. train.epochs=3 data.fraction=0.1)"


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" only where it says something: not for None/False, not for positionals,
    and not where the help already explains the default in words."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.default in (None, False, argparse.SUPPRESS) or "default" in text.lower():
            return text
        return super()._get_help_string(action)


def _sub(subs, name: str, help: str, description: str, example: str) -> argparse.ArgumentParser:
    p = subs.add_parser(
        name,
        help=help,
        description=f"{description}\n\n{LABELS_NOTE}",
        epilog=f"example:\n  {example}",
        formatter_class=_Formatter,
        allow_abbrev=False,  # a stray '--d' must not turn on --debug (or any other option) by prefix
    )
    # --debug is accepted after the subcommand too; SUPPRESS keeps the global value when absent.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return p


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", metavar="FILE.yaml", default=None, help="YAML recipe (see configs/); defaults apply without one"
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"got {text}; expected a probability between 0 and 1")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"got {text}; expected a positive, finite number")
    return value


def _add_pixel_cap(p: argparse.ArgumentParser) -> None:
    """The per-image pixel cap, for every command that decodes images it did not make."""
    p.add_argument(
        "--max-megapixels",
        type=_positive_number,
        default=limits.DEFAULT_MAX_MEGAPIXELS,
        metavar="MP",
        help="images whose header declares more pixels are skipped without being decoded (a decompression bomb "
        "guard; 50 MP = 150 MB of RGB)",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text}; expected a positive integer")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"got {text}; expected 0 or a positive integer")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"got {text}; expected a port number from 1 to 65535")
    return value


def _add_scoring_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that score images (evaluate, predict)."""
    p.add_argument(
        "--threshold",
        type=_probability,
        default=None,
        help="P(FAKE) at or above which an image is FAKE (default: threshold.json beside the model, else 0.5)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=1024, help="images per model call")
    p.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default="none",
        choices=("none", "flip", "shift"),
        help="test-time augmentation: average P(FAKE) over views of each image; --tta alone = flip (the image "
        "and its mirror), shift = those two, each also moved by one pixel down-right and up-left (6 views)",
    )
    _add_pixel_cap(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cifake",
        description=(
            "Train, evaluate and use detectors of AI-generated images on CIFAKE "
            "(CIFAR-10 photos = REAL, Stable Diffusion 1.4 images = FAKE, 32x32).\n\n" + LABELS_NOTE
        ),
        epilog=(
            "examples:\n"
            "  cifake download --archive cifake.zip      # or: cifake download (Kaggle)\n"
            "  cifake train --config configs/small_cnn.yaml train.epochs=5\n"
            "  cifake evaluate runs/small_cnn\n"
            "  cifake predict photos/ --out predictions.csv"
        ),
        formatter_class=_Formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"cifake {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and TensorFlow's own logging")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _sub(
        subs,
        "download",
        "fetch CIFAKE from Kaggle, or import a zip you already have",
        "Fetch birdy654/cifake-real-and-ai-generated-synthetic-images with the official Kaggle client\n"
        "(kagglehub), or import a local zip with --archive (no network). The data is extracted to a\n"
        "temporary folder, verified (counts, every JPEG decodes) and only then moved into place.\n"
        "Credentials, first found wins: KAGGLE_API_TOKEN, ~/.kaggle/access_token,\n"
        "KAGGLE_USERNAME + KAGGLE_KEY, ~/.kaggle/kaggle.json.",
        "cifake download --archive ~/Downloads/archive.zip --data-dir data/cifake",
    )
    p.add_argument(
        "--data-dir", default="data/cifake", help="where {train,test}/{REAL,FAKE} will live (config key data.dir)"
    )
    p.add_argument(
        "--archive", metavar="PATH.zip", help="import this zip instead of downloading (full Kaggle zip or train-only)"
    )
    p.add_argument("--force", action="store_true", help="replace a complete dataset that is already there")
    p.add_argument("--verify", action="store_true", help="only re-check an existing folder and list what is wrong")

    p = _sub(
        subs,
        "train",
        "train a detector from a YAML recipe",
        "Train a model and write a run directory (runs/NAME; NAME-2, ... if taken) holding config.yaml,\n"
        "results.csv (one row per epoch), best.keras, last.keras, metrics.json and curves.png.\n"
        "Precedence: defaults < --config FILE < key=value overrides. Ctrl-C saves and prints the\n"
        "command that resumes.",
        "cifake train --config configs/small_cnn.yaml train.epochs=3 --name quick",
    )
    _add_config_args(p)
    p.add_argument("--name", help="run directory name (config key train.name; default: the config file's stem)")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run; only train.epochs, train.early_stopping, train.threads, data.dir and "
        "data.cache may change (more epochs stretch the cosine schedule: see the README)",
    )
    p.add_argument("--summary", action="store_true", help="print the model's layers and parameters, then exit")
    _add_pixel_cap(p)

    p = _sub(
        subs,
        "evaluate",
        "metrics, per-class accuracy and plots for a checkpoint",
        "Evaluate a .keras model (or a run directory: its best.keras) on a split of data.dir and write\n"
        "metrics.json and plots next to the checkpoint.",
        "cifake evaluate runs/small_cnn --split val",
    )
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
        "./evaluate-NAME: nothing is written inside the package)",
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
        help="also score the split under the corruption battery (jpeg:90/70/50/40/30, blur:0.5/0.8/1.2, "
        "noise:4/8/16, resize:24/16, brightness:0.6/1.4, contrast:0.6/1.4); a robustness table, metrics.json "
        "section and robustness.png",
    )
    _add_scoring_args(p)

    p = _sub(
        subs,
        "predict",
        "score your own images: P(FAKE) per file",
        "Score image files and folders (searched recursively for any extension Pillow knows). Images\n"
        "are converted to RGB (alpha dropped) and, when not 32x32 already, resized to 32x32 with\n"
        "antialiased bicubic resampling, exactly as the training loader does. Without --model the\n"
        "detector shipped with cifake is used (see the README's model card). Files are decoded and\n"
        "scored in chunks of 4,096 (memory does not grow with the input), with a progress bar on a terminal.\n"
        "Exit codes: 0 all scored; 3 some files unreadable (listed, skipped); 2 nothing to score.",
        "cifake predict photo.jpg more_photos/ --out predictions.csv",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument(
        "--model",
        default=None,
        help=".keras or .tflite file, run directory, or a shipped model: pretrained (Keras), pretrained-int8 "
        "(its int8 LiteRT export), robust; default: pretrained-int8 when its card shows parity, else pretrained",
    )
    p.add_argument(
        "--out",
        metavar="FILE.csv",
        help="write path,p_fake,label,width,height rows here instead of printing a table (written as it goes "
        "to a hidden temporary file, renamed when complete)",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="score only the K-th of N deterministic shares of the sorted file list (run N jobs, K = 1..N)",
    )
    _add_scoring_args(p)

    p = _sub(
        subs,
        "export",
        "convert a detector to LiteRT (float32 or int8), SavedModel or ONNX, checked against Keras",
        "Convert a .keras model (or a run directory: its best.keras) for serving. Every export scores the\n"
        "run's validation images beside the Keras model before it is kept: max |delta P(FAKE)|, label\n"
        "agreement and both accuracies are printed and stored in a card beside it (OUT.json). An int8\n"
        "export that agrees on fewer than 99.5% of labels is refused (exit 2). .tflite files work\n"
        "wherever a model is accepted (predict, evaluate, serve).",
        "cifake export runs/small_cnn --format litert --int8",
    )
    p.add_argument("model", help=".keras file, run directory, or pretrained / robust")
    p.add_argument("--format", choices=("litert", "savedmodel", "onnx"), default="litert", help="what to write")
    p.add_argument(
        "--int8",
        action="store_true",
        help="litert only: full-integer post-training quantization, calibrated on 512 training images",
    )
    p.add_argument(
        "--out",
        metavar="PATH",
        help="file (or folder for savedmodel) to write; default: beside the model, e.g. best-int8.tflite",
    )
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="dataset for the check and the calibration; default: the run's data.dir, else data/cifake",
    )
    p.add_argument("--calibration", metavar="DIR", help="calibrate int8 on the images under this folder instead")
    p.add_argument(
        "--check-images",
        type=_nonnegative_int,
        default=0,
        metavar="N",
        help="validation images for the check; 0 = the whole validation split",
    )

    p = _sub(
        subs,
        "explain",
        "Grad-CAM heatmaps: where in the image the FAKE score comes from",
        "Write <out>/<name>_gradcam.png per image: the image beside a Grad-CAM heatmap of the FAKE\n"
        "logit at the last convolutional feature map (found automatically, or --layer). Images are\n"
        "prepared as in cifake predict.",
        "cifake explain runs/small_cnn photo.jpg other.png --out explain/",
    )
    p.add_argument("model", help=".keras file, run directory, or 'pretrained' for the shipped detector")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders (searched recursively)")
    p.add_argument("--out", default="explain", help="folder for the overlay PNGs (created)")
    p.add_argument("--layer", default=None, help="name of the layer to explain (default: the last 4-D feature map)")
    _add_pixel_cap(p)

    p = _sub(
        subs,
        "serve",
        "a local web app (Gradio): upload images, see P(FAKE) and Grad-CAM",
        "Start a Gradio app: upload one or several images and see P(FAKE), the label and a Grad-CAM\n"
        "overlay per image, with the shipped detector or any .keras file given here. Needs the demo\n"
        "extra: pip install 'cifake[demo]'. Listens on 127.0.0.1 unless --host says otherwise.",
        "cifake serve runs/small_cnn/best.keras --port 7860",
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=".keras files or run directories to offer besides the shipped detector",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes the app to your network)")
    p.add_argument("--port", type=_port, default=7860, help="port to listen on")
    p.add_argument(
        "--max-mb",
        type=_positive_number,
        default=10.0,
        help="uploads larger than this are refused by the server while they arrive (HTTP 413)",
    )
    p.add_argument(
        "--concurrency",
        type=_positive_int,
        default=4,
        help="requests scored at the same time (one large batch then does not hold up the others)",
    )
    _add_pixel_cap(p)

    p = _sub(
        subs,
        "eda",
        "a dataset report: counts, samples, mean spectra, duplicates",
        "Write a Markdown report with PNG figures and duplicates.csv about a dataset folder: counts per\n"
        "split, class and CIFAR-10 subject; random samples; per-class mean image and mean log-magnitude\n"
        "spectrum; byte-identical and near-duplicate files within and across splits.",
        "cifake eda --data-dir data/cifake --out reports/eda",
    )
    p.add_argument("--data-dir", default="data/cifake", help="dataset root (config key data.dir)")
    p.add_argument("--out", default="reports/eda", help="report folder (created)")
    p.add_argument("--samples", type=_positive_int, default=32, help="sample images per class in samples.png")
    _add_pixel_cap(p)

    p = _sub(
        subs,
        "runs",
        "a table of the runs under a folder, or their validation curves in one figure",
        "List the run directories under RUNS_DIR: model, parameters, epochs done / planned, best\n"
        "validation accuracy and its epoch, training time, finished or not. With --compare, draw the\n"
        "validation accuracy and loss of the given runs in one figure. Reads only the files the\n"
        "trainer wrote, so it works on runs still going.",
        "cifake runs --compare small_cnn best fast --out compare.png",
    )
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR", help="folder of run directories")
    p.add_argument("--compare", nargs="+", metavar="RUN", help="run directories or names under RUNS_DIR")
    p.add_argument("--out", default="runs-compare.png", help="the --compare figure")

    p = _sub(
        subs,
        "cache",
        "show or clear the decode cache of a dataset folder",
        "List the decode cache of DATA_DIR (<data-dir>/.cifake-cache): one file per whole split, its\n"
        "size, and whether it still matches the split's files (a stale one is never read again).\n"
        "Every data.fraction is a slice of the whole split's file, so the cache does not grow with\n"
        "the fractions you try. --clear removes it; the next run decodes again.",
        "cifake cache --data-dir data/cifake --clear",
    )
    p.add_argument("--data-dir", default="data/cifake", help="dataset root (config key data.dir)")
    p.add_argument("--clear", action="store_true", help="delete the cache folder")

    p = _sub(
        subs,
        "config",
        "print the resolved config as YAML (or the reference of every key)",
        "Print the config that defaults, --config and overrides resolve to. The output is valid\n"
        "YAML that loads back to the same config.",
        "cifake config --config configs/small_cnn.yaml train.lr=2e-3",
    )
    _add_config_args(p)
    p.add_argument("--reference", action="store_true", help="list every key with its default and meaning")
    p.add_argument(
        "--markdown", action="store_true", help="with --reference: as the Markdown page docs/config.md holds"
    )
    p.add_argument(
        "--summary",
        action="store_true",
        help="also build the model and print its layers, parameters and multiply-accumulates per image",
    )
    return parser


# --- subcommand handlers -------------------------------------------------------------------------


def _cmd_config(args: argparse.Namespace) -> int:
    from .config import load_config, reference, reference_markdown

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
    from .models import check_model_config

    cfg = load_config(args.config, args.overrides)
    check_model_config(cfg.model)
    print(cfg.to_yaml(), end="")
    if args.summary:
        from .models import build_model, describe_macs, macs, summary_text

        model = build_model(cfg.model)
        print(summary_text(model), file=sys.stderr)
        print(f"{model.count_params():,} parameters, {describe_macs(macs(model))}", file=sys.stderr)
    return 0


def _lazy(command: str) -> Callable[[argparse.Namespace], int]:
    """The handler of ``command``: imports ``cifake.<command>`` only when it runs, then calls its run_cli."""

    def handler(args: argparse.Namespace) -> int:
        return importlib.import_module(f".{command}", __package__).run_cli(args)

    return handler


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "config": _cmd_config,
    **{
        name: _lazy(name)
        for name in ("download", "train", "evaluate", "predict", "export", "eda", "explain", "serve", "runs", "cache")
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        # key=value overrides may come after options (`--name x train.epochs=3`): argparse leaves
        # those as extras, which are taken as overrides where the subcommand has them.
        args, extras = parser.parse_known_args(argv)
        if extras and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extras):
            args.overrides = [*args.overrides, *extras]
        elif extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    except SystemExit as e:  # argparse: 0 for --help/--version, 2 for usage errors
        return int(e.code or 0)
    if args.debug:
        os.environ["CIFAKE_DEBUG"] = "1"  # tfutil then leaves TensorFlow's start-up logs alone
    try:
        if getattr(args, "max_megapixels", None):
            limits.set_max_megapixels(args.max_megapixels)
        return HANDLERS[args.command](args)
    except UserError as e:
        if args.debug:
            traceback.print_exc()
        for line in str(e).splitlines():
            print(f"cifake {args.command}: error: {line}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `cifake config | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"cifake {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the policy: anything unexpected is exit 1
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"cifake {args.command}: unexpected error: {type(e).__name__}: {e} (run with --debug for the traceback)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def main_exit() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())
