"""Spaces to cluster in before a cold-start pick: the L2-normalised features, or their 2-D UMAP.

The HaCon authors' public code runs K-means (K = 30) on a 2-D UMAP (McInnes et al. 2018, default
``n_neighbors=15``, ``min_dist=0.1``) of the backbone features rather than on the features
themselves; ``embedding="umap"`` reproduces that. We use ``umap-learn`` (the reference
implementation the authors used) with a fixed ``random_state``, which makes it deterministic
(single-threaded).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict

import numpy as np

from medactive.errors import StrategyError
from medactive.geometry import l2_normalise

EMBEDDINGS = ("features", "umap")
_UMAP_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_UMAP_CACHE_SIZE = 8


def umap_2d(features: np.ndarray, seed: int = 0, n_neighbors: int = 15,
            min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP of ``(N, D)`` features (Euclidean, as the authors' code), memoised per data+seed.

    Returns:
        ``(N, 2)`` float32; identical for identical inputs and ``seed``.

    Raises:
        StrategyError: ``umap-learn`` is not installed, or fewer than 4 points.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.shape[0] < 4:
        raise StrategyError(f"a UMAP embedding needs at least 4 images, got {x.shape[0]}")
    key = (hashlib.md5(x.tobytes()).hexdigest(), x.shape, int(seed), n_neighbors, float(min_dist))
    if key in _UMAP_CACHE:
        _UMAP_CACHE.move_to_end(key)
        return _UMAP_CACHE[key].copy()
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is a dependency
        raise StrategyError("embedding='umap' needs umap-learn (pip install umap-learn)") from exc
    n = x.shape[0]
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist,
                        random_state=int(seed), n_jobs=1,
                        # spectral initialisation needs a connected, not-too-small graph
                        init="spectral" if n > 3 * n_neighbors else "random")
    with warnings.catch_warnings():  # UMAP notes that a seed turns off its parallel SGD
        warnings.simplefilter("ignore", UserWarning)
        out = np.asarray(reducer.fit_transform(x), dtype=np.float32)
    _UMAP_CACHE[key] = out
    if len(_UMAP_CACHE) > _UMAP_CACHE_SIZE:
        _UMAP_CACHE.popitem(last=False)
    return out.copy()


def clustering_space(features: np.ndarray, embedding: str = "features", seed: int = 0) -> np.ndarray:
    """The points K-means runs on: ``"features"`` = L2-normalised features (cosine geometry),
    ``"umap"`` = :func:`umap_2d` of the raw features.

    Returns:
        ``(N, D')`` float32.
    """
    if embedding == "features":
        return l2_normalise(features)
    if embedding == "umap":
        return umap_2d(features, seed)
    raise StrategyError(f"unknown embedding {embedding!r}; choose from {', '.join(EMBEDDINGS)}")
