"""The dataset type, seeded stratified splits and the long-tail maker."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medactive.data import (
    ImageDataset,
    long_tail_counts,
    make_long_tail,
    make_long_tail_splits,
    stratified_split,
)
from medactive.errors import DataError


def _toy(counts, seed=0):
    labels = np.concatenate([np.full(c, k) for k, c in enumerate(counts)])
    rng = np.random.default_rng(seed)
    labels = rng.permutation(labels)
    images = rng.integers(0, 255, (labels.size, 4, 4, 1), dtype=np.uint8)
    return ImageDataset.from_arrays(images, labels, [f"c{k}" for k in range(len(counts))])


def test_dataset_validation():
    with pytest.raises(DataError, match="out of range"):
        ImageDataset.from_arrays(np.zeros((2, 4, 4), np.uint8), [0, 5], ["a", "b"])
    with pytest.raises(DataError, match="does not match"):
        ImageDataset.from_arrays(np.zeros((2, 4, 4), np.uint8), [0, 1, 1], ["a", "b"])
    with pytest.raises(DataError, match="uint8"):
        ImageDataset.from_arrays(np.zeros((2, 4, 4), np.float32), [0, 1], ["a", "b"])
    ds = ImageDataset.from_arrays(np.zeros((3, 4, 4), np.uint8), None, ["a", "b"])
    assert ds.labels.tolist() == [-1, -1, -1] and ds.class_counts().tolist() == [0, 0]


def test_long_tail_counts_exact_formula():
    # CIFAR-10-LT: 5000 head images, rho=100 -> 50 tail images.
    counts = long_tail_counts(5000, 10, 100)
    assert counts[0] == 5000 and counts[-1] == 50
    expected = [int(np.floor(5000 * 100 ** (-r / 9) + 1e-9)) for r in range(10)]
    assert counts.tolist() == expected


def test_make_long_tail_exact_and_deterministic():
    ds = _toy([300, 200, 400, 100])
    lt = make_long_tail(ds, 10, seed=3)
    # Frequency order: class 2 (400) is the head, then 0, 1, 3.
    counts = lt.class_counts()
    n_max = counts[2]
    target = long_tail_counts(n_max, 4, 10)
    assert [counts[2], counts[0], counts[1], counts[3]] == target.tolist()
    assert target[-1] * 10 <= n_max < (target[-1] + 1) * 10 + 10
    assert np.array_equal(lt.ids, make_long_tail(ds, 10, seed=3).ids)
    assert not np.array_equal(lt.ids, make_long_tail(ds, 10, seed=4).ids)
    by_index = make_long_tail(ds, 10, order="index").class_counts()
    assert by_index.tolist() == long_tail_counts(by_index[0], 4, 10).tolist()


def test_long_tail_on_real_bloodmnist(blood):
    lt = make_long_tail_splits(blood, 20)
    counts = lt.train.class_counts()
    assert counts.max() == 2330 and counts.max() / counts.min() == pytest.approx(20, rel=0.01)
    # val and test share train's head-to-tail order.
    order = np.argsort(-counts)
    assert np.all(np.diff(lt.val.class_counts()[order]) <= 0)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(3, 60), min_size=2, max_size=6),
    seed=st.integers(0, 1000),
)
def test_stratified_split_properties(counts, seed):
    ds = _toy(counts, seed)
    n = len(ds)
    sizes = (n // 2, n // 4, n - n // 2 - n // 4)
    splits = stratified_split(ds, sizes, seed=seed)
    got = [len(d) for _, d in splits.items()]
    assert got == list(sizes)
    all_ids = np.concatenate([d.ids for _, d in splits.items()])
    assert len(set(all_ids)) == n  # a partition: no overlap, nothing lost
    # Per class, each split's share is within two images of proportional (the first split within
    # one; later ones apportion what is left, which may drift by one more).
    for c, total in enumerate(counts):
        for j, ((_, d), size) in enumerate(zip(splits.items(), sizes, strict=True)):
            assert abs(d.class_counts()[c] - total * size / n) < (1.0 if j == 0 else 2.0) + 1e-9
    again = stratified_split(ds, sizes, seed=seed)
    assert np.array_equal(again.val.ids, splits.val.ids)


def test_stratified_split_paper_sizes_and_errors(blood):
    sp = stratified_split(blood.train, (5000, 1000, 2408), seed=1)
    assert [len(d) for _, d in sp.items()] == [5000, 1000, 2408]
    assert (sp.val.class_counts() > 0).all()
    with pytest.raises(DataError, match="need 20000 images"):
        stratified_split(blood.val, (10000, 5000, 5000))
    fr = stratified_split(blood.val, (0.7, 0.1, 0.2))
    assert sum(len(d) for _, d in fr.items()) == len(blood.val)
