"""Cold-start options of issue 10: UMAP clustering, recorded map variants, typical-and-hard picks."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.coldstart import ColdStartView, get_coldstart_strategy, hacon_select
from medactive.coldstart import embedding as emb
from medactive.coldstart.hacon import near_centroid
from medactive.errors import StrategyError


def blobs(n_per: int = 40, k: int = 4, dim: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` well-separated Gaussian blobs (``n_per`` points each) and their blob ids."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)) * 8.0
    x = np.concatenate([c + rng.standard_normal((n_per, dim)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(k), n_per)


def test_umap_is_deterministic_for_a_seed_and_clusters_the_blobs():
    x, blob = blobs()
    emb._UMAP_CACHE.clear()
    a = emb.umap_2d(x, seed=3)
    emb._UMAP_CACHE.clear()  # recompute from scratch: same seed, same embedding
    b = emb.umap_2d(x, seed=3)
    assert a.shape == (160, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    sel = hacon_select(x, np.zeros(160), 4, n_clusters=4, seed=3, embedding="umap")
    assert sorted(blob[sel].tolist()) == [0, 1, 2, 3]  # one pick per blob


def test_unknown_embedding_and_tiny_umap_are_strategy_errors():
    x, _ = blobs()
    with pytest.raises(StrategyError, match="unknown embedding"):
        emb.clustering_space(x, "tsne")
    with pytest.raises(StrategyError, match="at least 4"):
        emb.umap_2d(x[:3])


def test_near_centroid_keeps_the_nearest_fraction_of_each_cluster():
    labels = np.array([0, 0, 0, 0, 1, 1, 1])
    dist = np.array([0.4, 0.1, 0.3, 0.2, 0.9, 0.5, 0.7])
    np.testing.assert_array_equal(near_centroid(labels, dist, 0.5),
                                  [False, True, False, True, False, True, True])
    # every cluster keeps at least one member, even at a tiny fraction
    assert near_centroid(labels, dist, 0.01).sum() == 2


def test_typical_fraction_restricts_hardness_to_the_core_of_each_cluster():
    x, blob = blobs(n_per=50)
    rng = np.random.default_rng(1)
    conf = rng.random(x.shape[0])
    full = hacon_select(x, conf, 4, n_clusters=4, seed=0)
    assert np.array_equal(full, hacon_select(x, conf, 4, n_clusters=4, seed=0, typical_fraction=1.0))
    core = hacon_select(x, conf, 4, n_clusters=4, seed=0, typical_fraction=0.2)
    # each pick is the hardest of the 10 members nearest its blob's centre
    for i in core:
        members = np.flatnonzero(blob == blob[i])
        d = np.linalg.norm(x[members] / np.linalg.norm(x[members], axis=1, keepdims=True)
                           - (x[members] / np.linalg.norm(x[members], axis=1, keepdims=True)).mean(0),
                           axis=1)
        nearest = members[np.argsort(d)[:10]]
        assert i in nearest and conf[i] == conf[nearest].min()
    with pytest.raises(StrategyError, match="typical_fraction"):
        hacon_select(x, conf, 4, typical_fraction=0.0)


def test_map_parameter_reads_a_recorded_variant():
    x, _ = blobs()
    primary = np.linspace(0, 1, x.shape[0])
    other = primary[::-1].copy()
    view = ColdStartView(x, primary, np.zeros_like(primary), maps={"batch:hit": other})
    rng = np.random.default_rng
    by_map = get_coldstart_strategy("hacon", seed=0, map="batch:hit").select(view, 4, rng(0))
    by_hand = hacon_select(x, other, 4, seed=0)
    np.testing.assert_array_equal(by_map, by_hand)
    easy = get_coldstart_strategy("easy-to-contrast", seed=0, map="batch:hit").select(view, 4, rng(0))
    np.testing.assert_array_equal(easy, hacon_select(x, -other, 4, seed=0))
    with pytest.raises(StrategyError, match="was not recorded; recorded: batch:hit"):
        get_coldstart_strategy("hacon", map="probe:rank").select(view, 4, rng(0))
    with pytest.raises(StrategyError, match="shape"):
        ColdStartView(x, primary, primary, maps={"bad": primary[:3]})


def test_kmeans_centroid_on_umap_and_parameters_round_trip():
    x, blob = blobs()
    view = ColdStartView(x, np.zeros(160), np.zeros(160))
    strat = get_coldstart_strategy("kmeans-centroid", n_clusters=4, embedding="umap", seed=2)
    sel = strat.select(view, 4, np.random.default_rng(0))
    assert sorted(blob[sel].tolist()) == [0, 1, 2, 3]
    for name in ("hacon", "easy-to-contrast", "kmeans-centroid", "kmeans-pixels"):
        s = get_coldstart_strategy(name)
        assert get_coldstart_strategy(name, **s.get_params()).get_params() == s.get_params()


def test_farthest_first_order_spreads_and_puts_tiny_clusters_last():
    from medactive.coldstart.hacon import farthest_first_order

    cents = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [5.0, 5.0], [-50.0, 0.0]])
    sizes = np.array([30, 40, 10, 8, 2])  # cluster 4 is far away but tiny: an outlier
    # largest (1) first, then the farthest from it (2: distance 9 > 0: 1, 3: 6.4), then the
    # farthest from {1, 2}: 3 (min distance 5.7) before 0 (1.0); the tiny cluster last
    np.testing.assert_array_equal(farthest_first_order(cents, sizes), [1, 2, 3, 0, 4])


def test_oversampled_clusters_visited_spread_first():
    x, blob = blobs(n_per=40, k=4)
    view = ColdStartView(x, np.zeros(160), np.zeros(160))
    for order in ("random", "farthest"):
        strat = get_coldstart_strategy("kmeans-centroid", oversample=3.0, order=order, seed=0)
        sel = strat.select(view, 4, np.random.default_rng(0))
        assert sel.shape == (4,) and len(set(sel.tolist())) == 4
        if order == "farthest":  # 12 clusters over 4 blobs: spread-first reaches every blob
            assert sorted(blob[sel].tolist()) == [0, 1, 2, 3]
    for bad in ({"oversample": 0.5}, {"order": "nearest"}):
        with pytest.raises(StrategyError):
            get_coldstart_strategy("kmeans-centroid", **bad).select(view, 4, np.random.default_rng(0))
