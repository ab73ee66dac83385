"""Issue 20 item 9: one CSV reader for ``project init --labels`` and ``project import``, with
the habits a clinic brings (other column names, other case, bare file names, duplicates, a
validation CSV). Every refusal: one line, exit 2, nothing written."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medactive.annotate.store import ProjectStore
from medactive.cli import main

CLASSES = "benign,malignant,normal"


def _init(tmp_path: Path, folder: Path, *extra: str) -> Path:
    proj = tmp_path / "proj"
    assert main(["project", "init", str(proj), "--images", str(folder), "--classes", CLASSES,
                 *extra]) == 0
    return proj


def _import(proj: Path, tmp_path: Path, body: str, *extra: str) -> int:
    path = tmp_path / "labels.csv"
    path.write_text(body)
    return main(["project", "import", str(proj), str(path), *extra])


def _one_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _answers(proj: Path) -> dict[str, str]:
    with ProjectStore.open(proj) as store:
        names = store.classes()
        uid = {img.id: img.uid for img in store.images()}
        return {uid[i]: a.display(names) for i, a in store.current_answers().items()}


@pytest.mark.parametrize("body", [
    "filename,diagnosis\na/img001.png,benign\nb/img000.png,normal\n",
    "Image,Class\na/img001.png,benign\nb/img000.png,normal\n",
    "path,level,notes\na/img001.png,benign,x\nb/img000.png,normal,y\n",
    # Excel's "CSV UTF-8" with a byte-order mark
    "\ufeffimage_id,label\na/img001.png,benign\nb/img000.png,normal\n",
])
def test_columns_are_detected(tmp_path, image_folder, capsys, body) -> None:
    proj = _init(tmp_path, image_folder)
    assert _import(proj, tmp_path, body) == 0
    assert "imported 2 labels" in capsys.readouterr().out
    assert _answers(proj) == {"a/img001.png": "benign", "b/img000.png": "normal"}


def test_columns_named_explicitly(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    body = "scan,reader1,finding\na/img001.png,malignant,benign\n"
    assert _import(proj, tmp_path, body, "--id-column", "scan", "--label-column",
                   "Finding") == 0
    assert _answers(proj) == {"a/img001.png": "benign"}
    assert _import(proj, tmp_path, body, "--id-column", "nope") == 2
    _one_error(capsys, "no column 'nope'", "--id-column", "columns: scan, reader1, finding")


def test_class_names_ignore_case(tmp_path, image_folder) -> None:
    proj = _init(tmp_path, image_folder)
    assert _import(proj, tmp_path, "image,label\na/img001.png,Benign\nb/img000.png,NORMAL\n"
                   "a/img003.png,Unsure\n") == 0
    assert _answers(proj) == {"a/img001.png": "benign", "b/img000.png": "normal",
                              "a/img003.png": "unsure"}


def test_bare_file_names_are_matched(tmp_path, image_folder) -> None:
    proj = _init(tmp_path, image_folder)
    assert _import(proj, tmp_path, "file,label\nimg001.png,benign\nimg000,normal\n") == 0
    assert _answers(proj) == {"a/img001.png": "benign", "b/img000.png": "normal"}


def test_ambiguous_bare_names_are_refused_naming_them(tmp_path, image_folder, capsys) -> None:
    folder = image_folder
    (folder / "b" / "img001.png").write_bytes((folder / "a" / "img001.png").read_bytes())
    proj = _init(tmp_path, folder)
    assert _import(proj, tmp_path, "file,label\nimg001.png,benign\nimg000.png,normal\n") == 2
    _one_error(capsys, "ambiguous", "'img001.png' could be a/img001.png or b/img001.png")
    assert _answers(proj) == {}


def test_duplicates_identical_once_conflicting_refused(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    body = "image,label\na/img001.png,benign\nimg001.png,Benign\nb/img000.png,normal\n"
    assert _import(proj, tmp_path, body) == 0
    assert "imported 2 labels (1 duplicate row(s) taken once)" in capsys.readouterr().out
    with ProjectStore.open(proj) as store:
        before = store.history()
    body = "image,label\na/img003.png,benign\nb/img002.png,normal\nimg003,malignant\n"
    assert _import(proj, tmp_path, body) == 2
    _one_error(capsys, "conflicting labels", "'a/img003.png' is 'benign' on row 2 but "
                       "'malignant' on row 4")
    with ProjectStore.open(proj) as store:
        assert store.history() == before  # nothing written


@pytest.mark.parametrize("body, needles", [
    ("image,label\na/img001.png,benign\nnope.png,benign\n", ("unknown image id", "'nope.png'")),
    ("image,label\na/img001.png,cancer\n", ("unknown class", "'cancer'", "case does not")),
    ("image,label\na/img001.png,\n", ("row 2", "empty label")),
    ("image,label\n", ("header but no rows",)),
    ("image\na/img001.png\n", ("no label column found", "--label-column")),
])
def test_refusals_write_nothing(tmp_path, image_folder, capsys, body, needles) -> None:
    proj = _init(tmp_path, image_folder)
    capsys.readouterr()
    assert _import(proj, tmp_path, body) == 2
    _one_error(capsys, *needles)
    with ProjectStore.open(proj) as store:
        assert store.history() == []


def test_other_file_types_are_refused_by_suffix(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    path = tmp_path / "labels.xlsx"
    path.write_text("not a spreadsheet")
    assert main(["project", "import", str(proj), str(path)]) == 2
    _one_error(capsys, "cannot import .xlsx files; known: .csv, .json (a Label Studio export)")


def test_import_into_the_validation_sample(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    assert _import(proj, tmp_path, "image,label\nimg001,benign\nimg000,normal\n",
                   "--set", "validation") == 0
    assert "imported 2 labels into the validation sample" in capsys.readouterr().out
    with ProjectStore.open(proj) as store:
        val = {store.image(i).uid for i in store.validation_ids()}
        assert val == {"a/img001.png", "b/img000.png"}
        assert [r.strategy for r in store.rounds()] == ["import"]
        assert all(q.done for q in store.queue(store.rounds()[0].id))
    assert main(["project", "status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "       0          1  benign" in out and "       0          1  normal" in out
    exported = tmp_path / "out.csv"
    assert main(["project", "export", str(proj), "-o", str(exported)]) == 0
    assert {r["image_id"]: r["set"] for r in csv.DictReader(exported.open())} == {
        "a/img001.png": "validation", "b/img000.png": "validation"}
    # training labels still go to training; an answered image cannot become validation
    assert _import(proj, tmp_path, "image,label\nimg003,benign\n") == 0
    capsys.readouterr()
    assert _import(proj, tmp_path, "image,label\nimg003,benign\n", "--set", "validation") == 2
    _one_error(capsys, "already have an answer", "a/img003.png", "never have been trained on")


def test_validation_import_waits_for_an_open_round(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    with ProjectStore.open(proj) as store:
        ids = [img.id for img in store.images()]
        store.add_round("random", {}, None, [(ids[0], None), (ids[1], None)])
        before = store.history()
    assert _import(proj, tmp_path, "image,label\nimg005,benign\n", "--set", "validation") == 2
    _one_error(capsys, "round 1 still has 2 unanswered image(s)")
    assert _import(proj, tmp_path, "image,label\nimg005,benign\n", "--set", "test") == 2
    _one_error(capsys, "--set must be training or validation")
    with ProjectStore.open(proj) as store:
        assert store.history() == before and len(store.rounds()) == 1


def test_init_labels_use_the_same_reader(tmp_path, image_folder, capsys) -> None:
    labels = tmp_path / "l.csv"
    labels.write_text("Scan,Finding\nimg001,BENIGN\nimg001.png,benign\nimg000,normal\n")
    proj = _init(tmp_path, image_folder, "--labels", str(labels), "--id-column", "scan",
                 "--label-column", "finding")
    assert _answers(proj) == {"a/img001.png": "benign", "b/img000.png": "normal"}
    labels.write_text("image,label\nimg001,benign\nimg001,normal\n")
    assert main(["project", "init", str(tmp_path / "p2"), "--images", str(image_folder),
                 "--classes", CLASSES, "--labels", str(labels)]) == 2
    _one_error(capsys, "conflicting labels", "row 2", "row 3")
    assert not (tmp_path / "p2").exists()
    assert main(["project", "init", str(tmp_path / "p3"), "--images", str(image_folder),
                 "--classes", CLASSES, "--id-column", "x"]) == 2
    _one_error(capsys, "apply to --labels")
