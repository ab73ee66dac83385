"""`project init` decodes every file (skipping bad ones with a report, never following links out of
the folder) and `project remove` takes images out for good, with an audit trail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.annotate.store import ProjectStore
from medactive.cli import main

PHI_NAME = "Doe^Jane^Q"


def _phi_dicom_with_broken_pixels(path: Path) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName, ds.PatientID = PHI_NAME, "PID-83746251"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 64, 64, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = b"\0" * 100  # far fewer bytes than 64 x 64 x 2
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """70 good PNGs (enough for the thread pool) plus every kind of bad file."""
    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(70):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(
            folder / "sub" / f"img{i:03d}.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "garbage.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 64)
    _phi_dicom_with_broken_pixels(folder / "patient.dcm")
    secret = tmp_path / "outside.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(secret)
    (folder / "passwd.png").symlink_to("/etc/passwd")
    (folder / "outside.png").symlink_to(secret)
    (folder / "alias.png").symlink_to(folder / "sub" / "img000.png")  # inside: fine
    (folder / "linked_dir").symlink_to(tmp_path, target_is_directory=True)
    return folder


BAD = {"empty.png": "empty file (0 bytes)", "garbage.dcm": "DICOM",
       "patient.dcm": "cannot decode DICOM pixel data",
       "passwd.png": "symbolic link pointing outside the image folder",
       "outside.png": "symbolic link pointing outside the image folder",
       "linked_dir": "symbolic link to a folder: not followed"}


def test_init_skips_unreadable_files_with_a_report(tmp_path, messy, capsys) -> None:
    labels = tmp_path / "l.csv"
    labels.write_text("image_id,label\nsub/img001.png,a\nempty.png,b\n")
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--images", str(messy), "--classes", "a,b",
                 "--labels", str(labels)]) == 0
    out = capsys.readouterr()
    assert "71 images" in out.out  # 70 + the alias inside the folder
    assert f"skipped {len(BAD)} file(s) that cannot be used:" in out.err
    for name, reason in BAD.items():
        assert any(line.strip().startswith(f"{name}: ") and reason in line
                   for line in out.err.splitlines()), (name, out.err)
    assert "labels of 1 skipped file(s) were not imported" in out.err
    assert PHI_NAME not in out.err + out.out and "Doe" not in out.err
    with ProjectStore.open(project) as store:
        uids = {r.uid for r in store.images()}
        paths = {r.path for r in store.images()}
        assert len(store.current_answers()) == 1
        assert store.meta()["labels_not_imported"] == ["empty.png"]
    assert not uids & set(BAD) and "alias.png" in uids
    assert all(Path(p).resolve().is_relative_to(messy.resolve()) for p in paths)
    assert main(["project", "status", str(project), "--skipped"]) == 0
    status = capsys.readouterr().out
    assert "skipped at init (unreadable): 6" in status and "skipped  passwd.png" in status


def test_strict_init_refuses_and_creates_nothing(tmp_path, messy, capsys) -> None:
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--images", str(messy), "--classes", "a,b",
                 "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "6 of 77 files" in err[0] and "nothing registered" in err[0]
    assert not project.exists()


def test_a_folder_of_only_bad_files(tmp_path, capsys) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"")
    (folder / "b.jpg").write_bytes(b"not a jpeg")
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(folder),
                 "--classes", "x,y"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no readable PNG, JPEG, TIFF or DICOM images" in err
    assert not (tmp_path / "p").exists()


def test_dicom_without_suffix_is_found_by_its_marker(tmp_path, capsys) -> None:
    import pydicom

    folder = tmp_path / "export"
    folder.mkdir()
    _phi_dicom_with_broken_pixels(folder / "IM0001")
    ds = pydicom.dcmread(folder / "IM0001")
    ds.PixelData = np.arange(64 * 64, dtype="<u2").tobytes()
    ds.save_as(folder / "IM0001")
    (folder / "README").write_text("not an image, and not reported")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "b.png")
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(folder),
                 "--classes", "x,y"]) == 0
    assert "skipped" not in capsys.readouterr().err
    with ProjectStore.open(tmp_path / "p") as store:
        assert [r.uid for r in store.images()] == ["IM0001", "b.png"]


@pytest.mark.parametrize(("args", "message"), [
    (["--window", "wide"], "--window 'wide': give CENTER,WIDTH"),
    (["--window", "40,0"], "window width must be a number >= 1"),
    (["--frame", "-1"], "frame must be a non-negative integer"),
])
def test_bad_decode_options_are_one_line(tmp_path, image_folder, capsys, args, message) -> None:
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(image_folder),
                 "--classes", "x,y", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "p").exists()


def test_window_and_frame_are_stored_for_query_and_serve(tmp_path, image_folder) -> None:
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(image_folder),
                 "--classes", "x,y", "--window", "lung", "--frame", "2"]) == 0
    with ProjectStore.open(tmp_path / "p") as store:
        assert store.meta()["decode"] == {"window": [-600.0, 1500.0], "frame": 2}


# ------------------------------------------------------------------ project remove

def _query_rows(project: Path, monkeypatch) -> int:
    """How many images `project query` would feed the model."""
    import medactive.annotate.query as query

    seen = []

    def capture(images, *args, **kwargs):
        seen.append(images.shape[0])
        raise KeyboardInterrupt  # stop before any training

    # the encoder is the first step to see the images, cold start or not
    monkeypatch.setattr(query, "encode_pool", lambda spec, images, **kw: capture(images))
    with pytest.raises(KeyboardInterrupt):
        query.run_query(project, 1, force=True)  # the round stays open: close it
    return seen[0]


def test_remove_images_is_recorded_and_keeps_labels(tmp_path, image_folder, capsys,
                                                     monkeypatch) -> None:
    from medactive.annotate.labelfiles import export_csv
    from medactive.errors import StoreError

    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--images", str(image_folder),
                 "--classes", "x,y"]) == 0
    with ProjectStore.open(project) as store:
        rows = store.images()
        store.import_labels([(rows[0].uid, "x"), (rows[1].uid, "y")], "dr")
        store.add_round("random", {}, None, [(rows[2].id, None), (rows[3].id, None)])
    capsys.readouterr()
    # unknown ids reject the whole command
    assert main(["project", "remove", str(project), rows[0].uid, "nope.png"]) == 2
    assert "unknown image id" in capsys.readouterr().err
    assert main(["project", "remove", str(project), rows[0].uid, rows[2].uid,
                 "--reason", "motion blur", "--annotator", "dr"]) == 0
    assert "removed 2 image(s); 10 remain" in capsys.readouterr().out
    assert main(["project", "remove", str(project), rows[0].uid]) == 2
    assert "already removed" in capsys.readouterr().err
    with ProjectStore.open(project) as store:
        assert store.n_images() == 10 and rows[0].uid not in {r.uid for r in store.images()}
        assert [q.uid for q in store.queue(store.latest_round().id)] == [rows[3].uid]
        assert set(a.uid for a in store.current_answers().values()) == {rows[1].uid}
        assert [r[1] for r in store.history()] == [rows[0].id, rows[1].id]  # labels kept
        removals = store.removals()
        assert [(r.uid, r.reason, r.annotator) for r in removals] == [
            (rows[0].uid, "motion blur", "dr"), (rows[2].uid, "motion blur", "dr")]
        assert [r["image_id"] for r in export_csv(store, None)] == [rows[1].uid]
        with pytest.raises(StoreError, match="was removed"):
            store.record(rows[2].id, "x", "dr")
    assert _query_rows(project, monkeypatch) == 10
    assert main(["project", "status", str(project), "--skipped"]) == 0
    assert "removed  " + rows[0].uid + ": motion blur (dr" in capsys.readouterr().out


def test_version_2_project_gains_removals_on_open(tmp_path) -> None:
    """A project.db as medactive wrote it before `project remove` (schema v2) is upgraded."""
    from contextlib import closing

    from medactive.annotate.schema import MIGRATIONS, SCHEMA_SQL, SCHEMA_VERSION, sql_statements

    folder = tmp_path / "old"
    folder.mkdir()
    with closing(sqlite3.connect(folder / "project.db", isolation_level=None)) as con:
        con.execute("PRAGMA journal_mode = WAL")
        for statement in sql_statements(SCHEMA_SQL) + sql_statements(MIGRATIONS[2]):
            con.execute(statement)
        con.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("app", "medactive"), ("schema_version", "2"), ("created_at", "2026-01-01"),
            ("image_size", "28"), ("channels", "3")])
        con.executemany("INSERT INTO classes VALUES (?, ?)", [(0, "a"), (1, "b")])
        con.executemany("INSERT INTO images (uid, path, sha256, added_at) VALUES "
                        "(?, ?, 'ab', '2026-01-01')", [("x.png", "/x.png"), ("y.png", "/y.png")])
        con.execute("INSERT INTO labels (image_id, kind, class_idx, annotator, created_at) "
                    "VALUES (1, 'label', 1, 'dr-a', '2026-01-01')")
    with ProjectStore.open(folder) as store:
        assert store.meta()["schema_version"] == SCHEMA_VERSION >= 3
        assert len(store.current_answers()) == 1 and store.removals() == []
        assert store.remove_images(["x.png"], "bad", "me") == [1]
        assert store.current_answers() == {} and len(store.history()) == 1  # label kept
    with ProjectStore.open(folder) as store:  # a second open changes nothing
        assert [r.uid for r in store.removals()] == ["x.png"]
        assert [r.uid for r in store.images()] == ["y.png"]
    with closing(sqlite3.connect(folder / "project.db")) as con, \
            pytest.raises(sqlite3.IntegrityError, match="append-only"):
        con.execute("DELETE FROM removals")
