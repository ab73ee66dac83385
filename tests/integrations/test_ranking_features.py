"""The MONAI Label strategy's parts that need no MONAI Label: the ranking with medactive's
defaults, the slicing of volumes and the feature cache (the strategy itself runs against the
real monailabel package in test_monailabel.py)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import DataError, StrategyError
from medactive.integrations.features import FeatureCache, load_views, volume_slices, window_uint8
from medactive.integrations.ranking import rank_pool


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three well separated Gaussian blobs of 30 points in 8-D, and their classes."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 6, (3, 8))
    y = np.repeat(np.arange(3), 30)
    return (centres[y] + rng.normal(0, 1, (90, 8))).astype(np.float32), y


def test_cold_start_without_classes_never_picks_a_labelled_image(blobs) -> None:
    x, _ = blobs
    labelled = np.zeros(90, bool)
    labelled[[0, 1, 2, 3]] = True  # e.g. segmentations: labelled, but no class
    ranking = rank_pool(x, labelled, np.full(90, -1), 0, budget=6)
    assert ranking.strategy == DEFAULT_COLDSTART
    assert len(set(ranking.order.tolist())) == 6 and not labelled[ranking.order].any()
    # TypiClust: one typical image per cluster, so the six picks spread over the three blobs
    assert len(set((ranking.order // 30).tolist())) == 3


def test_a_class_label_switches_to_the_default_acquisition(blobs) -> None:
    x, y = blobs
    labelled = np.zeros(90, bool)
    labelled[[0, 1, 30, 31, 60]] = True
    labels = np.where(labelled, y, -1)
    labels[60] = -1  # labelled without a class: neither trained on nor picked
    ranking = rank_pool(x, labelled, labels, 3, budget=5)
    assert ranking.strategy == DEFAULT_ACQUISITION
    assert not labelled[ranking.order].any() and len(set(ranking.order.tolist())) == 5
    assert ranking.scores is not None and ranking.scores.shape == (5,)
    again = rank_pool(x, labelled, labels, 3, budget=5)
    assert np.array_equal(ranking.order, again.order)  # seeded
    # as in a project: one labelled class is enough for the round's head over C classes ...
    one_class = np.where(labelled & (y == 0), y, -1)
    assert rank_pool(x, labelled, one_class, 3, budget=5).strategy == DEFAULT_ACQUISITION
    # ... but a single known class and nothing else is no classifier
    assert rank_pool(x, labelled, np.where(labelled & (y == 0), 0, -1), 1,
                     budget=5).strategy == DEFAULT_COLDSTART


def test_the_acquisition_is_the_project_round(blobs) -> None:
    """The same picks as medactive's round engine run by hand on the same pool and labels."""
    from medactive.rounds import (
        ClassifierConfig,
        EvaluationSet,
        RoundPool,
        fit_round,
        rank_round,
        round_seeds,
        round_view,
    )
    from medactive.strategies import checked_strategy

    x, y = blobs
    labelled = np.isin(np.arange(90), [0, 1, 30, 31, 61])
    labels = np.where(labelled, y, -1)
    pool = RoundPool(x)
    rng, head_seed = round_seeds(0, 2)
    known = np.flatnonzero(labelled)
    model = fit_round(pool, known, y[known], 3, ClassifierConfig(), head_seed)
    view = round_view(pool, model, np.arange(90), labels, EvaluationSet.from_pool(
        pool, known, y[known]))
    expected = rank_round(checked_strategy(DEFAULT_ACQUISITION), view, 4, rng).positions
    assert np.array_equal(rank_pool(x, labelled, labels, 3, budget=4).order, expected)


@pytest.mark.parametrize(("labelled", "labels", "message"), [
    (np.zeros(5, bool), np.full(5, -1), "do not match"),
    (np.zeros(90, bool), np.r_[np.zeros(1, int), np.full(89, -1)], "cannot have a class"),
    (np.ones(90, bool), np.full(90, 7), r"in \[0, 3\)"),
    (np.r_[np.ones(89, bool), False], np.full(90, -1), "between 1 and the 1 unlabelled"),
])
def test_bad_input_is_refused(blobs, labelled, labels, message) -> None:
    with pytest.raises(StrategyError, match=message):
        rank_pool(blobs[0], labelled, labels, 3, budget=2)


def test_window_matches_the_percentile_rule() -> None:
    rng = np.random.default_rng(1)
    volume = rng.normal(100, 40, (16, 16, 9))
    lo, hi = np.percentile(volume, [0.5, 99.5])
    reference = np.round(np.clip((volume - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(window_uint8(volume), reference)
    assert not window_uint8(np.full((4, 4), 3.0)).any()  # a constant image: zeros, no NaN


def test_volume_slices() -> None:
    volume = np.arange(10 * 12 * 20, dtype=np.float32).reshape(10, 12, 20)
    views = volume_slices(volume[None], n_slices=5)  # a leading channel axis is dropped
    assert len(views) == 5 and views[0].shape == (10, 12) and views[0].dtype == np.uint8
    assert [float(v.mean()) for v in views] == sorted(float(v.mean()) for v in views)
    assert len(volume_slices(np.ones((3, 4)), 5)) == 1  # a 2-D image is one view
    assert len(volume_slices(np.ones((6, 6, 2)), 5)) == 2  # no slice twice
    with pytest.raises(DataError, match="expected a 2-D image or a 3-D volume"):
        volume_slices(np.ones((2, 3, 4, 5)), 5)


def test_feature_cache_encodes_each_file_version_once(tmp_path: Path) -> None:
    calls: list[int] = []

    def encode(images: np.ndarray) -> np.ndarray:
        calls.append(len(images))
        return images.reshape(len(images), -1)[:, :4].astype(np.float32) + 1

    paths = []
    for k in range(3):
        path = tmp_path / f"img{k}.png"
        Image.fromarray(np.full((20, 30, 3), 40 * k, np.uint8)).save(path)
        paths.append(path)
    cache = FeatureCache(tmp_path / "cache", ("test-encoder", encode))
    first = cache.features(paths)
    assert first.shape == (3, 4) and first.dtype == np.float32 and calls == [1, 1, 1]
    assert np.array_equal(cache.features(paths), first) and calls == [1, 1, 1]
    stat = paths[1].stat()
    os.utime(paths[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # edited
    cache.features(paths)
    assert calls == [1, 1, 1, 1]
    assert load_views(paths[0]).shape == (1, 224, 224, 3)
    with pytest.raises(DataError, match="image file not found"):
        cache.features([tmp_path / "gone.png"])
    volume = tmp_path / "volume.nii.gz"
    volume.touch()
    with pytest.raises(DataError, match="needs MONAI"):  # medactive's own env has no MONAI
        load_views(volume)
