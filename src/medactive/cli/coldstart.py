"""``medactive coldstart``: label-free initial query (HaCon and baselines) written as a CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from medactive.coldstart import list_coldstart_strategies
from medactive.defaults import DEFAULT_COLDSTART
from medactive.errors import ConfigError

# The columns of the selection CSV, in order (the pipeline's evidence, minus its score).
CSV_COLUMNS = ("rank", "id", "index", "cluster", "confidence", "variability")


def _write_csv(rows: list[dict[str, object]], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "confidence": f"{row['confidence']:.6g}",
                             "variability": f"{row['variability']:.6g}"})
    tmp.replace(out)


def register(app: typer.Typer) -> None:
    """Add the ``coldstart`` command to ``app``."""

    @app.command("coldstart", help=(
        f"Choose the first images to label with zero labels: {DEFAULT_COLDSTART} on the "
        "encoder's features by default; HaCon (the cold-start paper), its ablations and "
        "baselines with --strategy."))
    def coldstart(
        data: str = typer.Option("bloodmnist", help="MedMNIST name, .npz path or folder CSV"),
        budget: int = typer.Option(20, help="how many images to select"),
        strategy: str = typer.Option(
            DEFAULT_COLDSTART, help=f"one of: {', '.join(list_coldstart_strategies())}"),
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
        """Choose the first images to label with zero labels (help text above)."""
        from medactive.coldstart.pipeline import (
            ColdStartRequest,
            check_request,
            moco_config,
            pretrain,
        )
        from medactive.data.loading import load_dataset
        from medactive.models.contrastive_config import MocoConfig
        from medactive.rounds import EncodedPool, cold_start_round

        params = {} if n_clusters is None else {"n_clusters": n_clusters}
        request = ColdStartRequest(strategy, params, budget, seed)
        check_request(request)  # a bad name or parameter fails before the data even loads
        if limit is not None and limit < 2:
            raise ConfigError("--limit must be at least 2")
        train = load_dataset(data).train
        if limit is not None:
            train = train.subset(range(min(limit, len(train))))
        moco = moco_config(len(train), MocoConfig(backbone=backbone), epochs=epochs,
                           batch_size=batch_size, tau_map=tau_map, device=device,
                           num_threads=threads)
        check_request(request, len(train))  # the budget against the pool, before pre-training
        result = pretrain(train.images, moco, progress=progress)
        pool = EncodedPool(result.features, key=result.key, encoder=result.encoder,
                           images=train.images, confidence=result.confidence,
                           variability=result.variability, maps=result.maps or None)
        selection = cold_start_round(pool, request)
        _write_csv(selection.evidence(train.ids), out)
        if plot is not None:
            from medactive.coldstart.plots import plot_selection

            plot_selection(result.features, result.confidence, result.variability,
                           selection.indices, Path(plot), strategy=strategy,
                           n_clusters=n_clusters or budget, seed=seed)
        typer.echo(f"pre-training: {'cached ' + result.key if result.from_cache else result.key}, "
                   f"{result.images_per_second:.0f} images/s")
        typer.echo(f"wrote {len(selection.indices)} image ids to {out}")
