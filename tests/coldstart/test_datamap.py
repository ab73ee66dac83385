"""Dataset-map variants (issue 10, items 6-7): temperatures, hit and rank rules, queue competitors,
the forward-only probe, the accumulator, and their wiring into MoCo pre-training.

The references below are plain loops over anchors and candidates written from the paper's Eq. 1-2;
they import nothing from :mod:`medactive.models.datamap`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from medactive.errors import ConfigError
from medactive.models import contrastive
from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import MocoConfig
from medactive.models.datamap import (
    MapAccumulator,
    catalogue,
    pair_map_values,
    parse_map_name,
    positive_pair_probability,
    probe_map_values,
)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def reference_pair_values(z1, z2, rule, tau=None, queue=None):
    """Loop reference: per image, the rule over both anchors of its pair, averaged."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    n = z1.shape[0]
    extra = [] if queue is None else list(np.asarray(queue, dtype=np.float64))
    out = np.zeros(n)
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        pos = _cos(z[i], z[partner])
        others = [_cos(z[i], z[j]) for j in range(2 * n) if j not in (i, partner)]
        others += [_cos(z[i], q) for q in extra]
        if rule == "softmax":
            num = math.exp(pos / tau)
            value = num / (num + sum(math.exp(s / tau) for s in others))
        elif rule == "hit":
            value = float(pos > max(others))
        else:
            value = sum(s < pos for s in others) / len(others)
        out[i % n] += 0.5 * value
    return out


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(3)
    z1 = torch.randn(6, 5, generator=g)
    z2 = z1 + 0.8 * torch.randn(6, 5, generator=g)
    queue = torch.randn(9, 5, generator=g)
    return z1, z2, queue


@pytest.mark.parametrize("rule,tau", [("softmax", 0.5), ("softmax", 0.05), ("hit", None),
                                      ("rank", None)])
@pytest.mark.parametrize("with_queue", [False, True])
def test_every_rule_matches_the_loop_reference(batch, rule, tau, with_queue):
    z1, z2, queue = batch
    comp = "batch+queue" if with_queue else "batch"
    name = f"{comp}:{'tau=' + str(tau) if rule == 'softmax' else rule}"
    got = pair_map_values(z1, z2, [parse_map_name(name)], queue if with_queue else None)
    want = reference_pair_values(z1.numpy(), z2.numpy(), rule, tau,
                                 queue.numpy() if with_queue else None)
    np.testing.assert_allclose(got[parse_map_name(name).name], want, rtol=1e-10, atol=1e-12)


def test_queue_competitors_enlarge_the_denominator(batch):
    z1, z2, queue = batch
    tau = 0.2
    alone = positive_pair_probability(z1, z2, tau).numpy()
    with_queue = positive_pair_probability(z1, z2, tau, queue=queue).numpy()
    assert np.all(with_queue < alone)
    # one direction by hand: p = e^{s+/t} / (e^{s+/t} + sum_batch + sum_queue)
    z = nn.functional.normalize(torch.cat([z1, z2]).double(), dim=1)
    q = nn.functional.normalize(queue.double(), dim=1)
    n = z1.shape[0]
    e = torch.exp(z @ z.T / tau)
    eq = torch.exp(z @ q.T / tau).sum(1)
    p_fwd = e[torch.arange(n), torch.arange(n) + n] / (e.sum(1) - e.diagonal() + eq)[:n]
    p_bwd = e[torch.arange(n) + n, torch.arange(n)] / (e.sum(1) - e.diagonal() + eq)[n:]
    np.testing.assert_allclose(with_queue, (0.5 * (p_fwd + p_bwd)).numpy(), rtol=1e-10)


def test_hit_map_is_the_zero_temperature_limit(batch):
    z1, z2, _ = batch
    names = [parse_map_name(n) for n in ("batch:hit", "batch:tau=1e-05", "batch:tau=0.001")]
    vals = pair_map_values(z1, z2, names)
    np.testing.assert_allclose(vals["batch:tau=1e-05"], vals["batch:hit"], atol=1e-6)
    # the authors' effective 0.001 is already close to it on these well-separated similarities
    np.testing.assert_allclose(vals["batch:tau=0.001"], vals["batch:hit"], atol=0.05)


def test_map_names_parse_and_reject_nonsense():
    assert parse_map_name("batch:tau=0.050").name == "batch:tau=0.05"
    assert parse_map_name("probe:rank").rule == "rank"
    for bad in ("batch", "queue:hit", "batch:tau=0", "batch:tau=x", "batch:top1"):
        with pytest.raises(ConfigError):
            parse_map_name(bad)
    names = catalogue("batch:tau=0.07", probe=True)
    assert names[0] == "batch:tau=0.07" and len(names) == len(set(names))
    assert "probe:hit" in names and "batch+queue:rank" in names
    assert not any(n.startswith("probe:") for n in catalogue("batch:tau=0.05", probe=False))


def test_accumulator_sums_means_and_resume():
    acc = MapAccumulator(["a", "b"], n_images=3, n_epochs=2)
    acc.add(0, np.array([0, 1, 1]), {"a": np.array([1.0, 2.0, 4.0])})
    acc.add(1, np.array([2]), {"a": np.array([5.0]), "b": np.array([7.0])})
    copy = MapAccumulator(["a", "b"], 3, 2)
    copy.load_state_dict(acc.state_dict())
    conf, var, traj = copy.summary()
    np.testing.assert_allclose(conf["a"], [1.0, 3.0, 5.0])
    np.testing.assert_allclose(var["a"], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(conf["b"], [0.0, 0.0, 7.0])
    assert traj.shape == (2, 2, 3)
    assert np.isnan(traj[0, 1]).all() and traj[1, 1, 2] == 7.0  # b recorded only in epoch 1
    with pytest.raises(ConfigError):
        MapAccumulator(["a"], 3, 2).load_state_dict(acc.state_dict())


class _Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


def test_probe_against_fixed_negatives_matches_a_loop():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 2, 2, 1), dtype=np.uint8)
    jitter = torch.Generator().manual_seed(1)

    def view(batch: np.ndarray) -> torch.Tensor:  # deterministic "augmentation" per call order
        x = torch.from_numpy(batch).float().permute(0, 3, 1, 2) / 255.0
        return x + 0.05 * torch.randn(x.shape, generator=jitter)

    negatives = np.array([0, 2, 5])
    variants = [parse_map_name(n) for n in ("probe:tau=0.1", "probe:hit", "probe:rank")]
    got = probe_map_values(_Flatten(), images, view, variants, negatives, pairs=1,
                           device=torch.device("cpu"), batch_size=16)
    # replay the same random views: negatives first, then the two views of the batch
    jitter.manual_seed(1)
    neg = view(images[negatives]).flatten(1).double().numpy()
    v1, v2 = view(images).flatten(1).double().numpy(), view(images).flatten(1).double().numpy()
    for i in range(len(images)):
        ref = {"probe:tau=0.1": 0.0, "probe:hit": 0.0, "probe:rank": 0.0}
        for anchor, other in ((v1[i], v2[i]), (v2[i], v1[i])):
            pos = _cos(anchor, other)
            sims = [_cos(anchor, neg[j]) for j in range(len(negatives)) if negatives[j] != i]
            num = math.exp(pos / 0.1)
            ref["probe:tau=0.1"] += 0.5 * num / (num + sum(math.exp(s / 0.1) for s in sims))
            ref["probe:hit"] += 0.5 * float(pos > max(sims))
            ref["probe:rank"] += 0.5 * sum(s < pos for s in sims) / len(sims)
        for name, value in ref.items():
            assert got[name][i] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, i)


def test_config_validates_map_options():
    for bad in ({"map_rule": "top1"}, {"map_competitors": "queue"}, {"probe_pairs": -1},
                {"map_competitors": "probe"}, {"probe_epochs": 0}):
        with pytest.raises(ConfigError):
            MocoConfig(**bad).validate()
    assert MocoConfig().map_name == "batch:tau=0.05"
    assert MocoConfig(map_rule="hit", map_competitors="batch+queue").map_name == "batch+queue:hit"
    cfg = MocoConfig(epochs=5, probe_pairs=2, probe_epochs=2)
    assert [cfg.probed(e) for e in range(5)] == [False, False, False, True, True]


def test_cache_key_follows_the_map_options():
    images = np.zeros((4, 8, 8, 3), np.uint8)
    base = contrastive.cache_key(images, MocoConfig())
    for change in ({"map_rule": "hit"}, {"map_competitors": "batch+queue"}, {"probe_pairs": 1},
                   {"tau_map": 0.001}):
        assert contrastive.cache_key(images, MocoConfig(**change)) != base
    assert contrastive.cache_key(images, MocoConfig(num_threads=1)) == base


TINY = dict(epochs=2, batch_size=32, queue_size=64, warmup_epochs=0.5, num_threads=1)


def test_pretraining_records_the_catalogue_and_the_probe_leaves_training_alone(blood_small,
                                                                               tmp_path):
    images = blood_small.train.images[:96]
    plain = pretrain_moco(images, MocoConfig(**TINY), cache_root=tmp_path, progress=False)
    probed = pretrain_moco(images, MocoConfig(**TINY, probe_pairs=1, probe_negatives=40,
                                              map_competitors="probe", map_rule="rank"),
                           cache_root=tmp_path, progress=False)
    # the probe uses a forked RNG: the encoder and the training-time maps are unchanged
    np.testing.assert_allclose(probed.features, plain.features, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probed.maps["batch:tau=0.05"], plain.confidence, rtol=1e-9)
    np.testing.assert_array_equal(probed.confidence, probed.maps["probe:rank"])
    assert set(catalogue("probe:rank", True)) == set(probed.maps)
    assert probed.map_trajectory.shape == (2, len(probed.maps), 96)
    assert np.all((probed.maps["batch+queue:rank"] >= 0) & (probed.maps["batch+queue:rank"] <= 1))
    again = pretrain_moco(images, probed.config, cache_root=tmp_path, progress=False)
    assert again.from_cache and set(again.maps) == set(probed.maps)
    np.testing.assert_array_equal(again.map_trajectory, probed.map_trajectory)


def test_experiment_config_reaches_the_map_options():
    from medactive.experiment.config import PretrainConfig

    kwargs = PretrainConfig(map_rule="hit", map_competitors="batch+queue", probe_pairs=2,
                            probe_epochs=3).as_kwargs()
    cfg = MocoConfig(**kwargs)
    cfg.validate()
    assert cfg.map_name == "batch+queue:hit" and cfg.probe_pairs == 2 and cfg.probe_epochs == 3
    with pytest.raises(ValueError):
        PretrainConfig(map_competitors="queue")
