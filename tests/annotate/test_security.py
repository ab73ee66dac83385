"""The labelling server against another web page, another host name and careless input.

Each test is a regression test of issue 12: cross-site writes (CSRF), DNS rebinding, headers,
tokens, ids beyond 64 bits, server paths in error bodies, a project replaced while serving, and
``serve`` announcing its URL only once the port is bound.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from medactive.annotate.app import create_app
from medactive.annotate.serve import serve_project
from medactive.annotate.store import ProjectStore
from medactive.cli import main
from medactive.errors import ConfigError

BASE = "http://127.0.0.1:8765"
TOKEN = "s3cret-token-0123456789"


@pytest.fixture
def queried(project: ProjectStore) -> ProjectStore:
    """The project with a round of 3 queried images."""
    imgs = [i.id for i in project.images()]
    project.add_round("random", {}, None, [(imgs[k], None) for k in (1, 2, 3)])
    return project


def _browser(store: ProjectStore, **kwargs) -> TestClient:
    """A client that loaded the page, as the clinician's browser did (has the cookie)."""
    client = TestClient(create_app(store.dir, **kwargs), base_url=BASE)
    assert client.get("/").status_code == 200
    return client


def _answer(store: ProjectStore) -> dict:
    return {"image_id": store.queue(1)[0].image_id, "answer": "benign", "annotator": "a"}


def test_cross_site_writes_are_refused(queried: ProjectStore) -> None:
    browser = _browser(queried)
    body = _answer(queried)
    raw = json.dumps(body)
    forged = [
        # what a page on another site can send without a CORS preflight
        ({"Content-Type": "text/plain"}, raw, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, raw, 415),
        ({"Content-Type": "multipart/form-data; boundary=x"}, raw, 415),
        ({}, raw, 415),  # no Content-Type at all
        # a fetch from another origin, even one that managed to send JSON
        ({"Content-Type": "application/json", "Origin": "http://attacker.example"}, raw, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, raw, 403),
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:9999"}, raw, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, raw, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"}, raw, 403),
    ]
    for headers, content, code in forged:
        for path in ("/api/answer", "/api/undo"):
            r = browser.post(path, content=content if path == "/api/answer" else '{"annotator":"a"}',
                             headers=headers)
            assert r.status_code == code, (path, headers, r.text)
    # no session cookie: a client that never loaded the page (or a cross-site request, which
    # a SameSite=Strict cookie never accompanies)
    stranger = TestClient(create_app(queried.dir), base_url=BASE)
    assert stranger.post("/api/answer", json=body).status_code == 401
    assert stranger.get("/api/state").status_code == 401
    assert stranger.get(f"/api/image/{body['image_id']}").status_code == 401
    assert queried.history() == []
    # the page itself, same origin: accepted
    ok = browser.post("/api/answer", json=body, headers={"Origin": BASE,
                                                          "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 200 and len(queried.history()) == 1


def test_dns_rebinding_host_is_refused(queried: ProjectStore) -> None:
    client = TestClient(create_app(queried.dir), base_url="http://attacker.example:8765")
    img = queried.queue(1)[0].image_id
    for path in ("/", "/api/state", f"/api/image/{img}", "/static/app.js"):
        r = client.get(path)
        assert r.status_code == 421 and "set-cookie" not in r.headers
    assert client.post("/api/answer", json=_answer(queried)).status_code == 421
    for alias in ("http://localhost:8765", "http://[::1]:8765"):  # loopback names all work
        assert TestClient(create_app(queried.dir), base_url=alias).get("/").status_code == 200
    other_port = TestClient(create_app(queried.dir), base_url="http://127.0.0.1:9999")
    assert other_port.get("/").status_code == 421


def test_cookie_headers_and_no_inline_script(queried: ProjectStore) -> None:
    client = TestClient(create_app(queried.dir), base_url=BASE)
    page = client.get("/")
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert cookie.startswith("medactive-8765=")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    html = page.text
    assert "<script>" not in html and "<style>" not in html and " style=" not in html
    assert 'src="/static/app.js"' in html and 'href="/static/app.css"' in html
    js = client.get("/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "?token" not in js.text and "X-Token" not in js.text  # never in a URL it builds
    assert client.get("/static/../project.db").status_code == 404
    assert client.get("/static/index.html").status_code == 404
    # errors carry the headers too
    assert "content-security-policy" in client.get("/api/image/99999").headers


def test_session_is_per_launch(queried: ProjectStore) -> None:
    first = _browser(queried)
    cookie = first.cookies.get("medactive-8765")
    second = TestClient(create_app(queried.dir), base_url=BASE)  # a restarted server
    second.cookies.set("medactive-8765", cookie)
    assert second.get("/api/state").status_code == 401


def test_token_from_environment_and_length(project: ProjectStore, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MEDACTIVE_TOKEN", "too-short")
    assert main(["project", "serve", str(project.dir), "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "at least 16 characters" in err and "Traceback" not in err


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_serve_port_out_of_range(project: ProjectStore, port: str, capsys) -> None:
    assert main(["project", "serve", str(project.dir), "--port", port]) == 2
    err = capsys.readouterr().err
    assert "between 1 and 65535" in err and "Traceback" not in err


def test_serve_port_in_use(project: ProjectStore, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["project", "serve", str(project.dir), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "cannot listen on 127.0.0.1" in err and "Traceback" not in err


class _Stop(Exception):
    pass


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_url_is_announced_once_bound_and_never_0000(project: ProjectStore, host: str) -> None:
    seen = []

    def announce(url: str) -> None:
        seen.append(url)
        port = int(url.split(":")[2].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the port is already listening when the URL is printed
        raise _Stop

    with pytest.raises(_Stop):
        serve_project(project.dir, host=host, port=0, token=TOKEN, announce=announce)
    assert seen[0].startswith("http://127.0.0.1:") and "0.0.0.0" not in seen[0]


def test_image_ids_beyond_64_bits(queried: ProjectStore) -> None:
    client = _browser(queried)
    for big in (2**63, 2**64, 10**30):
        assert client.get(f"/api/image/{big}").status_code in (404, 422)
        assert client.get(f"/api/image/-{big}").status_code in (404, 422)
        r = client.post("/api/answer", json={"image_id": big, "answer": "benign",
                                             "annotator": "a"})
        assert r.status_code == 422
    assert queried.history() == []


def test_error_bodies_hide_server_paths(queried: ProjectStore, tmp_path: Path) -> None:
    client = _browser(queried)
    first, second = (q.image_id for q in queried.queue(1)[:2])
    changed = queried.image(first)
    with open(changed.path, "ab") as f:
        f.write(b"tampered")
    r = client.get(f"/api/image/{first}")
    assert r.status_code == 409 and changed.uid in r.text
    moved = queried.image(second)
    os.remove(moved.path)
    r2 = client.get(f"/api/image/{second}")
    assert r2.status_code == 410 and moved.uid in r2.text
    for body in (r.text, r2.text):
        assert str(tmp_path) not in body and "/raw/" not in body


def test_project_replaced_while_serving(queried: ProjectStore, tmp_path: Path) -> None:
    client = _browser(queried)
    queue = queried.queue(1)
    body = {"image_id": queue[0].image_id, "answer": "benign", "annotator": "a"}
    assert client.post("/api/answer", json=body).status_code == 200
    backup = tmp_path / "backup.db"
    with closing(sqlite3.connect(queried.path)) as src, closing(sqlite3.connect(backup)) as dst:
        src.backup(dst)  # a consistent copy (a plain file copy would miss the WAL)
    # the folder is deleted (the file unlinked) while the server holds it open
    for suffix in ("", "-wal", "-shm"):
        Path(f"{queried.path}{suffix}").unlink(missing_ok=True)
    body["image_id"] = queue[1].image_id
    r = client.post("/api/answer", json=body)
    assert r.status_code == 503 and "deleted or moved" in r.json()["detail"]
    assert str(tmp_path) not in r.text
    # ... or replaced by another file at the same path
    shutil.copyfile(backup, queried.path)
    r = client.post("/api/answer", json=body)
    assert r.status_code == 503 and "replaced" in r.json()["detail"]
    with ProjectStore.open(queried.dir) as fresh:  # nothing was written to the new file
        assert len(fresh.history()) == 1


def test_short_token_refused_by_library(project: ProjectStore) -> None:
    with pytest.raises(ConfigError, match="at least 16"):
        serve_project(project.dir, host="0.0.0.0", port=0, token="x" * 15, announce=print)
