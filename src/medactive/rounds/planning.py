"""How a round's budget is split (pure functions of arrays; :func:`medactive.rounds.loop.plan_round` runs
them): a uniformly random validation draw, second reads where the model disagrees with a single
reader, and the strategy's own picks for the rest.
"""

from __future__ import annotations

import math

import numpy as np

from medactive.errors import StrategyError

#: Validation labels wanted per class, "when possible" (fewer only when a class is that rare).
MIN_VALIDATION_PER_CLASS = 2


def validation_draw_size(budget: int, share: float, validation_counts: np.ndarray) -> int:
    """How many of ``budget`` images to draw uniformly at random for the validation sample.

    ``round(share * budget)`` (at least 1 when ``share > 0``); while some class has fewer than
    :data:`MIN_VALIDATION_PER_CLASS` validation labels, the draw grows by the number of missing
    labels (a random draw cannot target a class, but a larger one reaches a rare class sooner).
    Never more than half the budget: the strategy keeps the larger part.

    Args:
        budget: the round's budget.
        share: the validation share (0 turns the sample off).
        validation_counts: ``(C,)`` validation labels per class so far.
    """
    if share <= 0 or budget < 2:
        return 0
    base = max(1, round(share * budget))
    missing = int(np.sum(np.maximum(0, MIN_VALIDATION_PER_CLASS - np.asarray(validation_counts))))
    return int(min(max(base, missing), budget // 2))


def draw_uniform(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` distinct positions drawn uniformly at random from ``pool`` (sorted)."""
    if n > pool.size:
        raise StrategyError(f"cannot draw {n} validation images from a pool of {pool.size}")
    return np.sort(rng.choice(pool, size=n, replace=False)).astype(np.int64)


def second_read_candidates(probs: np.ndarray, reader_labels: np.ndarray) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """Single-read images where the model disagrees with the reader, most doubtful first.

    The score is how much more probability the model puts on its own top class than on the
    reader's: ``p_top - p_reader`` (> 0 exactly when the model's prediction differs). Like
    cleanlab's ActiveLab, it uses the model's confidence against the one label given; unlike
    it, the share of the budget spent on second reads is a project setting, so the strategy's
    own scores keep ranking the new images.

    Args:
        probs: ``(M, C)`` the round model's probabilities on the single-read images.
        reader_labels: ``(M,)`` the class each one was given.

    Returns:
        ``(positions, scores)``: positions in ``probs`` with a disagreement, by descending score.
    """
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(reader_labels, np.int64)
    if probs.shape[0] == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    score = probs.max(axis=1) - probs[np.arange(labels.size), labels]
    disagree = np.flatnonzero(probs.argmax(axis=1) != labels)
    order = disagree[np.argsort(-score[disagree], kind="stable")]
    return order.astype(np.int64), score[order]


def second_read_size(budget: int, share: float) -> int:
    """Most second reads a round asks for: ``floor(share * budget)``."""
    return math.floor(share * budget) if share > 0 else 0


def interleave(acquired: list[int], extra: list[int], rng: np.random.Generator) -> list[int]:
    """``acquired`` in order with ``extra`` at random positions (a reader cannot tell a
    validation draw or a second read from the strategy's picks by its place in the queue, and
    one who stops early has labelled some of each)."""
    total = len(acquired) + len(extra)
    slots = set(rng.choice(total, size=len(extra), replace=False).tolist()) if extra else set()
    a, e, out = iter(acquired), iter(extra), []
    for k in range(total):
        out.append(next(e) if k in slots else next(a))
    return out
