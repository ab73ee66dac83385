"""Acquisition strategies: a registry of small objects scoring cached per-round arrays.

Importing this package registers every built-in strategy (one module per family).
"""

from medactive.defaults import DEFAULT_ACQUISITION
from medactive.strategies import (  # noqa: F401  (importing registers the strategies)
    badge,
    consistency,
    coreset,
    diversity,
    epig,
    infogain,
    mcdropout,
    typical,
    uncertainty,
    vaal,
)
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    checked_strategy,
    get_strategy,
    iter_pool_chunks,
    list_strategies,
    register_strategy,
    top_k_with_random_ties,
)
from medactive.strategies.health import SelectionHealth, selection_health
from medactive.strategies.infogain import info_gain_scores
from medactive.strategies.reference import info_gain_scores_reference
from medactive.strategies.view import build_round_view

__all__ = [
    "DEFAULT_ACQUISITION",
    "RoundView",
    "ScoreStrategy",
    "SelectionHealth",
    "Strategy",
    "build_round_view",
    "check_budget",
    "checked_strategy",
    "get_strategy",
    "info_gain_scores",
    "info_gain_scores_reference",
    "iter_pool_chunks",
    "list_strategies",
    "register_strategy",
    "selection_health",
    "top_k_with_random_ties",
]
