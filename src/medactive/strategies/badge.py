"""BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings, never materialised.

The gradient of the cross-entropy at the hallucinated label ŷ = argmax p with respect to the head
weight is ``g = (p - e_ŷ) ⊗ h`` (C·D numbers). BADGE only needs distances between such vectors,
and for outer products ``⟨g_i, g_j⟩ = ⟨r_i, r_j⟩ ⟨h_i, h_j⟩`` with ``r = p - e_ŷ`` — so each
k-means++ step costs one pass of O(N (D + C)) instead of O(N C D), and memory stays O(N).
"""

from __future__ import annotations

import numpy as np

from medactive.strategies.base import (
    RoundView,
    Strategy,
    check_budget,
    register_strategy,
    top_k_with_random_ties,
)
from medactive.strategies.coreset import PoolFeatures


def gradient_residuals(proba: np.ndarray) -> np.ndarray:
    """``(N, C)`` residuals ``r = p - onehot(argmax p)`` (the gradient embedding's class part)."""
    r = np.array(proba, dtype=np.float64, copy=True)
    r[np.arange(r.shape[0]), r.argmax(axis=1)] -= 1.0
    return r


@register_strategy("badge")
class BADGE(Strategy):
    """k-means++ seeding over gradient embeddings: the first centre is the largest embedding
    (as in the paper's code), each next one is drawn with probability ∝ squared distance to the
    nearest chosen centre — uncertain (large ‖r‖) *and* diverse images. No parameters.
    The score of a pick is its squared gradient-embedding distance to the nearest earlier
    centre when it was drawn (the first centre: its squared embedding norm).
    """

    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        check_budget(view, budget)
        pool = PoolFeatures(view)
        n = pool.indices.size
        r = gradient_residuals(view.pool_probabilities)
        r_sq = np.einsum("ij,ij->i", r, r)
        g_sq = r_sq * pool.sq_norms  # ‖r ⊗ h‖² = ‖r‖² ‖h‖²
        chosen = np.empty(budget, dtype=np.int64)
        picked_d2 = np.empty(budget, dtype=np.float64)
        taken = np.zeros(n, bool)
        min_d2 = np.full(n, np.inf)
        for step in range(budget):
            if step == 0:
                i = int(top_k_with_random_ties(g_sq, 1, rng)[0])
            else:
                weights = np.where(taken, 0.0, min_d2)
                total = weights.sum()
                if total > 0 and np.isfinite(total):
                    i = int(rng.choice(n, p=weights / total))
                else:  # every remaining embedding coincides with a centre: uniform fallback
                    i = int(rng.choice(np.flatnonzero(~taken)))
            chosen[step] = i
            picked_d2[step] = g_sq[i] if step == 0 else min_d2[i]
            taken[i] = True
            hh = pool.dot(pool.row(i)[None, :])[:, 0]
            d2 = g_sq + g_sq[i] - 2.0 * (r @ r[i]) * hh
            np.minimum(min_d2, np.maximum(d2, 0.0), out=min_d2)
        return pool.indices[chosen], picked_d2
