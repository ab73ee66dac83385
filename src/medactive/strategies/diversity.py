"""Label-diversity wrapper (the cold-start paper's "Unif." rows): a balanced version of any
strategy, filling the budget round-robin over groups of the pool."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans

from medactive.errors import StrategyError
from medactive.rng import seed_or_draw
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


def interleave_groups(groups: np.ndarray, budget: int) -> np.ndarray:
    """Positions of ``budget`` items taken cycling over groups, each group in position order.

    Args:
        groups: ``(M,)`` group of each item of a list already sorted most-wanted first.
        budget: how many to take, ``<= M``.

    Returns:
        ``(budget,)`` int64 positions into that list. Groups are visited in the order of their
        best item; an exhausted group is skipped, so the result is as balanced as the groups
        allow.
    """
    queues: dict[Any, list[int]] = {}
    for pos, g in enumerate(groups):
        queues.setdefault(g, []).append(pos)  # dicts keep first-seen (= best-item) order
    taken: list[int] = []
    cursor = dict.fromkeys(queues, 0)
    while len(taken) < budget:
        for g, q in queues.items():
            if cursor[g] < len(q) and len(taken) < budget:
                taken.append(q[cursor[g]])
                cursor[g] += 1
    return np.array(taken, dtype=np.int64)


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
        if k < 1:
            raise StrategyError(f"n_groups must be >= 1, got {self.n_groups!r}")
        k = min(k, idx.size)
        seed = seed_or_draw(self.seed, rng)
        feats = view.features[idx]
        # Full K-means is fine for ordinary pools; mini-batch keeps huge ones tractable.
        if idx.size > 50_000:
            model = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096)
        else:
            model = KMeans(k, random_state=seed, n_init=3)
        return model.fit_predict(feats)

    def check_params(self) -> None:
        if self.groups not in GROUPINGS:
            raise StrategyError(f"groups must be one of {GROUPINGS}, got {self.groups!r}")
        if self.strategy == "diversity":
            raise StrategyError("diversity cannot wrap itself")
        if self.n_groups is not None and (
            not isinstance(self.n_groups, (int, np.integer)) or self.n_groups < 1
        ):
            raise StrategyError(f"n_groups must be a positive integer, got {self.n_groups!r}")
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
