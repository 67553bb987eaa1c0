"""``cifake predict``: P(FAKE) for image files and folders, batched, with the shipped detector by default.

Images are decoded and resized exactly as the training loader does (``data.decode_files``: RGB,
alpha dropped, bicubic antialiased resize to 32x32 when the size differs), in one parallel tf.data
pass; formats TensorFlow cannot decode (WebP, TIFF, ...) fall back to Pillow for decoding only.
Streaming: files go through in chunks of ``CHUNK_FILES`` (the next chunk decodes while this one is
scored), so memory does not grow with the number of files; the CSV is written as rows arrive into
a hidden temporary file that is renamed at the end; ``--shard K/N`` splits a huge input over jobs.

Exit codes: 0 every file scored; 3 some files could not be read (they are listed and skipped; the
others are still scored); 2 nothing to score.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import limits
from .data import IMAGE_SIZE, decode_files, pil_decode
from .detector import PRETRAINED, PRETRAINED_DIR, Detector
from .errors import UserError
from .limits import printable

__all__ = ["PRETRAINED", "collect", "load_images", "predict_files"]

EXIT_SOME_UNREADABLE = 3


def image_extensions() -> set[str]:
    from PIL import Image

    return {ext.lower() for ext in Image.registered_extensions()}


def collect(paths: list[str]) -> list[str]:
    """Files named directly, plus every file with an image extension under named folders (recursive)."""
    exts = image_extensions()
    found: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(str(p) for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in exts)
        elif path.is_file():
            found.append(str(path))
        else:
            raise UserError(f"no such file or folder: {raw}")
    return found


class Loaded(NamedTuple):
    images: np.ndarray  # (N, 32, 32, 3) uint8, the readable files in input order
    ok: list[str]  # their paths
    unreadable: list[tuple[str, str]]  # (path, why) of the others
    sizes: list[tuple[int, int]]  # (width, height) of each readable file as stored (upright), (0, 0) if unknown


def load_images(files: list[str]) -> Loaded:
    """The readable images of ``files`` at 32x32, their original sizes, and why the others were skipped.

    Headers first (``limits.image_header``): files over the pixel or size cap are never decoded; photos whose
    EXIF orientation says "rotated" are decoded upright by Pillow (TensorFlow's decoders ignore
    EXIF). The rest go through the loader's parallel decoders, with Pillow as the fallback for
    formats TensorFlow does not read.
    """
    refused: dict[int, str] = {}
    upright: list[int] = []
    sizes: list[tuple[int, int]] = []
    for i, f in enumerate(files):
        header = limits.image_header(f)
        w, h, orientation = header or (0, 0, 1)
        sizes.append((h, w) if orientation in (5, 6, 7, 8) else (w, h))  # EXIF 5-8 swap the axes
        if why := limits.file_size_problem(f) or (limits.size_problem(*header[:2]) if header else None):
            refused[i] = why
        elif orientation != 1:
            upright.append(i)
    plain = sorted(set(range(len(files))) - set(refused) - set(upright))
    images = np.zeros((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    decoded, bad = decode_files([files[i] for i in plain], progress=len(plain) > 5000)
    images[plain] = decoded
    problems = dict(refused)
    for i in [plain[j] for j in bad] + upright:
        arr = pil_decode(files[i])
        if arr is None:
            problems[i] = "not an image this tool can read"
        else:
            images[i] = arr
    keep = [i for i in range(len(files)) if i not in problems]
    return Loaded(
        images[keep],
        [files[i] for i in keep],
        [(files[i], problems[i]) for i in sorted(problems)],
        [sizes[i] for i in keep],
    )


CHUNK_FILES = 4096  # files decoded and scored together: bounds memory (~13 MB of pixels per chunk)

Row = tuple[str, float, str, int, int]  # path, P(FAKE), label, width, height


def score_chunks(
    files: list[str], detector: Detector, batch_size: int = 1024, tta: bool | str = False, chunk: int | None = None
) -> Iterator[tuple[list[Row], list[tuple[str, str]]]]:
    """(rows, unreadable) per chunk of ``files``, in input order, with bounded memory.

    Chunk i+1 is decoded on a second thread while chunk i is scored (TensorFlow's decoders and the
    model both release the GIL), so neither waits for the other on a multi-core machine.
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


def predict_files(
    files: list[str],
    model_path: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 1024,
    tta: bool | str = False,
) -> tuple[list[Row], list[tuple[str, str]], float]:
    """Score ``files``: ([(path, p_fake, label, width, height)], [(unreadable path, why)], threshold used)."""
    detector = Detector.load(model_path, threshold)
    rows: list[Row] = []
    unreadable: list[tuple[str, str]] = []
    for chunk_rows, chunk_bad in score_chunks(files, detector, batch_size, tta):
        rows += chunk_rows
        unreadable += chunk_bad
    return rows, unreadable, detector.threshold


def resized_note(sizes: list[tuple[int, int]]) -> str | None:
    """One warning for a run in which some images were not 32x32 (said once, not per file)."""
    return resized_note_counts(sum((w, h) != (IMAGE_SIZE, IMAGE_SIZE) for w, h in sizes), len(sizes))


def resized_note_counts(other: int, total: int) -> str | None:
    if not other:
        return None
    return (
        f"{other} of {total} image(s) were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized to it (bicubic); "
        "the detector was trained on 32x32 CIFAKE images only, so its scores on them are less reliable"
    )


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) -> (K, N)."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected K/N, e.g. 3/8 for the third of eight shards") from None
    if not 1 <= k <= n:
        raise UserError(f"--shard {text}: K must be between 1 and N")
    return k, n


def shard(files: list[str], k: int, n: int) -> list[str]:
    """Every N-th file of the sorted list, starting at the K-th: the N shards partition the input,
    whatever order the paths were given in, and each job can compute its own without talking to the others."""
    return sorted(files)[k - 1 :: n]


def model_card() -> dict:
    f = PRETRAINED_DIR / "detector.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def check_out_file(out: Path) -> None:
    """Fail before the scoring, not after it: ``--out`` must be a file we can create or replace."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'predictions.csv'}")
    if limits.can_create(out.parent) is None or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"--out {out}: not writable; choose another path")


def check_out_is_not_an_input(out: Path, files: list[str], model: Path) -> None:
    """The CSV may not replace an image being scored, the model, or a file beside the model it reads."""
    target = out.resolve()
    inputs = {Path(f).resolve() for f in files}
    model = model.resolve()
    readers = {model, model.with_name(model.name + ".json"), model.with_name("threshold.json")}
    if target in inputs:
        raise UserError(f"--out {out} is one of the images being scored; choose another file name")
    if target in readers:
        raise UserError(f"--out {out} is the model or a file it reads ({model.name}); choose another file name")


class _Table:
    """The terminal table, printed as rows arrive (the column width comes from every file's name)."""

    def __init__(self, files: list[str], threshold: float):
        self.width = min(max(len(printable(f)) for f in files), 80)
        print(f"{'path':<{self.width}}  {'P(FAKE)':>8}  label  {'size':>9}   (threshold {threshold:.4f})")

    def write(self, rows: list[Row]) -> None:
        for path, p, label, w, h in rows:
            print(f"{printable(path):<{self.width}}  {p:>8.4f}  {label:<5}  {f'{w}x{h}' if w else '?':>9}")


def remove_stale_partials(out: Path) -> list[Path]:
    """Remove ``.OUT.PID.partial`` files beside ``out`` whose process is gone (a predict killed with -9)."""
    removed = []
    for f in out.parent.glob(f".{out.name}.*.partial"):
        pid = f.name[len(out.name) + 2 : -len(".partial")]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            f.unlink(missing_ok=True)
            removed.append(f)
        except OSError:
            pass  # alive (or not ours to signal): leave it
    return removed


class _Csv:
    """CSV rows written as they arrive into a hidden temporary file, renamed to ``out`` only when complete."""

    def __init__(self, out: Path):
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_partials(out)
        self.tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
        self.file = open(self.tmp, "w", newline="")  # noqa: SIM115 - closed in finish/abort
        self.writer = csv.writer(self.file)
        self.writer.writerow(["path", "p_fake", "label", "width", "height"])

    def write(self, rows: list[Row]) -> None:
        self.writer.writerows(
            (limits.csv_path(path), f"{p:.6f}", label, w or "", h or "") for path, p, label, w, h in rows
        )

    def finish(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.out)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def run_cli(args) -> int:
    from tqdm import tqdm

    if args.out:
        check_out_file(Path(args.out))
    files = collect(args.paths)
    if args.shard:
        k, n = parse_shard(args.shard)
        total, files = len(files), shard(files, k, n)
        print(f"shard {k}/{n}: {len(files):,} of {total:,} file(s)", file=sys.stderr)
    if not files:
        raise UserError(f"no image files found in {' '.join(args.paths)}")
    detector = Detector.load(args.model, args.threshold)
    if args.out:
        check_out_is_not_an_input(Path(args.out), files, detector.path)
    sink = _Csv(Path(args.out)) if args.out else _Table(files, detector.threshold)
    n_rows = n_fake = n_other = n_bad = 0
    bar = tqdm(
        total=len(files),
        desc="predict",
        unit="img",
        file=sys.stderr,
        mininterval=0.5,
        disable=not (args.out and sys.stderr.isatty()),  # a table on stdout is its own progress
    )
    try:
        for rows, unreadable in score_chunks(files, detector, args.batch_size, args.tta):
            for path, why in unreadable:
                bar.write(f"warning: skipped {printable(path)}: {why}", file=sys.stderr)
            sink.write(rows)
            n_rows += len(rows)
            n_fake += sum(r[2] == "FAKE" for r in rows)
            n_other += sum((r[3], r[4]) != (IMAGE_SIZE, IMAGE_SIZE) for r in rows)
            n_bad += len(unreadable)
            bar.update(len(rows) + len(unreadable))
    except BaseException:
        if isinstance(sink, _Csv):
            sink.abort()  # no half-written CSV where a complete one is expected
        raise
    finally:
        bar.close()
    if not n_rows:
        if isinstance(sink, _Csv):
            sink.abort()
        raise UserError(f"none of the {len(files)} file(s) could be read as an image")
    if note := resized_note_counts(n_other, n_rows):
        print(f"warning: {note}", file=sys.stderr)
    if isinstance(sink, _Csv):
        sink.finish()
        print(f"wrote {n_rows} predictions to {args.out} (threshold {detector.threshold:.4f}; FAKE = 1)")
    print(
        f"{n_rows} scored: {n_fake} FAKE, {n_rows - n_fake} REAL; {n_bad} unreadable (model {detector.path.name})",
        file=sys.stderr,
    )
    return EXIT_SOME_UNREADABLE if n_bad else 0
