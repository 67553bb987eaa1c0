"""Writing files so that a crash, Ctrl-C or a full disk never leaves half of one: every writer of
the library (run directories, metrics.json, cards, CSVs, reports, model files) goes through here.

Each helper writes a hidden temporary file beside the target (same file system) and renames it
onto the target only when it is complete; on any failure the temporary file is removed and the old
target, if any, is left as it was. JSON is strict: NaN and infinities become ``null``, so a
browser's ``JSON.parse`` reads every file cifake writes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from . import limits


def _temporary(path: Path) -> Path:
    """Hidden, beside ``path``, and this process's own: two writers of one name never share it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs):
    """``open(path, mode)`` for writing, into a temporary file renamed onto ``path`` when the block
    ends without an exception (e.g. ``csv.writer`` over it)."""
    path = Path(path)
    tmp = _temporary(path)
    try:
        with open(tmp, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path) as f:
        f.write(text)


def strict(value):
    """``value`` with every NaN or infinity replaced by None: JSON that a browser's JSON.parse reads
    (Python's json writes NaN, which is not JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a NumPy scalar
        return strict(value.item())
    return value


def atomic_write_json(path: str | Path, value) -> None:
    """``value`` as strict JSON (``strict``), written atomically."""
    atomic_write_text(path, json.dumps(strict(value), indent=2, allow_nan=False) + "\n")


def atomic_save(model, path: str | Path) -> None:
    """``model.save`` to a temporary name, then rename; on a full disk, a one-line error and no leftover."""
    path = Path(path)
    # weights, optimizer moments (last.keras) and the zip's overhead: about three copies of the weights
    limits.check_free_space(path.parent, 3 * 4 * model.count_params() + (1 << 20), f"saving {path.name}")
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
