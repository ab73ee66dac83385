"""Information gain: the closed form equals Algorithm 1 run literally with torch.optim.SGD."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import medactive.strategies.infogain as ig
from medactive.errors import StrategyError
from medactive.strategies import get_strategy
from medactive.strategies.infogain import (
    DEFAULT_STEP_SIZE,
    VARIANTS,
    info_gain_scores,
    info_gain_scores_reference,
)

from .helpers import random_view


def _case(seed: int, n: int = 12, k: int = 15, c: int = 4, d: int = 6, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(n, d)) * scale,
        rng.normal(size=(k, d)) * scale,
        rng.integers(0, c, k),
        rng.normal(size=(c, d)),
        rng.normal(size=c),
    )


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("step_size", [1e-3, 0.05, 0.7])
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
def test_fast_equals_reference(variant: str, step_size: float, weight_decay: float) -> None:
    args = _case(seed=int(step_size * 1000) + int(weight_decay * 10))
    kw = dict(variant=variant, step_size=step_size, weight_decay=weight_decay)
    fast = info_gain_scores(*args, **kw)
    ref = info_gain_scores_reference(*args, **kw)
    assert fast.dtype == np.float64 and fast.shape == (12,)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-6)
    top = 4
    assert set(np.argsort(-fast)[:top]) == set(np.argsort(-ref)[:top])


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 5),
    k=st.integers(1, 9),
    c=st.integers(2, 6),
    d=st.integers(1, 7),
    variant=st.sampled_from(VARIANTS),
    step_size=st.floats(1e-4, 2.0),
    weight_decay=st.sampled_from([0.0, 1e-4, 0.5]),
)
def test_fast_equals_reference_property(seed, n, k, c, d, variant, step_size, weight_decay):
    args = _case(seed, n, k, c, d, scale=1.5)
    kw = dict(variant=variant, step_size=step_size, weight_decay=weight_decay)
    np.testing.assert_allclose(
        info_gain_scores(*args, **kw), info_gain_scores_reference(*args, **kw), rtol=0, atol=1e-6
    )


def test_large_logits_take_the_stable_path() -> None:
    # Logits of order 400 would overflow a plain exp; the max-subtracted path must still agree.
    pool, ev, lab, w, b = _case(5, n=6, k=7)
    w = w * 120.0
    kw = dict(variant="eig", step_size=0.5)
    np.testing.assert_allclose(
        info_gain_scores(pool, ev, lab, w, b, **kw),
        info_gain_scores_reference(pool, ev, lab, w, b, **kw), rtol=0, atol=1e-6,
    )


@pytest.mark.parametrize("weight_decay", [0.0, 0.5])
def test_dominant_class_pushed_far_down(weight_decay: float) -> None:
    # Found by hypothesis: a negative Gram entry and a large step push a class with σ ≈ 1 far
    # down; 1 + σ_c·expm1(δ) then cancels, so such chunks must take the direct path.
    args = _case(8, n=1, k=2, c=2, d=7, scale=1.5)
    for variant in VARIANTS:
        kw = dict(variant=variant, step_size=2.0, weight_decay=weight_decay)
        np.testing.assert_allclose(
            info_gain_scores(*args, **kw), info_gain_scores_reference(*args, **kw),
            rtol=0, atol=1e-6,
        )


def test_chunking_does_not_change_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _case(7, n=30, k=25)
    whole = info_gain_scores(*args, variant="aeig")
    monkeypatch.setattr(ig, "_CHUNK_ELEMENTS", 16)  # forces many pool and evaluation chunks
    np.testing.assert_allclose(info_gain_scores(*args, variant="aeig"), whole, rtol=0, atol=1e-13)


def test_variant_weights_by_hand() -> None:
    # With K = 8 evaluation images and step -> tiny, check H1 and the weighting of Eq. 1 / Eq. 2:
    # EIG weights sum to 1 (score ~ 0), AEIG to sum_c p_c pi_c (score ~ H1 (1 - sum p pi)).
    pool, ev, lab, w, b = _case(3, n=4, k=8, c=3)
    eps = 1e-9
    z = ev @ w.T + b
    p_eval = np.exp(z - z.max(1, keepdims=True))
    p_eval /= p_eval.sum(1, keepdims=True)
    h1 = float(np.mean(-(p_eval * np.log(p_eval)).sum(1)))
    zp = pool @ w.T + b
    p = np.exp(zp - zp.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    prior = np.bincount(lab, minlength=3) / lab.size
    got = {v: info_gain_scores(pool, ev, lab, w, b, variant=v, step_size=eps) for v in VARIANTS}
    np.testing.assert_allclose(got["eig"], 0.0, atol=1e-7)
    np.testing.assert_allclose(got["uig"], 0.0, atol=1e-7)
    np.testing.assert_allclose(got["cfig"], 0.0, atol=1e-7)
    np.testing.assert_allclose(got["aeig"], h1 * (1 - p @ prior), atol=1e-7)


def test_float32_features_keep_the_ranking() -> None:
    # Realistic scale (post-ReLU 512-d, |h|^2 ~ 100) at the default step: the float32 Gram path
    # differs from float64 by orders of magnitude less than the spread of the scores.
    rng = np.random.default_rng(0)
    pool = np.abs(rng.normal(size=(200, 512))) * 0.5
    ev = np.abs(rng.normal(size=(100, 512))) * 0.5
    lab = rng.integers(0, 8, 100)
    w, b = rng.normal(size=(8, 512)) * 0.05, rng.normal(size=8) * 0.1
    for variant in VARIANTS:
        s64 = info_gain_scores(pool, ev, lab, w, b, variant=variant)
        s32 = info_gain_scores(pool.astype(np.float32), ev, lab, w, b, variant=variant)
        assert np.abs(s64 - s32).max() < 1e-3 * s64.std()
        assert set(np.argsort(-s64)[:20]) == set(np.argsort(-s32)[:20])


def test_strategies_score_the_pool_with_the_public_function() -> None:
    view = random_view(2)
    for variant in VARIANTS:
        expected = info_gain_scores(
            view.pool_features, view.val_features, view.val_labels, view.weight, view.bias,
            variant=variant, step_size=DEFAULT_STEP_SIZE,
        )
        np.testing.assert_array_equal(get_strategy(variant).score(view), expected)


def test_parameters_validated_at_call_time() -> None:
    view = random_view(0)
    strategy = get_strategy("aeig", step_size=-1.0)  # constructing does not validate
    with pytest.raises(StrategyError, match="step_size"):
        strategy.score(view)
    with pytest.raises(StrategyError, match="variant"):
        info_gain_scores(*_case(0), variant="pig")
    with pytest.raises(StrategyError, match="weight_decay"):
        info_gain_scores(*_case(0), weight_decay=-1)
    no_val = random_view(0)
    no_val.val_features = None
    with pytest.raises(StrategyError, match="validation"):
        get_strategy("eig").score(no_val)
