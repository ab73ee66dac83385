"""Each clinic-workflow flow in a real browser (Playwright driving Debian's Chromium): why this
image, two readers and adjudication, reader tokens, the next round as a background job, the
gallery. The project holds synthetic predictions (no model is trained here; the simulated
project in test_workflow_sim.py runs the real pipeline)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.annotate.conftest import serve_in_thread

from medactive.annotate.settings import update_settings
from medactive.annotate.store import ProjectStore

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def _predictions(ids: list[int], n_classes: int) -> dict[int, np.ndarray]:
    out = {}
    for k, i in enumerate(ids):
        p = np.full(n_classes, 0.2 / (n_classes - 1), np.float32)
        p[k % n_classes] = 0.8
        out[i] = p
    return out


class SlowJob:
    """Stands in for the background query: moves through stages in a thread, then records a
    round (or fails, when told to)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.release = threading.Event()

    def __call__(self, store: ProjectStore, budget: int, force: bool) -> int:
        job = store.begin_job("query", {"budget": budget}, None)

        def run() -> None:
            store.update_job(job, "pre-training", 0.3)
            self.release.wait(20)
            if self.fail:
                store.finish_job(job, error=f"cannot read {store.dir}/images/x.png")
                return
            answered = {a.image_id for a in store.reader_answers()}
            free = [i.id for i in store.images() if i.id not in answered
                    and i.id not in {q.image_id for q in store.queue(store.latest_round().id)}]
            rid = store.add_round("aeig", {}, None, [(i, 0.5) for i in free[:budget]])
            store.finish_job(job, round_id=rid)

        threading.Thread(target=run, daemon=True).start()
        return job


def _serve(proj: Path, start_job) -> Iterator[str]:
    return serve_in_thread(proj, start_job=start_job)


@pytest.fixture
def job() -> SlowJob:
    return SlowJob()


@pytest.fixture
def served(tmp_path: Path, bloodmnist_path: Path, job: SlowJob) -> Iterator[tuple[str, Path]]:
    """40 BloodMNIST images; round 1 = 6 queries (one validation draw) with predictions."""
    from medactive.annotate.project import init_from_npz

    proj = tmp_path / "blood"
    with init_from_npz(proj, bloodmnist_path, "train", limit=40) as store:
        ids = [i.id for i in store.images()]
        store.add_round("aeig", {"budget": 6}, None, [(ids[k], 0.9 - k / 10) for k in range(6)],
                        ["acquire", "validation", "acquire", "acquire", "acquire", "acquire"],
                        _predictions(ids, len(store.classes())))
    yield from ((url, proj) for url in _serve(proj, job))


@pytest.fixture(scope="module")
def browser():  # one browser for the module; each page gets its own context (cookies, storage)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, url: str, name: str):
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{url}/")
    page.fill("#annotator", name)
    page.locator("#annotator").press("Tab")
    expect(page.locator("#progress")).not_to_have_text("0 / 0")
    page.locator("#viewer").click()
    page.errors = errors
    return page


@pytest.mark.browser
def test_why_this_image(served, browser) -> None:
    from playwright.sync_api import expect

    url, proj = served
    page = _open(browser, url, "dr-a")
    # the strategy, its score with what it means, and the rank (test_browser_page.py covers
    # every case of "why this image")
    expect(page.locator("#whytext")).to_contain_text("chosen by aeig")
    expect(page.locator("#whytext")).to_contain_text("information gain 0.90 nats")
    expect(page.locator("#whytext")).to_contain_text("rank 1 of 6 in round 1")
    expect(page.locator("#preds")).to_contain_text("hidden until you answer")
    expect(page.locator("#mixbar .chip")).to_have_count(6)  # the query's predicted mix
    page.keyboard.press("2")
    expect(page.locator("#whytext")).to_contain_text("validation sample")
    expect(page.locator("#lasttext")).to_contain_text("you said eosinophil")
    expect(page.locator("#lasttext .pred")).to_have_count(3)  # top-3 revealed after answering
    expect(page.locator("#lasttext .pred").first).to_contain_text("basophil")
    with ProjectStore.open(proj) as store:
        update_settings(store, show_predictions="first")
    page.reload()
    expect(page.locator("#preds .pred")).to_have_count(3)
    assert page.errors == []


@pytest.mark.browser
def test_two_readers_undo_and_adjudication(served, browser) -> None:
    from playwright.sync_api import expect

    url, proj = served
    with ProjectStore.open(proj) as store:
        update_settings(store, reads_per_image=2)
    a, b = _open(browser, url, "dr-a"), _open(browser, url, "dr-b")
    a.keyboard.press("1")
    expect(a.locator("#progress")).to_have_text("1 / 6")
    b.keyboard.press("3")  # disagrees on the first image
    expect(b.locator("#progress")).to_have_text("1 / 6")
    b.keyboard.press("z")  # B's undo withdraws B's answer only
    expect(b.locator("#progress")).to_have_text("0 / 6")
    a.reload()
    expect(a.locator("#progress")).to_have_text("1 / 6")
    b.keyboard.press("3")
    b.click("button[data-tab=adjudicate]")
    row = b.locator("#distable tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("dr-a: basophil · dr-b: erythroblast")
    expect(row).to_contain_text("unresolved")
    row.locator("select").select_option("basophil")
    row.locator("button.small").click()
    expect(row).to_contain_text("basophil (adjudicated)")
    b.click("button[data-tab=stats]")
    expect(b.locator("#rounds tbody tr")).to_have_count(1)
    expect(b.locator("#perclass tbody tr").first).to_contain_text("basophil1")
    with ProjectStore.open(proj) as store:
        assert {(x.annotator) for x in store.reader_answers()} == {"dr-a", "dr-b"}
        assert [r[2] for r in store.history()] == ["label", "label", "retract", "label"]
    assert a.errors == [] and b.errors == []


@pytest.mark.browser
def test_reader_token_sign_in(served, browser) -> None:
    from playwright.sync_api import expect

    url, proj = served
    with ProjectStore.open(proj) as store:
        token = store.add_reader("dr-a")
    page = _open(browser, url, "dr-a")
    expect(page.locator("#signin")).to_be_visible()
    page.keyboard.press("1")
    expect(page.locator("#msg")).to_contain_text("sign in")
    page.fill("#token", token)
    page.click("#signinbtn")
    expect(page.locator("#signin")).to_be_hidden()
    page.locator("#viewer").click()
    page.keyboard.press("1")
    expect(page.locator("#progress")).to_have_text("1 / 6")
    with ProjectStore.open(proj) as store:
        assert [x.annotator for x in store.reader_answers()] == ["dr-a"]


@pytest.mark.browser
def test_next_round_job(served, browser, job: SlowJob) -> None:
    from playwright.sync_api import expect

    url, proj = served
    page = _open(browser, url, "dr-a")
    page.fill("#budget", "5")
    page.click("#nextround")  # round 1 is open: closing it takes a second, deliberate click
    page.click("#forceround")
    expect(page.locator("#jobbox")).to_contain_text("pre-training 30%")
    expect(page.locator("#nextround")).to_be_disabled()  # one job at a time
    page.reload()  # the page survives a reload while the job runs
    expect(page.locator("#jobbox")).to_contain_text("pre-training 30%")
    page.locator("#viewer").click()
    page.keyboard.press("1")  # labels keep being accepted during the job
    expect(page.locator("#progress")).to_have_text("1 / 6")
    job.release.set()
    # the reader is mid-round: the page says a new round exists instead of swapping the image
    expect(page.locator("#roundnotice")).to_contain_text("Round 2 has started", timeout=10000)
    page.click("#reloadbtn")
    expect(page.locator("#round")).to_have_text("round 2 · aeig")
    expect(page.locator("#progress")).to_have_text("0 / 5")
    expect(page.locator("#jobbox")).to_be_hidden()
    with ProjectStore.open(proj) as store:
        assert len(store.reader_answers()) == 1  # the answer given meanwhile is kept
    job.fail, job.release = True, threading.Event()
    page.click("#nextround")
    page.click("#forceround")
    job.release.set()
    expect(page.locator("#jobbox")).to_contain_text("next round failed: cannot read <path>",
                                                    timeout=10000)
    assert str(proj) not in page.locator("#jobbox").inner_text()
    assert page.errors == []


@pytest.mark.browser
def test_gallery_filter_and_jump(served, browser) -> None:
    from playwright.sync_api import expect

    url, _ = served
    page = _open(browser, url, "dr-a")
    page.keyboard.press("u")
    expect(page.locator("#progress")).to_have_text("1 / 6")  # one request at a time
    page.keyboard.press("s")
    expect(page.locator("#progress")).to_have_text("1 / 6 · 1 skipped")  # not done
    page.click("button[data-tab=gallery]")
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(6)
    expect(cards.nth(0)).to_contain_text("unsure")
    expect(cards.nth(1)).to_contain_text("validation")
    page.select_option("#filter", "skipped")
    expect(cards).to_have_count(1)
    page.select_option("#filter", "unsure")
    expect(cards).to_have_count(1)
    page.select_option("#filter", "all")
    expect(cards).to_have_count(6)
    expect(page.locator("#grid .card img").first).to_have_js_property("complete", True)
    assert page.locator("#grid .card img").first.evaluate("e => e.naturalWidth") > 0
    target = cards.nth(4).get_attribute("data-image-id")
    cards.nth(4).click()  # jump to any image of the round
    expect(page.locator("#img")).to_have_attribute("data-image-id", target)
    expect(page.locator("#meta")).to_contain_text("picked in the gallery")
    page.locator("#viewer").click()
    page.keyboard.press("2")
    page.click("button[data-tab=gallery]")
    expect(page.locator(f"#grid .card[data-image-id='{target}']")).to_contain_text(
        "you: eosinophil")
    assert page.errors == []
