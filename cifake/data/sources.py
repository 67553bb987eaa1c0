"""Per-source evaluation: REAL images against the FAKE images of each generator, one subfolder each.

A folder laid out as ``DIR/REAL/`` and ``DIR/FAKE/<source>/`` (or the same under ``DIR/test/``) holds
fakes of several generators. ``cifake evaluate MODEL --data-dir DIR`` then reports, beside the pooled
figures, each source's FAKE recall, and its accuracy and ROC AUC against all the REAL images: what a
detector trained on one generator does on the others (leave-one-generator-out, when the training
used all but one).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.metrics import roc_auc
from ..base.text import printable
from .images import DATASET_EXTENSIONS
from .listing import Split, image_files, load_decoded

log = logging.getLogger(__name__)

LOOSE = "FAKE/*"  # the source of images directly in FAKE/: a name no subfolder can have (it holds a '/')


def sources_root(data_dir: str | Path) -> Path | None:
    """``DIR`` or ``DIR/test`` when it holds REAL/ and a FAKE/ with at least one subfolder; else None."""
    for root in (Path(data_dir), Path(data_dir) / "test"):
        fake = root / "FAKE"
        if (root / "REAL").is_dir() and fake.is_dir() and any(p.is_dir() for p in fake.iterdir()):
            return root
    return None


def inside_sources(path: str | Path, data_dir: str | Path) -> bool:
    """Whether ``path`` is (inside) the REAL/ or FAKE/ folder of a per-source layout at ``data_dir``."""
    root = sources_root(data_dir)
    if root is None:
        return False
    target = Path(path).resolve()
    return any(target == f or f in target.parents for f in ((root / "REAL").resolve(), (root / "FAKE").resolve()))


def load_sources(root: Path, progress: bool = True) -> tuple[Split, np.ndarray, dict[str, list[str]]]:
    """(every REAL and FAKE image under ``root`` that decodes, as one Split; the source of each: 'REAL'
    for REAL/, else its FAKE subfolder's name; {source: files skipped as undecodable or over the caps}).

    A FAKE subfolder may have any name, REAL and FAKE included: labels, not names, say which images
    are REAL. A source none of whose files decode is refused: its row would be a figure of nothing.
    """
    groups = [("REAL", 0, image_files(root / "REAL"))]
    fake = root / "FAKE"
    loose = sorted(str(p) for p in fake.iterdir() if p.is_file() and p.name.lower().endswith(DATASET_EXTENSIONS))
    if loose:
        groups.append((LOOSE, 1, loose))
    for sub in sorted(p for p in fake.iterdir() if p.is_dir()):
        groups.append((sub.name, 1, image_files(sub)))
    paths = [p for _, _, files in groups for p in files]
    labels = np.concatenate([np.full(len(files), label, np.int32) for _, label, files in groups])
    names = np.array([name for name, _, files in groups for _ in files], dtype=object)
    if not (labels == 0).any() or not (labels == 1).any():
        raise UserError(f"{root} needs images in REAL/ and in FAKE/<source>/ to compare sources")
    images, bad, hashes = load_decoded(paths, root, cache=False, on_bad_file="skip", progress=progress)
    skipped: dict[str, list[str]] = {}
    for i in bad:
        skipped.setdefault(str(names[i]), []).append(paths[i])
    for name, label, files in groups:
        if files and len(skipped.get(name, ())) == len(files):
            where = root / "REAL" if label == 0 else (fake if name == LOOSE else fake / name)
            raise UserError(
                f"none of the {len(files):,} file(s) of {printable(str(where))} decode as images (e.g. "
                f"{printable(files[0])}): no figure can be given for it; remove or replace them"
            )
    good = np.setdiff1d(np.arange(len(paths)), bad)
    return Split(images[good], labels[good], [paths[i] for i in good], hashes[good]), names[good], skipped


def per_source(y: np.ndarray, p: np.ndarray, sources: np.ndarray, threshold: float) -> dict[str, dict]:
    """For each FAKE source: its images, FAKE recall, and accuracy and ROC AUC on it plus all REAL images."""
    real = np.asarray(y) == 0
    out = {}
    for name in sorted(set(sources[~real].tolist())):
        mine = (sources == name) & ~real
        both = real | mine
        out[name] = {
            "images": int(mine.sum()),
            "fake_recall": float((p[mine] >= threshold).mean()),
            "accuracy": float(((p[both] >= threshold) == y[both].astype(bool)).mean()),
            "roc_auc": roc_auc(y[both], p[both]),
        }
    return out


def print_sources(rows: dict[str, dict], real_images: int) -> None:
    log.info(f"  per source (each against all {real_images:,} REAL images)")
    w = min(max([len(printable(n)) for n in rows] + [6]), 40)  # whole names: sources differ at the end too
    log.info(f"  {'source':<{w}} {'images':>7} {'FAKE rec':>8} {'accuracy':>8} {'ROC AUC':>8}")
    for name, r in rows.items():
        log.info(
            f"  {printable(name)[:w]:<{w}} {r['images']:>7,} {r['fake_recall']:>8.4f} {r['accuracy']:>8.4f} "
            f"{r['roc_auc']:>8.4f}"
        )
