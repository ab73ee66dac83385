"""Whether a next round may start: the one check of a query request, run before any job exists.

``medactive project query`` (in :func:`~medactive.annotate.query.run_query`, before it records a
job) and the page's **Next round** button (in the ``/api/next-round`` route, before it starts
one) both call :func:`check_round_request`, so a typo is refused the same way from both places,
in milliseconds, and no reader's page ever shows a failed job for it:

1. the budget: a positive whole number, at most the unanswered pool (images without an answer:
   what a query may pick from);
2. the strategy: looked up in the cold-start registry while the project has no training label,
   in the acquisition registry afterwards, with every parameter checked; unknown names list the
   known ones;
3. the open round: a round whose images still need an answer is not abandoned silently. Without
   ``force`` the request is refused with :class:`OpenRoundError`, naming how many; with it, the
   new round closes the old one, and the old one's progress at that moment is recorded with the
   new round (:meth:`~medactive.annotate.rounds.RoundRecords.add_round`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medactive.annotate.consensus import decisions
from medactive.annotate.rounds import RoundProgress
from medactive.annotate.settings import load_settings, trains_on_validation_labels
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import MedactiveError, StrategyError


class OpenRoundError(MedactiveError):
    """The latest round still has images without an answer, and the request did not say
    ``force``. ``progress`` says how many."""

    def __init__(self, message: str, progress: RoundProgress) -> None:
        super().__init__(message)
        self.progress = progress


@dataclass(frozen=True)
class RoundPlan:
    """What the next round would be: its strategy (the one named, or the default), whether it
    is a cold start (no training label yet), and how many images it may pick from."""

    strategy: str
    cold_start: bool
    pool: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dict(self.__dict__)


def next_round_plan(store: Any, strategy: str | None = None) -> RoundPlan:
    """The :class:`RoundPlan` of a query now (nothing is checked but counted).

    The pool is what ``query`` picks from: registered images with no answer (an ``unsure`` is an
    answer; an answered validation image has one). A query runs only when the latest round is
    complete or being closed (``--force``), so an unanswered validation draw returns to the pool
    with that round's other unanswered images. A cold start is a project without a label
    that can train the classifier (with ``validation_mode`` ``holdout`` a validation label never
    does; with ``crossfit`` it does).
    """
    decided = decisions(store)
    validation = store.validation_ids()
    # decisions leave removed images out, so a count query suffices (the page asks on every
    # answer: no list of every image)
    pool = store.n_images() - len(decided)
    # the round engine's rule (medactive.rounds.is_cold): a cold start while no label can train
    # the classifier; cross-fitting trains on the validation sample's labels too
    trains_on_validation = trains_on_validation_labels(load_settings(store))
    cold = not any(d.label is not None and (trains_on_validation or iid not in validation)
                   for iid, d in decided.items())
    name = strategy or (DEFAULT_COLDSTART if cold else DEFAULT_ACQUISITION)
    return RoundPlan(name, cold, pool)


def check_budget_value(budget: object) -> int:
    """``budget`` as an int, or :class:`StrategyError` unless it is a positive whole number."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise StrategyError(f"the budget must be a positive whole number of images, "
                            f"got {budget!r}")
    return budget


def check_round_request(store: Any, budget: object, strategy: str | None = None,
                        strategy_params: dict[str, Any] | None = None, *, force: bool = False,
                        seed: int = 0) -> RoundPlan:
    """Check a query request against the project in ``store``; returns its :class:`RoundPlan`.

    Args:
        budget: images the round asks for (validation draw and second reads included).
        strategy: a registered name, or None for the default (cold start or acquisition).
        strategy_params: keyword arguments of the strategy (checked too).
        force: close the latest round even though some of its images still need an answer.
        seed: the query's seed (a cold-start strategy with a ``seed`` parameter takes it).

    Raises:
        StrategyError: a budget that is not a positive whole number or is larger than the
            unanswered pool; an unknown strategy name (the message lists the known ones), a bad
            parameter, or a simulation-only strategy.
        OpenRoundError: without ``force``, the latest round still has open images.
    """
    budget = check_budget_value(budget)
    plan = next_round_plan(store, strategy)
    if budget > plan.pool:
        raise StrategyError(f"budget {budget} is larger than the {plan.pool} unanswered images")
    params = dict(strategy_params or {})
    # the defaults with their own parameters are registered (tests/annotate/test_round_guard.py
    # checks them): the page's button, which names none, spares its server importing every
    # strategy (torch: seconds on the first click)
    if strategy is not None or params:
        from medactive.coldstart.pipeline import ColdStartRequest, check_request
        from medactive.strategies import checked_strategy

        if plan.cold_start:
            check_request(ColdStartRequest(plan.strategy, params, budget, seed), plan.pool)
        else:
            checked_strategy(plan.strategy, **params)
    latest = store.latest_round_id()
    if latest is not None and not force:
        progress = store.round_progress(latest, load_settings(store).reads_per_image)
        if progress.open:
            raise OpenRoundError(
                f"round {latest} is still open: {progress.describe()}; answer them first, or "
                f"pass --force to close round {latest} without them and start a new round",
                progress)
    return plan
