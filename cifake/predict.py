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
import sys
from pathlib import Path

import numpy as np

from .data import IMAGE_SIZE, Split, decode_files
from .errors import UserError

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
PRETRAINED = PRETRAINED_DIR / "detector.keras"
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
    """Pillow fallback: RGB (alpha dropped, as TensorFlow does), resized like the loader; None if unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.seek(0)
            arr = np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return None
    if arr.shape[:2] == (IMAGE_SIZE, IMAGE_SIZE):
        return arr
    from .tfutil import import_tf

    tf = import_tf()
    resized = tf.image.resize(arr[None], [IMAGE_SIZE, IMAGE_SIZE], "bicubic", antialias=True)
    return np.clip(np.round(resized.numpy()[0]), 0, 255).astype(np.uint8)


def load_images(files: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    """(images, readable paths, unreadable paths) in input order."""
    images, bad = decode_files(files, progress=len(files) > 5000)
    unreadable = []
    for i in bad:
        arr = _pil_decode(files[i])
        if arr is None:
            unreadable.append(files[i])
        else:
            images[i] = arr
    if not unreadable:
        return images, list(files), []
    dropped = set(unreadable)
    keep = [i for i, f in enumerate(files) if f not in dropped]
    return images[keep], [files[i] for i in keep], unreadable


def predict_files(
    files: list[str],
    model_path: str | Path | None = None,
    threshold: float | None = None,
    batch_size: int = 1024,
    tta: bool = False,
) -> tuple[list[tuple[str, float, str]], list[str], float]:
    """Score ``files``: ([(path, p_fake, label)], unreadable paths, threshold used)."""
    from .evaluate import load_detector, predict_split, resolve_checkpoint, stored_threshold

    checkpoint = resolve_checkpoint(model_path or PRETRAINED)
    model = load_detector(checkpoint)
    if threshold is None:
        stored = stored_threshold(checkpoint)
        threshold = stored[0] if stored else 0.5
    images, ok, unreadable = load_images(files)
    if not ok:
        return [], unreadable, threshold
    p = predict_split(model, Split(images, np.zeros(len(ok), np.int32), ok), batch_size, tta=tta)
    return (
        [(f, float(q), "FAKE" if q >= threshold else "REAL") for f, q in zip(ok, p, strict=True)],
        unreadable,
        threshold,
    )


def model_card() -> dict:
    f = PRETRAINED_DIR / "detector.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def run_cli(args) -> int:
    files = collect(args.paths)
    if not files:
        raise UserError(f"no image files found in {' '.join(args.paths)}")
    rows, unreadable, threshold = predict_files(files, args.model, args.threshold, args.batch_size, tta=args.tta)
    for path in unreadable:
        print(f"warning: skipped unreadable file: {path}", file=sys.stderr)
    if not rows:
        raise UserError(f"none of the {len(files)} file(s) could be read as an image")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["path", "p_fake", "label"])
            writer.writerows((path, f"{p:.6f}", label) for path, p, label in rows)
        print(f"wrote {len(rows)} predictions to {out} (threshold {threshold:.4f}; FAKE = 1)")
    else:
        width = min(max(len(r[0]) for r in rows), 80)
        print(f"{'path':<{width}}  {'P(FAKE)':>8}  label   (threshold {threshold:.4f})")
        for path, p, label in rows:
            print(f"{path:<{width}}  {p:>8.4f}  {label}")
    n_fake = sum(r[2] == "FAKE" for r in rows)
    print(
        f"{len(rows)} scored: {n_fake} FAKE, {len(rows) - n_fake} REAL; {len(unreadable)} unreadable", file=sys.stderr
    )
    return EXIT_SOME_UNREADABLE if unreadable else 0
