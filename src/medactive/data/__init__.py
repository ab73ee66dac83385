"""Datasets, loaders and splits."""

from medactive.data.dataset import UNKNOWN_LABEL, DatasetSplits, ImageDataset
from medactive.data.medmnist import (
    MEDMNIST,
    cache_dir,
    fetch_from_pypi,
    load_medmnist,
    resolve_medmnist,
)

__all__ = [
    "MEDMNIST",
    "UNKNOWN_LABEL",
    "DatasetSplits",
    "ImageDataset",
    "cache_dir",
    "fetch_from_pypi",
    "load_medmnist",
    "resolve_medmnist",
]
