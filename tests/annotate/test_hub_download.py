"""An ``hf:`` encoder fetched from a hub for real: ``huggingface_hub`` (not a mock of it) talks
HTTP to a hub endpoint on 127.0.0.1 that serves a tiny DINOv2, the way a hospital's internal
Hugging Face mirror is reached (``HF_ENDPOINT``). Nothing leaves the machine.

A user online: ``project init`` reads the model's config only and pins the commit the hub
names; the first ``project query`` downloads the weights of that commit and picks. The hub then
goes away and ``HF_HUB_OFFLINE=1`` is set: a new project on the same machine works from the
hub cache without a request. A model the hub does not have is one line, exit 2.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from tests.annotate.conftest import make_image_folder

from medactive.annotate.store import ProjectStore

REPO = "medactive-tests/tiny-dino"
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


class _Hub(http.server.BaseHTTPRequestHandler):
    """The hub's model API as ``huggingface_hub`` calls it: repo info, the file tree, and each
    file's ``resolve`` URL (HEAD for its commit, ETag and size; GET for its bytes)."""

    files: ClassVar[dict[str, bytes]] = {}  # set per server by the fixture's subclass
    log: ClassVar[list[tuple[str, str]]] = []

    def log_message(self, *args: object) -> None:  # keep pytest's output clean
        pass

    def _reply(self, code: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = urllib.parse.urlparse(self.path).path
        self.log.append((self.command, path))
        api, resolve = f"/api/models/{REPO}", f"/{REPO}/resolve/"
        as_json = {"Content-Type": "application/json"}
        if path.startswith(api + "/revision/"):
            info = {"id": REPO, "sha": COMMIT,
                    "siblings": [{"rfilename": name} for name in self.files]}
            return self._reply(200, json.dumps(info).encode(), as_json)
        if path.startswith(api + "/tree/"):
            tree = [{"type": "file", "path": name, "size": len(data),
                     "oid": hashlib.sha1(data).hexdigest()} for name, data in self.files.items()]
            return self._reply(200, json.dumps(tree).encode(), as_json)
        if path.startswith(resolve) and path[len(resolve):].split("/", 1)[-1] in self.files:
            data = self.files[path[len(resolve):].split("/", 1)[1]]
            return self._reply(200, data, {"X-Repo-Commit": COMMIT,
                                           "ETag": f'"{hashlib.sha1(data).hexdigest()}"'})
        return self._reply(404, b"", {"X-Error-Code": "RepoNotFound"})

    do_HEAD = do_GET


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """``(endpoint URL, request log)`` of a hub serving a 2-layer DINOv2 as :data:`REPO`."""
    import transformers

    model = transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        image_size=28, patch_size=14))
    model.save_pretrained(tmp_path / "upload")
    handler = type("Hub", (_Hub,), {
        "files": {p.name: p.read_bytes() for p in (tmp_path / "upload").iterdir()}, "log": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", handler.log
    finally:
        server.shutdown()
        server.server_close()


def _medactive(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "medactive", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def _env(tmp_path: Path, endpoint: str, *, offline: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(tmp_path / "hf-cache"),
               HF_HUB_DISABLE_TELEMETRY="1", MEDACTIVE_PROGRESS="0",
               MEDACTIVE_CACHE_DIR=str(tmp_path / ("cache-offline" if offline else "cache")))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def test_download_once_online_then_work_offline(tmp_path: Path,
                                                hub: tuple[str, list[tuple[str, str]]]) -> None:
    endpoint, log = hub
    folder = make_image_folder(tmp_path / "images", n=12, size=28)
    online = _env(tmp_path, endpoint, offline=False)
    init = _medactive(["project", "init", str(tmp_path / "p"), "--images", str(folder),
                       "--classes", "a,b", "--encoder", f"hf:{REPO}"], online)
    assert init.returncode == 0, init.stderr
    fetched = {path.rsplit("/", 1)[-1] for method, path in log if method == "GET"
               and "/resolve/" in path}
    assert fetched == {"config.json"}  # init checks the architecture: no weights yet
    with ProjectStore.open(tmp_path / "p") as store:
        assert store.meta()["encoder_revision"] == COMMIT

    query = _medactive(["project", "query", str(tmp_path / "p"), "--budget", "4"], online)
    assert query.returncode == 0, query.stderr
    weights = [path for method, path in log if method == "GET" and path.endswith(".safetensors")]
    assert weights == [f"/{REPO}/resolve/{COMMIT}/model.safetensors"]  # the pinned commit
    with ProjectStore.open(tmp_path / "p") as store:
        round_id = store.latest_round_id()
        assert round_id is not None and len(store.queue(round_id)) == 4

    # the hub is gone (or the machine air-gapped): the hub cache serves a new project
    requests = len(log)
    offline = _env(tmp_path, "http://127.0.0.1:9", offline=True)
    for args in (["project", "init", str(tmp_path / "q"), "--images", str(folder), "--classes",
                  "a,b", "--encoder", f"hf:{REPO}"],
                 ["project", "query", str(tmp_path / "q"), "--budget", "4"]):
        proc = _medactive(args, offline)
        assert proc.returncode == 0, proc.stderr
    assert len(log) == requests
    # q encoded its images itself (a project keeps its own feature cache), with the weights
    # from the hub cache: the same encoder identity as p's, pinned to the same commit
    entries = [{e.parent.name for e in (tmp_path / name / "feature-cache").glob("*/meta.json")}
               for name in ("p", "q")]
    assert entries[0] and entries[0] == entries[1]


def test_a_model_the_hub_does_not_have(tmp_path: Path,
                                       hub: tuple[str, list[tuple[str, str]]]) -> None:
    endpoint, _ = hub
    folder = make_image_folder(tmp_path / "images", n=4, size=28)
    proc = _medactive(["project", "init", str(tmp_path / "p"), "--images", str(folder),
                       "--classes", "a,b", "--encoder", "hf:medactive-tests/no-such-model"],
                      _env(tmp_path, endpoint, offline=False))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "has no such model" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "p").exists()
