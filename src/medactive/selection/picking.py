"""Round-robin over clusters and random picking: the two ways every clustered or random
strategy turns groups into a ranked batch (cold start and acquisition alike)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medactive.errors import StrategyError


def cycle_groups(order: Sequence[int], budget: int, take: Callable[[int], int | None]) -> list[int]:
    """Visit the groups in ``order`` again and again, one ``take(group)`` per visit, until
    ``budget`` items are taken or every group is exhausted.

    Args:
        order: group ids in visiting order (each pass follows it).
        budget: how many items to take at most.
        take: the next item of a group, or ``None`` once the group has nothing left (it is then
            never visited again). Called in visiting order, so it may depend on earlier picks
            (TypiClust recomputes a cluster's typicality without its picked members).

    Returns:
        The taken items in order; fewer than ``budget`` only when every group ran out.
    """
    live = [int(g) for g in order]
    out: list[int] = []
    while live and len(out) < budget:
        still = []
        for g in live:
            if len(out) == budget:
                still.append(g)
                continue
            item = take(g)
            if item is not None:
                out.append(int(item))
                still.append(g)
        live = still
    return out


def round_robin(groups: Sequence[np.ndarray], budget: int, order: np.ndarray) -> np.ndarray:
    """One item per group per pass, groups visited in ``order``, until ``budget`` items.

    Args:
        groups: per-group item arrays, each already sorted best-first.
        budget: how many to take in total (at most the total group size).
        order: permutation of ``range(len(groups))``: the visiting order of every pass.

    Returns:
        ``(budget,)`` int64 items: pass ``r`` takes the ``r``-th item of every group that still
        has one, so a group that runs out drops out and the rest of the budget spreads over the
        others.

    Raises:
        StrategyError: ``budget`` exceeds the items of all groups together.
    """
    depth = [0] * len(groups)

    def take(g: int) -> int | None:
        if depth[g] >= len(groups[g]):
            return None
        depth[g] += 1
        return int(groups[g][depth[g] - 1])

    out = cycle_groups(np.asarray(order).tolist(), budget, take)
    if len(out) < budget:
        raise StrategyError(f"budget {budget} exceeds the {len(out)} items available")
    return np.asarray(out, dtype=np.int64)


def interleave_groups(groups: np.ndarray, budget: int) -> np.ndarray:
    """Positions of ``budget`` items of a ranked list, taken round-robin over their groups.

    Args:
        groups: ``(M,)`` group of each item of a list already sorted most-wanted first.
        budget: how many to take, ``<= M``.

    Returns:
        ``(budget,)`` int64 positions into that list: :func:`round_robin` with each group in
        list order and the groups visited in the order of their best item, so the result is as
        balanced as the groups allow.
    """
    queues: dict[Any, list[int]] = {}
    for pos, g in enumerate(np.asarray(groups).tolist()):
        queues.setdefault(g, []).append(pos)  # dicts keep first-seen (= best-item) order
    lists = [np.asarray(q, dtype=np.int64) for q in queues.values()]
    return round_robin(lists, budget, np.arange(len(lists)))


def random_pick(labeled_mask: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """``budget`` distinct unlabelled positions drawn uniformly without replacement.

    Args:
        labeled_mask: ``(N,)`` bool, True where labelled (all False at cold start).
        budget: how many, at most the number of unlabelled positions.
        rng: the only source of randomness.

    Returns:
        ``(budget,)`` int64 positions, in draw order: ``rng.choice`` over the unlabelled
        positions in ascending order (with nothing labelled, the same draw as
        ``rng.choice(N, budget, replace=False)``).
    """
    free = np.flatnonzero(~np.asarray(labeled_mask, dtype=bool))
    return rng.choice(free, size=budget, replace=False).astype(np.int64)
