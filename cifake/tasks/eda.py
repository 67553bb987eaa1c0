"""``cifake eda``: a small report (Markdown + PNG figures + CSV) about a dataset folder.

Counts per split, class and CIFAR-10 subject; a sample grid; per-class mean image and mean
log-magnitude spectrum (where generators often leave traces); byte-identical duplicates and
near-duplicates within and across splits, listed by file. Images come from the loader's decode
cache, so a second report on the same folder is a few seconds.

Near-duplicate, as used here: two files that are not byte-identical but whose 64-bit difference
hash (9x8 grayscale thumbnail, sign of horizontal gradients) is equal — the same picture
re-encoded, slightly recoloured or shifted by a pixel.
"""

from __future__ import annotations

import csv
import hashlib
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.files import atomic_open, atomic_write_text
from ..base.text import csv_path, printable
from ..config import DataConfig
from ..data.dedup import describe
from ..data.listing import CLASS_NAMES, SUBJECTS, Split, load_split, subject_of

log = logging.getLogger(__name__)


def dhash(images: np.ndarray) -> np.ndarray:
    """64-bit difference hashes of (N, 32, 32, 3) uint8 images, as uint64."""
    gray = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    # 9x8 thumbnail by box-averaging: columns 32 -> 9 via index bins, rows 32 -> 8 by 4-row means
    cols = np.array_split(np.arange(32), 9)
    thumb = np.stack([gray[:, :, c].mean(axis=2) for c in cols], axis=2)  # (N, 32, 9)
    thumb = thumb.reshape(len(images), 8, 4, 9).mean(axis=2)  # (N, 8, 9)
    bits = (thumb[:, :, 1:] > thumb[:, :, :-1]).reshape(len(images), 64)
    return np.packbits(bits, axis=1).view(">u8").ravel().astype(np.uint64)


def file_digests(paths: list[str]) -> list[str]:
    return [hashlib.blake2b(Path(p).read_bytes(), digest_size=16).hexdigest() for p in paths]


def duplicate_groups(keys, paths: list[str], splits: list[str]) -> list[list[tuple[str, str]]]:
    """Groups (size >= 2) of (split, path) sharing a key."""
    groups: dict = defaultdict(list)
    for key, path, split in zip(keys, paths, splits, strict=True):
        groups[key].append((split, path))
    return [g for g in groups.values() if len(g) > 1]


def log_spectrum(images: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """Mean over images of log(1 + |FFT2|) of the grayscale image, zero frequency centred."""
    total = np.zeros((32, 32), np.float64)
    for i in range(0, len(images), chunk):
        gray = images[i : i + chunk].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        total += np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(gray), axes=(1, 2)))).sum(axis=0)
    return total / max(len(images), 1)


def report(data_dir: str | Path, out: str | Path, samples: int = 32) -> Path:
    """Write ``out/report.md``, figures and ``duplicates.csv``; return the report path."""
    from ..models.plots import eda_figures

    data_dir, out = Path(data_dir), Path(out)
    if out.exists() and not out.is_dir():  # before the data is loaded
        raise UserError(f"{{out}} {out} is a file; give a folder for the report", options=("out",))
    from ..data.layout import inside_image_folders

    if inside_image_folders(out, data_dir):
        raise UserError(
            f"{{out}} {out} is inside the dataset's image folders: the report's PNGs would be read as images; "
            "choose a folder outside them",
            options=("out",),
        )
    splits: dict[str, Split] = {}
    for split in ("train", "test"):
        if all((data_dir / split / c).is_dir() for c in CLASS_NAMES):
            splits[split] = load_split(DataConfig(dir=str(data_dir), on_bad_file="skip"), split)
    if not splits:
        raise UserError(f"no {data_dir}/train/{{REAL,FAKE}} or test/{{REAL,FAKE}}: fetch the data with cifake download")
    out.mkdir(parents=True, exist_ok=True)
    stats = {}
    for name, s in splits.items():
        for label, cls in enumerate(CLASS_NAMES):
            imgs = s.images[s.labels == label]
            stats[(name, cls)] = {"mean": imgs.mean(axis=0) / 255.0, "spectrum": log_spectrum(imgs)}
    figures = eda_figures(splits, stats, out, samples)
    exact, near = find_duplicates(splits)
    write_duplicates_csv(out / "duplicates.csv", exact, near)
    lines = [
        f"# CIFAKE dataset report: `{data_dir}`",
        "",
        "FAKE = 1 is the positive class. Figures are PNGs beside this file.",
        "",
        *count_lines(splits),
        *figure_lines(),
        *duplicate_lines(exact, near),
        *(f"- {line}" for line in describe({n: s.hashes for n, s in splits.items() if s.hashes is not None})),
    ]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    log.info(
        f"wrote {path} ({len(figures)} figures, duplicates.csv): {len(exact):,} identical and {len(near):,} near-duplicate groups"
    )
    return path


def count_lines(splits: dict[str, Split]) -> list[str]:
    """The report's counts: per split and class, then per CIFAR-10 subject."""
    lines = ["## Counts", "", "| split | REAL | FAKE | total |", "|---|---:|---:|---:|"]
    for name, s in splits.items():
        c = s.counts()
        lines.append(f"| {name} | {c['REAL']:,} | {c['FAKE']:,} | {len(s):,} |")
    lines += [
        "",
        "### Per CIFAR-10 subject (from the file-name suffix)",
        "",
        "| split | subject | REAL | FAKE |",
        "|---|---|---:|---:|",
    ]
    for name, s in splits.items():
        subj = np.array([subject_of(p) for p in s.paths])
        for k, subject in enumerate((*SUBJECTS, "unknown")):
            idx = k if k < len(SUBJECTS) else -1
            real, fake = int(((subj == idx) & (s.labels == 0)).sum()), int(((subj == idx) & (s.labels == 1)).sum())
            if real or fake:
                lines.append(f"| {name} | {subject} | {real:,} | {fake:,} |")
    return lines


def figure_lines() -> list[str]:
    return [
        "",
        "## Samples",
        "",
        "![samples](samples.png)",
        "",
        "## Mean image and mean log-magnitude spectrum per class",
        "",
        "Generators often leave periodic traces that show as peaks in the spectrum; the right-most panels show FAKE minus REAL.",
        "",
        "![means](mean_spectrum.png)",
        "",
    ]


Group = list[tuple[str, str]]  # (split, path) of files that are the same image


def find_duplicates(splits: dict[str, Split]) -> tuple[list[Group], list[Group]]:
    """(byte-identical groups, near-duplicate groups that are not byte-identical), within and across splits."""
    all_paths = [p for s in splits.values() for p in s.paths]
    all_splits = [name for name, s in splits.items() for _ in s.paths]
    exact = duplicate_groups(file_digests(all_paths), all_paths, all_splits)
    images = np.concatenate([s.images for s in splits.values()])
    exact_ids = {p for g in exact for _, p in g}
    near = [
        g for g in duplicate_groups(dhash(images).tolist(), all_paths, all_splits) if not {p for _, p in g} <= exact_ids
    ]
    return exact, near


def write_duplicates_csv(path: Path, exact: list[Group], near: list[Group]) -> None:
    with atomic_open(path, newline="") as f:
        w = csv.writer(f)
        w.writerow(["kind", "group", "split", "path"])
        for kind, groups in (("identical", exact), ("near", near)):
            for gi, g in enumerate(groups):
                w.writerows((kind, gi, split, csv_path(path)) for split, path in g)


def _describe(groups: list[Group]) -> str:
    cross = sum(len({s for s, _ in g}) > 1 for g in groups)
    by = defaultdict(int)
    for g in groups:
        for s, p in g:
            by[(s, Path(p).parent.name)] += 1
    where = ", ".join(f"{s}/{c}: {n:,} files" for (s, c), n in sorted(by.items()))
    return (
        f"{len(groups):,} groups ({sum(len(g) for g in groups):,} files; {cross:,} groups span splits). {where or ''}"
    )


def duplicate_lines(exact: list[Group], near: list[Group]) -> list[str]:
    lines = [
        "## Duplicates",
        "",
        f"- byte-identical: {_describe(exact)}",
        f"- near-duplicates (equal 64-bit difference hash, not identical): {_describe(near)}",
        "",
        "Every group is listed file by file in `duplicates.csv` (kind, group, split, path).",
        "",
    ]
    for kind, groups in (("identical", exact), ("near-duplicate", near)):
        for g in groups[:5]:
            lines.append(
                f"- {kind}: " + ", ".join(f"`{s}/{Path(p).parent.name}/{printable(Path(p).name)}`" for s, p in g)
            )
    return lines
