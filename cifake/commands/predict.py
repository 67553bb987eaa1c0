"""cifake predict: P(FAKE) for image files and folders, with the shipped detector by default."""

from __future__ import annotations

from pathlib import Path

from ..models.presets import PRESETS
from ._options import add_scoring_args

HELP = "score your own images: P(FAKE) per file"
DESCRIPTION = (
    "Score image files and folders (searched recursively for any extension Pillow knows). Images\n"
    "are converted to RGB (alpha dropped) and, when not 32x32 already, resized to 32x32 with\n"
    "Pillow's antialiased bicubic resampling, as the Python API does. Without --model the\n"
    "detector shipped with cifake is used (see the README's model card). Files are decoded and\n"
    "scored in chunks (memory does not grow with the input), with a progress bar on a terminal;\n"
    "from 4,096 files on, decoding runs in one worker process per core when it is slow\n"
    "(large photos, PNGs: timed on the first 1,024 files; --workers sets it).\n"
    "Exit codes: 0 all scored; 3 some files unreadable (listed, skipped); 2 nothing to score."
)
EXAMPLE = "cifake predict photo.jpg more_photos/ --out predictions.csv"
EXIT_SOME_UNREADABLE = 3


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    p.add_argument(
        "--model",
        default=None,
        help=".keras or .tflite file, run directory, or a shipped model: "
        + "; ".join(f"{p.name} ({p.description})" for p in PRESETS.values())
        + "; default: pretrained-int8 when its card shows parity, else pretrained",
    )
    p.add_argument(
        "--out",
        metavar="FILE.csv",
        help="write path,p_fake,label,width,height rows here instead of printing a table (written as it goes "
        "to a hidden temporary file, renamed when complete)",
    )
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="score only the K-th of N deterministic shares of the sorted file list (run N jobs, K = 1..N)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes that decode images while the model scores: 0 decodes on one thread beside it; "
        "default: one per core for 4,096 files or more when the first 1,024 took over 60 us a file "
        "(32x32 JPEGs take less and stay on the thread), else 0",
    )
    add_scoring_args(p)


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1 <= K <= N) -> (K, N)."""
    from ..base.errors import UserError

    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text}: expected K/N, e.g. 3/8 for the third of eight shards") from None
    if not 1 <= k <= n:
        raise UserError(f"--shard {text}: K must be between 1 and N")
    return k, n


def check_out_file(out: Path) -> None:
    """Fail before the scoring, not after it: ``--out`` must be a file we can create or replace."""
    import os

    from ..base import limits
    from ..base.errors import UserError

    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'predictions.csv'}")
    if limits.can_create(out.parent) is None or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"--out {out}: not writable; choose another path")


def check_out_is_not_an_input(out: Path, files: list[str], model: Path) -> None:
    """The CSV may not replace an image being scored, the model, or a file beside the model it reads."""
    import os

    from ..base.errors import UserError
    from ..base.owned import PREDICTIONS_HEADER, check_replaceable
    from ..models.detector import files_read_with

    target = out.resolve()
    if out.exists():  # a file that does not exist yet cannot be an input; one that does is compared by inode
        here = os.stat(out)
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                continue
            if (st.st_ino, st.st_dev) == (here.st_ino, here.st_dev):
                raise UserError(f"--out {out} is one of the images being scored; choose another file name")
    if target in files_read_with(model):
        raise UserError(f"--out {out} is the model or a file it reads ({model.name}); choose another file name")
    check_replaceable(out, PREDICTIONS_HEADER, "predictions CSV", "out")  # any other file not of our writing


def run(args) -> int:
    import sys

    from ..base.errors import UserError
    from ..base.text import printable
    from ..data.images import collect, resized_note_counts
    from ..models.detector import Detector
    from ..tasks.predict import CsvSink, shard

    if args.out:
        check_out_file(Path(args.out))
    skipped: list[tuple[str, str]] = []
    if args.workers is not None and not 0 <= args.workers <= 256:  # before walking any folder
        raise UserError(f"--workers {args.workers}: expected 0 (decode on one thread) to 256 processes")
    files = collect(args.paths, skipped)
    for path, why in skipped:
        print(f"warning: skipped {printable(path)}: {why}", file=sys.stderr)
    if args.shard:
        k, n = parse_shard(args.shard)
        total, files = len(files), shard(files, k, n)
        print(f"shard {k}/{n}: {len(files):,} of {total:,} file(s)", file=sys.stderr)
    if not files:
        raise UserError(
            f"no image files found in {' '.join(args.paths)}" + (" (only special files)" if skipped else "")
        )
    detector = Detector.load(args.model, args.threshold)
    if args.out:
        from ..base import limits

        check_out_is_not_an_input(Path(args.out), files, detector.path)
        # a row is the path, five numbers and a label: ~60 bytes more than the name
        needed = sum(len(f.encode("utf-8", "surrogateescape")) + 60 for f in files)
        limits.check_free_space(Path(args.out).resolve().parent, needed, f"writing {args.out}")
    sink = CsvSink(Path(args.out)) if args.out else Table(files, detector.threshold)
    try:
        n_rows, n_fake, n_other, n_bad = _score(files, detector, sink, args)
        if not n_rows:
            raise UserError(f"none of the {len(files)} file(s) could be read as an image")
    except BaseException:
        if isinstance(sink, CsvSink):
            sink.abort()  # no half-written CSV where a complete one is expected
        raise
    if note := resized_note_counts(n_other, n_rows):
        print(f"warning: {note}", file=sys.stderr)
    n_bad += len(skipped)
    if isinstance(sink, CsvSink):
        sink.finish()
        print(f"wrote {n_rows} predictions to {args.out} (threshold {detector.threshold:.4f}; FAKE = 1)")
    print(
        f"{n_rows} scored: {n_fake} FAKE, {n_rows - n_fake} REAL; {n_bad} unreadable (model {detector.path.name})",
        file=sys.stderr,
    )
    return EXIT_SOME_UNREADABLE if n_bad else 0


def _score(files: list[str], detector, sink, args) -> tuple[int, int, int, int]:
    """Score ``files`` chunk by chunk into ``sink``, with a progress bar; (rows, FAKE, not 32x32, unreadable)."""
    import sys

    from tqdm import tqdm

    from ..base.text import printable
    from ..data.decode import IMAGE_SIZE
    from ..tasks.predict import AUTO, score_chunks

    n_rows = n_fake = n_other = n_bad = 0
    bar = tqdm(
        total=len(files),
        desc="predict",
        unit="img",
        file=sys.stderr,
        mininterval=0.5,
        disable=not (args.out and sys.stderr.isatty()),  # a table on stdout is its own progress
    )
    with bar:
        workers = AUTO if args.workers is None else args.workers
        for rows, unreadable in score_chunks(files, detector, args.batch_size, args.tta, workers=workers):
            for path, why in unreadable:
                bar.write(f"warning: skipped {printable(path)}: {why}", file=sys.stderr)
            sink.write(rows)
            n_rows += len(rows)
            n_fake += sum(r[2] == "FAKE" for r in rows)
            n_other += sum((r[3], r[4]) != (IMAGE_SIZE, IMAGE_SIZE) for r in rows)
            n_bad += len(unreadable)
            bar.update(len(rows) + len(unreadable))
    return n_rows, n_fake, n_other, n_bad


class Table:
    """The terminal table, printed as rows arrive (the column width comes from every file's name)."""

    def __init__(self, files: list[str], threshold: float):
        from ..base.text import printable

        self.width = min(max(len(printable(f)) for f in files), 80)
        print(f"{'path':<{self.width}}  {'P(FAKE)':>8}  label  {'size':>9}   (threshold {threshold:.4f})")

    def write(self, rows: list) -> None:
        from ..base.text import printable

        for path, p, label, w, h in rows:
            print(f"{printable(path):<{self.width}}  {p:>8.4f}  {label:<5}  {f'{w}x{h}' if w else '?':>9}")
