"""Registry of cold-start strategies: HaCon, its ablations (paper Fig. 3) and label-free baselines.

Mirrors :mod:`medactive.strategies.base`: objects whose constructor stores parameters and whose
``select(view, budget, rng)`` returns ``(budget,)`` distinct int64 pool indices in acquisition
order. ``seed=None`` (the default) draws the K-means / ordering seed from ``rng``, so repeated
draws with different generators give the spread reported in docs/coldstart.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from medactive.coldstart.baselines import probcover_select, typiclust_select
from medactive.coldstart.embedding import clustering_space
from medactive.coldstart.hacon import (
    ColdStartView,
    check_coldstart_budget,
    clustered_selection,
    hacon_select,
    kmeans,
)
from medactive.errors import StrategyError
from medactive.registry import Registry


class ColdStartStrategy(ABC):
    """A label-free initial-query strategy."""

    name: ClassVar[str] = ""

    @abstractmethod
    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        """Return ``(budget,)`` distinct int64 indices into the view, in acquisition order."""

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (for logging and reproducibility)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _seed(seed: int | None, rng: np.random.Generator) -> int:
    return int(seed) if seed is not None else int(rng.integers(0, 2**31 - 1))


def _load_simulation() -> None:
    # the simulation module registers the ground-truth analysis strategies on import
    import medactive.coldstart.simulation  # noqa: F401


_REGISTRY: Registry[ColdStartStrategy] = Registry("cold-start strategy", "cold-start strategies",
                                              _load_simulation)


def register_coldstart_strategy(name: str) -> Callable[[type], type]:
    """Class decorator adding a cold-start strategy under ``name``."""
    return _REGISTRY.register(name)


def get_coldstart_strategy(name: str, **params: Any) -> ColdStartStrategy:
    """Instantiate the cold-start strategy ``name``.

    Raises:
        StrategyError: unknown name (the message lists the known ones) or bad parameters.
    """
    return _REGISTRY.create(name, **params)


def list_coldstart_strategies(include_simulation: bool = False) -> list[str]:
    """Names of the registered cold-start strategies, sorted; simulation-only ones (which read
    ground truth) only with ``include_simulation``."""
    return sorted(n for n, c in _REGISTRY.entries().items()
                  if include_simulation or not getattr(c, "simulation_only", False))


@register_coldstart_strategy("hacon")
class HaCon(ColdStartStrategy):
    """Hard-to-contrast images, round-robin over K-means clusters (the paper's method).

    Defaults follow the paper's text (K = budget, K-means on the features, the primary map —
    τ = 0.05 in-batch unless the pre-training was configured otherwise). The authors' public code
    is ``n_clusters=30, embedding="umap"`` with a ``map`` recorded at an effective τ of 0.001
    (``"batch:tau=0.001"``, or its limit ``"batch:hit"``), see docs/coldstart.md.

    Args:
        n_clusters: K (``None`` = budget).
        seed: K-means / UMAP / cluster-order seed (``None`` = drawn from ``rng``).
        embedding: ``"features"`` or ``"umap"`` (:func:`~medactive.coldstart.embedding.clustering_space`).
        map: name of a recorded dataset-map variant (``None`` = the view's primary confidence).
        typical_fraction: only the members nearest the centroid (this fraction of each cluster)
            compete on hardness first; 1.0 = the paper.
    """

    def __init__(self, n_clusters: int | None = None, seed: int | None = None,
                 embedding: str = "features", map: str | None = None,
                 typical_fraction: float = 1.0) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.embedding = embedding
        self.map = map
        self.typical_fraction = typical_fraction

    _sign = 1.0  # +1: hardest (lowest confidence) first

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        confidence = self._sign * view.map_confidence(self.map)
        return hacon_select(view.features, confidence, budget, n_clusters=self.n_clusters,
                            seed=_seed(self.seed, rng), embedding=self.embedding,
                            typical_fraction=self.typical_fraction)


@register_coldstart_strategy("easy-to-contrast")
class EasyToContrast(HaCon):
    """Ablation: the *highest*-confidence (easy-to-contrast) images of each cluster."""

    _sign = -1.0


@register_coldstart_strategy("kmeans-centroid")
class KMeansCentroid(ColdStartStrategy):
    """Ablation "without hard-to-contrast": the images closest to each cluster centroid.

    Args:
        n_clusters: K (``None`` = budget).
        seed: K-means / UMAP / cluster-order seed (``None`` = drawn from ``rng``).
        embedding: ``"features"`` (cosine K-means) or ``"umap"`` (2-D UMAP, as the authors' code).
    """

    def __init__(self, n_clusters: int | None = None, seed: int | None = None,
                 embedding: str = "features") -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.embedding = embedding

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        check_coldstart_budget(view.n, budget)
        seed = _seed(self.seed, rng)
        x = clustering_space(view.features, self.embedding, seed)
        return _centroid_selection(x, budget, self.n_clusters or budget, seed)


@register_coldstart_strategy("hard-to-contrast-global")
class HardToContrastGlobal(ColdStartStrategy):
    """Ablation "without K-means": the ``budget`` lowest-confidence images of the whole pool."""

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        check_coldstart_budget(view.n, budget)
        tiebreak = rng.random(view.n)
        return np.lexsort((tiebreak, view.confidence))[:budget].astype(np.int64)


@register_coldstart_strategy("kmeans-pixels")
class KMeansPixels(KMeansCentroid):
    """Ablation "without contrastive features": K-means on raw pixels, closest to centroid.

    Pixels are scaled to [0, 1] and, for speed, projected on their first ``pca_dim`` principal
    components (``None`` = raw pixels); K-means distances barely change because the leading
    components carry most of the pixel variance.
    """

    def __init__(self, n_clusters: int | None = None, seed: int | None = None,
                 pca_dim: int | None = 50) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.pca_dim = pca_dim
        self._cache: tuple[int, np.ndarray] | None = None

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        check_coldstart_budget(view.n, budget)
        if view.images is None:
            raise StrategyError("kmeans-pixels needs the images in the cold-start view")
        seed = _seed(self.seed, rng)
        if self._cache is None or self._cache[0] != id(view.images):
            x = view.images.reshape(view.n, -1).astype(np.float32) / 255.0
            if self.pca_dim is not None and self.pca_dim < min(x.shape):
                from sklearn.decomposition import PCA

                x = PCA(self.pca_dim, random_state=0).fit_transform(x).astype(np.float32)
            self._cache = (id(view.images), x)
        return _centroid_selection(self._cache[1], budget, self.n_clusters or budget, seed)


def _centroid_selection(x: np.ndarray, budget: int, k: int, seed: int) -> np.ndarray:
    labels, cents = kmeans(x, k, seed)
    dist = np.linalg.norm(x - cents[labels], axis=1)
    return clustered_selection(labels, dist, budget, seed)


@register_coldstart_strategy("random")
class RandomColdStart(ColdStartStrategy):
    """Uniform random sample without replacement (the paper's strong baseline)."""

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        check_coldstart_budget(view.n, budget)
        return rng.choice(view.n, budget, replace=False).astype(np.int64)


@register_coldstart_strategy("typiclust")
class TypiClust(ColdStartStrategy):
    """TypiClust (Hacohen et al. 2022) on the contrastive features."""

    def __init__(self, n_clusters: int | None = None, knn: int = 20, seed: int | None = None) -> None:
        self.n_clusters = n_clusters
        self.knn = knn
        self.seed = seed

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        return typiclust_select(view.features, budget, n_clusters=self.n_clusters, knn=self.knn,
                                seed=_seed(self.seed, rng))


@register_coldstart_strategy("probcover")
class ProbCover(ColdStartStrategy):
    """ProbCover (Yehuda et al. 2022) on the contrastive features."""

    def __init__(self, alpha: float = 0.95, n_clusters: int | None = None,
                 delta: float | None = None, seed: int | None = None) -> None:
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.delta = delta
        self.seed = seed

    def select(self, view: ColdStartView, budget: int, rng: np.random.Generator) -> np.ndarray:
        return probcover_select(view.features, budget, alpha=self.alpha,
                                n_clusters=self.n_clusters, delta=self.delta,
                                seed=_seed(self.seed, rng))
