"""Acquisition strategies: a registry of small objects scoring cached per-round arrays."""

from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    get_strategy,
    list_strategies,
    register_strategy,
    top_k_with_random_ties,
)

__all__ = [
    "RoundView",
    "ScoreStrategy",
    "Strategy",
    "check_budget",
    "get_strategy",
    "list_strategies",
    "register_strategy",
    "top_k_with_random_ties",
]
