"""Scoring many image files with bounded memory: chunks, a CSV written as it goes, shards.

Images are read by ``images.load_images`` (the training loader's decoders, headers and caps first).
Streaming: files go through in chunks of ``CHUNK_FILES`` (the next chunk decodes while this one is
scored), so memory does not grow with the number of files; ``CsvSink`` writes rows as they arrive
into a hidden temporary file that is renamed at the end; ``shard`` splits a huge input over jobs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..base.leftovers import remove_dead, temp_name
from ..base.owned import SCORES_COLUMNS, scores_row
from ..data.images import load_images
from ..models.detector import Detector

CHUNK_FILES = 4096  # files decoded and scored together: bounds memory (~13 MB of pixels per chunk)

Row = tuple[str, float, str, int, int]  # path, P(FAKE), label, width, height


def score_chunks(
    files: list[str], detector: Detector, batch_size: int = 1024, tta: bool | str = False, chunk: int | None = None
) -> Iterator[tuple[list[Row], list[tuple[str, str]]]]:
    """(rows, unreadable) per chunk of ``files``, in input order, with bounded memory.

    Chunk i+1 is decoded on a second thread while chunk i is scored (the model releases the GIL while
    it runs), so on a multi-core machine the time is about the decoding's: ~75 us a 32x32 JPEG.
    """
    if not files:
        return
    chunk = chunk or CHUNK_FILES
    t = detector.threshold
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cifake-decode") as pool:
        pending = pool.submit(load_images, files[:chunk])
        for start in range(0, len(files), chunk):
            loaded = pending.result()
            if start + chunk < len(files):
                pending = pool.submit(load_images, files[start + chunk : start + 2 * chunk])
            p = detector.predict(loaded.images, batch_size, tta=tta) if loaded.ok else []
            rows = [
                (f, float(q), "FAKE" if q >= t else "REAL", w, h)
                for f, q, (w, h) in zip(loaded.ok, p, loaded.sizes, strict=True)
            ]
            yield rows, loaded.unreadable


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
