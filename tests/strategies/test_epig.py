"""EPIG against a plain double loop (an oracle sharing no code), and the head posteriors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medactive.errors import StrategyError
from medactive.strategies import get_strategy
from medactive.strategies.epig import balanced_target_weights, epig_scores
from medactive.strategies.mcdropout import dropout_masks
from medactive.strategies.posterior import dropout_heads, evidence_prior_precision, laplace_heads
from medactive.strategies.reference import epig_scores_reference

from .helpers import random_view


def _probs(rng: np.random.Generator, t: int, n: int, c: int, conc: float = 1.0) -> np.ndarray:
    return rng.dirichlet(np.full(c, conc), size=(t, n))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(1, 6), n=st.integers(1, 6),
       m=st.integers(1, 6), c=st.integers(2, 5), weighted=st.booleans(),
       conc=st.sampled_from([0.05, 1.0, 10.0]))
def test_epig_equals_the_double_loop(seed, t, n, m, c, weighted, conc) -> None:
    rng = np.random.default_rng(seed)
    pool, targ = _probs(rng, t, n, c, conc), _probs(rng, t, m, c, conc)
    weights = rng.random(m) + 0.01 if weighted else None
    got = epig_scores(pool, targ, weights)
    assert got.shape == (n,) and got.dtype == np.float64
    np.testing.assert_allclose(got, epig_scores_reference(pool, targ, weights), rtol=0, atol=1e-6)
    assert np.all(got > -1e-12)  # a mutual information


def test_chunking_does_not_change_epig() -> None:
    rng = np.random.default_rng(0)
    pool, targ = _probs(rng, 5, 40, 4), _probs(rng, 5, 30, 4)
    whole = epig_scores(pool, targ)
    np.testing.assert_allclose(epig_scores(pool, targ, max_bytes=1), whole, rtol=0, atol=1e-14)


def test_deterministic_model_has_zero_epig() -> None:
    rng = np.random.default_rng(1)
    pool = np.repeat(_probs(rng, 1, 25, 5), 8, axis=0)  # all T samples equal
    targ = np.repeat(_probs(rng, 1, 12, 5), 8, axis=0)
    np.testing.assert_allclose(epig_scores(pool, targ), 0.0, atol=1e-12)


def test_epig_input_errors() -> None:
    rng = np.random.default_rng(0)
    pool, targ = _probs(rng, 3, 4, 3), _probs(rng, 3, 5, 3)
    with pytest.raises(StrategyError, match="same T and C"):
        epig_scores(pool, targ[:2])
    with pytest.raises(StrategyError, match="target_weights"):
        epig_scores(pool, targ, np.zeros(5))
    bad = pool.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(StrategyError, match="NaN"):
        epig_scores(bad, targ)


def test_balanced_weights_give_every_class_the_same_mass() -> None:
    labels = np.array([0, 0, 0, 1, 2, 2])
    w = balanced_target_weights(labels)
    np.testing.assert_allclose([w[labels == c].sum() for c in range(3)], 1 / 3)


def test_dropout_heads_reproduce_masked_features() -> None:
    rng = np.random.default_rng(0)
    feats, w, b = rng.normal(size=(7, 5)), rng.normal(size=(3, 5)), rng.normal(size=3)
    masks = dropout_masks(4, 5, 0.2, rng)
    probs = dropout_heads(w, b, masks).probabilities(feats)
    for t in range(4):
        z = (feats * masks[t]) @ w.T + b
        expected = np.exp(z - z.max(1, keepdims=True))
        np.testing.assert_allclose(probs[t], expected / expected.sum(1, keepdims=True),
                                   rtol=1e-5)


@pytest.mark.parametrize("structure", ["full", "kron"])
def test_laplace_samples_have_the_posterior_covariance(structure: str) -> None:
    # Sample covariance of many draws ≈ (GGN + τ I)^-1, GGN written out from its definition.
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(30, 3)), rng.normal(size=(2, 3)), rng.normal(size=2)
    tau = 2.0
    heads = laplace_heads(x, w, b, 40000, rng, prior_precision=tau, structure=structure)
    theta = np.concatenate([heads.weights, heads.biases[:, :, None]], axis=2).reshape(40000, -1)
    xt = np.hstack([x, np.ones((30, 1))])
    z = x @ w.T + b
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    ggn = sum(np.kron(np.diag(pi) - np.outer(pi, pi), np.outer(xi, xi))
              for pi, xi in zip(p, xt, strict=True))
    if structure == "kron":
        a = sum(np.diag(pi) - np.outer(pi, pi) for pi in p) / np.sqrt(30)
        ggn = np.kron(a, xt.T @ xt / np.sqrt(30))
    np.testing.assert_allclose(theta.mean(0), np.hstack([w, b[:, None]]).ravel(), atol=0.02)
    np.testing.assert_allclose(np.cov(theta.T), np.linalg.inv(ggn + tau * np.eye(8)),
                               atol=0.02)


def test_evidence_fixed_point() -> None:
    lam = np.array([100.0, 10.0, 0.0, 0.0])
    tau = evidence_prior_precision(lam, sq_norm=3.0)
    gamma = np.sum(lam / (lam + tau))
    assert tau == pytest.approx(gamma / 3.0, rel=1e-5)


@pytest.mark.parametrize("params", [{}, {"posterior": "laplace"}, {"targets": "pool"},
                                    {"n_targets": None}, {"targets": "pool", "n_targets": 5}])
@pytest.mark.parametrize("name", ["epig", "epig-balanced"])
def test_epig_strategy_scores(name: str, params: dict) -> None:
    view = random_view(3, n=60, k=30)
    strategy = get_strategy(name, **params)
    scores = strategy.score(view, np.random.default_rng(0))
    assert scores.shape == view.pool_indices.shape and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores, strategy.score(view, np.random.default_rng(0)))
    assert np.all(scores > -1e-12)


def test_epig_strategy_errors() -> None:
    view = random_view(0)
    with pytest.raises(StrategyError, match="targets"):
        get_strategy("epig", targets="test").score(view)
    with pytest.raises(StrategyError, match="posterior"):
        get_strategy("epig", posterior="ensemble").score(view)
    with pytest.raises(StrategyError, match="n_targets"):
        get_strategy("epig", n_targets=0).score(view)
    view.val_features = None
    with pytest.raises(StrategyError, match="validation"):
        get_strategy("epig").score(view)


@pytest.mark.parametrize("name", ["bald", "mc-entropy"])
def test_laplace_posterior_for_mc_strategies(name: str) -> None:
    view = random_view(4, n=50)
    strategy = get_strategy(name, posterior="laplace")
    scores = strategy.score(view, np.random.default_rng(2))
    assert scores.shape == view.pool_indices.shape and np.all(scores > -1e-12)
    np.testing.assert_array_equal(scores, strategy.score(view, np.random.default_rng(2)))
    with pytest.raises(StrategyError, match="prior_precision"):
        get_strategy(name, posterior="laplace", prior_precision=-1.0).score(view)


def test_laplace_low_rank_path_draws_the_same_samples() -> None:
    rng = np.random.default_rng(3)
    x, w, b = rng.normal(size=(4, 6)), rng.normal(size=(3, 6)), rng.normal(size=3)
    low = laplace_heads(x, w, b, 5, np.random.default_rng(1), low_rank=True)
    full = laplace_heads(x, w, b, 5, np.random.default_rng(1), low_rank=False)
    np.testing.assert_allclose(low.weights, full.weights, atol=1e-8)
    np.testing.assert_allclose(low.biases, full.biases, atol=1e-8)
