"""``medactive project init|query|serve|status|export|import``: labelling projects.

The commands are thin: :mod:`medactive.annotate` does the work and raises
:class:`~medactive.errors.MedactiveError` for anything a user can get wrong.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medactive.errors import ConfigError

app = typer.Typer(no_args_is_help=True)

LOCALHOSTS = ("127.0.0.1", "localhost", "::1")


@app.command("init")
def init(
    project_dir: Path = typer.Argument(..., help="project directory (holds project.db)"),
    images: Path | None = typer.Option(None, "--images", help="folder of PNG/JPEG/DICOM files"),
    classes: str | None = typer.Option(None, "--classes", help='class names, "a,b,c"'),
    labels: Path | None = typer.Option(None, "--labels", help="CSV image_id,label to import"),
    from_npz: Path | None = typer.Option(None, "--from-npz", help="MedMNIST .npz file"),
    split: str = typer.Option("train", "--split", help="split of --from-npz to use"),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N npz images"),
    image_size: int = typer.Option(64, "--image-size", help="model input side for --images"),
    features: Path | None = typer.Option(
        None, "--features", help="your own embeddings: .npy (N, D) in image order, or Parquet "
        "with an image_id column; queries then skip contrastive pre-training"),
) -> None:
    """Register images (path + content hash; nothing is copied) in DIR/project.db."""
    from medactive.annotate.project import init_from_folder, init_from_npz

    names = [c.strip() for c in classes.split(",")] if classes else None
    if (images is None) == (from_npz is None):
        raise ConfigError("give exactly one of --images FOLDER or --from-npz FILE")
    if images is not None:
        if not names:
            raise ConfigError('--classes "name1,name2,..." is required with --images')
        store = init_from_folder(project_dir, images, names, labels, image_size=image_size,
                                 features=features)
    else:
        store = init_from_npz(project_dir, from_npz, split, names, limit, labels, features)
    with store:
        typer.echo(f"project {project_dir}: {store.n_images()} images, "
                   f"{len(store.classes())} classes ({', '.join(store.classes())}), "
                   f"{len(store.current_answers())} labelled")


@app.command("status")
def status(project_dir: Path = typer.Argument(..., help="project directory")) -> None:
    """Labelled images per class, rounds so far, and pending queries."""
    from medactive.annotate.project import project_status
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        st = project_status(store)
    labelled = sum(st.per_class.values())
    typer.echo(f"{st.n_images} images, {labelled} labelled, {st.unsure} unsure")
    for name, n in st.per_class.items():
        typer.echo(f"  {n:6d}  {name}")
    last = f" (latest: {st.latest_strategy})" if st.latest_strategy else ""
    typer.echo(f"rounds: {st.rounds}{last}; pending queries: {st.pending}")


@app.command("export")
def export(
    project_dir: Path = typer.Argument(..., help="project directory"),
    output: Path = typer.Option(..., "--output", "-o", help="CSV file to write"),
) -> None:
    """Write the current labels as CSV (image_id,label,annotator,labelled_at,path)."""
    from medactive.annotate.project import export_csv
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        rows = export_csv(store, output)
    typer.echo(f"wrote {len(rows)} labels to {output}")


@app.command("import")
def import_(
    project_dir: Path = typer.Argument(..., help="project directory"),
    csv_file: Path = typer.Argument(..., help="CSV with columns image_id,label"),
    annotator: str = typer.Option("import", "--annotator", help="name recorded with the labels"),
) -> None:
    """Import labels; unknown ids or classes reject the whole file before anything is written."""
    from medactive.annotate.project import import_csv
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        n = import_csv(store, csv_file, annotator)
    typer.echo(f"imported {n} labels")


@app.command("query")
def query(
    project_dir: Path = typer.Argument(..., help="project directory"),
    budget: int = typer.Option(..., "--budget", "-b", help="how many images to ask for"),
    strategy: str | None = typer.Option(
        None, "--strategy", help="default: hacon with no labels yet (kmeans-centroid with your "
        "own --features), aeig afterwards"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    epochs: int | None = typer.Option(None, "--pretrain-epochs",
                                      help="contrastive pre-training epochs (first query only)"),
    ray: str | None = typer.Option(None, "--ray", help="score on Ray: local | auto | "
                                   "ray://HOST:PORT (default: this process)"),
) -> None:
    """Choose the next images to label and record them as a new round."""
    from medactive.annotate.query import QueryConfig, run_query
    from medactive.models.cluster import check_address

    cfg = QueryConfig(seed=seed, ray=None if ray is None else check_address(ray))
    if epochs is not None:
        cfg.pretrain_epochs = epochs
    result = run_query(project_dir, budget, strategy, cfg)
    typer.echo(f"round {result.round_id}: {result.strategy} chose {len(result.image_ids)} images "
               f"({result.seconds:.1f}s); label them with `medactive project serve {project_dir}`")


@app.command("serve")
def serve(
    project_dir: Path = typer.Argument(..., help="project directory"),
    port: int = typer.Option(8765, "--port"),
    host: str = typer.Option("127.0.0.1", "--host"),
    token: str | None = typer.Option(None, "--token", help="required unless host is localhost"),
    annotator: str | None = typer.Option(None, "--annotator", help="default annotator name"),
) -> None:
    """Serve the labelling page for the latest round."""
    import uvicorn

    from medactive.annotate.app import create_app

    if host not in LOCALHOSTS and not token:
        raise ConfigError(f"--host {host} exposes the project beyond this machine; "
                          "pass --token SECRET (every request must then carry it)")
    web = create_app(project_dir, token=token, annotator=annotator)
    suffix = f"/?token={token}" if token else "/"
    typer.echo(f"labelling {project_dir} at http://{host}:{port}{suffix}  (Ctrl-C stops; "
               "every label is already saved)")
    uvicorn.run(web, host=host, port=port, log_level="warning")
