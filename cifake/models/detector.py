"""One way to load a model file into a detector, and the one place that checks the output contract.

``predict``, ``evaluate``, ``serve`` and ``explain`` load models only through here. A model file
is untrusted input: it is checked as a zip (size bounds) before Keras reads it, loaded with
``safe_mode=True`` (no Python code in lambdas), must map (N, 32, 32, 3) pixels to (N, 1), must
hold finite weights, and every batch it scores must come back as probabilities in [0, 1]. A
``threshold.json`` beside it is validated like any other user input.
"""

from __future__ import annotations

import json
import math
import weakref
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np

from ..base import limits, text
from ..base.errors import UserError
from ..base.tfutil import import_keras, import_tf
from .litert import LiteModel, is_litert
from .presets import PRESETS, PRETRAINED, PRETRAINED_INT8, preset
from .presets import names as preset_names

if TYPE_CHECKING:
    import PIL.Image

# an export is used by default only when its card (written by cifake export) shows parity
PARITY_MIN_AGREEMENT = 0.995
THRESHOLD_FILE = "threshold.json"


def default_model() -> Path:
    """What ``cifake predict`` uses without ``--model``: the shipped int8 LiteRT export when its card shows
    parity with the Keras detector (label agreement >= 99.5% on validation images), else the Keras file."""
    card = export_card(PRETRAINED_INT8)
    if PRETRAINED_INT8.is_file() and card and card.get("label_agreement", 0) >= PARITY_MIN_AGREEMENT:
        return PRETRAINED_INT8
    return PRETRAINED


def model_card() -> dict:
    """The shipped detector's card (``pretrained/detector.json``): what it was trained on and how it scores."""
    f = PRESETS["pretrained"].card_path
    return json.loads(f.read_text()) if f.is_file() else {}


def export_card(model_file: Path) -> dict | None:
    """The card ``cifake export`` writes beside an exported model (``NAME.tflite.json``), if readable."""
    return limits.read_json_object(model_file.with_name(model_file.name + ".json"))


def resolve_checkpoint(path: str | Path) -> Path:
    """A .keras or .tflite file, a run directory (its best.keras), or a shipped model's name
    (``presets.PRESETS``; an old name such as ``robust`` says so once, see ``renames``)."""
    if str(path) in preset_names() and not Path(path).exists():
        return preset(str(path)).path
    path = Path(path)
    if path.is_dir():
        if (path / "best.keras").is_file():
            return path / "best.keras"
        raise UserError(f"{path} is a folder without best.keras: pass a .keras file or a run directory")
    if not path.is_file():
        raise UserError(
            f"checkpoint not found: {path} (pass a .keras or .tflite file, a run directory such as runs/small_cnn, "
            f"or one of {', '.join(PRESETS)})"
        )
    return path


def files_read_with(model: Path) -> set[Path]:
    """The model file and what cifake reads beside it (its export card, threshold.json), resolved:
    what no output of a run that scores with it may replace."""
    model = Path(model).resolve()
    return {p.resolve() for p in (model, model.with_name(model.name + ".json"), model.with_name(THRESHOLD_FILE))}


def check_keras_file(path: Path) -> None:
    """A .keras file is a zip: refuse one that is not, or whose members promise too much."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{path} is not a .keras model file (it is not a zip archive; was it cut short or renamed?)")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path} is not a readable .keras file ({e})") from None
    limits.check_zip_members(
        infos, str(path), max_member=limits.MODEL_MAX_TOTAL_BYTES, max_total=limits.MODEL_MAX_TOTAL_BYTES
    )


def load_model_file(path: str | Path, *, keras_only: str | None = None):
    """Load a .keras model with safe_mode and check the cifake contract: (N, 32, 32, 3) -> (N, 1), finite weights.

    A ``.tflite`` file gives a ``litert.LiteModel`` with the same contract, unless ``keras_only`` names the
    command that needs the Keras graph itself (Grad-CAM, fine-tuning), which then refuses it.
    """
    path = resolve_checkpoint(path)
    if is_litert(path):
        if keras_only:
            raise UserError(
                f"{keras_only} needs a Keras model (.keras or a run directory), not the LiteRT export {path}: "
                "pass the .keras file it was exported from"
            )
        return LiteModel(path)
    if path.suffix.lower() not in (".keras", ".h5"):
        raise UserError(
            f"{path} is not a model file: cifake reads .keras (Keras 3) and .tflite (cifake export) files, "
            "or a run directory"
        )
    keras = import_keras()
    if path.suffix.lower() == ".keras":
        check_keras_file(path)
    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - any load failure means "not a usable Keras model"
        raise UserError(
            f"{path} is not a loadable Keras model ({type(e).__name__}: {text.shorten(str(e).splitlines()[0], 160)})"
        ) from None
    shape = tuple(model.input_shape) if not isinstance(model.input_shape, list) else None
    if shape is None or shape[1:] != (32, 32, 3) or tuple(model.output_shape)[1:] != (1,):
        raise UserError(
            f"{path} takes {model.input_shape} -> {model.output_shape}; cifake models take (N, 32, 32, 3) RGB and return P(FAKE) (N, 1)"
        )
    bad = [w.path for w in model.weights if not np.isfinite(np.asarray(w.numpy(), np.float32)).all()]
    if bad:
        raise UserError(
            f"{path} holds NaN or infinite weights ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}): "
            "its scores would be meaningless; use another checkpoint (a diverged run's best.keras or an earlier one)"
        )
    return model


def check_threshold(value) -> float:
    """A threshold given by a caller: a real number in [0, 1] (the CLI checks the same)."""
    import math

    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise UserError(f"threshold must be a number between 0 and 1, got {type(value).__name__} {str(value)[:40]!r}")
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise UserError(f"threshold must be a probability between 0 and 1, got {value}")
    return float(value)


def read_threshold(checkpoint: Path) -> tuple[float, str] | None:
    """(threshold, where it came from) from ``threshold.json`` beside ``checkpoint``; None if absent, or if
    the file names another model (``"model"``: the file name it was chosen on; files without it apply
    to every model in the folder, as before that key existed)."""
    f = checkpoint.parent / THRESHOLD_FILE
    if not f.is_file():
        return None
    fix = f"delete it, or write it again with cifake evaluate {checkpoint} --split val --choose-threshold"
    try:
        if f.stat().st_size > 64 * 1024:
            raise ValueError("over 64 KB")
        data = json.loads(f.read_text())
    except RecursionError:
        raise UserError(f"{f} is nested too deeply to be a threshold file: {fix}") from None
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{f} is not valid JSON ({e}): {fix}") from None
    chosen_for = data.get("model") if isinstance(data, dict) else None
    if isinstance(chosen_for, str) and chosen_for != checkpoint.name:
        return None  # chosen for another model file in this folder (e.g. best.keras beside its .tflite export)
    value = data.get("threshold") if isinstance(data, dict) else None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 <= value <= 1
    ):
        raise UserError(f"{f}: 'threshold' must be a probability between 0 and 1, got {str(value)[:40]}: {fix}")
    return float(value), f"{f} (chosen on {str(data.get('chosen_on', '?'))[:20]})"


def check_probabilities(p: np.ndarray, source: str | Path) -> None:
    """Refuse outputs that are not probabilities (a model without a final sigmoid, or gone NaN)."""
    finite = np.isfinite(p)
    if finite.all() and p.min(initial=0.0) >= -1e-6 and p.max(initial=0.0) <= 1 + 1e-6:
        return
    example = p[~finite][0] if not finite.all() else (p.max() if p.max() > 1 else p.min())
    raise UserError(
        f"{source} returned {example:.6g} for an image, which is not a probability: a cifake model must output "
        "P(FAKE) in [0, 1] (end it in a sigmoid); its scores were not used"
    )


_traced: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its traced call


def predict_images(model, images: np.ndarray, batch_size: int = 1024, source: str | Path = "the model") -> np.ndarray:
    """P(FAKE) for a uint8 array, through one traced ``model(x, training=False)`` over fixed-size batches.

    About twice as fast on a CPU as ``model.predict`` on a tf.data pipeline (no per-step callback
    machinery, no dataset slicing); the last batch is padded so the function is traced once.
    Every batch is checked to be probabilities (``check_probabilities``).
    """
    if isinstance(model, LiteModel):
        p = model.predict(images, min(batch_size, 256))
        check_probabilities(p, source)
        return p
    tf = import_tf()
    fn = _traced.get(model)
    if fn is None:
        fn = _traced[model] = tf.function(lambda x: model(x, training=False))
    n = len(images)
    out = np.empty(n, np.float32)
    for start in range(0, n, batch_size):
        chunk = images[start : start + batch_size]
        if len(chunk) < batch_size and n > batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        p = fn(chunk).numpy().ravel()[: min(batch_size, n - start)]
        check_probabilities(p, source)
        out[start : start + batch_size] = p
    return out


TTA_MODES = ("none", "flip", "shift")


def tta_views(images: np.ndarray, tta: bool | str) -> list[np.ndarray]:
    """The views of ``images`` (N, H, W, 3) that test-time augmentation averages over.

    none (or False): the images; flip (or True): and their mirrors; shift: each of those two also
    translated by one pixel down-right and one up-left (reflect padding), as in airbench: 6 views.
    """
    mode = {True: "flip", False: "none"}.get(tta, tta) if isinstance(tta, bool) else tta
    if mode not in TTA_MODES:
        raise ValueError(f"tta: got {tta!r}; expected one of {', '.join(TTA_MODES)}")
    views = [images]
    if mode in ("flip", "shift"):
        views.append(np.ascontiguousarray(images[:, :, ::-1]))
    if mode == "shift":
        h, w = images.shape[1:3]
        for base in list(views):
            padded = np.pad(base, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
            views += [np.ascontiguousarray(padded[:, :h, :w]), np.ascontiguousarray(padded[:, 2 : h + 2, 2 : w + 2])]
    return views


def predict_tta(
    model, images: np.ndarray, batch_size: int = 1024, tta: bool | str = False, source="the model"
) -> np.ndarray:
    """P(FAKE), the mean over the views of ``tta_views(images, tta)``."""
    views = tta_views(images, tta)
    return np.mean([predict_images(model, v, batch_size, source) for v in views], axis=0).astype(np.float32)


@dataclass
class Detector:
    """A loaded model with its threshold: the one way anything in cifake scores images.

    One loader (``load_model_file``: .keras with the contract checked, or a LiteRT runner for .tflite),
    one threshold order (the argument, else ``threshold.json`` chosen for this file, else 0.5), and
    every output checked to be a probability (``predict_images``).
    """

    model: object
    path: Path
    threshold: float
    threshold_source: str

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        threshold: float | None = None,
        *,
        keras_only: str | None = None,
        stored_threshold: bool = True,
    ) -> Detector:
        """The model at ``path`` (default: ``default_model()``); threshold from the argument, else
        ``threshold.json`` beside the model (unless ``stored_threshold`` is False), else 0.5.
        ``keras_only`` names a use that needs the Keras graph (Grad-CAM, export), refusing a .tflite."""
        if threshold is not None:  # before the model loads: a bad value fails at once
            threshold = check_threshold(threshold)
        checkpoint = resolve_checkpoint(path or default_model())
        model = load_model_file(checkpoint, keras_only=keras_only)
        if threshold is not None:
            return cls(model, checkpoint, threshold, "given")
        stored = read_threshold(checkpoint) if stored_threshold else None
        return cls(model, checkpoint, *(stored or (0.5, "default")))

    @property
    def is_keras(self) -> bool:
        """A Keras model (gradients, Grad-CAM, export) rather than a LiteRT runner."""
        return not isinstance(self.model, LiteModel)

    def predict(self, images: ImageInput, batch_size: int = 1024, tta: bool | str = False) -> np.ndarray:
        """P(FAKE) per image, a float32 array of shape (N,).

        ``images``: a file or folder path (folders are searched recursively, in sorted order), a list of
        paths, a PIL image or a list of them, or a uint8 array (H, W, 3) or (N, H, W, 3) of RGB pixels.
        Anything not 32x32 is resized to 32x32 exactly as ``cifake predict`` does (Pillow, bicubic,
        antialiased; a ``UserWarning`` says how many), files are read with the same caps and EXIF
        handling. A file that cannot be read is a ``UserError`` naming it (``detector(images)`` skips
        it instead). ``tta``: average over the mirror ('flip') or six views ('shift').
        """
        from ..data.images import gather

        got = gather(images, errors="raise")
        _warn_resized(got.sizes)
        return predict_tta(self.model, got.images, batch_size, tta, self.path)

    def __call__(
        self, images: ImageInput, *, errors: str = "skip", batch_size: int = 1024, tta: bool | str = False
    ) -> Results:
        """Score ``images`` (as ``predict`` takes them) into ``Results``: per image its file, P(FAKE),
        label at this detector's threshold and original size. ``errors='skip'`` (the default, as the
        command line does) leaves out files that cannot be read, lists them in ``Results.skipped`` and
        warns; ``errors='raise'`` refuses the batch instead."""
        import warnings

        from ..data.images import gather

        got = gather(images, errors=errors)
        if got.skipped:
            warnings.warn(
                f"skipped {len(got.skipped)} file(s) that could not be read (Results.skipped says why), e.g. "
                f"{text.shorten(text.printable(got.skipped[0][0]), 120)}: {got.skipped[0][1]}",
                UserWarning,
                stacklevel=2,
            )
        _warn_resized(got.sizes)
        p = predict_tta(self.model, got.images, batch_size, tta, self.path) if len(got.images) else np.zeros(0)
        items = [
            Result(path, float(pi), "FAKE" if pi >= self.threshold else "REAL", size)
            for path, pi, size in zip(got.paths, p, got.sizes, strict=True)
        ]
        return Results(items, got.skipped, self.threshold)

    @property
    def card(self) -> dict:
        """What is known about the model file, with the same keys whatever the file (``CARD_KEYS``:
        None where a figure is not known), then everything its own card holds: the shipped
        detector's card (recipe, battery, generators), an export's parity card, or a run's
        metrics.json."""
        if self.path.resolve() == PRETRAINED.resolve():
            raw, kind = model_card(), "shipped detector"
        elif (exported := export_card(self.path)) is not None:
            raw, kind = exported, "export"
        else:
            raw = limits.read_json_object(self.path.parent / "metrics.json") or {}
            raw, kind = (raw, "run") if raw else ({}, "model file")
        return {**raw, **_common_card(raw, kind, self)}

    def label(self, p: np.ndarray | float) -> np.ndarray:
        """'FAKE' where ``p`` >= the threshold, else 'REAL' (same shape as ``p``)."""
        return np.where(np.asarray(p) >= self.threshold, "FAKE", "REAL")

    def __repr__(self) -> str:
        kind = "Keras" if self.is_keras else "LiteRT"
        return f"Detector({str(self.path)!r}, {kind}, threshold={self.threshold:.4f} ({self.threshold_source}))"


@dataclass(frozen=True)
class Result:
    """One scored image: its file (None for an array or PIL image), P(FAKE), label, original size."""

    path: str | None
    p_fake: float
    label: str
    size: tuple[int, int]  # (width, height) before the resize to 32x32; (0, 0) when unknown

    @property
    def resized(self) -> bool:
        return tuple(self.size) not in ((32, 32), (0, 0))


class Results(Sequence[Result]):
    """What ``detector(images)`` returns: a sequence of ``Result``, with the arrays and the files
    that were skipped; ``to_csv`` writes what ``cifake predict --out`` writes."""

    def __init__(self, items: list[Result], skipped: list[tuple[str, str]], threshold: float):
        self.items, self.skipped, self.threshold = items, skipped, threshold

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    @property
    def p_fake(self) -> np.ndarray:
        return np.array([r.p_fake for r in self.items], np.float32)

    @property
    def labels(self) -> list[str]:
        return [r.label for r in self.items]

    @property
    def paths(self) -> list[str | None]:
        return [r.path for r in self.items]

    def to_csv(self, path: str | Path) -> Path:
        """path,p_fake,label,width,height rows (the columns of ``cifake predict --out``), atomically."""
        import csv

        from ..base.files import atomic_open
        from ..base.owned import SCORES_COLUMNS, scores_row

        with atomic_open(path, newline="") as f:
            w = csv.writer(f)
            w.writerow(SCORES_COLUMNS)
            w.writerows(scores_row(r.path or "", r.p_fake, r.label, *r.size) for r in self.items)
        return Path(path)

    def __repr__(self) -> str:
        fake = sum(r.label == "FAKE" for r in self.items)
        return (
            f"Results({len(self.items)} image(s): {fake} FAKE, {len(self.items) - fake} REAL at threshold "
            f"{self.threshold:.4f}; {len(self.skipped)} skipped)"
        )


CARD_KEYS = (
    "file", "format", "kind", "threshold", "threshold_source", "accuracy", "roc_auc", "label_agreement",
    "parameters", "trained",
)  # fmt: skip


def _common_card(raw: dict, kind: str, detector: Detector) -> dict:
    """``CARD_KEYS`` from whichever card a model file has (see ``Detector.card``)."""
    validation = raw.get("validation") if isinstance(raw.get("validation"), dict) else {}
    accuracy = validation.get("accuracy", raw.get("accuracy_export", raw.get("accuracy")))
    return {
        "file": detector.path.name,
        "format": "keras" if detector.is_keras else "litert",
        "kind": kind,
        "threshold": detector.threshold,
        "threshold_source": detector.threshold_source,
        "accuracy": accuracy,
        "roc_auc": validation.get("roc_auc", raw.get("auc")),
        "label_agreement": raw.get("label_agreement"),
        "parameters": raw.get("parameters"),
        "trained": raw.get("trained", raw.get("created")),
    }


def _warn_resized(sizes: list[tuple[int, int]]) -> None:
    """The command line's note on images that were not 32x32, as a ``UserWarning`` for Python callers."""
    import warnings

    from ..data.images import resized_note_counts

    note = resized_note_counts(sum(tuple(s) not in ((32, 32), (0, 0)) for s in sizes), len(sizes))
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)


ImageInput = Union[str, Path, Sequence[str | Path], "PIL.Image.Image", Sequence["PIL.Image.Image"], np.ndarray]


def load_detector(name_or_path: str | Path | None = None, threshold: float | None = None) -> Detector:
    """The detector to score images with, from Python: ``cifake.load_detector().predict("photo.jpg")``.

    ``name_or_path``: None for the shipped detector as ``cifake predict`` uses it (its int8 LiteRT
    export, which scores without TensorFlow), ``"pretrained"`` for the shipped Keras file (Grad-CAM,
    fine-tuning), ``"pretrained-int8"``, a ``.keras`` or ``.tflite`` file, or a run
    directory (its ``best.keras``). ``threshold``: P(FAKE) at or above which ``label`` says FAKE;
    default: the ``threshold.json`` chosen for that file, else 0.5.
    """
    return Detector.load(name_or_path, threshold)
