"""The labelling page as a clinic meets it (issue 20, items 1-8 and the round guard), in a real
browser: Playwright driving Debian's headless Chromium.

One browser serves the whole module; each test serves its own small BloodMNIST project (40
images) so no test depends on another's answers. The ``page-*.png`` screenshots in docs/labelling.md
are taken here at 1366x768; ``MEDACTIVE_UPDATE_SCREENSHOT=1`` copies them to docs/img/.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.annotate.conftest import serve_in_thread

from medactive.annotate.settings import update_settings
from medactive.annotate.store import ProjectStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SMALL = {"width": 1366, "height": 768}
LARGE = {"width": 1920, "height": 1080}

# the browser logs every refused request; a refusal the test asks for is no error
REFUSAL = re.compile(r"status of (409|422) ")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package (`make test` "
                    "does: .ci/ensure-chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _probs(k: int, n_classes: int, gap: float = 0.04, shift: int = 0) -> np.ndarray:
    """Probabilities whose two most likely classes are ``k`` and ``k + 1`` (mod C), ``gap``
    apart."""
    p = np.full(n_classes, 0.1 / (n_classes - 2), np.float32)
    p[(k + shift) % n_classes] = 0.45 + gap / 2
    p[(k + shift + 1) % n_classes] = 0.45 - gap / 2
    return p


@pytest.fixture
def make_project(tmp_path: Path, bloodmnist_path: Path) -> Callable[..., tuple[Path, list[int]]]:
    """``make(rounds=True)``: 40 BloodMNIST images, optionally a margin round of 6 (one
    validation draw) with the round model's predictions; returns the folder and image ids."""
    from medactive.annotate.project import init_from_npz

    def make(rounds: bool = True) -> tuple[Path, list[int]]:
        proj = tmp_path / "blood"
        with init_from_npz(proj, bloodmnist_path, "train", limit=40) as store:
            ids = [i.id for i in store.images()]
            if rounds:
                c = len(store.classes())
                store.add_round(
                    "cluster-margin-then-margin", {"low": "cluster-margin", "high": "margin"},
                    None, [(ids[k], -0.02 * (k + 1)) for k in range(6)],
                    ["acquire", "validation", "acquire", "acquire", "acquire", "acquire"],
                    {i: _probs(k, c) for k, i in enumerate(ids)})
        return proj, ids

    return make


class StandInJob:
    """The next round's job without a model: records a round of ``budget`` unanswered images."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bool]] = []

    def __call__(self, store: ProjectStore, budget: int, force: bool) -> int:
        self.calls.append((budget, force))
        job = store.begin_job("query", {"budget": budget}, None)
        answered = {a.image_id for a in store.reader_answers()}
        free = [i.id for i in store.images() if i.id not in answered]
        rid = store.add_round("margin", {}, None, [(i, -0.1) for i in free[-budget:]])
        store.finish_job(job, round_id=rid)
        return job


@pytest.fixture
def serve() -> Iterator[Callable[..., str]]:
    """``serve(project, **create_app kwargs)`` -> base URL; every server stops afterwards."""
    servers: list[Iterator[str]] = []

    def start(proj: Path, **kwargs: Any) -> str:
        server = serve_in_thread(proj, **kwargs)
        servers.append(server)
        return next(server)

    yield start
    for server in servers:
        server.close()


def _open(browser, url: str, viewport: dict[str, int] = SMALL, name: str | None = "dr-a"):
    """A fresh page (own context: own cookie and storage) at ``url``, the name typed and
    confirmed with Enter; ``page.errors`` collects script errors and CSP violations."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport=viewport).new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error"
            and not REFUSAL.search(m.text) else None)
    page.goto(f"{url}/")
    expect(page.locator("#round")).not_to_have_text("")
    if name:
        page.fill("#annotator", name)
        page.locator("#annotator").press("Enter")
    return page


def _shot(page, name: str, tmp_path: Path) -> None:
    """A 1366x768 screenshot, copied into docs/img/ when MEDACTIVE_UPDATE_SCREENSHOT=1."""
    path = tmp_path / name
    page.screenshot(path=str(path))
    assert 10_000 < path.stat().st_size < 600_000, name
    if os.environ.get("MEDACTIVE_UPDATE_SCREENSHOT") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)


def _answers(proj: Path) -> list[tuple[str, str]]:
    with ProjectStore.open(proj) as store:
        names = store.classes()
        return [(a.uid, a.display(names)) for a in store.reader_answers()]


# ------------------------------------------------------------------ 1. keyboard


def test_keyboard_focus_rules(browser, make_project, serve) -> None:
    """Enter or Tab in the Reader box hands the keys to the image; a class button never keeps
    (or gets) the focus, so Space/Enter never answer by accident."""
    from playwright.sync_api import expect

    proj, _ = make_project()
    page = _open(browser, serve(proj), name=None)
    expect(page.locator("#annotator")).to_be_focused()  # no name yet: the page asks for it
    page.locator("#annotator").press_sequentially("Dr. One")
    expect(page.locator("#readerbox .hint")).to_be_visible()  # says how to start
    page.keyboard.press("Enter")
    expect(page.locator("#viewer")).to_be_focused()
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_have_text("1 / 6")
    expect(page.locator("#annotator")).to_have_value("Dr. One")  # "1" labelled, not typed
    page.locator("#annotator").click()
    page.keyboard.press("End")
    page.keyboard.press("Tab")  # Tab from the name lands on the image, not a class button
    expect(page.locator("#viewer")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_have_text("1 / 6")  # neither answered
    assert page.locator("#classes button[tabindex='-1']").count() == 8  # keys 1-8 instead
    page.locator("#classes button").nth(2).click()  # a mouse click answers...
    expect(page.locator("#progress")).to_have_text("2 / 6")
    expect(page.locator("#viewer")).to_be_focused()  # ...and gives the focus back
    page.keyboard.press("Space")
    expect(page.locator("#progress")).to_have_text("2 / 6")
    assert [a for _, a in _answers(proj)] == ["basophil", "erythroblast"]
    assert page.errors == []


# ------------------------------------------------------------------ 2. skip is not done


def test_skip_is_not_done(browser, make_project, serve) -> None:
    from playwright.sync_api import expect

    proj, ids = make_project()
    page = _open(browser, serve(proj))
    expect(page.locator("#img")).to_have_attribute("data-image-id", str(ids[0]))
    skipped = str(ids[0])
    page.keyboard.press("s")
    expect(page.locator("#progress")).to_have_text("0 / 6 · 1 skipped")
    for n in range(1, 6):
        expect(page.locator("#img")).not_to_have_attribute("data-image-id", skipped)
        page.keyboard.press("1")
        expect(page.locator("#progress")).to_have_text(f"{n} / 6 · 1 skipped")
    expect(page.locator("#donetitle")).to_have_text("Round finished — with skipped images")
    expect(page.locator("#donetext")).to_contain_text("1 skipped image still needs one")
    page.click("#reviewskipped")
    expect(page.locator("#img")).to_have_attribute("data-image-id", skipped)
    expect(page.locator("#meta")).to_contain_text("skipped earlier: answer it now")
    page.keyboard.press("2")
    expect(page.locator("#progress")).to_have_text("6 / 6")
    expect(page.locator("#donetitle")).to_have_text("Round complete")
    expect(page.locator("#reviewskipped")).to_be_hidden()
    assert len(_answers(proj)) == 6
    assert page.errors == []


# ------------------------------------------------------------------ 3. layout


def test_layout_above_the_fold(browser, make_project, serve, tmp_path: Path) -> None:
    """At 1366x768 and 1920x1080: the file name, "Your last answer" and the Next-round box are
    on screen without scrolling, the image grows with the screen, the budget box is labelled."""
    from playwright.sync_api import expect

    proj, _ = make_project()
    url = serve(proj)
    widths = {}
    for viewport in (SMALL, LARGE):
        page = _open(browser, url, viewport)
        page.keyboard.press("1")
        expect(page.locator("#lasttext")).to_contain_text("you said basophil")
        expect(page.locator("#img")).to_have_js_property("complete", True)
        for selector in ("#meta", "#lastbox", "#nextbox", "#whytext", "#classes"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["height"] > 0, selector
            assert box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"], (
                viewport, selector, box)
        assert page.evaluate("document.scrollingElement.scrollHeight") <= viewport["height"]
        expect(page.locator("#meta")).to_contain_text("train-")  # the file name
        expect(page.locator("#encoder")).to_have_text("encoder: moco")  # what made the features
        budget = page.get_by_label("Images in next round")
        expect(budget).to_have_id("budget")
        widths[viewport["width"]] = page.locator("#img").bounding_box()["width"]
        if viewport is SMALL:
            _shot(page, "page-label.png", tmp_path)
        assert page.errors == []
        page.close()
    assert widths[1366] > 560 and widths[1920] > 1.4 * widths[1366]


# ------------------------------------------------------------------ 5. adjudication


def test_adjudication_has_no_default_and_thumbnails_open_large(
        browser, make_project, serve, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    proj, ids = make_project()
    with ProjectStore.open(proj) as store:
        store.record(ids[0], "basophil", "dr-a", 1)
        store.record(ids[0], "monocyte", "dr-b", 1)
    page = _open(browser, serve(proj), name="dr-lead")
    page.click("button[data-tab=adjudicate]")
    row = page.locator("#distable tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("select")).to_have_value("")  # no class chosen for the adjudicator
    expect(row.locator("button.small")).to_be_disabled()
    row.locator("button.mini").click()  # the thumbnail opens the image large
    expect(page.locator("#lightbox")).to_be_visible()
    expect(page.locator("#lbimg")).to_have_js_property("complete", True)
    assert page.locator("#lbimg").bounding_box()["width"] >= 400
    assert page.locator("#lbimg").evaluate("e => e.naturalWidth") > 0
    expect(page.locator("#lbcaption")).to_have_text("train-0")
    _shot(page, "page-adjudicate.png", tmp_path)
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()
    with ProjectStore.open(proj) as store:
        assert store.adjudications() == {}  # nothing was decided by default
    row.locator("select").select_option("monocyte")
    expect(row.locator("button.small")).to_be_enabled()
    row.locator("button.small").click()
    expect(row).to_contain_text("monocyte (adjudicated)")
    assert page.errors == []


# ------------------------------------------------------------------ 6. why this image


def test_why_this_image_states_strategy_and_score(browser, make_project, serve) -> None:
    from playwright.sync_api import expect

    proj, ids = make_project()
    page = _open(browser, serve(proj))
    why = page.locator("#whytext")
    expect(why).to_contain_text("chosen by cluster-margin-then-margin")
    # the score and what it means, before answering, without naming the model's classes
    expect(why).to_contain_text("margin 0.02: the model is torn between its two most likely "
                                "classes (named once you answer)")
    expect(why).to_contain_text("the least certain image of each cluster of similar images")
    expect(why).to_contain_text("rank 1 of 6 in round 1")
    page.keyboard.press("1")
    expect(page.locator("#lasttext")).to_contain_text(
        "margin 0.02: the model is torn between basophil and eosinophil")
    expect(why).to_contain_text("validation sample: a uniformly random draw")
    with ProjectStore.open(proj) as store:
        update_settings(store, show_predictions="first")
    page.reload()
    expect(why).to_contain_text("validation sample")
    page.keyboard.press("1")
    expect(why).to_contain_text("margin 0.06: the model is torn between erythroblast and "
                                "immature granulocytes")  # named before: the setting says so
    # a cold-start round: no model, the cluster its pick stands for, and its typicality
    with ProjectStore.open(proj) as store:
        done = {a.image_id for a in store.reader_answers()}
        free = [i for i in ids if i not in done][:4]
        store.add_round("typiclust", {"clusters": {str(i): k + 2 for k, i in enumerate(free)}},
                        None, [(i, 5.0 - k) for k, i in enumerate(free)])
    page.reload()
    expect(why).to_contain_text("cold start: the most typical image of cluster 3 of 4")
    expect(why).to_contain_text("typicality 5.00: a typical member of a dense group")
    assert page.errors == []


# ------------------------------------------------------------------ 7. no round yet


def test_no_round_yet_says_what_to_do(browser, make_project, serve, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    proj, _ = make_project(rounds=False)
    job = StandInJob()
    page = _open(browser, serve(proj, start_job=job), name=None)
    expect(page.locator("#noround")).to_be_visible()
    expect(page.locator("#noroundtext")).to_contain_text("press Next round")
    expect(page.locator("#noroundtext")).to_contain_text("starts with typiclust")
    expect(page.locator("#noroundcmd")).to_have_text("medactive project query blood --budget 20")
    expect(page.locator("#budgethint")).to_have_text(
        "up to 40 unanswered images · typiclust (cold start)")
    expect(page.locator("#classes button").first).to_be_disabled()
    _shot(page, "page-noround.png", tmp_path)
    page.fill("#annotator", "dr-a")
    page.locator("#annotator").press("Enter")
    page.fill("#budget", "5")
    page.click("#nextround")  # the stand-in records round 1 at once: the page moves there
    expect(page.locator("#round")).to_have_text("round 1 · margin", timeout=10_000)
    expect(page.locator("#noround")).to_be_hidden()
    expect(page.locator("#progress")).to_have_text("0 / 5")
    assert job.calls == [(5, False)] and page.errors == []


# ------------------------------------------------------------------ 8. progress plots


def _three_rounds(proj: Path, ids: list[int]) -> None:
    """Rounds 2 and 3 (margin, with predictions) after round 1, every queried image answered
    with the class the models lean to (so validation AUC and stability κ exist)."""
    with ProjectStore.open(proj) as store:
        names = store.classes()
        c = len(names)
        store.save_stop_sample(ids[24:40])
        for k, q in enumerate(store.queue(1)):
            store.record(q.image_id, names[k % c], "dr-a", 1)
        for rnd, shift in ((2, 0), (3, 1)):
            chosen = ids[6 * rnd - 6 + 6:6 * rnd + 6]
            rid = store.add_round(
                "margin", {}, None, [(i, -0.1) for i in chosen],
                ["validation", "acquire", "validation", "acquire", "acquire", "acquire"],
                {i: _probs(k + (shift if k % 3 == 0 else 0), c, 0.2)
                 for k, i in enumerate(ids)})
            for q in store.queue(rid):
                store.record(q.image_id, names[ids.index(q.image_id) % c], "dr-a", rid)


def test_progress_plots(browser, make_project, serve, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    proj, ids = make_project()
    _three_rounds(proj, ids)
    page = _open(browser, serve(proj))
    page.click("button[data-tab=stats]")
    auc = page.locator("#plot-auc svg")
    expect(auc).to_be_visible()
    expect(auc.locator("circle")).to_have_count(3)  # one per round (each has a model)
    expect(auc.locator("polyline")).to_have_count(1)
    kappa = page.locator("#plot-kappa svg")
    expect(kappa.locator("circle")).to_have_count(2)  # rounds 2 and 3 against the one before
    expect(kappa.locator("line.threshold")).to_have_count(1)  # the stop threshold
    classes = page.locator("#plot-classes")
    expect(classes.locator("polyline")).to_have_count(8)  # one line per class
    expect(classes.locator(".legend span")).to_have_count(8)
    expect(classes.locator("circle[data-series='basophil'] title").last).to_have_text(
        "basophil, round 3: 2")
    expect(page.locator("#rounds tbody tr")).to_have_count(3)
    expect(page.locator("#rounds tbody tr").first).to_contain_text("complete")
    _shot(page, "page-progress.png", tmp_path)
    assert page.errors == []


# ------------------------------------------------------------------ 4. rounds clash


def test_new_round_noticed_and_stale_answer_refused(browser, make_project, serve,
                                                    tmp_path: Path) -> None:
    """A round started elsewhere (here: the store, as `project query --force` would) is noticed
    by an open page; an answer sent from the replaced round's page is refused in words."""
    from playwright.sync_api import expect

    proj, ids = make_project()
    url = serve(proj, start_job=StandInJob())
    page = _open(browser, url)
    watcher = _open(browser, url, name="dr-b")
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_have_text("1 / 6")
    with ProjectStore.open(proj) as store:
        store.add_round("margin", {}, None, [(i, -0.1) for i in ids[30:35]])
    page.keyboard.press("1")  # still showing round 1
    expect(page.locator("#msg")).to_have_text(
        "Not saved: This image belongs to round 1, which was replaced by round 2 — reload to "
        "continue")
    expect(page.locator("#roundnotice")).to_be_visible()
    # the other page notices by polling (every 5 s), without answering anything
    expect(watcher.locator("#roundnotice")).to_contain_text(
        "Round 2 has started and replaces round 1 — reload", timeout=12_000)
    _shot(watcher, "page-newround.png", tmp_path)
    page.click("#reloadbtn")
    expect(page.locator("#round")).to_have_text("round 2 · margin")
    expect(page.locator("#roundnotice")).to_be_hidden()
    expect(page.locator("#progress")).to_have_text("0 / 5")
    assert len(_answers(proj)) == 1
    assert page.errors == [] and watcher.errors == []


def test_next_round_button_refusals_leave_no_job(browser, make_project, serve) -> None:
    """A typo or an open round is refused before a job exists: a line under the button, never
    the red "next round failed" banner; closing the open round takes a deliberate click."""
    from playwright.sync_api import expect

    proj, _ = make_project()
    job = StandInJob()
    page = _open(browser, serve(proj, start_job=job))
    page.fill("#budget", "999")
    page.click("#nextround")
    # all 40: nothing is answered, and the open round's unanswered validation draw goes back to
    # the pool when a query closes that round (tests/annotate/test_round_guard.py)
    expect(page.locator("#msg")).to_have_text(
        "Next round not started: budget 999 is larger than the 40 unanswered images")
    expect(page.locator("#jobbox")).to_be_hidden()
    page.fill("#budget", "4")
    page.click("#nextround")
    expect(page.locator("#msg")).to_contain_text(
        "Round 1 still has 6 of 6 images without an answer.")
    expect(page.locator("#jobbox")).to_be_hidden()
    with ProjectStore.open(proj) as store:
        assert store.jobs() == [] and len(store.rounds()) == 1
    page.click("#forceround")
    expect(page.locator("#roundnotice")).to_contain_text("Round 2 has started")
    page.click("#reloadbtn")
    expect(page.locator("#round")).to_have_text("round 2 · margin")
    assert job.calls == [(4, True)]
    page.click("button[data-tab=stats]")
    expect(page.locator("#rounds tbody tr").first).to_contain_text("closed, 6 unanswered")
    assert page.errors == []
