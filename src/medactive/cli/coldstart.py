"""``medactive coldstart``: label-free initial query (HaCon and baselines) written as a CSV.

The command runs in four separate steps, so each can change on its own:

1. :func:`check_options` — every option, the output paths included, checked in milliseconds
   before any image is read or any network trained;
2. :func:`load_pool` — the images to choose from: a folder, a CSV listing images, a labelled
   CSV (its training split, said on the console) or a MedMNIST file (its training split);
3. :func:`select` — pre-training and the selection;
4. :func:`write_selection` — the CSV (written to a temporary name and renamed) and the plots.
"""

from __future__ import annotations

import csv
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import typer

from medactive.coldstart import list_coldstart_strategies
from medactive.defaults import DEFAULT_COLDSTART
from medactive.errors import ConfigError, DataError

if TYPE_CHECKING:
    from medactive.coldstart.pipeline import ColdStartSelection
    from medactive.models.contrastive_config import ContrastiveResult

# The columns of the selection CSV, in order (the pipeline's evidence, minus its score).
CSV_COLUMNS = ("rank", "id", "index", "cluster", "confidence", "variability")


@dataclass(frozen=True)
class Options:
    """The checked options of one ``coldstart`` call."""

    request: Any  # ColdStartRequest
    moco: Any  # MocoConfig, before it is fitted to the pool's size
    out: Path
    plot: Path | None
    limit: int | None
    image_size: int | None
    image_root: Path | None
    id_column: str | None


@dataclass(frozen=True)
class Pool:
    """What the selection chooses from: images ``(N, H, W, C)`` uint8, their ids ``(N,)``, and
    one line saying what they are."""

    images: np.ndarray
    ids: np.ndarray
    description: str


def check_output_file(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before any work: a folder in its place,
    a file where a parent folder should be, or a parent that is not writable.

    Raises:
        ConfigError: naming the option and the problem (nothing is created).
    """
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name, e.g. {path / 'x.csv'}")
    parent = path.parent
    while not parent.exists():  # created at the end, with the file: find the first that is
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a folder")
    try:  # a real probe: permission bits say nothing to root, or on a read-only mount
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {parent} is not writable "
                          f"({exc.strerror or type(exc).__name__})") from None


def check_output_folder(path: Path, option: str) -> None:
    """Like :func:`check_output_file` for a folder that will be created (or reused).

    Raises:
        ConfigError: a file in its place, or no permission to write there.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder")
    check_output_file(path / "probe", option)


def check_options(*, data: str, budget: int, strategy: str, n_clusters: int | None, seed: int,
                  out: Path, plot: Path | None, epochs: int | None, batch_size: int | None,
                  tau_map: float | None, backbone: str, limit: int | None, device: str | None,
                  threads: int | None, image_size: int | None, image_root: Path | None,
                  id_column: str | None) -> Options:
    """Every option of ``coldstart``, checked before any data is read or any work starts.

    Raises:
        ConfigError / StrategyError / DataError: one line naming the option at fault.
    """
    from medactive.coldstart.pipeline import ColdStartRequest, check_request, moco_config
    from medactive.data.pool import check_image_size
    from medactive.experiment.config import check_backbone
    from medactive.models.contrastive_config import MocoConfig
    from medactive.models.device import check_seed

    check_seed(seed, "--seed")
    params = {} if n_clusters is None else {"n_clusters": n_clusters}
    request = ColdStartRequest(strategy, params, budget, seed)
    check_request(request)  # a bad name or parameter fails before the data even loads
    if limit is not None and limit < 2:
        raise ConfigError("--limit must be at least 2")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    check_backbone(backbone, "--backbone")
    # settings and device checked now; the batch is fitted to the pool once it is known
    moco = moco_config(1 << 30, MocoConfig(backbone=backbone), epochs=epochs,
                       batch_size=batch_size, tau_map=tau_map, device=device,
                       num_threads=threads)
    source = Path(data).expanduser()
    folder_source = source.is_dir() or source.suffix.lower() == ".csv"
    if image_size is not None:
        if not folder_source:
            raise ConfigError("--image-size applies to an image folder or a CSV; a MedMNIST "
                              "file holds its images at their size")
        check_image_size(image_size)
    if image_root is not None and source.suffix.lower() != ".csv":
        raise ConfigError("--image-root applies to a CSV (its image paths are relative to it)")
    if id_column is not None and source.suffix.lower() != ".csv":
        raise ConfigError("--id-column applies to a CSV")
    check_output_file(out, "--out")
    if plot is not None:
        check_output_folder(plot, "--plot")
    return Options(request, moco, out, plot, limit, image_size, image_root, id_column)


def load_pool(data: str, options: Options) -> Pool:
    """The images ``data`` names, as the pool to choose from.

    * a folder, or a CSV listing images without labels: every image, no split
      (:func:`medactive.data.pool.load_image_pool`), at ``--image-size`` (default 64, as
      ``project init``);
    * a labelled CSV: its training split (a ``split`` column, else a seeded stratified
      70/10/20 split), said in the description;
    * a MedMNIST name or ``.npz``: its training split.

    ``--limit N`` keeps the first N images.
    """
    from medactive.data.labelcsv import read_image_list
    from medactive.data.pool import FOLDER_IMAGE_SIZE, csv_labels, load_image_pool

    source = Path(data).expanduser()
    size = options.image_size or FOLDER_IMAGE_SIZE
    labelled = False
    if source.suffix.lower() == ".csv" and source.is_file():
        labelled = csv_labels(read_image_list(source, id_column=options.id_column))
    if source.is_dir() or (source.suffix.lower() == ".csv" and not labelled):
        pool = load_image_pool(source, image_root=options.image_root, image_size=size,
                               id_column=options.id_column, limit=options.limit)
        _report_skipped(pool.skipped)
        return Pool(pool.images, pool.ids, pool.description)
    from medactive.data.loading import load_dataset

    kwargs: dict[str, Any] = {}
    if labelled:
        kwargs = {"image_size": size, "id_column": options.id_column}
        if options.image_root is not None:
            kwargs["image_root"] = options.image_root
    splits = load_dataset(data, **kwargs)
    train = splits.train
    total = sum(len(d) for _, d in splits.items())
    how = splits.meta.get("split_note") or "its official train/val/test split"
    description = f"the {len(train)} training images of {splits.name} ({total} in all; {how})"
    if options.limit is not None and options.limit < len(train):
        train = train.subset(range(options.limit))
        description = f"the first {options.limit} of {description}"
    return Pool(train.images, train.ids, description)


def _report_skipped(skipped: list, limit: int = 10) -> None:
    """List the files of a folder that could not be used (on stderr)."""
    if not skipped:
        return
    typer.echo(f"skipped {len(skipped)} file(s) that cannot be used:", err=True)
    for item in skipped[:limit]:
        typer.echo(f"  {item.path}: {item.reason}", err=True)
    if len(skipped) > limit:
        typer.echo(f"  ... and {len(skipped) - limit} more", err=True)


def select(pool: Pool, options: Options, progress: bool
           ) -> tuple[ColdStartSelection, ContrastiveResult]:
    """Pre-train (cached), then the round engine's cold start; returns the selection and the
    pre-training result."""
    import dataclasses

    from medactive.coldstart.pipeline import check_request, moco_config, pretrain
    from medactive.rounds import EncodedPool, cold_start_round

    check_request(options.request, len(pool.ids))  # the budget against the pool's size
    moco = moco_config(len(pool.ids), dataclasses.replace(options.moco))
    result = pretrain(pool.images, moco, progress=progress)
    encoded = EncodedPool(result.features, key=result.key, encoder=result.encoder,
                          images=pool.images, confidence=result.confidence,
                          variability=result.variability, maps=result.maps or None)
    return cold_start_round(encoded, options.request), result


def write_selection(rows: list[dict[str, object]], out: Path) -> None:
    """Write the selection CSV through a temporary file (nothing half-written is left).

    Raises:
        DataError: the file cannot be written after all (disk full, permissions changed).
    """
    tmp = out.with_name(out.name + ".part")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({**row, "confidence": f"{row['confidence']:.6g}",
                                 "variability": f"{row['variability']:.6g}"})
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {out} ({exc.strerror or type(exc).__name__})") from None


def register(app: typer.Typer) -> None:
    """Add the ``coldstart`` command to ``app``."""

    @app.command("coldstart", help=(
        f"Choose the first images to label with zero labels: {DEFAULT_COLDSTART} on the "
        "encoder's features by default; HaCon (the cold-start paper), its ablations and "
        "baselines with --strategy."))
    def coldstart(
        data: str = typer.Option(
            "bloodmnist", help="a folder of images, a CSV listing images (labels optional), "
            "a MedMNIST name or an .npz path"),
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
        limit: int | None = typer.Option(None, help="use only the first N images of the pool"),
        device: str | None = typer.Option(None, help="cpu / cuda (default: automatic)"),
        progress: bool = typer.Option(True, help="show progress bars"),
        threads: int | None = typer.Option(None, help="CPU threads (1 is faster on a busy CPU)"),
        image_size: int | None = typer.Option(
            None, help="folder or CSV: side images are resized to (default 64, as `project "
            "init`)"),
        image_root: Path | None = typer.Option(
            None, help="CSV: the folder its image paths are relative to (default: the CSV's)"),
        id_column: str | None = typer.Option(
            None, help="CSV: the column naming the images (default: detected)"),
    ) -> None:
        """Choose the first images to label with zero labels (help text above)."""
        options = check_options(
            data=data, budget=budget, strategy=strategy, n_clusters=n_clusters, seed=seed,
            out=out, plot=plot, epochs=epochs, batch_size=batch_size, tau_map=tau_map,
            backbone=backbone, limit=limit, device=device, threads=threads,
            image_size=image_size, image_root=image_root, id_column=id_column)
        pool = load_pool(data, options)
        typer.echo(f"pool: {pool.description}")
        selection, result = select(pool, options, progress)
        write_selection(selection.evidence(pool.ids), out)
        if plot is not None:
            from medactive.coldstart.plots import plot_selection

            plot_selection(result.features, result.confidence, result.variability,
                           selection.indices, Path(plot), strategy=strategy,
                           n_clusters=n_clusters or budget, seed=seed)
        typer.echo(f"pre-training: {'cached ' + result.key if result.from_cache else result.key}, "
                   f"{result.images_per_second:.0f} images/s")
        typer.echo(f"wrote {len(selection.indices)} image ids to {out}")
