"""The contract every registered strategy keeps (one parametrised test per strategy)."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import StrategyError
from medactive.strategies import RoundView, ScoreStrategy, get_strategy, list_strategies

NEEDS_NETWORK = {"vaal", "consistency"}


@pytest.mark.parametrize("name", list_strategies())
def test_select_contract(name: str, tiny_view: RoundView) -> None:
    strategy = get_strategy(name)
    view = tiny_view
    n_pool = int((~view.labeled_mask).sum())
    budget = 7
    picked = strategy.select(view, budget, np.random.default_rng(3))
    assert picked.dtype == np.int64 and picked.shape == (budget,)
    assert np.unique(picked).size == budget, "indices must be distinct"
    assert np.all((picked >= 0) & (picked < view.features.shape[0]))
    assert not view.labeled_mask[picked].any(), "never re-select labelled images"
    again = strategy.select(view, budget, np.random.default_rng(3))
    np.testing.assert_array_equal(picked, again, err_msg="same seed, same selection")
    whole = strategy.select(view, n_pool, np.random.default_rng(0))
    assert np.array_equal(np.sort(whole), view.pool_indices), "budget = pool takes the pool"
    with pytest.raises(StrategyError, match="larger than the unlabelled pool"):
        strategy.select(view, n_pool + 1, np.random.default_rng(0))
    for bad in (0, -2):
        with pytest.raises(StrategyError, match="budget"):
            strategy.select(view, bad, np.random.default_rng(0))
    if isinstance(strategy, ScoreStrategy):
        scores = strategy.score(view)
        assert scores.shape == (n_pool,) and scores.dtype == np.float64
        assert np.all(np.isfinite(scores))


@pytest.mark.parametrize("name", sorted(set(list_strategies()) & NEEDS_NETWORK))
def test_network_strategies_need_model_and_images(name: str, tiny_view: RoundView) -> None:
    bare = RoundView(
        features=tiny_view.features, labeled_mask=tiny_view.labeled_mask,
        labels=tiny_view.labels, weight=tiny_view.weight, bias=tiny_view.bias,
    )
    with pytest.raises(StrategyError, match=r"include_images=True"):
        get_strategy(name).select(bare, 3, np.random.default_rng(0))


def test_unknown_strategy_lists_known_names() -> None:
    with pytest.raises(StrategyError, match=r"known strategies: .*entropy"):
        get_strategy("no-such-strategy")


def test_bad_parameter_is_a_strategy_error() -> None:
    with pytest.raises(StrategyError, match="bad parameters"):
        get_strategy("entropy", nonsense=1)



def test_registry_has_every_family() -> None:
    expected = {
        "random", "least-confidence", "margin", "entropy", "mc-entropy", "bald", "batchbald",
        "coreset", "badge", "vaal", "consistency", "eig", "aeig", "uig", "cfig", "diversity",
    }
    assert expected <= set(list_strategies())
