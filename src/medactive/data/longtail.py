"""Long-tailed subsampling: class sizes follow an exponential profile (as CIFAR-10-LT).

Class of rank ``r`` (0 = head) keeps ``floor(n_max * rho ** (-r / (C - 1)))`` images, so the head
class has ``n_max`` and the tail class ``n_max / rho``.
"""

from __future__ import annotations

import numpy as np

from medactive.data.dataset import DatasetSplits, ImageDataset
from medactive.errors import DataError


def long_tail_counts(n_max: int, n_classes: int, imbalance_ratio: float) -> np.ndarray:
    """``(C,)`` target sizes by rank: ``floor(n_max * rho ** (-r / (C - 1)))``."""
    if imbalance_ratio < 1:
        raise DataError(f"imbalance ratio must be >= 1, got {imbalance_ratio}")
    ranks = np.arange(n_classes, dtype=np.float64)
    return np.floor(n_max * imbalance_ratio ** (-ranks / max(n_classes - 1, 1)) + 1e-9).astype(
        np.int64
    )


def class_rank_order(counts: np.ndarray, order: str = "frequency") -> np.ndarray:
    """Classes from head to tail: by descending count (``"frequency"``, ties by index) or by
    index (``"index"``, the CIFAR-10-LT convention)."""
    if order == "index":
        return np.arange(len(counts))
    if order == "frequency":
        return np.lexsort((np.arange(len(counts)), -np.asarray(counts)))
    raise DataError(f"unknown long-tail order {order!r}; use 'frequency' or 'index'")


def make_long_tail(
    dataset: ImageDataset,
    imbalance_ratio: float,
    seed: int = 0,
    order: str = "frequency",
    n_max: int | None = None,
    class_order: np.ndarray | None = None,
) -> ImageDataset:
    """Subsample ``dataset`` so class sizes decay exponentially with imbalance ratio ``rho``.

    Args:
        dataset: labelled images.
        imbalance_ratio: ``rho`` = head size / tail size (CIFAR-10-LT uses 100).
        seed: which images are kept (deterministic per seed).
        order: head-to-tail class order when ``class_order`` is not given.
        n_max: size of the head class; default the largest value every class can supply.
        class_order: explicit head-to-tail class order (e.g. the train split's, reused for
            val/test so all splits share one profile).

    Returns:
        The subsample, images in their original relative order.
    """
    counts = dataset.class_counts()
    ranks = class_order if class_order is not None else class_rank_order(counts, order)
    profile = long_tail_counts(1_000_000, dataset.n_classes, imbalance_ratio) / 1_000_000
    feasible = int(np.floor(np.min(counts[ranks] / profile) + 1e-9))
    if n_max is None:
        n_max = feasible
    elif n_max > feasible:
        raise DataError(
            f"n_max={n_max} is infeasible: with rho={imbalance_ratio} at most {feasible} fits"
        )
    targets = long_tail_counts(n_max, dataset.n_classes, imbalance_ratio)
    rng = np.random.default_rng(seed)
    keep = []
    for rank, c in enumerate(ranks):
        members = np.flatnonzero(dataset.labels == c)
        keep.append(rng.choice(members, size=int(targets[rank]), replace=False))
    return dataset.subset(np.sort(np.concatenate(keep)))


def make_long_tail_splits(
    splits: DatasetSplits, imbalance_ratio: float, seed: int = 0, order: str = "frequency"
) -> DatasetSplits:
    """Apply one long-tail profile (class order from train) to train, val and test."""
    ranks = class_rank_order(splits.train.class_counts(), order)
    train, val, test = (
        make_long_tail(ds, imbalance_ratio, seed=seed + i, class_order=ranks)
        for i, (_, ds) in enumerate(splits.items())
    )
    return DatasetSplits(train, val, test, name=f"{splits.name}-lt{imbalance_ratio:g}",
                         meta={**splits.meta, "long_tail": imbalance_ratio, "order": order})
