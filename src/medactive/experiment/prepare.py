"""Everything computed once per experiment: splits, the frozen encoder, cached features.

Expensive forward passes happen here, once; the round loop (``runner.py``, through the round
engine :mod:`medactive.rounds`) only trains heads and calls strategies on cached arrays (head
mode) or re-trains the classifier (finetune mode). The head's feature space (standardisation) is
the engine's decision (:mod:`medactive.rounds.space`), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from medactive.data import DatasetSplits, ImageDataset, load_dataset, make_long_tail_splits
from medactive.data.splits import stratified_split
from medactive.errors import ConfigError
from medactive.experiment.config import ExperimentConfig
from medactive.models import build_backbone, extract_features, seed_everything


@dataclass
class Prepared:
    """Splits plus the frozen encoder and its cached features.

    Attributes:
        splits: train (the pool) / val (evaluation set of information gain) / test.
        encoder: backbone used as frozen feature extractor (head mode) or as initialisation
            (finetune mode); None with your own embeddings (``encoder = "features"``).
        train_features, val_features, test_features: ``(N, D)`` float32 cached encoder features
            (cold-start strategies cluster these; the engine maps them into the head's space).
        confidence, variability: ``(N_train,)`` contrastive dataset map (MoCo encoder only).
        maps: every recorded dataset-map variant, ``{name: (N_train,)}`` (MoCo encoder only),
            for cold-start strategies with a ``map`` parameter.
        encoder_info: what produced the encoder (for the report).
    """

    splits: DatasetSplits
    encoder: nn.Module | None
    train_features: np.ndarray
    val_features: np.ndarray
    test_features: np.ndarray
    confidence: np.ndarray | None
    variability: np.ndarray | None
    encoder_info: dict
    maps: dict[str, np.ndarray] | None = None


def _concat(parts: list[ImageDataset]) -> ImageDataset:
    return ImageDataset(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
        parts[0].class_names,
        np.concatenate([p.ids for p in parts]),
        parts[0].name.split("/")[0],
    )


def _limit(ds: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    if n is None or n >= len(ds):
        return ds
    return stratified_split(ds, (n, 0, 0), seed=seed).train


def load_splits(config: ExperimentConfig) -> DatasetSplits:
    """Load the dataset and apply the configured split, long tail and size limits."""
    dc = config.dataset
    if dc.lazy and not str(dc.source).lower().endswith(".csv"):
        raise ConfigError("dataset.lazy applies to image-folder .csv sources (MedMNIST arrays "
                          "are already in memory)")
    splits = load_dataset(dc.source, **dc.folder_options())
    if dc.split == "stratified":
        assert dc.sizes is not None
        pooled = _concat([d for _, d in splits.items() if len(d)])
        splits = stratified_split(pooled, dc.sizes, seed=dc.seed)
    if dc.long_tail is not None:
        splits = make_long_tail_splits(splits, dc.long_tail, seed=dc.seed)
    limited = DatasetSplits(
        _limit(splits.train, dc.train_limit, dc.seed),
        _limit(splits.val, dc.val_limit, dc.seed + 1),
        _limit(splits.test, dc.test_limit, dc.seed + 2),
        name=splits.name,
        meta=splits.meta,
    )
    for split_name, ds in limited.items():
        if len(ds) == 0:
            raise ConfigError(f"dataset split '{split_name}' is empty")
    return limited


def prepare(config: ExperimentConfig, progress: bool = True,
            splits: DatasetSplits | None = None) -> Prepared:
    """Load data (or take ``splits``, already loaded by :func:`load_splits`) and
    build/cached-load the encoder and its features for ``config``."""
    splits = splits if splits is not None else load_splits(config)
    mc = config.model
    train = splits.train
    in_channels, image_size = train.image_shape[2], train.image_shape[0]
    confidence = variability = maps = None
    if mc.encoder == "moco":
        from medactive.coldstart.pipeline import pretrain
        from medactive.models.contrastive_config import MocoConfig

        moco_cfg = MocoConfig(backbone=mc.backbone, seed=config.run.seed, device=config.run.device,
                              **mc.pretrain.as_kwargs())
        result = pretrain(train.images, moco_cfg, progress=progress)
        encoder = result.encoder
        train_features = np.asarray(result.features, dtype=np.float32)
        confidence = np.asarray(result.confidence, dtype=np.float64)
        variability = np.asarray(result.variability, dtype=np.float64)
        maps = result.maps or None
        info = {"encoder": "moco", "backbone": mc.backbone, "cache_key": result.key,
                "images_per_second": getattr(result, "images_per_second", None)}
    elif mc.encoder == "features":  # your own embeddings: no backbone at all
        from medactive.data.embeddings import split_embeddings

        assert mc.features is not None
        feats = split_embeddings(mc.features, load_dataset(config.dataset.source,
                                                           **config.dataset.folder_options()),
                                 splits)
        return Prepared(splits, None, *feats, None, None,
                        {"encoder": "features", "features": mc.features})
    else:
        seed_everything(config.run.seed)
        if mc.encoder == "imagenet":
            encoder = build_backbone("efficientnet-lite0", in_channels, image_size, pretrained=True)
        else:
            encoder = build_backbone(mc.backbone, in_channels, image_size)
        train_features = _features(encoder, train.images, config, progress)
        info = {"encoder": mc.encoder, "backbone": mc.backbone}
    val_features = _features(encoder, splits.val.images, config, progress)
    test_features = _features(encoder, splits.test.images, config, progress)
    return Prepared(splits, encoder, train_features, val_features, test_features, confidence,
                    variability, info, maps)


def _features(encoder: nn.Module, images: np.ndarray, config: ExperimentConfig,
              progress: bool) -> np.ndarray:
    """The encoder's features of ``images``: one process, or Ray Data with ``[run] ray``."""
    if config.run.ray is not None:
        from medactive.models.cluster import ray_extract_features

        return ray_extract_features(encoder, images, address=config.run.ray)
    return extract_features(encoder, images, device=config.run.device, progress=progress)
