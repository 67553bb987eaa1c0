"""The dataset ``<data.dir>/{train,test}/{REAL,FAKE}``: listing, labels, seeded splits, decoded once into memory.

Contract: labels are REAL = 0, FAKE = 1 (set here, not by folder sort order). Images stay uint8 RGB
32x32; the model normalises. Subsets and the validation split are seeded and stratified by label,
drawn with NumPy's PCG64 over the sorted file list, so they are identical across runs and machines.

Speed: JPEGs are decoded in a parallel tf.data pass (``decode.py``; bad files are found by index,
not by crashing), then kept as one uint8 array, optionally cached on disk (``cache.py``). Training
batches are gathered from that array by ``pipelines.py``.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import limits
from .cache import cache_file_for, read_cache, write_cache
from .decode import decode_files
from .errors import UserError
from .images import walk

CLASS_NAMES = ("REAL", "FAKE")  # index = label; FAKE = 1 is the positive class
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SUBJECTS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SUBJECT_RE = re.compile(r" \((\d+)\)$")


def subject_of(path: str) -> int:
    """CIFAR-10 class index from a CIFAKE file name: no suffix = 0 (airplane), ' (k)' = k - 1; -1 if unknown."""
    match = _SUBJECT_RE.search(Path(path).stem)
    if match is None:
        return 0 if Path(path).stem.isdigit() else -1
    k = int(match.group(1))
    return k - 1 if 2 <= k <= 10 else -1


@dataclass
class Split:
    """One split held in memory: ``images`` (N, 32, 32, 3) uint8, ``labels`` (N,) int32, ``paths``."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Split:
        return Split(self.images[idx], self.labels[idx], [self.paths[i] for i in idx])

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(CLASS_NAMES)}


def list_split(root: str | Path, split: str) -> tuple[list[str], np.ndarray]:
    """Sorted image paths under ``root/split/{REAL,FAKE}`` and their labels (FAKE = 1)."""
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(CLASS_NAMES):
        folder = Path(root) / split / name
        if not folder.is_dir():
            raise UserError(
                f"missing folder {folder} (expected {Path(root) / split}/{{REAL,FAKE}}; fetch the data with: cifake download)"
            )
        files = sorted(e.path for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, np.asarray(labels, dtype=np.int32)


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a seeded subset holding ``fraction`` of each label (at least one of each)."""
    if fraction >= 1.0:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        keep.append(rng.permutation(idx)[: max(1, round(fraction * len(idx)))])
    return np.sort(np.concatenate(keep))


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted indices; ``val_fraction`` of each label goes to val (at least one)."""
    rng = np.random.default_rng([seed, 1])
    val = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        val.append(rng.permutation(idx)[: max(1, round(val_fraction * len(idx)))])
    val_idx = np.sort(np.concatenate(val))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def _refuse_bad(paths: list[str], bad: list[int]) -> None:
    shown = ", ".join(paths[i] for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    raise UserError(f"{len(bad)} file(s) do not decode as images: {shown} (remove them, or set data.on_bad_file=skip)")


def load_decoded(
    paths: list[str], root: str | Path, *, cache: bool, on_bad_file: str, progress: bool = True
) -> tuple[np.ndarray, list[int]]:
    """Decoded images for ``paths`` (from the on-disk cache when valid) and the indices of bad files.

    ``on_bad_file='error'`` raises a UserError naming the files; ``'skip'`` returns them for removal.
    """
    cache_file = cache_file_for(paths, root) if cache else None
    if cache_file is not None and cache_file.is_file():
        cached = read_cache(cache_file, len(paths))
        if cached is not None:
            return cached
    images, bad = decode_files(paths, progress=progress and len(paths) > 5000)
    if bad and on_bad_file == "error":
        _refuse_bad(paths, bad)
    if cache_file is not None:
        write_cache(cache_file, images, bad)
    return images, bad


def load_split(data_cfg, split: str, *, progress: bool = True) -> Split:
    """The (subset of the) split as a Split, bad files skipped or reported per ``data.on_bad_file``."""
    paths, labels = list_split(data_cfg.dir, split)
    if len(paths) == 0:
        raise UserError(
            f"no images in {Path(data_cfg.dir) / split}/{{REAL,FAKE}} (fetch the data with: cifake download)"
        )
    keep = stratified_subset(labels, data_cfg.fraction, data_cfg.split_seed)
    whole = None
    if data_cfg.cache and len(keep) < len(paths) and (cached := cache_file_for(paths, data_cfg.dir)).is_file():
        whole = read_cache(cached, len(paths))  # the cache holds whole splits: a subset is a slice of it
    if whole is not None:
        position = {int(i): j for j, i in enumerate(keep)}
        images, bad = whole[0][keep], sorted(position[i] for i in whole[1] if i in position)
        paths = [paths[i] for i in keep]
        if bad and data_cfg.on_bad_file == "error":
            _refuse_bad(paths, bad)
    else:
        # a subset without a whole-split cache is decoded, not cached: caches never multiply per fraction
        paths = [paths[i] for i in keep]
        images, bad = load_decoded(
            paths,
            data_cfg.dir,
            cache=data_cfg.cache and data_cfg.fraction == 1,
            on_bad_file=data_cfg.on_bad_file,
            progress=progress,
        )
    labels = labels[keep]
    if bad:
        print(f"warning: skipped {len(bad)} file(s) that do not decode, e.g. {paths[bad[0]]}", file=sys.stderr)
        good = np.setdiff1d(np.arange(len(paths)), bad)
        return Split(images, labels, paths).take(good)
    return Split(images, labels, paths)


def load_splits(data_cfg, *, progress: bool = True) -> dict[str, Split]:
    """{"train", "val"} from train (stratified by ``data.val_fraction``), plus "test" when present."""
    _check_extra_folders(data_cfg)  # before minutes of decoding, not after
    full = load_split(data_cfg, "train", progress=progress)
    train_idx, val_idx = stratified_split(full.labels, data_cfg.val_fraction, data_cfg.split_seed)
    splits = {"train": full.take(train_idx), "val": full.take(val_idx)}
    for name, part in splits.items():
        counts = part.counts()
        if min(counts.values()) < limits.MIN_IMAGES_PER_CLASS:
            total = len(list_split(data_cfg.dir, "train")[0])
            raise UserError(
                f"the {name} split would hold {counts['REAL']} REAL and {counts['FAKE']} FAKE image(s) "
                f"(data.fraction={data_cfg.fraction:g} keeps {len(full):,} of the {total:,} images in "
                f"{data_cfg.dir}/train, data.val_fraction={data_cfg.val_fraction:g} of those); at least "
                f"{limits.MIN_IMAGES_PER_CLASS} per class are needed: raise data.fraction or add images"
            )
    if data_cfg.extra_fake or data_cfg.extra_real:
        splits["train"] = _with_extra(splits["train"], data_cfg, progress)
    if all((Path(data_cfg.dir) / "test" / name).is_dir() for name in CLASS_NAMES):
        splits["test"] = load_split(data_cfg, "test", progress=progress)
    return splits


def image_files(folder: str | Path) -> list[str]:
    """Sorted image files (by extension) anywhere under ``folder`` (``images.walk``: no recursion, no loops)."""
    return walk(Path(folder), IMAGE_EXTENSIONS)[0]


EXTRA_KEYS = (("extra_fake", 1), ("extra_real", 0))  # the config keys of extra training folders, and their label


def _check_extra_folders(data_cfg) -> None:
    for key, label in EXTRA_KEYS:
        for folder in getattr(data_cfg, key):
            if not Path(folder).is_dir():
                hint = " (make other generators' fakes there with: cifake fakes --out FOLDER)" if label else ""
                raise UserError(f"data.{key}: {folder} is not a folder{hint}")


def _with_extra(train: Split, data_cfg, progress: bool) -> Split:
    """``train`` plus the images of data.extra_fake (label 1) and data.extra_real (label 0): the training
    split only, so validation stays the seeded split of data.dir whatever is added."""
    paths, labels = list(train.paths), [train.labels]
    images = [train.images]
    for key, label in EXTRA_KEYS:
        for folder in getattr(data_cfg, key):
            files = image_files(folder)
            if not files:
                raise UserError(f"data.{key}: no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
            decoded, bad = load_decoded(files, folder, cache=False, on_bad_file="skip", progress=progress)
            good = np.setdiff1d(np.arange(len(files)), bad)
            if len(bad):
                print(
                    f"warning: data.{key}: skipped {len(bad)} file(s) under {folder} that do not decode",
                    file=sys.stderr,
                )
            images.append(decoded[good])
            labels.append(np.full(len(good), label, np.int32))
            paths += [files[i] for i in good]
            print(f"data.{key}: {len(good):,} {CLASS_NAMES[label]} training images from {folder}", flush=True)
    return Split(np.concatenate(images), np.concatenate(labels), paths)
