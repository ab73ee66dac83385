"""Features of a pool from a registry encoder, computed once and cached on disk.

The API a round, a back-test or an experiment calls (encoders are named and checked in
:mod:`medactive.models.encoders`):

* :func:`encode_pool` ``(spec, images, pool_key=...) -> EncodedPool`` — the pool's ``(N, D)``
  float32 features (a read-only memmap for pretrained encoders), the cache ``key``, the frozen
  ``encoder`` module (built on first use: a cache hit needs no network), and for ``moco`` the
  dataset map (``confidence``, ``variability``, ``maps``);
* :meth:`EncodedPool.encode` ``(images, images_key=...)`` — further image sets (validation, test)
  through the same encoder, cached the same way;
* :func:`own_features` — your own embeddings in the same shape (no encoder, no map).

The cache (``<cache_root>/feature-cache/<key>/``, :mod:`medactive.data.arraycache`): the key
hashes the pool's identity (a caller-given ``pool_key`` — e.g. a project's content hashes or a
dataset file's hash — else the lazy store's content key, else the array's bytes), its shape,
and the encoder's identity (name, weights digest, preprocessing, code format). Entries are
written in blocks with a progress record, so a killed run resumes where it stopped; a finished
entry is never written again; one process writes an entry while others wait. Device and
precision (CUDA + float16 autocast when present, CPU otherwise) are not part of the key: they
change features only by rounding. ``moco`` keeps its own cache (``<cache_root>/encoders/``:
encoder weights, map and features together, :mod:`medactive.models.contrastive`).

Batch size: ``None`` picks one from the network's input side (at most 32 MB of input per batch
on a CPU: 32 images at 224 px, 256 at 64 px; 128 at 224 px on CUDA), and a CUDA out-of-memory
error halves it and retries the batch instead of failing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medactive.data.arraycache import cached_rows, read_complete
from medactive.data.lazy import LazyImages, content_digest, prefetch_batches, take
from medactive.errors import ConfigError
from medactive.models.classifier import images_to_tensor
from medactive.models.contrastive_config import MocoConfig, fit_to_pool
from medactive.models.device import autocast, memory_format, select_device
from medactive.models.encoders import EncoderSpec, ResolvedEncoder, resolve_encoder

#: Bumped when the layout or meaning of cached feature rows changes (part of every key).
CACHE_FORMAT = "features-v1"
CACHE_FOLDER = "feature-cache"
DIGEST_MEMO = "weights-digests.json"
#: Bytes of float32 input per batch the CPU default aims at (activations scale with it).
_CPU_BATCH_BYTES = 32 * 2**20
_CUDA_BATCH_BYTES = 128 * 2**20


def default_batch_size(input_side: int, device: torch.device) -> int:
    """Images per forward pass for a network seeing ``input_side`` px RGB: a power of two
    holding at most 32 MB of float32 input on a CPU (128 MB on CUDA), within 8..256
    (16..1024). Activations grow with the input, so this bounds memory for any backbone size
    class; throughput on a CPU barely changes beyond a few dozen images."""
    cuda = device.type == "cuda"
    budget = _CUDA_BATCH_BYTES if cuda else _CPU_BATCH_BYTES
    fit = max(1, budget // (3 * 4 * input_side * input_side))
    lo, hi = (16, 1024) if cuda else (8, 256)
    return int(min(hi, max(lo, 2 ** int(np.floor(np.log2(fit))))))


def images_identity(images: np.ndarray | LazyImages, images_key: str | None = None) -> str:
    """32 hex digits naming a set of images for cache keys.

    ``images_key`` (cheap: a project's content hashes, a dataset file's hash plus the split)
    is trusted as given; without it a lazy store view uses its content key (no pixel read) and
    an in-memory array is hashed in blocks of rows (no copy of the whole array)."""
    h = hashlib.sha256(repr(tuple(int(s) for s in images.shape)).encode())
    if images_key is not None:
        h.update(b"given:" + str(images_key).encode())
    elif isinstance(images, LazyImages):
        h.update(content_digest(images))
    else:
        array = np.asarray(images)
        step = max(1, (64 << 20) // max(1, array[:1].nbytes))
        for start in range(0, array.shape[0], step):
            h.update(np.ascontiguousarray(array[start:start + step]).data)
    return h.hexdigest()[:32]


@dataclass
class EncodedPool:
    """A pool's features and the encoder that made them.

    Attributes:
        spec: the encoder choice (None for your own embeddings).
        features: ``(N, D)`` float32 (read-only memmap for pretrained encoders).
        key: cache key of these features (for ``moco`` its encoder cache key).
        confidence, variability: ``(N,)`` float64 contrastive dataset map (``moco`` only).
        maps: every recorded map variant, ``{name: (N,)}`` (``moco`` only).
        from_cache: nothing was computed by this call.
        info: a JSON-able record for reports (encoder, weights, preprocessing, images/s, ...).
    """

    spec: EncoderSpec | None
    features: np.ndarray
    key: str
    confidence: np.ndarray | None = None
    variability: np.ndarray | None = None
    maps: dict[str, np.ndarray] | None = None
    from_cache: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    cache_root: Path | None = None
    device: str | None = None
    batch_size: int | None = None
    _encoder: nn.Module | None = field(default=None, repr=False)
    _resolved: ResolvedEncoder | None = field(default=None, repr=False)
    _channels: int = 3
    _identity: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def encoder(self) -> nn.Module | None:
        """The frozen encoder (eval mode; ``(B, C, H, W)`` in ``[-1, 1]`` -> ``(B, D)``), built
        on first use; None for your own embeddings."""
        if self._encoder is None and self._resolved is not None:
            self._encoder = self._resolved.build(self._channels)
        return self._encoder

    def encode(self, images: np.ndarray | LazyImages, images_key: str | None = None, *,
               progress: bool = True, ray: str | None = None) -> np.ndarray:
        """Features ``(M, D)`` float32 of other images (validation, test) through this encoder,
        cached under their own key (see :func:`images_identity`).

        Raises:
            ConfigError: own embeddings (no encoder), or images with other channels than the
                pool's.
        """
        if self.spec is None:
            raise ConfigError("your own embeddings have no encoder to encode other images with")
        _check_images(images)
        if int(images.shape[-1]) != self._channels:
            raise ConfigError(f"images with {images.shape[-1]} channel(s) for an encoder of "
                              f"{self._channels}-channel images")
        side = int(images.shape[1])
        input_side = self._resolved.input_side(side) if self._resolved is not None else side
        features, _, _ = _cached_features(
            self._identity, self, images, images_key, input_side, progress, ray)
        return features


def own_features(features: np.ndarray, key: str = "features") -> EncodedPool:
    """Your own ``(N, D)`` embeddings as an :class:`EncodedPool` (no encoder, no map)."""
    return EncodedPool(None, np.asarray(features, dtype=np.float32), key,
                       info={"encoder": "features", "cache_key": key})


def _check_images(images: np.ndarray | LazyImages) -> None:
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[0] < 1 \
            or images.shape[-1] not in (1, 3):
        raise ConfigError(f"encoders take uint8 (N, H, W, C) images with C in 1 or 3, got "
                          f"{images.dtype} {tuple(images.shape)}")


def encode_pool(
    spec: EncoderSpec,
    images: np.ndarray | LazyImages,
    *,
    pool_key: str | None = None,
    cache_root: Path | None = None,
    moco: MocoConfig | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    ray: str | None = None,
) -> EncodedPool:
    """The pool's features through ``spec``'s encoder, from the cache or computed (and cached).

    Args:
        spec: from :func:`~medactive.models.encoders.check_encoder`.
        images: uint8 ``(N, H, W, C)``, ``C`` in {1, 3}, in memory or lazy.
        pool_key: a cheap identity of ``images`` (see :func:`images_identity`).
        cache_root: folder holding ``feature-cache/`` and ``encoders/`` (MoCo); default the
            user cache (:func:`medactive.data.cache_dir`).
        moco: MoCo v2 settings (``moco`` only; default :class:`MocoConfig` fitted to the pool).
        device: ``cpu``, ``cuda``, ``cuda:N`` (default: CUDA when present).
        batch_size: images per forward pass (default :func:`default_batch_size`).
        progress: show the progress bar (images, overall ETA).
        ray: extract on a Ray cluster (``local``, ``auto``, ``ray://HOST:PORT``) instead of in
            this process; the result is cached all the same (not resumable part-way).

    Returns:
        The :class:`EncodedPool`.

    Raises:
        ConfigError: bad images, a device that does not exist, or an encoder that cannot be
            located or loaded.
    """
    _check_images(images)
    select_device(device)  # a bad --device fails before any work
    if cache_root is None:
        from medactive.data import cache_dir

        cache_root = cache_dir()
    cache_root = Path(cache_root)
    channels = int(images.shape[-1])
    if spec.family == "moco":
        return _encode_moco(spec, images, moco, cache_root, device, batch_size, progress)
    resolved = resolve_encoder(spec, digest_memo=cache_root / CACHE_FOLDER / DIGEST_MEMO)
    identity = {"encoder": resolved.identity, "channels": channels}
    pool = EncodedPool(spec, np.zeros((0, 0), np.float32), "", cache_root=cache_root,
                       device=device, batch_size=batch_size, _resolved=resolved,
                       _channels=channels, _identity=identity)
    features, meta, hit = _cached_features(identity, pool, images, pool_key,
                                           resolved.input_side(int(images.shape[1])),
                                           progress, ray)
    pool.features, pool.key, pool.from_cache = features, meta["key"], hit
    pool.info = {"encoder": spec.name, "weights": None if spec.weights is None
                 else str(spec.weights), "preprocessing": resolved.preprocessing,
                 "encoder_key": resolved.key, "cache_key": meta["key"],
                 "feature_dim": int(features.shape[1]), "from_cache": hit,
                 "seconds": meta.get("seconds"), "images_per_second": meta.get("images_per_second")}
    return pool


def _encode_moco(spec: EncoderSpec, images: np.ndarray | LazyImages, moco: MocoConfig | None,
                 cache_root: Path, device: str | None, batch_size: int | None,
                 progress: bool) -> EncodedPool:
    from medactive.models.contrastive import pretrain_moco

    if images.shape[0] < 2:
        raise ConfigError("moco pre-training needs at least 2 images")
    cfg = moco or MocoConfig()
    if cfg.device is None and device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    cfg = fit_to_pool(cfg, int(images.shape[0]))
    result = pretrain_moco(images, cfg, cache_root=cache_root / "encoders", progress=progress)
    info = {"encoder": spec.name, "backbone": cfg.backbone, "cache_key": result.key,
            "encoder_key": result.key, "feature_dim": int(result.features.shape[1]),
            "from_cache": result.from_cache, "images_per_second": result.images_per_second}
    return EncodedPool(spec, np.asarray(result.features, dtype=np.float32), result.key,
                       np.asarray(result.confidence, np.float64),
                       np.asarray(result.variability, np.float64), result.maps or None,
                       result.from_cache, info, cache_root, cfg.device, batch_size,
                       _encoder=result.encoder, _channels=int(images.shape[-1]),
                       _identity={"encoder": {"moco": result.key},
                                  "channels": int(images.shape[-1])})


def _cached_features(identity: dict[str, Any], pool: EncodedPool,
                     images: np.ndarray | LazyImages, images_key: str | None, input_side: int,
                     progress: bool, ray: str | None) -> tuple[np.ndarray, dict[str, Any], bool]:
    """``(features memmap, entry meta, from cache)`` of ``images`` through ``pool``'s encoder."""
    assert pool.cache_root is not None
    n = int(images.shape[0])
    fields = {"format": CACHE_FORMAT, "encoder": identity,
              "images": images_identity(images, images_key)}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
    meta = {**fields, "key": key, "n_images": n,
            "image_shape": [int(s) for s in images.shape[1:]],
            "name": pool.spec.name if pool.spec is not None else None}
    timing: dict[str, float] = {}

    def produce(start: int) -> Iterator[np.ndarray]:
        encoder = pool.encoder
        assert encoder is not None
        t0, rows = time.perf_counter(), 0
        if ray is not None:
            from medactive.models.cluster import ray_extract_features

            block = ray_extract_features(encoder, take(images, np.arange(start, n)),
                                         address=ray)
            yield block
            rows = block.shape[0]
        else:
            for block in _forward_blocks(encoder, images, start, input_side, pool.device,
                                         pool.batch_size):
                rows += block.shape[0]
                yield block
        timing["seconds"] = time.perf_counter() - t0
        timing["images_per_second"] = rows / max(timing["seconds"], 1e-9)

    def finished(_: dict[str, Any]) -> dict[str, Any]:
        return dict(timing)

    folder = pool.cache_root / CACHE_FOLDER / key
    found = read_complete(folder, n)
    if found is not None:  # a cache hit needs no network: the encoder is not even built
        return found[0], found[1], True
    if pool.encoder is None:  # built before the entry exists: a bad checkpoint leaves nothing
        raise ConfigError("your own embeddings have no encoder")
    label = pool.spec.name if pool.spec is not None else "features"
    return cached_rows(folder, n, meta, produce,
                       desc=f"encoding ({label})", progress=progress, on_complete=finished)


def _forward_blocks(encoder: nn.Module, images: np.ndarray | LazyImages, start: int,
                    input_side: int, device: str | None, batch_size: int | None
                    ) -> Iterator[np.ndarray]:
    """float32 ``(k, D)`` features of rows ``start..N``, batch by batch (read ahead by
    :func:`~medactive.data.lazy.prefetch_batches`); a CUDA out-of-memory error halves the
    batch for the rest of the pass."""
    dev = select_device(device)
    fmt = memory_format(dev)
    size = batch_size or default_batch_size(input_side, dev)
    n = int(images.shape[0])
    # torch's stubs lack Module.to(memory_format=...), which torch accepts
    encoder.to(dev).to(memory_format=fmt).eval()  # type: ignore[call-overload]
    step = [size]  # the forward size, lowered on OOM; reads keep their size
    try:
        batches = [slice(s, min(n, s + size)) for s in range(start, n, size)]
        for pixels in prefetch_batches(images, batches):
            yield _forward(encoder, pixels, dev, fmt, step)
    finally:
        encoder.cpu()


@torch.no_grad()
def _forward(encoder: nn.Module, pixels: np.ndarray, dev: torch.device,
             fmt: torch.memory_format, step: list[int]) -> np.ndarray:
    out, start = [], 0
    while start < len(pixels):
        chunk = pixels[start:start + step[0]]
        try:
            x = images_to_tensor(chunk, dev).contiguous(memory_format=fmt)
            with autocast(dev, True):
                out.append(encoder(x).float().cpu().numpy())
            start += len(chunk)
        except torch.cuda.OutOfMemoryError:
            if step[0] == 1:
                raise
            torch.cuda.empty_cache()
            step[0] = max(1, step[0] // 2)
    return np.concatenate(out).astype(np.float32, copy=False)
