"""Shared fixtures: the real BloodMNIST file and small subsets of it.

The file is looked up in ``$MEDACTIVE_DATA_DIR`` (set by ``.ci/run``), then ``../shared/data``
beside the checkout, then the user cache. It is never downloaded by the tests and never committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MEDACTIVE_PROGRESS", "0")

REPO = Path(__file__).resolve().parents[1]


def _find_bloodmnist() -> Path | None:
    candidates = []
    if os.environ.get("MEDACTIVE_DATA_DIR"):
        candidates.append(Path(os.environ["MEDACTIVE_DATA_DIR"]) / "bloodmnist.npz")
    candidates.append(REPO.parent / "shared" / "data" / "bloodmnist.npz")
    from medactive.data import cache_dir

    candidates.append(cache_dir() / "bloodmnist.npz")
    return next((p for p in candidates if p.is_file()), None)


@pytest.fixture(scope="session")
def bloodmnist_path() -> Path:
    """Path of the real BloodMNIST ``.npz``; a missing file fails (it is part of the test setup)."""
    path = _find_bloodmnist()
    if path is None:
        pytest.fail(
            "bloodmnist.npz not found: set MEDACTIVE_DATA_DIR or place it in ../shared/data "
            "(`medactive data fetch bloodmnist` downloads it)"
        )
    return path


@pytest.fixture(scope="session")
def blood(bloodmnist_path: Path):
    """BloodMNIST train/val/test splits (loaded once per session)."""
    from medactive.data import load_medmnist

    return load_medmnist(bloodmnist_path)


@pytest.fixture(scope="session")
def blood_small(blood):
    """A stratified-ish random subset: 2,000 train, 400 val, 800 test images (seed 0)."""
    from medactive.data import DatasetSplits

    rng = np.random.default_rng(0)
    pick = lambda ds, n: ds.subset(np.sort(rng.choice(len(ds), n, replace=False)))  # noqa: E731
    return DatasetSplits(pick(blood.train, 2000), pick(blood.val, 400), pick(blood.test, 800),
                         name="bloodmnist-small")
