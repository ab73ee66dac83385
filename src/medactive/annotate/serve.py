"""``medactive project serve``: bind the port, then announce the URL, then serve.

The socket is bound here, before anything is printed, so the printed URL always works (a port in
use or out of range is a one-line error, not a traceback after a misleading URL), and the app
learns the real port (``--port 0`` picks a free one) for its ``Host`` check.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from medactive.annotate.app import create_app
from medactive.annotate.guard import LOOPBACK, WILDCARD
from medactive.errors import ConfigError


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port).

    Raises:
        ConfigError: port outside 0-65535, unknown host name, or the address cannot be bound
            (in use, not this machine's, no permission).
    """
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535 (or 0: any free port), got {port}")
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def display_url(host: str, port: int, token: str | None = None) -> str:
    """The URL to open: a wildcard bind is shown as loopback (``0.0.0.0`` is no address a
    browser can open), an IPv6 address in brackets, the token (if any) as ``?token=``."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve_project(
    project_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    annotator: str | None = None,
    announce: Callable[[str], None] = print,
) -> None:
    """Serve the labelling app until interrupted; ``announce(url)`` once the port is bound.

    Raises:
        ConfigError: a non-loopback ``host`` without a token, a short token, or a port that
            cannot be bound.
        StoreError: no project there, or it cannot be written.
    """
    import uvicorn

    if host not in LOOPBACK and not token:
        raise ConfigError(f"--host {host} exposes the project beyond this machine; "
                          "set a token (MEDACTIVE_TOKEN=... or --token; every request must "
                          "then carry it)")
    sock = bind_socket(host, port)
    try:
        bound_port = int(sock.getsockname()[1])
        web = create_app(project_dir, token=token, annotator=annotator, host=host,
                         port=bound_port)
        announce(display_url(host, bound_port, token)
                 + ("  (listening on all interfaces)" if host in WILDCARD else ""))
        uvicorn.Server(uvicorn.Config(web, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
