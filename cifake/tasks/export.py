"""``cifake export``: a trained detector as LiteRT (float32 or int8), SavedModel or ONNX.

Every export is checked against the Keras model it came from before it is kept: both score the
same validation images (the run's own seeded validation split), and the maximum and mean
|delta P(FAKE)|, the label agreement at the model's threshold and the accuracy of each are
printed and stored in a card beside the file (``NAME.json``, e.g. ``detector-int8.tflite.json``).
An int8 export whose label agreement is below 99.5% is refused (exit 2) and not written.

``--int8`` stores the weights as int8 and computes in float (dynamic-range quantisation: no
calibration, P(FAKE) keeps its full resolution, about a quarter of the float32 file);
``--int8-activations`` quantises the activations too (full-integer), calibrated on images of the
run's own training split (never validation) or on a folder given with ``--calibration``; its scores
come in steps of the output's scale (1/256), and small networks often lose the 99.5% agreement. Conversion goes through a SavedModel written by Keras'
own exporter (``model.export``), which is also the ``savedmodel`` format: its ``serve`` signature
takes float pixels 0..255 and ``serve_uint8`` takes uint8, both returning P(FAKE) (N, 1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base import limits
from ..base.errors import UserError
from ..base.files import atomic_write_json
from ..base.leftovers import remove_dead, temp_name
from ..base.progress import say
from ..base.tfutil import import_tf
from ..models.detector import (
    PARITY_MIN_AGREEMENT,
    Detector,
    files_read_with,
    resolve_checkpoint,
)
from ..models.presets import PRETRAINED_DIR, outputs_for

log = logging.getLogger(__name__)

CALIBRATION_IMAGES = 512


@dataclass(frozen=True)
class Quantization:
    """What an export stores as int8: nothing (float32), the weights (dynamic range: activations stay
    float, no calibration), or weights and activations (full-integer, calibrated on ``calib``)."""

    weights: bool = False
    activations: bool = False
    calib: np.ndarray | None = None

    @property
    def name(self) -> str:
        if self.activations:
            return "full-integer int8 (weights and activations)"
        return "int8 weights, float activations (dynamic range)" if self.weights else "float32"


def default_out(checkpoint: Path, fmt: str, int8: bool) -> Path:
    """Beside the checkpoint (``presets.OUTPUTS_DIR`` for a model shipped inside the package)."""
    return outputs_for(checkpoint) / FORMATS[fmt].out_name(checkpoint.stem, int8)


def card_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


# --- the images: validation for the check, training (or a folder) for int8 calibration ----------


def check_and_calibration_images(
    checkpoint: Path, data_dir: str | None, n_check: int, calibration: str | None, need_calibration: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """(validation images, their labels, calibration images or None, where the calibration came from)."""
    from ..config import DataConfig
    from ..data.listing import load_splits
    from ..training.rundir import run_config

    cfg = run_config(checkpoint)
    data_cfg = cfg.data if cfg else DataConfig()
    if data_dir:
        data_cfg.dir = data_dir
    if not (Path(data_cfg.dir) / "train").is_dir():
        raise UserError(
            f"cifake export checks every export against the Keras model on validation images, and found no "
            f"{data_cfg.dir}/train: pass {{data_dir}} (the dataset the model was trained on), or fetch it with cifake download",
            options=("data_dir",),
        )
    splits = load_splits(data_cfg)
    rng = np.random.default_rng(0)
    val = splits["val"]
    pick = np.sort(rng.permutation(len(val))[:n_check]) if n_check else np.arange(len(val))
    calib, source = None, ""
    if need_calibration:
        if calibration:
            from ..data.images import collect, load_images

            loaded = load_images(collect([calibration]))
            if len(loaded.ok) < 16:
                raise UserError(
                    f"{{calibration}} {calibration}: {len(loaded.ok)} readable image(s); give at least 16",
                    options=("calibration",),
                )
            calib = loaded.images[rng.permutation(len(loaded.ok))[:CALIBRATION_IMAGES]]
            source = f"{len(calib)} images from {calibration}"
        else:
            train = splits["train"]
            calib = train.images[rng.permutation(len(train))[:CALIBRATION_IMAGES]]
            source = f"{len(calib)} images of the training split of {data_cfg.dir}"
    return val.images[pick], val.labels[pick], calib, source


# --- converters: each writes ``out`` and returns a scorer of uint8 images ------------------------


def _saved_model(model, out: Path) -> None:
    import keras

    tf = import_tf()
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.float32, name="pixels")],
    )
    archive.add_endpoint(
        "serve_uint8",
        lambda x: model(tf.cast(x, tf.float32), training=False),
        input_signature=[tf.TensorSpec([None, 32, 32, 3], tf.uint8, name="pixels")],
    )
    archive.write_out(str(out), verbose=False)


def export_savedmodel(model, out: Path, quant: Quantization) -> Callable[[np.ndarray], np.ndarray]:
    tf = import_tf()
    _saved_model(model, out)
    loaded = tf.saved_model.load(str(out))
    return lambda x: np.asarray(loaded.serve_uint8(tf.constant(x))).reshape(-1)


def export_litert(model, out: Path, quant: Quantization) -> Callable[[np.ndarray], np.ndarray]:
    from ..models.litert import LiteModel

    tf = import_tf()
    with tempfile.TemporaryDirectory() as tmp:
        _saved_model(model, Path(tmp) / "sm")
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "sm"), signature_keys=["serve"])
        if quant.weights:  # post-training quantization: int8 weights (and, calibrated, int8 activations)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quant.activations:
            calib = quant.calib
            converter.representative_dataset = lambda: (
                [calib[i : i + 1].astype(np.float32)] for i in range(len(calib))
            )
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8  # pixels go in as they are stored
            converter.inference_output_type = tf.float32  # P(FAKE) comes out as a probability
        from ..base.tfutil import quiet_native_stderr

        with quiet_native_stderr():
            out.write_bytes(converter.convert())
    runner = LiteModel(out)
    return lambda x: runner.predict(x)


def export_onnx(model, out: Path, quant: Quantization) -> Callable[[np.ndarray], np.ndarray]:
    try:
        import onnxruntime as ort
        import tf2onnx  # noqa: F401 - Keras' ONNX exporter uses it for the TensorFlow backend
    except ImportError:
        raise UserError(
            "--format onnx needs the onnx extra: pip install 'cifake[onnx]' (tf2onnx, onnxruntime)"
        ) from None
    from ..base.tfutil import quiet_native_stderr

    model(np.zeros((1, 32, 32, 3), np.float32), training=False)  # Keras' ONNX path needs a built call graph
    import warnings

    with quiet_native_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf2onnx's own FutureWarnings about numpy
        model.export(str(out), format="onnx", verbose=False)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: np.asarray(session.run(None, {name: x.astype(np.float32)})[0]).reshape(-1)


def _head(path: Path, n: int = 8) -> bytes:
    with open(path, "rb") as f:
        return f.read(n)


def _looks_like_litert(path: Path) -> bool:  # a FlatBuffer whose file identifier (bytes 4-8) is TFL3
    return path.is_file() and path.suffix.lower() == ".tflite" and _head(path)[4:8] == b"TFL3"


def _looks_like_onnx(path: Path) -> bool:  # a protobuf ModelProto, whose first field is ir_version (tag 0x08)
    return path.is_file() and path.suffix.lower() == ".onnx" and _head(path)[:1] == b"\x08"


def _looks_like_savedmodel(path: Path) -> bool:
    return path.is_dir() and (path / "saved_model.pb").is_file()


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its converter and everything the command, help and checks derive from it."""

    name: str
    write: Callable[[object, Path, Quantization], Callable[[np.ndarray], np.ndarray]]  # -> a uint8 scorer
    out_name: Callable[[str, bool], str]  # (checkpoint stem, int8) -> default file or folder name
    looks_like: Callable[[Path], bool]  # is this existing path an export of this format (may --force replace it)
    int8: bool = False  # offers int8 post-training quantization (weights, and optionally activations)


FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat(
            "litert",
            export_litert,
            lambda stem, int8: f"{stem}{'-int8' if int8 else ''}.tflite",
            _looks_like_litert,
            int8=True,
        ),
        ExportFormat("savedmodel", export_savedmodel, lambda stem, _: f"{stem}-savedmodel", _looks_like_savedmodel),
        ExportFormat("onnx", export_onnx, lambda stem, _: f"{stem}.onnx", _looks_like_onnx),
    )
}


# --- the check -------------------------------------------------------------------------------------


def parity(p_keras: np.ndarray, p_export: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """How closely the export follows the Keras model on the same images."""
    delta = np.abs(p_keras.astype(np.float64) - p_export)
    return {
        "images": len(labels),
        "max_abs_delta": round(float(delta.max()), 6),
        "mean_abs_delta": round(float(delta.mean()), 6),
        "label_agreement": round(float(((p_keras >= threshold) == (p_export >= threshold)).mean()), 6),
        "accuracy_keras": round(float(((p_keras >= threshold) == labels).mean()), 6),
        "accuracy_export": round(float(((p_export >= threshold) == labels).mean()), 6),
        "threshold": threshold,
    }


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _timed(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> tuple[np.ndarray, float]:
    t = time.perf_counter()
    p = fn(x)
    return np.asarray(p, np.float32), len(x) / max(time.perf_counter() - t, 1e-9)


def export(
    model_path: str | Path,
    fmt: str = "litert",
    *,
    int8: bool = False,
    int8_activations: bool = False,
    out: str | Path | None = None,
    data_dir: str | None = None,
    calibration: str | None = None,
    check_images: int = 0,
    force: bool = False,
) -> dict:
    """Convert, check against the Keras model, keep the file only if it passes; return the card.

    ``int8``: int8 weights, float activations (dynamic range); ``int8_activations``: full-integer
    (implies ``int8``), calibrated on ``calibration`` or the run's training images.

    ``out`` may not be an input of the run (the model, its card or threshold), may not lie inside the
    installed package, and replaces an existing file only when that file is an export of the same
    format and ``force`` is given.
    """
    if fmt not in FORMATS:
        raise UserError(f"export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    int8 = int8 or int8_activations
    if int8 and not FORMATS[fmt].int8:
        offered = ", ".join(name for name, f in FORMATS.items() if f.int8)
        raise UserError(f"int8 (post-training quantization) is offered for {offered} only, not {fmt}")
    checkpoint = resolve_checkpoint(model_path)
    detector = Detector.load(checkpoint, keras_only="cifake export")
    out = Path(out) if out else default_out(checkpoint, fmt, int8)
    check_out(out, checkpoint, fmt, force)
    x, y, calib, calib_source = check_and_calibration_images(
        checkpoint, data_dir, check_images, calibration, int8_activations
    )
    quant = Quantization(weights=int8, activations=int8_activations, calib=calib)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_dead(out, "staging")  # left by an export killed with SIGKILL
    staging = temp_name(out, "staging")  # same filesystem: renamed into place at the end
    staging.mkdir()
    try:
        tmp_out = staging / out.name
        say(f"converting {checkpoint} to {fmt} ({quant.name}) ...")
        from ..models.registry import float32_copy

        # a model trained under mixed bfloat16 holds bf16 ops, which LiteRT cannot convert
        scorer = FORMATS[fmt].write(float32_copy(detector.model), tmp_out, quant)
        p_keras, keras_speed = _timed(lambda a: detector.predict(a, 256), x)
        p_export, export_speed = _timed(scorer, x)
        check = parity(p_keras, p_export, y, detector.threshold)
        card = make_card(tmp_out, out, fmt, quant, checkpoint, check, calib_source, keras_speed, export_speed)
        figures = describe_check(check, f"{fmt}{' int8' if int8 else ''}")
        if int8 and check["label_agreement"] < PARITY_MIN_AGREEMENT:
            raise UserError(
                f"int8 export refused: {figures}; at least {PARITY_MIN_AGREEMENT:.1%} agreement is required. "
                "Try {calibration} with images like the ones you will score, or export float32 (no {int8})",
                options=("calibration", "int8"),
            )
        if out.is_dir():
            shutil.rmtree(out)
        tmp_out.replace(out)
        atomic_write_json(card_path(out), card)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info(f"check: {figures}")
    log.info(
        f"speed on these images: keras {card['images_per_second_keras']:,} img/s, export {card['images_per_second_export']:,} img/s"
    )
    log.info(f"wrote {out} ({card['bytes']:,} bytes) and its card {card_path(out)}")
    return card


def describe_check(check: dict, what: str) -> str:
    """The parity check in one line: deltas, label agreement, both accuracies, threshold."""
    return (
        f"max |delta p| {check['max_abs_delta']:.4f}, mean {check['mean_abs_delta']:.5f}; labels agree on "
        f"{check['label_agreement']:.2%} of {check['images']:,} validation images; accuracy keras "
        f"{check['accuracy_keras']:.4f}, {what} {check['accuracy_export']:.4f} (threshold {check['threshold']:.4f})"
    )


def check_out(out: Path, checkpoint: Path, fmt: str, force: bool) -> None:
    """Before any work: what ``out`` may be (see ``export``)."""
    target = out.resolve()
    readers = files_read_with(checkpoint)
    if target in readers or card_path(out).resolve() in readers:
        raise UserError(
            f"{{out}} {out} is the model being exported or a file it reads; choose another path", options=("out",)
        )
    if PRETRAINED_DIR.resolve() in (target, *target.parents):
        raise UserError(
            f"{{out}} {out} is inside the installed package, whose shipped models nothing may replace; "
            "choose a path outside it (the default writes to the current folder)",
            options=("out",),
        )
    if out.exists() or out.is_symlink():
        if not is_export(out, fmt):
            raise UserError(
                f"{{out}} {out} exists and is not a {fmt} export; nothing was written: choose another path",
                options=("out",),
            )
        if not force:
            raise UserError(
                f"{{out}} {out} exists (an earlier {fmt} export); pass {{force}} to replace it",
                options=("out", "force"),
            )
    card = card_path(out)
    if (card.exists() or card.is_symlink()) and not _is_card(card):
        raise UserError(f"{card} exists and is not an export card; nothing was written: move it away", options=())
    if limits.can_create(out.parent) is None:
        raise UserError(f"{{out}} {out}: cannot create files in {out.parent}", options=("out",))


def is_export(path: Path, fmt: str) -> bool:
    """Whether ``path`` is a file (or folder) that an export of ``fmt`` writes, judged by its content."""
    return not path.is_symlink() and FORMATS[fmt].looks_like(path)


def _is_card(path: Path) -> bool:
    card = limits.read_json_object(path)
    return card is not None and "source_sha256" in card


def make_card(tmp_out: Path, out: Path, fmt: str, quant: Quantization, checkpoint: Path, check: dict, calib_source: str,
              keras_speed: float, export_speed: float) -> dict:  # fmt: skip
    """What ``OUT.json`` records: the file, its source (and hash), the parity check, calibration, speeds, size."""
    return {
        "file": out.name,
        "format": fmt,
        "int8": quant.weights,
        "quantization": quant.name,
        # a shipped model is named as the package holds it; a run's checkpoint by its absolute path
        "source": checkpoint.name if checkpoint.parent == PRETRAINED_DIR else str(checkpoint.resolve()),
        "source_sha256": _sha256(checkpoint),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **check,
        "checked_on": "validation split (seeded, of the run's data.dir)",
        "calibration": calib_source or None,
        "images_per_second_keras": round(keras_speed),
        "images_per_second_export": round(export_speed),
        "bytes": sum(f.stat().st_size for f in tmp_out.rglob("*") if f.is_file())
        if tmp_out.is_dir()
        else tmp_out.stat().st_size,
    }
