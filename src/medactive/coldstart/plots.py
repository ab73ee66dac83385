"""PNG plots of a cold-start selection: the dataset map and a 2-D embedding (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: never needs a display
    import matplotlib.pyplot as plt

    return plt


def _scatter_groups(ax, xy: np.ndarray, groups: np.ndarray | None, names: Sequence[str] | None,
                    max_legend: int = 12) -> None:
    plt = _pyplot()
    if groups is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=3, c="0.6", alpha=0.4, linewidths=0)
        return
    uniq = np.unique(groups)
    cmap = plt.get_cmap("tab20" if uniq.size > 10 else "tab10")
    for i, g in enumerate(uniq):
        m = groups == g
        label = (names[int(g)] if names is not None and 0 <= int(g) < len(names) else str(int(g)))
        ax.scatter(xy[m, 0], xy[m, 1], s=3, alpha=0.35, linewidths=0,
                   color=cmap(i % cmap.N), label=label if uniq.size <= max_legend else None)


def _mark(ax, xy: np.ndarray, selected: np.ndarray) -> None:
    sel = np.asarray(selected, dtype=np.int64)
    ax.scatter(xy[sel, 0], xy[sel, 1], s=60, marker="*", facecolors="black",
               edgecolors="white", linewidths=0.6, label=f"selected ({sel.size})", zorder=5)


def _scatter_png(xy: np.ndarray, selected: np.ndarray, path: str | Path,
                 groups: np.ndarray | None, group_names: Sequence[str] | None,
                 xlabel: str, ylabel: str, title: str) -> Path:
    """One ``(N, 2)`` scatter coloured by ``groups`` with ``selected`` starred, saved as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5), dpi=120)
    _scatter_groups(ax, xy, groups, group_names)
    _mark(ax, xy, selected)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=6, markerscale=2, loc="best")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_dataset_map(
    confidence: np.ndarray,
    variability: np.ndarray,
    selected: np.ndarray,
    path: str | Path,
    *,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    title: str = "Contrastive dataset map",
) -> Path:
    """Scatter variability (x) against confidence (y), coloured by ``groups``; stars = selection.

    Args:
        confidence: ``(N,)`` mean positive-pair probability.
        variability: ``(N,)`` its standard deviation.
        selected: ``(B,)`` indices to mark.
        path: output PNG.
        groups: optional ``(N,)`` ints (K-means cluster, or true class in simulations).
        group_names: optional names for the legend.
        title: figure title.
    """
    xy = np.column_stack([variability, confidence])
    return _scatter_png(xy, selected, path, groups, group_names, "variability",
                        "confidence (hard-to-contrast = bottom)", title)


# UMAP's neighbourhood size (its default) and the smallest set it is used on: below 4 x 15 = 60
# points every neighbourhood spans a quarter of the set or more, so there is no local structure
# for UMAP to keep beyond what a linear projection shows, and UMAP itself cannot build its graph
# once the set is not larger than the neighbourhood. PCA is exact and stable there.
UMAP_NEIGHBOURS = 15
UMAP_MIN_POINTS = 4 * UMAP_NEIGHBOURS


def embed_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D embedding of ``(N, D)`` features for plots, as the cold-start paper's Fig. 9: UMAP
    (McInnes et al. 2018, ``umap-learn``) of the L2-normalised features, or PCA for fewer than
    :data:`UMAP_MIN_POINTS` points. Deterministic for a seed (UMAP then runs single-threaded).

    Returns:
        ``(N, 2)`` coordinates and the method's name (``"UMAP"`` or ``"PCA"``).
    """
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    if x.shape[0] < UMAP_MIN_POINTS:
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(x), "PCA"
    import warnings

    import umap

    with warnings.catch_warnings():  # UMAP notes that a seed turns off its parallel SGD
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_neighbors=UMAP_NEIGHBOURS, random_state=seed, n_jobs=1)
        return np.asarray(reducer.fit_transform(x), np.float64), "UMAP"


def plot_embedding(
    features: np.ndarray,
    selected: np.ndarray,
    path: str | Path,
    *,
    groups: np.ndarray | None = None,
    group_names: Sequence[str] | None = None,
    title: str = "Contrastive features",
    seed: int = 0,
) -> Path:
    """2-D embedding (UMAP, or PCA for tiny sets; see :func:`embed_2d`) of ``(N, D)`` features
    coloured by ``groups``; stars = ``selected``. Returns the PNG path."""
    xy, method = embed_2d(features, seed)
    return _scatter_png(xy, selected, path, groups, group_names, f"{method} 1", f"{method} 2",
                        f"{title} ({method})")


def plot_selection(
    features: np.ndarray,
    confidence: np.ndarray,
    variability: np.ndarray,
    selected: np.ndarray,
    folder: Path,
    *,
    strategy: str,
    n_clusters: int,
    seed: int = 0,
) -> list[Path]:
    """``dataset_map.png`` and ``embedding.png`` of a selection in ``folder``, coloured by the
    K-means clusters HaCon uses (K = ``n_clusters`` on L2-normalised ``(N, D)`` features).

    Returns:
        The two PNG paths.
    """
    from medactive.coldstart.hacon import kmeans, l2_normalise

    clusters, _ = kmeans(l2_normalise(features), n_clusters, seed)
    maps = Path(folder) / "dataset_map.png"
    embedding = Path(folder) / "embedding.png"
    plot_dataset_map(confidence, variability, selected, maps, groups=clusters,
                     title=f"{strategy}: dataset map (colour = cluster)")
    plot_embedding(features, selected, embedding, groups=clusters, title=f"{strategy}: selection")
    return [maps, embedding]
