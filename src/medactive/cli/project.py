"""``medactive project init|query|serve|status|export|import|remove``: labelling projects.

The commands are thin: :mod:`medactive.annotate` does the work and raises
:class:`~medactive.errors.MedactiveError` for anything a user can get wrong.
"""

from __future__ import annotations

from pathlib import Path

import typer

from medactive.cli.project_backtest import register as _register_backtest
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART, DEFAULT_ENCODER
from medactive.errors import ConfigError, DataError

app = typer.Typer(no_args_is_help=True)


@app.command("init")
def init(
    project_dir: Path = typer.Argument(..., help="project directory (holds project.db)"),
    images: Path | None = typer.Option(None, "--images", help="folder of PNG/JPEG/TIFF/DICOM files"),
    classes: str | None = typer.Option(None, "--classes", help='class names, "a,b,c"'),
    labels: Path | None = typer.Option(
        None, "--labels", help="CSV of labels you already have (id and label columns detected)"),
    id_column: str | None = typer.Option(None, "--id-column",
                                         help="--labels: the column naming the images"),
    label_column: str | None = typer.Option(None, "--label-column",
                                            help="--labels: the column of labels"),
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
    features: Path | None = typer.Option(
        None, "--features", help="your own embeddings: .npy (N, D) in image order, or Parquet "
        "with an image_id column; queries then skip contrastive pre-training"),
    encoder: str | None = typer.Option(
        None, "--encoder", help=f"feature encoder: moco, imagenet or hf:<hub id or folder>, e.g. "
        f"hf:facebook/dinov2-small (default {DEFAULT_ENCODER}; docs/encoders.md)"),
    encoder_weights: Path | None = typer.Option(
        None, "--encoder-weights", help="the encoder's weights: a file, or a folder saved with "
        "save_pretrained / `hf download` (air-gapped machines)"),
) -> None:
    """Register images (path + content hash; nothing is copied) in DIR/project.db."""
    from medactive.annotate.labelfiles import LabelFileOptions
    from medactive.annotate.project import init_from_folder, init_from_npz, skipped_files
    from medactive.data.decode import DecodeSettings

    names = [c.strip() for c in classes.split(",")] if classes else None
    if labels is None and (id_column is not None or label_column is not None):
        raise ConfigError("--id-column and --label-column apply to --labels")
    options = LabelFileOptions(id_column, label_column)
    if images is not None and from_npz is None:
        if not names:
            raise ConfigError('--classes "name1,name2,..." is required with --images')
        settings = DecodeSettings.parse(window, frame)
        store = init_from_folder(project_dir, images, names, labels, image_size=image_size,
                                 settings=settings, strict=strict, features=features,
                                 label_options=options, encoder=encoder,
                                 encoder_weights=encoder_weights)
    elif from_npz is not None and images is None:
        if window is not None or frame is not None:
            raise ConfigError("--window and --frame apply to --images (DICOM), not --from-npz")
        store = init_from_npz(project_dir, from_npz, split, names, limit, labels, features,
                              label_options=options, encoder=encoder,
                              encoder_weights=encoder_weights)
    else:
        raise ConfigError("give exactly one of --images FOLDER or --from-npz FILE")
    with store:
        typer.echo(f"project {project_dir}: {store.n_images()} images, "
                   f"{len(store.classes())} classes ({', '.join(store.classes())}), "
                   f"{len(store.current_answers())} labelled")
        if store.meta().get("class_names") == "inferred":
            typer.echo(f"note: {from_npz} is not a registered MedMNIST subset (judged by its "
                       "content), so its classes are numbered; name them with --classes "
                       '"name0,name1,..." in label order', err=True)
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
    """Labels per class, readers' agreement, validation AUC, the stopping signal, pending work."""
    from medactive.annotate.monitor import project_progress
    from medactive.annotate.project import project_status, skipped_files
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        st = project_status(store)
        progress = project_progress(store)
        job = store.latest_job()
        left_out = skipped_files(store) if skipped else []
        removals = store.removals() if skipped else []
    labelled = sum(st.per_class.values())
    typer.echo(f"{st.n_images} images, {labelled} labelled, {st.unsure} unsure")
    typer.echo(f"encoder: {st.encoder}")
    typer.echo(f"  {'training':>8s} {'validation':>10s}  class")
    for name in progress.classes:
        typer.echo(f"  {progress.train_per_class[name]:8d} "
                   f"{progress.validation_per_class[name]:10d}  {name}")
    if progress.disagreements:
        typer.echo(f"readers disagree on {progress.disagreements} image(s); "
                   f"{progress.unresolved} unresolved (left out of training until adjudicated)")
    last = f" (latest: {st.latest_strategy})" if st.latest_strategy else ""
    latest = progress.rounds[-1] if progress.rounds else None
    pending = latest.open if latest else 0  # a skipped image is still pending
    skips = f" ({latest.skipped} skipped)" if latest and latest.skipped else ""
    typer.echo(f"rounds: {st.rounds}{last}; pending queries: {pending}{skips}")
    if st.removed or st.skipped_at_init:
        typer.echo(f"removed: {st.removed}; skipped at init (unreadable): {st.skipped_at_init}")
    for item in left_out:
        typer.echo(f"  skipped  {item.path.as_posix()}: {item.reason}")
    for removal in removals:
        typer.echo(f"  removed  {removal.uid}: {removal.reason} ({removal.annotator}, "
                   f"{removal.created_at})")
    if progress.rounds:
        # columns as wide as their longest entry: a strategy name is never cut short
        width = max(len("strategy"), *(len(r.strategy) for r in progress.rounds))
        states = [r.state_text() for r in progress.rounds]
        state_width = max(len("state"), *(len(t) for t in states))
        typer.echo(f"  round  {'strategy':{width}s}  queried  answered  {'state':{state_width}s}"
                   "  readers κ  val AUC (n)  stability κ")
        for summary, state in zip(progress.rounds, states, strict=True):
            kappa = "-" if summary.agreement.kappa is None else f"{summary.agreement.kappa:.3f}"
            auc = "-" if summary.validation_auc is None else \
                f"{summary.validation_auc:.3f} ({summary.validation_n})"
            stab = "-" if summary.stability_kappa is None else f"{summary.stability_kappa:.4f}"
            typer.echo(f"  {summary.id:5d}  {summary.strategy:{width}s}  {summary.queried:7d}  "
                       f"{summary.answered:8d}  {state:{state_width}s}  {kappa:>9s}  "
                       f"{auc:>11s}  {stab:>11s}")
        closed = [r for r in progress.rounds if r.state == "closed"]
        for r in closed:
            typer.echo(f"round {r.id} was closed by round {r.replaced_by} with {r.closed_open} "
                       "image(s) unanswered (`query --force`)")
    agree = progress.overall_agreement
    if agree.method is not None:
        per_class = ", ".join(f"{name} {'-' if k is None else f'{k:.2f}'}"
                              for name, k in agree.per_class.items())
        overall = "-" if agree.kappa is None else f"{agree.kappa:.3f}"
        typer.echo(f"readers' agreement ({agree.method} κ, {agree.n_items} images, "
                   f"{', '.join(agree.readers)}): {overall}; per class: {per_class}")
    typer.echo(f"stopping: {progress.stop_reason}")
    if job is not None and job.status != "done":
        detail = job.error if job.status == "failed" else f"{job.stage} {job.progress:.0%}"
        typer.echo(f"job {job.id}: {job.status} ({detail})")


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
    output: Path = typer.Option(..., "--output", "-o", help="file to write"),
    fmt: str | None = typer.Option(
        None, "--format", help="csv, json (full history) or labelstudio (tasks with "
                               "predictions); default from the file suffix"),
    image_prefix: str = typer.Option(
        "/data/local-files/?d=", "--image-prefix",
        help="labelstudio: prefix of each task's image URL (then the image id)"),
) -> None:
    """Export labels: CSV (one row per image), the full history as JSON, or Label Studio tasks."""
    from medactive.annotate.exports import describe_export, export_file
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        written = export_file(store, output, fmt, image_prefix=image_prefix)
        n = store.n_images()
    typer.echo(describe_export(output, written, n))


@app.command("settings")
def settings(
    project_dir: Path = typer.Argument(..., help="project directory"),
    show_predictions: str | None = typer.Option(
        None, "--show-predictions", help="after (default: once the reader answered) or first"),
    validation_share: float | None = typer.Option(
        None, "--validation-share", help="share of each round drawn at random for validation"),
    validation_mode: str | None = typer.Option(
        None, "--validation-mode", help="crossfit (the validation sample trains too; AUC out "
        "of fold), holdout (never trained on) or none"),
    stop_kappa: float | None = typer.Option(None, "--stop-kappa",
                                            help="stabilizing-predictions threshold"),
    stop_rounds: int | None = typer.Option(None, "--stop-rounds",
                                           help="rounds the threshold must hold"),
    stop_sample: int | None = typer.Option(None, "--stop-sample", help="stop-set size"),
    reads_per_image: int | None = typer.Option(None, "--reads-per-image",
                                               help="readers per image (2: double reading)"),
    second_read_share: float | None = typer.Option(
        None, "--second-read-share", help="share of a round for second reads (0: off)"),
    pretrain_epochs: int | None = typer.Option(None, "--pretrain-epochs",
                                               help="pre-training epochs of a cold-start query"),
) -> None:
    """Show or change the project's labelling settings."""
    from medactive.annotate.settings import update_settings
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project_dir) as store:
        values = update_settings(
            store, show_predictions=show_predictions, validation_share=validation_share,
            validation_mode=validation_mode,
            stop_kappa=stop_kappa, stop_rounds=stop_rounds, stop_sample=stop_sample,
            reads_per_image=reads_per_image, second_read_share=second_read_share,
            pretrain_epochs=pretrain_epochs)
    for key, value in values.as_dict().items():
        typer.echo(f"{key} = {value}")


@app.command("reader")
def reader(
    project_dir: Path = typer.Argument(..., help="project directory"),
    name: str = typer.Argument(..., help="the reader's name"),
) -> None:
    """Give a reader a personal token (printed once); once any reader has one, the page asks
    every reader to sign in with theirs."""
    import re

    from medactive.annotate.app import NAME_PATTERN
    from medactive.annotate.store import ProjectStore

    if not re.fullmatch(NAME_PATTERN, name):
        raise ConfigError("a reader name is 1-80 characters without control characters")
    with ProjectStore.open(project_dir) as store:
        token = store.add_reader(name)
    typer.echo(f"reader {name}: token {token}  (shown once; give it to {name} only)")


@app.command("import")
def import_(
    project_dir: Path = typer.Argument(..., help="project directory"),
    labels_file: Path = typer.Argument(
        ..., help="CSV of labels (id and label columns detected; a project export imports "
                  "back), or a Label Studio JSON export"),
    annotator: str | None = typer.Option(None, "--annotator",
                                         help="CSV: name recorded with the labels "
                                         "(default: import)"),
    label_set: str | None = typer.Option(
        None, "--set", help="CSV: training (default), or validation: the images join the "
        "validation sample, the validation AUC's images (they train the model too under the "
        "default validation mode crossfit, scored out of fold; holdout keeps them out)"),
    id_column: str | None = typer.Option(None, "--id-column",
                                         help="CSV: the column naming the images "
                                         "(default: detected)"),
    label_column: str | None = typer.Option(None, "--label-column",
                                            help="CSV: the column of labels (default: "
                                            "detected)"),
    image_prefix: str | None = typer.Option(
        None, "--image-prefix", help="Label Studio JSON: the --image-prefix the tasks were "
        "exported with (default: /data/local-files/?d=)"),
) -> None:
    """Import labels; unknown or ambiguous images, unknown classes or conflicting duplicates
    reject the whole file before anything is written. A Label Studio JSON export brings its
    readers, skips and edits with it."""
    from medactive.annotate.labelfiles import LABEL_READERS
    from medactive.annotate.store import ProjectStore

    suffix = labels_file.suffix.lower()
    if suffix != ".json" and suffix not in LABEL_READERS:
        known = ", ".join(sorted([*LABEL_READERS, ".json (a Label Studio export)"]))
        raise DataError(f"{labels_file}: cannot import {suffix or 'a file without suffix'} "
                        f"files; known: {known}")
    if suffix == ".json":
        given = [name for name, value in (("--annotator", annotator), ("--set", label_set),
                                          ("--id-column", id_column),
                                          ("--label-column", label_column))
                 if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} apply to a CSV; a Label Studio export names "
                              "its readers and images itself")
        from medactive.annotate.exports import LABEL_STUDIO_PREFIX
        from medactive.annotate.labelstudio.importer import import_labelstudio_export

        with ProjectStore.open(project_dir) as store:
            summary = import_labelstudio_export(store, labels_file,
                                                image_prefix or LABEL_STUDIO_PREFIX)
        typer.echo(summary.describe())
        return
    if image_prefix is not None:
        raise ConfigError("--image-prefix applies to a Label Studio JSON export")
    from medactive.annotate.labelfiles import LabelFileOptions, import_labels_file

    label_set = label_set or "training"
    with ProjectStore.open(project_dir) as store:
        result = import_labels_file(store, labels_file, annotator or "import",
                                    options=LabelFileOptions(id_column, label_column),
                                    label_set=label_set)
    notes = []
    if result.duplicates:
        notes.append(f"{result.duplicates} duplicate row(s) taken once")
    if result.unresolved:
        notes.append(f"{result.unresolved} open disagreement(s) skipped")
    where = " into the validation sample" if label_set == "validation" else ""
    typer.echo(f"imported {len(result.rows)} labels{where}"
               + (f" ({'; '.join(notes)})" if notes else ""))


@app.command("query")
def query(
    project_dir: Path = typer.Argument(..., help="project directory"),
    budget: int = typer.Option(..., "--budget", "-b", help="how many images to ask for"),
    strategy: str | None = typer.Option(
        None, "--strategy", help=f"default: {DEFAULT_COLDSTART} with no labels yet, "
        f"{DEFAULT_ACQUISITION} afterwards"),
    seed: int = typer.Option(0, "--seed", help="random seed"),
    epochs: int | None = typer.Option(None, "--pretrain-epochs",
                                      help="contrastive pre-training epochs (first query only)"),
    ray: str | None = typer.Option(None, "--ray", help="score on Ray: local | auto | "
                                   "ray://HOST:PORT (default: this process)"),
    job: int | None = typer.Option(None, "--job", hidden=True,
                                   help="the job id this run carries out (the page's button)"),
    force: bool = typer.Option(
        False, "--force", help="close the latest round even though some of its images still "
        "need an answer (`status` then shows that round as closed)"),
) -> None:
    """Choose the next images to label and record them as a new round.

    Refused (exit 2, nothing recorded) for a bad budget, an unknown strategy, or while the
    latest round still has images without an answer (unless --force)."""
    from medactive.annotate.query import QueryConfig, run_query
    from medactive.models.cluster import check_address

    cfg = QueryConfig(seed=seed, pretrain_epochs=epochs,
                      ray=None if ray is None else check_address(ray))
    result = run_query(project_dir, budget, strategy, cfg, job_id=job, force=force)
    counts = {p: result.purposes.count(p) for p in ("validation", "second-read")}
    extra = ", ".join(f"+{n} {p}" for p, n in counts.items() if n)
    chosen = len(result.image_ids) - sum(counts.values())
    typer.echo(f"round {result.round_id}: {result.strategy} chose {chosen} images"
               f"{' (' + extra + ')' if extra else ''} ({result.seconds:.1f}s); label them with "
               f"`medactive project serve {project_dir}`")
    if result.health is not None:
        typer.echo(result.health.describe())


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


# `project backtest` lives in its own module (the product's evidence on the user's labels).
_register_backtest(app)
