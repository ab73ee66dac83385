"""What the Progress page plots and `status` lists per round: the rounds' states (open,
complete, closed with images unanswered), labels per class over rounds, and the exports' own
account of what they wrote (issue 20, items 4, 8 and 11)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from fastapi.testclient import TestClient

from medactive.annotate.app import create_app
from medactive.annotate.monitor import project_progress
from medactive.annotate.store import ProjectStore
from medactive.cli import main


def _labels_reference(store: ProjectStore) -> dict[int, dict[str, int]]:
    """Cumulative current labels per class after each round, by brute force: an image counts
    from the first round that listed it (or from the start when imported)."""
    names = store.classes()
    first: dict[int, int] = {}
    for rnd in store.rounds():
        for row in store.queue(rnd.id):
            first.setdefault(row.image_id, rnd.id)
    out = {}
    for mark in [0] + [r.id for r in store.rounds()]:
        counts = dict.fromkeys(names, 0)
        for answer in store.current_answers().values():
            if answer.kind == "label" and first.get(answer.image_id, 0) <= mark:
                counts[names[answer.class_idx]] += 1
        out[mark] = counts
    return out


def test_round_states_and_labels_over_rounds(project: ProjectStore) -> None:
    ids = [i.id for i in project.images()]
    project.import_labels([(project.image(ids[11]).uid, "normal")], "import")
    project.add_round("random", {}, None, [(i, None) for i in ids[:4]])
    for i, answer in zip(ids[:4], ["benign", "benign", "malignant", "unsure"], strict=True):
        project.record(i, answer, "dr-a", 1)
    project.add_round("random", {}, None, [(i, None) for i in ids[4:8]])
    project.record(ids[4], "normal", "dr-a", 2)
    project.record(ids[5], "skip", "dr-a", 2)
    project.add_round("random", {}, None, [(i, None) for i in ids[8:10]])  # closes round 2
    project.record(ids[8], "benign", "dr-a", 3)
    progress = project_progress(project)
    states = [(r.id, r.state, r.open, r.skipped, r.closed_open, r.replaced_by)
              for r in progress.rounds]
    assert states == [(1, "complete", 0, 0, None, 2), (2, "closed", 3, 1, 3, 3),
                      (3, "open", 1, 0, None, None)]
    assert [r.state_text() for r in progress.rounds] == [
        "complete", "closed, 3 unanswered", "open: 1 to answer"]
    reference = _labels_reference(project)
    assert progress.labels_by_round == [{"round": m, "per_class": reference[m]}
                                        for m in (0, 1, 2, 3)]
    assert progress.labels_by_round[-1]["per_class"] == {"benign": 3, "malignant": 1,
                                                         "normal": 2}
    # an image of the closed round answered later counts for round 2 and after; the record
    # of how round 2 was closed does not change
    project.record(ids[6], "malignant", "dr-a", 3)
    again = project_progress(project)
    assert again.rounds[1].closed_open == 3 and again.rounds[1].open == 2
    assert again.labels_by_round[2]["per_class"]["malignant"] == 2


def test_a_project_from_before_the_record_judges_by_what_is_open(project: ProjectStore
                                                                  ) -> None:
    """Rounds recorded without ``closed_round`` (older medactive): a replaced round with open
    images is closed, one without is complete."""
    import sqlite3

    ids = [i.id for i in project.images()]
    project.add_round("random", {}, None, [(i, None) for i in ids[:2]])
    project.add_round("random", {}, None, [(i, None) for i in ids[2:4]])
    with sqlite3.connect(project.path) as con:  # as an older medactive wrote them
        con.execute("UPDATE rounds SET params = '{}'")
    states = [(r.state, r.closed_open) for r in project_progress(project).rounds]
    assert states == [("closed", 2), ("open", None)]


def test_exports_report_what_they_wrote(project: ProjectStore, tmp_path: Path,
                                        capsys) -> None:
    ids = [i.id for i in project.images()]
    project.add_round("random", {}, None, [(i, None) for i in ids[:3]])
    project.record(ids[0], "benign", "dr-a", 1)
    project.record(ids[1], "unsure", "dr-a", 1)
    project.record(ids[2], "skip", "dr-a", 1)
    project.close()
    out = {}
    for name, fmt in (("l.csv", []), ("h.json", []), ("t.json", ["--format", "labelstudio"])):
        assert main(["project", "export", str(project.dir), "-o", str(tmp_path / name),
                     *fmt]) == 0
        out[name] = capsys.readouterr().out.strip()
    rows = list(csv.DictReader((tmp_path / "l.csv").open()))
    assert out["l.csv"] == (f"wrote csv export of {len(rows)} labelled image(s) (12 in the "
                            f"project) to {tmp_path / 'l.csv'}") and len(rows) == 2
    history = json.loads((tmp_path / "h.json").read_text())
    assert out["h.json"].startswith(
        f"wrote json export of the full history: 12 image(s), 2 with a decided answer, "
        f"{len(history['labels'])} label record(s), 1 round(s)")
    tasks = json.loads((tmp_path / "t.json").read_text())
    assert out["t.json"] == (f"wrote labelstudio export of {len(tasks)} task(s) (1 with a "
                             f"label, 0 with a prediction) to {tmp_path / 't.json'}; labelling "
                             f"config: {tmp_path / 't.json'}.xml")


def test_page_offers_the_label_studio_config(project: ProjectStore) -> None:
    client = TestClient(create_app(project.dir), base_url="http://127.0.0.1:8765")
    assert client.get("/").status_code == 200
    r = client.get("/api/export/labelstudio-config")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert 'filename="label-studio-config.xml"' in r.headers["content-disposition"]
    assert '<Choices name="label" toName="image"' in r.text
    assert all(f'<Choice value="{c}"/>' in r.text for c in project.classes())
    page = client.get("/").text
    assert 'href="/api/export/labelstudio-config"' in page
