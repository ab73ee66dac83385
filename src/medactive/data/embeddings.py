"""Bring your own embeddings: features from a foundation model or your own network.

Two file formats, checked with one clear error each:

* ``.npy`` — a float ``(N, D)`` array, row ``i`` belonging to the ``i``-th image of the dataset
  or project (its documented order);
* ``.parquet`` — a table with an id column (``image_id``, ``id``, ``image`` or ``path``) and
  either one list-valued column (``embedding``, ``features`` or ``vector``) or ``D`` numeric
  columns; rows are matched to images by id, in any order.

The features replace the backbone: head-mode training and every strategy that works on
features run on them; cold-start strategies that need a contrastive dataset map refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medactive.data.dataset import DatasetSplits
from medactive.errors import DataError

ID_COLUMNS = ("image_id", "id", "image", "path")
VECTOR_COLUMNS = ("embedding", "features", "vector")
_CHECK_ROWS = 65536


def _check_finite(features: np.ndarray, source: str) -> None:
    # chunked: a full-size boolean temporary would be N*D bytes
    for start in range(0, features.shape[0], _CHECK_ROWS):
        block = features[start : start + _CHECK_ROWS]
        bad = ~np.isfinite(block)
        if bad.any():
            row = start + int(np.flatnonzero(bad.any(axis=1))[0])
            raise DataError(f"{source}: row {row} contains NaN or infinite values")


def _read_npy(path: Path) -> np.ndarray:
    try:
        # mmap: a million x 1024 file is not read twice; the caller copies what it keeps
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npy array ({exc})") from None
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise DataError(f"{path}: embeddings must be a 2-D (N, D) array, got shape {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{path}: embeddings must be numeric, got dtype {arr.dtype}")
    return arr


def _read_parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet embeddings needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None
    names = table.column_names
    id_col = next((c for c in ID_COLUMNS if c in names), None)
    if id_col is None:
        raise DataError(f"{path}: no id column (expected one of {', '.join(ID_COLUMNS)}; "
                        f"columns: {', '.join(names)})")
    ids = np.array([str(v) for v in table.column(id_col).to_pylist()], dtype=object)
    vec_col = next((c for c in VECTOR_COLUMNS if c in names), None)
    if vec_col is not None:
        column = table.column(vec_col).combine_chunks()
        try:
            flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
            lengths = np.diff(np.asarray(column.offsets))
        except (AttributeError, ValueError, TypeError):
            raise DataError(f"{path}: column {vec_col!r} must hold numeric lists") from None
        if lengths.size and (lengths.min() != lengths.max() or lengths[0] < 1):
            raise DataError(f"{path}: column {vec_col!r} holds vectors of different lengths "
                            f"({lengths.min()}..{lengths.max()})")
        dim = int(lengths[0]) if lengths.size else 0
        features = flat.reshape(len(ids), dim)
    else:
        numeric = [c for c in names if c != id_col]
        if not numeric:
            raise DataError(f"{path}: no embedding columns besides {id_col!r}")
        try:
            features = np.column_stack([np.asarray(table.column(c).to_numpy(), dtype=np.float32)
                                        for c in numeric])
        except (ValueError, TypeError):
            raise DataError(f"{path}: every column besides {id_col!r} must be numeric, or give "
                            f"one list column named {' / '.join(VECTOR_COLUMNS)}") from None
    return ids, features


def load_embeddings(path: str | Path, ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Read a features file and align it with ``ids`` (the dataset's or project's images).

    Args:
        path: ``.npy`` (rows in ``ids`` order) or ``.parquet`` (an id column).
        ids: ``(N,)`` image ids in the order the caller needs.

    Returns:
        float32 ``(N, D)``, row ``i`` = the features of ``ids[i]``.

    Raises:
        DataError: missing or unreadable file, unknown format, wrong row count or shape,
            missing or duplicate ids, non-numeric values, NaN or infinite values.
    """
    path = Path(path).expanduser()
    ids = np.asarray(ids, dtype=object)
    if not path.is_file():
        raise DataError(f"embeddings file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = _read_npy(path)
        if arr.shape[0] != ids.size:
            raise DataError(f"{path}: {arr.shape[0]} rows of embeddings for {ids.size} images "
                            "(a .npy file has one row per image, in the images' order)")
        features = np.asarray(arr, dtype=np.float32)
    elif suffix in (".parquet", ".pq"):
        file_ids, table = _read_parquet(path)
        position: dict[str, int] = {}
        for i, key in enumerate(file_ids):
            if key in position:
                raise DataError(f"{path}: id {key!r} appears twice (rows {position[key]} and {i})")
            position[key] = i
        missing = [str(k) for k in ids if str(k) not in position]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            raise DataError(f"{path}: no embedding for image id(s) {', '.join(missing[:3])}{more}")
        features = table[np.array([position[str(k)] for k in ids], dtype=np.int64)]
    else:
        raise DataError(f"{path}: unknown embeddings format {suffix or '(none)'}; use .npy or "
                        ".parquet")
    _check_finite(features, str(path))
    return np.ascontiguousarray(features, dtype=np.float32)


def split_embeddings(
    path: str | Path, source: DatasetSplits, splits: DatasetSplits
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings of the ``train, val, test`` images of ``splits`` (any re-split, long tail or
    subsample of ``source``), found by image id.

    Args:
        path: ``.npy`` with one row per image of ``source`` in train, val, test order, or
            Parquet with an id column holding the dataset's ids (e.g. ``train-17``).
        source: the dataset as loaded, before re-splitting or limits (fixes the ``.npy`` order).
        splits: the splits the experiment uses.

    Returns:
        float32 ``(N_train, D)``, ``(N_val, D)``, ``(N_test, D)``.
    """
    all_ids = np.concatenate([ds.ids for _, ds in source.items()])
    features = load_embeddings(path, [str(i) for i in all_ids])
    position = {str(key): i for i, key in enumerate(all_ids)}
    train, val, test = (features[np.array([position[str(i)] for i in ds.ids], dtype=np.int64)]
                        for _, ds in splits.items())
    return train, val, test
