"""What `cifake train` shows while it runs: one display instead of Keras' own.

On a terminal, a progress bar within each epoch (steps, rate, time left in the epoch) that is
replaced by cifake's epoch line when the epoch ends; without a terminal (CI, ``nohup``, a log
file), a short line at every 10% of an epoch, so a log never goes quiet for a whole epoch. Keras'
own progress output is off (``verbose=0``): it printed every metric a second time.
"""

from __future__ import annotations

import logging
import sys
import time

from .logs import STATUS, showing
from .tfutil import import_keras

log = logging.getLogger(__name__)
status = logging.getLogger(STATUS)

QUIET_SECONDS = 2.0  # without a terminal, progress lines at least this far apart
ESTIMATE_WARM_STEPS = 5  # steps left out of the run's time estimate: tracing and the first allocations
ESTIMATE_SECONDS = 15.0  # the estimate is printed once this much of steady training has been timed


def duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m: what a person reads at a glance."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_callback(steps: int, epochs: int, tty: bool | None = None):
    """A Keras callback drawing the within-epoch progress (see module docstring)."""
    keras = import_keras()
    tty = sys.stdout.isatty() if tty is None else tty
    tty = tty and showing(log)  # no bar where the epoch lines are not shown (a Python caller, --quiet)

    class Progress(keras.callbacks.Callback):
        estimate = RunEstimate(steps, epochs)

        def on_epoch_begin(self, epoch, logs=None):
            self.estimate.epoch_begins(epoch)
            self.epoch, self.t0, self.next_tenth = epoch, time.perf_counter(), 1
            self.last = self.t0
            self.bar = None
            if tty:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=steps, desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=False, file=sys.stdout
                )

        def on_train_batch_end(self, batch, logs=None):
            done = batch + 1
            if (line := self.estimate.step_done(done)) is not None:
                if self.bar is not None:
                    self.bar.write(line)
                else:
                    log.info(line)
            if self.bar is not None:
                self.bar.update(done - self.bar.n)
                if done == steps:
                    self.bar.set_description(f"epoch {self.epoch + 1}/{epochs} validating")
            elif done * 10 >= self.next_tenth * steps and self.next_tenth < 10 and done < steps:
                self.next_tenth = done * 10 // steps + 1
                now = time.perf_counter()
                if now - self.last < QUIET_SECONDS:  # a short epoch needs no play-by-play
                    return
                self.last, elapsed = now, now - self.t0
                log.info(
                    f"  epoch {self.epoch + 1}/{epochs}: {done * 100 // steps}% ({done}/{steps} steps, "
                    f"{duration(elapsed)}, about {duration(elapsed * (steps - done) / done)} to the epoch's end)"
                )

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


def say(msg: str) -> None:
    """A status line of a long command: the ``cifake.status`` logger, which the CLI shows on stderr
    (stdout stays for results)."""
    status.info(msg)


def bars_shown() -> bool:
    """Whether a progress bar of a long step (decode, extract) should be drawn: where status lines
    are shown (the CLI without --quiet), not for a Python caller who configured no logging."""
    return showing(status)


class RunEstimate:
    """The whole run's remaining time, said once within the first minute: the pace of the first
    epoch's steady steps (after ``ESTIMATE_WARM_STEPS``), timed over ``ESTIMATE_SECONDS`` or a tenth
    of an epoch, whichever comes first, times the steps left. Validation passes are not counted."""

    def __init__(self, steps: int, epochs: int):
        self.steps, self.epochs = steps, epochs
        self.epoch, self.t_warm, self.done = 0, None, False

    def epoch_begins(self, epoch: int) -> None:
        if self.t_warm is not None and not self.done:
            self.done = True  # an epoch too short to time: its epoch line says how long it took
        self.epoch = epoch

    def step_done(self, step: int) -> str | None:
        """The estimate's line at the step where it is ready; None before and after."""
        if self.done or self.steps <= ESTIMATE_WARM_STEPS + 1:
            return None
        now = time.perf_counter()
        if step == ESTIMATE_WARM_STEPS:
            self.t_warm = now
            return None
        if self.t_warm is None or step <= ESTIMATE_WARM_STEPS:
            return None
        timed = step - ESTIMATE_WARM_STEPS
        if now - self.t_warm < ESTIMATE_SECONDS and timed < max(10, self.steps // 10) and step < self.steps:
            return None
        self.done = True
        per_step = (now - self.t_warm) / timed
        left = (self.epochs - self.epoch) * self.steps - step
        return (
            f"estimate: about {duration(per_step * left)} of training left on this machine for the "
            f"{self.epochs - self.epoch} epoch(s) to go ({per_step * 1000:.0f} ms a step over steps "
            f"{ESTIMATE_WARM_STEPS + 1}-{step}; validation passes come on top)"
        )
