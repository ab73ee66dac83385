"""Fitting a round's classifier: the one place every caller trains it.

Head mode (the default everywhere): dropout + linear head on the pool's cached features in the
round's :class:`~medactive.rounds.space.FeatureSpace`, trained with
:func:`medactive.models.fit_head`. Finetune mode (the experiment runner's ``mode = "finetune"``):
every layer of a copy of the encoder is trained on the labelled images.

Threads are set deliberately: a head is a ``(M, D) @ (D, C)`` problem with ``M`` at most a
pool, far too small for torch's intra-op threads to pay, and those threads spin when other
processes share the cores (a full-data head took 35 min at load 7 with torch's default
threads, 54 s alone). So head fits run on one thread, restored afterwards
(``benchmarks/bench_head_fit.py`` measures both, idle and under load).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from medactive.data.dataset import ImageDataset
from medactive.data.lazy import LazyImages
from medactive.errors import ConfigError
from medactive.models import (
    Classifier,
    HeadConfig,
    TrainConfig,
    fit_classifier,
    fit_head,
    head_proba,
    predict_proba,
)

# Rows scored at once (bounds the float64 temporary).
_CHUNK = 16384

#: Intra-op threads of a head fit (see the module docstring).
HEAD_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the previous count."""
    before = torch.get_num_threads()
    if n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class FinetuneSettings:
    """Finetune mode's recipe (:class:`medactive.models.TrainConfig` fields)."""

    epochs: int = 20
    lr: float = 5e-4
    weight_decay: float = 1e-5
    lr_decay: float = 0.995
    batch_size: int = 64
    early_stopping_patience: int | None = None
    reset_encoder: bool = False  # train from a randomly re-initialised copy (encoder "random")


@dataclass(frozen=True)
class ClassifierConfig:
    """How a round's classifier is trained (the same for the product, runner and back-test).

    Attributes:
        mode: ``"head"`` (dropout + linear on cached features) or ``"finetune"``.
        head: head mode's recipe; its ``seed`` is replaced by the round's seed.
        finetune: finetune mode's recipe.
        device: torch device for finetune mode (None: CUDA when present).
    """

    mode: Literal["head", "finetune"] = "head"
    head: HeadConfig = field(default_factory=HeadConfig)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    device: str | None = None

    @property
    def dropout(self) -> float:
        """Dropout in front of the linear head (both modes)."""
        return float(self.head.dropout)


@dataclass(eq=False)
class RoundModel:
    """A round's trained classifier.

    Attributes:
        weight: ``(C, D)`` float32 weight of the linear head, in the round's feature space
            (head mode) or of the fine-tuned network's head (finetune mode).
        bias: ``(C,)`` float32.
        dropout: dropout rate in front of the head (MC-dropout strategies sample it).
        network: the fine-tuned :class:`Classifier` (finetune mode only).
    """

    weight: np.ndarray
    bias: np.ndarray
    dropout: float
    network: Classifier | None = None

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """``(M, C)`` float64 probabilities of the head on ``(M, D)`` features in its space
        (in row chunks: no float64 copy of a large pool's features is made)."""
        out = np.empty((features.shape[0], self.weight.shape[0]), np.float64)
        for start in range(0, features.shape[0], _CHUNK):
            out[start:start + _CHUNK] = head_proba(features[start:start + _CHUNK], self.weight,
                                                   self.bias)
        return out

    def predict_images(self, images: np.ndarray | LazyImages, device: str | None = None
                       ) -> np.ndarray:
        """``(M, C)`` float64 probabilities of the fine-tuned network on uint8 images."""
        if self.network is None:
            raise ConfigError("predict_images needs a fine-tuned network (finetune mode)")
        return predict_proba(self.network, images, device=device)


def fit_head_classifier(features: np.ndarray, labels: np.ndarray, n_classes: int,
                        config: ClassifierConfig, seed: int) -> RoundModel:
    """Train the round's head on ``(M, D)`` features (already in the round's space) with
    ``(M,)`` labels in ``[0, n_classes)``; seeded by ``seed``, on :data:`HEAD_THREADS`."""
    head = HeadConfig(**{**config.head.__dict__, "seed": int(seed)})
    with torch_threads(HEAD_THREADS):
        weight, bias = fit_head(features, labels, n_classes, head)
    return RoundModel(weight, bias, float(head.dropout))


def finetune_classifier(encoder: torch.nn.Module, train: ImageDataset, val: ImageDataset | None,
                        n_classes: int, config: ClassifierConfig, seed: int) -> RoundModel:
    """Fine-tune a copy of ``encoder`` + dropout/linear head on ``train`` (every layer), with
    ``val`` for early stopping when the recipe asks for it."""
    torch.manual_seed(seed)
    backbone = copy.deepcopy(encoder)
    f = config.finetune
    if f.reset_encoder:
        for module in backbone.modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    model = Classifier(backbone, n_classes, config.dropout)
    fit_classifier(model, train, val if f.early_stopping_patience is not None else None,
                   TrainConfig(epochs=f.epochs, lr=f.lr, weight_decay=f.weight_decay,
                               lr_decay=f.lr_decay, batch_size=f.batch_size,
                               early_stopping_patience=f.early_stopping_patience, seed=seed,
                               device=config.device, progress=False))
    weight, bias = model.head_arrays()
    return RoundModel(weight, bias, config.dropout, network=model)
