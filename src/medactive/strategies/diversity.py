"""Label-diversity wrapper (the cold-start paper's "Unif." rows): a balanced version of any
strategy, filling the budget round-robin over groups of the pool (the shared
:func:`medactive.selection.interleave_groups` and memoised :func:`medactive.selection.kmeans`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medactive.errors import StrategyError
from medactive.rng import seed_or_draw
from medactive.selection import check_choice, check_scalar, interleave_groups, kmeans
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    checked_strategy,
    get_strategy,
    register_strategy,
)

GROUPINGS = ("kmeans", "true")


@register_strategy("diversity")
class ClusterDiversity(Strategy):
    """Wrap ``strategy`` and balance its picks over groups of the pool.

    Args:
        strategy: registered name of the wrapped strategy (default ``"entropy"``).
        groups: ``"kmeans"`` — K-means pseudo-labels on the penultimate features (label-free);
            ``"true"`` — the ground-truth classes, **simulation only** (``view.true_labels``).
        n_groups: K-means clusters (default: number of classes C).
        strategy_params: keyword arguments of the wrapped strategy.
        seed: K-means seed (None: drawn from the round's rng).

    The wrapped strategy's order is its ranking of ``min(pool, budget × groups)`` images (the
    whole pool for score strategies, whose ranking is free once scored); the scores returned are
    the wrapped strategy's scores of the picks.
    """

    def __init__(
        self,
        strategy: str = "entropy",
        groups: str = "kmeans",
        n_groups: int | None = None,
        strategy_params: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        self.strategy = strategy
        self.groups = groups
        self.n_groups = n_groups
        self.strategy_params = strategy_params
        self.seed = seed

    def _group_labels(self, view: RoundView, rng: np.random.Generator) -> np.ndarray:
        idx = view.pool_indices
        if self.groups == "true":
            if view.true_labels is None:
                raise StrategyError(
                    "diversity with groups='true' needs view.true_labels (simulation only)"
                )
            return np.asarray(view.true_labels)[idx]
        k = view.n_classes if self.n_groups is None else int(self.n_groups)
        return kmeans(view.features[idx], k, seed_or_draw(self.seed, rng))[0]

    def check_params(self) -> None:
        check_choice(self.groups, "groups", GROUPINGS)
        if self.strategy == "diversity":
            raise StrategyError("diversity cannot wrap itself")
        check_scalar(self.n_groups, "n_groups", int, min_val=1, allow_none=True)
        checked_strategy(self.strategy, **(self.strategy_params or {}))  # the wrapped one's

    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        check_budget(view, budget)
        self.check_params()
        inner = get_strategy(self.strategy, **(self.strategy_params or {}))
        labels = self._group_labels(view, rng)
        n_pool = view.pool_indices.size
        # A score strategy's full ranking costs nothing more than its top-B; other strategies
        # are asked for enough candidates to fill every group.
        wanted = n_pool if isinstance(inner, ScoreStrategy) else min(
            n_pool, budget * np.unique(labels).size)
        order, scores = inner.rank(view, wanted, rng)
        positions = np.searchsorted(view.pool_indices, order)
        taken = interleave_groups(labels[positions], budget)
        return order[taken], None if scores is None else scores[taken]
