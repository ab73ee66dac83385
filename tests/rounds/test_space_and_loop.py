"""The round engine's pieces: the head's feature space, the loop's round and its validation
policies, each against an independent computation (numpy only, or the model fit called
directly)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.rounds.conftest import blob_pool

from medactive.errors import StrategyError
from medactive.models import HeadConfig, fit_head
from medactive.rounds import (
    ClassifierConfig,
    FeatureSpace,
    LabelState,
    ValidationPolicy,
    plan_round,
    round_seeds,
)


def test_feature_space_is_the_pools_zscore_and_folds_into_the_head():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5000, 7)) * [1, 10, 100, 0.1, 3, 1, 7] + 5).astype(np.float32)
    space = FeatureSpace.of_pool(x)
    mean, std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0) + 1e-6
    np.testing.assert_allclose(space.apply(x), (x - mean) / std, rtol=1e-5, atol=1e-5)
    w, b = rng.standard_normal((3, 7)), rng.standard_normal(3)
    raw_w, raw_b = space.fold_into_head(w, b)
    np.testing.assert_allclose(x @ raw_w.T + raw_b, space.apply(x) @ w.T + b, rtol=1e-4,
                               atol=1e-3)
    identity = FeatureSpace.of_pool(x, standardise=False)
    assert not identity.standardised and np.array_equal(identity.apply(x), x)


def test_round_seeds_depend_on_seed_and_round_only():
    a, ha = round_seeds(3, 2)
    b, hb = round_seeds(3, 2)
    assert ha == hb and a.random() == b.random()
    assert round_seeds(3, 3)[1] != ha and round_seeds(4, 2)[1] != ha


def test_cold_round_draws_validation_and_picks_with_the_default_cold_start():
    pool, _, _, _ = blob_pool()
    plan = plan_round(pool, LabelState.empty(pool.n), 20, n_classes=4, round_index=1, seed=0)
    assert plan.strategy == "typiclust" and plan.model is None
    assert plan.count("validation") == 4 and plan.count("acquire") == 16  # crossfit: 20 %
    assert len(set(plan.positions.tolist())) == 20


def _answered(pool_n: int, truth: np.ndarray, train: np.ndarray, val: np.ndarray) -> LabelState:
    state = LabelState.empty(pool_n)
    state.record(train, truth[train], ["acquire"] * train.size)
    state.record(val, truth[val], ["validation"] * val.size)
    return state


def test_crossfit_trains_on_validation_labels_and_reports_out_of_fold_predictions():
    pool, truth, _, _ = blob_pool()
    rng = np.random.default_rng(0)
    picked = rng.choice(pool.n, 30, replace=False)
    train, val = picked[:20], picked[20:]
    state = _answered(pool.n, truth, train, val)
    config = ClassifierConfig(head=HeadConfig(epochs=50))
    policy = ValidationPolicy("crossfit", 0.2, folds=5)
    plan = plan_round(pool, state, 10, n_classes=4, round_index=3, seed=5, strategy="margin",
                      policy=policy, classifier=config)
    _, head_seed = round_seeds(5, 3)
    # the round's model: every label, validation included, fitted directly
    z = pool.space.apply(pool.features)
    rows = np.sort(picked)  # the engine trains on labelled positions in pool order
    w, b = fit_head(z[rows], truth[rows], 4, HeadConfig(epochs=50, seed=head_seed))
    assert plan.model is not None
    np.testing.assert_allclose(plan.model.weight, w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(plan.model.bias, b, rtol=1e-5, atol=1e-6)
    # out of fold: each validation image predicted by a head that never saw it
    order = np.random.default_rng([head_seed, 7]).permutation(val.size)
    assert plan.validation is not None and plan.validation.method == "out-of-fold"
    val_sorted = np.sort(val)
    for k in range(5):
        held = val_sorted[order[k::5]]
        keep = np.setdiff1d(picked, held)
        wk, bk = fit_head(z[keep], truth[keep], 4, HeadConfig(epochs=50, seed=head_seed + k + 1))
        logits = z[held].astype(np.float64) @ wk.T.astype(np.float64) + bk
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        assert plan.probabilities is not None
        np.testing.assert_allclose(plan.probabilities[held], p, rtol=1e-5, atol=1e-6)
    assert not set(plan.positions.tolist()) & set(picked.tolist())


def test_holdout_never_trains_on_validation_labels():
    pool, truth, _, _ = blob_pool()
    picked = np.random.default_rng(1).choice(pool.n, 30, replace=False)
    train, val = picked[:20], picked[20:]
    state = _answered(pool.n, truth, train, val)
    config = ClassifierConfig(head=HeadConfig(epochs=50))
    plan = plan_round(pool, state, 10, n_classes=4, round_index=2, seed=1, strategy="entropy",
                      policy=ValidationPolicy("holdout"), classifier=config)
    _, head_seed = round_seeds(1, 2)
    z = pool.space.apply(pool.features)
    rows = np.sort(train)
    w, _ = fit_head(z[rows], truth[rows], 4, HeadConfig(epochs=50, seed=head_seed))
    assert plan.model is not None and plan.validation is not None
    np.testing.assert_allclose(plan.model.weight, w, rtol=1e-5, atol=1e-6)
    assert plan.validation.method == "held-out"
    assert plan.params["validation_mode"] == "holdout"


def test_none_policy_draws_nothing():
    pool, truth, _, _ = blob_pool()
    state = _answered(pool.n, truth, np.arange(0, 160, 16), np.zeros(0, np.int64))
    plan = plan_round(pool, state, 8, n_classes=4, round_index=2, policy=ValidationPolicy("none"))
    assert plan.count("validation") == 0 and plan.count("acquire") == 8
    assert plan.validation is None


@pytest.mark.parametrize("budget, strategy, message", [
    (True, None, "positive integer"), (0, None, "positive integer"),
    (1000, None, "larger than the 160 unanswered"), (5, "nope", "unknown"),
])
def test_bad_round_requests_fail_before_any_work(budget, strategy, message):
    pool, _, _, _ = blob_pool()
    with pytest.raises(StrategyError, match=message):
        plan_round(pool, LabelState.empty(pool.n), budget, n_classes=4, round_index=1,
                   strategy=strategy)


def test_bad_policy_is_refused():
    for policy in (ValidationPolicy("sometimes"), ValidationPolicy(share=0.9),  # type: ignore[arg-type]
                   ValidationPolicy(folds=1)):
        with pytest.raises(StrategyError):
            policy.check()
