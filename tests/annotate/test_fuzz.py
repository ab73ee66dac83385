"""Property-based fuzz of the labelling API from its own OpenAPI schema (schemathesis).

Schemathesis turns the app's schema into Hypothesis strategies of requests, both valid
(positive) and schema-violating (negative) ones, for every operation. Each generated request is
sent by one of several senders: the page itself (the served origin, with its session cookie and
a JSON body), or one of the ways another web page or host could try to reach the server (no
cookie, a foreign ``Origin``, a rebound ``Host``, a ``text/plain`` body). The properties:

* no request gets a 5xx;
* the store changes only through a 200 answer, undo, adjudication or next-round request sent by
  the page (the next round's background job is replaced by a stand-in that records a job).

The schema is built in-process (``app.openapi()``); the running server does not serve it (it
has ``openapi_url=None``): the page needs none, and a schema would only tell a visitor how to
talk to a server that holds patient data. The number of examples is bounded and derandomised,
so this runs in seconds and identically on every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode

from medactive.annotate.app import create_app
from medactive.annotate.store import ProjectStore

CLASSES = ["benign", "malignant", "normal"]
BASE = "http://127.0.0.1:8765"
SENDERS = ("page", "no-cookie", "foreign-origin", "cross-site", "rebound-host", "text-plain")
WRITES = ("/api/answer", "/api/undo", "/api/adjudicate", "/api/next-round")


def _fake_job(store: ProjectStore, budget: int, force: bool) -> int:
    """Stands in for the background query (the fuzz must not train models): a job that is
    recorded and finishes at once."""
    job = store.begin_job("query", {"budget": budget}, None)
    store.finish_job(job, error="fuzz stand-in")
    return job


def _snapshot(store: ProjectStore) -> tuple:
    """Everything a request could change: labels, adjudications, jobs."""
    return store.history(), store.adjudication_history(), store.jobs()


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[TestClient, ProjectStore, str, object]]:
    """An app over a project with a round of 8 queried images, its session cookie, its schema."""
    from medactive.annotate.project import init_from_folder

    root = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    (root / "raw").mkdir()
    for k in range(12):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            root / "raw" / f"img{k:02d}.png")
    store = init_from_folder(root / "proj", root / "raw", CLASSES)
    ids = [i.id for i in store.images()]
    for reader, answer in (("dr-a", "benign"), ("dr-b", "normal")):  # one disagreement
        store.record(ids[9], answer, reader)
    store.add_round("random", {}, None, [(i, None) for i in ids[:8]])
    app = create_app(store.dir, start_job=_fake_job)
    client = TestClient(app, base_url=BASE)
    session = client.get("/").cookies["medactive-8765"]
    client.cookies.clear()  # every request below states its own credentials
    schema = schemathesis.openapi.from_dict(app.openapi())
    yield client, store, session, schema
    client.close()
    store.close()


def _send(client: TestClient, case, sender: str, session: str):
    headers = {"Cookie": f"medactive-8765={session}"}
    if sender == "no-cookie":
        headers = {}
    elif sender == "foreign-origin":
        headers["Origin"] = "http://attacker.example"
    elif sender == "cross-site":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif sender == "rebound-host":
        headers["Host"] = "attacker.example:8765"
    headers.update({k: str(v) for k, v in (case.headers or {}).items()
                    if k.lower() not in ("host", "cookie", "origin", "content-type")})
    content = None
    if case.method.upper() == "POST":
        body = case.body if isinstance(case.body, (dict, list, str, int, float, bool)) \
            or case.body is None else {}
        content = json.dumps(body).encode()
        headers["Content-Type"] = "text/plain" if sender == "text-plain" else "application/json"
    response = client.request(case.method, case.formatted_path, params=case.query or None,
                              headers=headers, content=content)
    client.cookies.clear()
    return response


def test_schema_covers_the_api(served) -> None:
    _, _, _, schema = served
    operations = {(op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()}
    assert {("POST", "/api/answer"), ("POST", "/api/undo"), ("GET", "/api/state"),
            ("GET", "/api/image/{image_id}"), ("POST", "/api/adjudicate"),
            ("POST", "/api/next-round"), ("POST", "/api/signin"), ("GET", "/api/gallery"),
            ("GET", "/api/item/{image_id}"), ("GET", "/api/thumb/{image_id}"),
            ("GET", "/api/disagreements"), ("GET", "/api/progress"), ("GET", "/api/job"),
            ("GET", "/api/export/{fmt}")} <= operations


def _cases(store: ProjectStore, schema, mode: GenerationMode) -> st.SearchStrategy:
    """Generated requests for every operation, plus valid answers for the queried images (so
    writes that should succeed do happen)."""
    cases = st.one_of([op.ok().as_strategy(generation_mode=mode)
                       for op in schema.get_all_operations()])
    queued = [q.image_id for q in store.queue(1)]
    valid = st.fixed_dictionaries({"image_id": st.sampled_from(queued),
                                   "answer": st.sampled_from([*CLASSES, "unsure", "skip"]),
                                   "annotator": st.sampled_from(["dr-a", "=HYPERLINK()"])})
    answer_op = schema["/api/answer"]["POST"]
    disputed = store.images()[9].id
    adjudication = st.fixed_dictionaries({"image_id": st.just(disputed),
                                          "answer": st.sampled_from([*CLASSES, "unsure"]),
                                          "annotator": st.just("dr-c")})
    adjudicate_op = schema["/api/adjudicate"]["POST"]
    next_round = st.fixed_dictionaries({"budget": st.integers(1, 5), "annotator": st.just("x")})
    next_op = schema["/api/next-round"]["POST"]
    return st.one_of(cases, valid.flatmap(lambda b: answer_op.as_strategy(body=b)),
                     adjudication.flatmap(lambda b: adjudicate_op.as_strategy(body=b)),
                     next_round.flatmap(lambda b: next_op.as_strategy(body=b)))


FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_from_the_page(served, mode: GenerationMode) -> None:
    """The served origin itself: never a 5xx; the store changes only by a 200 answer/undo."""
    client, store, session, schema = served
    writes = 0

    @FUZZ
    @given(case=_cases(store, schema, mode))
    def check(case) -> None:
        nonlocal writes
        before = _snapshot(store)
        response = _send(client, case, "page", session)
        assert response.status_code < 500, (case.method, case.formatted_path, case.body,
                                            response.text)
        if _snapshot(store) != before:
            writes += 1
            assert response.status_code == 200 and case.method.upper() == "POST"
            assert case.path in WRITES

    check()
    if mode is GenerationMode.POSITIVE:
        assert writes > 0  # the property was exercised, not vacuously true
    with ProjectStore.open(store.dir) as fresh:
        assert _snapshot(fresh) == _snapshot(store)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_from_elsewhere(served, mode: GenerationMode) -> None:
    """Every other sender: never a 5xx, never a change, every write refused."""
    client, store, session, schema = served

    @FUZZ
    @given(case=_cases(store, schema, mode), sender=st.sampled_from(SENDERS[1:]))
    def check(case, sender: str) -> None:
        before = _snapshot(store)
        response = _send(client, case, sender, session)
        assert response.status_code < 500, (sender, case.method, case.formatted_path)
        assert _snapshot(store) == before, (sender, case.body)
        if case.method.upper() == "POST":
            assert response.status_code in (401, 403, 415, 421), (sender, response.status_code)

    check()
