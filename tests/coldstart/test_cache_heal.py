"""A truncated encoder cache (meta.json present, encoder.pt / map.npz missing or cut short)
is rebuilt on the next call instead of failing every later query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import MocoConfig

CFG = MocoConfig(epochs=1, batch_size=8, queue_size=16, num_threads=1)


def _images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (16, 8, 8, 3), dtype=np.uint8)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", ["no encoder.pt", "no map.npz", "half encoder.pt",
                                    "half map.npz", "garbage meta.json", "map of other images"])
def test_truncated_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    images = _images()
    first = pretrain_moco(images, CFG, cache_root=tmp_path, progress=False)
    folder = tmp_path / first.key
    what, name = damage.split(" ", 1)[0], damage.split(" ")[-1]
    if damage == "map of other images":
        np.savez(folder / "map.npz", features=np.zeros((3, 4)), confidence=np.zeros(3),
                 variability=np.zeros(3))
    elif what == "no":
        (folder / name).unlink()
    elif what == "half":
        _truncate(folder / name)
    else:
        (folder / name).write_text("{not json")
    rebuilt = pretrain_moco(images, CFG, cache_root=tmp_path, progress=False)
    assert not rebuilt.from_cache and rebuilt.features.shape == first.features.shape
    healed = pretrain_moco(images, CFG, cache_root=tmp_path, progress=False)
    assert healed.from_cache
    np.testing.assert_array_equal(healed.features, rebuilt.features)
