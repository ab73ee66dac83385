"""A failed `medactive run` leaves its output folder as it was, so the fixed command runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medactive.cli import main

from .conftest import config_text, write_synthetic_npz

SMALL = dict(strategies='["random"]')


def _config(tmp_path, name: str, extra: str = "", source=None, **kwargs) -> str:
    npz = source or write_synthetic_npz(tmp_path / "synthetic.npz")
    path = tmp_path / f"{name}.toml"
    path.write_text(config_text(npz, extra, **{**SMALL, **kwargs}).replace("repeats = 2",
                                                                           "repeats = 1"))
    return str(path)


@pytest.mark.parametrize("problem, needle", [
    ("schedule", "budget schedule reaches"),
    ("device", "unknown device 'bogus'"),
    ("dataset", "not found"),
])
def test_failed_run_writes_nothing(tmp_path, monkeypatch, capsys, problem, needle) -> None:
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    if problem == "schedule":  # 9 + 2 x 500 labelled images from a pool of 105
        cfg = _config(tmp_path, "bad")
        Path(cfg).write_text(Path(cfg).read_text().replace("budget = 6", "budget = 500"))
    elif problem == "device":
        cfg = _config(tmp_path, "bad", extra='device = "bogus"')
    else:
        cfg = _config(tmp_path, "bad", source=tmp_path / "missing.npz")
    out = tmp_path / "out"
    assert main(["run", cfg, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_folder_without_results_is_reused_with_a_fixed_config(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    out.mkdir()
    # what an earlier, failed run of another configuration left (config.json, no results)
    (out / "config.json").write_text(json.dumps({"name": "an earlier attempt"}))
    cfg = _config(tmp_path, "good", extra="reference = false")
    assert main(["run", cfg, "--out", str(out), "--quiet"]) == 0
    assert (out / "results.jsonl").stat().st_size > 0
    assert json.loads((out / "config.json").read_text())["name"] == "synthetic"
