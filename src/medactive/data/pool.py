"""Unlabelled pools for a cold start: a folder of images, or a CSV that only lists images.

A label-free cold start needs images, not labels, and no held-out split: the whole folder is
the pool. :func:`load_image_pool` reads

* a **folder** (``coldstart --data images/``): every PNG/JPEG/TIFF/DICOM below it, found as
  ``project init`` finds them (:func:`~medactive.data.imagefiles.find_image_files`: links that
  leave the folder are not followed); unreadable files are skipped and listed, ids are the
  paths relative to the folder;
* a **CSV listing images** (no label column), through the one CSV reader
  (:mod:`medactive.data.labelcsv`): paths relative to an image root (default: the CSV's
  folder), confined to it (:class:`~medactive.data.imagefiles.ImageResolver`); ids are the
  names as written; a file listed twice is taken once; a missing or unreadable file is an
  error naming its row.

Images are resized to ``image_size`` (default :data:`FOLDER_IMAGE_SIZE`, the same as
``project init``) with three channels if any image is in colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medactive.data.csvlabels import CsvImageRow, label_columns
from medactive.data.decode import DecodeSettings
from medactive.data.folder import SPLIT_COLUMN, image_key, image_root_of, resolve_rows
from medactive.data.imagefiles import (
    ImageDecodeError,
    SkippedFile,
    decode_files,
    decode_readable,
    find_image_files,
)
from medactive.data.labelcsv import ImageList, find_column, merge_duplicates, read_image_list
from medactive.data.pixels import to_channels
from medactive.errors import DataError

#: Side of the model input for image folders (``project init --image-size``, ``coldstart
#: --image-size``): 64 px keeps detail a 28 px MedMNIST-style thumbnail loses while contrastive
#: pre-training on a CPU stays practical; one value, so a cold start and a project's first
#: query see the same images.
FOLDER_IMAGE_SIZE = 64
MAX_IMAGE_SIZE = 1024  # a larger model input would only exhaust memory on a big folder


@dataclass(frozen=True)
class ImagePool:
    """Unlabelled images to choose from.

    Attributes:
        images: uint8 ``(N, S, S, C)``, ``C`` in {1, 3}.
        ids: ``(N,)`` object array of the images' names (relative paths, or as the CSV wrote
            them).
        description: one line saying what the pool is (for the user).
        skipped: files of a folder left out, with the reason.
    """

    images: np.ndarray
    ids: np.ndarray
    description: str
    skipped: list[SkippedFile] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.images.shape[0])


def check_image_size(image_size: int, option: str = "--image-size") -> int:
    """``image_size`` if it is a usable model input side (8..1024 pixels).

    Raises:
        DataError: naming ``option`` otherwise.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) \
            or not 8 <= image_size <= MAX_IMAGE_SIZE:
        raise DataError(f"{option} must be between 8 and {MAX_IMAGE_SIZE} pixels, "
                        f"got {image_size}")
    return image_size


def csv_labels(table: ImageList) -> bool:
    """Whether a CSV of images carries labels: a label column with at least one label, or
    one-hot columns (the layouts :func:`medactive.data.folder.load_image_folder` reads)."""
    if table.label_column is not None:
        return any(r.label for r in table.rows)
    rows = [CsvImageRow(r.line, r.name, r.cells) for r in table.rows]
    excluded = {table.id_column, find_column(table.header, (SPLIT_COLUMN,)) or ""}
    try:
        label_columns(table.path, table.header, rows, excluded, None, None)
    except DataError:
        return False
    return True


def _stack(arrays: list[np.ndarray]) -> np.ndarray:
    channels = 3 if any(a.ndim == 3 for a in arrays) else 1
    size = arrays[0].shape[:2]
    out = np.empty((len(arrays), *size, channels), dtype=np.uint8)
    for i, array in enumerate(arrays):
        out[i] = to_channels(array, channels)
    return out


def load_folder_pool(folder: str | Path, image_size: int = FOLDER_IMAGE_SIZE,
                     settings: DecodeSettings | None = None,
                     limit: int | None = None) -> ImagePool:
    """Every readable image below ``folder`` (see the module docstring); with ``limit``, the
    first ``limit`` readable ones in sorted path order.

    Raises:
        DataError: not a folder, or no readable image in it.
    """
    root = Path(folder).expanduser().resolve()
    files, refused = find_image_files(root)
    wanted = len(files) if limit is None else limit
    kept: list[int] = []
    arrays: list[np.ndarray] = []
    bad: list[SkippedFile] = []
    start = 0
    while len(kept) < wanted and start < len(files):  # the first `limit` readable files
        batch = files[start : start + wanted - len(kept)]
        got, decoded, failed = decode_readable(batch, image_size, settings=settings)
        kept += [start + i for i in got]
        arrays += decoded
        bad += failed
        start += len(batch)
    skipped = sorted(refused + bad, key=lambda f: str(f.path))
    if not arrays:
        detail = f" ({len(skipped)} unreadable, e.g. {skipped[0].path.name}: " \
                 f"{skipped[0].reason})" if skipped else ""
        raise DataError(f"no readable PNG, JPEG, TIFF or DICOM images under {folder}{detail}")
    ids = np.array([files[i].relative_to(root).as_posix() for i in kept], dtype=object)
    what = "the whole folder" if limit is None else f"the first {len(kept)} readable files"
    return ImagePool(_stack(arrays), ids,
                     f"{len(kept)} images under {folder} ({what}, no split)", skipped)


def load_list_pool(csv_path: str | Path, image_root: str | Path | None = None,
                   image_size: int = FOLDER_IMAGE_SIZE, settings: DecodeSettings | None = None,
                   id_column: str | None = None, limit: int | None = None) -> ImagePool:
    """The images a CSV lists (see the module docstring); with ``limit``, the first
    ``limit`` of them.

    Raises:
        DataError: a bad CSV, or a listed image that is missing, outside the image root or
            unreadable (naming its row).
    """
    csv_path = Path(csv_path).expanduser()
    table = read_image_list(csv_path, id_column=id_column, labels="ignore")
    return _pool_of(table, image_root, image_size, settings, limit)


def _pool_of(table: ImageList, image_root: str | Path | None, image_size: int,
             settings: DecodeSettings | None, limit: int | None) -> ImagePool:
    root = image_root_of(table.path, image_root)
    rows = [CsvImageRow(r.line, r.name, r.cells) for r in table.rows]
    paths = resolve_rows(table.path, root, rows)
    keys = [image_key(root, p) for p in paths]
    keep = merge_duplicates(table.path, keys, [""] * len(keys), [r.line for r in rows])
    rows, paths = [rows[k] for k in keep][:limit], [paths[k] for k in keep][:limit]
    try:
        arrays = decode_files(paths, image_size, settings=settings)
    except ImageDecodeError as exc:
        raise DataError(f"{table.path}: row {rows[exc.index].line}: cannot read image "
                        f"{exc}") from None
    ids = np.array([r.image_id for r in rows], dtype=object)
    where = f" (images under {root})" if root != table.path.parent else ""
    what = "all of them" if limit is None or limit >= len(keep) else f"the first {limit}"
    return ImagePool(_stack(arrays), ids,
                     f"{len(rows)} images listed in {table.path}{where} ({what}, no split)")


def load_image_pool(source: str | Path, *, image_root: str | Path | None = None,
                    image_size: int = FOLDER_IMAGE_SIZE, settings: DecodeSettings | None = None,
                    id_column: str | None = None, limit: int | None = None) -> ImagePool:
    """A folder or an unlabelled CSV as one pool (dispatch on what ``source`` is).

    Raises:
        DataError: ``source`` is neither a folder nor a ``.csv``; or see
            :func:`load_folder_pool` / :func:`load_list_pool`.
    """
    check_image_size(image_size)
    path = Path(source).expanduser()
    if path.is_dir():
        if image_root is not None:
            raise DataError("--image-root applies to a CSV; a folder is its own image root")
        return load_folder_pool(path, image_size, settings, limit)
    if path.suffix.lower() == ".csv":
        return load_list_pool(path, image_root, image_size, settings, id_column, limit)
    raise DataError(f"{source}: not a folder of images or a .csv listing them")
