"""tf.data pipelines for ``<data.dir>/{train,test}/{REAL,FAKE}``: decode once, keep uint8, feed fast.

Contract: labels are REAL = 0, FAKE = 1 (set here, not by folder sort order). Images stay uint8 RGB
32x32; the model normalises. Subsets and the validation split are seeded and stratified by label,
drawn with NumPy's PCG64 over the sorted file list, so they are identical across runs and machines.

Speed: JPEGs are decoded in a parallel tf.data pass (bad files are found by index, not by
crashing), then kept as one uint8 array, optionally cached on disk (``<dir>/.cifake-cache``,
keyed by the file list with sizes and mtimes). Training batches are gathered from that array by
index; the order of epoch ``e`` depends only on (train.seed, e), so a resumed run sees exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import limits
from .errors import UserError
from .tfutil import import_tf, quiet_native_stderr

CLASS_NAMES = ("REAL", "FAKE")  # index = label; FAKE = 1 is the positive class
IMAGE_SIZE = 32
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
SUBJECTS = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_SUBJECT_RE = re.compile(r" \((\d+)\)$")
CACHE_DIRNAME = ".cifake-cache"


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


# --- decoding ------------------------------------------------------------------------------------


def decode_files(paths: list[str], *, batch: int = 2048, progress: bool = False) -> tuple[np.ndarray, list[int]]:
    """Decode image files to (N, 32, 32, 3) uint8 in parallel; return the array and indices of bad files.

    Any format TensorFlow decodes (JPEG, PNG, BMP, GIF first frame); other sizes are resized to 32x32
    (bicubic, antialiased). Files named .jpg/.jpeg go through the JPEG decoder directly (about 20%
    faster than format sniffing); whatever fails there is retried with the generic decoder. A file
    that fails both is left zero and reported by index.

    Bounded (``limits``): files over IMAGE_MAX_FILE_BYTES are never read; a JPEG whose header
    declares more pixels than the cap is refused in the graph before decoding, and every other file
    has its header read by Pillow first. Names may be any bytes (they reach TensorFlow as bytes).
    The decoders' own complaints ("Premature end of JPEG file") are kept off the terminal: such
    files are reported as bad by index instead.
    """
    n = len(paths)
    out = np.zeros((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    seen = np.zeros(n, bool)
    jpeg = [
        i for i, p in enumerate(paths) if p.lower().endswith((".jpg", ".jpeg")) and limits.file_size_problem(p) is None
    ]
    with (
        quiet_native_stderr() as err,
        tqdm(total=n, desc="decode", unit="img", file=err, mininterval=1.0, disable=not progress or n == 0) as bar,
    ):
        _decode_into(out, seen, paths, jpeg, "jpeg", batch, bar)
        rest = [i for i in np.flatnonzero(~seen).tolist() if limits.image_size_problem(paths[i]) is None]
        gifs = {i for i in rest if limits.is_gif(paths[i])}  # TensorFlow would decode every frame
        _decode_into(out, seen, paths, [i for i in rest if i not in gifs], "any", batch, bar)
        for i in sorted(gifs):
            if (arr := pil_decode(paths[i])) is not None:
                out[i], seen[i] = arr, True
            bar.update(1)
    return out, np.flatnonzero(~seen).tolist()


def pil_decode(path: str) -> np.ndarray | None:
    """Pillow: the first frame only, EXIF orientation applied, RGB (alpha dropped, as TensorFlow does),
    resized like the loader; None if unreadable. Pillow's own pixel cap is ``limits``' (set there)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.seek(0)
            arr = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return None
    if arr.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):
        return arr
    tf = import_tf()
    resized = tf.image.resize(arr[None], [IMAGE_SIZE, IMAGE_SIZE], "bicubic", antialias=True)
    return np.clip(np.round(resized.numpy()[0]), 0, 255).astype(np.uint8)


@functools.cache
def _loader(decoder: str, cap: int):
    """(index, path bytes) -> (index, 32x32x3 uint8), traced once per decoder and pixel cap.

    tf.data maps it for large sets; a handful of files (one upload, one photo) call it directly,
    which skips building a pipeline (~50 ms of tracing per call otherwise).
    """
    tf = import_tf()

    @tf.function(input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string)])
    def load(i, path):
        data = tf.io.read_file(path)
        if decoder == "jpeg":
            hw = tf.cast(tf.image.extract_jpeg_shape(data), tf.int64)
            with tf.control_dependencies([tf.debugging.assert_less_equal(hw[0] * hw[1], tf.constant(cap, tf.int64))]):
                img = tf.io.decode_jpeg(data, channels=3)
        else:
            img = tf.io.decode_image(data, channels=3, expand_animations=False)
        shape = tf.shape(img)
        img = tf.cond(
            tf.logical_and(shape[0] == IMAGE_SIZE, shape[1] == IMAGE_SIZE),
            lambda: img,
            lambda: tf.cast(
                tf.clip_by_value(
                    tf.round(tf.image.resize(img, [IMAGE_SIZE, IMAGE_SIZE], "bicubic", antialias=True)), 0, 255
                ),
                tf.uint8,
            ),
        )
        return i, tf.ensure_shape(img, [IMAGE_SIZE, IMAGE_SIZE, 3])

    return load


_DIRECT_MAX = 64  # up to this many files are decoded by direct calls rather than a tf.data pipeline


def _decode_into(
    out: np.ndarray, seen: np.ndarray, paths: list[str], indices: list[int], decoder: str, batch: int, bar
) -> None:
    if not indices:
        return
    tf = import_tf()
    load = _loader(decoder, limits.max_pixels())
    names = np.array([os.fsencode(paths[i]) for i in indices], dtype=object)  # bytes: any file name works
    if len(indices) <= _DIRECT_MAX:
        for i, name in zip(indices, names, strict=True):
            try:
                out[i] = load(tf.constant(i, tf.int64), tf.constant(name))[1].numpy()
                seen[i] = True
            except tf.errors.OpError:
                pass
            bar.update(1)
        return
    ds = (
        tf.data.Dataset.from_tensor_slices((np.asarray(indices, dtype=np.int64), names))
        .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .ignore_errors()
        .batch(batch)
        .prefetch(2)
    )
    for idx, imgs in ds.as_numpy_iterator():
        out[idx] = imgs
        seen[idx] = True
        bar.update(len(idx))


def _cache_key(paths: list[str], root: str | Path) -> str:
    """Names relative to the dataset root, sizes and modification times: a folder moved or renamed
    as a whole (``cifake download`` verifies in a temporary folder, then renames it) keeps its cache."""
    h = hashlib.sha1()
    for p in paths:
        st = os.stat(p)
        h.update(os.fsencode(os.path.relpath(p, root)) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def cache_file_for(paths: list[str], root: str | Path) -> Path:
    return Path(root) / CACHE_DIRNAME / f"{_cache_key(paths, root)}.npz"


def _read_cache(cache_file: Path, n: int) -> tuple[np.ndarray, list[int]] | None:
    """The cached (images, bad) if the file is whole and matches ``n`` paths; else None (and it is removed).

    A cache cut short (disk full, a kill during a copy) or edited by hand is treated as absent and
    rebuilt, instead of failing every later run until someone deletes it.
    """
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            images, bad = z["images"], z["bad"]
        if images.shape != (n, IMAGE_SIZE, IMAGE_SIZE, 3) or images.dtype != np.uint8 or bad.ndim != 1:
            raise ValueError(f"holds {images.shape} {images.dtype}, expected ({n}, 32, 32, 3) uint8")
        if len(bad) and (bad.min() < 0 or bad.max() >= n):
            raise ValueError("bad-file indices out of range")
        return images, bad.astype(np.int64).tolist()
    except Exception as e:  # noqa: BLE001 - any unreadable cache is rebuilt, never fatal
        print(
            f"note: decode cache {cache_file} is unreadable ({type(e).__name__}: {e}); rebuilding it", file=sys.stderr
        )
        with contextlib.suppress(OSError):
            cache_file.unlink()
        return None


def _refuse_bad(paths: list[str], bad: list[int]) -> None:
    shown = ", ".join(paths[i] for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    raise UserError(f"{len(bad)} file(s) do not decode as images: {shown} (remove them, or set data.on_bad_file=skip)")


def load_images(
    paths: list[str], root: str | Path, *, cache: bool, on_bad_file: str, progress: bool = True
) -> tuple[np.ndarray, list[int]]:
    """Decoded images for ``paths`` (from the on-disk cache when valid) and the indices of bad files.

    ``on_bad_file='error'`` raises a UserError naming the files; ``'skip'`` returns them for removal.
    """
    cache_file = cache_file_for(paths, root) if cache else None
    if cache_file is not None and cache_file.is_file():
        cached = _read_cache(cache_file, len(paths))
        if cached is not None:
            return cached
    images, bad = decode_files(paths, progress=progress and len(paths) > 5000)
    if bad and on_bad_file == "error":
        _refuse_bad(paths, bad)
    if cache_file is not None:
        try:
            cache_file.parent.mkdir(exist_ok=True)
            tmp = cache_file.with_name(f".{cache_file.stem}.{os.getpid()}.tmp.npz")  # one writer per name
            try:
                np.savez(tmp, images=images, bad=np.asarray(bad, np.int64))
                os.replace(tmp, cache_file)  # readers see the old file or the whole new one
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as e:  # read-only dataset folder or a full disk: carry on without a cache
            print(f"note: could not write the decode cache ({e}); set data.cache=false to silence", file=sys.stderr)
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
        whole = _read_cache(cached, len(paths))  # the cache holds whole splits: a subset is a slice of it
    if whole is not None:
        position = {int(i): j for j, i in enumerate(keep)}
        images, bad = whole[0][keep], sorted(position[i] for i in whole[1] if i in position)
        paths = [paths[i] for i in keep]
        if bad and data_cfg.on_bad_file == "error":
            _refuse_bad(paths, bad)
    else:
        # a subset without a whole-split cache is decoded, not cached: caches never multiply per fraction
        paths = [paths[i] for i in keep]
        images, bad = load_images(
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
    full = load_split(data_cfg, "train", progress=progress)
    train_idx, val_idx = stratified_split(full.labels, data_cfg.val_fraction, data_cfg.split_seed)
    splits = {"train": full.take(train_idx), "val": full.take(val_idx)}
    for name, part in splits.items():
        counts = part.counts()
        if min(counts.values()) < limits.MIN_IMAGES_PER_CLASS:
            raise UserError(
                f"the {name} split would hold {counts['REAL']} REAL and {counts['FAKE']} FAKE image(s) "
                f"(data.fraction={data_cfg.fraction:g}, data.val_fraction={data_cfg.val_fraction:g} of {len(full):,} "
                f"images in {data_cfg.dir}); at least {limits.MIN_IMAGES_PER_CLASS} per class are needed: "
                "raise data.fraction or add images"
            )
    if all((Path(data_cfg.dir) / "test" / name).is_dir() for name in CLASS_NAMES):
        splits["test"] = load_split(data_cfg, "test", progress=progress)
    return splits


# --- tf.data -------------------------------------------------------------------------------------


def train_dataset(
    split: Split,
    batch_size: int,
    *,
    seed: int,
    epochs: int,
    initial_epoch: int = 0,
    flip: bool = False,
    shift: int = 0,
    robust=None,
    alternate_flip: bool = False,
):
    """Batches for epochs ``initial_epoch .. epochs-1``, ``ceil(N / batch_size)`` steps each.

    Epoch ``e`` is a permutation seeded by (seed, e); augmentation is seeded by (seed, e, step).
    ``robust`` is an AugmentConfig whose JPEG/blur/resize/noise keys apply (see ``augment.py``).
    ``alternate_flip`` (with ``flip``): image i is mirrored in epoch e iff coin(i) xor (e odd), coin
    seeded by ``seed``, so each epoch shows every image the other way round from the last.
    """
    from .augment import any_robust, flip_shift, robust_batch

    tf = import_tf()

    n = len(split)
    steps = math.ceil(n / batch_size)
    images = tf.constant(split.images)
    labels = tf.constant(split.labels.astype(np.float32))

    def epoch_batches(epoch):
        perm = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.cast(seed, tf.int64), epoch])
        )
        return tf.data.Dataset.range(steps).map(lambda s: (epoch, s, perm[s * batch_size : (s + 1) * batch_size]))

    coins = tf.random.stateless_uniform([n], seed=[seed, 7_919]) < 0.5 if flip and alternate_flip else None

    def gather(epoch, step, idx):
        x = tf.gather(images, idx)
        step_seed = tf.stack([epoch * 100_003 + step, tf.cast(seed, tf.int64)])
        if coins is not None:
            mirror = tf.math.logical_xor(tf.gather(coins, idx), tf.equal(epoch % 2, 1))
            x = tf.where(mirror[:, None, None, None], tf.reverse(x, axis=[2]), x)
        if (flip and coins is None) or shift:
            x = flip_shift(x, step_seed, flip and coins is None, shift)
        if robust is not None and any_robust(robust):
            x = robust_batch(x, step_seed, robust)
        return x, tf.gather(labels, idx)[:, None]

    return (
        tf.data.Dataset.range(initial_epoch, epochs)
        .flat_map(epoch_batches)
        .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(split: Split, batch_size: int):
    """Batches in file order (no shuffle, no augmentation): (images uint8, labels float (B, 1))."""
    tf = import_tf()

    images = tf.constant(split.images)
    labels = tf.constant(split.labels.astype(np.float32))
    return (
        tf.data.Dataset.range(0, len(split), batch_size)
        .map(
            lambda s: (images[s : s + batch_size], labels[s : s + batch_size][:, None]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def distribute(make_dataset, strategy):
    """``make_dataset()`` (global batches) for ``strategy``: replica j of R takes rows j, j+R, ... of every batch.

    Every worker builds the same seeded pipeline of global batches (same order, same augmentation)
    and keeps only its replicas' rows, so a run is the same whatever the number of workers, up to
    the order in which the gradients are summed; with one replica the dataset is returned as is.
    Rows are taken with a stride rather than in blocks so that a short last batch is shared out
    evenly.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return make_dataset()
    tf = import_tf()

    def per_worker(ctx):
        local = replicas // ctx.num_input_pipelines
        first = ctx.input_pipeline_id * local

        def slices(x, y):
            take = tf.data.Dataset.range(first, first + local)
            return take.map(lambda j: (x[j::replicas], y[j::replicas]))

        return make_dataset().flat_map(slices).prefetch(tf.data.AUTOTUNE)

    return strategy.distribute_datasets_from_function(per_worker)
