"""``cifake predict``: P(FAKE) for image files and folders, batched, with the shipped detector by default.

Images are decoded and resized exactly as the training loader does (``data.decode_files``: RGB,
alpha dropped, bicubic antialiased resize to 32x32 when the size differs), in one parallel tf.data
pass; formats TensorFlow cannot decode (WebP, TIFF, ...) fall back to Pillow for decoding only.

Exit codes: 0 every file scored; 3 some files could not be read (they are listed and skipped; the
others are still scored); 2 nothing to score.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import limits
from .data import IMAGE_SIZE, decode_files
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


def _pil_decode(path: str) -> np.ndarray | None:
    """Pillow: EXIF orientation applied, RGB (alpha dropped, as TensorFlow does), resized like the loader; None if unreadable."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im.seek(0)
            arr = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return None
    if arr.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):
        return arr
    from .tfutil import import_tf

    tf = import_tf()
    resized = tf.image.resize(arr[None], [IMAGE_SIZE, IMAGE_SIZE], "bicubic", antialias=True)
    return np.clip(np.round(resized.numpy()[0]), 0, 255).astype(np.uint8)


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
        arr = _pil_decode(files[i])
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


def predict_files(
    files: list[str],
    model_path: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 1024,
    tta: bool = False,
) -> tuple[list[tuple[str, float, str, int, int]], list[tuple[str, str]], float]:
    """Score ``files``: ([(path, p_fake, label, width, height)], [(unreadable path, why)], threshold used)."""
    detector = Detector.load(model_path, threshold)
    loaded = load_images(files)
    if not loaded.ok:
        return [], loaded.unreadable, detector.threshold
    p = detector.predict(loaded.images, batch_size, tta=tta)
    t = detector.threshold
    rows = [
        (f, float(q), "FAKE" if q >= t else "REAL", w, h)
        for f, q, (w, h) in zip(loaded.ok, p, loaded.sizes, strict=True)
    ]
    return rows, loaded.unreadable, t


def resized_note(sizes: list[tuple[int, int]]) -> str | None:
    """One warning for a run in which some images were not 32x32 (said once, not per file)."""
    other = sum((w, h) != (IMAGE_SIZE, IMAGE_SIZE) for w, h in sizes)
    if not other:
        return None
    return (
        f"{other} of {len(sizes)} image(s) were not {IMAGE_SIZE}x{IMAGE_SIZE} and were resized to it (bicubic); "
        "the detector was trained on 32x32 CIFAKE images only, so its scores on them are less reliable"
    )


def model_card() -> dict:
    f = PRETRAINED_DIR / "detector.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def check_out_file(out: Path) -> None:
    """Fail before the scoring, not after it: ``--out`` must be a file we can create or replace."""
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'predictions.csv'}")
    if limits.can_create(out.parent) is None or (out.exists() and not os.access(out, os.W_OK)):
        raise UserError(f"--out {out}: not writable; choose another path")


def run_cli(args) -> int:
    if args.out:
        check_out_file(Path(args.out))
    files = collect(args.paths)
    if not files:
        raise UserError(f"no image files found in {' '.join(args.paths)}")
    rows, unreadable, threshold = predict_files(files, args.model, args.threshold, args.batch_size, tta=args.tta)
    for path, why in unreadable:
        print(f"warning: skipped {printable(path)}: {why}", file=sys.stderr)
    if not rows:
        raise UserError(f"none of the {len(files)} file(s) could be read as an image")
    if note := resized_note([(r[3], r[4]) for r in rows]):
        print(f"warning: {note}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "p_fake", "label", "width", "height"])
            writer.writerows((printable(path), f"{p:.6f}", label, w or "", h or "") for path, p, label, w, h in rows)
        print(f"wrote {len(rows)} predictions to {out} (threshold {threshold:.4f}; FAKE = 1)")
    else:
        names = [printable(r[0]) for r in rows]
        width = min(max(len(n) for n in names), 80)
        print(f"{'path':<{width}}  {'P(FAKE)':>8}  label  {'size':>9}   (threshold {threshold:.4f})")
        for name, (_, p, label, w, h) in zip(names, rows, strict=True):
            print(f"{name:<{width}}  {p:>8.4f}  {label:<5}  {f'{w}x{h}' if w else '?':>9}")
    n_fake = sum(r[2] == "FAKE" for r in rows)
    print(
        f"{len(rows)} scored: {n_fake} FAKE, {len(rows) - n_fake} REAL; {len(unreadable)} unreadable", file=sys.stderr
    )
    return EXIT_SOME_UNREADABLE if unreadable else 0
