"""One policy for every output: cifake replaces only what cifake wrote, of the same kind.

A path that exists is replaced only when its first line is the header cifake writes in that kind of
file (a predictions CSV for a predictions CSV); a model, an image, a note or any other file is
refused, whatever its name. Folders are never replaced by files, nor files by folders.
"""

from __future__ import annotations

from pathlib import Path

from .errors import UserError

PREDICTIONS_HEADER = "path,p_fake,label"  # every predictions CSV cifake writes starts with these columns
SCORES_COLUMNS = ["path", "p_fake", "label", "width", "height"]  # cifake predict --out, Results.to_csv


def scores_row(path: str, p: float, label: str, width: int, height: int) -> tuple:
    """One row of ``SCORES_COLUMNS``: the path made safe for a CSV, P(FAKE) to 6 places, an unknown size empty."""
    from .text import csv_path

    return csv_path(path), f"{p:.6f}", label, width or "", height or ""


def first_line(path: Path, limit: int = 256) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(limit).split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    except OSError:
        return ""


def check_replaceable(path: Path, header: str, what: str, option: str | None = None) -> None:
    """Refuse, before any work, to replace ``path`` unless it is absent or a ``what`` that cifake wrote
    (its first line starts with ``header``); through a symbolic link the target is what counts."""
    if not (path.exists() or path.is_symlink()):
        return
    where = f"{{{option}}} {path}" if option else str(path)
    if path.is_dir():
        raise UserError(f"{where} is a folder; give a file name for the {what}", options=(option,) if option else ())
    if not path.is_file() or not first_line(path).startswith(header):
        raise UserError(
            f"{where} exists and is not a {what} that cifake wrote (its first line is not '{header},...'): "
            "nothing was replaced; choose another file name, or move it away",
            options=(option,) if option else (),
        )
