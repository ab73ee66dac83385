"""`[model] encoder` takes the registry's names (moco, imagenet, hf:...) with `encoder_weights`;
features go through the on-disk cache, so a second experiment on the same data encodes
nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.experiment.conftest import config_text, write_synthetic_npz

from medactive.errors import ConfigError
from medactive.experiment import load_config, run_experiment
from medactive.experiment.prepare import prepare


@pytest.fixture
def tiny_dino(tmp_path: Path) -> Path:
    """A 2-layer DINOv2 saved with save_pretrained in ``tmp_path/dino`` (no download)."""
    import torch
    import transformers

    torch.manual_seed(0)
    transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=28, patch_size=14)).save_pretrained(tmp_path / "dino")
    return tmp_path / "dino"


def test_hf_encoder_with_relative_weights_runs_and_caches(tmp_path: Path, tiny_dino: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    text = config_text(npz, encoder="hf:facebook/dinov2-small",
                       strategies='["entropy"]').replace(
        'encoder = "hf:facebook/dinov2-small"',
        'encoder = "hf:facebook/dinov2-small"\nencoder_weights = "dino"')
    (tmp_path / "c.toml").write_text(text.replace("repeats = 2", "repeats = 1"))
    config = load_config(tmp_path / "c.toml")
    assert config.model.encoder_weights == str(tiny_dino.resolve())
    out = run_experiment(config, tmp_path / "run", progress=False, report=False)
    info = json.loads((out / "dataset.json").read_text())["encoder"]
    assert info["encoder"] == "hf:facebook/dinov2-small" and info["feature_dim"] == 32
    assert len(list((tmp_path / "cache" / "feature-cache").glob("*/meta.json"))) == 3
    again = prepare(config, progress=False)  # train, val, test: all from the cache
    assert again.encoder_info["from_cache"] and again.train_features.shape[1] == 32


def test_moco_features_and_map_through_the_registry(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from medactive.models.contrastive import pretrain_moco
    from medactive.models.contrastive_config import MocoConfig, fit_to_pool

    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    (tmp_path / "c.toml").write_text(config_text(npz, encoder="moco"))
    prepared = prepare(load_config(tmp_path / "c.toml"), progress=False)
    train = prepared.splits.train.images
    cfg = fit_to_pool(MocoConfig(epochs=1, batch_size=32, queue_size=64), len(train))
    reference = pretrain_moco(train, cfg, cache_root=tmp_path / "cache" / "encoders",
                              progress=False)
    assert reference.from_cache and prepared.encoder_info["cache_key"] == reference.key
    np.testing.assert_array_equal(prepared.train_features, reference.features)
    np.testing.assert_array_equal(prepared.confidence, reference.confidence)
    assert prepared.maps is not None and prepared.encoder_info["backbone"] == "compact"


@pytest.mark.parametrize("model, message", [
    ('encoder = "resnet"', "model.encoder: must be moco, imagenet, hf:"),
    ('encoder = "hf:"', "must be moco"),
    ('encoder = "moco"\nencoder_weights = "w.pt"', "encoder_weights applies to"),
])
def test_bad_encoder_settings(tmp_path: Path, model: str, message: str) -> None:
    npz = write_synthetic_npz(tmp_path / "s.npz")
    (tmp_path / "c.toml").write_text(config_text(npz).replace('encoder = "random"', model))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_config(tmp_path / "c.toml")


def test_missing_weights_fail_before_any_work(tmp_path: Path) -> None:
    npz = write_synthetic_npz(tmp_path / "s.npz")
    (tmp_path / "c.toml").write_text(config_text(npz).replace(
        'encoder = "random"', 'encoder = "imagenet"\nencoder_weights = "absent.pt"'))
    with pytest.raises(ConfigError, match=r"--encoder-weights absent\.pt: no such file"):
        prepare(load_config(tmp_path / "c.toml"), progress=False)
