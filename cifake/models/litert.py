"""Running an exported ``.tflite`` detector with the LiteRT interpreter (``ai-edge-litert``).

LiteRT is the maintained home of the TFLite runtime (``tf.lite.Interpreter`` is deprecated). A
``.tflite`` file is untrusted input like a ``.keras`` one: its size is bounded before it is read,
it must map (N, 32, 32, 3) pixels to (N, 1) P(FAKE), and the interpreter's XNNPACK delegate uses
every core (``os.cpu_count()`` threads). Integer inputs (a full-integer export) are quantized from
the uint8 pixels with the model's own scale and zero point, so callers always pass uint8 images.

One interpreter is not thread-safe: calls are serialised with a lock (``cifake serve`` scores
several requests at once).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from ..base import limits, text
from ..base.errors import UserError

TFLITE_SUFFIX = ".tflite"


def is_litert(path: str | Path) -> bool:
    return Path(path).suffix.lower() == TFLITE_SUFFIX


class LiteModel:
    """A ``.tflite`` detector with the same ``(N, 32, 32, 3) uint8 -> (N,) P(FAKE)`` contract as a Keras one."""

    def __init__(self, path: str | Path, threads: int | None = None, batch_size: int = 256):
        self.path = Path(path)
        size = self.path.stat().st_size
        if size > limits.MODEL_MAX_TOTAL_BYTES:
            raise UserError(
                f"{self.path} is {size:,} bytes; cifake reads model files up to {limits.MODEL_MAX_TOTAL_BYTES:,}"
            )
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:  # pragma: no cover - a core dependency; only a broken install lacks it
            raise UserError("reading .tflite models needs the LiteRT runtime: pip install ai-edge-litert") from None
        self.threads = threads or os.cpu_count() or 1
        from ..base.tfutil import quiet_native_stderr

        try:
            with quiet_native_stderr():  # "Created TensorFlow Lite XNNPACK delegate" on every load
                self._interp = Interpreter(model_path=str(self.path), num_threads=self.threads)
            inp = self._interp.get_input_details()
            out = self._interp.get_output_details()
        except Exception as e:  # noqa: BLE001 - any failure means "not a usable LiteRT model"
            raise UserError(
                f"{self.path} is not a loadable LiteRT model ({type(e).__name__}: {text.shorten(str(e), 160)})"
            ) from None
        if (
            len(inp) != 1
            or len(out) != 1
            or tuple(inp[0]["shape"][1:]) != (32, 32, 3)
            or tuple(out[0]["shape"][1:]) != (1,)
        ):
            shapes = [tuple(d["shape"]) for d in inp], [tuple(d["shape"]) for d in out]
            raise UserError(
                f"{self.path} takes {shapes[0]} -> {shapes[1]}; cifake models take (N, 32, 32, 3) RGB and return P(FAKE) (N, 1)"
            )
        self._in, self._out = inp[0], out[0]
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self.batch_size = 0
        self._lock = threading.Lock()
        self._resize(batch_size)

    @property
    def quantized(self) -> bool:
        return self.input_dtype.kind in "iu"

    def _resize(self, batch: int) -> None:
        if batch != self.batch_size:
            from ..base.tfutil import quiet_native_stderr

            self._interp.resize_tensor_input(self._in["index"], [batch, 32, 32, 3], strict=False)
            with quiet_native_stderr():  # the XNNPACK delegate announces itself here
                self._interp.allocate_tensors()
            self._in = self._interp.get_input_details()[0]
            self._out = self._interp.get_output_details()[0]
            self.batch_size = batch

    def _prepare(self, chunk: np.ndarray) -> np.ndarray:
        if not self.quantized:
            return chunk.astype(self.input_dtype)
        scale, zero = self._in["quantization"]
        info = np.iinfo(self.input_dtype)
        if scale == 1.0 and zero == 0 and self.input_dtype == np.uint8:
            return np.ascontiguousarray(chunk, np.uint8)
        q = np.round(chunk.astype(np.float32) / scale + zero)
        return np.clip(q, info.min, info.max).astype(self.input_dtype)

    def _output(self) -> np.ndarray:
        y = self._interp.get_tensor(self._out["index"]).reshape(-1)
        if self.output_dtype.kind in "iu":
            scale, zero = self._out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """P(FAKE) for (N, 32, 32, 3) pixels 0..255, in fixed-size batches (the last one padded)."""
        batch = max(1, min(batch_size, 1024))
        n = len(images)
        out = np.empty(n, np.float32)
        with self._lock:
            self._resize(batch if n >= batch else max(n, 1))
            for start in range(0, n, self.batch_size):
                chunk = images[start : start + self.batch_size]
                k = len(chunk)
                if k < self.batch_size:
                    chunk = np.concatenate([chunk, np.zeros((self.batch_size - k, 32, 32, 3), chunk.dtype)])
                self._interp.set_tensor(self._in["index"], self._prepare(chunk))
                self._interp.invoke()
                out[start : start + k] = self._output()[:k]
        return out
