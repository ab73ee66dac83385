"""Slow, literal references of TypiClust and ProbCover (test oracles only).

Written from the papers' text and the rules stated in :mod:`medactive.selection.typiclust` and
:mod:`medactive.selection.probcover`, with plain loops over images and float64 distances. They
share **no** code with the fast path (nothing is imported from ``medactive``, not even the
normalisation or the distance helper), so an error in a shared helper cannot pass both. K-means
itself is a library call: the references take the cluster / pseudo-class labels as input.
"""

from __future__ import annotations

import math

import numpy as np


def _unit_rows(features: np.ndarray) -> list[np.ndarray]:
    rows = []
    for row in np.asarray(features, dtype=np.float64):
        norm = math.sqrt(float(np.dot(row, row)))
        rows.append(row / max(norm, 1e-12))
    return rows


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return math.sqrt(float(np.sum((a - b) ** 2)))


def typiclust_reference(
    features: np.ndarray,
    labeled_mask: np.ndarray,
    budget: int,
    clusters: np.ndarray,
    *,
    knn: int = 20,
    min_cluster_size: int = 5,
) -> tuple[list[int], list[float]]:
    """TypiClust's picks given the K-means ``clusters`` of the normalised features.

    Hacohen et al. (2022), Algorithm 1 in its active form and the authors' code: clusters ordered
    by fewest labelled members, then largest, then id; clusters of at most ``min_cluster_size``
    images only once every larger cluster has no unlabelled image left; visits cycle over that
    order; each visit takes the most typical unlabelled member (lowest index on ties), typicality
    ``1 / mean distance to the k nearest unlabelled mates``, ``k = max(1, min(knn, m // 2))`` for
    ``m`` unlabelled members (1 for a lone member).

    Returns:
        ``(indices, typicality)`` as lists, in acquisition order.
    """
    x = _unit_rows(features)
    n = len(x)
    labeled = [bool(v) for v in labeled_mask]
    ids = sorted({int(c) for c in clusters})
    size = {c: sum(1 for i in range(n) if clusters[i] == c) for c in ids}
    covered = {c: sum(1 for i in range(n) if clusters[i] == c and labeled[i]) for c in ids}
    order = sorted(ids, key=lambda c: (covered[c], -size[c], c))
    large = [c for c in order if size[c] > min_cluster_size]
    small = [c for c in order if size[c] <= min_cluster_size]
    free = [not v for v in labeled]
    picked: list[int] = []
    scores: list[float] = []
    for tier in (large, small):
        while len(picked) < budget and any(free[i] and clusters[i] in tier for i in range(n)):
            for c in tier:
                if len(picked) == budget:
                    break
                members = [i for i in range(n) if clusters[i] == c and free[i]]
                if not members:
                    continue
                if len(members) == 1:
                    best, best_typ = members[0], 1.0
                else:
                    k = max(1, min(knn, len(members) // 2))
                    best, best_typ = -1, -1.0
                    for i in members:
                        dists = sorted(_distance(x[i], x[j]) for j in members if j != i)
                        typ = 1.0 / (sum(dists[:k]) / k + 1e-12)
                        if typ > best_typ:
                            best, best_typ = i, typ
                picked.append(best)
                scores.append(best_typ)
                free[best] = False
    return picked, scores


def purity_radius_reference(features: np.ndarray, pseudo: np.ndarray, alpha: float,
                            sample: int = 3000, seed: int = 0) -> float:
    """ProbCover's δ (Yehuda et al. 2022, Sec. 4): the largest radius whose balls hold a single
    pseudo-class around a fraction ``alpha`` of the points.

    A ball around ``i`` is pure iff its radius is at most the distance from ``i`` to the nearest
    point of another pseudo-class, so δ is the ``1 - alpha`` quantile of those distances, over
    the points ``np.random.default_rng(seed).choice(N, min(sample, N), replace=False)``; √2 (the
    diameter of the unit sphere) when there is one pseudo-class.
    """
    x = _unit_rows(features)
    n = len(x)
    points = np.random.default_rng(seed).choice(n, min(sample, n), replace=False)
    nearest_other = []
    for i in points:
        others = [_distance(x[i], x[j]) for j in range(n) if pseudo[j] != pseudo[i]]
        if others:
            nearest_other.append(min(others))
    if not nearest_other:
        return math.sqrt(2.0)
    return float(np.quantile(nearest_other, 1.0 - alpha))


def probcover_reference(
    features: np.ndarray,
    labeled_mask: np.ndarray,
    budget: int,
    delta: float,
    *,
    fill: str = "random",
    seed: int = 0,
) -> tuple[list[int], list[float]]:
    """ProbCover's greedy maximum coverage with radius ``delta`` on the normalised features.

    Every image within ``delta`` of a labelled image is covered. Each pick is the unlabelled
    image whose ball holds the most uncovered images, exact ties going to the highest priority
    ``np.random.default_rng(seed).random(N)``. Once nothing is left to cover, the rest is the
    same generator's ``choice`` over the unlabelled images in ascending order (``fill="random"``)
    or the unlabelled images by ball size, then priority (``fill="degree"``).

    Returns:
        ``(indices, gains)`` as lists (gain 0 for fill picks).
    """
    x = _unit_rows(features)
    n = len(x)
    rng = np.random.default_rng(seed)
    priority = rng.random(n)
    ball = [{j for j in range(n) if _distance(x[i], x[j]) <= delta} for i in range(n)]
    labeled = [bool(v) for v in labeled_mask]
    covered: set[int] = set()
    for i in range(n):
        if labeled[i]:
            covered |= ball[i]
    free = [not v for v in labeled]
    picked: list[int] = []
    gains: list[float] = []
    while len(picked) < budget:
        best, best_key = -1, (-1, -1.0)
        for i in range(n):
            if free[i]:
                key = (len(ball[i] - covered), float(priority[i]))
                if key > best_key:
                    best, best_key = i, key
        if best_key[0] == 0:
            break
        picked.append(best)
        gains.append(float(best_key[0]))
        free[best] = False
        covered |= ball[best]
    rest = budget - len(picked)
    if rest:
        unlabelled = [i for i in range(n) if free[i]]
        if fill == "random":
            extra = [int(i) for i in rng.choice(np.asarray(unlabelled), rest, replace=False)]
        else:
            extra = sorted(unlabelled, key=lambda i: (-len(ball[i]), -priority[i], i))[:rest]
        picked += extra
        gains += [0.0] * rest
    return picked, gains
