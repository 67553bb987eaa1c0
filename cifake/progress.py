"""What `cifake train` shows while it runs: one display instead of Keras' own.

On a terminal, a progress bar within each epoch (steps, rate, time left in the epoch) that is
replaced by cifake's epoch line when the epoch ends; without a terminal (CI, ``nohup``, a log
file), a short line at every 10% of an epoch, so a log never goes quiet for a whole epoch. Keras'
own progress output is off (``verbose=0``): it printed every metric a second time.
"""

from __future__ import annotations

import sys
import time

from .tfutil import import_keras

QUIET_SECONDS = 2.0  # without a terminal, progress lines at least this far apart


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

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
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
                print(
                    f"  epoch {self.epoch + 1}/{epochs}: {done * 100 // steps}% ({done}/{steps} steps, "
                    f"{duration(elapsed)}, about {duration(elapsed * (steps - done) / done)} to the epoch's end)",
                    flush=True,
                )

        def on_epoch_end(self, epoch, logs=None):
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    return Progress()


def say(msg: str) -> None:
    """A status line of a long command, on stderr (stdout stays for results), at once."""
    print(msg, file=sys.stderr, flush=True)
