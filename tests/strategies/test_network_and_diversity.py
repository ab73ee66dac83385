"""Consistency, VAAL and the label-diversity wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from medactive.errors import StrategyError
from medactive.models.classifier import images_to_tensor
from medactive.models.training import make_augmentation
from medactive.strategies import RoundView, get_strategy
from medactive.strategies.diversity import interleave_groups

from .helpers import random_view


def test_consistency_equals_a_plain_loop(tiny_view: RoundView) -> None:
    strategy = get_strategy("consistency", n_augment=4, seed=5)
    got = strategy.score(tiny_view)
    model, aug = tiny_view.model.eval(), make_augmentation(30.0)
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(5)
        x = images_to_tensor(tiny_view.images[tiny_view.pool_indices])
        probs = np.stack([torch.softmax(model(aug(x)), 1).numpy() for _ in range(4)])
    np.testing.assert_allclose(got, probs.astype(np.float64).var(0, ddof=1).sum(1), atol=1e-6)


def test_consistency_is_zero_for_an_invariant_model(tiny_view: RoundView) -> None:
    class Constant(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 4) + torch.arange(4.0)

    view = RoundView(
        features=tiny_view.features, labeled_mask=tiny_view.labeled_mask,
        labels=tiny_view.labels, weight=tiny_view.weight, bias=tiny_view.bias,
        images=tiny_view.images, model=Constant(),
    )
    np.testing.assert_allclose(get_strategy("consistency").score(view), 0.0, atol=1e-12)


def test_vaal_scores_are_probabilities_and_seeded(tiny_view: RoundView) -> None:
    a = get_strategy("vaal", epochs=1, seed=3).score(tiny_view)
    b = get_strategy("vaal", epochs=1, seed=3).score(tiny_view)
    np.testing.assert_array_equal(a, b)
    assert np.all((a >= 0) & (a <= 1))


def test_vaal_needs_a_labelled_image(tiny_view: RoundView) -> None:
    view = RoundView(
        features=tiny_view.features, labeled_mask=np.zeros_like(tiny_view.labeled_mask),
        labels=np.full_like(tiny_view.labels, -1), weight=tiny_view.weight,
        bias=tiny_view.bias, images=tiny_view.images, model=tiny_view.model,
    )
    with pytest.raises(StrategyError, match="labelled"):
        get_strategy("vaal").select(view, 2, np.random.default_rng(0))


def test_interleave_groups_by_hand() -> None:
    order = np.array([10, 11, 12, 13, 14, 15])
    groups = np.array(["a", "a", "b", "a", "c", "b"])
    np.testing.assert_array_equal(order[interleave_groups(groups, 5)], [10, 12, 14, 11, 15])
    np.testing.assert_array_equal(order[interleave_groups(groups, 6)], [10, 12, 14, 11, 15, 13])


@settings(max_examples=30, deadline=None)
@given(
    groups=st.lists(st.integers(0, 4), min_size=1, max_size=40),
    frac=st.floats(0.0, 1.0),
)
def test_interleave_groups_is_balanced(groups: list[int], frac: float) -> None:
    g = np.array(groups)
    budget = max(1, round(frac * g.size))
    taken = interleave_groups(g, budget)
    assert np.unique(taken).size == budget
    counts = np.bincount(g[taken], minlength=5)
    avail = np.bincount(g, minlength=5)
    # No group gets two more than another group that still had images left.
    for i in range(5):
        for j in range(5):
            if counts[j] < avail[j]:
                assert counts[i] <= counts[j] + 1
    for gid in np.unique(g):  # within a group, the wrapped order is kept
        picked = taken[g[taken] == gid]
        assert np.array_equal(picked, np.sort(picked))


def test_diversity_true_labels_balance_the_entropy_order() -> None:
    view = random_view(1, n=60, c=3, n_labeled=6)
    picked = get_strategy("diversity", strategy="entropy", groups="true").select(
        view, 9, np.random.default_rng(0)
    )
    assert np.bincount(view.true_labels[picked], minlength=3).tolist() == [3, 3, 3]
    entropy_order = get_strategy("entropy").select(view, 54, np.random.default_rng(0))
    for c in range(3):  # inside a class: the entropy order
        in_class = [i for i in entropy_order if view.true_labels[i] == c][:3]
        assert [i for i in picked if view.true_labels[i] == c] == in_class


def test_diversity_wraps_batch_strategies_and_checks_inputs() -> None:
    view = random_view(2, n=50, n_labeled=5)
    picked = get_strategy("diversity", strategy="coreset", n_groups=4, seed=0).select(
        view, 8, np.random.default_rng(0)
    )
    assert np.unique(picked).size == 8 and not view.labeled_mask[picked].any()
    view.true_labels = None
    with pytest.raises(StrategyError, match="true_labels"):
        get_strategy("diversity", groups="true").select(view, 3, np.random.default_rng(0))
    with pytest.raises(StrategyError, match="groups"):
        get_strategy("diversity", groups="nope").select(view, 3, np.random.default_rng(0))
    with pytest.raises(StrategyError, match="unknown strategy"):
        get_strategy("diversity", strategy="nope").select(view, 3, np.random.default_rng(0))
