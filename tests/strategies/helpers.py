"""Synthetic inputs for the strategy tests."""

from __future__ import annotations

import numpy as np

from medactive.strategies import RoundView


def random_view(
    seed: int = 0, n: int = 40, d: int = 8, c: int = 3, k: int = 20, n_labeled: int = 6
) -> RoundView:
    """A view of random Gaussian features and a random head; no model or images."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(n, bool)
    mask[rng.choice(n, n_labeled, replace=False)] = True
    labels = np.where(mask, rng.integers(0, c, n), -1)
    return RoundView(
        features=rng.normal(size=(n, d)).astype(np.float32),
        labeled_mask=mask,
        labels=labels,
        weight=rng.normal(size=(c, d)).astype(np.float32),
        bias=rng.normal(size=c).astype(np.float32),
        dropout_p=0.2,
        val_features=rng.normal(size=(k, d)).astype(np.float32),
        val_labels=rng.integers(0, c, k),
        true_labels=rng.integers(0, c, n),
    )
