"""Metrics checked against scikit-learn (the reference implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

from medactive.errors import MedactiveError
from medactive.metrics import (
    accuracy,
    balanced_accuracy,
    class_coverage,
    label_diversity_entropy,
    macro_auc,
    per_class_recall,
)


@settings(max_examples=60, deadline=None)
@given(n_classes=st.integers(2, 6), n=st.integers(20, 120), seed=st.integers(0, 10_000),
       rounding=st.sampled_from([None, 1]))
def test_against_sklearn(n_classes, n, seed, rounding):
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)])
    p = rng.dirichlet(np.ones(n_classes), size=n)
    if rounding is not None:
        p = np.round(p, rounding)  # creates ties: mid-rank handling must match sklearn
        p[:, 0] += 1e-12
    pred = p.argmax(1)
    # Macro one-vs-rest = mean of per-class binary AUCs (sklearn's binary AUC as the reference).
    ref_auc = np.mean([roc_auc_score(y == c, p[:, c]) for c in range(n_classes)])
    assert macro_auc(y, p) == pytest.approx(ref_auc, abs=1e-12)
    if n_classes > 2 and rounding is None:
        assert macro_auc(y, p) == pytest.approx(
            roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    assert accuracy(y, p) == pytest.approx(accuracy_score(y, pred))
    assert balanced_accuracy(y, p) == pytest.approx(balanced_accuracy_score(y, pred))
    assert np.allclose(per_class_recall(y, p),
                       recall_score(y, pred, average=None, labels=range(n_classes), zero_division=0))


def test_binary_macro_auc_is_mean_of_both_sides():
    y = np.array([0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.8, 0.9])
    p = np.stack([1 - p1, p1], axis=1)
    assert macro_auc(y, p) == pytest.approx(roc_auc_score(y, p1))


def test_absent_class_is_left_out():
    y = np.array([0, 0, 1, 1])
    p = np.array([[0.8, 0.1, 0.1], [0.6, 0.2, 0.2], [0.2, 0.7, 0.1], [0.3, 0.6, 0.1]])
    assert macro_auc(y, p) == pytest.approx(1.0)
    assert np.isnan(per_class_recall(y, p)[2])


def test_bad_input():
    with pytest.raises(MedactiveError, match="NaN"):
        macro_auc(np.array([0, 1]), np.array([[np.nan, 1.0], [0.5, 0.5]]))
    with pytest.raises(MedactiveError, match="does not match"):
        accuracy(np.array([0, 1, 1]), np.ones((2, 2)) / 2)
    with pytest.raises(MedactiveError, match="out of range"):
        accuracy(np.array([0, 3]), np.ones((2, 2)) / 2)


def test_selection_metrics():
    assert class_coverage(np.array([0, 0, 2]), 4) == 0.5
    assert label_diversity_entropy(np.array([0, 1, 2, 3]), 4) == pytest.approx(np.log(4))
    assert label_diversity_entropy(np.array([1, 1, 1]), 4) == 0.0
