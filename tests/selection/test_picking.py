"""Round-robin over groups and random picking, the shared building blocks."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import StrategyError
from medactive.selection import cycle_groups, interleave_groups, random_pick, round_robin


def test_cycle_groups_drops_exhausted_groups_and_sees_earlier_picks() -> None:
    stock = {0: [1, 2, 3], 1: [7], 2: [4, 5]}
    seen: list[int] = []

    def take(g: int) -> int | None:
        if not stock[g]:
            return None
        seen.append(g)
        return stock[g].pop(0)

    assert cycle_groups([1, 0, 2], 10, take) == [7, 1, 4, 2, 5, 3]  # fewer: every group ran out
    assert seen == [1, 0, 2, 0, 2, 0]
    assert cycle_groups([0], 0, take) == []


def test_round_robin_raises_when_the_groups_run_out() -> None:
    groups = [np.array([1, 2, 3]), np.array([7]), np.array([4, 5])]
    np.testing.assert_array_equal(round_robin(groups, 6, np.array([1, 0, 2])), [7, 1, 4, 2, 5, 3])
    with pytest.raises(StrategyError, match="budget 7 exceeds the 6 items"):
        round_robin(groups, 7, np.array([1, 0, 2]))


def test_interleave_groups_refuses_more_than_the_list() -> None:
    """It looped forever before it was built on round_robin."""
    np.testing.assert_array_equal(interleave_groups(np.array([2, 2, 5]), 3), [0, 2, 1])
    with pytest.raises(StrategyError, match="exceeds"):
        interleave_groups(np.array([2, 2, 5]), 4)


def test_random_pick_is_rng_choice_over_the_unlabelled() -> None:
    nothing = np.zeros(50, bool)
    a = random_pick(nothing, 10, np.random.default_rng(3))
    np.testing.assert_array_equal(a, np.random.default_rng(3).choice(50, 10, replace=False))
    mask = np.zeros(50, bool)
    mask[::2] = True
    b = random_pick(mask, 25, np.random.default_rng(3))
    assert b.dtype == np.int64 and sorted(b.tolist()) == list(range(1, 50, 2))
