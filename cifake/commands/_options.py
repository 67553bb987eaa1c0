"""Option types and option groups that several commands share (not a command itself)."""

from __future__ import annotations

import argparse
import math

from ..base import limits

OVERRIDES_HELP = "config overrides as key=value, applied after --config (e.g. train.epochs=3 data.fraction=0.1)"


def probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"got {text}; expected a probability between 0 and 1")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; expected a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"got {text}; expected a positive, finite number")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"got {text}; expected a positive integer")
    return value


def nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"got {text}; expected 0 or a positive integer")
    return value


def seed(text: str) -> int:
    from ..config import SEED_MAX

    value = int(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"got {text}; expected an integer from 0 to {SEED_MAX}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"got {text}; expected a port number from 1 to 65535")
    return value


def add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE.yaml",
        default=None,
        help="YAML recipe (see configs/); without one, the default recipe (configs/small_cnn.yaml, shipped in "
        "the package)",
    )
    p.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)


def add_pixel_cap(p: argparse.ArgumentParser) -> None:
    """The per-image pixel cap, for every command that decodes images it did not make (cli applies it)."""
    p.add_argument(
        "--max-megapixels",
        type=positive_number,
        default=limits.DEFAULT_MAX_MEGAPIXELS,
        metavar="MP",
        help="images whose header declares more pixels are skipped without being decoded (a decompression bomb "
        "guard; 50 MP = 150 MB of RGB)",
    )


def add_scoring_args(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that score images (evaluate, predict)."""
    p.add_argument(
        "--threshold",
        type=probability,
        default=None,
        help="P(FAKE) at or above which an image is FAKE (default: threshold.json beside the model, else 0.5)",
    )
    p.add_argument("--batch-size", type=positive_int, default=1024, help="images per model call")
    p.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default="none",
        choices=("none", "flip", "shift"),
        help="test-time augmentation: average P(FAKE) over views of each image; --tta alone = flip (the image "
        "and its mirror), shift = those two, each also moved by one pixel down-right and up-left (6 views)",
    )
    add_pixel_cap(p)


def add_split_args(p: argparse.ArgumentParser, what: str) -> None:
    """--data-dir, --val-fraction and --split-seed of the runs that ``what`` (an output folder of
    evaluation images) will serve: its REAL photos must come from those runs' validation split."""
    from ..config import DataConfig

    defaults = DataConfig()
    p.add_argument("--data-dir", default=defaults.dir, help="dataset root holding train/{REAL,FAKE} (data.dir)")
    p.add_argument(
        "--val-fraction", type=float, default=defaults.val_fraction, help=f"data.val_fraction of the runs {what} serve"
    )
    p.add_argument(
        "--split-seed", type=int, default=defaults.split_seed, help=f"data.split_seed of the runs {what} serve"
    )


def split_data_config(args):
    """The DataConfig of ``add_split_args``' options, checked by the config's own rules (as
    data.val_fraction / data.split_seed) before any work."""
    from ..config import config_from_dict

    data = {"dir": args.data_dir, "val_fraction": args.val_fraction, "split_seed": args.split_seed}
    return config_from_dict({"data": data}).data
