"""``medactive labelstudio serve``: bind the port, then announce, then serve the ML backend.

As ``project serve`` (:mod:`medactive.annotate.serve`): the socket is bound before anything is
printed, so the printed URL always works and the app learns the real port for its ``Host`` check.
One backend per project: a second one on the same project is refused (a lock file held while it
runs), since two would race on the ledger.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path

from medactive.annotate.database import db_path
from medactive.annotate.guard import LOOPBACK
from medactive.annotate.labelstudio.app import create_backend
from medactive.annotate.labelstudio.backend import BackendConfig
from medactive.annotate.serve import bind_socket, display_url
from medactive.errors import StoreError

LOCK_NAME = "labelstudio.lock"


def hold_lock(project_dir: Path) -> int:
    """Take ``DIR/labelstudio.lock`` for this process; returns the open descriptor.

    Raises:
        StoreError: no project there, or another backend holds it.
    """
    if not db_path(project_dir).is_file():
        raise StoreError(f"no project at {project_dir} ({db_path(project_dir)} not found; run "
                         "`medactive project init` first)")
    fd = os.open(Path(project_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"another Label Studio backend already serves {project_dir}; stop it "
                         "first (one backend per project)") from None
    return fd


def serve_backend(project_dir: str | Path, config: BackendConfig,
                  announce: Callable[[str], None] = print) -> None:
    """Serve the backend until interrupted; ``announce(url)`` once the port is bound.

    Raises:
        ConfigError: a short token, a bad budget, or a port that cannot be bound.
        StoreError: no project there, it cannot be written, or another backend serves it.
    """
    import uvicorn

    config.check()
    lock = hold_lock(Path(project_dir))
    sock = None
    try:
        sock = bind_socket(config.host, config.port)
        config.port = int(sock.getsockname()[1])
        app = create_backend(project_dir, config)
        url = display_url(config.host, config.port).rstrip("/")
        announce(url + ("" if config.host in LOOPBACK else "  (listening beyond this machine)"))
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        if sock is not None:
            sock.close()
        os.close(lock)


__all__ = ["hold_lock", "serve_backend"]
