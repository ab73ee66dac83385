"""Typicality and coverage acquisition for small label budgets, respecting the labelled set.

Hacohen et al. (2022, "Active learning on a budget: opposite strategies suit high and low
budgets") show that while labels are few, *typical* and *diverse* picks beat uncertain ones. These
strategies work on the view's features (L2-normalised, labelled and unlabelled images together)
and read the labelled mask, never the labels:

* ``typiclust`` (Hacohen et al. 2022, the active version of their Algorithm 1): K-means with
  ``K = min(|L| + B, max_clusters)`` on all images; clusters ordered by fewest labelled members,
  then largest (clusters of ``min_cluster_size`` or fewer images after all others); the budget
  cycles over that order and takes each cluster's most typical unlabelled image, typicality =
  1 / mean distance to the ``knn`` nearest unlabelled cluster mates (``min(knn, size // 2)``, as
  the authors' code).
* ``probcover`` (Yehuda et al. 2022): δ-balls on the normalised features, δ the purity radius for
  ``alpha`` with K-means pseudo-classes (K = C); every point within δ of a labelled image counts
  as covered; greedy maximum coverage of what is left (ties broken at random); once all is
  covered, random picks (``fill="random"``, the paper's; ``"degree"``: densest first).

Both are thin wrappers over :mod:`medactive.selection`, the implementation the cold-start
strategies of the same names use: with nothing labelled they pick the same images.
* ``cluster-top``: K-means with K = B on the pool, and from each cluster the image with the
  highest score of a wrapped score strategy (default ``margin``): uncertainty spread over the
  pool's modes, one pick per mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medactive.defaults import DEFAULT_SWITCH_PER_CLASS
from medactive.errors import StrategyError
from medactive.geometry import l2_normalise
from medactive.rng import seed_or_draw
from medactive.selection import (
    check_probcover_params,
    check_scalar,
    check_typiclust_params,
    kmeans,
    probcover_rank,
    typiclust_rank,
)
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    checked_strategy,
    get_strategy,
    register_strategy,
)


@register_strategy("typiclust")
class TypiClust(Strategy):
    """TypiClust for acquisition rounds (module docstring):
    :func:`medactive.selection.typiclust_rank` on the view's features and labelled mask, the
    implementation the cold start uses too. Scores are the picks' typicality.

    Args:
        knn: neighbours for typicality (20). max_clusters: cap on K (500).
        min_cluster_size: clusters of at most this many images are used last (5).
        seed: K-means seed (None: drawn from the round's rng).
    """

    def __init__(self, knn: int = 20, max_clusters: int = 500, min_cluster_size: int = 5,
                 seed: int | None = None) -> None:
        self.knn = knn
        self.max_clusters = max_clusters
        self.min_cluster_size = min_cluster_size
        self.seed = seed

    def check_params(self) -> None:
        check_typiclust_params(self.knn, self.max_clusters, self.min_cluster_size)

    def rank(self, view: RoundView, budget: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        check_budget(view, budget)
        self.check_params()
        return typiclust_rank(view.features, view.labeled_mask, budget, knn=int(self.knn),
                              max_clusters=int(self.max_clusters),
                              min_cluster_size=int(self.min_cluster_size),
                              seed=seed_or_draw(self.seed, rng))


@register_strategy("probcover")
class ProbCover(Strategy):
    """ProbCover for acquisition rounds (module docstring):
    :func:`medactive.selection.probcover_rank` on the view's features and labelled mask, the
    implementation the cold start uses too. Scores are the coverage gains (0 for fill picks).

    Args:
        alpha: purity target of δ (0.95). delta: fixed radius (None: purity search).
        n_clusters: pseudo-classes of the purity search (None: the number of classes C; the
            cold start, which does not know C, defaults to the budget).
        seed: K-means seed, tie-breaks and fill (None: drawn from the round's rng).
        fill: budget left once everything is covered: ``"random"`` (the paper) or
            ``"degree"`` (densest images first).
    """

    def __init__(self, alpha: float = 0.95, delta: float | None = None,
                 n_clusters: int | None = None, seed: int | None = None,
                 fill: str = "random") -> None:
        self.alpha = alpha
        self.delta = delta
        self.n_clusters = n_clusters
        self.seed = seed
        self.fill = fill

    def check_params(self) -> None:
        check_probcover_params(self.alpha, self.delta, self.fill, self.n_clusters)

    def rank(self, view: RoundView, budget: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        check_budget(view, budget)
        self.check_params()
        return probcover_rank(
            view.features, view.labeled_mask, budget,
            n_pseudo_classes=int(self.n_clusters or view.n_classes), alpha=float(self.alpha),
            delta=None if self.delta is None else float(self.delta), fill=self.fill,
            seed=seed_or_draw(self.seed, rng))


@register_strategy("cluster-top")
class ClusterTop(Strategy):
    """One pick per K-means cluster (K = budget) of the pool: the member with the highest score
    of the wrapped score strategy.

    Args:
        strategy: registered score strategy (default ``"margin"``).
        strategy_params: its keyword arguments.
        seed: K-means seed (None: drawn from the round's rng).

    Returns the picks in decreasing score order, with their scores.
    """

    def __init__(self, strategy: str = "margin", strategy_params: dict[str, Any] | None = None,
                 seed: int | None = None) -> None:
        self.strategy = strategy
        self.strategy_params = strategy_params
        self.seed = seed

    def check_params(self) -> None:
        inner = checked_strategy(self.strategy, **(self.strategy_params or {}))
        if not isinstance(inner, ScoreStrategy):
            raise StrategyError(f"cluster-top needs a score strategy, not {self.strategy!r}")

    def rank(self, view: RoundView, budget: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray]:
        check_budget(view, budget)
        self.check_params()
        inner = get_strategy(self.strategy, **(self.strategy_params or {}))
        assert isinstance(inner, ScoreStrategy)
        seed = seed_or_draw(self.seed, rng)
        scores = np.asarray(inner.score(view, rng), np.float64)
        clusters, _ = kmeans(l2_normalise(view.pool_features), budget, seed)
        best = np.full(int(clusters.max()) + 1, -1, np.int64)
        for pos in np.lexsort((-scores, clusters)):  # by cluster, best score first
            if best[clusters[pos]] < 0:
                best[clusters[pos]] = pos
        chosen = best[best >= 0]
        if chosen.size < budget:  # K-means returned fewer clusters (duplicate points)
            rest = np.argsort(-scores, kind="stable")
            rest = rest[~np.isin(rest, chosen)]
            chosen = np.concatenate([chosen, rest[: budget - chosen.size]])
        chosen = chosen[np.argsort(-scores[chosen], kind="stable")]
        return view.pool_indices[chosen], scores[chosen]


@register_strategy("cluster-margin")
class ClusterMargin(ClusterTop):
    """:class:`ClusterTop` around ``margin`` (its default) under a name that says so: one pick
    per K-means cluster (K = B) of the pool, the cluster's smallest-margin image. The
    recommended acquisition default for small label budgets (docs/results.md, "Acquisition
    defaults")."""


@register_strategy("switch")
class BudgetSwitch(Strategy):
    """One strategy while labels are scarce, another once every class could have ``per_class``
    labels: ``low`` while ``|L| < per_class · C``, else ``high``.

    Hacohen et al. (2022) find typicality best at low budgets and uncertainty best at high ones;
    TypiClust then Margin is the combination of Doucet et al. (2024, "TCM"). The switch is
    counted in labels per class so it means the same for any number of classes.

    Args:
        low: strategy for the scarce regime (default ``"typiclust"``).
        high: strategy afterwards (default ``"margin"``).
        per_class: labels per class at which to switch (default 10).
        low_params, high_params: their keyword arguments.
    """

    def __init__(self, low: str = "typiclust", high: str = "margin", per_class: float = 10,
                 low_params: dict[str, Any] | None = None,
                 high_params: dict[str, Any] | None = None) -> None:
        self.low = low
        self.high = high
        self.per_class = per_class
        self.low_params = low_params
        self.high_params = high_params

    def check_params(self) -> None:
        if "switch" in (self.low, self.high):
            raise StrategyError("switch cannot wrap itself")
        check_scalar(self.per_class, "per_class", float, min_val=0.0)
        checked_strategy(self.low, **(self.low_params or {}))
        checked_strategy(self.high, **(self.high_params or {}))

    def active(self, view: RoundView) -> tuple[str, dict[str, Any]]:
        """The strategy name and parameters this round uses."""
        if int(view.labeled_mask.sum()) < float(self.per_class) * view.n_classes:
            return self.low, dict(self.low_params or {})
        return self.high, dict(self.high_params or {})

    def rank(self, view: RoundView, budget: int, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray | None]:
        check_budget(view, budget)
        self.check_params()
        name, params = self.active(view)
        return get_strategy(name, **params).rank(view, budget, rng)


@register_strategy("typiclust-margin")
class TypiClustThenMargin(BudgetSwitch):
    """:class:`BudgetSwitch` with its defaults — TypiClust while there are fewer than 10 labels
    per class, Margin afterwards (Doucet et al.'s "TCM") — under a name that says so. The best
    tiny-budget choice on long-tailed data with a random start (docs/results.md)."""


@register_strategy("cluster-margin-then-margin")
class ClusterMarginThenMargin(BudgetSwitch):
    """medactive's default acquisition: Cluster-Margin (one least-certain image per K-means
    cluster of the pool, K = batch) while labels are scarce, plain Margin once every class could
    hold ``per_class`` labels.

    Cluster-Margin was at or above random in 30 of 32 tiny-budget rounds measured; at a 10 %
    start Margin was (docs/results.md "Acquisition defaults"). Neither has a parameter fitted to
    one dataset, and the switch is counted in labels per class, so it means the same for any
    number of classes.

    Args:
        low, high, per_class, low_params, high_params: as :class:`BudgetSwitch`.
    """

    def __init__(self, low: str = "cluster-margin", high: str = "margin",
                 per_class: float = DEFAULT_SWITCH_PER_CLASS,
                 low_params: dict[str, Any] | None = None,
                 high_params: dict[str, Any] | None = None) -> None:
        super().__init__(low, high, per_class, low_params, high_params)
