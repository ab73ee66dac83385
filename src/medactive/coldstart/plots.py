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


def embed_2d(features: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D embedding of ``(N, D)`` L2-normalised features: UMAP when installed, else PCA."""
    x = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    try:
        import umap  # optional

        return umap.UMAP(random_state=seed).fit_transform(x), "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(2, random_state=seed).fit_transform(x), "PCA"


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
    """2-D embedding (UMAP or PCA) of ``(N, D)`` features coloured by ``groups``; stars =
    ``selected``. Returns the PNG path."""
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
