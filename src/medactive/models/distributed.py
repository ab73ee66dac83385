"""Data-parallel MoCo v2 pre-training with torch DDP: the few collective steps it needs.

Under ``torchrun`` (or any initialised ``torch.distributed`` process group), every rank draws the
same global batch order (same seed), trains on its own slice of each global batch
(:func:`shard`), averages gradients through :class:`~torch.nn.parallel.DistributedDataParallel`,
enqueues the keys of the *whole* global batch (:func:`all_gather_rows`, as MoCo's reference
implementation does), and adds its dataset-map running sums to the other ranks' at the end of
every epoch (:func:`reduce_increments`). So each image's map is the mean over the same number of
epochs as a single-process run, and differs from it only through batch composition: the map
probability of an image is computed among the views of its rank's slice of the batch.

Without a process group (the default), every function here is the identity, so the
single-process path is unchanged bit for bit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class DistContext:
    """This process's rank and the world size (``0`` of ``1`` without a process group)."""

    rank: int = 0
    world: int = 1

    @property
    def primary(self) -> bool:
        """True on the rank that writes files (checkpoints, caches)."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when more than one process trains together."""
        return self.world > 1


def current() -> DistContext:
    """The context of the initialised default process group, or a single-process one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return DistContext(torch.distributed.get_rank(), torch.distributed.get_world_size())
    return DistContext()


def init_from_env(backend: str | None = None) -> DistContext:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1 in the environment).

    ``backend`` defaults to NCCL when CUDA is present, else gloo. Each rank uses the GPU
    ``LOCAL_RANK`` when there are GPUs. Without ``WORLD_SIZE`` (a plain run) nothing happens.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return current()
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    torch.distributed.init_process_group(backend)
    return current()


def local_device(device: torch.device, ctx: DistContext) -> torch.device:
    """On CUDA with several ranks, each rank's own GPU (``LOCAL_RANK``); else ``device``."""
    if ctx.active and device.type == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", ctx.rank)))
    return device


def shard(indices: np.ndarray, ctx: DistContext) -> np.ndarray:
    """This rank's slice of a global batch: every ``world``-th index from ``rank`` (the slices
    of all ranks partition the batch; their sizes differ by at most one)."""
    return indices if not ctx.active else indices[ctx.rank :: ctx.world]


def wrap(module: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """``module`` in :class:`DistributedDataParallel` when several ranks train, else itself."""
    if not ctx.active:
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def all_gather_rows(rows: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Concatenate every rank's ``(n_r, ...)`` rows in rank order (the ``n_r`` may differ)."""
    if not ctx.active:
        return rows
    size = torch.tensor([rows.shape[0]], device=rows.device)
    sizes = [torch.zeros_like(size) for _ in range(ctx.world)]
    torch.distributed.all_gather(sizes, size)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=rows.device)
    padded[: rows.shape[0]] = rows
    parts = [torch.empty_like(padded) for _ in range(ctx.world)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([p[: int(s)] for p, s in zip(parts, sizes, strict=True)])


def reduce_increments(
    totals: Sequence[np.ndarray], since: Sequence[np.ndarray], ctx: DistContext
) -> list[np.ndarray]:
    """Running sums after adding every rank's increments: ``since + Σ_ranks (totals - since)``.

    Args:
        totals: this rank's running sums (e.g. the dataset map's ``p_sum, p_sq, p_cnt``), each
            ``(N,)`` float64, equal to ``since`` plus what this rank added since then.
        since: the sums all ranks agreed on at the last reduction (same shapes).
        ctx: the process group context.

    Returns:
        The new agreed sums (identical on every rank); ``totals`` itself without a group.
    """
    if not ctx.active:
        return list(totals)
    deltas = np.stack([np.asarray(t, np.float64) - np.asarray(s, np.float64)
                       for t, s in zip(totals, since, strict=True)])
    buf = torch.from_numpy(deltas)
    backend = torch.distributed.get_backend()
    if backend == "nccl":  # NCCL reduces GPU tensors only
        buf = buf.cuda()
    torch.distributed.all_reduce(buf)
    summed = buf.cpu().numpy()
    return [np.asarray(s, np.float64) + summed[i] for i, s in enumerate(since)]
