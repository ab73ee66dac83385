"""``medactive coldstart``: label-free initial query (HaCon and baselines) written as a CSV."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import typer

from medactive.errors import ConfigError, StrategyError


def run_coldstart(
    data: str,
    budget: int,
    strategy: str,
    out: Path,
    plot: Path | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    tau_map: float | None = None,
    n_clusters: int | None = None,
    seed: int = 0,
    backbone: str = "compact",
    limit: int | None = None,
    device: str | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> list[dict[str, object]]:
    """Pre-train (or load the cached encoder), select ``budget`` images, write ``out``.

    Returns:
        The CSV rows: ``rank, id, index, cluster, confidence, variability`` in acquisition order;
        ``cluster`` is the K-means cluster (K = ``n_clusters`` or ``budget``) of the contrastive
        features with the same seed HaCon uses.
    """
    import numpy as np

    from medactive.coldstart import ColdStartView, get_coldstart_strategy, kmeans, l2_normalise
    from medactive.coldstart.strategies import _REGISTRY
    from medactive.data.loading import load_dataset
    from medactive.models.contrastive import MocoConfig, pretrain_moco

    # validate everything cheap before the minutes of pre-training
    params: dict[str, object] = {}
    cls = _REGISTRY.entries().get(strategy)
    if cls is not None:
        accepted = inspect.signature(cls.__init__).parameters
        if "seed" in accepted:
            params["seed"] = seed
        if n_clusters is not None and "n_clusters" in accepted:
            params["n_clusters"] = n_clusters
    chosen = get_coldstart_strategy(strategy, **params)  # unknown name -> StrategyError
    if getattr(chosen, "simulation_only", False):
        raise StrategyError(f"{strategy!r} is simulation-only (reads ground truth); "
                            "use it from medactive.coldstart.simulation, not the CLI")
    train = load_dataset(data).train
    if limit is not None:
        if limit < 2:
            raise ConfigError("--limit must be at least 2")
        train = train.subset(np.arange(min(limit, len(train))))
    if budget < 1 or budget > len(train):
        raise StrategyError(f"budget {budget} must be between 1 and the pool size ({len(train)})")
    overrides = {k: v for k, v in {"epochs": epochs, "batch_size": batch_size,
                                   "tau_map": tau_map}.items() if v is not None}
    cfg = MocoConfig(backbone=backbone, device=device, num_threads=threads, **overrides)  # type: ignore[arg-type]
    cfg.queue_size = max(cfg.queue_size, cfg.batch_size)
    res = pretrain_moco(train.images, cfg, progress=progress)
    view = ColdStartView(res.features, res.confidence, res.variability, train.images)
    selected = chosen.select(view, budget, np.random.default_rng(seed))
    clusters, _ = kmeans(l2_normalise(res.features), n_clusters or budget, seed)
    rows = [{"rank": r + 1, "id": str(train.ids[i]), "index": int(i), "cluster": int(clusters[i]),
             "confidence": f"{res.confidence[i]:.6g}", "variability": f"{res.variability[i]:.6g}"}
            for r, i in enumerate(selected)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if plot is not None:
        from medactive.coldstart.plots import plot_dataset_map, plot_embedding

        plot_dataset_map(res.confidence, res.variability, selected, Path(plot) / "dataset_map.png",
                         groups=clusters, title=f"{strategy}: dataset map (colour = cluster)")
        plot_embedding(res.features, selected, Path(plot) / "embedding.png", groups=clusters,
                       title=f"{strategy}: selection")
    typer.echo(f"pre-training: {'cached ' + res.key if res.from_cache else res.key}, "
               f"{res.images_per_second:.0f} images/s")
    typer.echo(f"wrote {len(rows)} image ids to {out}")
    return rows


def register(app: typer.Typer) -> None:
    """Add the ``coldstart`` command to ``app``."""

    @app.command("coldstart")
    def coldstart(
        data: str = typer.Option("bloodmnist", help="MedMNIST name, .npz path or folder CSV"),
        budget: int = typer.Option(20, help="how many images to select"),
        strategy: str = typer.Option("hacon", help="hacon, easy-to-contrast, kmeans-centroid, "
                                     "hard-to-contrast-global, kmeans-pixels, random, typiclust, "
                                     "probcover"),
        out: Path = typer.Option(Path("selection.csv"), help="CSV of selected ids, in order"),
        plot: Path | None = typer.Option(None, help="folder for dataset_map.png, embedding.png"),
        epochs: int | None = typer.Option(None, help="MoCo epochs (default: MocoConfig)"),
        batch_size: int | None = typer.Option(None, help="MoCo batch size"),
        tau_map: float | None = typer.Option(None, help="dataset-map temperature (paper: 0.05)"),
        n_clusters: int | None = typer.Option(None, help="K-means K (default: budget)"),
        seed: int = typer.Option(0, help="selection seed (K-means and cluster order)"),
        backbone: str = typer.Option("compact", help="compact or resnet18"),
        limit: int | None = typer.Option(None, help="use only the first N training images"),
        device: str | None = typer.Option(None, help="cpu / cuda (default: automatic)"),
        progress: bool = typer.Option(True, help="show progress bars"),
        threads: int | None = typer.Option(None, help="CPU threads (1 is faster on a busy CPU)"),
    ) -> None:
        """Choose the first images to label with zero labels (MoCo v2 dataset map + HaCon)."""
        run_coldstart(data, budget, strategy, out, plot, epochs, batch_size, tau_map, n_clusters,
                      seed, backbone, limit, device, progress, threads)
