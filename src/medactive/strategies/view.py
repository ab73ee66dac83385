"""Build a round's :class:`RoundView` with one batched forward pass of the backbone."""

from __future__ import annotations

import numpy as np
import torch

from medactive.data.lazy import LazyImages
from medactive.errors import StrategyError
from medactive.models.classifier import Classifier
from medactive.models.training import extract_features
from medactive.strategies.base import RoundView


def build_round_view(
    model: Classifier,
    train_images: np.ndarray | LazyImages,
    labeled_mask: np.ndarray,
    labels: np.ndarray,
    val_images: np.ndarray | LazyImages,
    val_labels: np.ndarray,
    *,
    batch_size: int = 512,
    device: str | torch.device | None = None,
    include_images: bool = False,
    true_labels: np.ndarray | None = None,
) -> RoundView:
    """Cache everything a strategy needs for one acquisition round.

    The backbone runs once, in eval mode, over the training and validation images together
    (one batched pass); no strategy re-runs it unless it needs the network itself.

    Args:
        model: trained ``Classifier`` (backbone -> dropout -> linear head).
        train_images: ``(N, H, W, C)`` uint8 images of the whole training set, in memory or
            lazy (:class:`~medactive.data.lazy.LazyImages`).
        labeled_mask: ``(N,)`` bool, True where labelled.
        labels: ``(N,)`` int labels; entries outside ``labeled_mask`` are ignored (set to -1).
        val_images: ``(K, H, W, C)`` uint8 evaluation images. val_labels: ``(K,)`` labels.
        batch_size: images per forward batch. device: torch device (default: CUDA if present).
        include_images: also store ``model`` and ``train_images`` (VAAL, Consistency need them).
        true_labels: optional ``(N,)`` ground truth, simulation only (label-diversity wrapper).

    Returns:
        A :class:`RoundView`; features are float32 ``(N, D)``, head arrays float32.
    """
    labeled_mask = np.asarray(labeled_mask, dtype=bool)
    n = train_images.shape[0]
    if labeled_mask.shape != (n,) or np.asarray(labels).shape != (n,):
        raise StrategyError(
            f"labeled_mask {labeled_mask.shape} and labels {np.shape(labels)} must have shape ({n},)"
        )
    if val_images.shape[0] != np.asarray(val_labels).shape[0]:
        raise StrategyError(
            f"{val_images.shape[0]} validation images but {np.shape(val_labels)} labels"
        )
    # One pass over train+val: concatenating costs one uint8 copy, far less than a second
    # model launch, and keeps batches full across the boundary.
    # never concatenate a pool on disk
    if isinstance(train_images, LazyImages) or isinstance(val_images, LazyImages):
        feats = np.concatenate([
            extract_features(model.backbone, part, batch_size, device, progress=False)
            for part in (train_images, val_images) if part.shape[0]])
    else:
        both = np.concatenate([train_images, val_images]) if val_images.shape[0] else train_images
        feats = extract_features(model.backbone, both, batch_size, device, progress=False)
    weight, bias = model.head_arrays()
    known = np.where(labeled_mask, np.asarray(labels, dtype=np.int64), -1)
    return RoundView(
        features=np.ascontiguousarray(feats[:n]),
        labeled_mask=labeled_mask,
        labels=known,
        weight=weight,
        bias=bias,
        dropout_p=float(model.dropout_p),
        val_features=np.ascontiguousarray(feats[n:]),
        val_labels=np.asarray(val_labels, dtype=np.int64),
        images=train_images if include_images else None,
        model=model if include_images else None,
        true_labels=None if true_labels is None else np.asarray(true_labels, dtype=np.int64),
    )
