"""Logit recalibration fitted on validation and folded into the model: a temperature and a bias.

A detector trained with label smoothing is under-confident, one trained long is over-confident,
one fine-tuned on degraded images leans towards one class: P(FAKE) = 0.9 should mean "nine in ten
such images are fake". The logit z is rescaled and shifted, P = sigmoid(z / T + b) (Platt scaling;
b = 0 is temperature scaling, Guo et al., ICML 2017), with T and b fitted by minimising the log
loss on the validation split only (Newton's method: a convex problem in two unknowns). They are
then folded into the final Dense layer (kernel / T, bias / T + b), so the saved model still maps
pixels to P(FAKE) with built-in layers only and loads anywhere. With b != 0 the labels at
threshold 0.5 can change: the boundary moves to where the validation data puts it.

Honesty: the ECE after calibration is also measured on a seeded half of validation with T and b
fitted on the other half, so the figure is not only an in-sample one.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..base.errors import UserError
from ..base.files import atomic_save
from ..base.metrics import expected_calibration_error

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


def apply_temperature(p: np.ndarray, t: float, b: float = 0.0) -> np.ndarray:
    return 1 / (1 + np.exp(-(logits(p) / t + b)))


def fit_platt(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(T, b) minimising the log loss of sigmoid(logit(p) / T + b); Newton steps on (1/T, b)."""
    z, y = logits(p), np.asarray(y, np.float64)
    a, b = 1.0 / fit_temperature(p, y), 0.0  # start from the temperature-only fit
    for _ in range(50):
        q = 1 / (1 + np.exp(-(a * z + b)))
        g = np.array([((q - y) * z).mean(), (q - y).mean()])
        w = q * (1 - q)
        h = np.array([[(w * z * z).mean(), (w * z).mean()], [(w * z).mean(), w.mean()]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-10:
            break
    if not (np.isfinite(a) and np.isfinite(b) and a > 0):
        raise UserError("calibration did not converge (the validation split may be perfectly separated)")
    return 1.0 / a, float(b)


def fold_into_model(model, t: float, b: float = 0.0) -> None:
    """Final sigmoid Dense layer: kernel / t, bias / t + b (in place), i.e. logit -> logit / t + b."""
    import keras

    last = model.layers[-1]
    if not isinstance(last, keras.layers.Dense) or getattr(last.activation, "__name__", "") != "sigmoid":
        raise UserError(
            f"{{calibrate}} needs a model ending in a Dense layer with a sigmoid (got {type(last).__name__}); "
            "the temperature is folded into that layer",
            options=("calibrate",),
        )
    kernel, bias = last.get_weights()
    last.set_weights([kernel / t, bias / t + b])


def calibrate(
    model, checkpoint: Path, p: np.ndarray, y: np.ndarray, seed: int = 0, out_dir: Path | None = None
) -> dict:
    """Fit (T, b) on (p, y) from the validation split, write ``<stem>-calibrated.keras`` beside the
    checkpoint (or in ``out_dir``); return the figures."""
    t, b = fit_platt(p, y)
    q = apply_temperature(p, t, b)
    half = np.random.default_rng(seed).permutation(len(y))
    fit_idx, test_idx = half[: len(y) // 2], half[len(y) // 2 :]
    th, bh = fit_platt(p[fit_idx], y[fit_idx])
    held_out = expected_calibration_error(y[test_idx], apply_temperature(p[test_idx], th, bh))
    fold_into_model(model, t, b)
    out = (out_dir or checkpoint.parent) / f"{checkpoint.stem}-calibrated.keras"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(model, out)
    return {
        "temperature": t,
        "bias": b,
        "ece_before": expected_calibration_error(y, p),
        "ece_after": expected_calibration_error(y, q),
        "ece_after_held_out_half": held_out,
        "accuracy_before": float(((p >= 0.5) == y).mean()),
        "accuracy_after": float(((q >= 0.5) == y).mean()),
        "checkpoint": str(out),
        "fitted_on": "val",
    }
