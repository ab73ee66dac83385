"""The Label Studio ML backend through its HTTP API (FastAPI's TestClient), with the payloads
Label Studio 1.23 sends (recorded from a real run): authentication, predictions ordered by
medactive's rank, answers from webhooks (created, edited, deleted, redelivered, refused), the
next round started once, ``/train`` and a restart that loses nothing."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from tests.annotate.conftest import CLASSES

from medactive.annotate.exports import label_studio_config, label_studio_tasks
from medactive.annotate.labelstudio.app import create_backend
from medactive.annotate.labelstudio.backend import BackendConfig
from medactive.annotate.settings import update_settings
from medactive.annotate.store import ProjectStore
from medactive.errors import ConfigError

TOKEN = "medactive-test-token-0123"
BASE = "http://127.0.0.1:9090"
CONFIG = label_studio_config(CLASSES)


def basic(password: str = TOKEN, user: str = "labelstudio") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


AUTH = basic()


class Jobs:
    """Records the rounds the backend starts (the real job is tested in test_labelstudio_live)."""

    def __init__(self) -> None:
        self.budgets: list[int] = []
        self.forced: list[bool] = []

    def __call__(self, store: ProjectStore, budget: int, force: bool) -> int:
        from medactive.annotate.next_round import check_round_request

        check_round_request(store, budget, force=force)  # as spawn_query_job does first
        self.budgets.append(budget)
        self.forced.append(force)
        return store.begin_job("query", {"budget": budget}, None)


@pytest.fixture
def round1(project: ProjectStore) -> ProjectStore:
    """A round of 4 (budget 4) with the round model's predictions for every image."""
    ids = [i.id for i in project.images()]
    probs = {i: np.eye(3, dtype=np.float32)[k % 3] * 0.7 + 0.1 for k, i in enumerate(ids)}
    project.add_round("aeig", {"budget": 4}, None, [(ids[k], 0.9 - k / 10) for k in range(4)],
                      predictions=probs)
    return project


@pytest.fixture
def tasks(round1: ProjectStore) -> list[dict[str, Any]]:
    """The exported tasks as Label Studio holds them (ids 1..N in image order)."""
    return [{**t, "id": k, "project": 1} for k, t in enumerate(label_studio_tasks(round1),
                                                                  start=1)]


def client(store: ProjectStore, jobs: Jobs | None = None, **config: Any) -> TestClient:
    app = create_backend(store.dir, BackendConfig(token=TOKEN, poll_s=0, **config),
                         jobs or Jobs())
    return TestClient(app, base_url=BASE)


def created(ann: int, task: dict[str, Any], choice: str | None, user: int = 1,
            action: str = "ANNOTATION_CREATED", cancelled: bool = False) -> dict[str, Any]:
    """A webhook body as Label Studio 1.23 sends it (the fields medactive reads, and more)."""
    result = [] if choice is None else [{"from_name": "label", "to_name": "image",
                                         "type": "choices", "value": {"choices": [choice]}}]
    return {"action": action,
            "annotation": {"id": ann, "result": result, "was_cancelled": cancelled,
                           "ground_truth": False, "completed_by": user, "updated_by": user,
                           "task": task["id"], "project": 1, "lead_time": 2.5,
                           "created_at": "2026-01-05T10:00:00Z",
                           "updated_at": "2026-01-05T10:00:00Z"},
            "project": {"id": 1, "title": "blood", "label_config": CONFIG},
            "task": {"id": task["id"], "data": task["data"], "project": 1, "is_labeled": True}}


def answers(store: ProjectStore) -> dict[str, tuple[str, str]]:
    names = store.classes()
    return {a.uid: (a.annotator, a.display(names)) for a in store.reader_answers()}


@pytest.mark.parametrize("headers", [
    {}, basic("wrong-token-0123456789"), {"Authorization": "Token nope"}, {"X-Token": "nope"},
    {"Authorization": "Basic %%%"},
])
def test_missing_or_wrong_token_is_refused_and_changes_nothing(round1: ProjectStore, tasks,
                                                               headers) -> None:
    with client(round1) as c:
        for path, body in [("/webhook", created(5, tasks[0], "benign")),
                           ("/predict", {"tasks": tasks, "label_config": CONFIG}),
                           ("/train", {"annotations": [], "project": "1.5"})]:
            r = c.post(path, json=body, headers=headers)
            assert r.status_code == 401, r.text
            assert r.headers["www-authenticate"] == 'Basic realm="medactive"'
        assert c.get("/health", headers=headers).status_code == 401
    assert round1.history() == [] and round1.jobs() == []


def test_token_forms_host_and_media_type(round1: ProjectStore) -> None:
    with client(round1) as c:
        for headers in (AUTH, basic(user=""), {"Authorization": f"Token {TOKEN}"},
                        {"Authorization": f"Bearer {TOKEN}"}, {"X-Token": TOKEN}):
            assert c.get("/health", headers=headers).json()["status"] == "UP"
        assert c.get("/health", headers={**AUTH, "Host": "evil.example:9090"}).status_code == 421
        r = c.post("/setup", content=b"project=1", headers={**AUTH, "Content-Type":
                                                             "application/x-www-form-urlencoded"})
        assert r.status_code == 415


def test_short_token_is_refused(round1: ProjectStore) -> None:
    with pytest.raises(ConfigError, match="at least 16 characters"):
        create_backend(round1.dir, BackendConfig(token="short"))


def test_setup_checks_the_labelling_config(round1: ProjectStore) -> None:
    with client(round1) as c:
        ok = c.post("/setup", headers=AUTH, json={"project": "1.1796305422", "schema": CONFIG,
                                                  "hostname": "http://localhost:8080",
                                                  "access_token": "abc", "extra_params": None})
        assert ok.json() == {"model_version": "medactive-round-1"}
        bad = c.post("/setup", headers=AUTH, json={"project": "1.1", "schema": CONFIG.replace(
            'value="normal"', 'value="healthy"')})
        assert bad.status_code == 422
        assert "no choice for class(es) ['normal']" in bad.json()["error"]
        assert "choice(s) ['healthy'] are not classes" in bad.json()["error"]


def test_predict_scores_are_medactive_ranks_ascending(round1: ProjectStore, tasks) -> None:
    queue = round1.queue(1)
    stranger = {"id": 99, "data": {"image": "/data/local-files/?d=other.png"}}
    with client(round1) as c:
        r = c.post("/predict", headers=AUTH, json={"tasks": [*tasks, stranger],
                                                   "label_config": CONFIG, "project": "1.17"})
    results = r.json()["results"]
    assert len(results) == len(tasks) + 1
    by_uid = {t["data"]["medactive_id"]: p for t, p in zip(tasks, results, strict=False)}
    scores = [by_uid[q.uid]["score"] for q in queue]
    assert scores == sorted(scores) and scores[0] == pytest.approx(1 / 5)  # rank 1 lowest
    queued = {q.uid for q in queue}
    assert all(p["score"] == 1.0 for u, p in by_uid.items() if u not in queued)
    assert results[-1] == {"model_version": "medactive-round-1", "score": None, "result": []}
    # show_predictions "after" (the default): no class shown before the reader answers
    assert all(p["result"] == [] and p["model_version"] == "medactive-round-1"
               for p in results)


def test_predict_shows_the_class_when_the_project_says_first(round1: ProjectStore,
                                                              tasks) -> None:
    update_settings(round1, show_predictions="first")
    config = CONFIG.replace('value="benign"', 'value="Benign"')  # the config's spelling wins
    with client(round1) as c:
        results = c.post("/predict", headers=AUTH, json={"tasks": tasks[:3],
                                                         "label_config": config}).json()["results"]
    assert [p["result"][0]["value"]["choices"] for p in results] == [["Benign"], ["malignant"],
                                                                     ["normal"]]
    assert results[0]["result"][0]["score"] == pytest.approx(0.8)


def test_webhooks_record_edit_delete_and_redeliver(round1: ProjectStore, tasks) -> None:
    uid = [t["data"]["medactive_id"] for t in tasks]
    with client(round1) as c:
        post = lambda body: c.post("/webhook", headers=AUTH, json=body)  # noqa: E731
        assert post(created(10, tasks[0], "benign")).json()["recorded"] == 1
        assert post(created(10, tasks[0], "benign")).json()["unchanged"] == 1  # redelivered
        assert post(created(11, tasks[1], None, cancelled=True)).json()["recorded"] == 1
        assert answers(round1) == {uid[0]: ("labelstudio-user-1", "benign")}
        assert round1.skipped(1) == {round1.queue(1)[1].image_id}
        edit = created(10, tasks[0], "normal", action="ANNOTATION_UPDATED")
        assert post(edit).json()["changed"] == 1
        assert answers(round1) == {uid[0]: ("labelstudio-user-1", "normal")}
        bulk = {"action": "ANNOTATIONS_CREATED", "project": {"id": 1},
                "annotation": [created(12, tasks[2], "malignant", 2)["annotation"],
                               created(13, tasks[7], "benign", 2)["annotation"]],
                "task": [created(12, tasks[2], None)["task"], created(13, tasks[7], None)["task"]]}
        assert post(bulk).json()["recorded"] == 2
        gone = {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 10}, {"id": 404}],
                "project": {"id": 1, "title": "blood"}}
        assert post(gone).json() == {"status": "ok", "recorded": 0, "changed": 0,
                                     "withdrawn": 1, "unchanged": 1}
        assert post({"action": "PROJECT_UPDATED", "project": {"id": 1}}).json()["status"] == \
            "ignored"
    assert answers(round1) == {uid[2]: ("labelstudio-user-2", "malignant"),
                               uid[7]: ("labelstudio-user-2", "benign")}
    kinds = [r[2] for r in round1.history()]
    assert kinds == ["label", "skip", "retract", "label", "label", "label", "retract"]


def test_refused_webhooks_change_nothing(round1: ProjectStore, tasks) -> None:
    with client(round1) as c:
        bad_class = c.post("/webhook", headers=AUTH, json=created(20, tasks[0], "tumour"))
        assert bad_class.status_code == 422
        assert bad_class.json()["error"] == (f"task {tasks[0]['id']}: choice 'tumour' is not a "
                                             "class of the project (classes: benign, malignant,"
                                             " normal)")
        stranger = created(21, {"id": 77, "data": {"image": "/data/local-files/?d=x.png"}},
                           "benign")
        r = c.post("/webhook", headers=AUTH, json=stranger)
        assert r.status_code == 422 and "task 77: image 'x.png' is not in the project" in r.text
        oops = c.post("/webhook", headers={**AUTH, "Content-Type": "application/json"},
                      content=b"{oops")
        assert oops.status_code == 422 and "not JSON" in oops.json()["error"]
        assert c.post("/webhook", headers=AUTH, json={"action": "ANNOTATION_CREATED",
                                                      "project": {"id": 1}}).status_code == 422
    assert round1.history() == []


def test_next_round_starts_once_when_every_image_is_answered(round1: ProjectStore,
                                                             tasks) -> None:
    jobs = Jobs()
    order = {q.uid: k for k, q in enumerate(round1.queue(1))}
    queued = sorted((t for t in tasks if t["data"]["medactive_id"] in order),
                    key=lambda t: order[t["data"]["medactive_id"]])
    with client(round1, jobs) as c:
        for k, task in enumerate(queued[:3]):
            assert "job" not in c.post("/webhook", headers=AUTH,
                                       json=created(30 + k, task, "benign")).json()
        skip = c.post("/webhook", headers=AUTH, json=created(33, queued[3], None, cancelled=True))
        assert "job" not in skip.json()  # a skip is no answer: the round is not done
        assert jobs.budgets == []
        done = c.post("/webhook", headers=AUTH, json=created(34, queued[3], "normal", user=2))
        assert done.json()["job"] == "1" and jobs.budgets == [4]  # the previous round's budget
        round1.finish_job(1, error="failed on purpose")  # a failed round is not retried alone
        again = c.post("/webhook", headers=AUTH, json=created(35, queued[0], "normal", user=3))
        assert "job" not in again.json() and jobs.budgets == [4]
        status = c.get("/status", headers=AUTH).json()
    assert status["round"] == {**status["round"], "queried": 4, "complete": 4, "open": 0,
                               "skipped": 0, "done": True}
    assert status["job"]["status"] == "failed" and status["ledger"]["live"] == 6


def test_no_automatic_round_when_switched_off(round1: ProjectStore, tasks) -> None:
    jobs = Jobs()
    ids = {q.uid for q in round1.queue(1)}
    with client(round1, jobs, auto_next_round=False) as c:
        queued = [t for t in tasks if t["data"]["medactive_id"] in ids]
        for k, task in enumerate(queued[:3]):  # one image of the round left open
            c.post("/webhook", headers=AUTH, json=created(40 + k, task, "benign"))
        assert jobs.budgets == []
        open_round = c.post("/next-round", headers=AUTH, json={"budget": 2})
        assert open_round.status_code == 409  # as the page: an open round is not abandoned
        assert "1 of 4 images still need an answer; answer them first, or send" \
            in open_round.json()["error"]
        assert c.post("/next-round", headers=AUTH, json={"force": "yes"}).status_code == 422
        r = c.post("/next-round", headers=AUTH, json={"budget": 2, "force": True})
        assert r.json() == {"job": "1", "status": "started", "budget": 2}
        assert jobs.forced == [True]
        assert c.post("/next-round", headers=AUTH, json={}).json()["status"] == "already running"
        assert c.post("/next-round", headers=AUTH, json={"budget": 0}).status_code == 422


def test_train_records_everything_withdraws_deleted_and_starts_a_round(round1: ProjectStore,
                                                                       tasks) -> None:
    jobs = Jobs()
    assert [t["data"]["medactive_id"] for t in tasks[:4]] == [q.uid for q in round1.queue(1)]
    with client(round1, jobs, budget=3) as c:
        c.post("/webhook", headers=AUTH, json=created(50, tasks[5], "normal"))  # deleted later
        listed = [{**tasks[0], "annotations": [created(51, tasks[0], "benign")["annotation"]]},
                  {**tasks[1], "annotations": [created(52, tasks[1], "tumour")["annotation"]]},
                  {**tasks[2], "annotations": [created(53, tasks[2], "malignant",
                                                       user=2)["annotation"]]}]
        body = {"annotations": listed, "project": "1.1796305", "label_config": CONFIG,
                "params": {}}
        refused = c.post("/train", headers=AUTH, json=body)
        # the round still has open images: not abandoned (as the page), but nothing is lost
        assert refused.status_code == 409
        assert refused.json()["error"] == (
            "round 1 is still open: 2 of 4 images still need an answer; answer them first, or "
            "send {\"force\": true} to the backend's next-round route to close it without them")
        assert sorted(a[1] for a in answers(round1).values()) == ["benign", "malignant"]
        listed[1]["annotations"] = [created(52, tasks[1], "normal")["annotation"]]
        listed.append({**tasks[3], "annotations": [created(54, tasks[3], "normal")["annotation"]]})
        r = c.post("/train", headers=AUTH, json=body).json()
        assert (r["job"], r["status"], r["budget"], r["problems"]) == ("1", "started", 3, [])
        assert (r["recorded"], r["unchanged"], r["withdrawn"]) == (2, 2, 0)
        assert c.post("/job_status", headers=AUTH, json={"job": "1"}).json()["job_status"] == \
            "started"
        round1.finish_job(1, round_id=1)
        assert c.post("/job_status", headers=AUTH, json={"job": "1"}).json()["job_status"] == \
            "finished"
        assert c.post("/job_status", headers=AUTH, json={"job": "77"}).json() == \
            {"job_status": "removed"}
    assert jobs.budgets == [3] and jobs.forced == [False]
    assert sorted(a[1] for a in answers(round1).values()) == ["benign", "malignant", "normal",
                                                              "normal"]


def test_restart_keeps_everything(round1: ProjectStore, tasks) -> None:
    with client(round1) as c:
        c.post("/webhook", headers=AUTH, json=created(60, tasks[0], "benign"))
    with client(round1) as c:  # a new process over the same project
        r = c.post("/webhook", headers=AUTH, json=created(60, tasks[0], "benign"))
        assert r.json()["unchanged"] == 1
        r = c.post("/webhook", headers=AUTH, json={"action": "ANNOTATIONS_DELETED",
                                                   "annotations": [{"id": 60}],
                                                   "project": {"id": 1}})
        assert r.json()["withdrawn"] == 1
    assert round1.current_answers() == {}


def test_cli_refuses_without_token_and_a_second_backend(round1: ProjectStore, capsys,
                                                        monkeypatch) -> None:
    from medactive.annotate.labelstudio.serve import hold_lock
    from medactive.cli import main

    monkeypatch.delenv("MEDACTIVE_TOKEN", raising=False)
    assert main(["labelstudio", "serve", str(round1.dir)]) == 2
    assert "needs a token of at least 16 characters" in capsys.readouterr().err
    fd = hold_lock(Path(round1.dir))
    try:
        monkeypatch.setenv("MEDACTIVE_TOKEN", TOKEN)
        assert main(["labelstudio", "serve", str(round1.dir), "--port", "0"]) == 2
        assert "another Label Studio backend already serves" in capsys.readouterr().err
    finally:
        import os

        os.close(fd)
    assert main(["labelstudio", "serve", str(round1.dir / "nowhere"), "--port", "0"]) == 2
    assert "no project at" in capsys.readouterr().err
