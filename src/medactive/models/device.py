"""Device selection, seeding and mixed precision: CUDA when present, CPU otherwise."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch

from medactive.errors import ConfigError


def select_device(device: str | torch.device | None = None) -> torch.device:
    """Return ``device`` if given, else CUDA when available, else CPU.

    ``$MEDACTIVE_DEVICE`` overrides the automatic choice (e.g. ``cpu`` on a shared GPU box).

    Raises:
        ConfigError: a device name torch does not know (``--device bogus``), or CUDA / MPS
            asked for on a machine without it — before any work, instead of a traceback from
            deep inside a training loop.
    """
    source = "device"
    if device is None and os.environ.get("MEDACTIVE_DEVICE"):
        device, source = os.environ["MEDACTIVE_DEVICE"], "$MEDACTIVE_DEVICE"
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown {source} {str(device)!r}; use cpu, cuda or cuda:N") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{source} {str(device)!r}: CUDA is not available on this machine")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ConfigError(f"{source} {str(device)!r}: this machine has "
                              f"{torch.cuda.device_count()} CUDA device(s)")
    elif chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{source} {str(device)!r}: MPS is not available on this machine")
    elif chosen.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"{source} {str(device)!r} is not supported; use cpu, cuda or cuda:N")
    return chosen


#: Largest seed medactive accepts. NumPy's legacy seeding takes 32 bits, and seeds derived from
#: it (``seed * 1_000_003 + epoch`` in pre-training, ``seed * 100_000 + ...`` in the runner)
#: must stay below torch's 64-bit limit.
MAX_SEED = 2**32 - 1


def check_seed(seed: object, what: str = "seed") -> int:
    """``seed`` if it is a whole number in ``0..MAX_SEED``.

    Raises:
        ConfigError: naming ``what`` (e.g. ``--seed``, ``run.seed``) otherwise, before any
            work starts (NumPy and torch would raise their own errors mid-run).
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{what} must be a whole number from 0 to {MAX_SEED} (2**32 - 1), "
                          f"got {seed!r}")
    return int(seed)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded with ``seed``.

    Internal callers derive seeds from a user's (``seed * 100_000 + round``), so any seed torch
    takes (``0..2**64 - 1``) is accepted here; user input is bounded by :func:`check_seed`.

    Raises:
        ConfigError: ``seed`` is not a whole number in ``0..2**64 - 1``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
            or not 0 <= int(seed) < 2**64:
        raise ConfigError(f"seed must be a whole number from 0 to 2**64 - 1, got {seed!r}")
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
