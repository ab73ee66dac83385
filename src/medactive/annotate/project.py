"""Project-level operations behind ``medactive project init|status|export|import``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medactive.annotate.answers import check_class_names, check_label_rows
from medactive.annotate.csvcells import (  # noqa: F401 - re-exported for callers
    CSV_ID,
    CSV_LABEL,
    FORMULA_PREFIXES,
    escape_cell,
    unescape_cell,
)
from medactive.annotate.database import db_path
from medactive.annotate.store import ProjectStore
from medactive.data.decode import DecodeSettings, encode_png
from medactive.data.imagefiles import SkippedFile, find_image_files, scan_images
from medactive.data.labelcsv import (
    ClassMatcher,
    match_image_names,
    merge_duplicates,
    read_image_list,
)
from medactive.data.pool import FOLDER_IMAGE_SIZE, MAX_IMAGE_SIZE  # noqa: F401 - re-exported
from medactive.errors import ConfigError, DataError, StoreError

DEFAULT_FOLDER_SIZE = FOLDER_IMAGE_SIZE
#: Where imported labels go: the training labels, or the project's validation sample.
IMPORT_SETS = ("training", "validation")


@dataclass(frozen=True)
class LabelFileOptions:
    """How to read a labels file: the CSV's id and label columns (default: detected)."""

    id_column: str | None = None
    label_column: str | None = None


@dataclass(frozen=True)
class LabelRows:
    """What a labels file says, matched to a project: ``(image id, answer)`` rows (answer: a
    class name as the project spells it, or ``unsure``), one per image, and how many rows of
    the file were duplicates taken once or open disagreements skipped."""

    rows: list[tuple[str, str]]
    duplicates: int = 0
    unresolved: int = 0


def init_from_folder(
    project_dir: Path,
    folder: Path,
    classes: list[str],
    labels_csv: Path | None = None,
    image_size: int = DEFAULT_FOLDER_SIZE,
    annotator: str = "import",
    settings: DecodeSettings | None = None,
    strict: bool = False,
    features: Path | None = None,
    label_options: LabelFileOptions | None = None,
) -> ProjectStore:
    """Register every readable PNG/JPEG/TIFF/DICOM under ``folder`` (path + hash, nothing copied)
    and decode them once into the decoded-image store (parallel, resumable; queries reuse it).

    Every file is read, hashed and decoded (in parallel, with a progress bar) with ``settings``,
    which are stored in the project so ``query`` and ``serve`` decode the same way. Files that
    cannot be used (empty, undecodable, links leaving the folder) are skipped and listed in the
    project's meta (``skipped``; see :func:`skipped_files`); with ``strict`` any of them rejects
    the whole folder instead. Labels in ``labels_csv`` for skipped files are not imported (they
    are listed too).

    Image ids are the paths relative to ``folder`` (POSIX separators), so a labels CSV can name
    files the way a person sees them (or by a unique file name: :func:`read_labels_file`).
    ``features``: your own embeddings (``.npy`` rows in the registered order, or Parquet with an
    ``image_id`` column of those ids); queries then skip contrastive pre-training.

    Raises:
        DataError: no folder, no readable image at all, a bad labels CSV, or (``strict``) any
            unreadable file. Nothing is created then.
        StoreError: a project already exists in ``project_dir``.
    """
    check_image_size(image_size)
    classes = check_class_names(classes)  # before the scan: a typo fails in milliseconds
    settings = settings or DecodeSettings()
    root = Path(folder).expanduser().resolve()
    files, refused = find_image_files(root)
    uid = {p: p.relative_to(root).as_posix() for p in [*files, *(f.path for f in refused)]}
    # checked before the slow scan and before the project exists: a bad CSV fails in
    # milliseconds and leaves nothing behind to clean up
    rows_csv = read_labels_file(labels_csv, list(uid.values()), classes,
                                label_options).rows if labels_csv else []
    check_label_rows(rows_csv, set(uid.values()), classes)
    _refuse_existing(project_dir)
    good, bad = scan_images(files, image_size, settings=settings)
    skipped = sorted(refused + bad, key=lambda f: str(f.path))
    if strict and skipped:
        first = skipped[0]
        raise DataError(f"{len(skipped)} of {len(files) + len(refused)} files under {root} "
                        f"cannot be used (first: {uid[first.path]}: {first.reason}); nothing "
                        "registered")
    if not good:
        detail = f" ({len(skipped)} unreadable, e.g. {uid[skipped[0].path]}: " \
                 f"{skipped[0].reason})" if skipped else ""
        raise DataError(f"no readable PNG, JPEG, TIFF or DICOM images under {root}{detail}")
    rows = [(uid[g.path], str(g.path.resolve()), g.sha256) for g in good]
    skipped_uids = {uid[f.path] for f in skipped}
    dropped = [r for r in rows_csv if r[0] in skipped_uids]
    rows_csv = [r for r in rows_csv if r[0] not in skipped_uids]
    meta = {"source": str(root), "image_size": image_size,
            # colour if any image is colour: a grey scan never needs three identical channels
            "channels": 3 if any(g.colour for g in good) else 1,
            "decode": settings.to_meta(),
            "skipped": [{"image_id": uid[f.path], "reason": f.reason} for f in skipped],
            "labels_not_imported": [u for u, _ in dropped]}
    meta.update(_model_inputs(project_dir, rows, meta, features))
    store = ProjectStore.create(project_dir, classes, meta)
    try:
        store.add_images(rows)
        if rows_csv:
            store.import_labels(rows_csv, annotator)
    except Exception:
        store.close()
        raise
    return store


def skipped_files(store: ProjectStore) -> list[SkippedFile]:
    """Files left out at ``init`` (id relative to the image folder, and why)."""
    return [SkippedFile(Path(s["image_id"]), s["reason"]) for s in store.meta().get("skipped", [])]


def decode_settings(store: ProjectStore) -> DecodeSettings:
    """The project's decode settings (window, frame); projects made before they existed get
    the defaults."""
    return DecodeSettings.from_meta(store.meta().get("decode"))


def init_from_npz(
    project_dir: Path,
    npz: Path,
    split: str = "train",
    classes: list[str] | None = None,
    limit: int | None = None,
    labels_csv: Path | None = None,
    features: Path | None = None,
    label_options: LabelFileOptions | None = None,
) -> ProjectStore:
    """Make a project from a MedMNIST ``.npz``: one split exported as PNGs under ``DIR/images``.

    Ids are the dataset ids (``train-17``), so true labels can be imported in simulations.
    Class names: ``classes``, else the registered subset's when the file's content is one
    (:func:`medactive.data.medmnist.identify_medmnist`; never from the file name), else
    ``class_0..``; the project's meta says which (``class_names``: ``given``, ``registry`` or
    ``inferred``).

    Raises:
        DataError: unknown or empty split, bad file, bad labels CSV.
    """
    import hashlib

    from medactive.data import load_medmnist

    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; use train, val or test")
    splits = load_medmnist(npz, download=False)
    ds = dict(splits.items())[split]
    if len(ds) == 0:
        raise DataError(f"{npz}: the {split} split is empty (0 images)")
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be positive, got {limit}")
        ds = ds.subset(range(min(limit, len(ds))))
    names = check_class_names(classes or list(ds.class_names))
    if len(names) != ds.n_classes:
        raise DataError(f"{npz} has {ds.n_classes} classes but {len(names)} names were given")
    naming = "given" if classes else \
        ("inferred" if splits.meta.get("class_names") == "inferred" else "registry")
    ids = [str(u) for u in ds.ids]
    rows_csv = read_labels_file(labels_csv, ids, names, label_options).rows if labels_csv else []
    check_label_rows(rows_csv, set(ids), names)
    _refuse_existing(project_dir)
    # everything is checked; from here on a failure removes what this call wrote
    out = Path(project_dir) / "images"
    created = [d for d in (Path(project_dir), out) if not d.exists()]
    store = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for img, uid in zip(ds.images, ds.ids, strict=True):
            path = out / f"{uid}.png"
            data = encode_png(img)
            path.write_bytes(data)
            rows.append((str(uid), str(path.resolve()), hashlib.sha256(data).hexdigest()))
        h, _, c = ds.image_shape
        meta = {"source": str(Path(npz).resolve()), "split": split, "image_size": int(h),
                "channels": int(c), "decode": DecodeSettings().to_meta(),
                "class_names": naming}
        meta.update(_model_inputs(project_dir, rows, meta, features))
        store = ProjectStore.create(project_dir, names, meta)
        store.add_images(rows)
        if rows_csv:
            store.import_labels(rows_csv, "import")
    except BaseException:
        if store is not None:
            store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db_path(project_dir)}{suffix}").unlink(missing_ok=True)
        for folder in reversed(created):  # only folders this call created, never the user's
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return store


def _model_inputs(project_dir: Path, rows: list[tuple[str, str, str]], meta: dict,
                  features: Path | None) -> dict:
    """Decode every image into the decoded-image store and import ``features``, before the
    project exists (a bad file or embedding fails ``init`` with nothing half-made); returns the
    extra metadata."""
    from medactive.annotate.pixels import import_features, project_images

    project_images([r[1] for r in rows], [r[2] for r in rows], meta)
    if features is None:
        return {}
    return {"features": import_features(project_dir, features, [r[0] for r in rows]),
            "features_source": str(Path(features).resolve())}


def check_image_size(image_size: int) -> None:
    """Raise :class:`ConfigError` unless ``image_size`` is a usable model input side (the
    rule of :func:`medactive.data.pool.check_image_size`, shared with ``coldstart``)."""
    from medactive.data.pool import check_image_size as check

    try:
        check(image_size)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


def _refuse_existing(project_dir: Path) -> None:
    if Path(project_dir).exists() and not Path(project_dir).is_dir():
        raise StoreError(f"{project_dir} is a file, not a folder: choose another project "
                         "directory")
    if db_path(project_dir).exists():
        raise StoreError(f"{db_path(project_dir)} already exists; a project is initialised once")


def read_labels_csv(path: Path, image_ids: Sequence[str], classes: Sequence[str],
                    options: LabelFileOptions | None = None) -> LabelRows:
    """Read a labels CSV for a project with ``image_ids`` and ``classes``, through the one CSV
    reader (:mod:`medactive.data.labelcsv`).

    * columns: detected (``image_id``/``image``/``filename``/... and ``label``/``class``/
      ``diagnosis``/...) or named in ``options``; other columns are ignored;
    * images: by id, or by a file name (with or without extension) that is unique in the
      project; ambiguous and unknown names are refused, named;
    * classes: case-insensitively (``Basophil`` is ``basophil``), or ``unsure``;
    * the same image twice with the same label is taken once; with two labels the file is
      refused, naming the rows;
    * cells escaped against spreadsheet formulas by :func:`export_csv` are read back
      unescaped, and a medactive export's open disagreements (empty label, ``decided_by`` =
      ``unresolved``) are skipped.

    Raises:
        DataError: one line naming every problem found; nothing is returned then.
    """
    opts = options or LabelFileOptions()
    table = read_image_list(path, id_column=opts.id_column, label_column=opts.label_column,
                            labels="required", what="labels file")
    decided_by = next((h for h in table.header if h.lower() == "decided_by"), None)
    kept, unresolved = [], 0
    for row in table.rows:
        label = unescape_cell(row.label)
        if not label and decided_by and row.cells.get(decided_by) == "unresolved":
            unresolved += 1  # a medactive export's open disagreement: nothing to import yet
            continue
        if not label:
            raise DataError(f"{path}: row {row.line}: empty label in column "
                            f"{table.label_column!r} for {row.name!r}")
        kept.append((row.line, unescape_cell(row.name), label))
    if not kept:
        return LabelRows([], 0, unresolved)
    uid_of = match_image_names([name for _, name, _ in kept], list(image_ids), path)
    match = ClassMatcher(list(classes), extra=("unsure",))
    unknown = sorted({label for _, _, label in kept if match(label) is None})
    if unknown:
        raise DataError(f"{path}: unknown class(es) {', '.join(repr(u) for u in unknown[:5])}"
                        f"{' ...' if len(unknown) > 5 else ''} (classes: {', '.join(classes)}; "
                        "case does not matter)")
    uids = [uid_of[name] for _, name, _ in kept]
    answers = [str(match(label)) for _, _, label in kept]
    keep = merge_duplicates(path, uids, answers, [line for line, _, _ in kept])
    return LabelRows([(uids[k], answers[k]) for k in keep], len(kept) - len(keep), unresolved)


#: Readers of labels files by suffix: ``reader(path, image_ids, classes, options)``. Another
#: format (a Label Studio JSON export) plugs in here.
LABEL_READERS: dict[str, Callable[[Path, Sequence[str], Sequence[str], LabelFileOptions],
                                  LabelRows]] = {".csv": read_labels_csv}


def read_labels_file(path: Path, image_ids: Sequence[str], classes: Sequence[str],
                     options: LabelFileOptions | None = None) -> LabelRows:
    """Read a labels file with the reader its suffix names (:data:`LABEL_READERS`).

    Raises:
        DataError: a file type no reader is registered for, or the reader's refusal.
    """
    path = Path(path)
    reader = LABEL_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: cannot import {path.suffix or 'a file without suffix'} "
                        f"files; known: {', '.join(sorted(LABEL_READERS))}")
    return reader(path, image_ids, classes, options or LabelFileOptions())


def import_labels_file(store: ProjectStore, path: Path, annotator: str = "import", *,
                       options: LabelFileOptions | None = None,
                       label_set: str = "training") -> LabelRows:
    """Import a labels file into ``store``: every row checked first, then one transaction.

    ``label_set`` ``validation`` puts the images into the project's validation sample
    (:meth:`~medactive.annotate.answers.AnswerRecords.import_labels`).

    Raises:
        DataError / StoreError: an unknown set, or any problem in the file (nothing written).
    """
    if label_set not in IMPORT_SETS:
        raise DataError(f"--set must be training or validation, got {label_set!r}")
    store.check_writable()
    result = read_labels_file(path, [img.uid for img in store.images()], store.classes(),
                              options)
    if not result.rows:  # e.g. an export holding only open disagreements: nothing to write
        return result
    store.import_labels(result.rows, annotator, validation=label_set == "validation",
                        source=Path(path).name)
    return result


def import_csv(store: ProjectStore, path: Path, annotator: str = "import") -> int:
    """Import a labels CSV; unknown ids or classes reject the whole file before any write."""
    return len(import_labels_file(store, path, annotator).rows)


def export_csv(store: ProjectStore, path: Path | None) -> list[dict[str, str]]:
    """Write one CSV row per image with an answer (:mod:`medactive.annotate.exports`): final
    label, how it was decided, training or validation, every reader's answer, who and when, the
    file's path. Cells starting with ``= + - @`` (tab, CR) are written with a leading ``'`` so
    a spreadsheet shows them instead of running them; :func:`read_labels_csv` strips it again.
    Returns the rows (unescaped); writes nothing when ``path`` is None.

    Raises:
        StoreError: the output folder is missing or not writable (nothing is written).
    """
    from medactive.annotate.exports import csv_rows, csv_text, write_atomically

    rows = csv_rows(store)
    if path is not None:
        text = csv_text(rows)
        write_atomically(Path(path), lambda f: f.write(text))
    return rows


def remove_images(store: ProjectStore, uids: list[str], reason: str = "",
                  annotator: str = "cli") -> int:
    """Take images out of the project (``project remove``): recorded with reason, annotator and
    time; labels are kept in the history but the images are never queried, shown or exported
    again. Unknown or already removed ids reject the whole call."""
    if not uids:
        raise DataError("give at least one image id to remove")
    return len(store.remove_images(uids, reason or "removed by user", annotator))


@dataclass
class ProjectStatus:
    """Summary for ``medactive project status``."""

    n_images: int
    per_class: dict[str, int]
    unsure: int
    rounds: int
    pending: int  # queried images of the latest round without an answer or skip
    latest_strategy: str | None
    removed: int = 0
    skipped_at_init: int = 0


def project_status(store: ProjectStore) -> ProjectStatus:
    """Decided labels per class, unsure decisions, rounds and pending queries."""
    from medactive.annotate.consensus import decisions

    names = store.classes()
    per_class = dict.fromkeys(names, 0)
    unsure = 0
    for d in decisions(store).values():
        if d.label is not None:
            per_class[names[d.label]] += 1
        elif d.answer == "unsure":
            unsure += 1
    latest = store.latest_round()
    pending = 0 if latest is None else sum(not q.done for q in store.queue(latest.id))
    return ProjectStatus(store.n_images(), per_class, unsure, len(store.rounds()), pending,
                         latest.strategy if latest else None, len(store.removed_ids()),
                         len(store.meta().get("skipped", [])))
