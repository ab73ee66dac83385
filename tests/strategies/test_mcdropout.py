"""MC dropout: masked heads equal nn.Dropout passes; BALD / BatchBALD against plain loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medactive.errors import StrategyError
from medactive.strategies import get_strategy
from medactive.strategies.mcdropout import BatchBALD, dropout_masks, mc_probabilities

from .helpers import random_view


def test_masks_are_inverted_dropout() -> None:
    m = dropout_masks(400, 50, 0.2, np.random.default_rng(0))
    assert set(np.unique(m)) == {0.0, np.float32(1 / 0.8)}
    assert abs((m == 0).mean() - 0.2) < 0.01


def test_masked_heads_equal_dropout_in_front_of_the_head() -> None:
    view = random_view(0, d=10, c=4)
    masks = dropout_masks(5, 10, 0.3, np.random.default_rng(1))
    got = mc_probabilities(view.features, view.weight, view.bias, masks)
    head = torch.nn.Linear(10, 4)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(view.weight))
        head.bias.copy_(torch.from_numpy(view.bias))
        for t in range(5):  # the mask nn.Dropout would draw, applied to the head's input
            x = torch.from_numpy(view.features) * torch.from_numpy(masks[t])
            np.testing.assert_allclose(got[:, t], torch.softmax(head(x), 1).numpy(), atol=1e-5)


def _bald_loop(probs: np.ndarray) -> np.ndarray:
    out = []
    for p in probs:  # (T, C) per image
        mean = p.mean(0)
        h_mean = -sum(q * np.log(q) for q in mean if q > 0)
        mean_h = np.mean([-sum(q * np.log(q) for q in row if q > 0) for row in p])
        out.append(h_mean - mean_h)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bald_and_mc_entropy_against_loops(seed: int) -> None:
    view = random_view(seed)
    masks = dropout_masks(20, view.features.shape[1], 0.2, np.random.default_rng(7))
    probs = mc_probabilities(view.pool_features, view.weight, view.bias, masks)
    bald = get_strategy("bald", seed=7).score(view)
    np.testing.assert_allclose(bald, _bald_loop(probs), atol=1e-12)
    mean = probs.mean(1)
    np.testing.assert_allclose(
        get_strategy("mc-entropy", seed=7).score(view), -(mean * np.log(mean)).sum(1), atol=1e-12
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), p=st.floats(0.0, 0.9))
def test_bald_is_a_mutual_information(seed: int, p: float) -> None:
    view = random_view(seed)
    view.dropout_p = p
    bald = get_strategy("bald", n_samples=8).score(view)
    mce = get_strategy("mc-entropy", n_samples=8).score(view)
    assert np.all(bald >= -1e-12) and np.all(bald <= mce + 1e-12)
    if p == 0.0:  # no dropout: every pass is the deterministic head
        np.testing.assert_allclose(bald, 0.0, atol=1e-12)
        np.testing.assert_allclose(mce, get_strategy("entropy").score(view), atol=1e-5)


def test_bad_n_samples() -> None:
    with pytest.raises(StrategyError, match="n_samples"):
        get_strategy("bald", n_samples=0).score(random_view(0))


def _joint_entropy_brute(probs: np.ndarray, batch: list[int], x: int) -> float:
    members = [*batch, x]
    t, c = probs.shape[1], probs.shape[2]
    total = 0.0
    for ys in itertools.product(range(c), repeat=len(members)):
        p = np.mean([np.prod([probs[m, k, y] for m, y in zip(members, ys, strict=True)])
                     for k in range(t)])
        total -= p * np.log(p) if p > 0 else 0.0
    return total


def test_batchbald_exact_joint_entropy_and_greedy_choice() -> None:
    view = random_view(4, n=14, c=3, n_labeled=2)
    view.dropout_p = 0.5
    masks = dropout_masks(6, view.features.shape[1], 0.5, np.random.default_rng(11))
    probs = mc_probabilities(view.pool_features, view.weight, view.bias, masks)
    picked = get_strategy("batchbald", n_samples=6, seed=11).select(
        view, 3, np.random.default_rng(0)
    )
    pos = [int(np.searchsorted(view.pool_indices, i)) for i in picked]
    cond = -(probs * np.log(probs)).sum(2).mean(1)
    for step in range(3):  # each greedy choice maximises the brute-force joint MI
        batch = pos[:step]
        mi = [
            _joint_entropy_brute(probs, batch, x) - cond[x] if x not in batch else -np.inf
            for x in range(len(view.pool_indices))
        ]
        assert pos[step] == int(np.argmax(mi))
    first_bald = get_strategy("bald", n_samples=6, seed=11).score(view)
    assert pos[0] == int(np.argmax(first_bald))  # k = 0: BatchBALD is BALD


def test_batchbald_sampled_estimate_is_close_to_exact() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(30, 10, 3)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    n, t, c = probs.shape
    by_t = probs.transpose(1, 0, 2).reshape(t, n * c)
    batch = [0, 1, 2, 3]
    table = np.ones((1, t))
    for b in batch:
        table = (table[:, None, :] * probs[b].T[None]).reshape(-1, t)
    exact = BatchBALD._joint_entropy(table, by_t, n, c, False, np.zeros(table.shape[0]))
    m = 20000
    ts = rng.integers(0, t, m)
    cfg = np.ones((m, t))
    for b in batch:  # ancestral samples of the batch labels
        y = (np.cumsum(probs[b][ts], 1) < rng.random(m)[:, None]).sum(1)
        cfg *= probs[b][:, y].T
    est = BatchBALD._joint_entropy(cfg, by_t, n, c, True, np.zeros(m))
    np.testing.assert_allclose(est, exact, atol=0.05)
