"""medactive's ML backend against a real Label Studio (``label-studio`` 1.23.2 from PyPI).

The test starts Label Studio on 127.0.0.1 with a temporary data folder (analytics and version
checks off: it needs no network), makes a project with ``label-studio-sdk`` from medactive's
exported tasks and labelling config, connects ``medactive labelstudio serve`` (a real process)
as its ML backend, and labels through Label Studio's API as a reader would. It checks that

* the tab ordered by *Prediction score* (ascending) and the labelling stream serve the round's
  images in medactive's order;
* every answer reaches medactive's store with its reader, an edit replaces it, and an answer
  given while the backend was killed is caught up after its restart;
* when the round is answered the backend starts the next round (the page's job: a real
  ``medactive project query`` process) and Label Studio then serves the new round's picks;
* a Label Studio JSON export imports into a fresh project with the same answers.

Label Studio lives in its own environment (``make labelstudio-env``; ``make test`` makes it when
missing): it pins far more packages than medactive. A missing environment is a failure. Every
process the test starts is stopped by its PID (its process group), also on failure. It takes
about 2 minutes on 2 cores (Label Studio's start and migrations are ~35 s of it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from medactive.annotate.exports import export_file
from medactive.annotate.labelstudio.importer import import_labelstudio_export
from medactive.annotate.project import init_from_folder
from medactive.annotate.query import QueryConfig, run_query
from medactive.annotate.store import ProjectStore

REPO = Path(__file__).resolve().parents[2]
LS_PYTHON = REPO / ".venv-labelstudio" / "bin" / "python"
LS_TOKEN = "0123456789abcdef0123456789abcdef01234567"  # Label Studio's legacy API token
LS_USER = "reader@clinic.example"
BACKEND_TOKEN = "medactive-backend-token-4242"
PREFIX = "/data/local-files/?d=images/"  # the image folder, below Label Studio's document root
N_IMAGES = 40
BUDGET = 6
DOCS_IMG = REPO / "docs" / "img" / "labelstudio-order.png"
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.labelstudio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], what: str, timeout: float, every: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop ``proc`` and its children: its own process group, by its PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def http_ok(url: str, headers: dict[str, str] | None = None) -> bool:
    import httpx

    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Driver:
    """The Label Studio side: ``labelstudio_driver.py`` in Label Studio's environment."""

    def __init__(self, log: Path) -> None:
        self.proc = subprocess.Popen(
            [str(LS_PYTHON), str(Path(__file__).with_name("labelstudio_driver.py"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log.open("wb"), text=True,
            start_new_session=True)

    def __call__(self, command: str, **args: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"command": command, **args}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline() or '{"error": "the driver died"}')
        if "error" in reply:
            pytest.fail(f"Label Studio {command}: {reply['error']}\n{reply.get('trace', '')}")
        return reply["ok"]


@pytest.fixture(scope="module")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A fresh Label Studio on 127.0.0.1, its document root the test's image folder."""
    if not LS_PYTHON.exists():
        pytest.fail(f"{LS_PYTHON} not found: run `make labelstudio-env` (make test does)")
    root = tmp_path_factory.mktemp("labelstudio")
    images = root / "images"  # local-files storage must be a folder below the document root
    images.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO", "DJANGO"))}
    env.update({
        "LABEL_STUDIO_BASE_DATA_DIR": str(root / "data"),
        "LABEL_STUDIO_USERNAME": LS_USER, "LABEL_STUDIO_PASSWORD": "medactive-e2e-pw",
        "LABEL_STUDIO_USER_TOKEN": LS_TOKEN, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # offline: no analytics, no error reports to Sentry (on by default), no version check
        "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
        "LATEST_VERSION_CHECK": "false",
        # the exported /data/local-files/?d=images/<image id> URLs, served from the image folder
        "LOCAL_FILES_SERVING_ENABLED": "true", "LOCAL_FILES_DOCUMENT_ROOT": str(root),
        # the backend and its webhook live on this machine (127.0.0.1): allow that address
        "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
    })
    log = root / "label-studio.log"
    proc = subprocess.Popen(
        [str(LS_PYTHON), "-m", "label_studio.server", "start", "--no-browser",
         "--internal-host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True)
    driver = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: proc.poll() is not None or http_ok(f"{url}/health"),
                 "Label Studio to start", 240)
        assert proc.poll() is None, log.read_text()[-3000:]
        driver = Driver(root / "driver.log")
        driver("connect", url=url, key=LS_TOKEN)
        yield {"url": url, "images": images, "driver": driver, "root": root}
    finally:
        if driver is not None:
            stop(driver.proc)
        stop(proc)


def write_bloodmnist_folder(folder: Path, blood: Any) -> tuple[list[str], np.ndarray]:
    """The first ``N_IMAGES`` BloodMNIST training images as PNGs; returns their ids (file
    names, sorted as ``init`` registers them) and true labels."""
    names = []
    for k in range(N_IMAGES):
        name = f"blood-{k:03d}.png"
        Image.fromarray(blood.train.images[k]).save(folder / name)
        names.append(name)
    return names, np.asarray(blood.train.labels[:N_IMAGES])


def make_project(proj: Path, folder: Path, blood: Any, features: Path) -> ProjectStore:
    classes = [str(c) for c in blood.train.class_names]
    return init_from_folder(proj, folder, classes, image_size=28, features=features)


class Backend:
    """``medactive labelstudio serve`` as a process (killed and restarted by the test)."""

    def __init__(self, proj: Path, ls_url: str, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "medactive", "labelstudio", "serve", str(proj),
                     "--port", str(self.port), "--image-prefix", PREFIX]
        self.env = {**os.environ, "MEDACTIVE_TOKEN": BACKEND_TOKEN, "LABEL_STUDIO_URL": ls_url,
                    "LABEL_STUDIO_API_KEY": LS_TOKEN,
                    "PYTHONPATH": os.pathsep.join([str(REPO / "src"),
                                                   os.environ.get("PYTHONPATH", "")])}
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=self.log.open("ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or http_ok(
            f"{self.url}/health", {"X-Token": BACKEND_TOKEN}), "the backend to start", 60)
        assert self.proc.poll() is None, self.log.read_text()[-3000:]

    def status(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.url}/status", headers={"X-Token": BACKEND_TOKEN},
                         timeout=10).json()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop(self.proc, sig)


def reader_answers(proj: Path) -> dict[str, tuple[str, str]]:
    with ProjectStore.open(proj) as store:
        names = store.classes()
        return {a.uid: (a.annotator, a.display(names)) for a in store.reader_answers()}


def round_order(proj: Path, round_id: int) -> list[str]:
    with ProjectStore.open(proj) as store:
        return [q.uid for q in store.queue(round_id)]


@pytest.mark.slow
def test_label_studio_loop(label_studio: dict[str, Any], blood: Any, tmp_path: Path) -> None:
    ls, images, root = label_studio["driver"], label_studio["images"], label_studio["root"]
    names, truth = write_bloodmnist_folder(images, blood)
    # your own embeddings (--features): the pixels, so rounds take seconds, not MoCo's minutes
    features = tmp_path / "features.npy"
    np.save(features, np.stack([np.asarray(Image.open(images / n), np.float32).ravel() / 255
                                for n in names]))
    proj = tmp_path / "blood"
    with make_project(proj, images, blood, features) as store:
        assert [i.uid for i in store.images()] == names
        classes = store.classes()
    run_query(proj, BUDGET, config=QueryConfig(seed=0))
    first = round_order(proj, 1)
    label = dict(zip(names, (classes[int(t)] for t in truth), strict=True))

    with ProjectStore.open(proj) as store:
        export_file(store, tmp_path / "tasks.json", "labelstudio", image_prefix=PREFIX)
    created = ls("create_project", title="medactive blood", tasks_file=str(tmp_path / "tasks.json"),
                 config=(tmp_path / "tasks.json.xml").read_text(), images=str(images))
    pid = created["project"]
    assert created["tasks"] == N_IMAGES

    backend = Backend(proj, label_studio["url"], root / "backend.log")
    backend.start()
    try:
        connected = ls("connect_backend", project=pid, url=backend.url, token=BACKEND_TOKEN)
        assert connected["state"] == "CO" and connected["webhooks"] == 1
        view = ls("order_view", project=pid)["view"]

        # the backend noticed the project (/setup), made Label Studio fetch its predictions and
        # set the project's model version: the tab now lists the round in medactive's order
        wait_for(lambda: ls("project_state", project=pid)["model_version"]
                 == "medactive-round-1", "Label Studio to order by round 1", 60)
        shown = ls("view_tasks", view=view)["tasks"]
        assert [t["medactive_id"] for t in shown] == first
        assert [t["score"] for t in shown] == sorted(t["score"] for t in shown)
        by_uid = {t["medactive_id"]: t["id"] for t in shown}

        # label the round as a reader would: take the next task, answer it
        given: dict[str, str] = {}
        annotation: dict[str, int] = {}
        for k in range(3):
            nxt = ls("next_task", project=pid, view=view)
            assert nxt["medactive_id"] == first[k]  # medactive's pick, in its order
            wrong = classes[(classes.index(label[first[k]]) + 1) % len(classes)]
            answer = wrong if k == 0 else label[first[k]]  # the first one is corrected below
            annotation[first[k]] = ls("annotate", task=nxt["id"], choice=answer)["annotation"]
            given[first[k]] = answer
        assert reader_answers(proj) == {u: (LS_USER, a) for u, a in given.items()}
        ls("update", annotation=annotation[first[0]], choice=label[first[0]])
        given[first[0]] = label[first[0]]
        assert reader_answers(proj)[first[0]] == (LS_USER, label[first[0]])

        # the backend is killed; a reader answers meanwhile (Label Studio's webhook fails and
        # is never resent); the restarted backend catches up from Label Studio's export
        backend.stop(signal.SIGKILL)
        ls("annotate", task=by_uid[first[3]], choice=label[first[3]])
        given[first[3]] = label[first[3]]
        assert first[3] not in reader_answers(proj)
        backend.start()
        wait_for(lambda: first[3] in reader_answers(proj), "the restarted backend to catch up", 60)

        # a request with a wrong token changes nothing
        import httpx

        refused = httpx.post(f"{backend.url}/webhook", json={"action": "ANNOTATION_CREATED"},
                             headers={"Authorization": "Token wrong-token-000000000000"})
        assert refused.status_code == 401

        for uid in first[4:]:  # the rest of the round: the backend starts the next one
            ls("annotate", task=by_uid[uid], choice=label[uid])
            given[uid] = label[uid]
        assert reader_answers(proj) == {u: (LS_USER, a) for u, a in given.items()}
        status = wait_for(lambda: (s := backend.status())["job"] and s["job"]["status"] != "running"
                          and s, "the next round's job", 180)
        assert status["job"]["status"] == "done", status["job"]
        second = round_order(proj, 2)
        assert len(second) == BUDGET and not set(second) & set(first)

        # Label Studio now serves the second round, in medactive's order
        wait_for(lambda: ls("project_state", project=pid)["model_version"]
                 == "medactive-round-2", "Label Studio to order by round 2", 90)
        assert [t["medactive_id"] for t in ls("view_tasks", view=view)["tasks"]] == second
        assert ls("next_task", project=pid, view=view)["medactive_id"] == second[0]
        label_studio.update(project=pid, view=view)
    finally:
        backend.stop()

    # the way back: Label Studio's JSON export imports into a fresh project (readers named by
    # e-mail when the export expands them), and into this one as nothing new
    ls("export", project=pid, path=str(tmp_path / "users.json"), expand_users=True)
    fresh = tmp_path / "fresh"
    with make_project(fresh, images, blood, features) as store:
        summary = import_labelstudio_export(store, tmp_path / "users.json", image_prefix=PREFIX)
    assert summary.outcome.as_dict()["recorded"] == BUDGET
    assert reader_answers(fresh) == {u: (LS_USER, a) for u, a in given.items()}
    ls("export", project=pid, path=str(tmp_path / "ids.json"))
    with ProjectStore.open(proj) as store:
        again = import_labelstudio_export(store, tmp_path / "ids.json", image_prefix=PREFIX)
    assert again.outcome.as_dict() == {"recorded": 0, "changed": 0, "withdrawn": 0,
                                       "unchanged": BUDGET}


@pytest.mark.browser
def test_label_studio_screenshot(label_studio: dict[str, Any], tmp_path: Path) -> None:
    """The Data Manager tab of the loop above, in Chromium: the round-2 images, ordered by
    medactive (docs/img/labelstudio-order.png with ``MEDACTIVE_UPDATE_SCREENSHOT=1``)."""
    if "view" not in label_studio:
        pytest.fail("test_label_studio_loop must run first (it makes the project)")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    url, pid, view = label_studio["url"], label_studio["project"], label_studio["view"]
    shot = tmp_path / "labelstudio-order.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"{url}/user/login/")
            page.fill("input[name=email]", LS_USER)
            page.fill("input[name=password]", "medactive-e2e-pw")
            page.click("button[type=submit]")
            page.wait_for_url(lambda u: "/login" not in u, timeout=60_000)
            page.goto(f"{url}/projects/{pid}/data?tab={view}")
            page.wait_for_selector("text=medactive order", timeout=60_000)
            page.wait_for_timeout(3000)  # thumbnails
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    if os.environ.get("MEDACTIVE_UPDATE_SCREENSHOT") == "1":
        shutil.copyfile(shot, DOCS_IMG)
