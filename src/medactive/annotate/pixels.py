"""A labelling project's model inputs: its images through the decoded-image store, and
optionally its own embeddings instead of a backbone.

* :func:`project_images` — every registered image, decoded once into the shared decoded-image
  store (:mod:`medactive.data.store`, keyed by the registered content hashes and the project's
  image size and channels) and returned as a lazy array, so a project of 200,000 images never
  holds them all in memory and a second query decodes nothing.
* :func:`import_features` / :func:`project_features` — ``project init --features FILE``: the
  file is checked against the registered ids and a float32 copy is kept as
  ``DIR/features.npy`` (later edits of the original cannot change a running project).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medactive.data.decode import DecodeSettings
from medactive.data.embeddings import load_embeddings
from medactive.data.imagestore import StoreSettings
from medactive.data.lazy import LazyImages
from medactive.data.store import build_store, hash_files
from medactive.errors import DataError

FEATURES_FILE = "features.npy"
IDS_FILE = "features-ids.npy"


def store_settings(meta: dict[str, Any]) -> StoreSettings:
    """The project's store settings: image size, channels and DICOM decode settings (window,
    frame) from its metadata."""
    return StoreSettings(size=int(meta.get("image_size", 28)),
                         channels=int(meta.get("channels", 3)),
                         decode=DecodeSettings.from_meta(meta.get("decode")))


def project_images(paths: Sequence[str], hashes: Sequence[str], meta: dict[str, Any],
                   progress: bool = True) -> LazyImages:
    """All registered images as a lazy uint8 ``(N, size, size, channels)`` array.

    Built (in parallel, resumable) the first time; every later call finds the same store by its
    key. Every file must still match its registered content hash: the store holds the pixels of
    the registered bytes, but a file changed since would be shown to the clinician differently
    from what the model saw, so it is refused here rather than discovered while labelling
    (re-hashing costs a fraction of decoding; docs/benchmarks.md).

    Raises:
        DataError: a file is missing, unreadable or changed since it was registered.
    """
    paths, hashes = [str(p) for p in paths], list(hashes)
    store = build_store(paths, store_settings(meta), hashes=hashes, progress=progress)
    if not store.built_now:
        for path, now, registered in zip(paths, hash_files(paths, progress), hashes, strict=True):
            if now != registered:
                raise DataError(f"{path} changed on disk since it was registered "
                                "(content hash differs)")
    return store.images


def import_features(project_dir: Path, source: Path, ids: Sequence[str]) -> str:
    """Check ``source`` (``.npy`` rows in ``ids`` order, or Parquet with an id column) against
    the project's ids and save it as ``DIR/features.npy``; returns that file name.

    Raises:
        DataError: see :func:`medactive.data.embeddings.load_embeddings`.
    """
    features = load_embeddings(source, list(ids))
    target = Path(project_dir) / FEATURES_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    # the ids travel with the rows, so images removed from the project later are skipped
    for name, array in ((IDS_FILE, np.array([str(i) for i in ids])), (FEATURES_FILE, features)):
        tmp = target.with_name(name + ".part")
        with open(tmp, "wb") as f:
            np.save(f, array)
        tmp.replace(target.with_name(name))
    return FEATURES_FILE


def project_features(project_dir: Path, meta: dict[str, Any],
                     uids: Sequence[str]) -> np.ndarray | None:
    """The project's own embeddings of the images ``uids`` (its current images, in order):
    float32 ``(len(uids), D)``, or None when the project has none."""
    name = meta.get("features")
    if not name:
        return None
    path = Path(project_dir) / str(name)
    try:
        features = np.load(path, mmap_mode="r")
        ids = np.load(path.with_name(IDS_FILE))
    except (OSError, ValueError):
        raise DataError(f"{path}: the project's embeddings file is missing or unreadable") from None
    position = {str(k): i for i, k in enumerate(ids.tolist())}
    missing = [u for u in uids if u not in position]
    if missing or features.shape[0] != len(position):
        raise DataError(f"{path}: no embedding for image {missing[0] if missing else '?'}; "
                        "the embeddings file does not match the project")
    return np.asarray(features[np.array([position[u] for u in uids], dtype=np.int64)])
