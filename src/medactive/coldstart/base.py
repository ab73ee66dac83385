"""The cold-start strategy interface and its registry (mirrors :mod:`medactive.strategies.base`).

A cold-start strategy sees no labels, only pre-training outputs (:class:`ColdStartView`). Its
constructor stores parameters; :meth:`ColdStartStrategy.rank` returns ``(budget,)`` distinct
int64 pool indices in acquisition order *and* the score that put each one there (``None`` when
it has none); ``select`` is the indices-only wrapper. ``seed=None`` parameters draw their seed
from the caller's generator (:func:`medactive.rng.seed_or_draw`), so repeated draws with
different generators give the spread reported in docs/coldstart.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medactive.data.lazy import LazyImages, take
from medactive.errors import StrategyError
from medactive.registry import Parametrized, Registry
from medactive.selection import check_budget


@dataclass(eq=False)
class ColdStartView:
    """What a cold-start strategy may look at: no labels, only pre-training outputs.

    Attributes:
        features: ``(N, D)`` float32 contrastive backbone features of the un-augmented images.
        confidence: ``(N,)`` dataset-map confidence (mean positive-pair probability), or None
            when the features come from an encoder without a map (ImageNet weights, your own
            embeddings): strategies that need the map then refuse, the others still work.
        variability: ``(N,)`` dataset-map variability (its standard deviation), or None.
        images: optional ``(N, H, W, C)`` uint8 images (pixel-space baselines), in memory or
            lazy (:class:`~medactive.data.lazy.LazyImages`).
        true_labels: optional ``(N,)`` ground truth, **simulation only** (analysis in
            :mod:`medactive.coldstart.simulation`); label-free strategies never read it.
        maps: optional ``{variant name: (N,) confidence}`` of every recorded dataset-map
            variant (``ContrastiveResult.maps``), for strategies with a ``map`` parameter.
    """

    features: np.ndarray
    confidence: np.ndarray | None = None
    variability: np.ndarray | None = None
    images: np.ndarray | LazyImages | None = None
    true_labels: np.ndarray | None = None
    maps: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim != 2:
            raise StrategyError(f"cold-start view: features must be (N, D), got {self.features.shape}")
        n = self.features.shape[0]
        if (self.confidence is None) != (self.variability is None):
            raise StrategyError("cold-start view: give both confidence and variability, or neither")
        if self.confidence is not None and self.variability is not None:
            self.confidence = np.asarray(self.confidence, dtype=np.float64)
            self.variability = np.asarray(self.variability, dtype=np.float64)
            for name, arr in (("confidence", self.confidence), ("variability", self.variability)):
                if arr.shape != (n,):
                    raise StrategyError(f"cold-start view: {name} shape {arr.shape} != ({n},)")
        if self.images is not None and self.images.shape[0] != n:
            raise StrategyError(f"cold-start view: {self.images.shape[0]} images for {n} features")
        if self.true_labels is not None and np.shape(self.true_labels) != (n,):
            raise StrategyError(f"cold-start view: true_labels must have shape ({n},)")
        if not np.all(np.isfinite(self.features)):
            raise StrategyError("cold-start view: features contain NaN or infinite values")
        if self.maps is not None:
            self.maps = {k: np.asarray(v, dtype=np.float64) for k, v in self.maps.items()}
            bad = [k for k, v in self.maps.items() if v.shape != (n,)]
            if bad:
                raise StrategyError(f"cold-start view: map {bad[0]!r} does not have shape ({n},)")

    @property
    def n(self) -> int:
        """Pool size ``N``."""
        return int(self.features.shape[0])

    def subset(self, idx: np.ndarray) -> ColdStartView:
        """The view restricted to positions ``idx`` (features, map, images, labels alike)."""
        idx = np.asarray(idx, dtype=np.int64)

        def pick(arr: np.ndarray | None) -> np.ndarray | None:
            return None if arr is None else np.asarray(arr)[idx]

        images = None if self.images is None else take(self.images, idx)  # lazy stays lazy
        maps = None if self.maps is None else {k: v[idx] for k, v in self.maps.items()}
        return ColdStartView(self.features[idx], pick(self.confidence), pick(self.variability),
                             images, pick(self.true_labels), maps)

    def dataset_map(self, who: str) -> tuple[np.ndarray, np.ndarray]:
        """``(confidence, variability)``, each ``(N,)``.

        Raises:
            StrategyError: the view has no dataset map (naming ``who`` needed it).
        """
        if self.confidence is None or self.variability is None:
            raise StrategyError(f"{who} needs a contrastive dataset map (MoCo v2 pre-training); "
                                "these features come without one")
        return self.confidence, self.variability

    def map_confidence(self, name: str | None, who: str) -> np.ndarray:
        """``(N,)`` confidence of the recorded map variant ``name`` (``None``: the primary map,
        :attr:`confidence`).

        Raises:
            StrategyError: no map, or ``name`` was not recorded (naming ``who`` needed it).
        """
        if name is None:
            return self.dataset_map(who)[0]
        if not self.maps or name not in self.maps:
            known = ", ".join(sorted(self.maps or {})) or "none (only the primary map)"
            raise StrategyError(f"{who}: dataset-map variant {name!r} was not recorded; "
                                f"recorded: {known}")
        return self.maps[name]


def check_coldstart_budget(n: int, budget: int) -> None:
    """Raise :class:`StrategyError` unless ``budget`` is an integer in ``[1, n]`` (booleans
    refused): :func:`medactive.selection.check_budget` over the whole pool of ``n`` images."""
    check_budget(budget, n, "pool")


class ColdStartStrategy(Parametrized, ABC):
    """A label-free initial-query strategy.

    ``simulation_only = True`` marks analyses that read ground truth (``view.true_labels``);
    they are hidden from :func:`list_coldstart_strategies` unless asked for.
    """

    simulation_only: bool = False
    #: False for strategies that never read ``view.features`` (a random start): callers may
    #: then skip the encoder entirely.
    needs_features: bool = True

    @abstractmethod
    def rank(
        self, view: ColdStartView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``(indices (budget,) int64 in acquisition order, scores (budget,) float64 | None)``."""

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        """The indices of :meth:`rank` only."""
        return self.rank(view, budget, rng)[0]


def _load_builtin() -> None:
    # Importing the package registers the built-in strategies (and the simulation ones).
    import medactive.coldstart  # noqa: F401


_REGISTRY: Registry[ColdStartStrategy] = Registry("cold-start strategy", "cold-start strategies",
                                              _load_builtin)


def register_coldstart_strategy(name: str) -> Callable[[type], type]:
    """Class decorator adding a cold-start strategy under ``name``."""
    return _REGISTRY.register(name)


def get_coldstart_strategy(name: str, **params: Any) -> ColdStartStrategy:
    """Instantiate the cold-start strategy ``name`` (parameter values are checked when it runs).

    Raises:
        StrategyError: unknown name (the message lists the known ones) or unknown parameters.
    """
    return _REGISTRY.create(name, **params)


def checked_coldstart_strategy(name: str, **params: Any) -> ColdStartStrategy:
    """:func:`get_coldstart_strategy` plus a check of every parameter value (before pre-training).

    Raises:
        StrategyError: unknown name, unknown parameter or impossible value.
    """
    return _REGISTRY.checked(name, **params)


def list_coldstart_strategies(include_simulation: bool = False) -> list[str]:
    """Names of the registered cold-start strategies, sorted; simulation-only ones (which read
    ground truth) only with ``include_simulation``."""
    return sorted(n for n, c in _REGISTRY.entries().items()
                  if include_simulation or not c.simulation_only)
