"""Evaluation metrics: macro one-vs-rest ROC AUC (both papers' metric), accuracy, balanced accuracy,
per-class recall; and, for a selection of images, class coverage and label-diversity entropy."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from medactive.errors import MedactiveError


def _check(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != y_true.shape[0]:
        raise MedactiveError(
            f"probabilities shape {proba.shape} does not match {y_true.shape[0]} labels"
        )
    if not np.all(np.isfinite(proba)):
        raise MedactiveError("probabilities contain NaN or infinite values")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= proba.shape[1]):
        raise MedactiveError(f"labels out of range for {proba.shape[1]} classes")
    return y_true, proba


def binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC of ``scores`` for boolean ``positive`` (Mann–Whitney U with mid-ranks for ties)."""
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def macro_auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Unweighted mean over classes of one-vs-rest ROC AUC.

    Args:
        y_true: ``(N,)`` int labels in ``[0, C)``.
        proba: ``(N, C)`` class scores (probabilities).

    Classes absent from ``y_true`` (no positives) are left out of the mean rather than failing,
    which matters for tiny validation subsets; equals scikit-learn's
    ``roc_auc_score(..., multi_class="ovr", average="macro")`` when every class is present.
    """
    y_true, proba = _check(y_true, proba)
    aucs = [binary_auc(y_true == c, proba[:, c]) for c in range(proba.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Fraction of ``argmax(proba)`` equal to ``y_true``."""
    y_true, proba = _check(y_true, proba)
    return float(np.mean(proba.argmax(axis=1) == y_true))


def per_class_recall(y_true: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """``(C,)`` recall per class; NaN for a class absent from ``y_true``."""
    y_true, proba = _check(y_true, proba)
    pred = proba.argmax(axis=1)
    out = np.full(proba.shape[1], np.nan)
    for c in range(proba.shape[1]):
        mask = y_true == c
        if mask.any():
            out[c] = float(np.mean(pred[mask] == c))
    return out


def balanced_accuracy(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    recalls = per_class_recall(y_true, proba)
    return float(np.nanmean(recalls))


def class_coverage(selected_labels: np.ndarray, n_classes: int) -> float:
    """Fraction of the ``n_classes`` classes present among ``selected_labels`` (``(B,)`` ints)."""
    selected_labels = np.asarray(selected_labels, dtype=np.int64)
    return float(np.unique(selected_labels[selected_labels >= 0]).size / n_classes)


def label_diversity_entropy(selected_labels: np.ndarray, n_classes: int) -> float:
    """Shannon entropy (nats) of the class histogram of a selection (the HaCon paper's Fig. 2)."""
    counts = np.bincount(np.asarray(selected_labels, dtype=np.int64), minlength=n_classes)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def evaluate_probabilities(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """All classification metrics at once: ``auc``, ``accuracy``, ``balanced_accuracy``."""
    return {
        "auc": macro_auc(y_true, proba),
        "accuracy": accuracy(y_true, proba),
        "balanced_accuracy": balanced_accuracy(y_true, proba),
    }
