"""hacon_select and the cold-start registry on synthetic features with known clusters."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.coldstart import (
    ColdStartView,
    get_coldstart_strategy,
    hacon_select,
    list_coldstart_strategies,
)
from medactive.coldstart.hacon import clustered_selection, round_robin
from medactive.errors import StrategyError


def three_blobs() -> tuple[np.ndarray, np.ndarray]:
    """Blobs A (indices 0-4), B (5-9), C (index 10 only) on orthogonal axes, plus confidences.

    Within A the confidence order (ascending) is 3, 1, 4, 0, 2; within B it is 9, 5, 8, 6, 7.
    """
    rng = np.random.default_rng(0)
    centres = np.eye(3, 8, dtype=np.float32) * 10.0
    sizes = [5, 5, 1]
    x = np.concatenate([c + 0.05 * rng.standard_normal((s, 8)) for c, s in zip(centres, sizes, strict=True)])
    conf = np.array([0.40, 0.20, 0.50, 0.10, 0.30,  # A
                     0.15, 0.35, 0.45, 0.25, 0.05,  # B
                     0.90])                         # C
    return x.astype(np.float32), conf


def cluster_order(seed: int, k: int) -> np.ndarray:
    """The documented visiting order; canonical cluster ids follow the smallest member index, so
    here A=0, B=1, C=2."""
    return np.random.default_rng(seed).permutation(k)


def test_round_robin_exact_with_small_cluster_redistribution():
    x, conf = three_blobs()
    per_cluster = {0: [3, 1, 4, 0, 2], 1: [9, 5, 8, 6, 7], 2: [10]}
    for seed in range(4):
        order = cluster_order(seed, 3)
        expected: list[int] = []
        for depth in range(5):  # C (one image) drops out after round 0; A and B share the rest
            expected += [per_cluster[c][depth] for c in order if depth < len(per_cluster[c])]
        sel = hacon_select(x, conf, 9, n_clusters=3, seed=seed)
        np.testing.assert_array_equal(sel, expected[:9])
        assert sorted(sel.tolist()) == [0, 1, 3, 4, 5, 6, 8, 9, 10]


def test_budget_smaller_than_k_takes_hardest_of_first_clusters_in_order():
    x, conf = three_blobs()
    hardest = {0: 3, 1: 9, 2: 10}
    for seed in range(4):
        order = cluster_order(seed, 3)
        sel = hacon_select(x, conf, 2, n_clusters=3, seed=seed)
        np.testing.assert_array_equal(sel, [hardest[c] for c in order[:2]])


def test_default_k_is_budget_and_selection_is_distinct():
    x, conf = three_blobs()
    sel = hacon_select(x, conf, 3, seed=1)  # K = 3 = budget: one hardest per blob
    assert sorted(sel.tolist()) == [3, 9, 10]
    full = hacon_select(x, conf, 11, seed=1)
    assert sorted(full.tolist()) == list(range(11))


def test_deterministic_for_a_seed():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    conf = rng.random(300)
    a = hacon_select(x, conf, 20, seed=7)
    b = hacon_select(x.copy(), conf.copy(), 20, seed=7)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) == 20


def test_features_are_l2_normalised_before_kmeans():
    x, conf = three_blobs()
    scaled = x * np.linspace(0.5, 20, x.shape[0], dtype=np.float32)[:, None]  # norms vary wildly
    np.testing.assert_array_equal(hacon_select(scaled, conf, 3, seed=0),
                                  hacon_select(x, conf, 3, seed=0))


def test_round_robin_helpers():
    groups = [np.array([1, 2, 3]), np.array([7]), np.array([4, 5])]
    np.testing.assert_array_equal(round_robin(groups, 5, np.array([1, 0, 2])), [7, 1, 4, 2, 5])
    labels = np.array([0, 0, 1, 1])
    within = {0: [1, 0], 1: [3, 2]}  # ascending key inside each cluster
    order = cluster_order(0, 2)
    expected = [within[c][d] for d in range(2) for c in order]
    np.testing.assert_array_equal(
        clustered_selection(labels, np.array([0.9, 0.1, 0.5, 0.2]), 4, seed=0), expected)


@pytest.mark.parametrize("budget", [0, 12, -1])
def test_bad_budget_is_a_strategy_error(budget):
    x, conf = three_blobs()
    with pytest.raises(StrategyError):
        hacon_select(x, conf, budget)


def test_registry_lists_all_and_rejects_unknown():
    names = list_coldstart_strategies()
    for n in ["hacon", "easy-to-contrast", "kmeans-centroid", "hard-to-contrast-global",
              "kmeans-pixels", "random", "typiclust", "probcover"]:
        assert n in names
    assert "hard-to-learn" not in names  # simulation-only strategies are hidden by default
    with pytest.raises(StrategyError, match="unknown cold-start strategy"):
        get_coldstart_strategy("nope")
    with pytest.raises(StrategyError, match="bad parameters"):
        get_coldstart_strategy("hacon", bogus=1)


def make_view(with_truth: bool = False) -> ColdStartView:
    x, conf = three_blobs()
    rng = np.random.default_rng(0)
    imgs = (rng.random((11, 6, 6, 3)) * 255).astype(np.uint8)
    truth = np.array([0] * 5 + [1] * 5 + [2]) if with_truth else None
    return ColdStartView(x, conf, np.zeros(11), imgs, truth)


@pytest.mark.parametrize("name", list_coldstart_strategies(include_simulation=True))
def test_every_strategy_returns_distinct_valid_indices(name):
    view = make_view(with_truth=True)
    for budget in (1, 3, 11):
        sel = get_coldstart_strategy(name).select(view, budget, np.random.default_rng(0))
        assert sel.dtype == np.int64 and sel.shape == (budget,)
        assert len(set(sel.tolist())) == budget and sel.min() >= 0 and sel.max() < 11
    with pytest.raises(StrategyError):
        get_coldstart_strategy(name).select(view, 12, np.random.default_rng(0))


def test_ablations_differ_as_designed():
    view = make_view()
    rng = np.random.default_rng
    assert sorted(get_coldstart_strategy("easy-to-contrast", seed=0)
                  .select(view, 3, rng(0)).tolist()) == [2, 7, 10]
    np.testing.assert_array_equal(
        get_coldstart_strategy("hard-to-contrast-global").select(view, 3, rng(0)), [9, 3, 5])
    # TypiClust uses clusters of at most min_cluster_size images only after all larger ones have
    # run out (the authors' code drops them: `cluster_size > MIN_CLUSTER_SIZE`); blob C (image 10)
    # is such an outlier for min_cluster_size=1, so the budget cycles over A and B instead
    typi = get_coldstart_strategy("typiclust", seed=0, min_cluster_size=1).select(
        view, 3, rng(0)).tolist()
    assert 10 not in typi and {i // 5 for i in typi} == {0, 1}
    # with the default 5 every blob here is that small (5, 5, 1): then all of them, largest first
    typi = get_coldstart_strategy("typiclust", seed=0).select(view, 3, rng(0)).tolist()
    assert [i // 5 for i in typi] == [0, 1, 2]
    cover = get_coldstart_strategy("probcover", seed=0).select(view, 3, rng(0))
    assert {int(c) // 5 for c in cover} == {0, 1, 2}


def test_simulation_strategies_need_truth():
    view = make_view(with_truth=False)
    for name in ("hard-to-learn", "easy-to-learn", "label-diversity"):
        with pytest.raises(StrategyError, match="simulation-only"):
            get_coldstart_strategy(name).select(view, 2, np.random.default_rng(0))
    sel = get_coldstart_strategy("label-diversity", base="hacon").select(
        make_view(True), 3, np.random.default_rng(0))
    assert sorted(int(i) // 5 for i in sel) == [0, 1, 2]


def test_view_validates_shapes():
    with pytest.raises(StrategyError):
        ColdStartView(np.zeros((3, 2)), np.zeros(2), np.zeros(3))
