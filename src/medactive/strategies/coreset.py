"""CoreSet (Sener & Savarese 2018): greedy k-center on the penultimate features."""

from __future__ import annotations

import numpy as np

from medactive.errors import StrategyError
from medactive.strategies.base import RoundView, Strategy, check_budget, register_strategy

# Pools whose float32 features fit in this many bytes are copied once (fast per-step updates);
# larger pools are streamed from ``view.features`` in row chunks so memory stays bounded.
_COPY_LIMIT_BYTES = 256 * 2**20
_ROWS = 16384


class PoolFeatures:
    """Access to the pool's float32 features: ``dot(x)`` and squared norms, chunked if huge."""

    def __init__(self, view: RoundView) -> None:
        self._view = view
        self.indices = view.pool_indices
        n, d = self.indices.size, view.features.shape[1]
        self._copy = view.pool_features if n * d * 4 <= _COPY_LIMIT_BYTES else None
        self.sq_norms = np.concatenate(
            [np.einsum("ij,ij->i", f, f, dtype=np.float64) for f in self._chunks()]
        ) if n else np.zeros(0)

    def _chunks(self):
        if self._copy is not None:
            yield self._copy
            return
        for start in range(0, self.indices.size, _ROWS):
            yield self._view.features[self.indices[start : start + _ROWS]]

    def row(self, i: int) -> np.ndarray:
        """``(D,)`` features of pool position ``i``."""
        return self._view.features[self.indices[i]]

    def dot(self, x: np.ndarray) -> np.ndarray:
        """``(N_pool, m)`` float64 inner products with ``(m, D)`` rows ``x``."""
        x32 = np.asarray(x, np.float32)
        return np.concatenate([(f @ x32.T).astype(np.float64) for f in self._chunks()])

    def sq_dist_to(self, x: np.ndarray) -> np.ndarray:
        """``(N_pool,)`` squared distance of every pool image to its nearest row of ``x``."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        xn = np.einsum("ij,ij->i", x, x, dtype=np.float64)
        out = np.empty(self.indices.size, dtype=np.float64)
        start = 0
        # Rows outer, centres inner: the largest temporary is one (rows, 256) block, so memory
        # does not grow with the pool (a million rows x 256 centres would be 2 GB otherwise).
        for f in self._chunks():
            for r0 in range(0, f.shape[0], _ROWS):
                rows = f[r0 : r0 + _ROWS]
                norms = self.sq_norms[start : start + rows.shape[0]]
                best = np.full(rows.shape[0], np.inf)
                for j in range(0, x.shape[0], 256):
                    d2 = (rows @ x[j : j + 256].T).astype(np.float64)
                    d2 *= -2.0
                    d2 += norms[:, None]
                    d2 += xn[None, j : j + 256]
                    np.minimum(best, d2.min(axis=1), out=best)
                out[start : start + rows.shape[0]] = best
                start += rows.shape[0]
        return np.maximum(out, 0.0)


@register_strategy("coreset")
class CoreSet(Strategy):
    """Greedy k-center: repeatedly take the pool image farthest from every labelled or already
    chosen image (Euclidean, penultimate features). Seeded with the whole labelled set; with no
    labelled image the first centre is drawn by the round's rng.

    Memory: O(N_pool) floats plus row chunks (no N x N matrix); time O((L + B) · N · D).
    The score of a pick is its distance to the nearest centre when it was taken (``inf`` for a
    first centre drawn at random).
    """

    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        check_budget(view, budget)
        pool = PoolFeatures(view)
        n = pool.indices.size
        labelled = view.features[view.labeled_mask]
        min_d2 = pool.sq_dist_to(labelled) if labelled.shape[0] else np.full(n, np.inf)
        chosen = np.empty(budget, dtype=np.int64)
        distance = np.empty(budget, dtype=np.float64)
        taken = np.zeros(n, bool)
        for step in range(budget):
            if np.isinf(min_d2).all():
                i = int(rng.integers(n))
            else:
                # Already-taken images sit at -1 so argmax never returns them again.
                i = int(np.argmax(np.where(taken, -1.0, min_d2)))
            if taken[i]:
                raise StrategyError("coreset: internal error, re-selected an image")
            chosen[step] = i
            distance[step] = np.sqrt(min_d2[i])
            taken[i] = True
            np.minimum(min_d2, pool.sq_dist_to(pool.row(i)), out=min_d2)
        return pool.indices[chosen], distance
