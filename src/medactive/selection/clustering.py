"""The one K-means of medactive, memoised: cold start, acquisition, evidence and plots share it.

Backend: **scikit-learn** (``KMeans``, 3 k-means++ initialisations, Lloyd iterations; above
:data:`MINIBATCH_MIN_POINTS` rows ``MiniBatchKMeans`` with batches of 4,096, which keeps a
million-image pool's clustering linear in batches rather than in passes over the pool).
scikit-learn is already a dependency, is deterministic for a ``random_state`` on any machine,
and is what scikit-activeml's TypiClust and ProbCover call; faiss (which the TypiClust authors use
for neighbour search) is not a dependency of medactive, and an optional backend that only some
installations have would make the same seed pick different images on different machines.

The memo: HaCon, TypiClust, ProbCover's pseudo-classes, the selection evidence (each pick's
cluster) and the cold-start plots all cluster the same L2-normalised features with the same K and
seed; the second and later calls are a hash of the data instead of a K-means.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

#: Above this many rows K-means is scikit-learn's mini-batch variant.
MINIBATCH_MIN_POINTS = 50_000
#: K-means restarts (k-means++ seeds); the best inertia wins.
N_INIT = 3
_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()
_CACHE_SIZE = 16


def kmeans(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """K-means of the rows of ``x``; memoised on the data's bytes, K and the seed.

    Args:
        x: ``(N, D)`` points (converted to float32).
        k: number of clusters, capped at N (at least 1).
        seed: ``random_state`` of scikit-learn.

    Returns:
        ``(labels (N,) int64, centroids (k, D) float32)``, fresh copies. Labels are renumbered
        canonically — cluster ``c`` is the one whose smallest member index has rank ``c`` — so
        tie-breaks by cluster id never depend on the backend's arbitrary numbering. A cluster
        the backend left empty keeps its centroid and sorts last.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = max(1, int(min(int(k), x.shape[0])))
    key = (hashlib.md5(x.tobytes()).hexdigest(), x.shape, k, int(seed))
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        labels, centroids = _fit(x, k, int(seed))
        first = np.full(k, x.shape[0], dtype=np.int64)
        np.minimum.at(first, labels, np.arange(x.shape[0]))
        rank = np.empty(k, dtype=np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(k)
        _CACHE[key] = (rank[labels], centroids[np.argsort(rank)])
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    labels, centroids = _CACHE[key]
    return labels.copy(), centroids.copy()


def clear_kmeans_cache() -> None:
    """Forget every memoised clustering (benchmarks time a cold call with it)."""
    _CACHE.clear()


def _fit(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.cluster import KMeans, MiniBatchKMeans  # lazy: importing sklearn costs ~1 s

    model: KMeans | MiniBatchKMeans
    if x.shape[0] > MINIBATCH_MIN_POINTS:
        model = MiniBatchKMeans(k, random_state=seed, n_init=N_INIT, batch_size=4096)
    else:
        model = KMeans(k, random_state=seed, n_init=N_INIT)
    labels = model.fit_predict(x).astype(np.int64)
    return labels, np.asarray(model.cluster_centers_, dtype=np.float32)
