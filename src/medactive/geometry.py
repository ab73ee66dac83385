"""Label-free geometry of a feature space, shared by cold-start and acquisition strategies.

L2 normalisation, pairwise distances, k-nearest-neighbour typicality (TypiClust, Hacohen et al.
2022), δ-ball graphs and the purity radius (ProbCover, Yehuda et al. 2022). Pure functions of
``(N, D)`` arrays, the building blocks of :mod:`medactive.selection` (K-means, TypiClust,
ProbCover), which both :mod:`medactive.coldstart` and :mod:`medactive.strategies` use.
"""

from __future__ import annotations

import hashlib

import numpy as np
from scipy import sparse


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``(N, D)`` scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pairwise_sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(m, n)`` squared Euclidean distances of ``(m, D)`` and ``(n, D)`` rows, without forming
    the ``(m, n, D)`` difference tensor."""
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
        _DIST_CACHE[key] = np.sqrt(pairwise_sq_distances(x, x)).astype(np.float32)
    return _DIST_CACHE[key]


def typicality(x: np.ndarray, k: int = 20, chunk: int = 2048) -> np.ndarray:
    """``(N,)`` inverse mean distance of each point of ``(N, D)`` ``x`` to its ``k`` neighbours."""
    n = x.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return np.ones(n)
    out = np.empty(n)
    for s in range(0, n, chunk):
        rows = x[s : s + chunk]
        d = pairwise_sq_distances(rows, x)
        d[np.arange(d.shape[0]), np.arange(s, s + d.shape[0])] = np.inf  # not your own neighbour
        nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
        # The float32 expansion |a|² + |b|² − 2ab finds the neighbours, but loses digits to
        # cancellation when they are very close (near-duplicate images, adjacent slices):
        # their k distances are recomputed exactly, as differences in float64 (k x chunk x D).
        total = np.zeros(rows.shape[0])
        for j in range(k):
            diff = rows.astype(np.float64) - x[nearest[:, j]].astype(np.float64)
            total += np.sqrt((diff * diff).sum(axis=1))
        out[s : s + chunk] = 1.0 / (total / k + 1e-12)
    return out


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
        d = full[part].copy() if full is not None else np.sqrt(pairwise_sq_distances(x[part], x))
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
            r, c = np.nonzero(pairwise_sq_distances(x[s : s + chunk], x) <= delta * delta)
        rows.append(r + s)
        cols.append(c)
    r, c = np.concatenate(rows), np.concatenate(cols)
    return sparse.csr_matrix((np.ones(r.size, dtype=np.float32), (r, c)), shape=(n, n))
