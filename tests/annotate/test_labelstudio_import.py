"""Label Studio JSON exports imported back into a project: the round trip, the refusals (one
line naming the task ids, nothing written), idempotence and edits keyed by annotation id, and
the ledger's crash safety."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.annotate.conftest import CLASSES

from medactive.annotate.exports import export_file
from medactive.annotate.labelstudio.importer import import_labelstudio_export
from medactive.annotate.labelstudio.ledger import Ledger
from medactive.annotate.labelstudio.recorder import Recorder
from medactive.annotate.labelstudio.tasks import LabelStudioError, LsAnswer
from medactive.annotate.store import ProjectStore
from medactive.errors import StoreError


def choice(name: str) -> list[dict[str, Any]]:
    return [{"from_name": "label", "to_name": "image", "type": "choices",
             "value": {"choices": [name]}}]


def annotation(ann_id: int, task: int, result: list | None = None, user: Any = 1,
               cancelled: bool = False) -> dict[str, Any]:
    """One annotation as Label Studio 1.23's JSON export writes it (fields it always has)."""
    return {"id": ann_id, "completed_by": user, "result": result or [],
            "was_cancelled": cancelled, "ground_truth": False, "task": task, "project": 7,
            "created_at": "2026-01-05T10:00:00.000000Z", "updated_at": "2026-01-05T10:00:00.0Z",
            "lead_time": 3.2, "prediction": {}, "result_count": len(result or [])}


def ls_export(store: ProjectStore, tmp: Path, prefix: str = "/data/local-files/?d=") -> list:
    """medactive's Label Studio tasks as Label Studio exports them again: with ids and
    annotations (none yet)."""
    path = tmp / "tasks.json"
    export_file(store, path, "labelstudio", image_prefix=prefix)
    tasks = json.loads(path.read_text())
    for k, task in enumerate(tasks, start=1):
        task.update(id=k, project=7, annotations=[], drafts=[])
    return tasks


def write(tmp: Path, tasks: Any, name: str = "export.json") -> Path:
    path = tmp / name
    path.write_text(json.dumps(tasks))
    return path


def reader_answers(store: ProjectStore) -> dict[tuple[str, str], str]:
    names = store.classes()
    return {(a.uid, a.annotator): a.display(names) for a in store.reader_answers()}


@pytest.fixture
def round1(project: ProjectStore) -> ProjectStore:
    ids = [i.id for i in project.images()]
    project.add_round("aeig", {"budget": 4}, None, [(ids[k], 0.9 - k / 10) for k in range(4)])
    return project


def test_round_trip_readers_skips_and_rounds(round1: ProjectStore, tmp_path: Path) -> None:
    tasks = ls_export(round1, tmp_path)
    alice = {"id": 3, "email": "alice@clinic.org", "first_name": "", "last_name": ""}
    tasks[0]["annotations"] = [annotation(11, 1, choice("benign"), alice),
                               annotation(12, 1, choice("Malignant"), 4)]  # case ignored
    tasks[1]["annotations"] = [annotation(13, 2, cancelled=True, user=alice)]
    tasks[2]["annotations"] = [annotation(14, 3, [], alice)]  # submitted without a class
    tasks[6]["annotations"] = [annotation(15, 7, choice("normal"), alice)]  # not in the round
    summary = import_labelstudio_export(round1, write(tmp_path, tasks))

    assert summary.outcome.as_dict() == {"recorded": 5, "changed": 0, "withdrawn": 0,
                                         "unchanged": 0}
    assert (summary.tasks, summary.annotations, summary.skips) == (len(tasks), 5, 1)
    uid = [t["data"]["medactive_id"] for t in tasks]
    assert reader_answers(round1) == {
        (uid[0], "alice@clinic.org"): "benign", (uid[0], "labelstudio-user-4"): "malignant",
        (uid[2], "alice@clinic.org"): "unsure", (uid[6], "alice@clinic.org"): "normal"}
    rows = {(r[1], r[2]): r for r in round1.history()}
    ids = {i.uid: i.id for i in round1.images()}
    assert rows[(ids[uid[1]], "skip")][5] == 1  # a skip of a queried image, in its round
    assert rows[(ids[uid[6]], "label")][5] is None  # outside the round: like an imported label
    assert round1.skipped(1) == {ids[uid[1]]}


def test_reimport_changes_nothing_and_edits_retract(round1: ProjectStore,
                                                    tmp_path: Path) -> None:
    tasks = ls_export(round1, tmp_path)
    tasks[0]["annotations"] = [annotation(21, 1, choice("benign"))]
    tasks[1]["annotations"] = [annotation(22, 2, choice("normal"))]
    path = write(tmp_path, tasks)
    import_labelstudio_export(round1, path)
    before = round1.history()
    again = import_labelstudio_export(round1, path)
    assert again.outcome.as_dict()["unchanged"] == 2 and round1.history() == before

    tasks[0]["annotations"] = [annotation(21, 1, choice("malignant"))]  # edited in LS
    changed = import_labelstudio_export(round1, write(tmp_path, tasks, "later.json"))
    assert changed.outcome.as_dict() == {"recorded": 0, "changed": 1, "withdrawn": 0,
                                         "unchanged": 1}
    kinds = [r[2] for r in round1.history()]
    assert kinds == ["label", "label", "retract", "label"]  # the old answer withdrawn first
    uid0 = tasks[0]["data"]["medactive_id"]
    assert reader_answers(round1)[(uid0, "labelstudio-user-1")] == "malignant"
    with Ledger.open(round1.dir) as ledger:
        entry = ledger.get(7, 21)
        assert entry is not None and entry.answer == "malignant" and entry.pending is None
        assert entry.label_id == round1.history()[-1][0]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda t: t[0]["annotations"].append(annotation(31, 1, choice("tumour"))),
     "task 1: choice 'tumour' is not a class of the project"),
    (lambda t: t[2]["data"].update(image="/data/local-files/?d=nope.png", medactive_id="nope.png"),
     "task 3: image 'nope.png' is not in the project"),
    (lambda t: t[0]["annotations"].append(annotation(31, 1, choice("benign") + choice("normal"))),
     "task 1: annotation 31 chose several classes ['benign', 'normal']"),
    (lambda t: t[3]["data"].update(medactive_id=t[4]["data"]["medactive_id"]),
     "task 4: data.image and data.medactive_id name different images"),
    (lambda t: t[1]["annotations"].extend([annotation(33, 2, choice("normal"))] * 2),
     "task 2: annotation 33 appears twice"),
])
def test_refusals_name_the_task_and_write_nothing(round1: ProjectStore, tmp_path: Path,
                                                  mutate: Any, message: str) -> None:
    tasks = ls_export(round1, tmp_path)
    tasks[0]["annotations"] = [annotation(30, 1, choice("benign"))]  # a good one: not written
    tasks[2]["annotations"] = [annotation(32, 3, choice("normal"))]
    mutate(tasks)
    with pytest.raises(LabelStudioError, match="import rejected, nothing written") as err:
        import_labelstudio_export(round1, write(tmp_path, tasks))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert round1.history() == []
    with Ledger.open(round1.dir) as ledger:
        assert ledger.entries() == []


def test_every_problem_is_counted(round1: ProjectStore, tmp_path: Path) -> None:
    tasks = ls_export(round1, tmp_path)
    for k, task in enumerate(tasks[:8]):
        task["annotations"] = [annotation(40 + k, k + 1, choice("tumour"))]
    with pytest.raises(LabelStudioError) as err:
        import_labelstudio_export(round1, write(tmp_path, tasks))
    text = str(err.value)
    assert "task 1:" in text and "task 5:" in text and "task 6:" not in text
    assert text.endswith("(and 3 more)")


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not JSON (Expecting property name"),
    ('{"tasks": []}', "not a Label Studio JSON export (expected a list of tasks, found dict)"),
    ("[1, 2]", "item 0 is not a task object"),
    ('[{"id": 1, "image": "x.png", "label": "benign", "annotator": "a@b", '
     '"annotation_id": 3}]', "this is a JSON-MIN export; export the project as JSON"),
    ('[{"id": 1, "data": {"image": "x"}}]', "task 1 has no 'annotations' list"),
    ('[{"id": 1, "data": {"medactive_id": "x"}, "annotations": {"id": 2}}]',
     "task 1: 'annotations' is not a list"),
])
def test_malformed_files(round1: ProjectStore, tmp_path: Path, content: str,
                         message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LabelStudioError, match=r"bad\.json: ") as err:
        import_labelstudio_export(round1, path)
    assert message in str(err.value)
    assert round1.history() == []


def test_missing_file(round1: ProjectStore, tmp_path: Path) -> None:
    with pytest.raises(LabelStudioError, match="file not found"):
        import_labelstudio_export(round1, tmp_path / "absent.json")


def test_custom_prefix_and_bare_reference(round1: ProjectStore, tmp_path: Path) -> None:
    tasks = ls_export(round1, tmp_path, prefix="/data/local-files/?d=scans/")
    assert tasks[0]["data"]["image"].startswith("/data/local-files/?d=scans/")
    for task in tasks:
        del task["data"]["medactive_id"]  # matched by the reference alone
    tasks[0]["annotations"] = [annotation(51, 1, choice("normal"))]
    with pytest.raises(LabelStudioError) as err:
        import_labelstudio_export(round1, write(tmp_path, tasks))
    assert ("task 1: image 'scans/a/img001.png' is not in the project (exported with "
            "--image-prefix '/data/local-files/?d=scans/'?)") in str(err.value)
    with pytest.raises(LabelStudioError, match=r"task 1: data\.image '/data/local-files/"):
        import_labelstudio_export(round1, write(tmp_path, tasks), image_prefix="/files/")
    summary = import_labelstudio_export(round1, write(tmp_path, tasks),
                                        image_prefix="/data/local-files/?d=scans/")
    assert summary.outcome.as_dict()["recorded"] == 1


def test_retract_one_given_record(project: ProjectStore) -> None:
    img = project.images()[0].id
    first = project.record(img, "benign", "ann")
    project.record(img, "normal", "ann")
    assert project.retract(first, "ann") is True
    assert project.retract(first, "ann") is False  # already withdrawn: nothing appended
    assert [r[2] for r in project.history()] == ["label", "label", "retract"]
    assert project.current_answers()[img].display(CLASSES) == "normal"
    with pytest.raises(StoreError, match="no answer record 999"):
        project.retract(999, "ann")
    retraction = project.history()[-1][0]
    with pytest.raises(StoreError, match=f"no answer record {retraction}"):
        project.retract(retraction, "ann")


def _answer(store: ProjectStore, ann: int, image: int, answer: str) -> LsAnswer:
    return LsAnswer(7, ann, ann, image, answer, "dr-a", "t")


@pytest.mark.parametrize("crash_in", ["record", "finish"])
def test_killed_between_store_and_ledger_loses_nothing_and_doubles_nothing(
        round1: ProjectStore, monkeypatch: pytest.MonkeyPatch, crash_in: str) -> None:
    """A process killed after the intent (before or after the store's write) leaves it pending;
    the next recorder completes it: exactly one live record."""
    img = round1.images()[0].id
    ledger = Ledger.open(round1.dir)
    target = (round1, "record") if crash_in == "record" else (ledger, "finish")

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(target[0], target[1], killed)
    with pytest.raises(KeyboardInterrupt):
        Recorder(round1, ledger).apply(_answer(round1, 61, img, "benign"))
    monkeypatch.undo()
    assert len(ledger.pending()) == 1
    assert len(round1.history()) == (1 if crash_in == "finish" else 0)

    recorder = Recorder(round1, ledger)  # the restarted process
    assert recorder.recover() == 1
    assert ledger.pending() == []
    assert [r[2] for r in round1.history()] == ["label"]
    assert recorder.apply(_answer(round1, 61, img, "benign")) == "unchanged"  # redelivered
    ledger.close()


def test_killed_during_an_edit(round1: ProjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    img = round1.images()[0].id
    with Ledger.open(round1.dir) as ledger:
        Recorder(round1, ledger).apply(_answer(round1, 71, img, "benign"))
        monkeypatch.setattr(round1, "record", lambda *a, **k: (_ for _ in ()).throw(
            KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):  # killed after withdrawing the old answer
            Recorder(round1, ledger).apply(_answer(round1, 71, img, "normal"))
        monkeypatch.undo()
        assert round1.current_answers() == {}  # withdrawn, the new one not yet written
        recorder = Recorder(round1, ledger)
        recorder.recover()
        assert [r[2] for r in round1.history()] == ["label", "retract", "label"]
        assert round1.current_answers()[img].display(CLASSES) == "normal"
        assert recorder.withdraw(7, 71) == "withdrawn"
        assert recorder.withdraw(7, 71) == "unchanged"
        assert round1.current_answers() == {}


def test_project_import_reads_a_label_studio_export_from_the_command_line(
        round1: ProjectStore, tmp_path: Path, capsys: Any) -> None:
    from medactive.cli import main

    tasks = ls_export(round1, tmp_path)
    tasks[0]["annotations"] = [annotation(41, 1, choice("benign"))]
    tasks[1]["annotations"] = [annotation(42, 2, cancelled=True)]
    path = write(tmp_path, tasks)
    project = round1.dir
    round1.close()
    assert main(["project", "import", str(project), str(path)]) == 0
    assert "read 2 annotation(s)" in capsys.readouterr().out
    # the CSV's options do not apply, and a bad export is one line, exit 2
    assert main(["project", "import", str(project), str(path), "--set", "validation"]) == 2
    assert "apply to a CSV" in capsys.readouterr().err
    tasks[0]["annotations"] = [annotation(43, 1, choice("tumour"))]
    assert main(["project", "import", str(project), str(write(tmp_path, tasks, "b.json"))]) == 2
    err = capsys.readouterr().err
    assert "task 1" in err and "Traceback" not in err and err.count("\n") == 1
    with ProjectStore.open(project) as store:
        assert len(store.reader_answers()) == 1
