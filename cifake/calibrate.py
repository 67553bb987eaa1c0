"""Temperature scaling (Guo et al., ICML 2017), fitted on validation and folded into the model.

A detector trained with label smoothing is under-confident, one trained long is over-confident:
P(FAKE) = 0.9 should mean "nine in ten such images are fake". One scalar T rescales the logit,
P = sigmoid(z / T), fitted by minimising the log loss on the validation split only. It is then
folded into the final Dense layer (kernel and bias divided by T), so the saved model still maps
pixels to P(FAKE) with built-in layers only and loads anywhere. Labels (at threshold 0.5) do not
change: z / T has the sign of z.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import UserError
from .metrics import expected_calibration_error

EPS = 1e-7


def logits(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    s = z / t
    return float(np.mean(np.logaddexp(0.0, s) - y * s))  # log(1 + e^s) - y s = -log-likelihood


def fit_temperature(p: np.ndarray, y: np.ndarray) -> float:
    """argmin_T NLL(sigmoid(logit(p) / T), y) over T in [0.05, 20], by golden-section search on log T."""
    z, y = logits(p), np.asarray(y, np.float64)
    lo, hi = math.log(0.05), math.log(20.0)
    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(z, y, math.exp(a)), nll(z, y, math.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(z, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(z, y, math.exp(b))
    return math.exp((lo + hi) / 2)


def apply_temperature(p: np.ndarray, t: float) -> np.ndarray:
    return 1 / (1 + np.exp(-logits(p) / t))


def fold_into_model(model, t: float) -> None:
    """Divide the final sigmoid Dense layer's kernel and bias by ``t`` (in place)."""
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or getattr(last.activation, "__name__", "") != "sigmoid":
        raise UserError(
            f"--calibrate needs a model ending in a Dense layer with a sigmoid (got {type(last).__name__}); "
            "the temperature is folded into that layer"
        )
    last.set_weights([w / t for w in last.get_weights()])


def calibrate(model, checkpoint: Path, p: np.ndarray, y: np.ndarray) -> dict:
    """Fit T on (p, y) from the validation split, write ``<stem>-calibrated.keras``; return the figures."""
    t = fit_temperature(p, y)
    q = apply_temperature(p, t)
    before, after = expected_calibration_error(y, p), expected_calibration_error(y, q)
    fold_into_model(model, t)
    out = checkpoint.with_name(f"{checkpoint.stem}-calibrated.keras")
    tmp = out.with_name(f".{out.stem}.tmp.keras")
    model.save(tmp)
    tmp.replace(out)
    return {"temperature": t, "ece_before": before, "ece_after": after, "checkpoint": str(out), "fitted_on": "val"}
