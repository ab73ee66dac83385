"""Project-level operations behind ``medactive project init|status|export|import``."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

from medactive.annotate.images import find_images, load_pil, sha256_file
from medactive.annotate.store import ProjectStore, check_class_names, check_label_rows, db_path
from medactive.errors import ConfigError, DataError, StoreError

CSV_ID = "image_id"
CSV_LABEL = "label"
DEFAULT_FOLDER_SIZE = 64
MAX_IMAGE_SIZE = 1024  # the model input side; larger would only exhaust memory on a big folder
# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) in an
# annotator name); tab and carriage return too (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _guess_channels(paths: list[Path], sample: int = 32) -> int:
    # Colour if any sampled image is colour; a grey scan never needs three identical channels.
    return 3 if any(load_pil(p).mode == "RGB" for p in paths[:sample]) else 1


def init_from_folder(
    project_dir: Path,
    folder: Path,
    classes: list[str],
    labels_csv: Path | None = None,
    image_size: int = DEFAULT_FOLDER_SIZE,
    annotator: str = "import",
) -> ProjectStore:
    """Register every PNG/JPEG/DICOM under ``folder`` (path + hash, nothing copied).

    Image ids are the paths relative to ``folder`` (POSIX separators), so a labels CSV can name
    files the way a person sees them.
    """
    check_image_size(image_size)
    folder = folder.resolve()
    files = find_images(folder)
    rows_csv = read_labels_csv(labels_csv) if labels_csv else []
    _refuse_existing(project_dir)
    rows = [(p.relative_to(folder).as_posix(), str(p), sha256_file(p)) for p in files]
    # checked before the project exists, so a bad CSV leaves nothing behind to clean up
    check_label_rows(rows_csv, {r[0] for r in rows}, classes)
    meta = {"source": str(folder), "image_size": image_size, "channels": _guess_channels(files)}
    store = ProjectStore.create(project_dir, classes, meta)
    try:
        store.add_images(rows)
        if rows_csv:
            store.import_labels(rows_csv, annotator)
    except Exception:
        store.close()
        raise
    return store


def init_from_npz(
    project_dir: Path,
    npz: Path,
    split: str = "train",
    classes: list[str] | None = None,
    limit: int | None = None,
    labels_csv: Path | None = None,
) -> ProjectStore:
    """Make a project from a MedMNIST ``.npz``: one split exported as PNGs under ``DIR/images``.

    Ids are the dataset ids (``train-17``), so true labels can be imported in simulations.
    """
    from PIL import Image

    from medactive.data import load_medmnist

    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; use train, val or test")
    splits = load_medmnist(npz, download=False)
    ds = dict(splits.items())[split]
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be positive, got {limit}")
        ds = ds.subset(range(min(limit, len(ds))))
    names = check_class_names(classes or list(ds.class_names))
    if len(names) != ds.n_classes:
        raise DataError(f"{npz} has {ds.n_classes} classes but {len(names)} names were given")
    rows_csv = read_labels_csv(labels_csv) if labels_csv else []
    check_label_rows(rows_csv, {str(u) for u in ds.ids}, names)
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
            Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path)
            rows.append((str(uid), str(path.resolve()), sha256_file(path)))
        h, _, c = ds.image_shape
        meta = {"source": str(Path(npz).resolve()), "split": split, "image_size": int(h),
                "channels": int(c)}
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


def check_image_size(image_size: int) -> None:
    """Raise :class:`ConfigError` unless ``image_size`` is a usable model input side."""
    if not isinstance(image_size, int) or not 8 <= image_size <= MAX_IMAGE_SIZE:
        raise ConfigError(f"--image-size must be between 8 and {MAX_IMAGE_SIZE} pixels, "
                          f"got {image_size}")


def _refuse_existing(project_dir: Path) -> None:
    if Path(project_dir).exists() and not Path(project_dir).is_dir():
        raise StoreError(f"{project_dir} is a file, not a folder: choose another project "
                         "directory")
    if db_path(project_dir).exists():
        raise StoreError(f"{db_path(project_dir)} already exists; a project is initialised once")


def read_labels_csv(path: Path) -> list[tuple[str, str]]:
    """Read ``image_id,label`` rows (header required; extra columns ignored)."""
    if not Path(path).is_file():
        raise DataError(f"labels file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        if CSV_ID not in fields or CSV_LABEL not in fields:
            raise DataError(f"{path}: needs a header with columns {CSV_ID!r} and {CSV_LABEL!r} "
                            f"(found: {fields})")
        rows = []
        for n, row in enumerate(reader, start=2):
            uid = unescape_cell((row.get(CSV_ID) or "").strip())
            label = unescape_cell((row.get(CSV_LABEL) or "").strip())
            if not label and row.get("decided_by") == "unresolved":
                continue  # a medactive export's open disagreement: nothing to import yet
            if not uid or not label:
                raise DataError(f"{path}, line {n}: empty {CSV_ID} or {CSV_LABEL}")
            rows.append((uid, label))
    return rows


def import_csv(store: ProjectStore, path: Path, annotator: str = "import") -> int:
    """Import a labels CSV; unknown ids or classes reject the whole file before any write."""
    return store.import_labels(read_labels_csv(path), annotator)


def escape_cell(value: str) -> str:
    """Prefix a cell that a spreadsheet would run as a formula with ``'`` (shown as text)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell`, so an exported file imports back unchanged."""
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_PREFIXES) else value


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


@dataclass
class ProjectStatus:
    """Summary for ``medactive project status``."""

    n_images: int
    per_class: dict[str, int]
    unsure: int
    rounds: int
    pending: int  # queried images of the latest round without an answer or skip
    latest_strategy: str | None


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
                         latest.strategy if latest else None)
