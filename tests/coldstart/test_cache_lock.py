"""Two processes asking for the same encoder at once: one trains, the other waits and reads it.

Without the per-entry lock both trained into one cache folder (sharing its checkpoint) and the
last to finish replaced the other's encoder under the same key.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np

TINY = {"epochs": 1, "batch_size": 32, "queue_size": 64, "warmup_epochs": 0, "num_threads": 1}


def _pretrain(images: np.ndarray, cache_root: str, out: str) -> None:
    from medactive.models.contrastive import pretrain_moco
    from medactive.models.contrastive_config import MocoConfig

    res = pretrain_moco(images, MocoConfig(**TINY), cache_root=Path(cache_root), progress=False)
    np.savez(out, features=res.features, confidence=res.confidence,
             from_cache=np.array(res.from_cache))


def test_concurrent_requests_train_once(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (96, 16, 16, 3), dtype=np.uint8)
    ctx = mp.get_context("spawn")
    outs = [tmp_path / f"r{i}.npz" for i in range(2)]
    procs = [ctx.Process(target=_pretrain, args=(images, str(tmp_path / "cache"), str(o)))
             for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    a, b = (np.load(o) for o in outs)
    assert sorted([bool(a["from_cache"]), bool(b["from_cache"])]) == [False, True]
    np.testing.assert_array_equal(a["features"], b["features"])  # one encoder, read twice
    np.testing.assert_array_equal(a["confidence"], b["confidence"])
    (entry,) = [d for d in (tmp_path / "cache").iterdir() if d.is_dir()]
    assert not (entry / "checkpoint.pt").exists()
