"""The clinic workflow through the API (FastAPI's TestClient): why each image, several readers,
the next round as a job, the gallery and the exports."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from medactive.annotate.app import create_app
from medactive.annotate.next_round import OpenRoundError
from medactive.annotate.records import JobBusyError
from medactive.annotate.settings import update_settings
from medactive.annotate.store import ProjectStore
from medactive.errors import StrategyError

BASE = "http://127.0.0.1:8765"


def _probs(k: int) -> np.ndarray:
    p = np.full(3, 0.1, np.float32)
    p[k % 3] = 0.8
    return p


@pytest.fixture
def round1(project: ProjectStore) -> ProjectStore:
    """A round of 6: 4 strategy picks, 1 validation draw, 1 more pick; predictions for all."""
    ids = [i.id for i in project.images()]
    project.add_round("aeig", {"budget": 6}, None,
                      [(ids[k], 0.9 - k / 10) for k in range(6)],
                      ["acquire", "acquire", "validation", "acquire", "acquire", "acquire"],
                      {i: _probs(k) for k, i in enumerate(ids)})
    return project


def _client(store: ProjectStore, **kw) -> TestClient:
    client = TestClient(create_app(store.dir, **kw), base_url=BASE)
    assert client.get("/").status_code == 200
    return client


def _answer(client: TestClient, image: int, answer: str, reader: str) -> dict:
    r = client.post("/api/answer", json={"image_id": image, "answer": answer,
                                         "annotator": reader})
    assert r.status_code == 200, r.text
    return r.json()


def test_why_this_image_and_hidden_predictions(round1: ProjectStore) -> None:
    client = _client(round1)
    s = client.get("/api/state", params={"reader": "dr-a"}).json()
    cur = s["current"]
    assert (cur["rank"], cur["strategy"], cur["purpose"]) == (1, "aeig", "acquire")
    assert cur["score"] == pytest.approx(0.9)
    assert cur["predictions_hidden"] and cur["predictions"] is None  # no anchoring
    mix = s["round"]["health"]["mix"]  # predicted class mix of the whole query
    assert mix == pytest.approx({"benign": 2 / 6, "malignant": 2 / 6, "normal": 2 / 6},
                                abs=1e-4)
    s = _answer(client, cur["image_id"], "benign", "dr-a")
    last = s["last"]  # revealed once answered
    assert last["own_answer"] == "benign" and last["predictions"][0] == {"class": "benign",
                                                                       "p": pytest.approx(0.8)}
    assert [p["class"] for p in last["predictions"]] == ["benign", "malignant", "normal"]
    third = client.get(f"/api/item/{s['current']['image_id'] + 1}",
                       params={"reader": "dr-a"}).json()
    assert third["purpose"] == "validation" and "validation" in third["why"]
    update_settings(round1, show_predictions="first")
    s = client.get("/api/state", params={"reader": "dr-a"}).json()
    assert s["current"]["predictions"] is not None


def test_round_health_from_the_strategy_record(project: ProjectStore) -> None:
    ids = [i.id for i in project.images()]
    health = {"batch_mix": [1.0, 0.0, 0.0], "pool_mix": [0.3, 0.3, 0.4], "confident_share": 0.9,
              "pool_confident_share": 0.5, "warnings": ["locked onto one class"]}
    project.add_round("aeig", {"health": health}, None, [(ids[0], 1.0)])
    s = _client(project).get("/api/state").json()
    assert s["round"]["health"]["mix"]["benign"] == 1.0
    assert s["round"]["health"]["warnings"] == ["locked onto one class"]
    project.add_round("hacon", {}, None, [(ids[1], None)])  # cold start: no model, no mix
    assert _client(project).get("/api/state").json()["round"]["health"] is None


def test_two_readers_agreement_adjudication_and_own_undo(round1: ProjectStore) -> None:
    update_settings(round1, reads_per_image=2)  # double reading
    client = _client(round1)
    queue = [q.image_id for q in round1.queue(1)]
    a = ["benign", "malignant", "normal", "benign", "malignant", "normal"]
    b = ["benign", "malignant", "normal", "normal", "malignant", "normal"]
    for img, x, y in zip(queue, a, b, strict=True):
        _answer(client, img, x, "dr-a")
        _answer(client, img, y, "dr-b")
    s = client.get("/api/state", params={"reader": "dr-a"}).json()
    assert (s["done"], s["total"]) == (6, 6)
    # undo retracts the reader's OWN last answer only
    s = client.post("/api/undo", json={"annotator": "dr-a"}).json()
    assert s["done"] == 5
    answers = {(x.image_id, x.annotator) for x in round1.reader_answers()}
    assert (queue[5], "dr-b") in answers and (queue[5], "dr-a") not in answers
    _answer(client, queue[5], "normal", "dr-a")
    assert client.post("/api/undo", json={"annotator": "dr-c"}).status_code == 409

    progress = client.get("/api/progress").json()
    ag = progress["rounds"][0]["agreement"]
    assert ag["method"] == "cohen" and ag["n_items"] == 6 and 0 < ag["kappa"] < 1
    dis = client.get("/api/disagreements").json()["items"]
    assert [d["image_id"] for d in dis] == [queue[3]] and dis[0]["decided"] is None
    assert progress["unresolved"] == 1
    body = {"image_id": queue[0], "answer": "benign", "annotator": "dr-c"}
    assert client.post("/api/adjudicate", json=body).status_code == 409  # nothing to settle
    body["image_id"] = queue[3]
    r = client.post("/api/adjudicate", json=body)
    assert r.status_code == 200 and r.json()["items"][0]["status"] == "adjudicated"
    progress = client.get("/api/progress").json()
    assert progress["unresolved"] == 0
    assert sum(progress["train_per_class"].values()) == 5  # one validation image
    assert sum(progress["validation_per_class"].values()) == 1


def test_single_reading_splits_the_queue(round1: ProjectStore) -> None:
    client = _client(round1)
    first = client.get("/api/state", params={"reader": "dr-a"}).json()["current"]["image_id"]
    _answer(client, first, "benign", "dr-a")
    s = client.get("/api/state", params={"reader": "dr-b"}).json()
    assert s["current"]["image_id"] != first and s["done"] == 1  # one read per image (default)


def test_reader_tokens(round1: ProjectStore) -> None:
    token = round1.add_reader("dr-a")
    client = _client(round1)
    img = round1.queue(1)[0].image_id
    body = {"image_id": img, "answer": "benign", "annotator": "dr-a"}
    assert client.post("/api/answer", json=body).status_code == 401
    assert client.post("/api/signin", json={"name": "dr-a", "token": "wrong"}).status_code == 401
    r = client.post("/api/signin", json={"name": "dr-a", "token": token})
    assert r.status_code == 200 and r.json()["reader"] == "dr-a"
    assert client.post("/api/answer", json={**body, "annotator": "dr-b"}).status_code == 403
    assert client.post("/api/answer", json=body).status_code == 200
    assert [a.annotator for a in round1.reader_answers()] == ["dr-a"]
    import sqlite3

    with sqlite3.connect(round1.path) as con:  # only the digest is stored
        dump = "\n".join(con.iterdump())
    assert token not in dump and len(token) >= 16


def _fake_job(store: ProjectStore, budget: int, force: bool) -> int:
    return store.begin_job("query", {"budget": budget}, None)


def test_next_round_job_state(round1: ProjectStore) -> None:
    client = _client(round1, start_job=_fake_job)
    r = client.post("/api/next-round", json={"budget": 5, "annotator": "dr-a"})
    # round 1 has 6 open images: refused, with the count, and no job recorded
    assert r.status_code == 409 and r.json()["open_round"]["open"] == 6
    assert "round 1 is still open: 6 of 6 images still need an answer" in r.json()["detail"]
    assert round1.jobs() == []
    r = client.post("/api/next-round", json={"budget": 5, "annotator": "dr-a", "force": True})
    assert r.status_code == 200 and r.json()["job"]["status"] == "running"
    job = r.json()["job"]["id"]
    again = client.post("/api/next-round", json={"budget": 5, "annotator": "dr-a",
                                                 "force": True})
    assert again.status_code == 409 and "already running" in again.json()["detail"]
    round1.update_job(job, "pre-training", 0.4)
    s = client.get("/api/state").json()  # a reload sees the job and its progress
    assert (s["job"]["stage"], s["job"]["progress"]) == ("pre-training", 0.4)
    # labels keep being accepted while it runs
    _answer(client, round1.queue(1)[0].image_id, "benign", "dr-a")
    round1.finish_job(job, error=f"training diverged in {round1.dir}/models")
    s = client.get("/api/job").json()["job"]
    assert s["status"] == "failed" and str(round1.dir) not in s["error"]
    assert "training diverged" in s["error"]


def test_killed_job_is_reported_failed(round1: ProjectStore) -> None:
    # a stand-in job process (its command line names medactive, as a real job's does)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "medactive"])
    job = round1.begin_job("query", {}, proc.pid)
    with pytest.raises(JobBusyError):
        round1.begin_job("query", {}, None)
    proc.kill()
    proc.wait()
    latest = round1.latest_job()
    assert latest.id == job and latest.status == "failed" and "killed" in latest.error
    assert round1.begin_job("query", {}, None) > job  # the project is not blocked


def test_gallery_thumbnails_and_exports(round1: ProjectStore) -> None:
    client = _client(round1)
    queue = [q.image_id for q in round1.queue(1)]
    _answer(client, queue[0], "unsure", "dr-a")
    _answer(client, queue[1], "skip", "dr-a")
    _answer(client, queue[2], "normal", "dr-a")
    g = client.get("/api/gallery", params={"reader": "dr-a"}).json()
    assert [i["status"] for i in g["items"]][:4] == ["unsure", "skipped", "answered", "open"]
    for show, expected in (("unsure", [queue[0]]), ("skipped", [queue[1]]),
                           ("open", queue[3:])):
        items = client.get("/api/gallery", params={"reader": "dr-a", "show": show}).json()
        assert [i["image_id"] for i in items["items"]] == expected
    thumb = client.get(f"/api/thumb/{queue[0]}")
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")

    rows = list(csv.DictReader(io.StringIO(client.get("/api/export/csv").text)))
    assert {(r["label"], r["decided_by"], r["set"]) for r in rows} == {
        ("unsure", "single", "training"), ("normal", "single", "validation")}
    assert all(r["path"] == "" for r in rows)  # no server paths in a download
    history = client.get("/api/export/json").json()
    assert [q["purpose"] for q in history["rounds"][0]["queue"]][2] == "validation"
    assert [r["kind"] for r in history["labels"]] == ["unsure", "skip", "label"]
    tasks = client.get("/api/export/labelstudio").json()
    assert len(tasks) == round1.n_images()
    labelled = next(t for t in tasks if "annotations" in t)
    assert labelled["annotations"][0]["result"][0]["value"] == {"choices": ["normal"]}
    pred = tasks[0]["predictions"][0]
    assert pred["result"][0]["type"] == "choices" and pred["result"][0]["from_name"] == "label"
    assert pred["score"] == pytest.approx(0.8) and "round 1" in pred["model_version"]
    assert client.get("/api/export/xml").status_code == 404


def test_real_background_job(tmp_path, image_folder) -> None:
    """The button's job is `medactive project query --job N` in its own process: it records
    the round, the page's store sees it finish; a bad budget or an open round records no job."""
    from medactive.annotate.jobs import spawn_query_job
    from medactive.annotate.project import init_from_folder

    with init_from_folder(tmp_path / "p", image_folder, ["a", "b"], image_size=16) as store:
        update_settings(store, pretrain_epochs=1, validation_share=0.0)
        job = spawn_query_job(store, 4)
        deadline = time.monotonic() + 120
        while store.job(job).status == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        done = store.job(job)
        assert done.status == "done", done.error
        assert done.round_id == store.latest_round().id and len(store.queue(done.round_id)) == 4
        # a bad request is refused before any job is recorded (no failed job for a typo)
        with pytest.raises(StrategyError, match="larger than the 12 unanswered images"):
            spawn_query_job(store, 999, force=True)
        with pytest.raises(OpenRoundError, match="4 of 4 images still need an answer"):
            spawn_query_job(store, 2)
        assert [j.id for j in store.jobs()] == [job]
