"""The run directory's files: naming, results.csv, data.json, the config header (written through ``files``).

Every file a run writes goes through a temporary name and ``os.replace``, so a reader (or a
resume after SIGKILL) never sees half a file.
"""

from __future__ import annotations

import csv
import json
import logging
import platform
from datetime import UTC, datetime
from pathlib import Path

from .. import __version__
from ..base.errors import UserError
from ..base.files import atomic_write_json, atomic_write_text
from ..base.tfutil import import_keras, import_tf

log = logging.getLogger(__name__)

METRICS = ("loss", "accuracy", "precision", "recall", "auc")
COLUMNS = ("epoch", *METRICS, *(f"val_{m}" for m in METRICS), "lr", "seconds")
DATA_FILE = (
    "data.json"  # the run's split: sizes, duplicate groups, fingerprint; written at the start, checked on resume
)


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs/NAME``, or ``NAME-2``, ``NAME-3``, ... : never an existing directory."""
    try:
        Path(runs_dir).mkdir(parents=True, exist_ok=True)
        for i in range(1, 10_000):
            path = Path(runs_dir) / (name if i == 1 else f"{name}-{i}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:  # read-only, a file in the way, no space
        raise UserError(
            f"cannot create a run directory in {runs_dir}: {e.strerror or e}; set train.runs_dir to a writable folder"
        ) from None
    raise UserError(f"too many runs named {name} in {runs_dir}")


def versions_header() -> str:
    keras = import_keras()
    import numpy

    tf = import_tf()
    return (
        f"# resolved by cifake {__version__} on {datetime.now(UTC):%Y-%m-%d %H:%M UTC}: "
        f"tensorflow {tf.__version__}, keras {keras.__version__}, numpy {numpy.__version__}, python {platform.python_version()}\n"
        f"# reproduce: cifake train --config <this file>\n"
    )


def read_results(path: Path) -> list[dict[str, float]]:
    """The rows of a run's results.csv ([] when there is none); a damaged file is a UserError naming it."""
    if not path.is_file():
        if path.exists():
            raise UserError(f"{path} is not a file: a run's results.csv is one CSV file")
        return []
    try:
        if path.stat().st_size > 64 * 2**20:
            raise ValueError("over 64 MB")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None:
                return []
            missing = [c for c in COLUMNS if c not in reader.fieldnames]
            if missing:
                raise ValueError(f"no column {missing[0]}")
            rows = [{k: float(row[k]) for k in COLUMNS} for row in reader]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(
            f"{path} is damaged ({str(e)[:80]}): the run's epoch history cannot be read; restore it, or start a new run"
        ) from None
    if [int(r["epoch"]) for r in rows] != list(range(1, len(rows) + 1)):
        raise UserError(f"{path} is damaged: its epochs are not 1, 2, 3, ... in order")
    return rows


def write_results(path: Path, rows: list[dict[str, float]]) -> None:
    lines = [",".join(COLUMNS)]
    for row in rows:
        lines.append(",".join(str(int(row[c])) if c == "epoch" else f"{row[c]:.6g}" for c in COLUMNS))
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_data_info(run_dir: Path, info: dict) -> None:
    atomic_write_json(run_dir / DATA_FILE, info)


SIZE_KEYS = ("train_images", "val_images", "steps_per_epoch")


def check_same_data(run_dir: Path, now: dict) -> None:
    """Refuse to resume on another split: epochs would be counted in the wrong steps, and images the run
    trained on could now sit in validation (another data.split_seed, dataset or extra folder)."""
    f = run_dir / DATA_FILE
    if not f.is_file():
        log.warning(f"note: {run_dir} has no {DATA_FILE} (made by an older cifake): data size not checked")
        return
    try:
        saved = json.loads(f.read_text())
        before = {k: int(saved[k]) for k in SIZE_KEYS}
        saved_print = saved.get("split_fingerprint")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise UserError(f"{f} is damaged; it records the run's split, which resume checks") from None
    if saved_print is None:
        raise UserError(
            f"cannot resume {run_dir}: it was started by an older cifake, which split byte-identical files "
            "apart (a validation image could have its twin in training); start a new run"
        )
    if saved_print != now.get("split_fingerprint"):
        raise UserError(
            f"cannot resume {run_dir} on another split: it trained on {before['train_images']:,} train / "
            f"{before['val_images']:,} val images and data.dir now gives {now['train_images']:,} / "
            f"{now['val_images']:,}, not the same images ({DATA_FILE} holds the split's fingerprint: data.dir, "
            "data.split_seed, data.fraction, data.val_fraction, data.extra_* or the dataset's files changed); "
            "restore them, or start a new run"
        )
    if before != {k: now[k] for k in SIZE_KEYS}:
        raise UserError(
            f"cannot resume {run_dir} on different data: the run trained on {before['train_images']:,} train / "
            f"{before['val_images']:,} val images, data.dir now gives {now['train_images']:,} / {now['val_images']:,}; "
            "point data.dir at the same dataset, or start a new run"
        )


def split_grouped(checkpoint: Path) -> bool:
    """Whether the run that made ``checkpoint`` kept byte-identical files on one side of its split
    (its data.json holds a split fingerprint); older runs and the shipped models split file by file."""
    try:
        return "split_fingerprint" in json.loads((checkpoint.parent / DATA_FILE).read_text())
    except (OSError, ValueError, TypeError, RecursionError):
        return False


def run_config(checkpoint: Path):
    """The training Config when ``checkpoint`` sits in a run directory (or was exported from one), else None."""
    from ..config import config_from_dict, read_yaml
    from ..models.detector import export_card

    f = checkpoint.parent / "config.yaml"
    if not f.is_file() and (card := export_card(checkpoint)) and isinstance(card.get("source"), str):
        f = (checkpoint.parent / card["source"]).parent / "config.yaml"  # absolute sources stay as they are
    return config_from_dict(read_yaml(f)) if f.is_file() else None
