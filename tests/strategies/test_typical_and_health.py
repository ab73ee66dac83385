"""Typicality/coverage acquisition respects the labelled set; selection health flags bad batches."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import StrategyError
from medactive.selection import probcover_rank, typiclust_rank
from medactive.strategies import RoundView, get_strategy, selection_health


def _blobs(n_per: int = 30, centres: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated Gaussian blobs on a circle (distinct directions survive L2 norm)."""
    rng = np.random.default_rng(seed)
    angles = 2 * np.pi * np.arange(centres) / centres
    means = np.stack([np.cos(angles), np.sin(angles)], 1) * 10
    x = np.concatenate([m + rng.normal(scale=0.3, size=(n_per, 2)) for m in means])
    return x.astype(np.float32), np.repeat(np.arange(centres), n_per)


def _view(x: np.ndarray, labelled: np.ndarray, n_classes: int = 4) -> RoundView:
    mask = np.zeros(x.shape[0], bool)
    mask[labelled] = True
    rng = np.random.default_rng(0)
    return RoundView(features=x, labeled_mask=mask, labels=np.where(mask, 0, -1),
                     weight=rng.normal(size=(n_classes, x.shape[1])).astype(np.float32),
                     bias=np.zeros(n_classes, np.float32))


def test_typiclust_goes_to_clusters_without_labels_first() -> None:
    x, blob = _blobs()
    labelled = np.flatnonzero(blob < 2)[::10]  # blobs 0 and 1 have labels, 2 and 3 none
    picked, typ = typiclust_rank(x, np.isin(np.arange(x.shape[0]), labelled), 2, seed=0,
                                 max_clusters=4)
    assert set(blob[picked]) == {2, 3}
    assert np.all(typ > 0)
    # the pick is a typical member: on the normalised features (where typicality is measured)
    # nearer its blob's centre than most of the blob
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in picked:
        members = u[blob == blob[i]]
        dist = np.linalg.norm(members - members.mean(0), axis=1)
        assert np.linalg.norm(u[i] - members.mean(0)) <= np.quantile(dist, 0.25)


def test_probcover_counts_labelled_balls_as_covered() -> None:
    x, blob = _blobs()
    labelled = np.isin(np.arange(x.shape[0]), np.flatnonzero(blob == 0)[:3])
    picked, gains = probcover_rank(x, labelled, 3, n_pseudo_classes=4, delta=0.3, seed=0)
    assert 0 not in set(blob[picked]) and set(blob[picked]) == {1, 2, 3}
    assert np.all(gains == 30)
    # every blob covered: later picks fall back to random draws with gain 0
    picked, gains = probcover_rank(x, labelled, 6, n_pseudo_classes=4, delta=0.3, seed=0)
    assert np.unique(picked).size == 6 and not labelled[picked].any()
    assert np.all(gains[3:] == 0)


def test_cluster_top_takes_one_per_cluster() -> None:
    x, blob = _blobs(centres=4)
    view = _view(x, np.array([0]))
    picked, scores = get_strategy("cluster-top", strategy="entropy", seed=0).rank(
        view, 4, np.random.default_rng(0))
    assert sorted(blob[picked]) == [0, 1, 2, 3]
    assert np.all(np.diff(scores) <= 0)


def test_typical_strategy_parameters() -> None:
    x, _ = _blobs()
    view = _view(x, np.array([0, 1]))
    for name, params in [("typiclust", {"knn": 0}), ("probcover", {"alpha": 2.0}),
                         ("cluster-top", {"strategy": "coreset"})]:
        with pytest.raises(StrategyError):
            get_strategy(name, **params).rank(view, 3, np.random.default_rng(0))


def _probs(pred: np.ndarray, conf: float, c: int = 4) -> np.ndarray:
    p = np.full((pred.size, c), (1 - conf) / (c - 1))
    p[np.arange(pred.size), pred] = conf
    return p


def test_health_flags_a_batch_locked_onto_one_class() -> None:
    pool = _probs(np.repeat(np.arange(4), 25), 0.6)  # balanced pool predictions
    picked = [*range(12), 30, 55, 80, 99]  # 12 of class 0, 4 of the others
    health = selection_health(pool, np.array(picked))
    assert health.batch_mix[0] == pytest.approx(12 / 16)
    assert health.pool_mix == pytest.approx([0.25] * 4)
    assert len(health.warnings) == 1 and "takes 75%" in health.warnings[0]
    assert "0" in health.describe() and "warning" in health.describe()


def test_health_does_not_flag_random_batches_or_small_coincidences() -> None:
    rng = np.random.default_rng(0)
    pool = _probs(rng.integers(0, 4, 2000), 0.6)
    flagged = sum(not selection_health(pool, rng.choice(2000, 40, replace=False)).healthy
                  for _ in range(200))
    assert flagged == 0
    tiny = selection_health(pool, np.flatnonzero(pool.argmax(1) == 0)[:3])  # 3 of 3, tail 1.6%
    assert tiny.healthy


def test_health_flags_confident_picks_only_beyond_the_pool() -> None:
    preds = np.repeat(np.arange(4), 50)
    pool = np.concatenate([_probs(preds[:100], 0.95), _probs(preds[100:], 0.5)])
    confident = selection_health(pool, np.arange(0, 100, 4))  # all picks confident
    assert confident.confident_share == 1.0 and confident.pool_confident_share == 0.5
    assert any("confident" in w for w in confident.warnings)
    all_confident_pool = _probs(preds, 0.95)
    assert selection_health(all_confident_pool, np.arange(0, 200, 8)).healthy


def test_health_input_errors() -> None:
    with pytest.raises(StrategyError, match="positions"):
        selection_health(np.full((3, 2), 0.5), np.array([5]))
    with pytest.raises(StrategyError, match="finite"):
        selection_health(np.full((3, 2), np.nan), np.array([0]))


def test_switch_uses_low_then_high() -> None:
    x, _ = _blobs()
    few, many = _view(x, np.arange(3)), _view(x, np.arange(0, 120, 2))  # 3 vs 60 labels, C = 4
    switch = get_strategy("switch", low="typiclust", high="margin", per_class=10)
    assert switch.active(few)[0] == "typiclust" and switch.active(many)[0] == "margin"
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(switch.rank(many, 5, rng)[0],
                                  get_strategy("margin").rank(many, 5, rng)[0])
    with pytest.raises(StrategyError, match="itself"):
        get_strategy("switch", high="switch").rank(few, 2, rng)
