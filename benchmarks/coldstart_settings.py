"""Datasets of the cold-start study (docs/coldstart.md), all built from the one BloodMNIST file.

* ``blood`` — BloodMNIST as shipped (8 classes, RGB, 11,959 training images).
* ``blood-lt20`` — long-tailed BloodMNIST, imbalance ratio 20 (head class 20x the tail class).
* ``blood-grey`` — BloodMNIST converted to one grey channel (ITU-R BT.601 luma): exercises the
  grey-scale augmentation path (crop, flip, brightness/contrast, rotation) that CT data uses.
* ``blood-gm4`` — a 4-class subset of look-alike cells (eosinophil, immature granulocyte, monocyte,
  neutrophil): fewer, harder-to-separate classes.

Every setting is label-free for the selection; labels are used only to score the picks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medactive.data import DatasetSplits, ImageDataset
from medactive.data.loading import load_dataset
from medactive.data.longtail import make_long_tail_splits

SETTINGS = ("blood", "blood-lt20", "blood-grey", "blood-gm4")
GM4_CLASSES = (1, 3, 5, 6)


def _grey(ds: ImageDataset) -> ImageDataset:
    rgb = ds.images.astype(np.float32)
    y = np.clip(np.rint(rgb @ np.array([0.299, 0.587, 0.114], np.float32)), 0, 255)
    return ImageDataset(y.astype(np.uint8)[..., None], ds.labels, ds.class_names, ds.ids, ds.name)


def _classes(ds: ImageDataset, keep: tuple[int, ...]) -> ImageDataset:
    sub = ds.subset(np.flatnonzero(np.isin(ds.labels, keep)))
    relabel = np.full(ds.n_classes, -1, dtype=np.int64)
    relabel[list(keep)] = np.arange(len(keep))
    names = tuple(ds.class_names[c] for c in keep)
    return ImageDataset(sub.images, relabel[sub.labels], names, sub.ids, sub.name)


def build_setting(name: str, data: str | Path = "bloodmnist") -> DatasetSplits:
    """The splits of setting ``name`` (see the module docstring)."""
    base = load_dataset(data)
    if name == "blood":
        return base
    if name == "blood-lt20":
        return make_long_tail_splits(base, 20.0, seed=0)
    if name == "blood-grey":
        return DatasetSplits(*(_grey(ds) for _, ds in base.items()), name="bloodmnist-grey")
    if name == "blood-gm4":
        return DatasetSplits(*(_classes(ds, GM4_CLASSES) for _, ds in base.items()),
                             name="bloodmnist-gm4")
    raise SystemExit(f"error: unknown setting {name!r}; choose from {', '.join(SETTINGS)}")
