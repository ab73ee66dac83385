"""A tiny synthetic dataset and config for end-to-end runner tests (seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

TIMING_FIELDS = ("select_seconds", "score_ms_per_image", "train_seconds")


def write_synthetic_npz(path: Path, n_per_class=(60, 30, 15), seed: int = 0) -> Path:
    """Three imbalanced classes of 12x12 RGB images: noise plus a class-specific colour blob."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, scale in (("train", 1.0), ("val", 0.5), ("test", 0.5)):
        images, labels = [], []
        for c, n in enumerate(n_per_class):
            m = max(int(n * scale), 4)
            img = rng.integers(0, 120, (m, 12, 12, 3)).astype(np.int64)
            img[:, 3:9, 3:9, c] += 120
            images.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(np.full((m, 1), c))
        arrays[f"{split}_images"] = np.concatenate(images)
        arrays[f"{split}_labels"] = np.concatenate(labels).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def config_text(npz: Path, extra: str = "", strategies='["random", "entropy", "aeig"]',
                initial='["random"]', encoder="random") -> str:
    return f"""
name = "synthetic"
[dataset]
source = "{npz}"
[model]
encoder = "{encoder}"
[model.head]
# the default 200 epochs: a head on ~20 labels fits in milliseconds, and fewer epochs leave it
# under-converged (seed-dependent AUCs)
epochs = 200
[model.pretrain]
epochs = 1
batch_size = 32
queue_size = 64
[initial]
strategies = {initial}
budget = 9
[acquisition]
strategies = {strategies}
rounds = 2
budget = 6
[run]
repeats = 2
{extra}
"""


@pytest.fixture
def synthetic_config(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    cfg = tmp_path / "synthetic.toml"
    cfg.write_text(config_text(npz))
    return cfg


def strip_timing(records: list[dict]) -> list[dict]:
    """Records without wall-clock fields, in a canonical order."""
    out = [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in records]
    return sorted(out, key=lambda r: (r["initial"], r["strategy"], r["repeat"], r["round"]))
