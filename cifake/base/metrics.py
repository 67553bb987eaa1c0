"""Binary-detection metrics in plain NumPy (FAKE = 1 is the positive class).

Kept free of TensorFlow and scikit-learn so every number can be checked by hand in the tests.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-7
ECE_BINS = 10  # equal-width bins of P(FAKE) for the reliability diagram and ECE


def confusion(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, int]:
    """Counts at ``p >= threshold`` -> FAKE: tp/fp/tn/fn with FAKE as positive."""
    pred = p >= threshold
    y = y.astype(bool)
    return {
        "tp": int((pred & y).sum()),
        "fp": int((pred & ~y).sum()),
        "tn": int((~pred & ~y).sum()),
        "fn": int((~pred & y).sum()),
    }


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) at every distinct score, from (0, 0) to (1, 1)."""
    order = np.argsort(-p, kind="mergesort")
    p, y = p[order], y[order].astype(float)
    distinct = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(tps[-1], 1)]
    fpr = np.r_[0.0, fps / max(fps[-1], 1)]
    return fpr, tpr, np.r_[np.inf, p[distinct]]


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; ties count half), NaN when only one class is present."""
    if y.min() == y.max():
        return float("nan")
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.trapezoid(tpr, fpr))


def pr_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score, highest threshold first."""
    order = np.argsort(-p, kind="mergesort")
    p, y = p[order], y[order].astype(float)
    distinct = np.r_[np.flatnonzero(np.diff(p)), len(p) - 1]
    tps = np.cumsum(y)[distinct]
    precision = tps / (distinct + 1)
    recall = tps / max(y.sum(), 1)
    return recall, precision


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """AP = sum over thresholds of (R_n - R_{n-1}) * P_n (no interpolation)."""
    if y.sum() == 0:
        return float("nan")
    recall, precision = pr_curve(y, p)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per equal-width bin of P(FAKE): count, mean predicted P(FAKE), observed FAKE rate."""
    idx = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        rows.append(
            {
                "lo": b / bins,
                "hi": (b + 1) / bins,
                "count": n,
                "mean_p": float(p[mask].mean()) if n else float("nan"),
                "fake_rate": float(y[mask].mean()) if n else float("nan"),
            }
        )
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """sum_b |B_b|/N * |observed FAKE rate - mean P(FAKE)| over equal-width bins."""
    return float(
        sum(r["count"] / len(y) * abs(r["fake_rate"] - r["mean_p"]) for r in reliability(y, p, bins) if r["count"])
    )


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold among the observed scores that maximises accuracy (ties: the one nearest 0.5)."""
    candidates = np.unique(np.r_[p, 0.5])
    acc = np.array([((p >= t) == y.astype(bool)).mean() for t in candidates])
    best = np.flatnonzero(acc == acc.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])


def binary_report(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict:
    """Everything ``cifake evaluate`` prints: per-class precision/recall/F1, AUC, AP, log loss, Brier, ECE."""
    y = np.asarray(y).astype(int).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    cm = confusion(y, p, threshold)
    pc = np.clip(p, EPS, 1 - EPS)
    return {
        "images": len(y),
        "threshold": threshold,
        "accuracy": (cm["tp"] + cm["tn"]) / len(y),
        "fake": _prf(cm["tp"], cm["fp"], cm["fn"]),
        "real": _prf(cm["tn"], cm["fn"], cm["fp"]),
        "roc_auc": roc_auc(y, p),
        "average_precision": average_precision(y, p),
        "log_loss": float(-np.mean(y * np.log(pc) + (1 - y) * np.log(1 - pc))),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(y, p),
        "confusion": cm,
    }


def per_group_accuracy(
    y: np.ndarray, p: np.ndarray, groups: np.ndarray, names: tuple[str, ...], threshold: float
) -> dict[str, dict]:
    """Accuracy per group (e.g. CIFAR-10 subject), split into REAL and FAKE images too."""
    correct = (p >= threshold) == y.astype(bool)
    out = {}
    for g, name in enumerate(names):
        mask = groups == g
        if not mask.any():
            continue
        row = {"images": int(mask.sum()), "accuracy": float(correct[mask].mean())}
        for label, cls in ((0, "real"), (1, "fake")):
            m = mask & (y == label)
            row[f"{cls}_accuracy"] = float(correct[m].mean()) if m.any() else float("nan")
        out[name] = row
    return out
