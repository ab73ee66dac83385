"""The labelling API through FastAPI's TestClient: the full cycle and every rejection."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from medactive.annotate.app import create_app
from medactive.annotate.guard import MAX_BODY
from medactive.annotate.store import ProjectStore


@pytest.fixture
def queried(project: ProjectStore) -> ProjectStore:
    """The project with a round of 5 queried images (ranked by descending score)."""
    imgs = [i.id for i in project.images()]
    project.add_round("random", {"seed": 0}, None,
                      [(imgs[k], 1.0 - k / 10) for k in (4, 0, 7, 2, 9)])
    return project


BASE = "http://127.0.0.1:8765"  # the served address: the app refuses any other Host
TOKEN = "s3cret-token-0123456789"


def _client(store: ProjectStore, token: str | None = None) -> TestClient:
    """A client at the served address; without a token it loads the page first, as a browser
    does, which sets the session cookie every other request needs."""
    client = TestClient(create_app(store.dir, token=token, annotator="dr-test"), base_url=BASE)
    if token is None:
        assert client.get("/").status_code == 200
    return client


def _snapshot(store: ProjectStore) -> list[tuple]:
    return store.history()


def test_full_cycle_and_resume(queried: ProjectStore) -> None:
    client = _client(queried)
    page = client.get("/")
    assert page.status_code == 200 and "medactive" in page.text
    s = client.get("/api/state").json()
    imgs = [q.image_id for q in queried.queue(1)]
    assert (s["done"], s["total"], s["current"]["image_id"]) == (0, 5, imgs[0])
    assert s["classes"] == ["benign", "malignant", "normal"] and s["annotator"] == "dr-test"
    png = client.get(f"/api/image/{imgs[0]}")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")

    for img, ans in zip(imgs[:3], ["malignant", "unsure", "skip"], strict=True):
        s = client.post("/api/answer", json={"image_id": img, "answer": ans,
                                             "annotator": "dr-a"}).json()
    assert (s["done"], s["current"]["image_id"]) == (3, imgs[3])
    s = client.post("/api/undo", json={"annotator": "dr-a"}).json()  # undoes the skip
    assert (s["done"], s["current"]["image_id"]) == (2, imgs[2])

    # a "restart": a fresh app over the same file resumes at the same image
    s2 = _client(ProjectStore.open(queried.dir)).get("/api/state").json()
    assert (s2["done"], s2["current"]["image_id"]) == (2, imgs[2])
    answers = queried.current_answers()
    assert answers[imgs[0]].class_idx == 1 and answers[imgs[0]].annotator == "dr-a"
    assert answers[imgs[1]].kind == "unsure"
    for img in imgs[2:]:
        client.post("/api/answer", json={"image_id": img, "answer": "normal", "annotator": "x"})
    s = client.get("/api/state").json()
    assert (s["done"], s["current"]) == (5, None)


def test_token_required_everywhere(queried: ProjectStore) -> None:
    client = _client(queried, token=TOKEN)
    img = queried.queue(1)[0].image_id
    before = _snapshot(queried)
    for path in ("/", "/api/state", f"/api/image/{img}", "/static/app.js"):
        assert client.get(path).status_code == 401
        assert client.get(path, params={"token": "wrong"}).status_code == 401
        assert client.get(path, headers={"X-Token": TOKEN}).status_code == 200
        client.cookies.clear()  # the page sets the session cookie: start again without it
    for path in ("/api/state", f"/api/image/{img}"):  # never in a URL but the page's own
        assert client.get(path, params={"token": TOKEN}).status_code == 401
    body = {"image_id": img, "answer": "benign", "annotator": "a"}
    assert client.post("/api/answer", json=body).status_code == 401
    assert client.post("/api/answer", json=body, headers={"X-Token": "nope"}).status_code == 401
    assert client.post("/api/undo", json={"annotator": "a"}).status_code == 401
    assert _snapshot(queried) == before
    assert client.post("/api/answer", json=body, headers={"X-Token": TOKEN}).status_code == 200
    # the printed URL: the token is traded for the session cookie and leaves the address bar
    page = client.get("/", params={"token": TOKEN}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/"
    assert client.get("/api/state").status_code == 200  # the cookie alone now


def test_short_tokens_are_refused(project: ProjectStore) -> None:
    from medactive.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 16 characters"):
        create_app(project.dir, token="s3cret")


BAD_BODIES = [
    ({"image_id": 99999, "answer": "benign", "annotator": "a"}, 404),  # unknown id
    ({"image_id": "../../etc/passwd", "answer": "benign", "annotator": "a"}, 422),
    ({"image_id": 1, "answer": "cancer", "annotator": "a"}, 422),  # class not in project
    ({"image_id": 1, "answer": "benign"}, 422),  # no annotator
    ({"image_id": 1, "answer": "benign", "annotator": ""}, 422),
    ({"image_id": 1, "answer": "benign", "annotator": "a", "extra": 1}, 422),
    ({"image_id": 0, "answer": "benign", "annotator": "a"}, 422),
]


@pytest.mark.parametrize("body, code", BAD_BODIES)
def test_bad_answers_change_nothing(queried: ProjectStore, body: dict, code: int) -> None:
    client = _client(queried)
    assert client.post("/api/answer", json=body).status_code == code
    assert _snapshot(queried) == []


def test_malformed_and_oversized_requests(queried: ProjectStore) -> None:
    client = _client(queried)
    img = queried.queue(1)[0].image_id
    headers = {"Content-Type": "application/json"}
    assert client.post("/api/answer", content=b"{not json", headers=headers).status_code == 422
    assert client.post("/api/answer", content=b"[1, 2]", headers=headers).status_code == 422
    huge = b'{"image_id": %d, "answer": "benign", "annotator": "%s"}' % (img, b"a" * MAX_BODY)
    assert client.post("/api/answer", content=huge, headers=headers).status_code == 413

    def chunks():  # no Content-Length: the limit must hold on the stream too
        for _ in range(10):
            yield b" " * 1000

    assert client.post("/api/answer", content=chunks(), headers=headers).status_code == 413
    assert client.post("/api/undo", content=b"{}", headers=headers).status_code == 422
    assert _snapshot(queried) == []


def test_images_only_by_registered_id(queried: ProjectStore, tmp_path) -> None:
    client = _client(queried)
    for path in ("/api/image/99999", "/api/image/0", "/api/image/-1"):
        assert client.get(path).status_code == 404
    for path in ("/api/image/..%2F..%2Fproject.db", "/api/image/%2Fetc%2Fpasswd",
                 "/api/image/1.png", "/static/../project.db", "/project.db"):
        assert client.get(path).status_code in (404, 422)
    # a file changed on disk after registration is refused, not served
    row = queried.images()[0]
    with open(row.path, "ab") as f:
        f.write(b"tampered")
    assert client.get(f"/api/image/{row.id}").status_code == 409


def test_not_queried_and_nothing_to_undo(queried: ProjectStore) -> None:
    client = _client(queried)
    outside = next(i.id for i in queried.images() if i.id not in
                   {q.image_id for q in queried.queue(1)})
    r = client.post("/api/answer", json={"image_id": outside, "answer": "benign", "annotator": "a"})
    assert r.status_code == 409
    assert client.post("/api/undo", json={"annotator": "a"}).status_code == 409
    assert _snapshot(queried) == []


def test_no_round_yet(project: ProjectStore) -> None:
    client = _client(project)
    s = client.get("/api/state").json()
    assert s["round"] is None and s["current"] is None
    img = project.images()[0].id
    r = client.post("/api/answer", json={"image_id": img, "answer": "benign", "annotator": "a"})
    assert r.status_code == 409 and project.history() == []


def test_serve_refuses_public_host_without_token(project: ProjectStore, capsys) -> None:
    from medactive.cli import main

    assert main(["project", "serve", str(project.dir), "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err
