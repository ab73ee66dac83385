"""The Ray path: scoring sharded over a local 2-CPU Ray cluster gives the single-process picks."""

from __future__ import annotations

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from medactive.strategies import RoundView, get_strategy  # noqa: E402
from medactive.strategies.sharded import rank_with, shardable  # noqa: E402


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance (2 CPUs) for every test of this module."""
    from medactive.models.cluster import connect

    was_running = ray.is_initialized()
    connect("local", num_cpus=2)
    yield "local"
    if not was_running:
        ray.shutdown()


def _view(n: int = 3000, d: int = 16, c: int = 4, seed: int = 0) -> RoundView:
    rng = np.random.default_rng(seed)
    feats = np.maximum(rng.standard_normal((n, d)), 0).astype(np.float32)
    mask = np.zeros(n, bool)
    mask[rng.choice(n, 40, replace=False)] = True
    labels = rng.integers(0, c, n)
    return RoundView(features=feats, labeled_mask=mask, labels=np.where(mask, labels, -1),
                     weight=rng.standard_normal((c, d)).astype(np.float32),
                     bias=rng.standard_normal(c).astype(np.float32), dropout_p=0.2,
                     val_features=feats[mask], val_labels=labels[mask])


@pytest.mark.parametrize("name", ["entropy", "margin", "aeig", "epig", "bald", "mc-entropy", "coreset",
                                  "badge"])
def test_same_picks_as_one_process(ray_local: str, name: str) -> None:
    view = _view()
    strategy = get_strategy(name)
    one_rng, ray_rng = np.random.default_rng(7), np.random.default_rng(7)
    picks, scores = strategy.rank(view, 25, one_rng)
    got, got_scores = rank_with(strategy, view, 25, ray_rng, ray=ray_local, shards=3)
    np.testing.assert_array_equal(got, picks)
    if scores is not None:
        # float32 matmuls of different row-block sizes round differently (~1e-8 relative)
        np.testing.assert_allclose(got_scores, scores, rtol=1e-6, atol=1e-9)
    # the round generator ends in the same state (later draws of the round agree)
    assert one_rng.random() == ray_rng.random()


@pytest.mark.parametrize("name", ["bald", "epig"])
def test_laplace_posterior_sees_the_labelled_rows(ray_local: str, name: str) -> None:
    view = _view(800)
    strategy = get_strategy(name, posterior="laplace")
    picks = strategy.rank(view, 10, np.random.default_rng(3))[0]
    got = rank_with(strategy, view, 10, np.random.default_rng(3), ray=ray_local, shards=2)[0]
    np.testing.assert_array_equal(got, picks)


def test_shardable_and_default_path() -> None:
    assert shardable(get_strategy("aeig")) and not shardable(get_strategy("coreset"))
    assert not shardable(get_strategy("vaal"))
    view = _view(300)
    a = rank_with(get_strategy("entropy"), view, 5, np.random.default_rng(0))[0]
    b = get_strategy("entropy").rank(view, 5, np.random.default_rng(0))[0]
    np.testing.assert_array_equal(a, b)


def test_ray_feature_extraction_matches(ray_local: str) -> None:
    import torch

    from medactive.models import build_backbone, extract_features
    from medactive.models.cluster import ray_extract_features

    torch.manual_seed(0)
    backbone = build_backbone("compact", 3, 16).eval()
    images = np.random.default_rng(0).integers(0, 256, (70, 16, 16, 3), dtype=np.uint8)
    expected = extract_features(backbone, images, batch_size=32, progress=False)
    got = ray_extract_features(backbone, images, address=ray_local, actors=2, batch_size=32)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_bad_address() -> None:
    from medactive.errors import ConfigError
    from medactive.models.cluster import check_address

    with pytest.raises(ConfigError, match=r"local \| auto"):
        check_address("localhost:6379")
    assert check_address("ray://10.0.0.1:10001") == "ray://10.0.0.1:10001"
