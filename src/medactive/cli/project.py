"""``medactive project init|query|serve|status|export|import|remove``: labelling projects.

The commands are thin: :mod:`medactive.annotate` does the work and raises
:class:`~medactive.errors.MedactiveError` for anything a user can get wrong.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medactive.errors import ConfigError

app = typer.Typer(no_args_is_help=True)


@app.command("init")
def init(
    project_dir: Path = typer.Argument(..., help="project directory (holds project.db)"),
    images: Path | None = typer.Option(None, "--images", help="folder of PNG/JPEG/TIFF/DICOM files"),
    classes: str | None = typer.Option(None, "--classes", help='class names, "a,b,c"'),
    labels: Path | None = typer.Option(None, "--labels", help="CSV image_id,label to import"),
    from_npz: Path | None = typer.Option(None, "--from-npz", help="MedMNIST .npz file"),
    split: str = typer.Option("train", "--split", help="split of --from-npz to use"),
    limit: int | None = typer.Option(None, "--limit", help="use only the first N npz images"),
    image_size: int = typer.Option(64, "--image-size", help="model input side for --images"),
    window: str | None = typer.Option(
        None, "--window", help="DICOM window overriding the header: CENTER,WIDTH (e.g. 40,400) "
        "or a CT preset: brain, lung, mediastinum, abdomen, bone"),
    frame: int | None = typer.Option(
        None, "--frame", help="frame of multi-frame files (default: the middle one)"),
    strict: bool = typer.Option(
        False, "--strict", help="refuse the folder if any file is unreadable (default: skip)"),
) -> None:
    """Register images (path + content hash; nothing is copied) in DIR/project.db."""
    from medactive.annotate.project import init_from_folder, init_from_npz, skipped_files
    from medactive.data.decode import DecodeSettings

    names = [c.strip() for c in classes.split(",")] if classes else None
    if (images is None) == (from_npz is None):
        raise ConfigError("give exactly one of --images FOLDER or --from-npz FILE")
    if images is not None:
        if not names:
            raise ConfigError('--classes "name1,name2,..." is required with --images')
        settings = DecodeSettings.parse(window, frame)
        store = init_from_folder(project_dir, images, names, labels, image_size=image_size,
                                 settings=settings, strict=strict)
    else:
        if window is not None or frame is not None:
            raise ConfigError("--window and --frame apply to --images (DICOM), not --from-npz")
        store = init_from_npz(project_dir, from_npz, split, names, limit, labels)
    with store:
        typer.echo(f"project {project_dir}: {store.n_images()} images, "
                   f"{len(store.classes())} classes ({', '.join(store.classes())}), "
                   f"{len(store.current_answers())} labelled")
        _report_skipped(skipped_files(store), store.meta().get("labels_not_imported", []))


def _report_skipped(skipped: list, unlabelled: list[str], limit: int = 20) -> None:
    """List the files `init` left out (on stderr: they need the user's attention)."""
    if not skipped:
        return
    typer.echo(f"skipped {len(skipped)} file(s) that cannot be used:", err=True)
    for item in skipped[:limit]:
        typer.echo(f"  {item.path.as_posix()}: {item.reason}", err=True)
    if len(skipped) > limit:
        typer.echo(f"  ... and {len(skipped) - limit} more (`medactive project status DIR "
                   "--skipped` lists them all)", err=True)
    if unlabelled:
        typer.echo(f"labels of {len(unlabelled)} skipped file(s) were not imported", err=True)


@app.command("status")
def status(
    project_dir: Path = typer.Argument(..., help="project directory"),
    skipped: bool = typer.Option(False, "--skipped",
                                 help="also list the files skipped at init and removed images"),
) -> None:
    """Labelled images per class, rounds so far, and pending queries."""
    from medactive.annotate.project import project_status, skipped_files
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        st = project_status(store)
        left_out = skipped_files(store) if skipped else []
        removals = store.removals() if skipped else []
    labelled = sum(st.per_class.values())
    typer.echo(f"{st.n_images} images, {labelled} labelled, {st.unsure} unsure")
    for name, n in st.per_class.items():
        typer.echo(f"  {n:6d}  {name}")
    last = f" (latest: {st.latest_strategy})" if st.latest_strategy else ""
    typer.echo(f"rounds: {st.rounds}{last}; pending queries: {st.pending}")
    if st.removed or st.skipped_at_init:
        typer.echo(f"removed: {st.removed}; skipped at init (unreadable): {st.skipped_at_init}")
    for item in left_out:
        typer.echo(f"  skipped  {item.path.as_posix()}: {item.reason}")
    for r in removals:
        typer.echo(f"  removed  {r.uid}: {r.reason} ({r.annotator}, {r.created_at})")


@app.command("remove")
def remove(
    project_dir: Path = typer.Argument(..., help="project directory"),
    image_ids: list[str] = typer.Argument(..., help="image ids to take out of the project"),
    reason: str = typer.Option("", "--reason", help="why (recorded with the removal)"),
    annotator: str = typer.Option("cli", "--annotator", help="who (recorded with the removal)"),
) -> None:
    """Take images out of the project: never queried or shown again; their labels are kept in
    the history. Unknown or already removed ids reject the whole command."""
    from medactive.annotate.project import remove_images
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        n = remove_images(store, image_ids, reason, annotator)
        left = store.n_images()
    typer.echo(f"removed {n} image(s); {left} remain")


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
        None, "--strategy", help="default: hacon with no labels yet, aeig afterwards"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    epochs: int | None = typer.Option(None, "--pretrain-epochs",
                                      help="contrastive pre-training epochs (first query only)"),
) -> None:
    """Choose the next images to label and record them as a new round."""
    from medactive.annotate.query import QueryConfig, run_query

    cfg = QueryConfig(seed=seed)
    if epochs is not None:
        cfg.pretrain_epochs = epochs
    result = run_query(project_dir, budget, strategy, cfg)
    typer.echo(f"round {result.round_id}: {result.strategy} chose {len(result.image_ids)} images "
               f"({result.seconds:.1f}s); label them with `medactive project serve {project_dir}`")


@app.command("serve")
def serve(
    project_dir: Path = typer.Argument(..., help="project directory"),
    port: int = typer.Option(8765, "--port", help="TCP port (0: any free port)"),
    host: str = typer.Option("127.0.0.1", "--host"),
    token: str | None = typer.Option(
        None, "--token", envvar="MEDACTIVE_TOKEN",
        help="shared secret, >= 16 characters; required unless host is localhost. Prefer the "
             "MEDACTIVE_TOKEN environment variable: a --token shows in `ps`"),
    annotator: str | None = typer.Option(None, "--annotator", help="default annotator name"),
) -> None:
    """Serve the labelling page for the latest round."""
    from medactive.annotate.serve import serve_project

    def announce(url: str) -> None:
        typer.echo(f"labelling {project_dir} at {url}  (Ctrl-C stops; every label is already "
                   "saved)")

    serve_project(project_dir, host=host, port=port, token=token, annotator=annotator,
                  announce=announce)
