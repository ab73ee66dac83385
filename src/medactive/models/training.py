"""Supervised training (full fine-tuning; head mode is :mod:`medactive.models.head`) and batched
inference.

Defaults follow the information-gain paper's recipe: Adam (lr 5e-4, weight decay 1e-5), learning
rate x0.995 per epoch, batch 64, random horizontal/vertical flips and rotation up to 30 degrees.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from medactive.data.dataset import ImageDataset
from medactive.data.lazy import LazyImages, prefetch_batches
from medactive.errors import MedactiveError
from medactive.metrics import macro_auc
from medactive.models.classifier import Classifier, images_to_tensor
from medactive.models.device import autocast, memory_format, seed_everything, select_device
from medactive.models.head import softmax64
from medactive.progress import progress_bar


@dataclass
class TrainConfig:
    """Hyper-parameters of supervised training (defaults: the information-gain paper's recipe).

    ``early_stopping_patience``: stop after that many epochs without a better validation macro
    AUC and restore the best weights (``None`` = train all epochs, keep the last).
    """

    epochs: int = 20
    lr: float = 5e-4
    weight_decay: float = 1e-5
    lr_decay: float = 0.995
    batch_size: int = 64
    augment: bool = True
    rotation_degrees: float = 30.0
    early_stopping_patience: int | None = None
    seed: int = 0
    device: str | None = None
    amp: bool = True
    progress: bool = True


@dataclass
class TrainHistory:
    """Per-epoch training loss and validation macro AUC (NaN when no validation set)."""

    train_loss: list[float] = field(default_factory=list)
    val_auc: list[float] = field(default_factory=list)
    best_epoch: int = -1


def make_augmentation(rotation_degrees: float = 30.0) -> nn.Module:
    """Batched augmentation on normalised ``(B, C, H, W)`` tensors: flips and rotation."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(),
        K.RandomVerticalFlip(),
        K.RandomRotation(degrees=rotation_degrees, p=1.0),
    )


def _check_trainable(train: ImageDataset) -> None:
    if len(train) == 0:
        raise MedactiveError("cannot train on an empty labelled set")
    if (train.labels < 0).any():
        raise MedactiveError(
            f"{int((train.labels < 0).sum())} training images have unknown labels (-1)"
        )


def fit_classifier(
    model: Classifier,
    train: ImageDataset,
    val: ImageDataset | None = None,
    config: TrainConfig | None = None,
) -> TrainHistory:
    """Train every parameter of ``model`` on ``train`` (in place).

    Args:
        model: classifier to train.
        train: labelled images ``(N, H, W, C)``.
        val: optional validation images for early stopping / monitoring.
        config: hyper-parameters.

    Returns:
        Loss and validation AUC per epoch.
    """
    cfg = config or TrainConfig()
    _check_trainable(train)
    device = select_device(cfg.device)
    gen = seed_everything(cfg.seed)
    fmt = memory_format(device)
    # torch's stubs lack Module.to(memory_format=...), which torch accepts
    model.to(device).to(memory_format=fmt)  # type: ignore[call-overload]
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.lr_decay)
    augment = make_augmentation(cfg.rotation_degrees).to(device) if cfg.augment else None
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    labels = torch.from_numpy(train.labels)
    history = TrainHistory()
    best_state, best_auc, stale = None, -np.inf, 0
    n = len(train)
    bar = progress_bar(range(cfg.epochs), desc="train", unit="epoch", enabled=cfg.progress)
    for epoch in bar:
        model.train()
        perm = torch.randperm(n, generator=gen).numpy()
        total = 0.0
        # a batch of one breaks BatchNorm statistics
        order = [perm[s : s + cfg.batch_size] for s in range(0, n, cfg.batch_size)]
        order = [idx for idx in order if idx.size >= 2 or n < 2]
        for idx, pixels in zip(order, prefetch_batches(train.images, order), strict=True):
            x = images_to_tensor(pixels, device).contiguous(memory_format=fmt)
            if augment is not None:
                x = augment(x).contiguous(memory_format=fmt)
            y = labels[idx].to(device)
            with autocast(device, cfg.amp):
                loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach()) * idx.size
        scheduler.step()
        history.train_loss.append(total / n)
        auc = float("nan")
        if val is not None and len(val):
            auc = macro_auc(val.labels, predict_proba(model, val.images, device=device, progress=False))
        history.val_auc.append(auc)
        if cfg.progress and hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total / n:.3f}", val_auc=f"{auc:.4f}")
        if cfg.early_stopping_patience is not None and not np.isnan(auc):
            if auc > best_auc:
                best_auc, stale, history.best_epoch = auc, 0, epoch
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= cfg.early_stopping_patience:
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        history.best_epoch = len(history.train_loss) - 1
    model.eval()
    return history


@torch.no_grad()
def _batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray | LazyImages,
    device: torch.device,
    batch_size: int,
    progress: bool,
    desc: str,
    amp: bool = True,
) -> np.ndarray:
    fmt = memory_format(device)
    outputs = []
    batches = [slice(s, s + batch_size) for s in range(0, images.shape[0], batch_size)]
    loader = prefetch_batches(images, batches)  # reads batch k+1 while batch k runs
    for pixels in progress_bar(loader, desc=desc, unit="batch", enabled=progress,
                               total=len(batches)):
        x = images_to_tensor(pixels, device).contiguous(memory_format=fmt)
        with autocast(device, amp):
            outputs.append(fn(x).float().cpu())
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outputs).numpy()


def extract_features(
    backbone: nn.Module,
    images: np.ndarray | LazyImages,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Run ``backbone`` in eval mode over uint8 ``(N, H, W, C)`` images (in memory or lazy:
    batches are read ahead by :func:`~medactive.data.lazy.prefetch_batches`).

    Returns:
        float32 features ``(N, D)``.
    """
    dev = select_device(device)
    was_training = backbone.training
    # torch's stubs lack Module.to(memory_format=...), which torch accepts
    backbone.to(dev).to(memory_format=memory_format(dev)).eval()  # type: ignore[call-overload]
    try:
        return _batched(backbone, images, dev, batch_size, progress, "features").astype(np.float32)
    finally:
        backbone.train(was_training)


def predict_proba(
    model: Classifier,
    images: np.ndarray | LazyImages,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Softmax probabilities ``(N, C)`` (float64) of ``model`` in eval mode."""
    dev = select_device(device)
    model.to(dev).eval()
    logits = _batched(model, images, dev, batch_size, progress, "predict")
    return softmax64(logits)
