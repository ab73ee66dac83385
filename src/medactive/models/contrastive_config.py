"""What MoCo pre-training is asked and what it gives back: :class:`MocoConfig` and
:class:`ContrastiveResult`.

Kept apart from :mod:`medactive.models.contrastive` (the training loop, its checkpoints and the
encoder cache) because most callers only need these two types: the CLI, the experiment runner and
the labelling project build a config and read a result without touching training code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from torch import nn

from medactive.errors import ConfigError
from medactive.models.augment import DEFAULT_CROP_MIN_SCALE
from medactive.models.datamap import parse_map_name


@dataclass
class MocoConfig:
    """Hyper-parameters of MoCo v2 pre-training (paper Table 2, scaled to a 2-core CPU).

    Defaults: ``epochs=10`` with batch 256 on BloodMNIST train (11,959 images, compact backbone)
    is ~120k augmented pairs: ~4.4 minutes at the 455 pairs/s measured on this 2-core CPU
    (docs/coldstart.md).
    ``lr`` is the absolute rate for ``batch_size`` (paper: 0.03 x batch/256; a small network and
    short schedule prefer a larger one). ``repeats`` > 1 is the paper's repeated augmentation
    (Table 4): each image appears ``repeats`` times per epoch.

    Dataset map (:mod:`medactive.models.datamap`): the primary map is
    ``"<map_competitors>:<rule>"`` with rule ``tau=<tau_map>`` for ``map_rule="softmax"`` (paper
    Eq. 1, τ = 0.05), else ``hit`` / ``rank``. ``probe_pairs`` > 0 adds a forward-only pass at
    the end of each of the last ``probe_epochs`` epochs (``None`` = every epoch): that many
    augmentation pairs per image against ``probe_negatives`` fixed negative images.
    """

    backbone: str = "compact"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 0.06
    weight_decay: float = 1e-4
    sgd_momentum: float = 0.9
    warmup_epochs: float = 1.0
    temperature: float = 0.2
    tau_map: float = 0.05
    map_rule: str = "softmax"
    map_competitors: str = "batch"
    probe_pairs: int = 0
    probe_epochs: int | None = None
    probe_negatives: int = 4096
    momentum: float = 0.99
    queue_size: int = 4096
    proj_dim: int = 128
    repeats: int = 1
    crop_min_scale: float = DEFAULT_CROP_MIN_SCALE
    aug_strength: float = 1.0
    seed: int = 0
    device: str | None = None
    amp: bool = True
    # CPU threads for this run (None = torch's default). On a CPU shared with other jobs, 1 thread
    # was twice as fast as 2 (docs/coldstart.md); not part of the cache key.
    num_threads: int | None = None

    def validate(self) -> None:
        """Raise :class:`ConfigError` on impossible values."""
        if self.epochs < 1 or self.batch_size < 2 or self.repeats < 1:
            raise ConfigError("MocoConfig: epochs >= 1, batch_size >= 2 and repeats >= 1 required")
        if self.temperature <= 0 or self.tau_map <= 0:
            raise ConfigError("MocoConfig: temperature and tau_map must be positive")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError("MocoConfig: momentum must be in [0, 1)")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ConfigError("MocoConfig: crop_min_scale must be in (0, 1]")
        if self.queue_size < self.batch_size:
            raise ConfigError("MocoConfig: queue_size must be >= batch_size")
        if self.map_rule not in ("softmax", "hit", "rank"):
            raise ConfigError(f"MocoConfig: map_rule must be softmax, hit or rank, got {self.map_rule!r}")
        parse_map_name(self.map_name)  # validates map_competitors
        if self.probe_pairs < 0 or self.probe_negatives < 1:
            raise ConfigError("MocoConfig: probe_pairs >= 0 and probe_negatives >= 1 required")
        if self.probe_epochs is not None and self.probe_epochs < 1:
            raise ConfigError("MocoConfig: probe_epochs must be >= 1 (or None for every epoch)")
        if self.map_competitors == "probe" and self.probe_pairs == 0:
            raise ConfigError("MocoConfig: map_competitors='probe' needs probe_pairs >= 1")

    @property
    def map_name(self) -> str:
        """Name of the primary map variant, e.g. ``"batch:tau=0.05"``."""
        rule = f"tau={self.tau_map:g}" if self.map_rule == "softmax" else self.map_rule
        return f"{self.map_competitors}:{rule}"

    def probed(self, epoch: int) -> bool:
        """Whether the probe pass runs at the end of (0-based) ``epoch``."""
        first = 0 if self.probe_epochs is None else self.epochs - self.probe_epochs
        return self.probe_pairs > 0 and epoch >= first


@dataclass
class ContrastiveResult:
    """Output of :func:`~medactive.models.contrastive.pretrain_moco`.

    Attributes:
        encoder: the query backbone (no projection head), eval mode, on CPU.
        features: ``(N, D)`` float32 backbone features of the un-augmented images.
        confidence: ``(N,)`` float64 mean probability of the positive pair (Eq. 3), primary map.
        variability: ``(N,)`` float64 standard deviation of that probability.
        config: the configuration used.
        key: cache key (hash of image bytes + config).
        images_per_second: augmented pairs processed per second of training (0 on a cache hit
            without a recorded figure).
        from_cache: True when loaded from the cache without training.
        maps: ``{variant name: (N,) float64 confidence}`` for every recorded map variant
            (:func:`medactive.models.datamap.catalogue`); ``maps[config.map_name]`` is
            ``confidence``.
        map_trajectory: ``(E, V, N)`` float32 per-epoch means of the variants in ``maps`` order
            (NaN where an epoch recorded nothing), for noise studies.
    """

    encoder: nn.Module
    features: np.ndarray
    confidence: np.ndarray
    variability: np.ndarray
    config: MocoConfig
    key: str
    images_per_second: float
    from_cache: bool = False
    maps: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    map_trajectory: np.ndarray | None = None


def fit_to_pool(config: MocoConfig, n_images: int) -> MocoConfig:
    """``config`` for a pool of ``n_images``: the batch clamped to the pool (at least 2) and the
    queue holding at least one batch of keys; validated.

    Raises:
        ConfigError: impossible values (see :meth:`MocoConfig.validate`).
    """
    batch = max(2, min(config.batch_size, n_images))
    cfg = dataclasses.replace(config, batch_size=batch,
                              queue_size=max(config.queue_size, batch))
    cfg.validate()
    return cfg
