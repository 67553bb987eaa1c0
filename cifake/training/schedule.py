"""Learning-rate schedules, per optimizer step: a pure function and the callback that applies it.

The schedule is a function of the global step only, so a resumed run continues exactly where an
uninterrupted one would be, and saved models carry a plain float learning rate (no custom schedule
object that ``keras.models.load_model`` would need this package to rebuild).
"""

from __future__ import annotations

import math

from ..base.tfutil import import_keras


def lr_at(step: int, total_steps: int, steps_per_epoch: int, cfg) -> float:
    """Learning rate at optimizer step ``step`` (0-based) for ``train.schedule``; pure, so resume is exact."""
    peak = cfg.lr
    if cfg.schedule == "onecycle":  # cosine up from peak/25 over 30%, cosine down to peak/1e4
        up = max(1, round(0.3 * total_steps))
        if step < up:
            return peak / 25 + (peak - peak / 25) * (1 - math.cos(math.pi * step / up)) / 2
        t = min(1.0, (step - up) / max(1, total_steps - up))
        return peak / 1e4 + (peak - peak / 1e4) * (1 + math.cos(math.pi * t)) / 2
    warm = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warm:
        return peak * (step + 1) / warm
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "triangle":
        return peak * max(0.0, (total_steps - step) / max(1, total_steps - warm))
    t = min(1.0, (step - warm) / max(1, total_steps - warm))
    return peak * (1 + math.cos(math.pi * t)) / 2


def lr_callback(train_cfg, steps_per_epoch: int):
    """A callback setting the learning rate before every step from ``lr_at`` (no device sync)."""
    keras = import_keras()
    total_steps = train_cfg.epochs * steps_per_epoch

    class StepSchedule(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_begin(self, batch, logs=None):
            step = self.epoch * steps_per_epoch + batch
            self.model.optimizer.learning_rate.assign(lr_at(step, total_steps, steps_per_epoch, train_cfg))

    return StepSchedule()
