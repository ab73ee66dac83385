"""The labelling web app: FastAPI + one static page (``static/``), no build step.

The security boundary (Host check, per-launch session, JSON-only writes, body limit, headers)
lives in :mod:`medactive.annotate.guard`; the routes here serve images by id (the file path
comes from the database, never from the client) and name image ids, never server paths, in
error bodies.

State lives only in the store: every answer is its own committed transaction before the
response returns, so the page (and a restarted server) always resumes at the first image of the
latest round that has neither an answer nor a skip.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from medactive.annotate.guard import (
    MAX_ID,
    MIN_TOKEN_LENGTH,
    NAME_PATTERN,
    RequestGuard,
    json_body,
    read_json,
    redact_paths,
)
from medactive.annotate.jobs import spawn_query_job
from medactive.annotate.review_api import (
    add_review_routes,
    not_in_round,
    page_state,
    replaced_round,
)
from medactive.annotate.store import ProjectStore
from medactive.data.decode import DecodeSettings, render_png
from medactive.errors import ConfigError, MedactiveError, StoreError, StoreReplacedError

STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}

log = logging.getLogger("medactive.annotate")


class AnswerIn(BaseModel):
    """Body of ``POST /api/answer``: one answer for one queried image. ``round_id``: the round
    the page shows (the page always sends it); an answer from the page of a round that was
    replaced since is refused, with a message saying so."""

    model_config = ConfigDict(extra="forbid")
    image_id: int = Field(ge=1, le=MAX_ID)
    answer: str = Field(min_length=1, max_length=200)
    annotator: str = Field(pattern=NAME_PATTERN)
    round_id: int | None = Field(None, ge=1, le=MAX_ID)


class UndoIn(BaseModel):
    """Body of ``POST /api/undo`` (``round_id`` as in :class:`AnswerIn`)."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(pattern=NAME_PATTERN)
    round_id: int | None = Field(None, ge=1, le=MAX_ID)


def _static(name: str) -> str:
    return resources.files("medactive.annotate").joinpath(f"static/{name}").read_text("utf-8")


def create_app(
    project_dir: str | Path,
    token: str | None = None,
    annotator: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    start_job: Callable[[ProjectStore, int, bool], int] = spawn_query_job,
) -> FastAPI:
    """Build the app over the project in ``project_dir`` (opened once, kept open).

    Args:
        token: shared secret (at least :data:`MIN_TOKEN_LENGTH` characters) required to get the
            page; None on a loopback server, where the per-launch session cookie alone guards.
        host, port: the address the server is bound to; requests naming another ``Host`` are
            refused (DNS rebinding), and the cookie is named after the port.
        start_job: ``(store, budget, force) -> job id``, what the "next round" button runs
            once the request passed :func:`~medactive.annotate.next_round.check_round_request`
            (default: ``medactive project query`` in a background process; tests pass a
            stand-in).

    Raises:
        ConfigError: a token shorter than :data:`MIN_TOKEN_LENGTH`.
        StoreError: no project there, or it cannot be written (checked now, not at the first
            answer).
    """
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"the token must be at least {MIN_TOKEN_LENGTH} characters "
                          "(e.g. `openssl rand -hex 16`)")
    store = ProjectStore.open(project_dir)
    try:
        store.check_writable()
    except BaseException:
        store.close()
        raise
    classes = store.classes()
    # decoded as `init` checked them and `query` trains on them
    settings = DecodeSettings.from_meta(store.meta().get("decode"))
    project_name = Path(project_dir).resolve().name
    guard = RequestGuard(token, host, port)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()  # committed answers are already on disk; this only releases the file

    # The schema is not served (openapi_url=None): the page needs none, and the tests build it
    # with app.openapi() to fuzz the API (tests/annotate/test_fuzz.py).
    app = FastAPI(title="medactive labelling", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store

    guard.install(app)

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        status = 503 if isinstance(exc, StoreReplacedError) else 409
        return JSONResponse({"detail": redact_paths(str(exc))}, status_code=status)

    def reader_for(request: Request, claimed: str | None) -> str | None:
        """Who is acting: with reader tokens, the signed-in reader (who may act only as
        themself); without, the name the page sends."""
        if not store.readers():
            return claimed
        name = guard.signed_reader(request)
        if name is None:
            raise HTTPException(401, "sign in as a reader first (name and personal token)")
        if claimed is not None and claimed != name:
            raise HTTPException(403, f"signed in as {name!r}: answers are recorded under your "
                                     "own name only")
        return name

    def sign_in(name: str) -> Response:
        response = JSONResponse(state(name))
        guard.set_reader_cookie(response, name)
        return response

    def state(reader: str | None = None) -> dict[str, Any]:
        return page_state(store, project_name, classes, annotator, reader,
                          bool(store.readers()), redact_paths)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> Response:
        if token is not None and "token" in request.query_params:
            # the token leaves the address bar (and history) at once; the cookie carries on
            response: Response = RedirectResponse("/", status_code=303)
        else:
            response = HTMLResponse(_static("index.html"))
        guard.set_session_cookie(response)
        return response

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; answering spares the console a 404

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise HTTPException(404, "not found")
        return Response(_static(name), media_type=STATIC[name])

    @app.get("/api/state")
    def get_state(request: Request,
                  reader: str | None = Query(None, pattern=NAME_PATTERN)) -> dict[str, Any]:
        if store.readers():
            return state(guard.signed_reader(request))
        return state(reader)

    @app.get("/api/image/{image_id}")
    def image(image_id: int = PathParam(le=MAX_ID)) -> Response:
        row = store.image(image_id)
        if row is None:
            raise HTTPException(404, f"unknown image id {image_id}")
        if not Path(row.path).is_file():
            log.warning("image %s: %s is missing", row.uid, row.path)
            raise HTTPException(410, f"image {row.uid} is no longer at its registered path")
        try:
            # one read both verifies the registered hash and decodes: what is shown is what
            # was registered, never a file swapped in afterwards
            data = render_png(row.path, row.sha256, settings)
        except MedactiveError as exc:
            log.warning("image %s: %s", row.uid, exc)
            message = redact_paths(str(exc).replace(row.path, f"image {row.uid}"))
            raise HTTPException(409, message) from None
        return Response(data, media_type="image/png")

    @app.post("/api/answer", openapi_extra=json_body(AnswerIn))
    async def answer(request: Request) -> dict[str, Any]:
        body: AnswerIn = await read_json(request, AnswerIn)
        reader_for(request, body.annotator)
        if body.answer not in classes and body.answer not in ("unsure", "skip"):
            raise HTTPException(422, f"unknown class {body.answer!r}; classes: {classes}")
        latest = store.latest_round()
        if latest is None:
            raise HTTPException(409, "no round yet: start one with Next round (or run "
                                     "`medactive project query`)")
        if store.image(body.image_id) is None:
            raise HTTPException(404, f"unknown image id {body.image_id}")
        if body.round_id is not None and body.round_id != latest.id:
            raise HTTPException(409, replaced_round(body.round_id, latest.id))
        item = next((q for q in store.queue(latest.id) if q.image_id == body.image_id), None)
        if item is None:
            raise HTTPException(409, not_in_round(store, body.image_id, latest.id))
        await run_in_threadpool(store.record, body.image_id, body.answer, body.annotator,
                                latest.id)
        return state(body.annotator)

    @app.post("/api/undo", openapi_extra=json_body(UndoIn))
    async def undo(request: Request) -> dict[str, Any]:
        body: UndoIn = await read_json(request, UndoIn)
        reader_for(request, body.annotator)
        latest = store.latest_round()
        if latest is not None and body.round_id is not None and body.round_id != latest.id:
            raise HTTPException(409, f"round {body.round_id} was replaced by round {latest.id}"
                                     " — reload to continue")
        if latest is None or await run_in_threadpool(store.undo, latest.id, body.annotator) \
                is None:
            raise HTTPException(409, "nothing of yours to undo in this round")
        return state(body.annotator)

    add_review_routes(app, store, classes, read_json, json_body, reader_for, sign_in, state,
                      start_job, redact_paths, settings)

    return app
