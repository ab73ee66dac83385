"""Small pools for the round engine's tests: Gaussian class blobs with known labels."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.rounds import EncodedPool


def blob_pool(n_per_class: int = 40, classes: int = 4, dim: int = 6, seed: int = 0
              ) -> tuple[EncodedPool, np.ndarray, np.ndarray, np.ndarray]:
    """``(pool, pool labels, test features, test labels)``: well-separated blobs with a few
    large-scale dimensions (as encoder features have), so standardisation matters."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)) * 3
    scale = np.ones(dim)
    scale[0] = 50.0

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(classes), n)
        x = (centres[y] + rng.standard_normal((y.size, dim))) * scale
        return x.astype(np.float32), y

    x, y = draw(n_per_class)
    xt, yt = draw(n_per_class // 2)
    return EncodedPool(x, key="blobs"), y, xt, yt


@pytest.fixture
def blobs():
    return blob_pool()
