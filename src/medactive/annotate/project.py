"""Project-level operations behind ``medactive project init|status|remove`` (labels files in
and out: :mod:`medactive.annotate.labelfiles`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medactive.annotate.answers import check_class_names, check_label_rows
from medactive.annotate.csvcells import (  # noqa: F401 - re-exported for callers
    CSV_ID,
    CSV_LABEL,
    FORMULA_PREFIXES,
    escape_cell,
    unescape_cell,
)
from medactive.annotate.database import db_path
from medactive.annotate.labelfiles import LabelFileOptions, read_labels_file
from medactive.annotate.store import ProjectStore
from medactive.data.decode import DecodeSettings, encode_png
from medactive.data.imagefiles import SkippedFile, find_image_files, scan_images
from medactive.data.pool import FOLDER_IMAGE_SIZE, MAX_IMAGE_SIZE  # noqa: F401 - re-exported
from medactive.errors import ConfigError, DataError, StoreError

if TYPE_CHECKING:
    from medactive.models.encoders import EncoderSpec

DEFAULT_FOLDER_SIZE = FOLDER_IMAGE_SIZE
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
    encoder: str | None = None,
    encoder_weights: Path | None = None,
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
    ``encoder`` / ``encoder_weights``: the feature encoder of the project (:func:`encoder_meta`).

    Raises:
        DataError: no folder, no readable image at all, a bad labels CSV, or (``strict``) any
            unreadable file. Nothing is created then.
        ConfigError: a bad encoder or weights (checked before the scan).
        StoreError: a project already exists in ``project_dir``.
    """
    check_image_size(image_size)
    classes = check_class_names(classes)  # before the scan: a typo fails in milliseconds
    chosen = encoder_meta(encoder, encoder_weights, features)
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
            "labels_not_imported": [u for u, _ in dropped], **chosen}
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
    encoder: str | None = None,
    encoder_weights: Path | None = None,
) -> ProjectStore:
    """Make a project from a MedMNIST ``.npz``: one split exported as PNGs under ``DIR/images``.

    Ids are the dataset ids (``train-17``), so true labels can be imported in simulations.
    Class names: ``classes``, else the registered subset's when the file's content is one
    (:func:`medactive.data.medmnist_registry.identify_medmnist`; never from the file name), else
    ``class_0..``; the project's meta says which (``class_names``: ``given``, ``registry`` or
    ``inferred``).
    ``encoder`` / ``encoder_weights``: see :func:`encoder_meta`.

    Raises:
        DataError: unknown or empty split, bad file, bad labels CSV.
        ConfigError: a bad encoder or weights.
    """
    import hashlib

    from medactive.data import load_medmnist

    if split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; use train, val or test")
    chosen = encoder_meta(encoder, encoder_weights, features)
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
                "class_names": naming, **chosen}
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


def encoder_meta(encoder: str | None, weights: Path | None, features: Path | None
                 ) -> dict[str, str | None]:
    """The project metadata naming its feature encoder (``{"encoder", "encoder_weights"}``),
    checked in milliseconds to seconds (:func:`medactive.models.encoders.check_encoder`), before
    any image is read. Your own embeddings (``features``) replace the encoder: nothing is stored.

    Raises:
        ConfigError: a bad encoder or weights, weights without an encoder, or an encoder
            together with your own embeddings.
    """
    from medactive.defaults import DEFAULT_ENCODER
    from medactive.models.encoders import check_encoder

    if features is not None:
        if encoder is not None or weights is not None:
            raise ConfigError("--features are your own embeddings and replace the encoder: "
                              "give --features or --encoder/--encoder-weights, not both")
        return {}
    if weights is not None and encoder is None:
        raise ConfigError("--encoder-weights needs --encoder (imagenet or hf:<model>)")
    return check_encoder(encoder or DEFAULT_ENCODER, weights).as_meta()


def project_encoder(meta: dict[str, Any]) -> EncoderSpec | None:
    """The project's encoder (projects made before the registry: ``moco``), or None when it
    brought its own embeddings (``init --features``). Not re-checked: a query checks it
    before it reads any image (the weights may have moved since ``init``)."""
    from medactive.models.encoders import EncoderSpec

    if meta.get("features"):
        return None
    return EncoderSpec.from_meta(meta)


def encoder_label(meta: dict[str, Any], paths: bool = True) -> str:
    """One line naming the project's encoder (``project status``; the page, without server
    paths when ``paths`` is False)."""
    spec = project_encoder(meta)
    if spec is None:
        return "your own embeddings (init --features)"
    return spec.describe(paths=paths)


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
    encoder: str = ""


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
    meta = store.meta()
    return ProjectStatus(store.n_images(), per_class, unsure, len(store.rounds()), pending,
                         latest.strategy if latest else None, len(store.removed_ids()),
                         len(meta.get("skipped", [])), encoder_label(meta))
