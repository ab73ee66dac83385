"""Datasets, loaders and splits."""

from medactive.data.dataset import UNKNOWN_LABEL, DatasetSplits, ImageDataset
from medactive.data.decode import CT_WINDOWS, DecodeSettings, decode_bytes, read_image
from medactive.data.loading import load_dataset
from medactive.data.longtail import long_tail_counts, make_long_tail, make_long_tail_splits
from medactive.data.medmnist import MEDMNIST, cache_dir, load_medmnist, resolve_medmnist
from medactive.data.medmnist_fetch import fetch_from_pypi
from medactive.data.splits import stratified_split

__all__ = [
    "CT_WINDOWS",
    "MEDMNIST",
    "UNKNOWN_LABEL",
    "DatasetSplits",
    "DecodeSettings",
    "ImageDataset",
    "cache_dir",
    "decode_bytes",
    "fetch_from_pypi",
    "load_dataset",
    "load_medmnist",
    "long_tail_counts",
    "make_long_tail",
    "make_long_tail_splits",
    "read_image",
    "resolve_medmnist",
    "stratified_split",
]
