"""TypiClust (Hacohen, Dekel & Weinshall, ICML 2022, "Active learning on a budget"): the one
implementation, for the cold start (nothing labelled) and every acquisition round.

1. K-means with ``K = min(|L| + B, max_clusters)`` on the L2-normalised features of every image
   (labelled and unlabelled): with ``|L| + B`` clusters at least ``B`` hold no labelled image.
2. Clusters are ordered by fewest labelled members, then largest (ties: canonical cluster id).
   Clusters of ``min_cluster_size`` images or fewer (likely outliers) come after all others: the
   authors' code drops them; here they are used only once every larger cluster has run out of
   unlabelled images, so any budget up to the pool can be filled.
3. The budget cycles over that order; each visit takes the cluster's most *typical* unlabelled
   image, typicality = 1 / mean Euclidean distance to its ``k`` nearest unlabelled cluster
   mates, ``k = min(knn, m // 2)`` for ``m`` unlabelled members (the authors' code: half the
   cluster when it is small), recomputed without the images picked so far.
"""

from __future__ import annotations

import numpy as np

from medactive.geometry import l2_normalise, typicality
from medactive.selection.checks import check_scalar
from medactive.selection.clustering import kmeans
from medactive.selection.picking import cycle_groups

KNN = 20
MAX_CLUSTERS = 500
MIN_CLUSTER_SIZE = 5


def check_typiclust_params(knn: object, max_clusters: object, min_cluster_size: object,
                           n_clusters: object = None) -> None:
    """Raise :class:`~medactive.errors.StrategyError` for an impossible TypiClust parameter
    (the cold-start and the acquisition wrapper both call this)."""
    check_scalar(knn, "knn", int, min_val=1)
    check_scalar(max_clusters, "max_clusters", int, min_val=1)
    check_scalar(min_cluster_size, "min_cluster_size", int, min_val=0)
    check_scalar(n_clusters, "n_clusters", int, min_val=1, allow_none=True)


def typiclust_rank(
    features: np.ndarray,
    labeled_mask: np.ndarray,
    budget: int,
    *,
    n_clusters: int | None = None,
    knn: int = KNN,
    max_clusters: int = MAX_CLUSTERS,
    min_cluster_size: int = MIN_CLUSTER_SIZE,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """TypiClust's picks (module docstring). Parameters are assumed checked by the caller.

    Args:
        features: ``(N, D)`` features of every image (L2-normalised inside).
        labeled_mask: ``(N,)`` bool, True where labelled; all False at cold start.
        budget: B, ``1 <= B <=`` number of unlabelled images.
        n_clusters: K when given (the paper's ``|L| + B`` capped at ``max_clusters`` when None).
        knn: neighbours for typicality (the authors' 20).
        max_clusters: cap on the default K (the authors' 500).
        min_cluster_size: clusters of at most this many images come last (the authors' 5).
        seed: K-means seed.

    Returns:
        ``(indices (B,) int64, typicality (B,) float64)``: unlabelled indices in acquisition
        order and the typicality that picked each.
    """
    x = l2_normalise(features)
    labeled = np.asarray(labeled_mask, dtype=bool)
    k = int(n_clusters) if n_clusters is not None else min(int(labeled.sum()) + budget,
                                                             max_clusters)
    clusters, _ = kmeans(x, k, seed)
    k = int(clusters.max()) + 1
    sizes = np.bincount(clusters, minlength=k)
    covered = np.bincount(clusters[labeled], minlength=k)
    order = sorted(range(k), key=lambda c: (covered[c], -sizes[c], c))
    by_cluster = np.argsort(clusters, kind="stable")  # each cluster's members, ascending
    members_of = np.split(by_cluster, np.cumsum(sizes)[:-1])
    free = ~labeled
    scores: list[float] = []

    def most_typical(c: int) -> int | None:
        members = members_of[c][free[members_of[c]]]
        if members.size == 0:
            return None
        typ = typicality(x[members], max(1, min(knn, members.size // 2)))
        best = int(np.argmax(typ))  # ties: the lowest index
        free[members[best]] = False
        scores.append(float(typ[best]))
        return int(members[best])

    big = [c for c in order if sizes[c] > min_cluster_size]
    small = [c for c in order if sizes[c] <= min_cluster_size]
    picked = cycle_groups(big, budget, most_typical)
    picked += cycle_groups(small, budget - len(picked), most_typical)
    return np.asarray(picked, dtype=np.int64), np.asarray(scores, dtype=np.float64)
