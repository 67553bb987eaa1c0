"""Loader: labels, seeded stratified splits, decode errors, cache, deterministic resumable order."""

from __future__ import annotations

import numpy as np
import pytest

from cifake.base.errors import UserError
from cifake.config import DataConfig
from cifake.data.cache import CACHE_DIRNAME
from cifake.data.listing import (
    Split,
    list_split,
    load_split,
    load_splits,
    stratified_split,
    stratified_subset,
    subject_of,
)
from cifake.data.pipelines import eval_dataset, train_dataset


def test_labels_fake_is_one(tiny_data):
    paths, labels = list_split(tiny_data, "train")
    assert len(paths) == 80
    assert all(("/FAKE/" in p) == bool(y) for p, y in zip(paths, labels, strict=True))


@pytest.mark.parametrize(("name", "subject"), [("0001.jpg", 0), ("0001 (2).jpg", 1), ("12 (10).jpg", 9), ("x.jpg", -1)])
def test_subject_from_name(name, subject):
    assert subject_of(f"/a/train/REAL/{name}") == subject


def test_subset_and_split_are_seeded_and_stratified():
    labels = np.repeat([0, 1], 1000)
    a = stratified_subset(labels, 0.1, seed=3)
    assert np.array_equal(a, stratified_subset(labels, 0.1, seed=3))
    assert not np.array_equal(a, stratified_subset(labels, 0.1, seed=4))
    assert (labels[a] == 0).sum() == (labels[a] == 1).sum() == 100
    tr, va = stratified_split(labels, 0.2, seed=3)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 2000
    assert (labels[va] == 1).sum() == 200


def test_subset_fixed_across_machines():
    # PCG64 streams are specified by NumPy, so these indices are the same everywhere.
    labels = np.repeat([0, 1], 50)
    assert stratified_subset(labels, 0.04, seed=42).tolist() == sorted(
        stratified_subset(labels, 0.04, seed=42).tolist()
    )
    assert len(stratified_subset(labels, 0.04, seed=42)) == 4


def test_load_splits_and_cache(tiny_data):
    cfg = DataConfig(dir=str(tiny_data), val_fraction=0.25)
    splits = load_splits(cfg, progress=False)
    assert len(splits["train"]) == 60 and len(splits["val"]) == 20
    assert splits["val"].counts() == {"REAL": 10, "FAKE": 10}
    assert splits["train"].images.dtype == np.uint8 and splits["train"].images.shape[1:] == (32, 32, 3)
    cached = list((tiny_data / CACHE_DIRNAME).glob("*.npz"))
    assert len(cached) == 1
    again = load_split(cfg, "train", progress=False)
    full = load_split(DataConfig(dir=str(tiny_data), cache=False), "train", progress=False)
    assert np.array_equal(again.images, full.images)


def test_cache_invalidated_when_files_change(tiny_data):
    cfg = DataConfig(dir=str(tiny_data))
    load_split(cfg, "train", progress=False)
    victim = sorted((tiny_data / "train" / "REAL").iterdir())[0]
    victim.unlink()
    assert len(load_split(cfg, "train", progress=False)) == 79


def test_bad_file_error_and_skip(tiny_data):
    bad = tiny_data / "train" / "FAKE" / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(UserError, match=r"broken\.jpg"):
        load_split(DataConfig(dir=str(tiny_data), on_bad_file="error"), "train", progress=False)
    split = load_split(DataConfig(dir=str(tiny_data), on_bad_file="skip"), "train", progress=False)
    assert len(split) == 80 and str(bad) not in split.paths


def test_missing_folder_is_user_error(tmp_path):
    with pytest.raises(UserError, match="cifake download"):
        load_split(DataConfig(dir=str(tmp_path)), "train")


def _split(n=50):
    rng = np.random.default_rng(0)
    return Split(
        rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8),
        np.arange(n, dtype=np.int32) % 2,
        [str(i) for i in range(n)],
    )


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def test_train_order_depends_only_on_seed_and_epoch():
    split = _split()
    full = _batches(train_dataset(split, 16, seed=1, epochs=3, flip=True, shift=2))
    resumed = _batches(train_dataset(split, 16, seed=1, epochs=3, initial_epoch=1, flip=True, shift=2))
    assert len(full) == 12 and len(resumed) == 8
    for (xa, ya), (xb, yb) in zip(full[4:], resumed, strict=True):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    other = _batches(train_dataset(split, 16, seed=2, epochs=1))
    assert not np.array_equal(other[0][1], full[0][1])


def test_every_image_once_per_epoch_without_augmentation():
    split = _split()
    batches = _batches(train_dataset(split, 16, seed=0, epochs=1))
    images = np.concatenate([x for x, _ in batches])
    assert images.shape == (50, 32, 32, 3)
    order = [int(np.flatnonzero((split.images == img).all(axis=(1, 2, 3)))[0]) for img in images]
    assert sorted(order) == list(range(50))


def test_augmentation_flips_and_shifts_keep_content():
    split = _split(8)
    x, _ = _batches(train_dataset(split, 8, seed=0, epochs=1, flip=True))[0]
    plain, _ = _batches(train_dataset(split, 8, seed=0, epochs=1))[0]
    flipped = [np.array_equal(a, b[:, ::-1]) for a, b in zip(x, plain, strict=True)]
    same = [np.array_equal(a, b) for a, b in zip(x, plain, strict=True)]
    assert all(f or s for f, s in zip(flipped, same, strict=True)) and any(flipped)
    shifted, _ = _batches(train_dataset(split, 8, seed=0, epochs=1, shift=3))[0]
    assert shifted.shape == plain.shape and shifted.dtype == np.uint8
    # the centre of a shifted image is a translated copy of the original
    moved = 0
    for a, b in zip(shifted, plain, strict=True):
        hits = [
            (dy, dx)
            for dy in range(-3, 4)
            for dx in range(-3, 4)
            if np.array_equal(a[8:24, 8:24], b[8 + dy : 24 + dy, 8 + dx : 24 + dx])
        ]
        assert hits
        moved += hits[0] != (0, 0)
    assert moved > 0


def test_eval_dataset_keeps_order():
    split = _split(37)
    x = np.concatenate([b[0] for b in _batches(eval_dataset(split, 10))])
    assert np.array_equal(x, split.images)
