"""Seeded stratified splits for datasets that ship without official ones.

The information-gain paper splits its DR data 5000/1000/2408 at random; we stratify so that small
validation sets still contain every class, which AEIG's class frequencies (pi_c) rely on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medactive.data.dataset import DatasetSplits, ImageDataset
from medactive.errors import DataError


def _resolve_sizes(n: int, sizes: Sequence[float]) -> tuple[int, int, int]:
    if len(sizes) != 3:
        raise DataError(f"split sizes must be (train, val, test), got {tuple(sizes)}")
    if any(s < 0 for s in sizes):
        raise DataError(f"split sizes must be non-negative, got {tuple(sizes)}")
    if all(float(s) <= 1.0 for s in sizes) and any(0 < float(s) < 1 for s in sizes):
        total = float(sum(sizes))
        if total > 1.0 + 1e-9:
            raise DataError(f"split fractions sum to {total:.3f} > 1")
        n_val, n_test = round(sizes[1] * n), round(sizes[2] * n)
        n_train = n - n_val - n_test if abs(total - 1.0) < 1e-9 else round(sizes[0] * n)
        return n_train, n_val, n_test
    counts = tuple(int(s) for s in sizes)
    if sum(counts) > n:
        raise DataError(f"split sizes {counts} need {sum(counts)} images but the dataset has {n}")
    return counts  # type: ignore[return-value]


def stratified_split(
    dataset: ImageDataset, sizes: Sequence[float] = (0.7, 0.1, 0.2), seed: int = 0
) -> DatasetSplits:
    """Split ``dataset`` into train/val/test keeping class proportions (seeded).

    Args:
        dataset: labelled images (every label known).
        sizes: ``(n_train, n_val, n_test)`` counts (e.g. the paper's 5000/1000/2408) or fractions
            summing to at most 1.
        seed: random seed; the same seed gives the same split.

    Returns:
        The three splits; ids are kept, so images can be traced back to the source.
    """
    labels = dataset.labels
    if (labels < 0).any():
        raise DataError("stratified_split needs every label known")
    n = len(dataset)
    n_train, n_val, n_test = _resolve_sizes(n, sizes)
    rng = np.random.default_rng(seed)
    # Sequential largest-remainder apportionment: each split takes its share of what is left
    # of every class, capped by what is left, so sizes are exact and no class is over-drawn.
    order = rng.permutation(n)
    by_class = [order[labels[order] == c] for c in range(dataset.n_classes)]
    wanted = [n_train, n_val, n_test]
    remaining = np.array([len(b) for b in by_class], dtype=np.int64)
    remaining_total = n
    taken = np.zeros(dataset.n_classes, dtype=np.int64)
    parts: list[list[np.ndarray]] = [[], [], []]
    for j in range(3):
        quota = remaining * wanted[j] / max(remaining_total, 1)
        alloc = np.minimum(np.floor(quota + 1e-12).astype(np.int64), remaining)
        frac = np.where(alloc < remaining, quota - alloc, -1.0)
        extra = np.argsort(-frac, kind="stable")[: wanted[j] - int(alloc.sum())]
        alloc[extra] += 1
        for c, members in enumerate(by_class):
            parts[j].append(members[taken[c] : taken[c] + alloc[c]])
        taken += alloc
        remaining -= alloc
        remaining_total -= wanted[j]
    idx = [np.sort(np.concatenate(p)) for p in parts]
    name = dataset.name
    return DatasetSplits(
        dataset.subset(idx[0]), dataset.subset(idx[1]), dataset.subset(idx[2]), name=name,
        meta={"split": "stratified", "seed": seed, "sizes": [len(i) for i in idx]},
    )
