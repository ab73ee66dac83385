"""The pool a loop chooses from, encoded once: features, optional dataset map, images, encoder.

Callers (``project query``, the runner, the back-test, ``medactive coldstart``) get the features
from the encoder registry and its cache; the engine only reads them. The head's view of the
features (:attr:`RoundPool.head_features`) is derived here once per pool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from torch import nn

from medactive.coldstart import ColdStartView
from medactive.data.lazy import LazyImages
from medactive.errors import StrategyError
from medactive.models import EncodedPool
from medactive.rounds.space import FeatureSpace

#: What a round's strategies may see (:attr:`RoundPool.strategy_space`).
STRATEGY_SPACES = ("head", "encoder")


@dataclass(eq=False)
class RoundPool:
    """Every image a loop may label, as the round engine sees it: an encoder's features
    (:func:`medactive.models.encode_pool`, or your own embeddings) with the images, the
    head's feature space and what the strategies see.

    Attributes:
        features: ``(N, D)`` float32 encoder features (memory-mapped or in memory). Cold-start
            strategies cluster these.
        key: what produced them (encoder cache key, ``"features"`` for your own embeddings).
        encoder: the frozen encoder network when the caller has it built (None for your own
            embeddings); read it through :meth:`network`.
        encoder_factory: builds the network on the first :meth:`network` call instead (the
            encoder registry's pools: a round on cached features whose strategies and head never
            run the network never pays for building it, 3.7 s for DINOv2-small here).
        images: optional ``(N, H, W, C)`` uint8 images, in memory or lazy.
        confidence, variability: ``(N,)`` contrastive dataset map (MoCo only), else None.
        maps: every recorded dataset-map variant ``{name: (N,)}`` (MoCo only), else None.
        standardise: whether the head works on standardised features (see
            :mod:`medactive.rounds.space`; True everywhere unless an experiment says otherwise).
        strategy_space: what the strategies' view holds: ``"head"``, the head's own features
            (standardised when the head is), or ``"encoder"``, the encoder's raw features with
            the head folded back onto them (same logits; the geometry the encoder was trained
            for, e.g. cosine for contrastive features).
    """

    features: np.ndarray
    key: str = ""
    encoder: nn.Module | None = None
    images: np.ndarray | LazyImages | None = None
    confidence: np.ndarray | None = None
    variability: np.ndarray | None = None
    maps: Mapping[str, np.ndarray] | None = None
    standardise: bool = True
    strategy_space: str = "head"
    encoder_factory: Callable[[], nn.Module | None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.encoder is not None and self.encoder_factory is not None:
            raise StrategyError("give the pool's encoder or its factory, not both")
        if self.strategy_space not in STRATEGY_SPACES:
            raise StrategyError(f"strategy_space must be one of {', '.join(STRATEGY_SPACES)}, "
                                f"got {self.strategy_space!r}")
        if np.ndim(self.features) != 2:
            raise StrategyError(f"pool features must be (N, D), got {np.shape(self.features)}")
        if self.images is not None and self.images.shape[0] != self.features.shape[0]:
            raise StrategyError(f"{self.images.shape[0]} images for {self.features.shape[0]} "
                                "feature rows")

    @classmethod
    def from_encoded(cls, encoded: EncodedPool, images: np.ndarray | LazyImages | None = None,
                     **options: Any) -> RoundPool:
        """The round engine's pool of an encoder registry result (``options``:
        ``standardise``, ``strategy_space``)."""
        return cls(encoded.features, key=encoded.key, images=images,
                   confidence=encoded.confidence, variability=encoded.variability,
                   maps=encoded.maps or None, encoder_factory=lambda: encoded.encoder, **options)

    def network(self) -> nn.Module | None:
        """The frozen encoder network, ``(B, C, H, W)`` in ``[-1, 1]`` -> ``(B, D)`` (built
        by :attr:`encoder_factory` on the first call); None for your own embeddings. Network
        strategies (VAAL, Consistency) and finetune mode need it."""
        if self.encoder is None and self.encoder_factory is not None:
            self.encoder, self.encoder_factory = self.encoder_factory(), None
        return self.encoder

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
        """``(N, D)`` float32 features in :attr:`space` (what the head is trained on)."""
        return self.space.apply(self.features)

    @property
    def view_features(self) -> np.ndarray:
        """``(N, D)`` the features the strategies see (:attr:`strategy_space`)."""
        return self.head_features if self.strategy_space == "head" else self.features

    def to_view_space(self, features: np.ndarray) -> np.ndarray:
        """Raw encoder features ``(M, D)`` mapped into the strategies' space (float32)."""
        if self.strategy_space == "head":
            return self.space.apply(features)
        return np.ascontiguousarray(features, dtype=np.float32)

    def view_head(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A head trained in :attr:`space` as the strategies' view needs it: unchanged in the
        head's space, folded onto the raw features in the encoder's."""
        if self.strategy_space == "head":
            return weight, bias
        return self.space.fold_into_head(weight, bias)

    def coldstart_view(self, true_labels: np.ndarray | None = None) -> ColdStartView:
        """The label-free view of the whole pool for a cold-start strategy (``true_labels``:
        simulation-only analyses in the runner)."""
        return ColdStartView(self.features, self.confidence, self.variability, self.images,
                             true_labels=true_labels,
                             maps=dict(self.maps) if self.maps else None)
