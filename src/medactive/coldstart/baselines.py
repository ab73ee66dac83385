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

import numpy as np

from medactive.coldstart.hacon import check_coldstart_budget, kmeans
from medactive.geometry import ball_graph, l2_normalise, purity_radius, typicality

__all__ = ["ball_graph", "probcover_select", "purity_radius", "typicality", "typiclust_select"]


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
