"""The labelling app's guard: which requests may reach a route at all, and what they may carry.

Kept apart from :mod:`medactive.annotate.app` (the routes) so the whole security boundary reads
in one place: every check a request passes before any handler runs, the session and reader
cookies, the body limit and the path-free error text.

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
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import secrets
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError

MAX_BODY = 4096
# request-field limits shared by the answering and the review routes
MAX_ID = 2**63 - 1  # SQLite's largest integer: a larger id can name no image
NAME_PATTERN = r"^[^\x00-\x1f]{1,80}$"  # a reader's name: printable, at most 80 characters
MIN_TOKEN_LENGTH = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")
WILDCARD = ("0.0.0.0", "::", "")
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


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for an endpoint that reads and validates its body itself."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


async def read_json(request: Request, model: type[BaseModel]) -> Any:
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


class RequestGuard:
    """The per-launch session of one server and the checks made before any route runs.

    Args:
        token: shared secret that gets the page (None: the session cookie alone guards).
        host, port: the address the server is bound to (the accepted ``Host`` values, and the
            cookies' names, one per port so two projects served at once keep theirs).
    """

    def __init__(self, token: str | None, host: str, port: int) -> None:
        self.token = token
        self.hosts = allowed_hosts(host, port)
        self.session = secrets.token_urlsafe(32)  # per launch: a restart invalidates old cookies
        self.cookie = f"medactive-{port}"
        self.reader_cookie = f"{self.cookie}-reader"

    def install(self, app: FastAPI) -> None:
        """Refuse what :meth:`refusal` refuses, and add :data:`SECURITY_HEADERS` to every
        response of ``app``."""

        @app.middleware("http")
        async def guard(request: Request, call_next: Any) -> Response:
            refused = self.refusal(request)
            if refused is not None:
                response: Response = JSONResponse({"detail": refused[1]},
                                                  status_code=refused[0])
            else:
                response = await call_next(request)
            response.headers.update(SECURITY_HEADERS)
            return response

    def has_session(self, request: Request) -> bool:
        """Whether ``request`` carries this launch's session cookie (or the token as
        ``X-Token``)."""
        given = request.cookies.get(self.cookie, "")
        if given and hmac.compare_digest(given.encode(), self.session.encode()):
            return True
        header = request.headers.get("x-token", "")
        return self.token is not None and bool(header) and hmac.compare_digest(
            header.encode(), self.token.encode())

    def refusal(self, request: Request) -> tuple[int, str] | None:
        """Why ``request`` is refused, or None (checks that need no body)."""
        token = self.token
        host_header = request.headers.get("host", "").lower()
        if self.hosts is not None and host_header not in self.hosts:
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
            if token is None or self.has_session(request) or (
                    given and hmac.compare_digest(given.encode(), token.encode())):
                return None
            return 401, "missing or wrong token: open the URL the server printed"
        if not self.has_session(request):
            return 401, ("missing or wrong session: (re)load the page first"
                         if token is None else "missing or wrong token or session")
        return None

    def set_session_cookie(self, response: Response) -> None:
        """Give the browser that loads the page this launch's session."""
        response.set_cookie(self.cookie, self.session, httponly=True, samesite="strict",
                            path="/")

    def _reader_signature(self, name: str) -> str:
        return hmac.new(self.session.encode(), b"reader:" + name.encode(), "sha256").hexdigest()

    def set_reader_cookie(self, response: Response, name: str) -> None:
        """Remember in this browser (for this launch) that reader ``name`` signed in."""
        encoded = base64.urlsafe_b64encode(name.encode()).decode()
        response.set_cookie(self.reader_cookie, f"{encoded}.{self._reader_signature(name)}",
                            httponly=True, samesite="strict", path="/")

    def signed_reader(self, request: Request) -> str | None:
        """The reader who signed in with their token in this browser (this launch), or None."""
        value = request.cookies.get(self.reader_cookie, "")
        encoded, _, signature = value.partition(".")
        try:
            name = base64.urlsafe_b64decode(encoded.encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        if name and hmac.compare_digest(signature.encode(),
                                        self._reader_signature(name).encode()):
            return name
        return None
