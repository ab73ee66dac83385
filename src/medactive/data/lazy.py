"""Lazy image arrays and the prefetching batch loader.

A :class:`LazyImages` looks like the uint8 ``(N, H, W, C)`` array an :class:`ImageDataset` holds
(``shape``, ``dtype``, ``ndim``, ``len``) but keeps its pixels on disk: indexing with an integer,
a slice, an index array or a boolean mask *reads* those rows and returns an ordinary ndarray
batch, so code written as ``images[idx]`` (training, feature extraction, MoCo, VAAL) works
unchanged on a pool that does not fit in memory. :meth:`LazyImages.subset` is the lazy
counterpart of fancy indexing: it narrows the view without reading anything.

:func:`prefetch_batches` is the one loader every batched pass uses: it reads the next batches in a
background thread while the caller computes on the current one (reads of the decoded-image store
are ``os.preadv`` calls, which release the GIL), and reads in-memory arrays inline, so both kinds
of array go through the same interface.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from medactive.errors import DataError

#: Batches read ahead by :func:`prefetch_batches` (two hide one read behind one compute step).
DEFAULT_PREFETCH = 2


class RowSource(Protocol):
    """What a :class:`LazyImages` reads from (the decoded-image store implements it)."""

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, H, W, C)`` of the whole source."""

    @property
    def key(self) -> str:
        """A content key: equal keys mean equal pixels."""

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """uint8 ``(len(rows), H, W, C)`` images at ``rows`` (any order, repeats allowed)."""


class LazyImages:
    """A uint8 ``(N, H, W, C)`` image array read from ``source`` on demand.

    Args:
        source: the backing rows (an :class:`~medactive.data.imagestore.ImageStore`).
        index: ``(N,)`` int64 rows of ``source`` this view shows (default: all, in order).
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(self, source: RowSource, index: np.ndarray | None = None) -> None:
        self.source = source
        self._index = None if index is None else np.asarray(index, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, H, W, C)`` of this view."""
        n, h, w, c = self.source.shape
        return (n if self._index is None else int(self._index.size), h, w, c)

    @property
    def nbytes(self) -> int:
        """Bytes the view would take in memory."""
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"LazyImages(shape={self.shape}, source={self.source!r})"

    @property
    def content_key(self) -> str:
        """Hex key of the pixels this view shows: the source's content key plus the row
        selection, so two views with the same key hold the same images in the same order."""
        h = hashlib.sha256(self.source.key.encode())
        if self._index is not None:
            h.update(self._index.tobytes())
        return h.hexdigest()[:32]

    def rows(self, key: Any) -> np.ndarray:
        """``(k,)`` int64 source rows addressed by ``key`` (a slice, index array or mask)."""
        n = len(self)
        if isinstance(key, slice):
            picked = np.arange(n, dtype=np.int64)[key]
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise IndexError(f"boolean index of shape {arr.shape} for {n} images")
                picked = np.flatnonzero(arr)
            elif arr.dtype.kind in "iu" and arr.ndim == 1:
                picked = arr.astype(np.int64)
                if picked.size and (picked.min() < -n or picked.max() >= n):
                    raise IndexError(f"image index out of range for {n} images")
                picked = np.where(picked < 0, picked + n, picked)
            else:
                raise IndexError(f"LazyImages supports ints, slices, 1-D index arrays and masks; "
                                 f"got {type(key).__name__} {arr.shape}")
        return picked if self._index is None else self._index[picked]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"image {i} out of range for {len(self)} images")
            return self.source.read_rows(self.rows(np.array([i % len(self)])))[0]
        if isinstance(key, tuple):
            if len(key) >= 1 and all(k is Ellipsis or k == slice(None) for k in key[1:]):
                return self[key[0]]
            raise IndexError("LazyImages indexes whole images only (images[rows])")
        return self.source.read_rows(self.rows(key))

    def subset(self, indices: np.ndarray | Iterable[int]) -> LazyImages:
        """The view of ``self[indices]`` without reading any pixel."""
        idx = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        return LazyImages(self.source, self.rows(idx if idx.size else idx.astype(np.int64)))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        # Materialising is allowed (small pools, plots) but is never done implicitly by the
        # library's batched paths, which index in batches.
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def is_lazy(images: object) -> bool:
    """True for a :class:`LazyImages` (pixels on disk), False for an in-memory array."""
    return isinstance(images, LazyImages)


def take(images: np.ndarray | LazyImages, indices: np.ndarray) -> np.ndarray | LazyImages:
    """``images[indices]`` that stays lazy for a :class:`LazyImages` (no pixel read) and is
    ordinary fancy indexing for an ndarray."""
    if isinstance(images, LazyImages):
        return images.subset(np.asarray(indices, dtype=np.int64))
    return np.asarray(images)[np.asarray(indices, dtype=np.int64)]


def content_digest(images: np.ndarray | LazyImages) -> bytes:
    """Bytes that identify an image array's content for cache keys: the lazy view's content
    key (no pixel read), or the raw bytes of an in-memory array."""
    if isinstance(images, LazyImages):
        return f"lazy:{images.content_key}".encode()
    return np.ascontiguousarray(images).tobytes()


def prefetch_batches(
    images: np.ndarray | LazyImages,
    batches: Iterable[np.ndarray | slice],
    depth: int = DEFAULT_PREFETCH,
) -> Iterator[np.ndarray]:
    """Yield ``images[b]`` for each ``b`` of ``batches``, in order.

    For a :class:`LazyImages`, up to ``depth`` upcoming batches are read by a background thread
    while the caller works on the current one; an in-memory array is indexed inline (a copy is
    already as fast as it gets). Either way the caller sees uint8 ``(k, H, W, C)`` arrays.

    Args:
        images: uint8 ``(N, H, W, C)`` ndarray or :class:`LazyImages`.
        batches: index arrays or slices, one per batch.
        depth: batches read ahead (>= 1).
    """
    if not isinstance(images, LazyImages) or depth < 1:
        for b in batches:
            yield images[b]
        return
    pending: deque[Future[np.ndarray]] = deque()
    it = iter(batches)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="medactive-prefetch") as pool:
        try:
            for b in it:
                pending.append(pool.submit(images.__getitem__, b))
                if len(pending) > depth:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


def check_same_length(images: np.ndarray | LazyImages, n: int, what: str) -> None:
    """Raise :class:`DataError` unless ``images`` has ``n`` rows."""
    if images.shape[0] != n:
        raise DataError(f"{what}: {images.shape[0]} images for {n} rows")
