"""medactive as a Label Studio ML backend: the HTTP protocol Label Studio speaks to a model
server, served by medactive's own FastAPI app.

Which protocol: the one Label Studio 1.23 sends (``label_studio/ml/api_connector.py``) and the
current ``label-studio-ml-backend`` repository serves (``label_studio_ml/api.py``, 2.0.x). The
PyPI package ``label-studio-ml`` is stale (1.0.9, pinning Flask 1.1.2 and Werkzeug 2.0.2), and
the repository's SDK needs Flask and a git-only ``label-studio-sdk``; the protocol is six small
JSON routes, so medactive serves them itself, behind its own guard, in the same process model as
``project serve``:

* ``GET /health`` (and ``GET /``): ``{"status": "UP", ...}``;
* ``POST /setup`` ``{"project": "<id>.<ts>", "schema": <labelling config>, "hostname",
  "access_token", ...}`` -> ``{"model_version"}``: checks the config fits the project's classes
  (a mismatch is an error Label Studio shows on the model card);
* ``POST /predict`` ``{"tasks": [...], "label_config", "project"}`` -> ``{"results": [...]}``:
  :mod:`~medactive.annotate.labelstudio.predict` (medactive's order as the prediction score);
* ``POST /webhook`` ``{"action": ..., ...}``: ``ANNOTATION_CREATED``, ``ANNOTATIONS_CREATED``,
  ``ANNOTATION_UPDATED``, ``ANNOTATIONS_DELETED`` are recorded in the project store
  (:class:`~medactive.annotate.labelstudio.recorder.Recorder`, through the page's own
  ``ProjectStore.record``), ``START_TRAINING`` starts the next round; other actions are ignored;
* ``POST /train`` (Label Studio's *Start Training* button: every annotated task): records them
  all, withdraws annotations deleted meanwhile, then starts the next round -> ``{"job"}``;
  ``POST /job_status`` ``{"job"}`` -> ``{"job_status"}``; ``GET /versions``; ``GET /metrics``;
* medactive's own: ``GET /status`` (the round, the job, the ledger, the Label Studio sync) and
  ``POST /next-round`` ``{"budget": n, "force": false}``.

**Security.** Every request must carry the token: as the password of HTTP Basic auth (what Label
Studio's *Basic Authentication* sends on every ML call; any user name), or as
``Authorization: Token|Bearer <token>`` or ``X-Token`` (what a webhook's headers can carry). A
missing or wrong token is refused with 401 and changes nothing. The ``Host`` header must name the
bound address (DNS rebinding), writes must be JSON, bodies are capped at :data:`MAX_BODY`, and
error bodies carry no server paths.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from medactive.annotate.guard import SECURITY_HEADERS, allowed_hosts, redact_paths
from medactive.annotate.jobs import spawn_query_job
from medactive.annotate.labelstudio.backend import Backend, BackendConfig
from medactive.annotate.labelstudio.predict import model_version
from medactive.annotate.labelstudio.rounds import StartJob
from medactive.annotate.labelstudio.tasks import LabelStudioError
from medactive.errors import MedactiveError, StoreError, StoreReplacedError

log = logging.getLogger("medactive.labelstudio")
MAX_BODY = 256 * 2**20  # a /predict of 100,000 tasks is ~100 MB


def token_of(request: Request) -> str | None:
    """The token a request carries: the Basic-auth password, ``Token``/``Bearer`` credentials,
    or ``X-Token``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    if scheme.lower() in ("token", "bearer"):
        return value.strip()
    return request.headers.get("x-token")


def _refusal(request: Request, hosts: set[str] | None, token: str) -> tuple[int, str] | None:
    """Why a request is refused before any route runs (see the module docstring), or None."""
    if hosts is not None and request.headers.get("host", "").lower() not in hosts:
        return 421, "unexpected Host header: use the address the backend printed"
    given = token_of(request)
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        return 401, "missing or wrong token (Label Studio: Basic Authentication password)"
    if request.method not in ("GET", "HEAD"):
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, "requests must be application/json"
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            return 413, f"request body larger than {MAX_BODY} bytes"
    return None


async def _payload(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise LabelStudioError(f"request body larger than {MAX_BODY} bytes")
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise LabelStudioError(f"the request body is not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise LabelStudioError("the request body must be a JSON object")
    return data


def create_backend(project_dir: str | Path, config: BackendConfig,
                   start_job: StartJob = spawn_query_job) -> FastAPI:
    """The backend app over the project in ``project_dir`` (opened once, kept open; the
    watcher runs while the app is served).

    Raises:
        ConfigError: a short token or a bad budget.
        StoreError: no project there, or it (or its ledger) cannot be written.
    """
    backend = Backend(project_dir, config, start_job)
    hosts = allowed_hosts(config.host, config.port)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        backend.start()
        yield
        backend.close()

    app = FastAPI(title="medactive Label Studio ML backend", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    app.state.backend = backend

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        refused = _refusal(request, hosts, config.token)
        if refused is not None:
            headers = {"WWW-Authenticate": 'Basic realm="medactive"'} if refused[0] == 401 else {}
            response: Response = JSONResponse({"detail": refused[1]}, status_code=refused[0],
                                              headers=headers)
        else:
            response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @app.exception_handler(LabelStudioError)
    async def bad_input(_: Request, exc: LabelStudioError) -> JSONResponse:
        log.warning("refused: %s", exc)
        return JSONResponse({"detail": redact_paths(str(exc)), "error": redact_paths(str(exc))},
                            status_code=422)

    @app.exception_handler(MedactiveError)
    async def conflict(_: Request, exc: MedactiveError) -> JSONResponse:
        # no budget, an open round without force, a request the query's check refuses
        message = redact_paths(str(exc))
        return JSONResponse({"detail": message, "error": message}, status_code=409)

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        log.error("store error: %s", exc)
        status = 503 if isinstance(exc, StoreReplacedError) else 409
        return JSONResponse({"detail": redact_paths(str(exc)), "error": redact_paths(str(exc))},
                            status_code=status)

    def post(path: str, method: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        async def route(request: Request) -> dict[str, Any]:
            payload = await _payload(request)
            return await run_in_threadpool(method, payload)

        app.add_api_route(path, route, methods=["POST"])

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        return backend.health()

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        return {}

    @app.get("/versions")
    def versions() -> dict[str, Any]:
        return {"versions": [model_version(backend.store)]}

    @app.get("/status")
    def status() -> dict[str, Any]:
        return backend.status()

    post("/setup", backend.setup)
    post("/predict", backend.predict)
    post("/webhook", backend.webhook)
    post("/train", backend.train)
    post("/job_status", backend.job_status)
    post("/next-round", lambda body: backend.next_round(_budget_of(body), _force_of(body)))
    return app


def _force_of(body: Mapping[str, Any]) -> bool:
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise LabelStudioError(f"'force' must be true or false, got {force!r}")
    return force


def _budget_of(body: Mapping[str, Any]) -> int | None:
    budget = body.get("budget")
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise LabelStudioError(f"'budget' must be a positive integer, got {budget!r}")
    return budget
