"""The one K-means: scikit-learn's partition, canonical ids, and a memo every caller shares."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans

from medactive.selection import clustering
from medactive.selection import kmeans as shared_kmeans


def _points(n: int = 120, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture
def fits(monkeypatch):
    """Count the real K-means fits behind the memo (starting from an empty memo)."""
    clustering.clear_kmeans_cache()
    calls: list[tuple[int, int]] = []
    real = clustering._fit

    def counting(x, k, seed):
        calls.append((k, seed))
        return real(x, k, seed)

    monkeypatch.setattr(clustering, "_fit", counting)
    yield calls
    clustering.clear_kmeans_cache()


def test_partition_is_scikit_learns_with_canonical_ids() -> None:
    x = _points()
    labels, centroids = shared_kmeans(x, 6, seed=3)
    direct = KMeans(6, random_state=3, n_init=clustering.N_INIT).fit(x)
    # the same partition, renumbered: one-to-one map between the two labellings
    pairs = set(zip(labels.tolist(), direct.labels_.tolist(), strict=True))
    assert len(pairs) == 6 and len({a for a, _ in pairs}) == 6 and len({b for _, b in pairs}) == 6
    first_members = [int(np.flatnonzero(labels == c).min()) for c in range(6)]
    assert first_members == sorted(first_members), "cluster c holds the c-th smallest first index"
    for c, b in pairs:
        np.testing.assert_allclose(centroids[c], direct.cluster_centers_[b], rtol=1e-5, atol=1e-6)
    assert labels.dtype == np.int64 and centroids.dtype == np.float32


def test_memo_refits_only_for_new_data_k_or_seed(fits) -> None:
    x = _points()
    a, ca = shared_kmeans(x, 4, 0)
    a[:] = -1  # results are copies: mutating one never reaches the memo
    ca[:] = 0
    b, cb = shared_kmeans(x.copy(), 4, 0)
    assert fits == [(4, 0)] and b.min() == 0 and np.abs(cb).sum() > 0
    shared_kmeans(x, 4, 1)
    shared_kmeans(x, 5, 0)
    shared_kmeans(x + 1, 4, 0)
    assert len(fits) == 4
    assert shared_kmeans(x.astype(np.float64), 4, 0)[0].tolist() == b.tolist()  # float32 inside
    assert len(fits) == 4


def test_memo_is_bounded(fits) -> None:
    x = _points(30)
    for seed in range(20):
        shared_kmeans(x, 2, seed)
    assert len(clustering._CACHE) == clustering._CACHE_SIZE
    shared_kmeans(x, 2, 0)  # the oldest was evicted
    assert len(fits) == 21


def test_k_is_capped_at_the_points() -> None:
    labels, centroids = shared_kmeans(_points(4), 10, 0)
    assert sorted(labels.tolist()) == [0, 1, 2, 3] and centroids.shape == (4, 5)


def test_cold_start_evidence_reuses_the_strategys_clustering(fits) -> None:
    """TypiClust, HaCon and the selection evidence cluster the same normalised features with the
    same K and seed: the evidence's K-means is a memo hit (the reason the memo exists)."""
    from medactive.coldstart import ColdStartView, get_coldstart_strategy
    from medactive.coldstart.pipeline import select_initial

    x = _points(150, 8)
    view = ColdStartView(x, np.random.default_rng(1).random(150), np.zeros(150))
    rng = np.random.default_rng(0)
    for name in ("typiclust", "hacon"):
        selection = select_initial(get_coldstart_strategy(name, seed=4), view, 6, rng,
                                   cluster_seed=4)
        assert selection.clusters is not None and np.unique(selection.clusters).size == 6
    assert fits == [(6, 4)]
