"""HaCon (Chen et al. 2023, Algorithm 1): K-means pseudo-labels for label diversity, then the
hard-to-contrast (lowest dataset-map confidence) images of each cluster, round-robin.

Everything here is label-free: it reads contrastive features and confidences only.
"""

from __future__ import annotations

import numpy as np

from medactive.coldstart.base import check_coldstart_budget
from medactive.coldstart.embedding import clustering_space
from medactive.errors import StrategyError
from medactive.geometry import l2_normalise  # re-exported: cold start's public name
from medactive.selection import check_scalar, kmeans, round_robin

__all__ = ["clustered_selection", "farthest_first_order", "hacon_select", "kmeans",
           "l2_normalise", "near_centroid", "round_robin"]


def farthest_first_order(centroids: np.ndarray, sizes: np.ndarray, min_size: int = 5) -> np.ndarray:
    """Visiting order of clusters that spreads the first picks over the embedding.

    Starts at the largest cluster; each next cluster is the one whose centroid is farthest from
    every centroid already chosen (k-centre greedy on centroids, Gonzalez 1985). Clusters smaller
    than ``min_size`` (likely outliers, as TypiClust's rule) come last, largest first.

    Args:
        centroids: ``(K, D)`` cluster centres.
        sizes: ``(K,)`` member counts.
        min_size: smallest cluster that competes on spread.

    Returns:
        ``(K,)`` permutation of ``range(K)``.
    """
    k = centroids.shape[0]
    big = np.flatnonzero(sizes >= min_size)
    if big.size == 0:
        big = np.arange(k)
    order = [int(big[np.argmax(sizes[big])])]
    nearest = np.linalg.norm(centroids[big] - centroids[order[0]], axis=1)
    for _ in range(big.size - 1):
        nearest[np.isin(big, order)] = -1.0
        nxt = int(big[np.argmax(nearest)])
        order.append(nxt)
        nearest = np.minimum(nearest, np.linalg.norm(centroids[big] - centroids[nxt], axis=1))
    rest = [c for c in np.argsort(-sizes, kind="stable") if c not in set(order)]
    return np.asarray(order + [int(c) for c in rest], dtype=np.int64)


def clustered_selection(
    cluster_labels: np.ndarray, rank_key: np.ndarray, budget: int, seed: int = 0,
    order: np.ndarray | None = None,
) -> np.ndarray:
    """Within each cluster order by ``rank_key`` ascending (ties: lower index), then round-robin
    over clusters in the order ``np.random.default_rng(seed).permutation(K)``.

    Args:
        cluster_labels: ``(N,)`` ints in ``[0, K)`` (canonical numbering, see
            :func:`medactive.selection.kmeans`).
        rank_key: ``(N,)`` floats, smaller = taken first within its cluster.
        budget: total number of indices.
        seed: seed of the cluster visiting order.
        order: explicit visiting order (a permutation of the K clusters) instead of the seeded one.
    """
    k = int(cluster_labels.max()) + 1
    groups = []
    for c in range(k):
        members = np.flatnonzero(cluster_labels == c)
        groups.append(members[np.argsort(rank_key[members], kind="stable")])
    if order is None:
        order = np.random.default_rng(seed).permutation(k)
    return round_robin(groups, budget, order)


def near_centroid(labels: np.ndarray, dist: np.ndarray, fraction: float) -> np.ndarray:
    """``(N,)`` bool: the ``ceil(fraction * size)`` members of each cluster nearest its centroid.

    Args:
        labels: ``(N,)`` cluster ids.
        dist: ``(N,)`` distance of each point to its cluster's centroid.
        fraction: in ``(0, 1]``; every cluster keeps at least one member.
    """
    keep = np.zeros(labels.shape[0], dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        m = max(1, int(np.ceil(fraction * members.size - 1e-9)))
        keep[members[np.argsort(dist[members], kind="stable")[:m]]] = True
    return keep


def hacon_select(
    features: np.ndarray,
    confidence: np.ndarray,
    budget: int,
    *,
    n_clusters: int | None = None,
    seed: int = 0,
    embedding: str = "features",
    typical_fraction: float = 1.0,
) -> np.ndarray:
    """HaCon initial query: hard-to-contrast images spread over K-means clusters.

    Args:
        features: ``(N, D)`` contrastive features of the un-augmented images.
        confidence: ``(N,)`` dataset-map confidence; lower = harder to contrast = more typical.
        budget: number of images to select, ``1 <= budget <= N``.
        n_clusters: K (default: ``budget``, the paper's best setting in its Fig. 17 ablation;
            the authors' code uses 30).
        seed: seeds K-means (and UMAP) and the order in which clusters are visited.
        embedding: cluster the L2-normalised ``"features"`` (default) or their 2-D ``"umap"``
            (the authors' code), see :func:`medactive.coldstart.embedding.clustering_space`.
        typical_fraction: only the members among the ``typical_fraction`` of each cluster
            nearest its centroid compete on hardness first (1.0 = the paper: all members);
            the others follow, hardest first.

    Returns:
        ``(budget,)`` int64 distinct indices in acquisition order: round ``r`` takes the
        ``r``-th hardest image of every cluster that still has one. Deterministic for a seed.
    """
    features = np.asarray(features)
    confidence = np.asarray(confidence, dtype=np.float64)
    if features.ndim != 2 or confidence.shape != (features.shape[0],):
        raise StrategyError(
            f"hacon: features {features.shape} and confidence {confidence.shape} do not match"
        )
    check_coldstart_budget(features.shape[0], budget)
    check_scalar(n_clusters, "n_clusters", int, min_val=1, allow_none=True)
    check_scalar(typical_fraction, "typical_fraction", float, min_val=0.0, max_val=1.0,
                 min_inclusive=False)
    k = int(n_clusters) if n_clusters is not None else int(budget)
    space = clustering_space(features, embedding, seed)
    labels, cents = kmeans(space, k, seed)
    key = confidence
    if typical_fraction < 1.0:
        near = near_centroid(labels, np.linalg.norm(space - cents[labels], axis=1), typical_fraction)
        # near-centroid members first (key in [0, 1)), then the rest ([2, 3)), each by hardness
        hardness_rank = np.argsort(np.argsort(confidence, kind="stable"), kind="stable")
        key = np.where(near, 0.0, 2.0) + hardness_rank / (confidence.size + 1.0)
    return clustered_selection(labels, key, budget, seed)
