"""Cold-start strategies: HaCon, its ablations (paper Fig. 3) and label-free baselines.

Each is registered in :mod:`medactive.coldstart.base` and returns, with its picks, the score that
put each one there (higher = wanted more): hardness ``1 - confidence`` for the hard-to-contrast
family, ``confidence`` for easy-to-contrast, minus the distance to the cluster centroid for the
centroid family; ``None`` where the strategy has no per-image score.
"""

from __future__ import annotations

import numpy as np

from medactive.coldstart.base import (
    ColdStartStrategy,
    ColdStartView,
    check_coldstart_budget,
    register_coldstart_strategy,
)
from medactive.coldstart.baselines import probcover_select, typiclust_select
from medactive.coldstart.embedding import EMBEDDINGS, clustering_space
from medactive.coldstart.hacon import (
    clustered_selection,
    farthest_first_order,
    hacon_select,
    kmeans,
)
from medactive.data.lazy import LazyImages
from medactive.errors import StrategyError
from medactive.rng import seed_or_draw


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


def _check_clusters(n_clusters: object) -> None:
    if n_clusters is not None and (
        not isinstance(n_clusters, (int, np.integer)) or isinstance(n_clusters, bool)
        or n_clusters < 1
    ):
        raise StrategyError(f"n_clusters must be a positive integer, got {n_clusters!r}")


def _check_embedding(embedding: object) -> None:
    if embedding not in EMBEDDINGS:
        raise StrategyError(f"embedding must be one of {', '.join(EMBEDDINGS)}, got {embedding!r}")


@register_coldstart_strategy("hacon")
class HaCon(ColdStartStrategy):
    """Hard-to-contrast images, round-robin over K-means clusters (the paper's method).

    Defaults follow the paper's text: K = budget, K-means on the features, the primary map
    (in-batch softmax at τ = 0.05 unless the pre-training was configured otherwise). The authors'
    public code corresponds to ``n_clusters=30, embedding="umap", map="batch:tau=0.001"`` (its
    temperature loop divided in place: effective τ = 0.001; ``"batch:hit"`` is the τ → 0 limit).
    See docs/coldstart.md for what each option does to the selection.

    Args:
        n_clusters: K (``None`` = budget).
        seed: K-means / UMAP / cluster-order seed (``None`` = drawn from ``rng``).
        embedding: ``"features"`` (cosine K-means) or ``"umap"`` (2-D UMAP of the features).
        map: a recorded dataset-map variant (``ContrastiveResult.maps``, e.g.
            ``"batch+queue:tau=0.05"``, ``"probe:tau=0.2"``); ``None`` = the primary map.
        typical_fraction: only the members nearest their centroid (this fraction of each
            cluster) compete on hardness first; 1.0 = the paper (all members).
    """

    _direction = 1.0  # +1: lowest confidence (hardest) first; -1: easiest first

    def __init__(self, n_clusters: int | None = None, seed: int | None = None,
                 embedding: str = "features", map: str | None = None,
                 typical_fraction: float = 1.0) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.embedding = embedding
        self.map = map
        self.typical_fraction = typical_fraction

    def check_params(self) -> None:
        _check_clusters(self.n_clusters)
        _check_embedding(self.embedding)
        if self.map is not None and not isinstance(self.map, str):
            raise StrategyError(f"map must be a map variant name or None, got {self.map!r}")
        if not (_is_number(self.typical_fraction) and 0.0 < float(self.typical_fraction) <= 1.0):
            raise StrategyError(f"typical_fraction must be in (0, 1], got {self.typical_fraction!r}")

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        self.check_params()
        confidence = view.map_confidence(self.map, self.name)
        idx = hacon_select(view.features, self._direction * confidence, budget,
                           n_clusters=self.n_clusters, seed=seed_or_draw(self.seed, rng),
                           embedding=self.embedding, typical_fraction=self.typical_fraction)
        return idx, (1.0 - confidence[idx]) if self._direction > 0 else confidence[idx]


@register_coldstart_strategy("easy-to-contrast")
class EasyToContrast(HaCon):
    """Ablation: the *highest*-confidence (easy-to-contrast) images of each cluster."""

    _direction = -1.0


@register_coldstart_strategy("kmeans-centroid")
class KMeansCentroid(ColdStartStrategy):
    """Ablation "without hard-to-contrast": the images closest to each cluster centroid.

    Args:
        n_clusters: K (``None``: ``ceil(oversample * budget)``).
        seed: K-means / UMAP / cluster-order seed (``None`` = drawn from ``rng``).
        embedding: ``"features"`` (cosine K-means) or ``"umap"`` (2-D UMAP of the features).
        oversample: K per image of budget when ``n_clusters`` is unset (1.0: K = budget).
        order: which clusters are visited first when K > budget: ``"random"`` (seeded
            permutation) or ``"farthest"`` (:func:`~medactive.coldstart.hacon.farthest_first_order`:
            the largest cluster, then the farthest centroids; clusters of < 5 images last).
    """

    def __init__(self, n_clusters: int | None = None, seed: int | None = None,
                 embedding: str = "features", oversample: float = 1.0,
                 order: str = "random") -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.embedding = embedding
        self.oversample = oversample
        self.order = order

    def check_params(self) -> None:
        _check_clusters(self.n_clusters)
        _check_embedding(self.embedding)
        if not (_is_number(self.oversample) and float(self.oversample) >= 1.0):
            raise StrategyError(f"oversample must be a number >= 1, got {self.oversample!r}")
        if self.order not in ("random", "farthest"):
            raise StrategyError(f"order must be 'random' or 'farthest', got {self.order!r}")

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        check_coldstart_budget(view.n, budget)
        self.check_params()
        seed = seed_or_draw(self.seed, rng)
        x = clustering_space(view.features, self.embedding, seed)
        k = self.n_clusters or int(np.ceil(self.oversample * budget - 1e-9))
        return _centroid_selection(x, budget, k, seed, self.order)


@register_coldstart_strategy("hard-to-contrast-global")
class HardToContrastGlobal(ColdStartStrategy):
    """Ablation "without K-means": the ``budget`` lowest-confidence images of the whole pool."""

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        check_coldstart_budget(view.n, budget)
        confidence, _ = view.dataset_map(self.name)
        tiebreak = rng.random(view.n)
        idx = np.lexsort((tiebreak, confidence))[:budget].astype(np.int64)
        return idx, 1.0 - confidence[idx]


@register_coldstart_strategy("kmeans-pixels")
class KMeansPixels(ColdStartStrategy):
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

    def check_params(self) -> None:
        _check_clusters(self.n_clusters)
        if self.pca_dim is not None and (not isinstance(self.pca_dim, (int, np.integer))
                                         or self.pca_dim < 1):
            raise StrategyError(f"pca_dim must be a positive integer or None, got {self.pca_dim!r}")

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        check_coldstart_budget(view.n, budget)
        if view.images is None:
            raise StrategyError("kmeans-pixels needs the images in the cold-start view")
        seed = seed_or_draw(self.seed, rng)
        if self._cache is None or self._cache[0] != id(view.images):
            if isinstance(view.images, LazyImages):  # a pool on disk: batched incremental PCA
                from medactive.coldstart.pixels import lazy_pixel_components

                self._cache = (id(view.images), lazy_pixel_components(view.images, self.pca_dim))
                return _centroid_selection(self._cache[1], budget, self.n_clusters or budget, seed)
            x = view.images.reshape(view.n, -1).astype(np.float32) / 255.0
            if self.pca_dim is not None and self.pca_dim < min(x.shape):
                from sklearn.decomposition import PCA

                x = PCA(self.pca_dim, random_state=0).fit_transform(x).astype(np.float32)
            self._cache = (id(view.images), x)
        return _centroid_selection(self._cache[1], budget, self.n_clusters or budget, seed)


def _centroid_selection(x: np.ndarray, budget: int, k: int, seed: int,
                        order: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Nearest-to-centroid first in each K-means cluster; score = minus that distance."""
    labels, cents = kmeans(x, k, seed)
    dist = np.linalg.norm(x - cents[labels], axis=1)
    visit = None
    if order == "farthest":
        visit = farthest_first_order(cents, np.bincount(labels, minlength=cents.shape[0]))
    idx = clustered_selection(labels, dist, budget, seed, order=visit)
    return idx, -dist[idx].astype(np.float64)


@register_coldstart_strategy("random")
class RandomColdStart(ColdStartStrategy):
    """Uniform random sample without replacement (the paper's strong baseline)."""

    needs_features = False

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, None]:
        check_coldstart_budget(view.n, budget)
        return rng.choice(view.n, budget, replace=False).astype(np.int64), None


@register_coldstart_strategy("typiclust")
class TypiClust(ColdStartStrategy):
    """TypiClust (Hacohen et al. 2022) on the contrastive features."""

    def __init__(self, n_clusters: int | None = None, knn: int = 20, seed: int | None = None) -> None:
        self.n_clusters = n_clusters
        self.knn = knn
        self.seed = seed

    def check_params(self) -> None:
        _check_clusters(self.n_clusters)
        if not isinstance(self.knn, (int, np.integer)) or self.knn < 1:
            raise StrategyError(f"knn must be a positive integer, got {self.knn!r}")

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, None]:
        return typiclust_select(view.features, budget, n_clusters=self.n_clusters, knn=self.knn,
                                seed=seed_or_draw(self.seed, rng)), None


@register_coldstart_strategy("probcover")
class ProbCover(ColdStartStrategy):
    """ProbCover (Yehuda et al. 2022) on the contrastive features."""

    def __init__(self, alpha: float = 0.95, n_clusters: int | None = None,
                 delta: float | None = None, seed: int | None = None) -> None:
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.delta = delta
        self.seed = seed

    def check_params(self) -> None:
        _check_clusters(self.n_clusters)
        if not (_is_number(self.alpha) and 0.0 < float(self.alpha) <= 1.0):
            raise StrategyError(f"alpha must be in (0, 1], got {self.alpha!r}")
        if self.delta is not None and not (_is_number(self.delta) and float(self.delta) > 0):
            raise StrategyError(f"delta must be positive, got {self.delta!r}")

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, None]:
        return probcover_select(view.features, budget, alpha=self.alpha,
                                n_clusters=self.n_clusters, delta=self.delta,
                                seed=seed_or_draw(self.seed, rng)), None
