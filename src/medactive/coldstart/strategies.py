"""Cold-start strategies: HaCon, its ablations (paper Fig. 3) and label-free baselines.

Each is registered in :mod:`medactive.coldstart.base` and returns, with its picks, the score that
put each one there (higher = wanted more): hardness ``1 - confidence`` for the hard-to-contrast
family, ``confidence`` for easy-to-contrast, minus the distance to the cluster centroid for the
centroid family, typicality for ``typiclust``, coverage gain for ``probcover``; ``None`` where the
strategy has no per-image score. ``typiclust``, ``probcover`` and ``random`` are thin wrappers over
:mod:`medactive.selection`, the code the acquisition strategies of the same names run.
"""

from __future__ import annotations

import numpy as np

from medactive.coldstart.base import (
    ColdStartStrategy,
    ColdStartView,
    check_coldstart_budget,
    register_coldstart_strategy,
)
from medactive.coldstart.embedding import EMBEDDINGS, clustering_space
from medactive.coldstart.hacon import clustered_selection, farthest_first_order, hacon_select
from medactive.data.lazy import LazyImages
from medactive.errors import StrategyError
from medactive.rng import seed_or_draw
from medactive.selection import (
    check_choice,
    check_probcover_params,
    check_scalar,
    check_typiclust_params,
    kmeans,
    probcover_rank,
    random_pick,
    typiclust_rank,
)


def _check_clusters(n_clusters: object) -> None:
    check_scalar(n_clusters, "n_clusters", int, min_val=1, allow_none=True)


def _check_embedding(embedding: object) -> None:
    check_choice(embedding, "embedding", EMBEDDINGS)


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
        check_scalar(self.typical_fraction, "typical_fraction", float, min_val=0.0, max_val=1.0,
                     min_inclusive=False)

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
        check_scalar(self.oversample, "oversample", float, min_val=1.0)
        check_choice(self.order, "order", ("random", "farthest"))

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
        check_scalar(self.pca_dim, "pca_dim", int, min_val=1, allow_none=True)

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
        return random_pick(np.zeros(view.n, dtype=bool), budget, rng), None


@register_coldstart_strategy("typiclust")
class TypiClust(ColdStartStrategy):
    """TypiClust (Hacohen et al. 2022) on the contrastive features: the acquisition strategy's
    implementation (:func:`medactive.selection.typiclust_rank`) with nothing labelled, so K =
    budget. Scores are the picks' typicality.

    Args:
        n_clusters: K (``None``: the paper's ``|L| + B`` = budget, capped at ``max_clusters``).
        knn: neighbours for typicality (20).
        seed: K-means seed (``None`` = drawn from ``rng``).
        max_clusters: cap on the default K (500). min_cluster_size: clusters of at most this
            many images are used last (5).
    """

    def __init__(self, n_clusters: int | None = None, knn: int = 20, seed: int | None = None,
                 max_clusters: int = 500, min_cluster_size: int = 5) -> None:
        self.n_clusters = n_clusters
        self.knn = knn
        self.seed = seed
        self.max_clusters = max_clusters
        self.min_cluster_size = min_cluster_size

    def check_params(self) -> None:
        check_typiclust_params(self.knn, self.max_clusters, self.min_cluster_size,
                               self.n_clusters)

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        check_coldstart_budget(view.n, budget)
        self.check_params()
        return typiclust_rank(view.features, np.zeros(view.n, dtype=bool), budget,
                              n_clusters=self.n_clusters, knn=int(self.knn),
                              max_clusters=int(self.max_clusters),
                              min_cluster_size=int(self.min_cluster_size),
                              seed=seed_or_draw(self.seed, rng))


@register_coldstart_strategy("probcover")
class ProbCover(ColdStartStrategy):
    """ProbCover (Yehuda et al. 2022) on the contrastive features: the acquisition strategy's
    implementation (:func:`medactive.selection.probcover_rank`) with nothing labelled. Scores
    are the picks' coverage gains (0 for fill picks).

    Args:
        alpha: purity target of δ (0.95).
        n_clusters: pseudo-classes of the purity search (``None``: the budget, at least 2 —
            the paper uses the number of classes, unknown before the first label; the
            acquisition strategy defaults to it).
        delta: fixed ball radius (``None``: the purity search).
        seed: K-means seed, tie-breaks and fill (``None`` = drawn from ``rng``).
        fill: budget left once everything is covered: ``"random"`` (the paper) or ``"degree"``
            (densest images first).
    """

    def __init__(self, alpha: float = 0.95, n_clusters: int | None = None,
                 delta: float | None = None, seed: int | None = None,
                 fill: str = "random") -> None:
        self.alpha = alpha
        self.n_clusters = n_clusters
        self.delta = delta
        self.seed = seed
        self.fill = fill

    def check_params(self) -> None:
        check_probcover_params(self.alpha, self.delta, self.fill, self.n_clusters)

    def rank(self, view: ColdStartView, budget: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        check_coldstart_budget(view.n, budget)
        self.check_params()
        return probcover_rank(
            view.features, np.zeros(view.n, dtype=bool), budget,
            n_pseudo_classes=int(self.n_clusters or budget), alpha=float(self.alpha),
            delta=None if self.delta is None else float(self.delta), fill=self.fill,
            seed=seed_or_draw(self.seed, rng))
