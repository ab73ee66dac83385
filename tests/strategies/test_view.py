"""build_round_view: one forward pass, cached arrays consistent with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medactive.strategies.base as base_mod
from medactive.errors import StrategyError
from medactive.models.training import extract_features
from medactive.strategies import RoundView, build_round_view

from .helpers import random_view


def test_view_matches_the_model(tiny_view: RoundView, tiny_model) -> None:
    feats = extract_features(tiny_model.backbone, tiny_view.images, device="cpu", progress=False)
    np.testing.assert_allclose(tiny_view.features, feats, atol=1e-5)
    w, b = tiny_model.head_arrays()
    np.testing.assert_array_equal(tiny_view.weight, w)
    np.testing.assert_array_equal(tiny_view.bias, b)
    assert tiny_view.dropout_p == pytest.approx(0.2)
    assert np.all(tiny_view.labels[~tiny_view.labeled_mask] == -1)
    with torch.no_grad():  # the cached head on cached features = the model's own output
        x = torch.from_numpy(tiny_view.images[tiny_view.pool_indices]).permute(0, 3, 1, 2)
        proba = torch.softmax(tiny_model((x.float() / 255 - 0.5) / 0.5), 1).numpy()
    np.testing.assert_allclose(tiny_view.pool_probabilities, proba, atol=1e-5)
    assert tiny_view.val_features.shape == (24, tiny_view.features.shape[1])


def test_view_checks_shapes(tiny_model) -> None:
    images = np.zeros((5, 16, 16, 3), np.uint8)
    with pytest.raises(StrategyError, match="labeled_mask"):
        build_round_view(tiny_model, images, np.zeros(4, bool), np.zeros(5), images, np.zeros(5))
    with pytest.raises(StrategyError, match="validation"):
        build_round_view(tiny_model, images, np.zeros(5, bool), np.zeros(5), images, np.zeros(3))


def test_chunked_pool_logits_equal_one_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(base_mod, "_CHUNK_ROWS", 7)
    view = random_view(0, n=50)
    expected = view.pool_features.astype(np.float64) @ view.weight.T.astype(np.float64)
    np.testing.assert_allclose(view.pool_logits, expected + view.bias, atol=1e-12)
    bad = view.features.copy()
    bad[45, 0] = np.nan
    with pytest.raises(StrategyError, match="NaN"):
        RoundView(features=bad, labeled_mask=view.labeled_mask, labels=view.labels,
                  weight=view.weight, bias=view.bias)
