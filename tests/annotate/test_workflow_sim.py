"""A simulated three-round BloodMNIST project with two readers, one of them noisy.

Each round: ``project query`` (round 1 cold start with HaCon, then AEIG; a fifth of each
budget is the random validation draw), both readers answer every image (double reading) as the
page would record them, a lead adjudicates the disagreements. Then ``project status`` shows the
readers' κ, the adjudications, the validation AUC of each round's model and the
stabilizing-predictions κ. The docs walkthrough (docs/labelling.md) is this project; its
screenshots come from ``test_walkthrough_screenshots`` (``MEDACTIVE_UPDATE_SCREENSHOT=1``
copies them to docs/img/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from tests.annotate.conftest import serve_in_thread

from medactive.annotate.consensus import decisions
from medactive.annotate.monitor import project_progress
from medactive.annotate.store import ProjectStore
from medactive.cli import main
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART

N_IMAGES = 600
BUDGET = 30
NOISE = 0.3  # the noisy reader's share of wrong answers
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
CHROMIUM = Path("/usr/bin/chromium")  # as in test_browser.py
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


def _truth(uid: str, blood) -> int:
    return int(blood.train.labels[int(uid.split("-")[1])])


def _read_round(proj: Path, blood, rng: np.random.Generator) -> None:
    """Both readers answer the latest round; the lead adjudicates every disagreement."""
    with ProjectStore.open(proj) as store:
        names, rnd = store.classes(), store.latest_round()
        for q in store.queue(rnd.id):
            true = _truth(q.uid, blood)
            store.record(q.image_id, names[true], "dr-lee", rnd.id)
            noisy = true if rng.random() >= NOISE else int(
                rng.choice([c for c in range(len(names)) if c != true]))
            store.record(q.image_id, names[noisy], "dr-noisy", rnd.id)
        for d in decisions(store).values():
            if d.status == "unresolved":
                uid = store.image(d.image_id).uid
                store.adjudicate(d.image_id, names[_truth(uid, blood)], "dr-lead")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory, bloodmnist_path: Path, blood) -> Path:
    proj = tmp_path_factory.mktemp("sim") / "blood"
    assert main(["project", "init", str(proj), "--from-npz", str(bloodmnist_path),
                 "--split", "train", "--limit", str(N_IMAGES)]) == 0
    assert main(["project", "settings", str(proj), "--reads-per-image", "2",
                 "--pretrain-epochs", "2", "--stop-sample", "300"]) == 0
    rng = np.random.default_rng(0)
    for _ in range(3):
        assert main(["project", "query", str(proj), "--budget", str(BUDGET)]) == 0
        _read_round(proj, blood, rng)
    return proj


@pytest.mark.slow
def test_simulated_three_rounds(simulated: Path, blood, capsys) -> None:
    with ProjectStore.open(simulated) as store:
        rounds = store.rounds()
        assert [r.strategy for r in rounds] == [DEFAULT_COLDSTART] + [DEFAULT_ACQUISITION] * 2
        val = store.validation_ids()
        queues = [store.queue(r.id) for r in rounds]
        assert all(sum(q.purpose == "validation" for q in queue) >= 6 for queue in queues)
        # later rounds evaluate on the validation sample (scored out of fold: crossfit default)
        assert rounds[2].params["evaluation_set"] == "validation"
        earlier = {q.image_id for queue in queues[:2] for q in queue if q.purpose == "validation"}
        assert rounds[2].params["evaluation_n"] == len(earlier)  # labelled before round 3
        adjudicated = store.adjudications()
        progress = project_progress(store)
    assert len(adjudicated) >= 5  # the noisy reader disagreed, the lead settled it
    assert progress.unresolved == 0
    assert sum(progress.validation_per_class.values()) == len(val)
    assert sum(progress.train_per_class.values()) + len(val) == 3 * BUDGET
    for r in progress.rounds:
        assert r.agreement.method == "cohen" and 0.3 < r.agreement.kappa < 0.95
    aucs = [r.validation_auc for r in progress.rounds]
    assert aucs[0] is None and all(0.6 < a <= 1 for a in aucs[1:])  # round 1 had no model
    assert progress.rounds[1].validation_n == len(val)  # every model scored on the same sample
    kappas = [r.stability_kappa for r in progress.rounds]
    assert kappas[:2] == [None, None] and 0 < kappas[2] <= 1
    assert not progress.consider_stopping and "needs 3 consecutive rounds" in progress.stop_reason

    assert main(["project", "status", str(simulated)]) == 0
    out = capsys.readouterr().out
    with capsys.disabled():
        print(out)  # the docs walkthrough quotes this (pytest -s)
    assert "readers' agreement (cohen κ, 90 images, dr-lee, dr-noisy)" in out
    assert "stopping: needs 3 consecutive rounds with a κ (have 1)" in out
    assert DEFAULT_ACQUISITION in out and f"({len(val)})" in out
    # a lower bar over one round: the same signal says "consider stopping"
    assert main(["project", "settings", str(simulated), "--stop-kappa", "0.01",
                 "--stop-rounds", "1"]) == 0
    assert main(["project", "status", str(simulated)]) == 0
    assert "consider stopping" in capsys.readouterr().out
    assert main(["project", "settings", str(simulated), "--stop-kappa", "0.99",
                 "--stop-rounds", "3"]) == 0


def _serve(proj: Path) -> Iterator[str]:
    return serve_in_thread(proj)


@pytest.mark.slow
@pytest.mark.browser
def test_walkthrough_screenshots(simulated: Path, tmp_path: Path) -> None:
    """The finished project in Chromium: the progress tab shows κ, validation AUC and the
    stopping signal; the adjudication tab the settled disagreements; then a fourth round is
    queued and labelled with the model's guess revealed after each answer."""
    from playwright.sync_api import expect, sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium package")
    assert main(["project", "query", str(simulated), "--budget", "20"]) == 0
    shots = {}
    server = _serve(simulated)
    url = next(server)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            try:
                page = browser.new_page(viewport={"width": 1366, "height": 768})
                problems: list[str] = []
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(f"{url}/")
                page.fill("#annotator", "dr-lee")
                page.locator("#annotator").press("Tab")
                expect(page.locator("#progress")).to_have_text("0 / 20")
                expect(page.locator("#mixbar .chip").first).to_be_visible()
                page.locator("#viewer").click()
                page.keyboard.press("1")
                expect(page.locator("#progress")).to_have_text("1 / 20")
                expect(page.locator("#lasttext .pred").first).to_be_visible()
                expect(page.locator("#img")).to_have_js_property("complete", True)
                shots["label"] = tmp_path / "labelling.png"
                page.screenshot(path=str(shots["label"]))
                page.click("button[data-tab=gallery]")
                expect(page.locator("#grid .card").first).to_be_visible()
                expect(page.locator("#grid .card img").last).to_have_js_property("complete",
                                                                                  True)
                shots["gallery"] = tmp_path / "gallery.png"
                page.screenshot(path=str(shots["gallery"]))
                page.click("button[data-tab=adjudicate]")
                expect(page.locator("#distable tbody tr").first).to_be_visible()
                shots["adjudicate"] = tmp_path / "adjudicate.png"
                page.screenshot(path=str(shots["adjudicate"]))
                page.click("button[data-tab=stats]")
                expect(page.locator("#rounds tbody tr")).to_have_count(4)
                expect(page.locator("#plot-auc circle")).to_have_count(3)  # rounds with a model
                expect(page.locator("#plot-classes polyline")).to_have_count(8)
                expect(page.locator("#stop")).to_contain_text("Stopping")
                expect(page.locator("#agree")).to_contain_text("Cohen's κ")
                shots["progress"] = tmp_path / "progress.png"
                page.screenshot(path=str(shots["progress"]))
                assert problems == []
            finally:
                browser.close()
    finally:
        server.close()
    for name, shot in shots.items():
        assert 10_000 < shot.stat().st_size < 400_000, name
        if os.environ.get("MEDACTIVE_UPDATE_SCREENSHOT") == "1":
            DOCS_IMG.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, DOCS_IMG / f"labelling-{name}.png")
