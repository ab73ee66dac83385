"""DDP MoCo pre-training: two gloo processes on CPU, the dataset-map sums all-reduced."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from medactive.models import distributed

SRC = Path(__file__).resolve().parents[2] / "src"

_WORKER = r"""
import sys
from pathlib import Path
import numpy as np
import torch
from medactive.models import distributed
from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import MocoConfig

out = Path(sys.argv[1])
ctx = distributed.init_from_env("gloo")
torch.set_num_threads(1)
# the helper alone: rank r adds r + 1 to every entry of every array
base = [np.arange(5.0), np.zeros(5), np.ones(5)]
summed = distributed.reduce_increments([b + ctx.rank + 1 for b in base], base, ctx)
rows = distributed.all_gather_rows(torch.full((ctx.rank + 1, 2), float(ctx.rank)), ctx)
images = np.random.default_rng(0).integers(0, 256, (24, 8, 8, 3), dtype=np.uint8)
cfg = MocoConfig(epochs=2, batch_size=8, queue_size=16, proj_dim=16, seed=0, amp=False)
res = pretrain_moco(images, cfg, cache_root=out / "cache", progress=False)
state = torch.cat([p.detach().flatten() for p in res.encoder.parameters()]).numpy()
np.savez(out / f"rank{ctx.rank}.npz", summed=np.stack(summed), rows=rows.numpy(),
         confidence=res.confidence, variability=res.variability, features=res.features,
         state=state)
torch.distributed.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_gloo_ranks_share_one_map(tmp_path: Path) -> None:
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "PYTHONPATH": str(SRC), "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=240)
        assert p.returncode == 0, out.decode()[-3000:]
    r0, r1 = (np.load(tmp_path / f"rank{r}.npz") for r in range(2))
    # the helper: base + (1 + 2) on both ranks
    expected = np.stack([np.arange(5.0) + 3, np.full(5, 3.0), np.full(5, 4.0)])
    np.testing.assert_array_equal(r0["summed"], expected)
    np.testing.assert_array_equal(r1["summed"], expected)
    np.testing.assert_array_equal(r0["rows"], [[0, 0], [1, 1], [1, 1]])
    # one map and one encoder for both ranks
    np.testing.assert_array_equal(r0["confidence"], r1["confidence"])
    np.testing.assert_array_equal(r0["variability"], r1["variability"])
    np.testing.assert_allclose(r0["state"], r1["state"], rtol=0, atol=1e-6)
    # every image was counted (on the rank that saw it) and reached both ranks' map: a
    # probability is > 0, so an image missing from the sums would have confidence 0
    assert np.all(r0["confidence"] > 0) and np.all(r0["confidence"] < 1)
    assert (tmp_path / "cache").is_dir() and len(list((tmp_path / "cache").glob("*/meta.json"))) == 1


def test_single_process_is_the_identity() -> None:
    ctx = distributed.current()
    assert not ctx.active and ctx.primary
    idx = np.arange(10)
    assert distributed.shard(idx, ctx) is idx
    a = [np.ones(3)]
    assert distributed.reduce_increments(a, [np.zeros(3)], ctx)[0] is a[0]
    t = torch.ones(2, 3)
    assert distributed.all_gather_rows(t, ctx) is t
    shards = [distributed.shard(np.arange(11), distributed.DistContext(r, 3)) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(11))


def test_pretrain_command_single_process(tmp_path: Path, monkeypatch, capsys) -> None:
    """``medactive pretrain`` (what torchrun launches) fills the encoder cache."""
    from tests.experiment.conftest import write_synthetic_npz

    from medactive.cli import main

    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "s.npz")
    assert main(["pretrain", "--data", str(npz), "--epochs", "1", "--batch-size", "16",
                 "--no-progress"]) == 0
    assert "1 process(es)" in capsys.readouterr().out
    assert len(list((tmp_path / "cache" / "encoders").glob("*/meta.json"))) == 1
