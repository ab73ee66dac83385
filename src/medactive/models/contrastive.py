"""MoCo v2 pre-training that records a contrastive dataset map (HaCon, Chen et al. 2023, §2.2).

Query encoder = backbone + 2-layer MLP projection (128-d); the key encoder is its momentum copy;
InfoNCE over the positive key and a queue of negatives. At every iteration the *dataset map* is
updated (:mod:`medactive.models.datamap`): for each image of the batch, the probability of its
positive pair among the 2N−1 other in-batch views (cosine similarity / ``tau_map``), averaged over
both directions (Eq. 1–2). Over all iterations, confidence = mean and variability = standard
deviation of that probability.

Temperature of the map: the paper states τ = 0.05 (our default). The public reference code divided
its logits in place by a list of temperatures (an effective τ = 0.001: the map becomes "how often
is my other view my nearest neighbour"). ``tau_map``, ``map_rule`` ("softmax" / "hit" / "rank")
and ``map_competitors`` ("batch" / "batch+queue" / "probe") choose the *primary* map
(``confidence``); every run also records a catalogue of variants (``ContrastiveResult.maps``) from
the same projections, so comparing them needs no extra pre-training.

Results (encoder weights, map, un-augmented features) are cached under
``cache_dir()/encoders/<key>`` where ``key`` hashes the image bytes and the config, so the CLI,
the demo and the experiment runner share one pre-training. Training checkpoints every epoch and
resumes from the last finished epoch when re-run with the same data and config.

What a run is asked and what it returns (``MocoConfig``, ``ContrastiveResult``) lives in
:mod:`medactive.models.contrastive_config`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import pickle
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medactive.data.arraycache import entry_lock
from medactive.data.lazy import LazyImages, content_digest, prefetch_batches
from medactive.errors import ConfigError
from medactive.models import distributed
from medactive.models.augment import contrastive_augmentation, normalise, to_unit
from medactive.models.backbones import backbone_out_dim, build_backbone
from medactive.models.contrastive_config import ContrastiveResult, MocoConfig
from medactive.models.datamap import (
    MapAccumulator,
    MapVariant,
    catalogue,
    pair_map_values,
    parse_map_name,
    positive_pair_probability,  # noqa: F401  (re-exported: part of this module's API)
    probe_map_values,
)
from medactive.models.device import autocast, memory_format, seed_everything, select_device
from medactive.models.training import extract_features
from medactive.progress import ProgressCounter, progress_counter

log = logging.getLogger(__name__)

# Config fields that do not change the result and so stay out of the cache key.
_NON_KEY_FIELDS = ("device", "amp", "num_threads")
#: Label of the pre-training progress bar (one bar over every epoch's steps).
PROGRESS_LABEL = "moco pre-training"
# Bumped when the recorded map catalogue or its file layout changes (part of the cache key).
_MAP_FORMAT = "maps-v2"


class MocoNet(nn.Module):
    """Backbone + MLP projection (Linear-ReLU-Linear, MoCo v2) to ``proj_dim``, L2-normalised."""

    def __init__(self, backbone: nn.Module, proj_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        d = backbone_out_dim(backbone)
        self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> unit-norm projections ``(B, proj_dim)``."""
        return nn.functional.normalize(self.projector(self.backbone(x)).float(), dim=1)


def cache_key(images: np.ndarray | LazyImages, config: MocoConfig) -> str:
    """MD5 of the image bytes and shape plus the result-relevant config fields (16 hex chars)."""
    h = hashlib.md5()
    h.update(str(images.shape).encode())
    h.update(content_digest(images))  # a lazy store view hashes its content key, no pixel read
    fields = {k: v for k, v in dataclasses.asdict(config).items() if k not in _NON_KEY_FIELDS}
    h.update(json.dumps(fields, sort_keys=True).encode())
    h.update(_MAP_FORMAT.encode())
    return h.hexdigest()[:16]


def _lr_at(step: int, total: int, warmup: int, base: float) -> float:
    # linear warm-up, then cosine decay to zero (paper Table 2)
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def _batches(n_items: int, batch_size: int, gen: torch.Generator) -> list[np.ndarray]:
    # near-equal batch sizes (array_split) so no batch has a single image, which breaks BatchNorm
    perm = torch.randperm(n_items, generator=gen).numpy()
    return np.array_split(perm, max(1, math.ceil(n_items / batch_size)))


# what reading a cut-short or corrupt cache file raises (json, zip/npz, torch's zip + pickle)
_CACHE_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, RuntimeError, zipfile.BadZipFile,
                      pickle.UnpicklingError)


def _load_cached(folder: Path, images: np.ndarray | LazyImages, config: MocoConfig,
                 key: str) -> ContrastiveResult | None:
    """The result cached in ``folder``, or None when it is incomplete or corrupt (``meta.json``
    present but ``encoder.pt`` or ``map.npz`` missing, cut short or of the wrong size: a copy
    interrupted, a full disk); :func:`pretrain_moco` then rebuilds it instead of failing on
    every later call."""
    n = images.shape[0]
    try:
        meta = json.loads((folder / "meta.json").read_text())
        with np.load(folder / "map.npz") as arrays:
            features, confidence, variability = (
                np.asarray(arrays[name]) for name in ("features", "confidence", "variability"))
            maps, trajectory = _read_maps(arrays, meta)
        backbone = build_backbone(config.backbone, images.shape[-1], images.shape[1])
        backbone.load_state_dict(torch.load(folder / "encoder.pt", map_location="cpu",
                                            weights_only=True))
    except _CACHE_READ_ERRORS as exc:
        log.warning("encoder cache %s is incomplete or corrupt (%s); rebuilding it", folder,
                    type(exc).__name__)
        return None
    if features.ndim != 2 or features.shape[0] != n or confidence.shape != (n,) \
            or variability.shape != (n,):
        log.warning("encoder cache %s does not match the %d images; rebuilding it", folder, n)
        return None
    backbone.eval()
    return ContrastiveResult(backbone, features, confidence, variability, config, key,
                             float(meta.get("images_per_second", 0.0)), from_cache=True, maps=maps,
                             map_trajectory=trajectory)


def _read_maps(arrays: np.lib.npyio.NpzFile,
               meta: dict) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    # map catalogue of a cached result (absent from folders written before it existed)
    names = meta.get("map_names", [])
    if not names or "map_trajectory" not in arrays:
        return {}, None
    return ({n: np.asarray(arrays[f"map:{n}"]) for n in names},
            np.asarray(arrays["map_trajectory"]))


def pretrain_moco(
    images: np.ndarray | LazyImages,
    config: MocoConfig | None = None,
    *,
    cache_root: Path | None = None,
    progress: bool = True,
) -> ContrastiveResult:
    """Pre-train MoCo v2 on uint8 ``(N, H, W, C)`` images and record the dataset map.

    Args:
        images: unlabelled training images, ``C`` in {1, 3}, in memory or lazy
            (:class:`~medactive.data.lazy.LazyImages`: read in prefetched batches).
        config: hyper-parameters (defaults: :class:`MocoConfig`).
        cache_root: folder holding ``<key>/`` result folders (default ``cache_dir()/encoders``).
        progress: show a progress bar with images/second.

    Returns:
        A :class:`ContrastiveResult`; cached results are returned without training.
    """
    cfg = config or MocoConfig()
    cfg.validate()
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[0] < 2:
        raise ConfigError(f"pretrain_moco needs >= 2 uint8 images (N, H, W, C), got {images.shape}")
    if cache_root is None:
        from medactive.data import cache_dir

        cache_root = cache_dir() / "encoders"
    key = cache_key(images, cfg)
    folder = Path(cache_root) / key
    # one writer per cache entry: a second process asking for the same encoder waits, then
    # reads the finished entry (without the lock both would train into one checkpoint and the
    # last to finish would replace the other's encoder under the same key). Data-parallel ranks
    # other than 0 never write, so only rank 0 takes it (they would deadlock otherwise).
    with _entry_lock(folder, enabled=distributed.current().primary, progress=progress):
        if (folder / "meta.json").is_file():
            cached = _load_cached(folder, images, cfg, key)
            if cached is not None:
                return cached
            (folder / "meta.json").unlink()  # no longer "complete" until the rebuild finishes
        folder.mkdir(parents=True, exist_ok=True)

        previous_threads = torch.get_num_threads()
        if cfg.num_threads is not None:
            torch.set_num_threads(cfg.num_threads)
        try:
            return _train(images, cfg, key, folder, progress)
        finally:
            torch.set_num_threads(previous_threads)


@contextlib.contextmanager
def _entry_lock(folder: Path, enabled: bool, progress: bool) -> Iterator[None]:
    """Hold the exclusive lock of the cache entry ``folder``
    (:func:`medactive.data.arraycache.entry_lock`: released by the kernel if the process dies,
    so a killed run never leaves the entry locked)."""
    waiting = f"waiting for another process pre-training the same encoder ({folder.name})"
    with entry_lock(folder, enabled=enabled, waiting=waiting if progress else None):
        yield


def _train(images: np.ndarray | LazyImages, cfg: MocoConfig, key: str, folder: Path,
           progress: bool) -> ContrastiveResult:
    dist = distributed.current()  # torchrun: several ranks share each global batch
    device = distributed.local_device(select_device(cfg.device), dist)
    fmt = memory_format(device)
    gen = seed_everything(cfg.seed)
    n, size, channels = images.shape[0], images.shape[1], images.shape[-1]
    query = MocoNet(build_backbone(cfg.backbone, channels, size), cfg.proj_dim).to(device)
    # in place (Module.to returns self); torch's stubs lack Module.to(memory_format=...)
    query.to(memory_format=fmt)  # type: ignore[call-overload]
    trained = distributed.wrap(query, dist, device)  # query itself in a single process
    if dist.active:  # same weights (DDP broadcasts them), different augmentations per rank
        torch.manual_seed(cfg.seed + 1000 * dist.rank)
    keyenc = copy.deepcopy(query)
    for p in keyenc.parameters():
        p.requires_grad_(False)
    queue = nn.functional.normalize(torch.randn(cfg.queue_size, cfg.proj_dim, generator=gen), dim=1)
    queue = queue.to(device)
    ptr = 0
    augment = contrastive_augmentation(channels, size, cfg.crop_min_scale, cfg.aug_strength).to(device)
    optimizer = torch.optim.SGD(query.parameters(), lr=cfg.lr, momentum=cfg.sgd_momentum,
                                weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and device.type == "cuda")
    # running sums of every recorded map variant per image (float64: up to epochs*repeats terms)
    names = catalogue(cfg.map_name, cfg.probe_pairs > 0)
    variants = [parse_map_name(v) for v in names]
    acc = MapAccumulator(names, n, cfg.epochs)
    probe_negatives = _probe_negatives(n, cfg)
    items = n * cfg.repeats
    per_epoch = max(1, math.ceil(items / cfg.batch_size))
    total_steps = per_epoch * cfg.epochs
    warmup = round(cfg.warmup_epochs * per_epoch)
    start_epoch, train_seconds, pairs_done, probe_seconds = 0, 0.0, 0, 0.0

    ckpt_path = folder / "checkpoint.pt"
    if ckpt_path.is_file():  # resume after an interruption: same key = same data and config
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        query.load_state_dict(ck["query"])
        keyenc.load_state_dict(ck["key"])
        optimizer.load_state_dict(ck["optimizer"])
        queue, ptr = ck["queue"].to(device), ck["ptr"]
        acc.load_state_dict(ck["map"])
        probe_seconds = ck.get("probe_seconds", 0.0)
        gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        start_epoch, train_seconds, pairs_done = ck["epoch"] + 1, ck["seconds"], ck["pairs"]

    # one bar for the whole pre-training (its ETA is the run's, also after a resume); a
    # listener (a project's query job) hears the same steps
    with progress_counter(PROGRESS_LABEL, total_steps, start_epoch * per_epoch, unit="batch",
                          enabled=progress and dist.primary) as bar:
        for epoch in range(start_epoch, cfg.epochs):
            query.train()
            keyenc.train()
            batches = [distributed.shard(pos, dist) for pos in _batches(items, cfg.batch_size, gen)]
            epoch_start = acc.sums()  # what every rank agreed on before this epoch
            loader = prefetch_batches(images, [pos % n for pos in batches])
            t0 = time.perf_counter()
            for b, pos in enumerate(batches):
                idx = pos % n  # repeated augmentation: position -> image
                step = epoch * per_epoch + b
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, total_steps, warmup, cfg.lr)
                x = to_unit(next(loader), device)
                x1 = normalise(augment(x)).contiguous(memory_format=fmt)
                x2 = normalise(augment(x)).contiguous(memory_format=fmt)
                with autocast(device, cfg.amp):
                    q = trained(x1)
                    with torch.no_grad():
                        k = keyenc(x2)
                # InfoNCE: positive = own key, negatives = the queue (MoCo v2)
                l_pos = (q * k).sum(dim=1, keepdim=True)
                l_neg = q @ queue.T
                logits = torch.cat([l_pos, l_neg], dim=1) / cfg.temperature
                loss = nn.functional.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long,
                                                                       device=device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                with torch.no_grad():
                    # the map sees the queue *before* this batch's keys join it (no self-competition)
                    acc.add(epoch, idx, pair_map_values(q.detach(), k.detach(), variants, queue))
                    for pq, pk in zip(query.parameters(), keyenc.parameters(), strict=True):
                        pk.mul_(cfg.momentum).add_(pq.detach(), alpha=1.0 - cfg.momentum)
                    kk = distributed.all_gather_rows(k.detach(), dist)  # the global batch's keys
                    end = ptr + kk.shape[0]
                    if end <= cfg.queue_size:
                        queue[ptr:end] = kk
                    else:  # wrap around
                        cut = cfg.queue_size - ptr
                        queue[ptr:] = kk[:cut]
                        queue[: end - cfg.queue_size] = kk[cut:]
                    ptr = end % cfg.queue_size
                pairs_done += len(idx)
                _advance(bar, epoch, cfg.epochs, loss, pairs_done,
                         train_seconds + time.perf_counter() - t0)
            train_seconds += time.perf_counter() - t0
            # every rank's map sums for this epoch, added up (identity in a single process)
            acc.set_sums(distributed.reduce_increments(acc.sums()[:3], epoch_start[:3], dist)
                         + distributed.reduce_increments(acc.sums()[3:], epoch_start[3:], dist))
            if not dist.primary:
                continue  # rank 0 probes (the whole pool, once) and writes the checkpoint
            if cfg.probed(epoch):
                t1 = time.perf_counter()
                acc.add(epoch, np.arange(n), _probe(keyenc, images, augment, variants,
                                                    probe_negatives, cfg, epoch, device, fmt))
                probe_seconds += time.perf_counter() - t1
            torch.save({"query": query.state_dict(), "key": keyenc.state_dict(),
                        "optimizer": optimizer.state_dict(), "queue": queue.cpu(), "ptr": ptr,
                        "map": acc.state_dict(), "gen": gen.get_state(),
                        "torch_rng": torch.get_rng_state(), "epoch": epoch, "seconds": train_seconds,
                        "probe_seconds": probe_seconds, "pairs": pairs_done},
                       ckpt_path.with_suffix(".tmp"))
            ckpt_path.with_suffix(".tmp").replace(ckpt_path)  # atomic: never a half-written checkpoint

    maps, spreads, trajectory = acc.summary()
    confidence, variability = maps[cfg.map_name], spreads[cfg.map_name]
    encoder = query.backbone
    features = extract_features(encoder, images, device=device, progress=False)
    # in place, like every Module.to; torch's stubs lack Module.to(memory_format=...)
    encoder.cpu().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    encoder.eval()
    rate = pairs_done / max(train_seconds, 1e-9)
    if not dist.primary:  # rank 0 writes the cache entry
        return ContrastiveResult(encoder, features, confidence, variability, cfg, key, rate)
    torch.save(encoder.state_dict(), folder / "encoder.pt")
    # numeric arrays only: no pickle on writing, as np.load allows none on reading
    np.savez(folder / "map.npz", features=features, confidence=confidence, variability=variability,
             map_trajectory=trajectory, allow_pickle=False,
             **{f"map:{k}": v for k, v in maps.items()})
    meta = {"config": dataclasses.asdict(cfg), "n_images": n, "image_shape": list(images.shape[1:]),
            "train_seconds": train_seconds, "images_per_second": rate, "pairs": pairs_done,
            "probe_seconds": probe_seconds, "map_names": names,
            # not in the key (a re-train costs minutes for an equally good encoder), but the
            # order of training's float arithmetic follows them, so a bit-identical rerun needs
            # the same: recorded for whoever reproduces this entry
            "trained_with": {"torch": torch.__version__, "device": str(device),
                             "threads": torch.get_num_threads(), "processes": dist.world,
                             "amp": bool(cfg.amp and device.type == "cuda")}}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))  # written last = complete
    ckpt_path.unlink(missing_ok=True)
    return ContrastiveResult(encoder, features, confidence, variability, cfg, key, rate,
                             maps=maps, map_trajectory=trajectory)


def _advance(bar: ProgressCounter, epoch: int, epochs: int, loss: torch.Tensor, pairs: int,
             seconds: float) -> None:
    """One training step done: the bar shows the epoch, the loss and augmented pairs/s (read
    only when a bar is drawn: the loss's value waits for the GPU)."""
    if not bar.shown:
        bar.advance(1)
        return
    bar.advance(1, epoch=f"{epoch + 1}/{epochs}", loss=f"{float(loss.detach()):.3f}",
                img_s=f"{pairs / max(seconds, 1e-9):.0f}")


def _probe_negatives(n: int, cfg: MocoConfig) -> np.ndarray:
    # the probe's fixed negative images: drawn once per run from the config seed
    rng = np.random.default_rng([cfg.seed, 7])
    return np.sort(rng.choice(n, min(n, cfg.probe_negatives), replace=False))


def _probe(net: nn.Module, images: np.ndarray | LazyImages, augment: nn.Module,
           variants: list[MapVariant], negatives: np.ndarray, cfg: MocoConfig, epoch: int,
           device: torch.device, fmt: torch.memory_format) -> dict[str, np.ndarray]:
    # Forward-only probe with the key encoder. Its augmentations come from a forked RNG seeded
    # by (seed, epoch), so probing never changes the training trajectory: a run with the probe
    # trains exactly the encoder of the same run without it.
    def view(batch: np.ndarray) -> torch.Tensor:
        return normalise(augment(to_unit(batch, device))).contiguous(memory_format=fmt)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        with autocast(device, cfg.amp):
            return probe_map_values(net, images, view, variants, negatives, cfg.probe_pairs, device)
