"""Project-level operations behind ``medactive project init|status|export|import``."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from medactive.annotate.images import find_images, load_pil, sha256_file
from medactive.annotate.store import ProjectStore, check_label_rows, db_path
from medactive.errors import DataError, StoreError

CSV_ID = "image_id"
CSV_LABEL = "label"
DEFAULT_FOLDER_SIZE = 64


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
    features: Path | None = None,
) -> ProjectStore:
    """Register every PNG/JPEG/DICOM under ``folder`` (path + hash, nothing copied) and decode
    them once into the decoded-image store (parallel, resumable; later queries reuse it).

    Image ids are the paths relative to ``folder`` (POSIX separators), so a labels CSV can name
    files the way a person sees them. ``features``: your own embeddings (``.npy`` rows in the
    sorted file order, or Parquet with an ``image_id`` column of those ids); queries then skip
    contrastive pre-training.
    """
    folder = folder.resolve()
    files = find_images(folder)
    rows_csv = read_labels_csv(labels_csv) if labels_csv else []
    _refuse_existing(project_dir)
    rows = [(p.relative_to(folder).as_posix(), str(p), sha256_file(p)) for p in files]
    # checked before the project exists, so a bad CSV leaves nothing behind to clean up
    check_label_rows(rows_csv, {r[0] for r in rows}, classes)
    meta = {"source": str(folder), "image_size": image_size, "channels": _guess_channels(files)}
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


def init_from_npz(
    project_dir: Path,
    npz: Path,
    split: str = "train",
    classes: list[str] | None = None,
    limit: int | None = None,
    labels_csv: Path | None = None,
    features: Path | None = None,
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
    names = classes or list(ds.class_names)
    if len(names) != ds.n_classes:
        raise DataError(f"{npz} has {ds.n_classes} classes but {len(names)} names were given")
    rows_csv = read_labels_csv(labels_csv) if labels_csv else []
    check_label_rows(rows_csv, {str(u) for u in ds.ids}, names)
    _refuse_existing(project_dir)
    out = Path(project_dir) / "images"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for img, uid in zip(ds.images, ds.ids, strict=True):
        path = out / f"{uid}.png"
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path)
        rows.append((str(uid), str(path.resolve()), sha256_file(path)))
    h, _, c = ds.image_shape
    meta = {"source": str(Path(npz).resolve()), "split": split, "image_size": int(h),
            "channels": int(c)}
    meta.update(_model_inputs(project_dir, rows, meta, features))
    store = ProjectStore.create(project_dir, names, meta)
    store.add_images(rows)
    if rows_csv:
        store.import_labels(rows_csv, "import")
    return store


def _model_inputs(project_dir: Path, rows: list[tuple[str, str, str]], meta: dict,
                  features: Path | None) -> dict:
    """Decode every image into the store and import ``features``, before the project exists
    (a bad file or embedding fails ``init`` with nothing half-made); returns extra metadata."""
    from medactive.annotate.pixels import import_features, project_images

    project_images([r[1] for r in rows], [r[2] for r in rows], meta)
    if features is None:
        return {}
    return {"features": import_features(project_dir, features, [r[0] for r in rows]),
            "features_source": str(Path(features).resolve())}


def _refuse_existing(project_dir: Path) -> None:
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
            uid, label = (row.get(CSV_ID) or "").strip(), (row.get(CSV_LABEL) or "").strip()
            if not uid or not label:
                raise DataError(f"{path}, line {n}: empty {CSV_ID} or {CSV_LABEL}")
            rows.append((uid, label))
    return rows


def import_csv(store: ProjectStore, path: Path, annotator: str = "import") -> int:
    """Import a labels CSV; unknown ids or classes reject the whole file before any write."""
    return store.import_labels(read_labels_csv(path), annotator)


def export_csv(store: ProjectStore, path: Path | None) -> list[dict[str, str]]:
    """Write the current labels as CSV (``image_id,label,annotator,labelled_at,path``).

    ``unsure`` answers are exported too (label ``unsure``) so nothing said is dropped silently;
    filter them out for training. Returns the rows; writes nothing when ``path`` is None.
    """
    names = store.classes()
    paths = {img.id: img.path for img in store.images()}
    rows = []
    for ans in sorted(store.current_answers().values(), key=lambda a: a.image_id):
        rows.append({CSV_ID: ans.uid,
                     CSV_LABEL: names[ans.class_idx] if ans.kind == "label" else "unsure",
                     "annotator": ans.annotator, "labelled_at": ans.created_at,
                     "path": paths[ans.image_id]})
    if path is not None:
        tmp = Path(path).with_suffix(Path(path).suffix + ".part")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=[CSV_ID, CSV_LABEL, "annotator", "labelled_at",
                                                   "path"])
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(path)
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
    """Labelled per class, unsure answers, rounds and pending queries."""
    names = store.classes()
    per_class = dict.fromkeys(names, 0)
    unsure = 0
    for ans in store.current_answers().values():
        if ans.kind == "label":
            per_class[names[ans.class_idx]] += 1
        else:
            unsure += 1
    latest = store.latest_round()
    pending = 0 if latest is None else sum(not q.done for q in store.queue(latest.id))
    return ProjectStatus(store.n_images(), per_class, unsure, len(store.rounds()), pending,
                         latest.strategy if latest else None)
