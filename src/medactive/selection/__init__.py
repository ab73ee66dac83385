"""Label-free selection shared by the cold start and the acquisition rounds: one implementation
each of K-means (memoised), TypiClust, ProbCover, round-robin over clusters, random picking and
the budget / parameter checks.

Every selection takes a ``(N,)`` labelled mask; the cold start is the all-False mask, so the
cold-start strategies (:mod:`medactive.coldstart`) and the acquisition strategies
(:mod:`medactive.strategies`) are thin wrappers that pick the same images when nothing is
labelled. The few intended differences are named parameters (docs/strategies.md, "One
implementation").
"""

from medactive.selection.checks import check_budget, check_choice, check_scalar
from medactive.selection.clustering import clear_kmeans_cache, kmeans
from medactive.selection.picking import cycle_groups, interleave_groups, random_pick, round_robin
from medactive.selection.probcover import (
    FILLS,
    check_probcover_params,
    probcover_radius,
    probcover_rank,
)
from medactive.selection.typiclust import check_typiclust_params, typiclust_rank

__all__ = [
    "FILLS",
    "check_budget",
    "check_choice",
    "check_probcover_params",
    "check_scalar",
    "check_typiclust_params",
    "clear_kmeans_cache",
    "cycle_groups",
    "interleave_groups",
    "kmeans",
    "probcover_radius",
    "probcover_rank",
    "random_pick",
    "round_robin",
    "typiclust_rank",
]
