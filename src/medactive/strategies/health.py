"""Selection health: does a query look like a strategy gone wrong?

Literal AEIG once spent 122 of 160 acquisitions on confidently predicted lymphocytes (issue 10):
a failure visible *before* labelling, from the model's own predictions. This check compares the
batch with the pool it was drawn from, by predicted class and by confidence, and warns when

* **one predicted class takes over half the batch and more than twice its share of the pool**,
  and random sampling would give that many or more with probability < 1 % (binomial tail, so
  a batch of 4 with 3 of a common class is not flagged); or
* **nearly all picks are confident predictions**: at least 90 % of the batch has a top-class
  probability ≥ 0.9 *and* the batch is more confident than the pool (so a strategy that simply
  mirrors a well-trained model's confident pool is not flagged).

The thresholds are relative (shares, ratios, a tail probability, the pool's own confidence), not
tuned to a dataset: 0.9 top-class probability means "the model already knows" for any number of
classes, and every other bound compares the batch with what random sampling of the same pool gives.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import binom

from medactive.errors import StrategyError

#: A pick is "confident" when its top-class probability is at least this.
CONFIDENT_PROBABILITY = 0.9
#: "Nearly all picks": this share of the batch or more.
NEARLY_ALL = 0.9
#: "Takes over the batch": more than this share of the batch ...
DOMINANT_SHARE = 0.5
#: ... and more than this many times its share of the pool ...
OVER_REPRESENTATION = 2.0
#: ... and random sampling would produce it with less than this probability.
TAIL_PROBABILITY = 0.01


@dataclass
class SelectionHealth:
    """What a batch looks like to the model that chose it.

    Attributes:
        batch_mix: ``(C,)`` share of the batch per predicted class.
        pool_mix: ``(C,)`` share of the pool per predicted class.
        confident_share: share of the batch with top-class probability ≥ 0.9.
        pool_confident_share: the same over the pool.
        warnings: human-readable warnings (empty when healthy).
        class_names: names used by :meth:`describe` (not part of :meth:`as_dict`).
    """

    batch_mix: list[float]
    pool_mix: list[float]
    confident_share: float
    pool_confident_share: float
    warnings: list[str] = field(default_factory=list)
    class_names: list[str] | None = None

    @property
    def healthy(self) -> bool:
        """True when there is no warning."""
        return not self.warnings

    def as_dict(self) -> dict:
        """JSON-ready dict (shares rounded to 4 decimals)."""
        out = asdict(self)
        del out["class_names"]
        for key in ("batch_mix", "pool_mix"):
            out[key] = [round(v, 4) for v in out[key]]
        for key in ("confident_share", "pool_confident_share"):
            out[key] = round(out[key], 4)
        return out

    def describe(self) -> str:
        """One line for a terminal (the batch's predicted mix vs the pool's), plus one line per
        warning."""
        names = self.class_names or [str(c) for c in range(len(self.batch_mix))]
        order = np.argsort(self.batch_mix)[::-1]
        mix = ", ".join(f"{names[c]} {100 * self.batch_mix[c]:.0f}% (pool "
                        f"{100 * self.pool_mix[c]:.0f}%)" for c in order if self.batch_mix[c] > 0)
        text = (f"selection health: predicted classes {mix}; confident picks "
                f"{100 * self.confident_share:.0f}% (pool {100 * self.pool_confident_share:.0f}%)")
        return text + "".join(f"\nwarning: {w}" for w in self.warnings)


def selection_health(
    pool_probs: np.ndarray,
    picked_positions: np.ndarray,
    class_names: list[str] | None = None,
) -> SelectionHealth:
    """Check a batch against its pool (see the module docstring for the rules).

    Args:
        pool_probs: ``(N_pool, C)`` predicted probabilities of the pool the batch came from.
        picked_positions: ``(B,)`` positions of the picks in ``pool_probs`` (not training-set
            indices), distinct.
        class_names: optional names for the warnings (default: class indices).

    Returns:
        A :class:`SelectionHealth`.
    """
    probs = np.asarray(pool_probs, np.float64)
    picked = np.asarray(picked_positions, np.int64)
    if probs.ndim != 2 or probs.shape[0] == 0 or not np.all(np.isfinite(probs)):
        raise StrategyError(f"selection health: pool probabilities must be a finite (N, C) "
                            f"array, got shape {probs.shape}")
    n, c = probs.shape
    if picked.ndim != 1 or picked.size == 0 or picked.min() < 0 or picked.max() >= n:
        raise StrategyError(f"selection health: picked positions must be in [0, {n})")
    names = class_names or [str(k) for k in range(c)]
    predicted = probs.argmax(axis=1)
    confident = probs.max(axis=1) >= CONFIDENT_PROBABILITY
    b = picked.size
    batch_counts = np.bincount(predicted[picked], minlength=c)
    pool_mix = np.bincount(predicted, minlength=c) / n
    batch_mix = batch_counts / b
    conf_batch = float(confident[picked].mean())
    conf_pool = float(confident.mean())
    warnings = []
    top = int(np.argmax(batch_counts))
    share, pool_share = float(batch_mix[top]), float(pool_mix[top])
    tail = float(binom.sf(batch_counts[top] - 1, b, pool_share))  # P(count >= observed)
    if share > DOMINANT_SHARE and share > OVER_REPRESENTATION * pool_share and \
            tail < TAIL_PROBABILITY:
        warnings.append(
            f"predicted class {names[top]!r} takes {100 * share:.0f}% of the batch but "
            f"{100 * pool_share:.0f}% of the pool ({share / max(pool_share, 1e-12):.1f}x): the "
            "strategy may be locked onto one class")
    if conf_batch >= NEARLY_ALL and conf_batch > conf_pool:
        warnings.append(
            f"{100 * conf_batch:.0f}% of the picks are confident predictions (top-class "
            f"probability >= {CONFIDENT_PROBABILITY}; pool {100 * conf_pool:.0f}%): the model "
            "may learn little from them")
    return SelectionHealth(batch_mix.tolist(), pool_mix.tolist(), conf_batch, conf_pool,
                           warnings, list(class_names) if class_names else None)
