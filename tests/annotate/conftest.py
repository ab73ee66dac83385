"""Fixtures for the labelling-project tests: tiny projects built from generated PNGs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

CLASSES = ["benign", "malignant", "normal"]


def make_image_folder(folder: Path, n: int = 12, size: int = 32, seed: int = 0) -> Path:
    """Write ``n`` random RGB PNGs (two sub-folders, to exercise relative ids)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        sub = folder / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(sub / f"img{i:03d}.png")
    return folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder of 12 random PNGs."""
    return make_image_folder(tmp_path / "raw")


@pytest.fixture
def project(tmp_path: Path, image_folder: Path):
    """An open store over ``image_folder`` with classes benign/malignant/normal."""
    from medactive.annotate.project import init_from_folder

    store = init_from_folder(tmp_path / "proj", image_folder, CLASSES)
    yield store
    store.close()


def serve_in_thread(proj: Path, **app_kwargs: Any) -> Iterator[str]:
    """Serve project ``proj`` with uvicorn in a daemon thread on a free loopback port; yields the
    base URL and stops the server afterwards (``app_kwargs`` go to ``create_app``)."""
    import uvicorn

    from medactive.annotate.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    web = create_app(proj, host="127.0.0.1", port=port, **app_kwargs)
    srv = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
