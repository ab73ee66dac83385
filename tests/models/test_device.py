"""A device that does not exist is a one-line error before any work, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.models.device import select_device


@pytest.mark.parametrize("name", ["bogus", "", "cuda:x", "meta"])
def test_unknown_device_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="device"):
        select_device(name)


def test_device_from_environment_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("MEDACTIVE_DEVICE", "bogus")
    with pytest.raises(ConfigError, match=r"\$MEDACTIVE_DEVICE"):
        select_device()
    monkeypatch.setenv("MEDACTIVE_DEVICE", "cpu")
    assert select_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="CUDA is not available"):
        select_device("cuda")


def test_coldstart_bogus_device_is_one_line(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    npz = tmp_path / "s.npz"
    np.savez(npz, **{f"{split}_{kind}": (rng.integers(0, 255, (12, 12, 12, 3), dtype=np.uint8)
                                         if kind == "images" else np.arange(12)[:, None] % 2)
                     for split in ("train", "val", "test") for kind in ("images", "labels")})
    code = main(["coldstart", "--data", str(npz), "--device", "bogus", "--budget", "3",
                 "--epochs", "1", "--out", str(tmp_path / "sel.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown device 'bogus'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "sel.csv").exists()
