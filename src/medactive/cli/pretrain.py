"""``medactive pretrain``: MoCo v2 pre-training (cached), on one process or under ``torchrun``.

``torchrun --nproc_per_node 4 -m medactive pretrain --data DATA`` trains with DDP: every rank
joins the process group ``torchrun`` describes and the library shards batches and all-reduces
the dataset map (:mod:`medactive.models.distributed`). The result lands in the encoder cache,
where ``coldstart``, ``run`` and the labelling project find it by the same key.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``pretrain`` command to ``app``."""

    @app.command("pretrain")
    def pretrain(
        data: str = typer.Option("bloodmnist", help="MedMNIST name, .npz path or folder CSV"),
        epochs: int | None = typer.Option(None, help="MoCo epochs (default: MocoConfig)"),
        batch_size: int | None = typer.Option(None, help="global MoCo batch size"),
        backbone: str = typer.Option("compact", help="compact or resnet18"),
        seed: int = typer.Option(0, help="seed (the same on every rank)"),
        image_size: int = typer.Option(64, help="side length for a folder CSV (read lazily)"),
        progress: bool = typer.Option(True, help="show progress bars (rank 0)"),
    ) -> None:
        """Pre-train the contrastive encoder and its dataset map into the cache."""
        from medactive.coldstart.pipeline import pretrain as run_pretrain
        from medactive.data.loading import load_dataset
        from medactive.models import distributed
        from medactive.models.contrastive_config import MocoConfig

        ctx = distributed.init_from_env()
        folder = data.lower().endswith(".csv")
        options = {"image_size": image_size, "lazy": True} if folder else {}
        train = load_dataset(data, **options).train
        defaults = MocoConfig()
        cfg = MocoConfig(backbone=backbone, seed=seed,
                         epochs=defaults.epochs if epochs is None else epochs,
                         batch_size=defaults.batch_size if batch_size is None else batch_size)
        result = run_pretrain(train.images, cfg, progress=progress)
        if ctx.primary:
            typer.echo(f"encoder {result.key}: {len(train)} images, {ctx.world} process(es), "
                       f"{result.images_per_second:.0f} pairs/s per process")
