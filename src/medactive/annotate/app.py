"""The labelling web app: FastAPI + one static page (``static/index.html``), no build step.

Security model (a clinician's laptop or a hospital LAN):
    * with a token, every request (page, API, images) must carry it (``X-Token`` header or
      ``?token=``), compared in constant time;
    * images are served only by their integer store id; the file path comes from the database,
      never from the client, and the file's hash must still match what was registered;
    * request bodies are tiny JSON objects: anything over :data:`MAX_BODY` bytes is refused (413),
      malformed JSON or fields are 422, an unknown image or class is 404/422, and none of these
      touch the store.

State lives only in the store: every answer is its own committed transaction before the
response returns, so the page (and a restarted server) always resumes at the first image of the
latest round that has neither an answer nor a skip.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medactive.annotate.store import ProjectStore
from medactive.data.decode import DecodeSettings, render_png
from medactive.errors import MedactiveError, StoreError

MAX_BODY = 4096
NAME_PATTERN = r"^[^\x00-\x1f]{1,80}$"


class AnswerIn(BaseModel):
    """Body of ``POST /api/answer``: one answer for one queried image."""

    model_config = ConfigDict(extra="forbid")
    image_id: int = Field(ge=1)
    answer: str = Field(min_length=1, max_length=200)
    annotator: str = Field(pattern=NAME_PATTERN)


class UndoIn(BaseModel):
    """Body of ``POST /api/undo``."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(pattern=NAME_PATTERN)


def _page() -> str:
    return resources.files("medactive.annotate").joinpath("static/index.html").read_text("utf-8")


async def _read_json(request: Request, model: type[BaseModel]) -> Any:
    """Read at most ``MAX_BODY`` bytes and validate them; 413 / 422 otherwise."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise HTTPException(413, f"request body larger than {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:  # chunked uploads carry no Content-Length
            raise HTTPException(413, f"request body larger than {MAX_BODY} bytes")
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{"loc": e["loc"], "msg": e["msg"]} for e in exc.errors()]
        raise HTTPException(422, json.dumps(errors, default=str)) from None


def create_app(
    project_dir: str | Path, token: str | None = None, annotator: str | None = None
) -> FastAPI:
    """Build the app over the project in ``project_dir`` (opened once, kept open)."""
    store = ProjectStore.open(project_dir)
    classes = store.classes()
    # decoded as `init` checked them and `query` trains on them
    settings = DecodeSettings.from_meta(store.meta().get("decode"))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()  # committed answers are already on disk; this only releases the file

    app = FastAPI(title="medactive labelling", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store

    @app.middleware("http")
    async def check_token(request: Request, call_next: Any) -> Response:
        if token is not None:
            given = request.headers.get("x-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
        response = await call_next(request)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    def state() -> dict[str, Any]:
        latest = store.latest_round()
        queue = store.queue(latest.id) if latest else []
        current = next((q for q in queue if not q.done), None)
        last = next((q for q in reversed(queue) if q.done), None)
        return {
            "project": str(Path(project_dir).resolve().name),
            "classes": classes,
            "annotator": annotator,
            "round": None if latest is None else {"id": latest.id, "strategy": latest.strategy},
            "total": len(queue),
            "done": sum(q.done for q in queue),
            "current": None if current is None else {
                "image_id": current.image_id, "uid": current.uid, "rank": current.rank,
                "score": current.score},
            "can_undo": last is not None,
        }

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(_page())

    @app.get("/api/state")
    def get_state() -> dict[str, Any]:
        return state()

    @app.get("/api/image/{image_id}")
    def image(image_id: int) -> Response:
        row = store.image(image_id)
        if row is None:
            raise HTTPException(404, f"unknown image id {image_id}")
        if not Path(row.path).is_file():
            raise HTTPException(410, f"image {row.uid} is no longer at its registered path")
        try:
            # one read both verifies the registered hash and decodes: what is shown is what
            # was registered, never a file swapped in afterwards
            data = render_png(row.path, row.sha256, settings)
        except MedactiveError as exc:
            raise HTTPException(409, f"image {row.uid}: {exc}") from None
        return Response(data, media_type="image/png")

    @app.post("/api/answer")
    async def answer(request: Request) -> dict[str, Any]:
        body: AnswerIn = await _read_json(request, AnswerIn)
        if body.answer not in classes and body.answer not in ("unsure", "skip"):
            raise HTTPException(422, f"unknown class {body.answer!r}; classes: {classes}")
        latest = store.latest_round()
        if latest is None:
            raise HTTPException(409, "no round yet: run `medactive project query` first")
        if store.image(body.image_id) is None:
            raise HTTPException(404, f"unknown image id {body.image_id}")
        item = next((q for q in store.queue(latest.id) if q.image_id == body.image_id), None)
        if item is None:
            raise HTTPException(409, f"image {body.image_id} is not queried in round {latest.id}")
        await run_in_threadpool(store.record, body.image_id, body.answer, body.annotator,
                                latest.id)
        return state()

    @app.post("/api/undo")
    async def undo(request: Request) -> dict[str, Any]:
        body: UndoIn = await _read_json(request, UndoIn)
        latest = store.latest_round()
        if latest is None or await run_in_threadpool(store.undo, latest.id, body.annotator) \
                is None:
            raise HTTPException(409, "nothing to undo in this round")
        return state()

    return app
