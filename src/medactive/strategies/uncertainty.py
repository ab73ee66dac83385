"""Random sampling and the classic single-model uncertainty scores (least confidence, margin,
entropy), all computed from the cached head probabilities ``view.pool_probabilities``."""

from __future__ import annotations

import numpy as np
from scipy.special import entr

from medactive.selection import random_pick
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    register_strategy,
)


def entropy_rows(proba: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats of each row of ``(N, C)`` probabilities; ``0 log 0 = 0``."""
    return entr(np.asarray(proba, dtype=np.float64)).sum(axis=1)


@register_strategy("random")
class RandomSampling(Strategy):
    """Uniformly random pool images (the usual baseline); only the round's ``rng`` decides.
    The same draw as the cold start's ``random`` (:func:`medactive.selection.random_pick`)."""

    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, None]:
        check_budget(view, budget)
        return random_pick(view.labeled_mask, budget, rng), None


@register_strategy("least-confidence")
class LeastConfidence(ScoreStrategy):
    """Score ``1 - max_c p(c|x)``: images whose top class is least certain come first."""

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        return 1.0 - view.pool_probabilities.max(axis=1)


@register_strategy("margin")
class Margin(ScoreStrategy):
    """Score ``-(p_(1) - p_(2))``: smallest gap between the two most likely classes first."""

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        # partition is O(C) per row; the two largest end up in the last two columns.
        top2 = np.partition(view.pool_probabilities, -2, axis=1)[:, -2:]
        return -(top2[:, 1] - top2[:, 0])


@register_strategy("entropy")
class Entropy(ScoreStrategy):
    """Score = predictive entropy ``-sum_c p log p`` (nats) of the deterministic head."""

    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        return entropy_rows(view.pool_probabilities)
