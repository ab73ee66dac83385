"""Ray, when one machine is not enough: connecting, and feature extraction as Ray Data.

``ray`` is an optional extra (``pip install "medactive[ray]"``); nothing here is imported by
the single-process path, which stays the default. Addresses (``--ray``, ``[run] ray``):

* ``"local"`` — start a Ray instance on this machine (every CPU, and the GPUs, it has);
* ``"auto"`` — join the cluster this machine already belongs to (``ray start`` was run);
* ``"ray://HOST:PORT"`` — a remote cluster through the Ray client.

Feature extraction (:func:`ray_extract_features`) is Ray Data ``map_batches`` over image indices
with a pool of actors, each holding the backbone (one GPU per actor when the cluster has GPUs):
the backbone's weights and the image array (in memory, or the lazy store view, which workers
open by path — the store must be on a filesystem every node sees) go through the object store
once.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from torch import nn

from medactive.data.lazy import LazyImages
from medactive.errors import ConfigError

ADDRESS_HELP = "local | auto | ray://HOST:PORT"


def check_address(address: str) -> str:
    """Return ``address`` when it is one of ``local``, ``auto`` or ``ray://HOST:PORT``.

    Raises:
        ConfigError: anything else.
    """
    if address in ("local", "auto") or (address.startswith("ray://") and ":" in address[6:]):
        return address
    raise ConfigError(f"ray address must be {ADDRESS_HELP}, got {address!r}")


def connect(address: str, num_cpus: int | None = None) -> Any:
    """Connect to (or start) Ray once per process; returns the ``ray`` module.

    Raises:
        ConfigError: bad address, or ``ray`` is not installed.
    """
    check_address(address)
    try:
        import ray
    except ImportError:
        raise ConfigError('--ray needs the ray extra: pip install "medactive[ray]"') from None
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray


class _FeatureActor:
    """One Ray Data actor: holds the backbone and reads the images it is asked for."""

    def __init__(self, backbone: nn.Module, images: np.ndarray | LazyImages,
                 batch_size: int) -> None:
        from medactive.models.device import select_device

        self.device = select_device(None)
        self.backbone = backbone
        self.images = images
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from medactive.models.training import extract_features

        idx = np.asarray(batch["id"], dtype=np.int64)
        feats = extract_features(self.backbone, self.images[idx], self.batch_size,
                                 device=self.device, progress=False)
        return {"id": idx, "features": feats}


def ray_extract_features(
    backbone: nn.Module,
    images: np.ndarray | LazyImages,
    *,
    address: str = "local",
    actors: int = 2,
    batch_size: int = 512,
) -> np.ndarray:
    """:func:`~medactive.models.training.extract_features` on a Ray cluster.

    Args:
        backbone: the feature extractor (copied to every actor once).
        images: uint8 ``(N, H, W, C)``, in memory or a lazy store view.
        address: see the module docstring.
        actors: size of the actor pool (one GPU each when the cluster has GPUs).
        batch_size: images per ``map_batches`` batch and per forward pass.

    Returns:
        float32 ``(N, D)`` features, row ``i`` = image ``i`` (equal to the single-process
        result up to floating-point reduction order).
    """
    ray = connect(address)
    n = int(images.shape[0])
    model = copy.deepcopy(backbone).cpu().eval()
    resources = ray.cluster_resources()
    actors = max(1, actors)
    gpus = 1 if resources.get("GPU", 0) >= 1 else 0
    # Actors must leave CPU for Ray Data's own read tasks, or the pipeline waits forever on a
    # small cluster (2 actors x 1 CPU on a 2-CPU machine starves the index reads): one CPU
    # is left to them.
    cpus = max(0.1, min(1.0, (float(resources.get("CPU", 1)) - 1.0) / actors))
    ds = ray.data.range(n).map_batches(
        _FeatureActor, fn_constructor_args=(model, images, batch_size), batch_size=batch_size,
        concurrency=actors, num_gpus=gpus, num_cpus=cpus, batch_format="numpy")
    out: np.ndarray | None = None
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        feats = np.asarray(batch["features"], dtype=np.float32)
        if out is None:
            out = np.empty((n, feats.shape[1]), dtype=np.float32)
        out[np.asarray(batch["id"], dtype=np.int64)] = feats
    if out is None:
        return np.zeros((0, 0), dtype=np.float32)
    return out
