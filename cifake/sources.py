"""Per-source evaluation: REAL images against the FAKE images of each generator, one subfolder each.

A folder laid out as ``DIR/REAL/`` and ``DIR/FAKE/<source>/`` (or the same under ``DIR/test/``) holds
fakes of several generators. ``cifake evaluate MODEL --data-dir DIR`` then reports, beside the pooled
figures, each source's FAKE recall, and its accuracy and ROC AUC against all the REAL images: what a
detector trained on one generator does on the others (leave-one-generator-out, when the training
used all but one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import IMAGE_EXTENSIONS, Split, image_files, load_decoded
from .errors import UserError
from .metrics import roc_auc

LOOSE = "FAKE"  # the source name of images directly in FAKE/, not in a subfolder


def sources_root(data_dir: str | Path) -> Path | None:
    """``DIR`` or ``DIR/test`` when it holds REAL/ and a FAKE/ with at least one subfolder; else None."""
    for root in (Path(data_dir), Path(data_dir) / "test"):
        fake = root / "FAKE"
        if (root / "REAL").is_dir() and fake.is_dir() and any(p.is_dir() for p in fake.iterdir()):
            return root
    return None


def load_sources(root: Path, progress: bool = True) -> tuple[Split, np.ndarray]:
    """(every REAL and FAKE image under ``root`` as one Split, the source of each: 'REAL' or a FAKE subfolder)."""
    groups = [("REAL", 0, image_files(root / "REAL"))]
    fake = root / "FAKE"
    loose = sorted(str(p) for p in fake.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_EXTENSIONS))
    if loose:
        groups.append((LOOSE, 1, loose))
    for sub in sorted(p for p in fake.iterdir() if p.is_dir()):
        groups.append((sub.name, 1, image_files(sub)))
    paths = [p for _, _, files in groups for p in files]
    labels = np.concatenate([np.full(len(files), label, np.int32) for _, label, files in groups])
    names = np.array([name for name, _, files in groups for _ in files])
    if not (labels == 0).any() or not (labels == 1).any():
        raise UserError(f"{root} needs images in REAL/ and in FAKE/<source>/ to compare sources")
    images, bad = load_decoded(paths, root, cache=False, on_bad_file="skip", progress=progress)
    good = np.setdiff1d(np.arange(len(paths)), bad)
    return Split(images[good], labels[good], [paths[i] for i in good]), names[good]


def per_source(y: np.ndarray, p: np.ndarray, sources: np.ndarray, threshold: float) -> dict[str, dict]:
    """For each FAKE source: its images, FAKE recall, and accuracy and ROC AUC on it plus all REAL images."""
    real = sources == "REAL"
    out = {}
    for name in sorted(set(sources[~real].tolist())):
        mine = sources == name
        both = real | mine
        out[name] = {
            "images": int(mine.sum()),
            "fake_recall": float((p[mine] >= threshold).mean()),
            "accuracy": float(((p[both] >= threshold) == y[both].astype(bool)).mean()),
            "roc_auc": roc_auc(y[both], p[both]),
        }
    return out


def print_sources(rows: dict[str, dict], real_images: int) -> None:
    print(f"  per source (each against all {real_images:,} REAL images)")
    print(f"  {'source':<18} {'images':>7} {'FAKE rec':>8} {'accuracy':>8} {'ROC AUC':>8}")
    for name, r in rows.items():
        print(
            f"  {name[:18]:<18} {r['images']:>7,} {r['fake_recall']:>8.4f} {r['accuracy']:>8.4f} {r['roc_auc']:>8.4f}"
        )
