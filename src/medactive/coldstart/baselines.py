"""Label-free typicality baselines beyond the HaCon paper, on the same contrastive features.

* TypiClust (Hacohen et al. 2022): K-means with K = budget; from the largest clusters first, the
  most *typical* member, typicality = 1 / mean distance to its k nearest neighbours (within the
  cluster, k = 20). Clusters with fewer than ``min_cluster_size`` points are skipped when enough
  larger ones exist.
* ProbCover (Yehuda et al. 2022): δ-balls on L2-normalised features, δ the largest radius whose
  balls are still "pure" (contain one K-means pseudo-class) for a fraction ``alpha`` of the points;
  then greedy maximum coverage (the point whose ball covers most still-uncovered points).
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import sparse

from medactive.coldstart.hacon import check_coldstart_budget, kmeans, l2_normalise


def _pairwise_sq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # squared Euclidean distances (m, n) without forming the (m, n, D) difference tensor
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


# Pools up to this size keep their full (N, N) float32 distance matrix in memory (1 GB at 16k),
# so repeated ProbCover draws (new K-means seed -> new δ) reuse one O(N² D) product.
FULL_MATRIX_MAX = 16_384
_DIST_CACHE: dict[str, np.ndarray] = {}


def _full_distances(x: np.ndarray) -> np.ndarray | None:
    if x.shape[0] > FULL_MATRIX_MAX:
        return None
    key = hashlib.md5(np.ascontiguousarray(x).tobytes()).hexdigest()
    if key not in _DIST_CACHE:
        _DIST_CACHE.clear()  # one pool at a time
        _DIST_CACHE[key] = np.sqrt(_pairwise_sq(x, x)).astype(np.float32)
    return _DIST_CACHE[key]


def typicality(x: np.ndarray, k: int = 20, chunk: int = 2048) -> np.ndarray:
    """``(N,)`` inverse mean distance of each point of ``(N, D)`` ``x`` to its ``k`` neighbours."""
    n = x.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n)
    out = np.empty(n)
    for s in range(0, n, chunk):
        d = np.sqrt(_pairwise_sq(x[s : s + chunk], x))
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = np.inf  # not your own neighbour
        near = np.partition(d, k - 1, axis=1)[:, :k]
        out[s : s + chunk] = 1.0 / (near.mean(axis=1) + 1e-12)
    return out


def typiclust_select(
    features: np.ndarray,
    budget: int,
    *,
    n_clusters: int | None = None,
    knn: int = 20,
    min_cluster_size: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """TypiClust initial query.

    Args:
        features: ``(N, D)`` features (L2-normalised inside).
        budget: number of images.
        n_clusters: K (default ``budget``; the paper uses ``|L| + B`` = B at cold start).
        knn: neighbours for typicality.
        min_cluster_size: clusters smaller than this are used only when nothing else is left.
        seed: K-means seed.

    Returns:
        ``(budget,)`` int64 indices in acquisition order.
    """
    check_coldstart_budget(features.shape[0], budget)
    x = l2_normalise(features)
    labels, _ = kmeans(x, n_clusters or budget, seed)
    k = int(labels.max()) + 1
    sizes = np.bincount(labels, minlength=k)
    members = [np.flatnonzero(labels == c) for c in range(k)]
    typ = [typicality(x[m], knn) for m in members]
    taken = [0] * k  # how many already taken from each cluster
    out: list[int] = []
    while len(out) < budget:
        avail = [c for c in range(k) if taken[c] < sizes[c]]
        big = [c for c in avail if sizes[c] >= min_cluster_size] or avail
        # largest cluster with the fewest picks so far (TypiClust's "largest uncovered" rule)
        c = min(big, key=lambda c: (taken[c], -sizes[c], c))
        order = np.argsort(-typ[c], kind="stable")
        out.append(int(members[c][order[taken[c]]]))
        taken[c] += 1
    return np.asarray(out, dtype=np.int64)


def purity_radius(x: np.ndarray, pseudo: np.ndarray, alpha: float = 0.95,
                  sample: int = 3000, seed: int = 0) -> float:
    """Largest δ whose balls are pure for a fraction ``alpha`` of (a sample of) the points.

    A ball around ``i`` is pure iff δ is at most the distance from ``i`` to the nearest point of
    another pseudo-class, so the answer is the ``(1 - alpha)`` quantile of those distances.
    """
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    idx = rng.choice(n, min(sample, n), replace=False)
    d_other = np.empty(idx.size)
    full = _full_distances(x)
    for s in range(0, idx.size, 1024):
        part = idx[s : s + 1024]
        d = full[part].copy() if full is not None else np.sqrt(_pairwise_sq(x[part], x))
        d[pseudo[part][:, None] == pseudo[None, :]] = np.inf
        d_other[s : s + part.size] = d.min(axis=1)
    finite = d_other[np.isfinite(d_other)]
    if finite.size == 0:
        return float(np.sqrt(2.0))  # one pseudo-class: any ball is pure
    return float(np.quantile(finite, 1.0 - alpha))


def ball_graph(x: np.ndarray, delta: float, chunk: int = 1024) -> sparse.csr_matrix:
    """``(N, N)`` boolean CSR: ``A[i, j]`` iff ``||x_i - x_j|| <= delta`` (self included)."""
    n = x.shape[0]
    full = _full_distances(x)
    rows, cols = [], []
    for s in range(0, n, chunk):
        if full is not None:
            r, c = np.nonzero(full[s : s + chunk] <= delta)
        else:
            r, c = np.nonzero(_pairwise_sq(x[s : s + chunk], x) <= delta * delta)
        rows.append(r + s)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(n, n))


def probcover_select(
    features: np.ndarray,
    budget: int,
    *,
    alpha: float = 0.95,
    n_clusters: int | None = None,
    delta: float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """ProbCover initial query (greedy max coverage of δ-balls).

    Args:
        features: ``(N, D)`` features (L2-normalised inside).
        budget: number of images.
        alpha: purity target for choosing δ.
        n_clusters: pseudo-classes for purity (default ``max(budget, 2)``; the paper uses the
            number of classes, which a cold-start user may not know).
        delta: fixed ball radius (skips the purity search).
        seed: K-means seed and tie-breaking.

    Returns:
        ``(budget,)`` int64 indices in acquisition order. When everything is covered the rest is
        filled with the points of highest degree (ProbCover's fallback is random; degree keeps
        it deterministic and typical).
    """
    check_coldstart_budget(features.shape[0], budget)
    x = l2_normalise(features)
    if delta is None:
        pseudo, _ = kmeans(x, max(int(n_clusters or budget), 2), seed)
        delta = purity_radius(x, pseudo, alpha, seed=seed)
    graph = ball_graph(x, delta)
    degree0 = np.asarray(graph.sum(axis=1)).ravel()
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(x.shape[0]) * 1e-3  # < 1: only breaks exact ties in coverage counts
    uncovered = np.ones(x.shape[0], dtype=np.float32)
    chosen = np.zeros(x.shape[0], dtype=bool)
    out: list[int] = []
    while len(out) < budget:
        gain = graph @ uncovered
        if gain.max() <= 0:  # all covered: fall back to degree
            score = np.where(chosen, -np.inf, degree0 + tiebreak)
        else:
            score = np.where(chosen, -np.inf, gain + tiebreak)
        i = int(np.argmax(score))
        out.append(i)
        chosen[i] = True
        uncovered[graph[i].indices] = 0.0
    return np.asarray(out, dtype=np.int64)
