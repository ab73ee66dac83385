"""Uncertainty scores against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.strategies import RoundView, get_strategy

from .helpers import random_view


def _view_with_probs(proba: np.ndarray) -> RoundView:
    # Identity features + zero bias + log-probability head gives exactly these probabilities.
    n, c = proba.shape
    return RoundView(
        features=np.eye(n, dtype=np.float32),
        labeled_mask=np.zeros(n, bool),
        labels=np.full(n, -1),
        weight=np.log(proba).T.astype(np.float32),
        bias=np.zeros(c, np.float32),
    )


PROBS = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3], [0.98, 0.01, 0.01]])


def test_least_confidence_margin_entropy_by_hand() -> None:
    view = _view_with_probs(PROBS)
    np.testing.assert_allclose(
        get_strategy("least-confidence").score(view), [0.3, 0.6, 2 / 3, 0.02], atol=1e-6
    )
    np.testing.assert_allclose(
        get_strategy("margin").score(view), [-0.5, -0.05, 0.0, -0.97], atol=1e-6
    )
    ent = [-(p * np.log(p)).sum() for p in PROBS]
    np.testing.assert_allclose(get_strategy("entropy").score(view), ent, atol=1e-6)
    assert np.isclose(ent[2], np.log(3), atol=1e-6)


def test_entropy_picks_most_uncertain_first() -> None:
    view = _view_with_probs(PROBS)
    picked = get_strategy("entropy").select(view, 2, np.random.default_rng(0))
    assert list(picked) == [2, 1]


def test_ties_broken_by_rng_only() -> None:
    view = _view_with_probs(np.full((30, 3), 1 / 3))
    strategy = get_strategy("entropy")
    a = strategy.select(view, 5, np.random.default_rng(0))
    b = strategy.select(view, 5, np.random.default_rng(1))
    assert not np.array_equal(a, b), "all-equal scores: the rng must decide"


@pytest.mark.parametrize("seed", [0, 1])
def test_random_is_uniform_over_pool(seed: int) -> None:
    view = random_view(seed, n=40, n_labeled=10)
    counts = np.zeros(40)
    rng = np.random.default_rng(seed)
    for _ in range(300):
        counts[get_strategy("random").select(view, 5, rng)] += 1
    assert counts[view.labeled_mask].sum() == 0
    pool_counts = counts[~view.labeled_mask]
    assert pool_counts.min() > 20 and pool_counts.max() < 90  # mean 50
