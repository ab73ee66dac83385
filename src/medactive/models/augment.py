"""Batched contrastive augmentations (kornia), following the HaCon paper's Table 3.

RGB (PathMNIST, BloodMNIST): random resized crop, horizontal flip, colour jitter
(0.4, 0.4, 0.4, 0.1) with p=0.8, random grayscale p=0.2, Gaussian blur σ∈[0.1, 2] p=0.5.
Grayscale / CT-like (OrganAMNIST): crop, flip, jitter of brightness and contrast, rotation 45°
(Azizi et al. 2021) instead of grayscale and blur.

All pipelines work on float ``(B, C, H, W)`` tensors in ``[0, 1]`` (colour jitter assumes that
range); :func:`to_unit` / :func:`normalise` convert from uint8 and to the network's input scale.
"""

from __future__ import annotations

import kornia.augmentation as K
import numpy as np
import torch
from torch import nn

from medactive.models.classifier import PIXEL_MEAN, PIXEL_STD

# The paper (and MoCo v2 on ImageNet) uses a crop scale of (0.08, 1). At 28x28 px that can leave
# an 8x8 patch blown up to the full image, which mostly destroys cell morphology; the MoCo CIFAR
# demo uses 0.2 for 32 px images and we follow it by default (``crop_min_scale`` in MocoConfig).
DEFAULT_CROP_MIN_SCALE = 0.2


def to_unit(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 ``(B, H, W, C)`` -> float32 ``(B, C, H, W)`` in ``[0, 1]`` on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def normalise(x: torch.Tensor) -> torch.Tensor:
    """``[0, 1]`` tensors -> the fixed ``[-1, 1]`` scale of :func:`images_to_tensor`."""
    return (x - PIXEL_MEAN) / PIXEL_STD


def contrastive_augmentation(
    in_channels: int,
    image_size: int,
    crop_min_scale: float = DEFAULT_CROP_MIN_SCALE,
    strength: float = 1.0,
) -> nn.Module:
    """The Table 3 pipeline for ``in_channels`` (3 = RGB recipe, 1 = CT recipe).

    Args:
        in_channels: 1 or 3.
        image_size: output side length (crops are resized back to it).
        crop_min_scale: lower bound of the crop area fraction (paper: 0.08).
        strength: multiplies the colour-jitter magnitudes (1.0 = paper).

    Returns:
        A module mapping ``(B, C, H, W)`` in ``[0, 1]`` to augmented tensors of the same shape;
        every image gets its own random parameters.
    """
    s = float(strength)
    crop = K.RandomResizedCrop((image_size, image_size), scale=(crop_min_scale, 1.0))
    if in_channels == 3:
        return K.AugmentationSequential(
            crop,
            K.RandomHorizontalFlip(),
            K.ColorJitter(0.4 * s, 0.4 * s, 0.4 * s, 0.1 * s, p=0.8),
            K.RandomGrayscale(p=0.2),
            # kernel ~10% of the image side as in MoCo v2 (23 px at 224), i.e. 3 px at 28 px
            K.RandomGaussianBlur((3, 3), (0.1, 2.0), p=0.5),
        )
    # hue and saturation are meaningless for one channel: jitter brightness and contrast only
    return K.AugmentationSequential(
        crop,
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4 * s, 0.4 * s, p=0.8),
        K.RandomRotation(degrees=45.0, p=1.0),
    )
