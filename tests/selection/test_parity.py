"""Cold start and acquisition run one implementation: with nothing labelled, the cold-start and
the acquisition TypiClust / ProbCover / random pick the same images; each intended difference
is a named parameter with its own test."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.coldstart import ColdStartView, get_coldstart_strategy
from medactive.geometry import l2_normalise
from medactive.selection import probcover_radius, probcover_rank
from medactive.strategies import RoundView, get_strategy

N_BLOBS, PER_BLOB, DIM = 5, 60, 8


def _blobs(seed: int) -> np.ndarray:
    """5 Gaussian blobs x 60 points (the issue's comparison)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_BLOBS, DIM)) * 3
    x = np.concatenate([c + rng.normal(size=(PER_BLOB, DIM)) for c in centres])
    return x.astype(np.float32)


def _views(x: np.ndarray, n_classes: int = N_BLOBS) -> tuple[ColdStartView, RoundView]:
    n = x.shape[0]
    head = np.random.default_rng(0).normal(size=(n_classes, x.shape[1])).astype(np.float32)
    acquisition = RoundView(features=x, labeled_mask=np.zeros(n, bool), labels=np.full(n, -1),
                            weight=head, bias=np.zeros(n_classes, np.float32))
    return ColdStartView(x), acquisition


CASES = [(seed, budget) for seed in range(5) for budget in (10, 20)]


@pytest.mark.parametrize(("seed", "budget"), CASES)
@pytest.mark.parametrize(("name", "params"), [
    ("typiclust", {}),
    ("probcover", {"n_clusters": N_BLOBS}),  # the pseudo-class default differs, see below
    ("probcover", {"n_clusters": 20, "fill": "degree"}),
    ("random", {}),
])
def test_cold_start_and_acquisition_pick_the_same_when_nothing_is_labelled(
        name: str, params: dict, seed: int, budget: int) -> None:
    cold_view, acquisition_view = _views(_blobs(seed))
    for fixed in (seed, None):  # a fixed seed, and the seed drawn from the caller's generator
        kw = dict(params) if name == "random" else {**params, "seed": fixed}
        cold, cold_scores = get_coldstart_strategy(name, **kw).rank(
            cold_view, budget, np.random.default_rng(seed))
        acq, acq_scores = get_strategy(name, **kw).rank(
            acquisition_view, budget, np.random.default_rng(seed))
        assert cold.tolist() == acq.tolist()
        if cold_scores is None or acq_scores is None:
            assert cold_scores is None and acq_scores is None
        else:
            np.testing.assert_array_equal(cold_scores, acq_scores)


# --------------------------------------------------------------- the one intended difference


@pytest.mark.parametrize("budget", [10, 20])
def test_probcover_pseudo_classes_default_to_budget_at_cold_start_and_c_later(budget) -> None:
    """``n_clusters=None`` means the budget at cold start (no label says how many classes there
    are) and the number of classes C (the head's rows) in acquisition, as the paper."""
    x = _blobs(0)
    cold_view, acquisition_view = _views(x, n_classes=3)
    rng = np.random.default_rng
    cold = get_coldstart_strategy("probcover", seed=1).select(cold_view, budget, rng(0))
    as_budget = get_coldstart_strategy("probcover", seed=1, n_clusters=budget).select(
        cold_view, budget, rng(0))
    acq = get_strategy("probcover", seed=1).select(acquisition_view, budget, rng(0))
    as_c = get_strategy("probcover", seed=1, n_clusters=3).select(acquisition_view, budget, rng(0))
    assert cold.tolist() == as_budget.tolist() and acq.tolist() == as_c.tolist()
    unit = l2_normalise(x)
    assert probcover_radius(unit, budget, 0.95, 1) != probcover_radius(unit, 3, 0.95, 1)
    assert cold.tolist() != acq.tolist()


# --------------------------------------------------------------- named parameters of both


def test_probcover_fill_once_everything_is_covered() -> None:
    """``fill`` decides the picks after full coverage: ``"random"`` (the paper's, default in both)
    draws uniformly from the seed; ``"degree"`` takes the densest images first."""
    x = _blobs(0)
    mask = np.zeros(x.shape[0], bool)
    wide = 0.9  # a few balls of this radius cover every blob
    greedy, gains = probcover_rank(x, mask, 40, n_pseudo_classes=5, delta=wide, seed=0)
    covering = int((gains > 0).sum())
    assert 0 < covering < 40 and np.all(gains[covering:] == 0)
    by_degree, _ = probcover_rank(x, mask, 40, n_pseudo_classes=5, delta=wide, fill="degree",
                                  seed=0)
    assert by_degree[:covering].tolist() == greedy[:covering].tolist()
    unit = l2_normalise(x)
    dist = np.linalg.norm(unit[:, None] - unit[None], axis=2)
    degree = (dist <= wide).sum(1)
    rest = by_degree[covering:]
    assert np.all(np.diff(degree[rest]) <= 0), "densest first"
    free_degrees = np.sort(np.delete(degree, by_degree[:covering]))[::-1]
    assert degree[rest].tolist() == free_degrees[: rest.size].tolist()
    # the random fill is uniform: over seeds its picks' degree is the pool's, not the top's
    draws = [probcover_rank(x, mask, 40, n_pseudo_classes=5, delta=wide, seed=s)
             for s in range(1, 6)]
    random_fill = np.concatenate([picks[g == 0] for picks, g in draws])
    assert degree[random_fill].mean() < degree[rest].mean()
    assert len(set(random_fill.tolist())) > rest.size
