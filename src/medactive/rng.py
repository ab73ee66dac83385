"""Seeds for components that take ``seed=None`` to mean "draw one from the round's generator"."""

from __future__ import annotations

import numpy as np

#: Seeds are drawn from ``[0, SEED_BOUND)`` (fits every library's 32-bit seed argument).
SEED_BOUND = 2**31 - 1


def seed_or_draw(seed: int | None, rng: np.random.Generator | None) -> int:
    """``seed`` when given; else one integer drawn from ``rng``; else 0.

    Why one helper: strategies, cold-start strategies and the diversity wrapper all let a fixed
    ``seed`` parameter override the round's generator, and must consume the generator in exactly
    the same way so seeded runs stay reproducible across them.
    """
    if seed is not None:
        return int(seed)
    return 0 if rng is None else int(rng.integers(SEED_BOUND))
