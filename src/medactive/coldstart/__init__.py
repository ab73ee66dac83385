"""Cold start: choose the first images to label with zero labels (HaCon and baselines).

The interface and registry live in :mod:`~medactive.coldstart.base`; label-free selection in
:mod:`~.hacon` and :mod:`~.strategies` (TypiClust and ProbCover are the shared
:mod:`medactive.selection` with nothing labelled); ground-truth analyses apart in
:mod:`~.simulation`. :mod:`~.pipeline` is the one "pre-train (cached), then select" sequence used
by the CLI, the labelling project and the experiment runner.
"""

from medactive.coldstart import simulation, strategies  # noqa: F401  (importing registers them)
from medactive.coldstart.base import (
    ColdStartStrategy,
    ColdStartView,
    checked_coldstart_strategy,
    get_coldstart_strategy,
    list_coldstart_strategies,
    register_coldstart_strategy,
)
from medactive.coldstart.hacon import hacon_select, kmeans, l2_normalise
from medactive.defaults import DEFAULT_COLDSTART

__all__ = [
    "DEFAULT_COLDSTART",
    "ColdStartStrategy",
    "ColdStartView",
    "checked_coldstart_strategy",
    "get_coldstart_strategy",
    "hacon_select",
    "kmeans",
    "l2_normalise",
    "list_coldstart_strategies",
    "register_coldstart_strategy",
]
