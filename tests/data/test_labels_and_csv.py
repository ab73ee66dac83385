"""Odd labels and CSV encodings: one clear error line (exit 2, no traceback), no memory blow-up,
nothing half-written; BOM CSVs load everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.cli import main
from medactive.data import load_medmnist
from medactive.data.folder import load_image_folder
from medactive.data.labels import MAX_INFERRED_CLASSES, check_label_array, infer_class_count
from medactive.errors import DataError

SRC = Path(__file__).resolve().parents[2] / "src"
MEMORY_LIMIT = 1 << 30  # 1 GiB of address space: the CLI needs ~0.15 GiB


def _npz(path: Path, train_labels=None, n: int = 6, **override) -> Path:
    arrays = {}
    for s in ("train", "val", "test"):
        arrays[f"{s}_images"] = np.zeros((n, 8, 8), np.uint8)
        arrays[f"{s}_labels"] = (np.arange(n) % 3).reshape(-1, 1).astype(np.int64)
    if train_labels is not None:
        arrays["train_labels"] = train_labels
    arrays.update(override)
    np.savez(path, **arrays)
    return path


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


# ------------------------------------------------------------------ labels in an npz

@pytest.mark.parametrize(("labels", "message"), [
    (np.array([[0], [1], [np.nan], [2], [0], [1]]), r"train_labels: label nan at position 2"),
    (np.array([[0], [1], [1.5], [2], [0], [1]]), r"fractional label 1\.5"),
    (np.array([["a"], ["b"], ["c"], ["a"], ["b"], ["c"]]), r"labels are <U1 .*integer class"),
    (np.array([[0], [1], [2], [99], [0], [1]]), r"label 99 implies 100 classes but only 4"),
    (np.array([[0], [1], [2], [-3], [0], [1]]), r"negative labels"),
])
def test_odd_npz_labels_are_one_clear_error(tmp_path, capsys, labels, message) -> None:
    path = _npz(tmp_path / "odd.npz", labels)
    with pytest.raises(DataError, match=message):
        load_medmnist(path)
    assert main(["data", "info", str(path)]) == 2
    assert "odd.npz" in _one_error_line(capsys)


def test_object_labels_and_whole_float_labels(tmp_path) -> None:
    obj = np.empty((6, 1), dtype=object)
    obj[:, 0] = ["a", "b", "c", "a", "b", "c"]
    np.savez(tmp_path / "obj.npz", **{**{f"{s}_images": np.zeros((6, 8, 8), np.uint8)
                                          for s in ("train", "val", "test")},
                                       **{f"{s}_labels": obj for s in ("train", "val", "test")}})
    with pytest.raises(DataError, match=r"train_labels holds Python objects"):
        load_medmnist(tmp_path / "obj.npz")
    floats = _npz(tmp_path / "f.npz", np.array([[0.0], [1.0], [2.0], [0.0], [1.0], [2.0]]))
    assert load_medmnist(floats).train.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_empty_train_split_is_refused_at_load_and_init(tmp_path, capsys) -> None:
    path = _npz(tmp_path / "empty.npz", train_images=np.zeros((0, 8, 8), np.uint8),
                train_labels=np.zeros((0, 1), np.int64))
    with pytest.raises(DataError, match=r"the train split is empty"):
        load_medmnist(path)
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--from-npz", str(path)]) == 2
    assert "train split is empty" in _one_error_line(capsys)
    assert not project.exists()


def test_label_checks_against_declared_and_inferred_classes() -> None:
    assert check_label_array(np.array([[3], [0]], np.uint8), "x", 4).tolist() == [3, 0]
    with pytest.raises(DataError, match=r"label 4 out of range for 4 classes"):
        check_label_array(np.array([4]), "x", 4)
    with pytest.raises(DataError, match=r"label 10000 is too large"):
        check_label_array(np.array([0, MAX_INFERRED_CLASSES]), "x")
    # a dataset missing one grade of five still loads; a stray label does not
    assert infer_class_count([np.array([0, 1, 2, 4])], "x") == 5
    with pytest.raises(DataError, match=r"never: 8, 9, 10, 11, 12, \.\.\. \(91 in all\)"):
        infer_class_count([np.arange(8), np.array([99])], "x")


def _limited(args: list[str]) -> subprocess.CompletedProcess:
    """Run the CLI with at most MEMORY_LIMIT bytes of address space."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, "
            f"({MEMORY_LIMIT}, {MEMORY_LIMIT})); from medactive.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MEDACTIVE_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_label_2_to_the_40_under_a_memory_limit(tmp_path) -> None:
    huge = 2**40
    npz = _npz(tmp_path / "huge.npz", np.array([[0], [1], [2], [huge], [0], [1]], np.int64))
    for i in range(3):
        Image.fromarray(np.full((4, 4), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
    csv_path = tmp_path / "huge.csv"
    csv_path.write_text(f"image,label\n0,0\n1,1\n2,{huge}\n")
    for target in (npz, csv_path):
        proc = _limited(["data", "info", str(target)])
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert f"label {huge} is too large" in proc.stderr and "MemoryError" not in proc.stderr


# ------------------------------------------------------------------ labels in an image-folder CSV

@pytest.mark.parametrize(("cell", "message"), [
    ("nan", r"row 3 \(1\): label 'nan' .* is not a class index"),
    ("2.5", r"label '2\.5' .* is not a class index"),
    ("99", r"label 99 implies 100 classes"),
])
def test_odd_csv_labels(tmp_path, capsys, cell, message) -> None:
    for i in range(3):
        Image.fromarray(np.full((4, 4), 50 * i, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "l.csv").write_text(f"image,label\n0,0\n1,{cell}\n2,1\n")
    with pytest.raises(DataError, match=message):
        load_image_folder(tmp_path / "l.csv")
    assert main(["data", "info", str(tmp_path / "l.csv")]) == 2
    assert "l.csv" in _one_error_line(capsys)


# ------------------------------------------------------------------ CSV encodings

BOM = b"\xef\xbb\xbf"


@pytest.fixture
def folder(tmp_path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(("café", "b", "c", "d")):
        Image.fromarray(np.full((6, 6, 3), 40 * i, np.uint8)).save(images / f"{name}.png")
    return images


def test_bom_csv_loads_everywhere(tmp_path, folder, capsys) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_bytes(BOM + "image_id,label\ncafé.png,bénin\nb.png,malin\n".encode())
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--images", str(folder), "--classes",
                 "bénin,malin", "--labels", str(labels)]) == 0
    more = tmp_path / "more.csv"
    more.write_bytes(BOM + "image_id,label\nc.png,bénin\n".encode())
    assert main(["project", "import", str(project), str(more)]) == 0
    assert "imported 1 labels" in capsys.readouterr().out
    meta = folder / "meta.csv"
    meta.write_bytes(BOM + "image,label\ncafé,bénin\nb,malin\nc,bénin\n".encode())
    ds = load_image_folder(meta)
    assert ds.class_names == ("bénin", "malin") and ds.ids[0] == "café"


def test_latin1_csv_is_one_clear_error_everywhere(tmp_path, folder, capsys) -> None:
    latin = "image_id,label\ncafé.png,bénin\n".encode("latin-1")
    labels = tmp_path / "labels.csv"
    labels.write_bytes(latin)
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--images", str(folder), "--classes",
                 "bénin,malin", "--labels", str(labels)]) == 2
    assert "not UTF-8 text (byte 0xe9 on line 2" in _one_error_line(capsys)
    assert not project.exists()
    assert main(["project", "init", str(project), "--images", str(folder), "--classes",
                 "bénin,malin"]) == 0
    capsys.readouterr()
    assert main(["project", "import", str(project), str(labels)]) == 2
    assert "save it as UTF-8" in _one_error_line(capsys)
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project) as store:
        assert store.history() == []
    meta = folder / "meta.csv"
    meta.write_bytes("image,label\ncafé,bénin\nb,malin\n".encode("cp1252"))
    assert main(["data", "info", str(meta)]) == 2
    assert "meta.csv: not UTF-8" in _one_error_line(capsys)
