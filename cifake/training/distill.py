"""Distillation (``train.teacher``): the training targets become ``(1 - w) * label + w * P_teacher(FAKE)``.

The teachers (model files or run directories) score every training image once, clean, at the start
of a new run; their mean P(FAKE) is kept in ``RUN/teacher.npy`` so that a resumed run trains on the
same targets without scoring again. The augmented views of an image (JPEG, blur, noise...) keep the
clean image's target: the student learns to say on the corrupted image what the teachers say on the
clean one.

A teacher that trained on any of this run's validation images (by bytes) is refused: its scores on the
training images would carry what it learned from them into training.

Keras sees rows ``[label, target]``: the loss reads the target, the metrics (accuracy, precision,
recall, AUC) the label, so results.csv keeps meaning what it says. Validation batches hold the label
alone, which both read. The loss and metric classes are registered (``cifake>...``) so ``last.keras``
resumes; ``best.keras`` is a copy compiled with the built-in ones (``best_copy``), loadable without cifake.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.files import atomic_open
from ..base.progress import duration
from ..base.tfutil import import_keras
from ..data.dedup import twins
from ..data.listing import Split, training_hashes
from ..models.detector import Detector
from ..models.registry import float32_copy
from .rundir import run_config, split_grouped

keras = import_keras()
log = logging.getLogger(__name__)

TEACHER_FILE = "teacher.npy"  # in the run directory: the teachers' mean P(FAKE) per training image


@keras.saving.register_keras_serializable(package="cifake")
class TargetCrossentropy(keras.losses.Loss):
    """Binary cross-entropy against the last column of ``y_true`` (the target of ``[label, target]``
    rows; a one-column label in validation)."""

    def __init__(self, label_smoothing: float = 0.0, name: str = "target_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        return keras.losses.binary_crossentropy(y_true[..., -1:], y_pred, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def _on_label(base):
    """``base`` (a Keras metric class) updated with the first column of ``y_true``: the label."""

    class OnLabel(base):
        def update_state(self, y_true, y_pred, sample_weight=None):
            return super().update_state(y_true[..., :1], y_pred, sample_weight)

    OnLabel.__name__ = OnLabel.__qualname__ = f"Label{base.__name__}"
    return keras.saving.register_keras_serializable(package="cifake")(OnLabel)


# results.csv's metrics (``rundir.METRICS`` after the loss): Keras' classes, and their twins reading the label
_BUILT_IN = {
    "accuracy": keras.metrics.BinaryAccuracy,
    "precision": keras.metrics.Precision,
    "recall": keras.metrics.Recall,
    "auc": keras.metrics.AUC,
}
_ON_LABEL = {name: _on_label(cls) for name, cls in _BUILT_IN.items()}
LabelAccuracy, LabelPrecision, LabelRecall, LabelAUC = _ON_LABEL.values()


def loss_and_metrics(label_smoothing: float, distilled: bool) -> tuple:
    """(loss, metrics) for ``model.compile``: Keras' built-in ones, or (``distilled``) their twins that
    read ``[label, target]`` rows."""
    if distilled:
        return TargetCrossentropy(label_smoothing), [cls(name=name) for name, cls in _ON_LABEL.items()]
    loss = keras.losses.BinaryCrossentropy(label_smoothing=label_smoothing)
    return loss, [cls(name=name) for name, cls in _BUILT_IN.items()]


def best_copy(model, weights, train_cfg):
    """What best.keras saves: ``float32_copy(model, weights)``; under distillation always a copy,
    recompiled with the built-in loss and metrics, so that ``keras.models.load_model`` reads it
    without cifake's classes."""
    if not train_cfg.teacher:
        return float32_copy(model, weights)
    copy = float32_copy(model, model.get_weights() if weights is None else weights)
    loss, metrics = loss_and_metrics(train_cfg.label_smoothing, distilled=False)
    copy.compile(optimizer=copy.optimizer, loss=loss, metrics=metrics)
    return copy


def mixed_targets(labels: np.ndarray, p_teacher: np.ndarray, weight: float) -> np.ndarray:
    """``(1 - weight) * label + weight * P_teacher(FAKE)``, float32."""
    return ((1.0 - weight) * labels.astype(np.float32) + weight * p_teacher.astype(np.float32)).astype(np.float32)


def check_teacher(checkpoint: Path, val: Split) -> None:
    """Refuse a teacher whose training images include any of ``val``'s (by bytes) or cannot be told."""
    cfg = run_config(checkpoint)
    if cfg is None:
        raise UserError(
            f"train.teacher: {checkpoint} has no run directory (config.yaml beside it or named by its export card), "
            "so the images it trained on are unknown; a teacher that saw this run's validation images would carry "
            "them into training. Use a model trained by cifake train (its run directory, or a file exported from it)"
        )
    found = training_hashes(cfg.data, split_grouped(checkpoint))
    if found is None or val.hashes is None:
        raise UserError(
            f"train.teacher: cannot compare the images {checkpoint} trained on (data.dir {cfg.data.dir}) with this "
            "run's validation split: its dataset's train folder is not here; point its run's data.dir at it"
        )
    seen = int(twins(val.hashes, found[1]).sum())
    if seen:
        raise UserError(
            f"train.teacher: {checkpoint} trained on {seen:,} of this run's {len(val):,} validation images (the same "
            "bytes); its scores would carry them into training. Use a teacher trained on this run's split (the same "
            "data.dir, data.split_seed, data.val_fraction and data.fraction), or leave it out"
        )


def teacher_scores(teachers: list[str], train: Split, val: Split, batch_size: int = 1024) -> np.ndarray:
    """The teachers' mean P(FAKE) on every training image (clean, no test-time views), each teacher checked first."""
    loaded = []
    for t in teachers:
        detector = Detector.load(t)
        check_teacher(detector.path, val)
        loaded.append(detector)
    total = np.zeros(len(train), np.float64)
    for i, detector in enumerate(loaded, 1):
        t0 = time.perf_counter()
        log.info(f"distillation: teacher {i}/{len(loaded)} ({detector.path}) scores {len(train):,} training images")
        total += detector.predict(train.images, batch_size)
        log.info(f"  done in {duration(time.perf_counter() - t0)}")
    return (total / len(loaded)).astype(np.float32)


def run_scores(cfg, train: Split, val: Split, run_dir: Path | None) -> np.ndarray | None:
    """The teachers' scores of a run with ``train.teacher`` (None without): from ``run_dir``'s
    teacher.npy when resuming, else scored now; ``save_scores`` keeps them, ``mixed_targets`` makes
    the targets of them."""
    t = cfg.train
    if not t.teacher:
        return None
    kept = run_dir / TEACHER_FILE if run_dir is not None else None
    if kept is not None and kept.is_file():
        try:
            p = np.load(kept, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            raise UserError(f"{kept} is damaged; delete it and resume to score the training images again") from None
        if p.shape != (len(train),):
            raise UserError(
                f"{kept} holds {p.shape[0] if p.ndim else 0:,} teacher scores for {len(train):,} training images: "
                "it belongs to another split; delete it to score the images again"
            )
        if not (np.isfinite(p).all() and p.min(initial=0.0) >= 0 and p.max(initial=0.0) <= 1):
            raise UserError(f"{kept} holds values that are not probabilities; delete it to score the images again")
    else:
        if kept is not None:
            log.warning(f"note: {kept} is missing: the teachers score the training images again")
        p = teacher_scores(t.teacher, train, val)
    agree = float(((p >= 0.5) == (train.labels == 1)).mean())
    log.info(
        f"distillation: targets (1 - {t.distill_weight:g}) * label + {t.distill_weight:g} * P_teacher(FAKE); "
        f"the teachers agree with {agree:.2%} of the training labels"
    )
    return p


def save_scores(run_dir: Path, p: np.ndarray) -> None:
    """Keep the teachers' scores in the run directory (what ``run_scores`` reads on resume)."""
    with atomic_open(run_dir / TEACHER_FILE, "wb") as f:
        np.save(f, p.astype(np.float32))
