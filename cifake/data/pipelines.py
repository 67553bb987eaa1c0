"""tf.data pipelines over a decoded split: seeded, augmented training batches, evaluation batches, replicas.

Training batches are gathered from the in-memory uint8 array by index; the order of epoch ``e``
depends only on (train.seed, e), so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np

from ..base.tfutil import import_tf
from .listing import Split


def train_dataset(
    split: Split,
    batch_size: int,
    *,
    seed: int,
    epochs: int,
    initial_epoch: int = 0,
    augment=None,
    flip: bool = False,
    shift: int = 0,
    robust=None,
    alternate_flip: bool = False,
    total_epochs: int | None = None,
    targets: np.ndarray | None = None,
):
    """Batches for epochs ``initial_epoch .. epochs-1``, ``ceil(N / batch_size)`` steps each.

    ``augment``: an AugmentConfig, every augment.* key at once (what ``cifake train`` passes); the
    separate flags below build a pipeline by hand (tests, benchmarks) and are ignored when it is given.

    Epoch ``e`` is a permutation seeded by (seed, e); augmentation is seeded by (seed, e, step).
    ``robust`` is an AugmentConfig whose JPEG/blur/resize/noise keys apply (see ``augment.py``).
    ``alternate_flip`` (with ``flip``): image i is mirrored in epoch e iff coin(i) xor (e odd), coin
    seeded by ``seed``, so each epoch shows every image the other way round from the last.
    ``total_epochs`` (default ``epochs``): the run's length, where ``robust.ease_off_epochs`` counts from.
    With ``robust.spare_extra`` the images of extra folders (``split.origin``) skip the robust augmentations.
    ``targets`` (N,) (distillation): batches carry rows ``[label, target]`` instead of ``[label]``.
    """
    from .augment import any_robust, ease_factor, flip_shift, robust_batch

    if augment is not None:
        flip, shift, alternate_flip, robust = augment.flip, augment.shift, augment.alternate_flip, augment
    tf = import_tf()

    n = len(split)
    steps = math.ceil(n / batch_size)
    images = tf.constant(split.images)
    labels = split.labels.astype(np.float32)[:, None]
    if targets is not None:
        labels = np.concatenate([labels, np.asarray(targets, np.float32).reshape(n, 1)], axis=1)
    labels = tf.constant(labels)
    spare = tf.constant(split.from_extra()) if robust is not None and robust.spare_extra else None

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
            robust_x = robust_batch(x, step_seed, robust, ease_factor(epoch, total_epochs or epochs, robust))
            x = robust_x if spare is None else tf.where(tf.gather(spare, idx)[:, None, None, None], x, robust_x)
        return x, tf.gather(labels, idx)

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
