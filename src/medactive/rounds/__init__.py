"""The round engine shared by the product, the experiment runner and the back-test.

:mod:`~.engine` fits a round's classifier, builds the strategies' view, ranks and checks;
:mod:`~.loop` is the labelling loop's round (validation sample, second reads, picks);
:mod:`~.pool` and :mod:`~.space` hold the encoded pool and the head's feature space;
:mod:`~.planning` the pure budget-splitting functions.
"""

from medactive.rounds.classifier import ClassifierConfig, FinetuneSettings, RoundModel
from medactive.rounds.engine import (
    EvaluationSet,
    RankedPicks,
    cold_start_round,
    fit_round,
    rank_round,
    round_seeds,
    round_view,
)
from medactive.rounds.loop import (
    LabelState,
    PlannedRound,
    ValidationEstimate,
    ValidationPolicy,
    check_round_request,
    is_cold,
    plan_round,
)
from medactive.rounds.pool import EncodedPool
from medactive.rounds.space import FeatureSpace

__all__ = [
    "ClassifierConfig",
    "EncodedPool",
    "EvaluationSet",
    "FeatureSpace",
    "FinetuneSettings",
    "LabelState",
    "PlannedRound",
    "RankedPicks",
    "RoundModel",
    "ValidationEstimate",
    "ValidationPolicy",
    "check_round_request",
    "cold_start_round",
    "fit_round",
    "is_cold",
    "plan_round",
    "rank_round",
    "round_seeds",
    "round_view",
]
