"""``medactive project init|status|export|import`` through the real CLI entry point."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medactive.annotate.store import ProjectStore
from medactive.cli import main


def _init(tmp_path: Path, image_folder: Path) -> Path:
    proj = tmp_path / "proj"
    assert main(["project", "init", str(proj), "--images", str(image_folder),
                 "--classes", "benign,malignant,normal"]) == 0
    return proj


def test_init_registers_without_copying(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    assert "12 images, 3 classes" in capsys.readouterr().out
    assert sorted(p.name for p in proj.iterdir()) == ["project.db"]  # nothing copied
    with ProjectStore.open(proj) as store:
        rows = store.images()
        assert rows[0].uid == "a/img001.png"
        assert Path(rows[0].path) == (image_folder / "a" / "img001.png").resolve()
        assert len(rows[0].sha256) == 64
        assert store.meta()["channels"] == 3


def test_import_export_status(tmp_path, image_folder, capsys) -> None:
    proj = _init(tmp_path, image_folder)
    labels = tmp_path / "labels.csv"
    labels.write_text("image_id,label\na/img001.png,benign\nb/img000.png,normal\n"
                      "a/img003.png,unsure\n")
    assert main(["project", "import", str(proj), str(labels), "--annotator", "dr-a"]) == 0
    assert main(["project", "status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert "12 images, 2 labelled, 1 unsure" in out and "rounds: 0" in out
    out_csv = tmp_path / "out.csv"
    assert main(["project", "export", str(proj), "-o", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert {(r["image_id"], r["label"], r["annotator"]) for r in rows} == {
        ("a/img001.png", "benign", "dr-a"), ("b/img000.png", "normal", "dr-a"),
        ("a/img003.png", "unsure", "dr-a")}


@pytest.mark.parametrize("body, message", [
    ("image_id,label\na/img001.png,benign\nnope.png,benign\n", "unknown image id"),
    ("image_id,label\na/img001.png,benign\nb/img000.png,cancer\n", "unknown class"),
    ("who,what\na/img001.png,benign\n", "no image id column found"),
    ("image,notes\na/img001.png,benign\n", "no label column found"),
])
def test_import_rejects_before_writing(tmp_path, image_folder, capsys, body, message) -> None:
    proj = _init(tmp_path, image_folder)
    bad = tmp_path / "bad.csv"
    bad.write_text(body)
    assert main(["project", "import", str(proj), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    with ProjectStore.open(proj) as store:
        assert store.history() == []


def test_init_with_labels_and_dicom(tmp_path) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "dicoms"
    folder.mkdir()
    for i in range(3):
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = generate_uid()
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset(str(folder / f"s{i}.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.Rows, ds.Columns = 16, 20
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = (np.arange(320, dtype=np.uint16) * (i + 1)).tobytes()
        ds.save_as(folder / f"s{i}.dcm", enforce_file_format=True)
    labels = tmp_path / "l.csv"
    labels.write_text("image_id,label\ns1.dcm,yes\n")
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(folder), "--classes", "yes,no",
                 "--labels", str(labels)]) == 0
    from medactive.data.decode import render_png
    from medactive.data.imagefiles import load_images

    with ProjectStore.open(proj) as store:
        assert store.meta()["channels"] == 1
        assert len(store.current_answers()) == 1
        paths = [r.path for r in store.images()]
    assert render_png(paths[0]).startswith(b"\x89PNG")
    arr = load_images(paths, 8, 1)
    assert arr.shape == (3, 8, 8, 1) and arr.max() > arr.min()


def test_init_with_bad_labels_creates_nothing(tmp_path, image_folder, capsys) -> None:
    labels = tmp_path / "l.csv"
    labels.write_text("image_id,label\na/img001.png,benign\na/missing.png,benign\n")
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(image_folder), "--classes",
                 "benign,malignant", "--labels", str(labels)]) == 2
    assert "unknown image id" in capsys.readouterr().err
    assert not (proj / "project.db").exists()  # a corrected re-run is not blocked


def test_init_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(tmp_path / "none"),
                 "--classes", "a,b"]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert main(["project", "status", str(tmp_path / "nothing")]) == 2
    assert "no project at" in capsys.readouterr().err


def test_init_from_npz(tmp_path, bloodmnist_path, capsys) -> None:
    proj = tmp_path / "blood"
    assert main(["project", "init", str(proj), "--from-npz", str(bloodmnist_path),
                 "--split", "train", "--limit", "20"]) == 0
    assert "20 images, 8 classes" in capsys.readouterr().out
    with ProjectStore.open(proj) as store:
        assert store.images()[0].uid == "train-0"
        assert Path(store.images()[0].path).is_file()
        assert store.meta()["image_size"] == 28
