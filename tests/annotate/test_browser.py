"""End to end in a real browser: Playwright driving Debian's headless Chromium.

A missing browser is a failure, not a skip: CI (``.ci/run``) installs the ``chromium`` package.
The screenshot used in ``docs/labelling.md`` comes from this test; set
``MEDACTIVE_UPDATE_SCREENSHOT=1`` to copy it to ``docs/img/labelling.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.annotate.conftest import serve_in_thread

from medactive.annotate.store import ProjectStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "e2e-token-0123456789abcdef"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img" / "labelling.png"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(tmp_path: Path, bloodmnist_path: Path, token: str | None
           ) -> Iterator[tuple[str, Path]]:
    """A BloodMNIST project (40 images, a round of 10) served by uvicorn in a thread."""

    from medactive.annotate.project import init_from_npz

    proj = tmp_path / "blood"
    with init_from_npz(proj, bloodmnist_path, "train", limit=40) as store:
        ids = [i.id for i in store.images()]
        store.add_round("aeig", {"budget": 10}, None,
                        [(ids[k], 0.9 - k * 0.05) for k in range(10)])
    for url in serve_in_thread(proj, token=token):
        yield url, proj


@pytest.fixture
def server(tmp_path: Path, bloodmnist_path: Path) -> Iterator[tuple[str, Path]]:
    """Served with a token, as on a shared network."""
    yield from _serve(tmp_path, bloodmnist_path, TOKEN)


@pytest.fixture
def local_server(tmp_path: Path, bloodmnist_path: Path) -> Iterator[tuple[str, Path]]:
    """Served as `project serve DIR` does by default: loopback, no token."""
    yield from _serve(tmp_path, bloodmnist_path, None)


@pytest.mark.browser
def test_label_three_undo_reload(server: tuple[str, Path], tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package "
                    "(`apt-get install -y chromium`; .ci/run does this)")
    from playwright.sync_api import expect, sync_playwright

    url, proj = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            problems: list[str] = []  # a CSP violation or a script error would land here
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{url}/?token={TOKEN}")
            expect(page.locator("#progress")).to_have_text("0 / 10")
            assert page.url == f"{url}/"  # the token left the address bar for a cookie
            page.fill("#annotator", "Dr. Example")
            page.locator("#viewer").click()  # leave the text field so keys label
            expect(page.locator("#img")).to_have_js_property("complete", True)
            first = page.locator("#img").get_attribute("data-image-id")
            for key, progress in (("1", "1 / 10"), ("7", "2 / 10"), ("3", "3 / 10")):
                page.keyboard.press(key)
                expect(page.locator("#progress")).to_have_text(progress)
            page.keyboard.press("z")
            expect(page.locator("#progress")).to_have_text("2 / 10")
            page.reload()
            expect(page.locator("#progress")).to_have_text("2 / 10")
            expect(page.locator("#annotator")).to_have_value("Dr. Example")  # remembered
            third = page.locator("#img").get_attribute("data-image-id")
            # (no wait_for_function: its polling evaluates strings, which the page's CSP forbids)
            expect(page.locator("#img")).to_have_js_property("complete", True)
            assert page.locator("#img").evaluate("e => e.naturalWidth") > 0
            page.locator("#contrast").fill("130")
            shot = tmp_path / "labelling.png"
            page.screenshot(path=str(shot))
            assert "token" not in (page.locator("#img").get_attribute("src") or "")
            assert problems == []
        finally:
            browser.close()

    assert shot.stat().st_size > 10_000
    if os.environ.get("MEDACTIVE_UPDATE_SCREENSHOT") == "1":
        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_IMG)
    with ProjectStore.open(proj) as store:
        queue = store.queue(1)
        answers = store.current_answers()
        names = store.classes()
        assert [q.answer for q in queue[:3]] == [names[0], names[6], None]
        assert int(first) == queue[0].image_id and int(third) == queue[2].image_id
        assert all(a.annotator == "Dr. Example" for a in answers.values()) and len(answers) == 2
        kinds = [r[2] for r in store.history()]
        assert kinds == ["label", "label", "label", "retract"]  # the undo is recorded, not erased


ATTACK = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}/api/answer" enctype="text/plain">
<input name='{{"image_id":{image},"answer":"{answer}","annotator":"evil","x":"' value='"}}'>
</form>
<script>
(async () => {{
  const body = JSON.stringify({{image_id: {image}, answer: "{answer}", annotator: "evil"}});
  const tries = [
    ["/api/answer", {{method: "POST", mode: "no-cors", credentials: "include",
                      headers: {{"Content-Type": "text/plain"}}, body}}],
    ["/api/answer", {{method: "POST", credentials: "include",
                      headers: {{"Content-Type": "application/json"}}, body}}],
    ["/api/undo", {{method: "POST", mode: "no-cors", credentials: "include",
                    body: '{{"annotator": "evil"}}'}}],
    ["/api/state", {{credentials: "include"}}],
  ];
  const seen = [];
  for (const [path, init] of tries) {{
    try {{ const r = await fetch("{target}" + path, init); seen.push(r.type + ":" + r.status); }}
    catch (e) {{ seen.push("blocked"); }}
  }}
  document.title = "tried " + seen.join(",");
  document.getElementById("f").submit();
}})();
</script></body></html>"""


@pytest.mark.browser
def test_another_site_cannot_write(local_server: tuple[str, Path]) -> None:
    """A page on another site, opened in the browser that holds the session, tries every write
    a page can send without the server's consent: nothing reaches the store."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package")
    import http.server

    from playwright.sync_api import expect, sync_playwright

    url, proj = local_server
    with ProjectStore.open(proj) as store:
        image, answer = store.queue(1)[0].image_id, store.classes()[0]
    html = ATTACK.format(target=url, image=image, answer=answer).encode()

    class Attacker(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: object) -> None:
            pass

    evil = http.server.ThreadingHTTPServer(("127.0.0.1", _free_port()), Attacker)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{url}/")  # the clinician's session cookie is set
                expect(page.locator("#progress")).to_have_text("0 / 10")
                attacker = browser.new_page()  # "localhost" is another site than 127.0.0.1
                attacker.goto(f"http://localhost:{evil.server_address[1]}/")
                attacker.wait_for_url(f"{url}/api/answer", timeout=15000)  # the form landed
            finally:
                browser.close()
    finally:
        evil.shutdown()
        thread.join(timeout=10)
    with ProjectStore.open(proj) as store:
        assert store.history() == []
