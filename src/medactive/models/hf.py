"""Pretrained image backbones from Hugging Face ``transformers`` (the ``hf:`` encoders).

Why ``transformers`` and not ``timm``: ``timm`` and ``open_clip`` import ``torchvision``, and
PyPI's ``torchvision`` wheel does not import beside the CPU ``torch`` this project pins
(``RuntimeError: operator torchvision::nms does not exist``). ``transformers``' vision models are
pure ``torch``, and its hub holds the backbones a hospital would try: DINOv2
(``facebook/dinov2-small``), RAD-DINO (``microsoft/rad-dino``), ViT, ConvNeXt, ResNet, Swin, BEiT
and the vision towers of CLIP and SigLIP. Anything ``AutoModel`` loads as an image model works.
Image processors are not used (most need ``torchvision`` for their fast path): their
``preprocessor_config.json`` is read for the input size and normalisation, and resizing and
normalising run as batched ``torch`` operations (on the GPU when there is one).

Where the weights come from (:class:`~medactive.models.hf_hub.HFSource`, found by
:func:`~medactive.models.hf_hub.locate`):

* ``hf:ORG/NAME`` — the hub, cached by ``huggingface_hub`` (``~/.cache/huggingface``); with
  ``HF_HUB_OFFLINE=1`` or no network only a cached copy is used;
* ``hf:/path/to/folder`` or ``--encoder-weights FOLDER`` — a folder saved with
  ``save_pretrained`` or downloaded with ``hf download ORG/NAME --local-dir FOLDER`` (air-gapped
  machines: download elsewhere, copy the folder);
* ``--encoder-weights FILE`` (``.safetensors`` / ``.pt`` / ``.bin``) — a state dict for the
  architecture whose ``config.json`` comes from the name (a folder or a cached hub id).

Features (documented per family, :func:`pooling_rule`):

* CLIP / SigLIP and other image-text models (``get_image_features``): the projected image
  embedding (the space zero-shot classification uses); the text tower is dropped from memory;
* ViT and DeiT, whose ``pooler`` is a dense + tanh layer trained only for a classification task
  (and absent, so random, in self-supervised checkpoints such as DINO): the CLS token of the last
  hidden state (layer-normed);
* every other model with a ``pooler_output``: that output — DINOv2 / RAD-DINO: the layer-normed
  CLS token; BEiT: the layer-normed mean of the patch tokens; ConvNeXt, ResNet, Swin: global
  average pooling of the last stage;
* otherwise the CLS token (sequence outputs) or the spatial mean (feature maps).

Preprocessing, part of the encoder: grey images are repeated to three channels; every image is
resized (bilinear, antialiased when shrinking) to the model's own input side (the processor's
``crop_size`` when it centre-crops, else its ``size``; without a processor file the config's
``image_size``, else 224) — the whole image, never centre-cropped, as a finding may lie at the
border of a medical image; then normalised with the processor's ``image_mean`` / ``image_std``
(ImageNet's when there is no processor file).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from medactive.errors import ConfigError
from medactive.models.classifier import PIXEL_MEAN, PIXEL_STD
from medactive.models.hf_hub import HFSource, weight_files
from medactive.models.weights import peek_state_dict, read_state_dict

#: Bumped when the pooling rules or the preprocessing code change (part of every cache key).
FORMAT = "hf-v1"
DEFAULT_INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# poolers that are a trained projection (ViT's dense + tanh), not a pooling of the features
_PROJECTION_POOLERS = ("ViTPooler", "DeiTPooler")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers without its per-load reports and progress bars (restored afterwards)."""
    from transformers.utils import logging as tlog

    level, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(level)
        if bars:
            tlog.enable_progress_bar()


def read_config(source: HFSource) -> Any:
    """The model's ``transformers`` config, checked to be an image model this can run.

    Raises:
        ConfigError: unreadable ``config.json``, a model type this ``transformers`` does not
            know, a text-only model, or one that needs ``timm``.
    """
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_MAPPING_NAMES

    path = source.folder / "config.json"
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable config ({type(exc).__name__})") from None
    kind = raw.get("model_type") if isinstance(raw, dict) else None
    if kind == "timm_wrapper":
        raise ConfigError(f"hf:{source.model} wraps a timm model, and timm needs torchvision, "
                          "which does not import beside this torch; choose a transformers-native "
                          "model (e.g. facebook/dinov2-small)")
    try:
        with _quiet():
            config = AutoConfig.from_pretrained(str(source.folder))
    except (ValueError, KeyError, OSError) as exc:
        detail = f"model type {kind!r}" if kind else "no model_type"
        raise ConfigError(f"hf:{source.model}: transformers {transformers.__version__} does not "
                          f"know this model ({detail}: {str(exc).splitlines()[0][:80]})") from None
    if config.model_type not in MODEL_FOR_IMAGE_MAPPING_NAMES and \
            getattr(config, "vision_config", None) is None:
        raise ConfigError(f"hf:{source.model} is a {config.model_type!r} model, not an image "
                          "model (choose e.g. facebook/dinov2-small)")
    return config


def _vision(config: Any) -> Any:
    return getattr(config, "vision_config", None) or config


def preprocessing(source: HFSource, config: Any) -> dict[str, Any]:
    """Input side, normalisation and channel handling of the model (see the module docstring):
    ``{"input_size", "mean", "std", "rescale", "channels", "from"}``."""
    path = source.folder / "preprocessor_config.json"
    vision = _vision(config)
    channels = int(getattr(vision, "num_channels", 3) or 3)
    try:
        proc = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        proc = None
    if not isinstance(proc, dict):
        side = getattr(vision, "image_size", None)
        size = int(side[0] if isinstance(side, (list, tuple)) else side) if side else \
            DEFAULT_INPUT_SIZE
        return {"input_size": size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                "rescale": 1 / 255, "channels": channels,
                "from": "defaults (no preprocessor_config.json)"}
    size_field = proc.get("crop_size") if proc.get("do_center_crop") else proc.get("size")
    size_field = size_field or proc.get("size") or DEFAULT_INPUT_SIZE
    if isinstance(size_field, dict):
        side = size_field.get("height") or size_field.get("shortest_edge") or \
            size_field.get("width") or DEFAULT_INPUT_SIZE
    else:
        side = size_field
    normalise = proc.get("do_normalize", True)
    mean = proc.get("image_mean", IMAGENET_MEAN) if normalise else [0.0] * channels
    std = proc.get("image_std", IMAGENET_STD) if normalise else [1.0] * channels
    mean = [float(mean)] * channels if isinstance(mean, (int, float)) else [float(m) for m in mean]
    std = [float(std)] * channels if isinstance(std, (int, float)) else [float(s) for s in std]
    rescale = float(proc.get("rescale_factor", 1 / 255)) if proc.get("do_rescale", True) else 1.0
    return {"input_size": int(side), "mean": mean, "std": std, "rescale": rescale,
            "channels": channels, "from": "preprocessor_config.json"}


def check_weights_file(source: HFSource, config: Any) -> None:
    """Cheap architecture check of a single ``--encoder-weights`` file: its tensor names and
    shapes (read from the header, no tensor data) against the model's — the names the model
    has in memory (built on torch's ``meta`` device: no memory) and, when the config's folder
    holds weights, the names those were saved under. Refuses a file that shares under a tenth
    of those names, or disagrees on a shape. (The full check is the load itself, in
    :func:`build`: every tensor must be found.)

    Raises:
        ConfigError: not a checkpoint, or weights for another architecture.
    """
    if source.weights_file is None:
        return
    from transformers import AutoModel

    got = peek_state_dict(source.weights_file)
    with _quiet(), torch.device("meta"):
        model = AutoModel.from_config(config)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for f in weight_files(source.folder):
        if f.suffix == ".safetensors" and f.resolve() != source.weights_file.resolve():
            expected.update(_strip_prefix(peek_state_dict(f), model.base_model_prefix))
    got = _strip_prefix(got, model.base_model_prefix)
    shared = [k for k in got if k in expected]
    wrong = [k for k in shared if tuple(got[k]) != expected[k]]
    if len(shared) < 0.1 * len(got) or wrong:
        detail = f"tensor {wrong[0]} is {list(got[wrong[0]])}, expected {list(expected[wrong[0]])}" \
            if wrong else f"only {len(shared)} of its {len(got)} tensors belong to the model"
        raise ConfigError(f"--encoder-weights {source.weights_file}: not weights of "
                          f"{config.model_type} hf:{source.model} ({detail}): weights for "
                          "another architecture?")


def _strip_prefix(state: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Keys without a leading ``<prefix>.`` or ``module.`` (a checkpoint saved from a task
    model, e.g. ``Dinov2ForImageClassification``, or from ``DistributedDataParallel``)."""
    for head in dict.fromkeys((f"{prefix}.", "module.")):
        if head != "." and state and sum(k.startswith(head) for k in state) > len(state) / 2:
            state = {k[len(head):]: v for k, v in state.items() if k.startswith(head)}
    return state


class HFImageEncoder(nn.Module):
    """A ``transformers`` image model as a medactive backbone: ``(B, C, H, W)`` in ``[-1, 1]``
    (:func:`~medactive.models.classifier.images_to_tensor`) -> ``(B, out_dim)``, with the
    model's own preprocessing inside (see the module docstring).

    Args:
        model: the loaded ``transformers`` model.
        prep: :func:`preprocessing` of the model.
        pooling: ``"image_features"``, ``"cls"``, ``"pooler"`` or ``"mean"``
            (:func:`pooling_rule`).
    """

    def __init__(self, model: nn.Module, prep: dict[str, Any], pooling: str) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.input_size = int(prep["input_size"])
        self.channels = int(prep["channels"])
        self.rescale = float(prep["rescale"]) * 255.0
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(prep["mean"]).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(prep["std"]).view(1, -1, 1, 1), persistent=False)
        with torch.no_grad():
            self.out_dim = int(self.forward(torch.zeros(1, self.channels, 8, 8)).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in ``[-1, 1]`` -> features ``(B, out_dim)`` float32."""
        x = (x.float() * PIXEL_STD + PIXEL_MEAN) * self.rescale  # the model's pixel scale
        if x.shape[1] != self.channels:
            x = x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x.mean(dim=1, keepdim=True)
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            shrink = min(x.shape[-2:]) > self.input_size
            x = nn.functional.interpolate(x, size=(self.input_size, self.input_size),
                                          mode="bilinear", align_corners=False, antialias=shrink)
        x = (x - self.mean) / self.std
        if self.pooling == "image_features":
            out: Any = self.model.get_image_features(pixel_values=x)  # type: ignore[operator]
            pooled = out if isinstance(out, torch.Tensor) else out.pooler_output
        else:
            out = self.model(pixel_values=x)
            hidden = out.last_hidden_state
            if self.pooling == "pooler":
                pooled = out.pooler_output
            elif self.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                pooled = hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))
        return torch.flatten(pooled, 1).float()


def pooling_rule(model: nn.Module) -> str:
    """How features are pooled from ``model`` (module docstring, "Features")."""
    if callable(getattr(model, "get_image_features", None)):
        return "image_features"
    if type(getattr(model, "pooler", None)).__name__ in _PROJECTION_POOLERS:
        return "cls"
    return "probe"  # decided from one forward pass (pooler_output present or not)


def build(source: HFSource, config: Any, prep: dict[str, Any]) -> HFImageEncoder:
    """Load the model's weights and wrap it (eval mode, frozen, on CPU).

    Raises:
        ConfigError: weights for another architecture (tensors missing or of other shapes),
            or a file that is not a checkpoint.
    """
    from transformers import AutoModel

    with _quiet():
        if source.weights_file is None:
            try:
                model, info = AutoModel.from_pretrained(str(source.folder),
                                                        output_loading_info=True)
            except (RuntimeError, ValueError, OSError) as exc:
                raise ConfigError(f"hf:{source.model}: cannot load the weights in "
                                  f"{source.folder} ({str(exc).splitlines()[0][:160]}): weights "
                                  "for another architecture?") from None
            missing, mismatched = sorted(info["missing_keys"]), sorted(info["mismatched_keys"])
        else:
            from transformers.models.auto.modeling_auto import MODEL_MAPPING

            check_weights_file(source, config)
            state = _strip_prefix(read_state_dict(source.weights_file), "module")
            try:  # transformers maps legacy and task-model (prefixed) names itself
                model_class: Any = MODEL_MAPPING[type(config)]
                model, info = model_class.from_pretrained(
                    None, config=config, state_dict=state, output_loading_info=True)
            except (RuntimeError, ValueError, KeyError) as exc:
                raise ConfigError(f"hf:{source.model}: cannot load --encoder-weights "
                                  f"{source.weights_file} ({str(exc).splitlines()[0][:160]}): "
                                  "weights for another architecture?") from None
            missing, mismatched = sorted(info["missing_keys"]), sorted(info["mismatched_keys"])
    rule = pooling_rule(model)
    if rule == "image_features":  # the text tower is never run: free its memory
        for name in ("text_model", "text_projection"):
            if isinstance(getattr(model, name, None), nn.Module):
                setattr(model, name, nn.Identity())
    unused_pooler = rule == "cls"  # ViT's projection pooler is not used (random when absent)
    missing = [k for k in missing if not (unused_pooler and k.startswith("pooler."))]
    if missing or mismatched:
        what = f"{len(missing)} tensors missing, e.g. {missing[0]}" if missing else \
            f"{len(mismatched)} of other shapes, e.g. {mismatched[0]}"
        where = source.weights_file or source.folder
        raise ConfigError(f"hf:{source.model}: the weights in {where} do not fit the "
                          f"{config.model_type} model ({what}): weights for another "
                          "architecture?")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if rule == "probe":
        with torch.no_grad():
            side = int(prep["input_size"])
            out = model(pixel_values=torch.zeros(1, int(prep["channels"]), side, side))
        has_pooler = getattr(out, "pooler_output", None) is not None
        rule = "pooler" if has_pooler else ("cls" if out.last_hidden_state.ndim == 3 else "mean")
    return HFImageEncoder(model, prep, rule).eval()
