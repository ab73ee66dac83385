"""The one in-memory dataset type used across medactive.

Images are kept as uint8 arrays ``(N, H, W, C)`` with ``C`` in {1, 3}; conversion to float tensors
happens in :mod:`medactive.models` right before a forward pass, so a dataset of 100k 28x28 RGB
images costs 235 MB, not four times that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from medactive.data.lazy import is_lazy, take
from medactive.errors import DataError

UNKNOWN_LABEL = -1


@dataclass(frozen=True)
class ImageDataset:
    """Images with (possibly unknown) labels, class names and stable string ids.

    Attributes:
        images: uint8 array ``(N, H, W, C)``, ``C`` in {1, 3}: in memory, or a
            :class:`~medactive.data.lazy.LazyImages` read from a decoded-image store (indexing
            returns batches; :meth:`subset` stays lazy).
        labels: int64 array ``(N,)``; ``-1`` marks an unknown label.
        class_names: one name per class, index order.
        ids: ``(N,)`` array of unique strings identifying each image across subsets.
        name: human-readable dataset name (for messages and reports).
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    ids: np.ndarray
    name: str = "dataset"

    def __post_init__(self) -> None:
        images, labels, ids = self.images, self.labels, self.ids
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise DataError(
                f"{self.name}: images must have shape (N, H, W, C) with C in (1, 3), "
                f"got {images.shape}"
            )
        if images.dtype != np.uint8:
            raise DataError(f"{self.name}: images must be uint8, got {images.dtype}")
        if labels.shape != (images.shape[0],):
            raise DataError(
                f"{self.name}: labels shape {labels.shape} does not match {images.shape[0]} images"
            )
        if ids.shape != (images.shape[0],):
            raise DataError(
                f"{self.name}: ids shape {ids.shape} does not match {images.shape[0]} images"
            )
        n_classes = len(self.class_names)
        if n_classes < 2:
            raise DataError(f"{self.name}: need at least 2 classes, got {n_classes}")
        if labels.size and (labels.min() < UNKNOWN_LABEL or labels.max() >= n_classes):
            bad = labels[(labels < UNKNOWN_LABEL) | (labels >= n_classes)][0]
            raise DataError(
                f"{self.name}: label {int(bad)} out of range for {n_classes} classes "
                f"(valid: 0..{n_classes - 1}, or -1 for unknown)"
            )

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: np.ndarray | None,
        class_names: Sequence[str],
        ids: Sequence[str] | np.ndarray | None = None,
        name: str = "dataset",
        id_prefix: str = "",
    ) -> ImageDataset:
        """Build a dataset, normalising shapes: ``(N, H, W)`` becomes ``(N, H, W, 1)``.

        Args:
            images: uint8 ``(N, H, W)`` or ``(N, H, W, C)``.
            labels: ``(N,)`` or ``(N, 1)`` integer labels, or ``None`` for all unknown.
            class_names: class names in index order.
            ids: ``(N,)`` unique ids; default ``f"{id_prefix}{i}"``.
        """
        if not is_lazy(images):  # a LazyImages stays on disk
            images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        n = images.shape[0]
        if labels is None:
            labels = np.full(n, UNKNOWN_LABEL, dtype=np.int64)
        labels = np.asarray(labels)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        labels = labels.astype(np.int64, copy=False)
        if ids is None:
            ids = np.array([f"{id_prefix}{i}" for i in range(n)], dtype=object)
        ids = np.asarray(ids, dtype=object)
        return cls(images, labels, tuple(class_names), ids, name)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one image."""
        _, h, w, c = self.images.shape
        return int(h), int(w), int(c)

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageDataset:
        """Return the images at ``indices`` (ids travel with them, so they stay stable)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise DataError(f"{self.name}: subset index out of range for {len(self)} images")
        images = cast(np.ndarray, take(self.images, idx))  # a lazy view stays lazy
        return ImageDataset(images, self.labels[idx], self.class_names, self.ids[idx], self.name)

    def with_labels(self, labels: np.ndarray) -> ImageDataset:
        """Return a copy with ``labels`` replaced (images are shared, not copied)."""
        return ImageDataset(
            self.images, np.asarray(labels, dtype=np.int64), self.class_names, self.ids, self.name
        )

    def class_counts(self) -> np.ndarray:
        """``(C,)`` int64 count of known labels per class."""
        known = self.labels[self.labels >= 0]
        return np.bincount(known, minlength=self.n_classes).astype(np.int64)


@dataclass(frozen=True)
class DatasetSplits:
    """Train / validation / test splits of one dataset."""

    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    name: str = "dataset"
    meta: dict = field(default_factory=dict)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names shared by the three splits."""
        return self.train.class_names

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return self.train.n_classes

    def items(self) -> list[tuple[str, ImageDataset]]:
        """``[("train", ...), ("val", ...), ("test", ...)]``."""
        return [("train", self.train), ("val", self.val), ("test", self.test)]
