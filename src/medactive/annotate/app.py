"""The labelling web app: FastAPI + one static page (``static/``), no build step.

Security model (a clinician's laptop or a hospital LAN; docs/labelling.md, "Security"):
    * **only the served address**: the ``Host`` header must name the address the server was
      started on (for a loopback server: ``127.0.0.1``, ``localhost`` or ``[::1]`` with its port),
      which defeats DNS rebinding; a write's ``Origin`` (and ``Sec-Fetch-Site``) must be this
      server's own;
    * **a session per launch**: every request but the page itself needs the per-launch session
      cookie (random, ``HttpOnly``, ``SameSite=Strict``) that loading the page sets, so no other
      web site can act through the clinician's browser. With ``--token`` the page is only given
      to a request proving the token (``?token=`` once, then a redirect drops it from the
      address bar); scripts may send ``X-Token`` instead of the cookie. Tokens are compared in
      constant time and never appear in image URLs;
    * **JSON writes only**: ``POST`` bodies must be ``application/json`` (a cross-site HTML form
      or ``no-cors`` fetch cannot send that), at most :data:`MAX_BODY` bytes, and validated;
    * **images by id**: the file path comes from the database, never from the client, and the
      file's hash must still match what was registered; error bodies name image ids, never
      server paths (those are logged);
    * **headers**: a Content-Security-Policy without inline script, no framing, no referrer.

State lives only in the store: every answer is its own committed transaction before the
response returns, so the page (and a restarted server) always resumes at the first image of the
latest round that has neither an answer nor a skip.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medactive.annotate.store import ProjectStore
from medactive.data.decode import DecodeSettings, render_png
from medactive.errors import ConfigError, MedactiveError, StoreError, StoreReplacedError

MAX_BODY = 4096
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id can name no image
MIN_TOKEN_LENGTH = 16
NAME_PATTERN = r"^[^\x00-\x1f]{1,80}$"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# an absolute POSIX path in a message (not the tail of a relative id such as "ward3/img1.png")
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s'\",;:()\[\]]+)")

log = logging.getLogger("medactive.annotate")


class AnswerIn(BaseModel):
    """Body of ``POST /api/answer``: one answer for one queried image."""

    model_config = ConfigDict(extra="forbid")
    image_id: int = Field(ge=1, le=MAX_ID)
    answer: str = Field(min_length=1, max_length=200)
    annotator: str = Field(pattern=NAME_PATTERN)


class UndoIn(BaseModel):
    """Body of ``POST /api/undo``."""

    model_config = ConfigDict(extra="forbid")
    annotator: str = Field(pattern=NAME_PATTERN)


def _static(name: str) -> str:
    return resources.files("medactive.annotate").joinpath(f"static/{name}").read_text("utf-8")


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for an endpoint that reads and validates its body itself."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


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


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The ``Host`` header values a server bound to ``host:port`` answers, lower-case.

    None for a wildcard bind (``0.0.0.0``, ``::``): the machine's names are not known, so the
    token (required off loopback) and the session cookie are the defences there.
    """
    if host in WILDCARD:
        return None
    names = set(LOOPBACK) if host in LOOPBACK else {host}
    out = set()
    for name in names:
        bracketed = f"[{name}]" if ":" in name else name
        out.add(f"{bracketed}:{port}".lower())
        if port == 80:
            out.add(bracketed.lower())
    return out


def redact_paths(text: str) -> str:
    """``text`` with every absolute path replaced by ``<path>`` (error bodies never show where
    the server keeps its files)."""
    return _ABSOLUTE_PATH.sub("<path>", text)


def create_app(
    project_dir: str | Path,
    token: str | None = None,
    annotator: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
) -> FastAPI:
    """Build the app over the project in ``project_dir`` (opened once, kept open).

    Args:
        token: shared secret (at least :data:`MIN_TOKEN_LENGTH` characters) required to get the
            page; None on a loopback server, where the per-launch session cookie alone guards.
        host, port: the address the server is bound to; requests naming another ``Host`` are
            refused (DNS rebinding), and the cookie is named after the port.

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
    hosts = allowed_hosts(host, port)
    session = secrets.token_urlsafe(32)  # per launch: a restart invalidates old cookies
    cookie = f"medactive-{port}"  # one per port: two projects served at once keep theirs

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()  # committed answers are already on disk; this only releases the file

    # The schema is not served (openapi_url=None): the page needs none, and the tests build it
    # with app.openapi() to fuzz the API (tests/annotate/test_fuzz.py).
    app = FastAPI(title="medactive labelling", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.store = store

    def has_session(request: Request) -> bool:
        given = request.cookies.get(cookie, "")
        if given and hmac.compare_digest(given.encode(), session.encode()):
            return True
        header = request.headers.get("x-token", "")
        return token is not None and bool(header) and hmac.compare_digest(
            header.encode(), token.encode())

    def refusal(request: Request) -> tuple[int, str] | None:
        """Why ``request`` is refused, or None (checks that need no body)."""
        host_header = request.headers.get("host", "").lower()
        if hosts is not None and host_header not in hosts:
            return 421, "unexpected Host header: open the address the server printed"
        if request.method not in ("GET", "HEAD"):
            site = request.headers.get("sec-fetch-site")
            if site is not None and site not in ("same-origin", "none"):
                return 403, "cross-site request refused"
            origin = request.headers.get("origin")
            if origin is not None and origin.lower() != f"http://{host_header}":
                return 403, "cross-origin request refused"
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media != "application/json":
                return 415, "writes must be application/json"
        if request.url.path == "/" and request.method in ("GET", "HEAD"):
            given = request.query_params.get("token", "")
            if token is None or has_session(request) or (
                    given and hmac.compare_digest(given.encode(), token.encode())):
                return None
            return 401, "missing or wrong token: open the URL the server printed"
        if not has_session(request):
            return 401, ("missing or wrong session: (re)load the page first"
                         if token is None else "missing or wrong token or session")
        return None

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        refused = refusal(request)
        if refused is not None:
            response: Response = JSONResponse({"detail": refused[1]}, status_code=refused[0])
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        status = 503 if isinstance(exc, StoreReplacedError) else 409
        return JSONResponse({"detail": redact_paths(str(exc))}, status_code=status)

    def state() -> dict[str, Any]:
        latest = store.latest_round()
        queue = store.queue(latest.id) if latest else []
        current = next((q for q in queue if not q.done), None)
        last = next((q for q in reversed(queue) if q.done), None)
        return {
            "project": project_name,
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
    def index(request: Request) -> Response:
        if token is not None and "token" in request.query_params:
            # the token leaves the address bar (and history) at once; the cookie carries on
            response: Response = RedirectResponse("/", status_code=303)
        else:
            response = HTMLResponse(_static("index.html"))
        response.set_cookie(cookie, session, httponly=True, samesite="strict", path="/")
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
    def get_state() -> dict[str, Any]:
        return state()

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

    @app.post("/api/answer", openapi_extra=_json_body(AnswerIn))
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

    @app.post("/api/undo", openapi_extra=_json_body(UndoIn))
    async def undo(request: Request) -> dict[str, Any]:
        body: UndoIn = await _read_json(request, UndoIn)
        latest = store.latest_round()
        if latest is None or await run_in_threadpool(store.undo, latest.id, body.annotator) \
                is None:
            raise HTTPException(409, "nothing to undo in this round")
        return state()

    return app
