"""The dataset ``<data.dir>/{train,test}/{REAL,FAKE}``: listing, labels, seeded splits, decoded once into memory.

Contract: labels are REAL = 0, FAKE = 1 (set here, not by folder sort order). Images stay uint8 RGB
32x32; the model normalises. Subsets and the validation split are seeded and stratified by label,
drawn with NumPy's PCG64 over the sorted file list, so they are identical across runs and machines.

Speed: JPEGs are decoded in a parallel tf.data pass (``decode.py``; bad files are found by index,
not by crashing), then kept as one uint8 array, optionally cached on disk (``cache.py``). Training
batches are gathered from that array by ``pipelines.py``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import limits
from ..base.errors import UserError
from ..base.text import printable
from .cache import cache_file_for, read_cache, write_cache
from .decode import decode_files
from .dedup import duplicate_groups, file_hashes, fingerprint, pixel_hashes, twins
from .images import DATASET_EXTENSIONS, walk

log = logging.getLogger(__name__)

CLASS_NAMES = ("REAL", "FAKE")  # index = label; FAKE = 1 is the positive class
SUBJECTS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SUBJECT_RE = re.compile(r" \((\d+)\)$")


def subject_of(path: str) -> int:
    """CIFAR-10 class index from a CIFAKE file name: no suffix = 0 (airplane), ' (k)' = k - 1; -1 if unknown."""
    match = _SUBJECT_RE.search(Path(path).stem)
    if match is None:
        return 0 if Path(path).stem.isdigit() else -1
    k = int(match.group(1))
    return k - 1 if 2 <= k <= 10 else -1


ORIGIN_DATASET, ORIGIN_EXTRA, ORIGIN_COPY = 0, 1, 2  # Split.origin: where a training image came from


@dataclass
class Split:
    """One split held in memory: ``images`` (N, 32, 32, 3) uint8, ``labels`` (N,) int32, ``paths``, and
    ``hashes`` (N,) uint64, each file's content hash (``dedup``), where the files were hashed; ``origin``
    (N,) int8 where extra training folders were added: ORIGIN_DATASET, ORIGIN_EXTRA (an extra folder's
    image) or ORIGIN_COPY (a repeat of one, ``data.extra_min_images``)."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]
    hashes: np.ndarray | None = None
    origin: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, idx: np.ndarray) -> Split:
        hashes = None if self.hashes is None else self.hashes[idx]
        origin = None if self.origin is None else self.origin[idx]
        return Split(self.images[idx], self.labels[idx], [self.paths[i] for i in idx], hashes, origin)

    def from_extra(self) -> np.ndarray:
        """(N,) bool: the images that came from extra training folders (copies included)."""
        return np.zeros(len(self), bool) if self.origin is None else self.origin != ORIGIN_DATASET

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
        files = sorted(
            e.path for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(DATASET_EXTENSIONS)
        )
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


def stratified_split(
    labels: np.ndarray, val_fraction: float, seed: int, hashes: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted indices; ``val_fraction`` of each label is drawn for val (at least one).

    With ``hashes`` (each file's content hash), byte-identical files form a group that lands on one
    side: a group goes to val when any of its files is drawn for it. Files without a twin fall exactly
    as they would without hashes; val grows by the twins it pulls in (163 on CIFAKE's train split
    with the default seed and share).
    """
    rng = np.random.default_rng([seed, 1])
    val = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        val.append(rng.permutation(idx)[: max(1, round(val_fraction * len(idx)))])
    val_idx = np.sort(np.concatenate(val))
    if hashes is not None:
        val_idx = np.flatnonzero(np.isin(hashes, hashes[val_idx]))
    train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
    return train_idx, val_idx


def _refuse_bad(paths: list[str], bad: list[int]) -> None:
    shown = ", ".join(paths[i] for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    raise UserError(f"{len(bad)} file(s) do not decode as images: {shown} (remove them, or set data.on_bad_file=skip)")


def load_decoded(
    paths: list[str], root: str | Path, *, cache: bool, on_bad_file: str, progress: bool = True
) -> tuple[np.ndarray, list[int], np.ndarray]:
    """Decoded images for ``paths`` (from the on-disk cache when valid), the indices of bad files, and
    each file's content hash (``dedup.file_hashes``, kept in the cache beside the pixels).

    ``on_bad_file='error'`` raises a UserError naming the files; ``'skip'`` returns them for removal.
    """
    cache_file = cache_file_for(paths, root) if cache else None
    if cache_file is not None and cache_file.is_file():
        cached = read_cache(cache_file, len(paths))
        if cached is not None and cached[2] is not None:
            return cached
        if cached is not None:  # a cache from before hashes were kept: hash once and keep them
            hashes = file_hashes(paths)
            write_cache(cache_file, cached[0], cached[1], hashes)
            return cached[0], cached[1], hashes
    images, bad = decode_files(paths, progress=progress and len(paths) > 5000)
    if bad and on_bad_file == "error":
        _refuse_bad(paths, bad)
    hashes = file_hashes(paths)
    if cache_file is not None:
        write_cache(cache_file, images, bad, hashes)
    return images, bad, hashes


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
        hashes = whole[2][keep] if whole[2] is not None else file_hashes(paths)
        if bad and data_cfg.on_bad_file == "error":
            _refuse_bad(paths, bad)
    else:
        # a subset without a whole-split cache is decoded, not cached: caches never multiply per fraction
        paths = [paths[i] for i in keep]
        images, bad, hashes = load_decoded(
            paths,
            data_cfg.dir,
            cache=data_cfg.cache and data_cfg.fraction == 1,
            on_bad_file=data_cfg.on_bad_file,
            progress=progress,
        )
    labels = labels[keep]
    if bad:
        log.warning(f"warning: skipped {len(bad)} file(s) that do not decode, e.g. {paths[bad[0]]}")
        good = np.setdiff1d(np.arange(len(paths)), bad)
        return Split(images, labels, paths, hashes).take(good)
    return Split(images, labels, paths, hashes)


def load_splits(data_cfg, *, progress: bool = True) -> dict[str, Split]:
    """{"train", "val"} from train (stratified by ``data.val_fraction``, byte-identical files kept on one
    side), plus "test" when present. Extra training folders are checked before any decoding, and their
    images against validation and test after it (``check_extra_folders``, ``_with_extra``)."""
    check_extra_folders(data_cfg)  # before minutes of decoding, not after
    full = load_split(data_cfg, "train", progress=progress)
    train_idx, val_idx = stratified_split(full.labels, data_cfg.val_fraction, data_cfg.split_seed, full.hashes)
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
    if all((Path(data_cfg.dir) / "test" / name).is_dir() for name in CLASS_NAMES):
        splits["test"] = load_split(data_cfg, "test", progress=progress)
    if data_cfg.extra_fake or data_cfg.extra_real:
        held_out = [splits["val"], *([splits["test"]] if "test" in splits else [])]
        splits["train"] = _with_extra(splits["train"], data_cfg, held_out, progress)
    return splits


def split_info(splits: dict[str, Split]) -> dict:
    """What data.json records of a run's split: sizes, groups of byte-identical files in the dataset's
    train split, and the fingerprint that resume checks (``dedup.fingerprint``)."""
    train, val = splits["train"], splits["val"]
    info = {"train_images": len(train), "val_images": len(val)}
    if train.origin is not None and (train.origin == ORIGIN_COPY).any():
        info["train_repeats"] = int((train.origin == ORIGIN_COPY).sum())  # data.extra_min_images
    if train.hashes is not None and val.hashes is not None:
        files = train.hashes if train.origin is None else train.hashes[train.origin != ORIGIN_COPY]
        both = np.concatenate([files, val.hashes])
        info.update(duplicate_groups(both))
        info["split_fingerprint"] = fingerprint(train.hashes, train.labels, val.hashes, val.labels)
    return info


def training_hashes(data_cfg, grouped: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """(content hashes of every image of data.dir's train folder, of those a run with ``data_cfg``
    trained on: its side of the split plus the extra folders); None without a train folder.

    ``grouped``: the run split with byte-identical files kept together (runs whose data.json holds a
    split fingerprint); runs of older cifake versions, and models without a run, split file by file.
    """
    if not all((Path(data_cfg.dir) / "train" / c).is_dir() for c in CLASS_NAMES):
        return None
    full = load_split(data_cfg, "train", progress=False)
    train_idx, _ = stratified_split(
        full.labels, data_cfg.val_fraction, data_cfg.split_seed, full.hashes if grouped else None
    )
    extra = [file_hashes(image_files(f)) for key, _ in EXTRA_KEYS for f in getattr(data_cfg, key) if Path(f).is_dir()]
    return full.hashes, np.concatenate([full.hashes[train_idx], *extra])


def cache_files_in_use(root: Path) -> dict[Path, str]:
    """The decode-cache file each complete split of ``root`` would use -> the split's name and size
    (what ``cifake cache`` calls current; any other cache file is stale)."""
    names = {}
    for split in ("train", "test"):
        if all((root / split / c).is_dir() for c in CLASS_NAMES):
            paths, _ = list_split(root, split)
            if paths:
                names[cache_file_for(paths, root)] = f"{split} ({len(paths):,} images)"
    return names


def image_files(folder: str | Path) -> list[str]:
    """Sorted image files (by extension) anywhere under ``folder`` (``images.walk``: no recursion, no loops)."""
    return walk(Path(folder), DATASET_EXTENSIONS)[0]


EXTRA_KEYS = (("extra_fake", 1), ("extra_real", 0))  # the config keys of extra training folders, and their label
FAKES_MANIFEST = "fakes.json"  # written by `cifake fakes` at the root of its output; its val/ is held out
GENERATORS_MANIFEST = "generators.json"  # written by `cifake generators`; its val/ is held out too


def real_path(path: str | Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a link loop: compared as written
        return Path(os.path.abspath(path))


def overlaps(a: Path, b: Path) -> bool:
    """``a`` is ``b``, lies inside it, or holds it."""
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def _held_out_folders(data_cfg, folder: Path) -> list[tuple[Path, str]]:
    """(folder, what it is) that no extra training folder may be, hold or lie inside: the dataset's own
    split folders, and the ``val/`` folder of any ``cifake fakes`` or ``cifake generators`` output at or
    above ``folder``."""
    root = real_path(data_cfg.dir)
    held = [(root / split, f"the dataset's {split} split ({data_cfg.dir}/{split})") for split in ("train", "test")]
    for parent in (folder, *folder.parents):
        for manifest, command in ((FAKES_MANIFEST, "fakes"), (GENERATORS_MANIFEST, "generators")):
            if (parent / manifest).is_file():
                held.append(
                    (
                        parent / "val",
                        f"the evaluation folder of cifake {command} ({parent}/val: copies of validation photos)",
                    )
                )
    return held


def check_extra_folders(data_cfg) -> None:
    """Refuse, before any decoding, extra training folders that would put validation or test images
    (or the dataset's own images under another label) into training, or count a folder twice."""
    seen: list[tuple[Path, str]] = []
    for key, label in EXTRA_KEYS:
        for folder in getattr(data_cfg, key):
            if not Path(folder).is_dir():
                hint = " (make other generators' fakes there with: cifake fakes --out FOLDER)" if label else ""
                raise UserError(f"data.{key}: {folder} is not a folder{hint}")
            real = real_path(folder)
            for held, what in _held_out_folders(data_cfg, real):
                if overlaps(real, held):
                    raise UserError(
                        f"data.{key}: {folder} is, holds or lies inside {what}: its images would reach training "
                        "(validation or test images, or the dataset's own under another label); give a folder of "
                        "other images"
                    )
            for other, other_key in seen:
                if overlaps(real, other):
                    raise UserError(
                        f"data.{key}: {folder} is, holds or lies inside {other} (also in data.{other_key}): "
                        "each extra folder may be given once"
                    )
            seen.append((real, key))


def _refuse_held_out_twins(key: str, folder, files: list[str], hashes: np.ndarray, pixels: np.ndarray, held_out):
    """No extra image may have the bytes, or the decoded pixels, of a validation or test image."""
    ref_bytes = np.concatenate([s.hashes for s in held_out if s.hashes is not None] or [np.zeros(0, np.uint64)])
    ref_pixels = np.concatenate([pixel_hashes(s.images) for s in held_out])
    hit = twins(hashes, ref_bytes) | twins(pixels, ref_pixels)
    if hit.any():
        first = files[int(np.flatnonzero(hit)[0])]
        raise UserError(
            f"data.{key}: {int(hit.sum()):,} image(s) under {folder} have the content of a validation or test "
            f"image (e.g. {printable(first)}): training on them would score those images as if unseen; "
            "remove them from the folder"
        )


def _with_extra(train: Split, data_cfg, held_out: list[Split], progress: bool) -> Split:
    """``train`` plus the images of data.extra_fake (label 1) and data.extra_real (label 0): the training
    split only, so validation stays the seeded split of data.dir whatever is added. An image equal to a
    validation or test image (same bytes, or same decoded pixels) is refused. With
    ``data.extra_min_images`` N, a folder of fewer images is cycled (every image once, then again in
    order) up to N, so that each generator given as its own folder weighs alike in training."""
    paths, labels = list(train.paths), [train.labels]
    images, hashes = [train.images], [train.hashes if train.hashes is not None else file_hashes(train.paths)]
    origin = [np.full(len(train), ORIGIN_DATASET, np.int8)]
    at_least = data_cfg.extra_min_images
    for key, label in EXTRA_KEYS:
        for folder in getattr(data_cfg, key):
            files = image_files(folder)
            if not files:
                raise UserError(f"data.{key}: no images ({', '.join(DATASET_EXTENSIONS)}) under {folder}")
            decoded, bad, file_hash = load_decoded(files, folder, cache=False, on_bad_file="skip", progress=progress)
            good = np.setdiff1d(np.arange(len(files)), bad)
            if len(bad):
                log.warning(f"warning: data.{key}: skipped {len(bad)} file(s) under {folder} that do not decode")
            files = [files[i] for i in good]
            _refuse_held_out_twins(key, folder, files, file_hash[good], pixel_hashes(decoded[good]), held_out)
            cycle = np.resize(np.arange(len(good)), max(len(good), at_least))  # 0..n-1, 0..n-1, ...
            images.append(decoded[good][cycle])
            hashes.append(file_hash[good][cycle])
            labels.append(np.full(len(cycle), label, np.int32))
            origin.append(np.where(np.arange(len(cycle)) < len(good), ORIGIN_EXTRA, ORIGIN_COPY).astype(np.int8))
            paths += [files[i] for i in cycle]
            more = f" (cycled to {len(cycle):,} an epoch: data.extra_min_images)" if len(cycle) > len(good) else ""
            log.info(f"data.{key}: {len(good):,} {CLASS_NAMES[label]} training images from {folder}{more}")
    return Split(np.concatenate(images), np.concatenate(labels), paths, np.concatenate(hashes), np.concatenate(origin))
