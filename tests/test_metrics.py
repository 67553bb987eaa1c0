"""Metrics against values worked out by hand on a six-image set (see the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cifake.base.metrics import (
    average_precision,
    best_threshold,
    binary_report,
    expected_calibration_error,
    per_group_accuracy,
    roc_auc,
)

Y = np.array([0, 0, 1, 1, 1, 0])
P = np.array([0.1, 0.6, 0.8, 0.4, 0.9, 0.2])


def test_confusion_and_per_class_scores():
    r = binary_report(Y, P, 0.5)
    # predicted FAKE: 0.6 (wrong), 0.8, 0.9 -> tp 2, fp 1; 0.4 is a missed FAKE -> fn 1; tn 2
    assert r["confusion"] == {"tp": 2, "fp": 1, "tn": 2, "fn": 1}
    assert r["accuracy"] == pytest.approx(4 / 6)
    for cls in ("fake", "real"):
        assert r[cls]["precision"] == pytest.approx(2 / 3)
        assert r[cls]["recall"] == pytest.approx(2 / 3)
        assert r[cls]["f1"] == pytest.approx(2 / 3)


def test_ranking_metrics():
    # 8 of the 9 (FAKE, REAL) pairs are ranked correctly: only 0.4 < 0.6 is not
    assert roc_auc(Y, P) == pytest.approx(8 / 9)
    # ranked: 0.9 F, 0.8 F, 0.6 R, 0.4 F -> precision at each FAKE 1, 1, 3/4
    assert average_precision(Y, P) == pytest.approx((1 + 1 + 0.75) / 3)


def test_probabilistic_metrics():
    r = binary_report(Y, P)
    assert r["log_loss"] == pytest.approx(-(math.log(0.9) + math.log(0.4) + math.log(0.8)) / 3)
    assert r["brier"] == pytest.approx(0.82 / 6)
    # one image per bin, so ECE is the mean |y - p|
    assert expected_calibration_error(Y, P) == pytest.approx(1.8 / 6)


def test_ties_count_half_in_auc():
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert math.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.7])))


def test_best_threshold_prefers_nearest_half():
    # 0.4 and 0.8 both give 5/6 correct; 0.4 is nearer 0.5
    assert best_threshold(Y, P) == pytest.approx(0.4)


def test_per_group_accuracy():
    groups = np.array([0, 0, 0, 1, 1, 1])
    out = per_group_accuracy(Y, P, groups, ("airplane", "automobile", "bird"), 0.5)
    assert set(out) == {"airplane", "automobile"}
    assert out["airplane"] == {
        "images": 3,
        "accuracy": pytest.approx(2 / 3),
        "real_accuracy": 0.5,
        "fake_accuracy": 1.0,
    }
    assert out["automobile"]["fake_accuracy"] == 0.5 and out["automobile"]["real_accuracy"] == 1.0
