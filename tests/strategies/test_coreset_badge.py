"""CoreSet and BADGE against slow implementations that materialise everything."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist

import medactive.strategies.coreset as coreset_mod
from medactive.strategies import get_strategy

from .helpers import random_view


def _kcenter_brute(view, budget: int) -> list[int]:
    pool = view.pool_features.astype(np.float64)
    centres = view.features[view.labeled_mask].astype(np.float64)
    chosen: list[int] = []
    for _ in range(budget):
        d = cdist(pool, centres).min(1) if len(centres) else np.full(len(pool), np.inf)
        d[chosen] = -1
        i = int(np.argmax(d))
        chosen.append(i)
        centres = np.vstack([centres, pool[i]]) if len(centres) else pool[i : i + 1]
    return [int(view.pool_indices[i]) for i in chosen]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), budget=st.integers(1, 10), n_labeled=st.integers(1, 8))
def test_coreset_equals_brute_force(seed: int, budget: int, n_labeled: int) -> None:
    view = random_view(seed, n=30, d=5, n_labeled=n_labeled)
    got = get_strategy("coreset").select(view, budget, np.random.default_rng(0))
    assert list(got) == _kcenter_brute(view, budget)


def test_coreset_streamed_equals_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    view = random_view(3, n=200, d=6, n_labeled=20)
    whole = get_strategy("coreset").select(view, 15, np.random.default_rng(0))
    monkeypatch.setattr(coreset_mod, "_COPY_LIMIT_BYTES", 0)
    monkeypatch.setattr(coreset_mod, "_ROWS", 17)
    np.testing.assert_array_equal(
        get_strategy("coreset").select(view, 15, np.random.default_rng(0)), whole
    )


def _badge_brute(view, budget: int, rng: np.random.Generator) -> list[int]:
    p = view.pool_probabilities
    r = p.copy()
    r[np.arange(len(r)), r.argmax(1)] -= 1
    g = (r[:, :, None] * view.pool_features[:, None, :].astype(np.float64)).reshape(len(r), -1)
    tiebreak = rng.random(len(g))  # same rng calls as the strategy: first centre = max norm
    norms = (g**2).sum(1)
    first = int(np.lexsort((tiebreak, -norms))[0])
    chosen = [first]
    for _ in range(budget - 1):
        d2 = cdist(g, g[chosen], "sqeuclidean").min(1)
        d2[chosen] = 0
        chosen.append(int(rng.choice(len(g), p=d2 / d2.sum())))
    return [int(view.pool_indices[i]) for i in chosen]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_badge_equals_materialised_kmeanspp(seed: int) -> None:
    view = random_view(seed, n=50, d=6, c=4)
    got = get_strategy("badge").select(view, 8, np.random.default_rng(seed))
    assert list(got) == _badge_brute(view, 8, np.random.default_rng(seed))


def test_badge_first_pick_is_the_largest_gradient() -> None:
    view = random_view(5, n=60)
    r = view.pool_probabilities.copy()
    r[np.arange(len(r)), r.argmax(1)] -= 1
    norm = (r**2).sum(1) * (view.pool_features.astype(np.float64) ** 2).sum(1)
    got = get_strategy("badge").select(view, 1, np.random.default_rng(0))
    assert got[0] == view.pool_indices[np.argmax(norm)]
