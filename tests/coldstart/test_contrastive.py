"""MoCo v2 pre-training: dataset-map arithmetic, end-to-end on real BloodMNIST, cache, resume."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from medactive.coldstart import hacon_select
from medactive.errors import ConfigError
from medactive.models import contrastive
from medactive.models.contrastive import positive_pair_probability, pretrain_moco
from medactive.models.contrastive_config import MocoConfig


def test_dataset_map_probability_hand_computed():
    # image 0: views (1,0) and (1,1)/sqrt2 ; image 1: views (0,1) and (0,1); tau = 1
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[1.0, 1.0], [0.0, 3.0]])  # norms do not matter: cosine similarity
    r = 1 / math.sqrt(2)
    # image 0, anchor (1,0): others have cos 0 (z1[1]), r (positive), 0 (z2[1])
    p_a = math.exp(r) / (math.exp(r) + 2)
    # image 0, anchor z2[0]: cos r to all three others -> 1/3
    p0 = 0.5 * (p_a + 1 / 3)
    # image 1, either anchor: positive cos 1, the others cos 0 and r
    p1 = math.e / (math.e + 1 + math.exp(r))
    got = positive_pair_probability(z1, z2, tau=1.0).numpy()
    np.testing.assert_allclose(got, [p0, p1], rtol=1e-12)
    # a smaller temperature sharpens: image 1's positive is its most similar view
    sharp = positive_pair_probability(z1, z2, tau=0.05).numpy()
    assert sharp[1] > 0.99
    half = 0.5 * (math.exp(r / 0.05) / (math.exp(r / 0.05) + 2) + 1 / 3)
    np.testing.assert_allclose(sharp[0], half, rtol=1e-9)


def test_probabilities_sum_over_candidates():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 8), torch.randn(5, 8)
    p = positive_pair_probability(z1, z2, 0.2)
    assert p.shape == (5,) and torch.all((p > 0) & (p < 1))


def test_config_validation():
    with pytest.raises(ConfigError):
        pretrain_moco(np.zeros((4, 8, 8, 3), np.uint8), MocoConfig(tau_map=0))
    with pytest.raises(ConfigError):
        pretrain_moco(np.zeros((4, 8, 8, 3), np.float32), MocoConfig())


TINY = dict(epochs=2, batch_size=32, queue_size=64, warmup_epochs=0.5, num_threads=1)


def test_end_to_end_two_epochs_on_bloodmnist(blood_small, tmp_path):
    images = blood_small.train.images[:600]
    res = pretrain_moco(images, MocoConfig(**TINY), cache_root=tmp_path, progress=False)
    n = images.shape[0]
    assert res.features.shape == (n, res.encoder.out_dim) and res.features.dtype == np.float32
    assert res.confidence.shape == (n,) and res.variability.shape == (n,)
    assert np.all((res.confidence > 0) & (res.confidence < 1))
    assert np.all(res.variability >= 0) and res.variability.max() > 0
    assert res.images_per_second > 0 and not res.encoder.training
    # the cached result is reused: same key, identical map, no training
    again = pretrain_moco(images, MocoConfig(**TINY), cache_root=tmp_path, progress=False)
    assert again.from_cache and again.key == res.key
    np.testing.assert_array_equal(again.confidence, res.confidence)
    np.testing.assert_allclose(
        again.features, contrastive.extract_features(again.encoder, images, progress=False),
        rtol=1e-4, atol=1e-5)
    # hacon runs on the output and spreads the budget over several classes
    sel = hacon_select(res.features, res.confidence, 16, seed=0)
    assert np.unique(blood_small.train.labels[:600][sel]).size >= 4
    # a different config is a different cache entry
    assert contrastive.cache_key(images, MocoConfig(**{**TINY, "tau_map": 0.1})) != res.key
    # thread count and device do not change the result's identity
    assert contrastive.cache_key(images, MocoConfig(**{**TINY, "num_threads": 2})) == res.key
    # ... but the entry records them, for a bit-identical rerun
    meta = json.loads((tmp_path / res.key / "meta.json").read_text())
    assert meta["trained_with"] == {"torch": torch.__version__, "device": "cpu",
                                    "threads": TINY.get("num_threads") or torch.get_num_threads(),
                                    "processes": 1, "amp": False}


def test_resume_after_interruption_matches_uninterrupted(blood_small, tmp_path, monkeypatch):
    images = blood_small.train.images[:128]
    cfg = MocoConfig(**TINY)
    ref = pretrain_moco(images, cfg, cache_root=tmp_path / "a", progress=False)
    per_epoch = math.ceil(128 / cfg.batch_size)
    real = contrastive._lr_at

    def interrupt(step, total, warmup, base):
        if step == per_epoch:  # first step of epoch 2: epoch 1 is checkpointed
            raise KeyboardInterrupt
        return real(step, total, warmup, base)

    monkeypatch.setattr(contrastive, "_lr_at", interrupt)
    with pytest.raises(KeyboardInterrupt):
        pretrain_moco(images, cfg, cache_root=tmp_path / "b", progress=False)
    assert (tmp_path / "b" / ref.key / "checkpoint.pt").is_file()
    monkeypatch.setattr(contrastive, "_lr_at", real)
    resumed = pretrain_moco(images, cfg, cache_root=tmp_path / "b", progress=False)
    assert not resumed.from_cache
    np.testing.assert_allclose(resumed.confidence, ref.confidence, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(resumed.features, ref.features, rtol=1e-4, atol=1e-5)
