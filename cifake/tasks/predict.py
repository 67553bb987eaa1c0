"""Scoring many image files with bounded memory: chunks, a CSV written as it goes, shards.

Images are read by ``images.load_images`` (the training loader's decoders, headers and caps first).
Streaming: files go through in chunks (``loaded_chunks``: the next chunks decode while this one is
scored, in worker processes when the input is large and there is more than one core), so memory does
not grow with the number of files; ``CsvSink`` writes rows as they arrive into a hidden temporary
file that is renamed at the end; ``shard`` splits a huge input over jobs.
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from ..base import limits
from ..base.leftovers import remove_dead, temp_name
from ..base.owned import SCORES_COLUMNS, scores_row
from ..data.images import Loaded, load_images
from ..models.detector import Detector

CHUNK_FILES = 4096  # files decoded and scored together: bounds memory (~13 MB of pixels per chunk)
# Decoding a 32x32 file is ~75 us of Python under the GIL, so threads do not share it out; processes
# do. They cost ~0.2 s to start (a fresh interpreter importing numpy and Pillow), so they are used only
# for inputs that repay it, with chunks small enough to keep every worker busy from the start.
PARALLEL_MIN_FILES = 4096
PARALLEL_CHUNK_FILES = 1024
MAX_DECODE_WORKERS = 8
# AUTO: the first chunk is decoded on the thread and timed; worker processes take the rest only when
# a file took longer than this. CIFAKE's 32x32 JPEGs (libjpeg-turbo directly) take ~30-45 us and were
# slower with two workers (3.91 against 3.27 s for 20,000 files, 2-core EPYC); through Pillow (~75 us)
# the workers paid (4.44 against 5.19 s); photos that need resizing take milliseconds each.
AUTO = -1
SLOW_DECODE_SECONDS = 60e-6

Row = tuple[str, float, str, int, int]  # path, P(FAKE), label, width, height


def score_chunks(
    files: list[str],
    detector: Detector,
    batch_size: int = 1024,
    tta: bool | str = False,
    chunk: int | None = None,
    workers: int = 0,
) -> Iterator[tuple[list[Row], list[tuple[str, str]]]]:
    """(rows, unreadable) per chunk of ``files``, in input order, with bounded memory (``loaded_chunks``
    decodes ahead while a chunk is scored; the model releases the GIL while it runs)."""
    t = detector.threshold
    for loaded in loaded_chunks(files, chunk, workers):
        p = detector.predict(loaded.images, batch_size, tta=tta) if loaded.ok else []
        rows = [
            (f, float(q), "FAKE" if q >= t else "REAL", w, h)
            for f, q, (w, h) in zip(loaded.ok, p, loaded.sizes, strict=True)
        ]
        yield rows, loaded.unreadable


def decode_workers(n_files: int) -> int:
    """Worker processes to decode ``n_files`` with: one per core this process may use (at most
    ``MAX_DECODE_WORKERS``), or 0 (decode here, on one thread beside the scoring) for a small input or
    a single core."""
    if n_files < PARALLEL_MIN_FILES:
        return 0
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return min(cores, MAX_DECODE_WORKERS) if cores > 1 else 0


def loaded_chunks(files: list[str], chunk: int | None = None, workers: int = 0) -> Iterator[Loaded]:
    """``load_images`` of consecutive chunks of ``files``, in order, decoded ahead of the consumer.

    ``workers``: 0 decodes on one thread, a chunk ahead; N > 0 decodes in N worker processes, N + 1
    chunks ahead, so at most N + 2 chunks of pixels are held (``decode_workers`` picks N for an input);
    ``AUTO`` decodes the first chunk here, timed, and hands the rest to ``decode_workers`` processes
    only if decoding was slow (``SLOW_DECODE_SECONDS`` a file), else to the thread.
    The workers are fresh interpreters, so a script that asks for them needs the usual
    ``if __name__ == "__main__":`` guard; they get this process's pixel cap, ignore Ctrl-C (the caller
    stops them), and are gone when the generator is closed, finished or not.
    """
    if not files:
        return
    if workers != AUTO:
        yield from _primed(files, chunk, workers)
        return
    first = files[: chunk or min(PARALLEL_CHUNK_FILES, CHUNK_FILES)]
    started = time.perf_counter()
    loaded = load_images(first)
    slow = (time.perf_counter() - started) / len(first) > SLOW_DECODE_SECONDS
    rest = _primed(files[len(first) :], chunk, decode_workers(len(files)) if slow else 0)
    try:
        yield loaded  # while it is scored, the next chunks decode
        yield from rest
    finally:
        rest.close()


def _primed(files: list[str], chunk: int | None, workers: int) -> Iterator[Loaded]:
    """``loaded_chunks`` for a fixed ``workers``, with its first chunks already submitted."""
    gen = _decoded_ahead(files, chunk, workers)
    next(gen)
    return gen


def _decoded_ahead(files: list[str], chunk: int | None, workers: int) -> Iterator[Loaded | None]:
    """None once the first chunks are submitted (``_primed``), then the chunks in order."""
    if workers > 0:
        chunk = chunk or PARALLEL_CHUNK_FILES
        pool: Executor = ProcessPoolExecutor(
            workers, mp_context=_spawn(), initializer=_decoder_init, initargs=(limits.max_pixels(),)
        )
    else:
        chunk = chunk or CHUNK_FILES
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cifake-decode")
    starts = iter(range(0, len(files), chunk))
    ahead = deque()
    try:
        for start in starts:
            ahead.append(pool.submit(load_images, files[start : start + chunk]))
            if len(ahead) > workers:
                break
        yield None
        while ahead:
            loaded = ahead.popleft().result()
            if (start := next(starts, None)) is not None:
                ahead.append(pool.submit(load_images, files[start : start + chunk]))
            yield loaded
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _spawn():
    """A fresh interpreter per worker: forking a process that already runs TensorFlow's or LiteRT's
    threads can copy a lock in the middle of its use."""
    import multiprocessing

    return multiprocessing.get_context("spawn")


def _decoder_init(max_pixels: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle, once
    limits.set_max_pixels(max_pixels)


def shard(files: list[str], k: int, n: int) -> list[str]:
    """Every N-th file of the sorted list, starting at the K-th: the N shards partition the input,
    whatever order the paths were given in, and each job can compute its own without talking to the others."""
    return sorted(files)[k - 1 :: n]


class CsvSink:
    """CSV rows written as they arrive into a hidden temporary file, renamed to ``out`` only when complete."""

    def __init__(self, out: Path):
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_dead(out, "partial")  # left by a predict killed with SIGKILL
        self.tmp = temp_name(out, "partial")
        self.file = open(self.tmp, "w", newline="")  # noqa: SIM115 - closed in finish/abort
        self.writer = csv.writer(self.file)
        self.writer.writerow(SCORES_COLUMNS)

    def write(self, rows: list[Row]) -> None:
        self.writer.writerows(scores_row(*row) for row in rows)

    def finish(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)
