"""The one parameter check (scikit-activeml's check_scalar shape) and the one budget check."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError, StrategyError
from medactive.selection import check_budget, check_choice, check_scalar


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.int32(1)])
def test_integers_pass(value) -> None:
    check_scalar(value, "knn", int, min_val=1)


@pytest.mark.parametrize(("value", "message"), [
    (True, "knn must be an integer >= 1, got True"),
    (np.bool_(True), "knn must be an integer >= 1"),
    (0, "knn must be an integer >= 1, got 0"),
    (2.0, "knn must be an integer >= 1, got 2.0"),
    ("3", "knn must be an integer >= 1, got '3'"),
    (None, "knn must be an integer >= 1, got None"),
])
def test_integers_refused(value, message) -> None:
    with pytest.raises(StrategyError) as info:
        check_scalar(value, "knn", int, min_val=1)
    assert str(info.value).startswith(message)


def test_numbers_bounds_and_none() -> None:
    check_scalar(0.5, "alpha", float, min_val=0.0, max_val=1.0, min_inclusive=False)
    check_scalar(1, "alpha", float, min_val=0.0, max_val=1.0, min_inclusive=False)
    check_scalar(np.float32(0.2), "alpha", float, min_val=0.0, max_val=1.0)
    check_scalar(None, "delta", float, min_val=0.0, allow_none=True)
    for bad in (0.0, 1.5, float("nan"), float("inf"), False):
        with pytest.raises(StrategyError, match=r"alpha must be a number in \(0, 1\]"):
            check_scalar(bad, "alpha", float, min_val=0.0, max_val=1.0, min_inclusive=False)
    with pytest.raises(StrategyError, match=r"delta must be a number > 0 or None, got -1"):
        check_scalar(-1, "delta", float, min_val=0.0, min_inclusive=False, allow_none=True)
    with pytest.raises(ConfigError, match="epochs must be an integer <= 5"):
        check_scalar(9, "epochs", int, max_val=5, error=ConfigError)


def test_choice() -> None:
    check_choice("random", "fill", ("random", "degree"))
    with pytest.raises(StrategyError, match="fill must be one of 'random', 'degree', got 'rand'"):
        check_choice("rand", "fill", ("random", "degree"))
    with pytest.raises(StrategyError, match="order"):
        check_choice(1, "order", (True, "farthest"))  # 1 == True, but 1 is not the choice True


def test_budget() -> None:
    check_budget(5, 5)
    check_budget(np.int64(1), 5, "unlabelled pool")
    for bad in (True, 0, -1, 2.0, None):
        with pytest.raises(StrategyError, match="budget must be an integer >= 1"):
            check_budget(bad, 5)
    with pytest.raises(StrategyError, match=r"budget 6 is larger than the unlabelled pool: it "
                                            r"must be between 1 and the unlabelled pool size \(5\)"):
        check_budget(6, 5, "unlabelled pool")


def test_both_registries_refuse_a_boolean_budget() -> None:
    """The acquisition check used to let ``True`` through as a budget of 1."""
    from medactive.coldstart import ColdStartView, get_coldstart_strategy
    from medactive.strategies import RoundView, get_strategy

    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    acquisition = RoundView(features=x, labeled_mask=np.zeros(20, bool), labels=np.full(20, -1),
                            weight=np.ones((2, 3), np.float32), bias=np.zeros(2, np.float32))
    for name in ("random", "typiclust", "probcover", "margin"):
        with pytest.raises(StrategyError, match="budget must be an integer"):
            get_strategy(name).rank(acquisition, True, np.random.default_rng(0))
    for name in ("random", "typiclust", "probcover", "kmeans-centroid"):
        with pytest.raises(StrategyError, match="budget must be an integer"):
            get_coldstart_strategy(name).rank(ColdStartView(x), True, np.random.default_rng(0))
