"""TypiClust and ProbCover as cold-start functions: the shared implementations of
:mod:`medactive.selection` with nothing labelled (the all-False mask).

* TypiClust (Hacohen et al. 2022): K-means with K = budget (``|L| + B`` with ``|L| = 0``), the
  most typical member of each cluster, largest clusters first, clusters of 5 or fewer images
  last (:func:`medactive.selection.typiclust_rank`).
* ProbCover (Yehuda et al. 2022): δ-balls with δ the purity radius at ``alpha`` for K-means
  pseudo-classes — K = the budget here, because the number of classes is unknown before any
  label — then greedy maximum coverage (:func:`medactive.selection.probcover_rank`).
"""

from __future__ import annotations

import numpy as np

from medactive.coldstart.base import check_coldstart_budget
from medactive.geometry import ball_graph, purity_radius, typicality
from medactive.selection import probcover_rank, typiclust_rank

__all__ = ["ball_graph", "probcover_select", "purity_radius", "typicality", "typiclust_select"]


def typiclust_select(
    features: np.ndarray,
    budget: int,
    *,
    n_clusters: int | None = None,
    knn: int = 20,
    max_clusters: int = 500,
    min_cluster_size: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """TypiClust initial query: ``(budget,)`` int64 indices of ``(N, D)`` ``features`` in
    acquisition order (arguments as :func:`medactive.selection.typiclust_rank`)."""
    check_coldstart_budget(features.shape[0], budget)
    nothing = np.zeros(features.shape[0], dtype=bool)
    return typiclust_rank(features, nothing, budget, n_clusters=n_clusters, knn=knn,
                          max_clusters=max_clusters, min_cluster_size=min_cluster_size,
                          seed=seed)[0]


def probcover_select(
    features: np.ndarray,
    budget: int,
    *,
    alpha: float = 0.95,
    n_clusters: int | None = None,
    delta: float | None = None,
    fill: str = "random",
    seed: int = 0,
) -> np.ndarray:
    """ProbCover initial query: ``(budget,)`` int64 indices of ``(N, D)`` ``features`` in
    acquisition order; ``n_clusters`` pseudo-classes (default: the budget, at least 2), other
    arguments as :func:`medactive.selection.probcover_rank`."""
    check_coldstart_budget(features.shape[0], budget)
    nothing = np.zeros(features.shape[0], dtype=bool)
    return probcover_rank(features, nothing, budget, n_pseudo_classes=int(n_clusters or budget),
                          alpha=alpha, delta=delta, fill=fill, seed=seed)[0]
