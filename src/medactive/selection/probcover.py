"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022, "Active learning through a
covering lens"): the one implementation, for the cold start and every acquisition round.

1. δ-balls on the L2-normalised features; δ is the largest radius whose balls are *pure* (hold
   one K-means pseudo-class) around a fraction ``alpha`` of the points
   (:func:`medactive.geometry.purity_radius`), or a given ``delta``.
2. Every image within δ of a labelled image is covered.
3. Greedy maximum coverage: each pick is the unlabelled image whose ball holds the most still
   uncovered images; exact ties are broken by a random priority drawn once from ``seed``.
4. Once everything is covered, the rest of the budget is filled by ``fill``: ``"random"``
   (uniform over the unlabelled images, as the paper and scikit-activeml's ``ProbCover``) or
   ``"degree"`` (largest balls first: the densest images, deterministic for the clustering).
"""

from __future__ import annotations

import numpy as np

from medactive.geometry import ball_graph, l2_normalise, purity_radius
from medactive.selection.checks import check_choice, check_scalar
from medactive.selection.clustering import kmeans
from medactive.selection.picking import random_pick

ALPHA = 0.95
FILLS = ("random", "degree")


def check_probcover_params(alpha: object, delta: object, fill: object,
                           n_pseudo_classes: object = None) -> None:
    """Raise :class:`~medactive.errors.StrategyError` for an impossible ProbCover parameter
    (the cold-start and the acquisition wrapper both call this; ``n_pseudo_classes`` is their
    ``n_clusters``)."""
    check_scalar(alpha, "alpha", float, min_val=0.0, max_val=1.0, min_inclusive=False)
    check_scalar(delta, "delta", float, min_val=0.0, min_inclusive=False, allow_none=True)
    check_choice(fill, "fill", FILLS)
    check_scalar(n_pseudo_classes, "n_clusters", int, min_val=1, allow_none=True)


def probcover_radius(x: np.ndarray, n_pseudo_classes: int, alpha: float, seed: int) -> float:
    """δ for ``(N, D)`` normalised ``x``: the purity radius at ``alpha`` with
    ``max(2, n_pseudo_classes)`` K-means pseudo-classes (K-means and the purity sample seeded by
    ``seed``)."""
    pseudo, _ = kmeans(x, max(2, int(n_pseudo_classes)), seed)
    return purity_radius(x, pseudo, alpha, seed=seed)


def probcover_rank(
    features: np.ndarray,
    labeled_mask: np.ndarray,
    budget: int,
    *,
    n_pseudo_classes: int,
    alpha: float = ALPHA,
    delta: float | None = None,
    fill: str = "random",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """ProbCover's picks (module docstring). Parameters are assumed checked by the caller.

    Args:
        features: ``(N, D)`` features of every image (L2-normalised inside).
        labeled_mask: ``(N,)`` bool, True where labelled; all False at cold start.
        budget: B, ``1 <= B <=`` number of unlabelled images.
        n_pseudo_classes: K-means pseudo-classes of the purity search (the paper: the number of
            classes; at least 2).
        alpha: purity target of δ.
        delta: ball radius; None = the purity search.
        fill: how to spend the budget left once everything is covered (``FILLS``).
        seed: seeds the pseudo-class K-means, the purity sample, the tie-break priorities
            and the random fill (``np.random.default_rng(seed)``: priorities first, then the
            fill's ``choice``).

    Returns:
        ``(indices (B,) int64, gains (B,) float64)``: unlabelled indices in acquisition order
        and how many uncovered images each pick covered (0 for fill picks).
    """
    x = l2_normalise(features)
    n = x.shape[0]
    labeled = np.asarray(labeled_mask, dtype=bool)
    if delta is None:
        delta = probcover_radius(x, n_pseudo_classes, alpha, seed)
    graph = ball_graph(x, float(delta))
    rng = np.random.default_rng(seed)
    priority = rng.random(n)  # in [0, 1): below one image of coverage, so it only breaks ties
    uncovered = np.ones(n, dtype=np.float32)
    if labeled.any():
        uncovered[np.unique(graph[np.flatnonzero(labeled)].indices)] = 0.0
    free = ~labeled
    picked: list[int] = []
    gains: list[float] = []
    while len(picked) < budget:
        gain = np.asarray(graph @ uncovered, dtype=np.float64)
        score = np.where(free, gain + priority, -np.inf)
        i = int(np.argmax(score))
        if gain[i] <= 0:  # everything covered
            break
        picked.append(i)
        gains.append(float(gain[i]))
        free[i] = False
        uncovered[graph[i].indices] = 0.0
    rest = budget - len(picked)
    if rest:
        if fill == "random":
            extra = random_pick(~free, rest, rng)
        else:
            degree = np.asarray(graph.sum(axis=1), dtype=np.float64).ravel()
            extra = np.argsort(np.where(free, -(degree + priority), np.inf), kind="stable")[:rest]
        picked.extend(int(e) for e in extra)
        gains.extend([0.0] * rest)
    return np.asarray(picked, dtype=np.int64), np.asarray(gains, dtype=np.float64)
