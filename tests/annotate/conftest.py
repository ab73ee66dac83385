"""Fixtures for the labelling-project tests: tiny projects built from generated PNGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ["benign", "malignant", "normal"]


def make_image_folder(folder: Path, n: int = 12, size: int = 32, seed: int = 0) -> Path:
    """Write ``n`` random RGB PNGs (two sub-folders, to exercise relative ids)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(sub / f"img{i:03d}.png")
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 12 random PNGs."""
    return make_image_folder(tmp_path / "raw")


@pytest.fixture
def project(tmp_path: Path, image_folder: Path):
    """An open store over ``image_folder`` with classes benign/malignant/normal."""
    from medactive.annotate.project import init_from_folder

    store = init_from_folder(tmp_path / "proj", image_folder, CLASSES)
    yield store
    store.close()
