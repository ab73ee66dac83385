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


# --------------------------------------------------------------------------- both registries
# One contract for acquisition AND cold-start strategies (scikit-activeml's template tests):
# rank() returns distinct int64 indices with aligned scores, select() is its indices, the same
# seed gives the same answer, bad budgets are StrategyErrors, and get_params() rebuilds the object.

def _coldstart_view():
    from medactive.coldstart import ColdStartView

    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 6)) * 4
    features = np.concatenate([c + rng.normal(size=(10, 6)) for c in centres]).astype(np.float32)
    truth = np.repeat(np.arange(3), 10)
    images = rng.integers(0, 256, (30, 6, 6, 3), dtype=np.uint8)
    return ColdStartView(features, rng.random(30), rng.random(30) * 0.1, images, truth)


def _registries():
    from medactive.coldstart import get_coldstart_strategy, list_coldstart_strategies

    return ([("acquisition", n, get_strategy) for n in list_strategies()]
            + [("cold start", n, get_coldstart_strategy)
               for n in list_coldstart_strategies(include_simulation=True)])


@pytest.mark.parametrize(("kind", "name", "factory"), _registries(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_registry_contract(kind, name, factory, tiny_view: RoundView) -> None:
    view = tiny_view if kind == "acquisition" else _coldstart_view()
    strategy = factory(name)
    n = view.features.shape[0]
    pool = view.pool_indices if kind == "acquisition" else np.arange(n)
    budget = 5
    picked, scores = strategy.rank(view, budget, np.random.default_rng(11))
    assert picked.dtype == np.int64 and picked.shape == (budget,)
    assert np.unique(picked).size == budget, "indices must be distinct"
    assert np.isin(picked, pool).all(), "only pool images (never a labelled one)"
    if scores is not None:
        assert scores.dtype == np.float64 and scores.shape == (budget,)
        assert not np.isnan(scores).any()
    again, again_scores = strategy.rank(view, budget, np.random.default_rng(11))
    np.testing.assert_array_equal(picked, again, err_msg="same seed, same selection")
    if scores is not None:
        np.testing.assert_array_equal(scores, again_scores)
    np.testing.assert_array_equal(strategy.select(view, budget, np.random.default_rng(11)), picked)
    for bad in (0, -2, pool.size + 1):
        with pytest.raises(StrategyError, match="budget"):
            strategy.rank(view, bad, np.random.default_rng(0))
    params = strategy.get_params()
    assert set(params) == set(type(strategy).param_names())
    rebuilt = type(strategy)(**params)
    assert rebuilt.get_params() == params and repr(rebuilt) == repr(strategy)
    rebuilt.check_params()  # the defaults are valid


def test_score_strategies_rank_by_their_scores(tiny_view: RoundView) -> None:
    for name in list_strategies():
        strategy = get_strategy(name)
        if not isinstance(strategy, ScoreStrategy):
            continue
        picked, scores = strategy.rank(tiny_view, 6, np.random.default_rng(2))
        full = strategy.score(tiny_view, np.random.default_rng(2))
        position = np.searchsorted(tiny_view.pool_indices, picked)
        np.testing.assert_allclose(scores, full[position], err_msg=name)
        assert np.all(np.diff(scores) <= 0), f"{name}: highest score first"


@pytest.mark.parametrize(("name", "params", "message"), [
    ("bald", {"n_samples": 0}, "n_samples"),
    ("aeig", {"step_size": -1.0}, "step_size"),
    ("aeig", {"step_size": "big"}, "step_size"),
    ("diversity", {"strategy": "diversity"}, "itself"),
    ("diversity", {"strategy": "bald", "strategy_params": {"n_samples": -1}}, "n_samples"),
    ("consistency", {"n_augment": 1}, "n_augment"),
    ("typiclust", {"knn": True}, "knn"),
    ("typiclust", {"min_cluster_size": -1}, "min_cluster_size"),
    ("probcover", {"fill": "nearest"}, "fill"),
    ("probcover", {"n_clusters": 0}, "n_clusters"),
    ("diversity", {"n_groups": True}, "n_groups"),
])
def test_checked_strategy_rejects_bad_values_up_front(name, params, message) -> None:
    from medactive.strategies import checked_strategy

    get_strategy(name, **params)  # construction only stores (scikit-learn convention)
    with pytest.raises(StrategyError, match=message):
        checked_strategy(name, **params)


@pytest.mark.parametrize(("name", "params", "message"), [
    ("hacon", {"n_clusters": 0}, "n_clusters"),
    ("typiclust", {"knn": 0}, "knn"),
    ("probcover", {"alpha": 2.0}, "alpha"),
    ("probcover", {"fill": "nearest"}, "fill"),
    ("typiclust", {"max_clusters": 0}, "max_clusters"),
    ("kmeans-centroid", {"oversample": True}, "oversample"),
    ("kmeans-pixels", {"pca_dim": -1}, "pca_dim"),
    ("label-diversity", {"base": "hacon", "base_params": {"n_clusters": 0}}, "n_clusters"),
])
def test_checked_coldstart_strategy_rejects_bad_values_up_front(name, params, message) -> None:
    from medactive.coldstart import checked_coldstart_strategy

    with pytest.raises(StrategyError, match=message):
        checked_coldstart_strategy(name, **params)
