"""The pool a loop chooses from, encoded once: features, optional dataset map, images, encoder.

Callers (``project query``, the runner, the back-test, ``medactive coldstart``) get the features
from the encoder registry and its cache; the engine only reads them. The head's view of the
features (:attr:`EncodedPool.head_features`) is derived here once per pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from torch import nn

from medactive.coldstart import ColdStartView
from medactive.data.lazy import LazyImages
from medactive.errors import StrategyError
from medactive.rounds.space import FeatureSpace


@dataclass(eq=False)
class EncodedPool:
    """Every image a loop may label, as the encoder sees it.

    Attributes:
        features: ``(N, D)`` float32 encoder features (memory-mapped or in memory). Cold-start
            strategies cluster these.
        key: what produced them (encoder cache key, ``"features"`` for your own embeddings).
        encoder: the frozen encoder network (None for your own embeddings); network strategies
            (VAAL, Consistency) and finetune mode need it.
        images: optional ``(N, H, W, C)`` uint8 images, in memory or lazy.
        confidence, variability: ``(N,)`` contrastive dataset map (MoCo only), else None.
        maps: every recorded dataset-map variant ``{name: (N,)}`` (MoCo only), else None.
        standardise: whether the head works on standardised features (see
            :mod:`medactive.rounds.space`; True everywhere unless an experiment says otherwise).
    """

    features: np.ndarray
    key: str = ""
    encoder: nn.Module | None = None
    images: np.ndarray | LazyImages | None = None
    confidence: np.ndarray | None = None
    variability: np.ndarray | None = None
    maps: Mapping[str, np.ndarray] | None = None
    standardise: bool = True

    def __post_init__(self) -> None:
        if np.ndim(self.features) != 2:
            raise StrategyError(f"pool features must be (N, D), got {np.shape(self.features)}")
        if self.images is not None and self.images.shape[0] != self.features.shape[0]:
            raise StrategyError(f"{self.images.shape[0]} images for {self.features.shape[0]} "
                                "feature rows")

    @property
    def n(self) -> int:
        """Pool size ``N``."""
        return int(self.features.shape[0])

    @cached_property
    def space(self) -> FeatureSpace:
        """The head's feature space: the pool's label-free standardisation (or the identity)."""
        return FeatureSpace.of_pool(self.features, self.standardise)

    @cached_property
    def head_features(self) -> np.ndarray:
        """``(N, D)`` float32 features in :attr:`space` (what the head and strategies see)."""
        return self.space.apply(self.features)

    def coldstart_view(self, true_labels: np.ndarray | None = None) -> ColdStartView:
        """The label-free view of the whole pool for a cold-start strategy (``true_labels``:
        simulation-only analyses in the runner)."""
        return ColdStartView(self.features, self.confidence, self.variability, self.images,
                             true_labels=true_labels,
                             maps=dict(self.maps) if self.maps else None)
