"""Importing TensorFlow quietly, and the devices it found.

TensorFlow 2.21 writes C++ start-up logs (oneDNN notes, CUDA probing) to file descriptor 2 before
its logging honours TF_CPP_MIN_LOG_LEVEL. Unless CIFAKE_DEBUG=1 (set by ``--debug``), those lines
are swallowed while TensorFlow loads and enumerates devices; Python-level errors are unaffected.
"""

from __future__ import annotations

import contextlib
import os
import sys
from functools import cache


@contextlib.contextmanager
def _silenced_fd2():
    if os.environ.get("CIFAKE_DEBUG") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def quiet_native_stderr():
    """Keep C libraries' own messages (libjpeg's "Premature end of JPEG file") off the terminal.

    File descriptor 2 points at /dev/null inside the block; the stream yielded still writes to the
    real stderr, for a progress bar. Under ``--debug`` nothing is silenced.
    """
    if os.environ.get("CIFAKE_DEBUG") == "1":
        yield sys.stderr
        return
    sys.stderr.flush()
    real = os.fdopen(os.dup(2), "w", buffering=1, errors="backslashreplace")
    try:
        with _silenced_fd2():
            yield real
    finally:
        real.close()


@cache
def import_tf():
    """The tensorflow module, imported once with its start-up noise silenced."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _silenced_fd2():
        import tensorflow

        tensorflow.config.list_physical_devices()
        import keras  # noqa: F401
    return tensorflow


def import_keras():
    """keras, imported after TensorFlow (so the start-up noise stays silenced)."""
    import_tf()
    import keras

    return keras


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo names of the units that make bfloat16 pay
# CIFAKE_CPU_BF16=1 makes cifake treat the CPU as one with bfloat16 units (auto then trains in mixed
# bfloat16, emulated and slow where the units are missing); =0 as one without. Lets the test suite
# and CI run as if on the other kind of CPU.
BF16_ENV = "CIFAKE_CPU_BF16"


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo does not exist).

    ``CIFAKE_CPU_BF16`` (see BF16_ENV) adds or removes the bfloat16 flags.
    """
    flags: set[str] = set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced == "1":
        flags |= {"avx512_bf16"}
    elif forced == "0":
        flags -= set(BF16_CPU_FLAGS)
    return flags
