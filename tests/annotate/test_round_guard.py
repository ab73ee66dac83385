"""Rounds are guarded (issue 20, item 4): `project query` refuses to abandon the open round's
unanswered images without --force, a closed round is shown as closed, and a bad request (unknown
strategy, budget larger than the pool, bad budget) is refused before any job is recorded.

The project brings its own embeddings (`init --features`), so a query trains no encoder and the
whole cycle runs in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medactive.annotate.next_round import OpenRoundError, check_round_request, next_round_plan
from medactive.annotate.store import ProjectStore
from medactive.cli import main
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import StrategyError


@pytest.fixture
def features_project(tmp_path: Path, image_folder: Path) -> Path:
    """12 images with their own 8-d embeddings; no validation draw (every pick trains)."""
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).standard_normal((12, 8)).astype(np.float32))
    proj = tmp_path / "proj"
    assert main(["project", "init", str(proj), "--images", str(image_folder), "--classes",
                 "a,b", "--image-size", "16", "--features", str(emb)]) == 0
    assert main(["project", "settings", str(proj), "--validation-share", "0"]) == 0
    return proj


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_query_refuses_to_abandon_an_open_round(features_project: Path, capsys) -> None:
    proj = features_project
    assert main(["project", "query", str(proj), "--budget", "4"]) == 0
    with ProjectStore.open(proj) as store:
        queue = store.queue(1)
        store.record(queue[0].image_id, "a", "dr-a", 1)
        store.record(queue[1].image_id, "b", "dr-a", 1)
        store.record(queue[2].image_id, "skip", "dr-a", 1)
    capsys.readouterr()
    assert main(["project", "query", str(proj), "--budget", "3"]) == 2
    err = _one_line(capsys)
    assert "round 1 is still open: 2 of 4 images still need an answer (1 skipped)" in err
    assert "--force" in err
    with ProjectStore.open(proj) as store:
        assert [j.id for j in store.jobs()] == [1] and len(store.rounds()) == 1
    # --force closes round 1 honestly: recorded with round 2, shown as closed in `status`
    assert main(["project", "query", str(proj), "--budget", "3", "--force"]) == 0
    with ProjectStore.open(proj) as store:
        _, second = store.rounds()
        assert second.strategy == DEFAULT_ACQUISITION
        assert second.params["closed_round"] == {"round_id": 1, "queried": 4, "complete": 2,
                                                 "open": 2, "skipped": 1, "partial": 0}
    capsys.readouterr()
    assert main(["project", "status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert DEFAULT_ACQUISITION in out  # never truncated, however long
    lines = {line.split()[0]: line for line in out.splitlines()
             if line.strip() and line.split()[0] in ("1", "2")}
    assert "closed, 2 unanswered" in lines["1"] and DEFAULT_COLDSTART in lines["1"]
    assert "open: 3 to answer" in lines["2"]
    assert "round 1 was closed by round 2 with 2 image(s) unanswered" in out
    assert "pending queries: 3" in out


def test_bad_requests_record_no_job(features_project: Path, capsys) -> None:
    proj = features_project
    for args, message in ((["--strategy", "foo"], "foo"),
                          (["--budget", "13"], "larger than the 12 unanswered images"),
                          (["--budget", "0"], "positive")):
        argv = ["project", "query", str(proj), "--budget", "2", *args]
        assert main(argv) == 2
        assert message in _one_line(capsys)
    with ProjectStore.open(proj) as store:
        assert store.jobs() == [] and store.rounds() == []
        # the same one function serves the page's button
        with pytest.raises(StrategyError, match="unknown"):
            check_round_request(store, 2, "foo")
        with pytest.raises(StrategyError, match="positive whole number"):
            check_round_request(store, True)
        plan = check_round_request(store, 12)
        assert (plan.strategy, plan.cold_start, plan.pool) == (DEFAULT_COLDSTART, True, 12)
        # the defaults pass the registries' own check (the page's button skips it)
        assert check_round_request(store, 12, DEFAULT_COLDSTART) == plan


def test_default_acquisition_is_registered() -> None:
    from medactive.strategies import checked_strategy

    assert checked_strategy(DEFAULT_ACQUISITION).name == DEFAULT_ACQUISITION


def test_open_round_counts(project: ProjectStore) -> None:
    """Double reading: an image with one of two reads is open (waiting for another reader)."""
    from medactive.annotate.settings import update_settings

    ids = [i.id for i in project.images()]
    project.add_round("random", {}, None, [(i, None) for i in ids[:4]])
    update_settings(project, reads_per_image=2)
    project.record(ids[0], "benign", "dr-a", 1)
    project.record(ids[0], "benign", "dr-b", 1)
    project.record(ids[1], "benign", "dr-a", 1)
    project.record(ids[2], "skip", "dr-a", 1)
    with pytest.raises(OpenRoundError) as caught:
        check_round_request(project, 2)
    assert caught.value.progress.describe() == (
        "3 of 4 images still need an answer (1 skipped, 1 waiting for another reader)")
    assert check_round_request(project, 2, force=True).pool == 10
    assert next_round_plan(project).strategy == DEFAULT_ACQUISITION  # labels exist now
    project.remove_images([project.image(ids[0]).uid, project.image(ids[7]).uid], "blur", "x")
    answered = {a.image_id for a in project.reader_answers()}
    brute = [i.id for i in project.images() if i.id not in answered
             and i.id not in project.validation_ids()]
    assert next_round_plan(project).pool == len(brute) == 9  # a removed image is in no pool


def test_answers_for_a_replaced_round_are_refused_in_words(project: ProjectStore) -> None:
    """The API behind the page's message: a stale round, an image of an earlier round, an image
    no round asked for; the reader's words (the image's own name), never a store id."""
    from fastapi.testclient import TestClient

    from medactive.annotate.app import create_app

    ids = [i.id for i in project.images()]
    uid = {i.id: i.uid for i in project.images()}
    project.add_round("random", {}, None, [(i, None) for i in ids[:3]])
    project.add_round("random", {}, None, [(i, None) for i in ids[3:6]])
    client = TestClient(create_app(project.dir), base_url="http://127.0.0.1:8765")
    assert client.get("/").status_code == 200
    body = {"answer": "benign", "annotator": "dr-a"}
    r = client.post("/api/answer", json={**body, "image_id": ids[3], "round_id": 1})
    assert r.status_code == 409 and r.json()["detail"] == (
        "This image belongs to round 1, which was replaced by round 2 — reload to continue")
    r = client.post("/api/answer", json={**body, "image_id": ids[0]})
    assert r.json()["detail"] == (f"{uid[ids[0]]} belongs to round 1, which was replaced by "
                                  "round 2 — reload to continue")
    r = client.post("/api/answer", json={**body, "image_id": ids[9]})
    assert r.json()["detail"] == (f"{uid[ids[9]]} is not part of round 2, the current round "
                                  "— reload to continue")
    r = client.post("/api/undo", json={"annotator": "dr-a", "round_id": 1})
    assert r.status_code == 409 and "replaced by round 2" in r.json()["detail"]
    assert project.history() == []
    r = client.post("/api/answer", json={**body, "image_id": ids[3], "round_id": 2})
    assert r.status_code == 200 and r.json()["answered"] == 1
    assert client.get("/api/job").json() == {"job": None, "round_id": 2}


def test_a_validation_draw_abandoned_by_force_returns_to_the_pool(project: ProjectStore) -> None:
    """A validation image still unanswered when ``--force`` closes its round is not kept out of
    every later round: it is back in the pool, and a strategy's later pick of it trains."""
    from medactive.annotate.query import _label_state

    ids = [i.id for i in project.images()]
    position = {iid: k for k, iid in enumerate(ids)}
    project.add_round("random", {}, None, [(i, None) for i in ids[:4]],
                      purposes=["acquire", "acquire", "validation", "validation"])
    project.record(ids[0], "benign", "dr-a", 1)
    project.record(ids[2], "benign", "dr-a", 1)  # one validation image answered, one not
    assert project.validation_ids() == {ids[2], ids[3]}  # the open round's draw is the sample
    assert check_round_request(project, 2, force=True).pool == 10
    state = _label_state(project, position, len(ids))
    assert state.drawn_validation.tolist() == [k == 2 for k in range(len(ids))]
    assert set(state.candidates().tolist()) == set(range(len(ids))) - {0, 2}
    # round 2 (forced) picks the abandoned draw: a training image from now on
    project.add_round("random", {}, None, [(ids[3], None), (ids[5], None)])
    assert project.validation_ids() == {ids[2]}
    project.record(ids[3], "benign", "dr-a", 2)
    state = _label_state(project, position, len(ids))
    assert state.train[3] == 0 and state.validation[3] == -1 and state.validation[2] == 0
