"""Device selection, seeding and mixed precision: CUDA when present, CPU otherwise."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def select_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` if given, else CUDA when available, else CPU.

    ``$MEDACTIVE_DEVICE`` overrides the automatic choice (e.g. ``cpu`` on a shared GPU box).
    """
    if device is not None:
        return torch.device(device)
    env = os.environ.get("MEDACTIVE_DEVICE")
    if env:
        return torch.device(env)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    return gen


@contextlib.contextmanager
def autocast(device: torch.device, enabled: bool = True) -> Iterator[None]:
    """Mixed precision (float16 autocast) on CUDA; a no-op on CPU, where it rarely pays off."""
    if enabled and device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.float16):
            yield
    else:
        yield


def memory_format(device: torch.device) -> torch.memory_format:
    """``channels_last`` on CPU (faster oneDNN convolutions, see docs/benchmarks.md), default on GPU
    (we leave cuDNN's own choice)."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
