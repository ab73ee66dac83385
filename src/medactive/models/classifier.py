"""Classifier = backbone -> dropout(p) -> linear head (the information-gain paper's architecture).

"The classification layer" of the information-gain strategies is ``Classifier.head`` and its input,
``Classifier.features(x)``, is the penultimate feature cached once per round.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medactive.models.backbones import backbone_out_dim, build_backbone

# Fixed normalisation: maps uint8 [0, 255] to [-1, 1]. Dataset-independent on purpose so a cached
# encoder can be reused across splits and subsets without carrying statistics around.
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5


def images_to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Convert uint8 ``(B, H, W, C)`` images to normalised float32 ``(B, C, H, W)`` on ``device``."""
    t = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    t = t.permute(0, 3, 1, 2).float().div_(255.0)
    return t.sub_(PIXEL_MEAN).div_(PIXEL_STD)


class Classifier(nn.Module):
    """Backbone, dropout and a linear head.

    Args:
        backbone: module mapping ``(B, C, H, W)`` to ``(B, backbone.out_dim)``.
        n_classes: number of output classes ``C``.
        dropout: probability of the dropout in front of the head (paper: 0.2).
    """

    def __init__(self, backbone: nn.Module, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(backbone_out_dim(backbone), n_classes)

    @property
    def feature_dim(self) -> int:
        """Dimension ``D`` of the penultimate features."""
        return int(self.head.in_features)

    @property
    def dropout_p(self) -> float:
        """Dropout probability in front of the head."""
        return float(self.dropout.p)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(B, D)`` (the head's input, before dropout)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)``."""
        return self.head(self.dropout(self.features(x)))

    def head_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Head weight ``(C, D)`` and bias ``(C,)`` as float32 NumPy copies."""
        return (
            self.head.weight.detach().cpu().numpy().astype(np.float32),
            self.head.bias.detach().cpu().numpy().astype(np.float32),
        )


def build_classifier(
    backbone: str,
    n_classes: int,
    in_channels: int = 3,
    image_size: int = 28,
    dropout: float = 0.2,
    pretrained: bool = False,
) -> Classifier:
    """Create a :class:`Classifier` around a named backbone (see ``build_backbone``)."""
    return Classifier(build_backbone(backbone, in_channels, image_size, pretrained), n_classes, dropout)
