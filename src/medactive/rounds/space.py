"""The feature space a round's classifier and strategies work in.

One decision for every caller (``project query``, the experiment runner, the back-test): the
linear head sees the encoder's features **standardised** with the pool's own per-dimension mean
and standard deviation. The statistics are label-free (every pool image counts, labelled or
not), so they are fixed for the whole loop and are part of the frozen encoder, not of the
training. Why: contrastive and ImageNet features have a few dimensions with large variance; on
standardised inputs the same head recipe (Adam, fixed epochs) converges to a better optimum, and
the geometry-based strategies (Cluster-Margin's K-means, TypiClust, CoreSet) are not dominated by
those few dimensions. The evidence is in docs/results.md ("Standardised features").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Rows standardised at once: bounds the float64 temporary to 16k x D.
_CHUNK = 16384


@dataclass(frozen=True)
class FeatureSpace:
    """An affine map of encoder features: ``(x - mean) / std`` per dimension, or the identity.

    Attributes:
        mean, std: ``(D,)`` float64 pool statistics (``std`` already has its ``1e-6`` floor),
            or None for the identity (features used as they are).
    """

    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def of_pool(cls, features: np.ndarray, standardise: bool = True) -> FeatureSpace:
        """The space of a pool: its ``(N, D)`` features' mean and std (chunked, float64), or the
        identity when ``standardise`` is False."""
        if not standardise:
            return cls()
        x = np.asarray(features)
        n, d = x.shape
        total = np.zeros(d)
        square = np.zeros(d)
        for start in range(0, n, _CHUNK):
            part = np.asarray(x[start:start + _CHUNK], np.float64)
            total += part.sum(axis=0)
            square += (part * part).sum(axis=0)
        mean = total / max(n, 1)
        var = np.maximum(square / max(n, 1) - mean * mean, 0.0)
        return cls(mean, np.sqrt(var) + 1e-6)

    @property
    def standardised(self) -> bool:
        """True when the map is a standardisation (not the identity)."""
        return self.mean is not None

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``(M, D)`` features mapped into the space, float32 (chunked; a copy)."""
        x = np.asarray(features)
        if self.mean is None or self.std is None:
            return np.ascontiguousarray(x, dtype=np.float32)
        out = np.empty(x.shape, np.float32)
        for start in range(0, x.shape[0], _CHUNK):
            part = np.asarray(x[start:start + _CHUNK], np.float64)
            out[start:start + part.shape[0]] = (part - self.mean) / self.std
        return out

    def fold_into_head(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``(C, D)`` weight and ``(C,)`` bias that give on *raw* features the logits the
        head gives in this space (for a network that runs the encoder itself), float32."""
        w, b = np.asarray(weight, np.float64), np.asarray(bias, np.float64)
        if self.mean is not None and self.std is not None:
            w, b = w / self.std, b - (w / self.std) @ self.mean
        return w.astype(np.float32), b.astype(np.float32)
