"""Tiny randomly initialised ``transformers`` models saved with ``save_pretrained``: the tests of
``hf:`` encoders never download anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

LAYERS = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
          "intermediate_size": 64}


def save_tiny(folder: Path, config: object, processor: dict | None = None) -> Path:
    """Save a randomly initialised model of ``config`` (seed 0) and an optional processor file."""
    import torch
    from transformers import AutoModel

    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(folder)
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a 2-layer DINOv2 (with a DINOv2-style processor file, 28 px crop), ViT,
    ConvNeXt and CLIP, plus a BERT (not an image model)."""
    import transformers as tf

    root = tmp_path_factory.mktemp("hf")
    dino_processor = {"image_processor_type": "BitImageProcessor", "do_center_crop": True,
                      "crop_size": {"height": 28, "width": 28}, "size": {"shortest_edge": 32},
                      "do_normalize": True, "image_mean": [0.5, 0.4, 0.3],
                      "image_std": [0.2, 0.25, 0.3], "do_rescale": True,
                      "rescale_factor": 1 / 255}
    return {
        "dino": save_tiny(root / "dino", tf.Dinov2Config(**LAYERS, image_size=28, patch_size=14),
                          dino_processor),
        "vit": save_tiny(root / "vit", tf.ViTConfig(**LAYERS, image_size=32, patch_size=8)),
        "convnext": save_tiny(root / "convnext", tf.ConvNextConfig(
            hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], image_size=32)),
        "clip": save_tiny(root / "clip", tf.CLIPConfig(
            vision_config={**LAYERS, "image_size": 32, "patch_size": 8},
            text_config={**LAYERS, "vocab_size": 100, "bos_token_id": 0, "eos_token_id": 1},
            projection_dim=16)),
        "bert": save_tiny(root / "bert", tf.BertConfig(**LAYERS, vocab_size=100)),
    }
