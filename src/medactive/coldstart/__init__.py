"""Cold start: choose the first images to label with zero labels (HaCon and baselines).

Label-free selection lives in :mod:`~medactive.coldstart.hacon`, :mod:`~.strategies` and
:mod:`~.baselines`; ground-truth analyses are kept apart in :mod:`~.simulation`.
"""

from medactive.coldstart.hacon import ColdStartView, hacon_select, kmeans, l2_normalise
from medactive.coldstart.strategies import (
    ColdStartStrategy,
    get_coldstart_strategy,
    list_coldstart_strategies,
    register_coldstart_strategy,
)

__all__ = [
    "ColdStartStrategy",
    "ColdStartView",
    "get_coldstart_strategy",
    "hacon_select",
    "kmeans",
    "l2_normalise",
    "list_coldstart_strategies",
    "register_coldstart_strategy",
]
