"""Issue 20 item 10: unlabelled pools (a folder, a CSV of file names) and the image root and
size of folder CSVs, in the library and in ``coldstart`` / ``run``."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medactive.cli import main
from medactive.data.pool import FOLDER_IMAGE_SIZE, load_image_pool
from medactive.errors import DataError


def _folder(root: Path, n: int = 12, size: int = 20) -> Path:
    """``n`` RGB PNGs in two sub-folders, plus one grey JPEG."""
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / ("left" if i % 2 else "right")
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            sub / f"scan{i:02d}.png")
    Image.fromarray(rng.integers(0, 255, (size + 4, size), dtype=np.uint8)).save(
        root / "grey.jpg")
    return root


def test_a_folder_is_the_whole_pool(tmp_path) -> None:
    folder = _folder(tmp_path / "imgs")
    (folder / "broken.png").write_bytes(b"not a png")
    pool = load_image_pool(folder)
    assert len(pool) == 13 and pool.images.shape == (13, FOLDER_IMAGE_SIZE,
                                                     FOLDER_IMAGE_SIZE, 3)
    assert "grey.jpg" in pool.ids and "left/scan01.png" in pool.ids
    assert [s.path.name for s in pool.skipped] == ["broken.png"]
    assert "the whole folder, no split" in pool.description
    assert len(load_image_pool(folder, image_size=16, limit=5)) == 5


@pytest.mark.parametrize("header", ["file\n", "Image_Path\n", ""])
def test_a_csv_of_file_names_is_the_pool(tmp_path, header) -> None:
    folder = _folder(tmp_path / "imgs")
    names = ["left/scan01.png", "right/scan00.png", "scan03", "left/scan01.png"]
    (tmp_path / "list.csv").write_text(header + "\n".join(names) + "\n")
    pool = load_image_pool(tmp_path / "list.csv", image_root=folder, image_size=16)
    # bare names found below the root; the file listed twice is taken once
    assert pool.ids.tolist() == ["left/scan01.png", "right/scan00.png", "scan03"]
    assert pool.images.shape == (3, 16, 16, 3) and "no split" in pool.description


def test_list_errors_name_the_row(tmp_path) -> None:
    folder = _folder(tmp_path / "imgs")
    (folder / "list.csv").write_text("file\nleft/scan01.png\nmissing.png\n")
    with pytest.raises(DataError, match=r"row 3: image 'missing\.png' not found"):
        load_image_pool(folder / "list.csv")
    (folder / "list.csv").write_text("file\nleft/scan01.png\n../../etc/passwd\n")
    with pytest.raises(DataError, match=r"row 3: image '\.\./\.\./etc/passwd' leaves"):
        load_image_pool(folder / "list.csv")
    with pytest.raises(DataError, match="--image-size must be between 8 and 1024"):
        load_image_pool(folder, image_size=4)
    with pytest.raises(DataError, match=r"not a folder of images or a \.csv"):
        load_image_pool(tmp_path / "nothing.txt")


def _coldstart(data: Path, out: Path, *extra: str) -> list[str]:
    return ["coldstart", "--data", str(data), "--budget", "3", "--epochs", "1",
            "--batch-size", "8", "--out", str(out), "--no-progress", "--threads", "1",
            "--image-size", "16", *extra]


def test_coldstart_on_a_folder_and_on_a_list(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    folder = _folder(tmp_path / "imgs")
    out = tmp_path / "sel.csv"
    assert main(_coldstart(folder, out)) == 0
    printed = capsys.readouterr().out
    assert f"pool: 13 images under {folder} (the whole folder, no split)" in printed
    ids = [r["id"] for r in csv.DictReader(out.open())]
    assert len(ids) == 3 and all((folder / i).is_file() for i in ids)
    listing = tmp_path / "names.csv"
    listing.write_text("filename\n" + "\n".join(f"scan{i:02d}.png" for i in range(8)) + "\n")
    assert main(_coldstart(listing, out, "--image-root", str(folder))) == 0
    assert "pool: 8 images listed in" in capsys.readouterr().out
    assert {r["id"] for r in csv.DictReader(out.open())} <= {f"scan{i:02d}.png"
                                                             for i in range(8)}


def test_coldstart_says_the_split_of_a_labelled_csv(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    folder = _folder(tmp_path / "imgs")
    rows = [f"{'left' if i % 2 else 'right'}/scan{i:02d}.png,{'ab'[i % 2]}" for i in range(12)]
    (folder / "labels.csv").write_text("image,label\n" + "\n".join(rows) + "\n")
    assert main(_coldstart(folder / "labels.csv", tmp_path / "sel.csv")) == 0
    assert ("pool: the 9 training images of labels (12 in all; no split column: a stratified "
            "9/1/2 train/val/test split (seed 0); a 'split' column chooses it)"
            in capsys.readouterr().out)


def test_run_config_image_root_and_size(tmp_path) -> None:
    from medactive.errors import ConfigError
    from medactive.experiment import load_config
    from medactive.experiment.prepare import load_splits

    folder = _folder(tmp_path / "pictures", n=20)
    rows = [f"scan{i:02d},{'ab'[i % 2]},x" for i in range(20)]
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "labels.csv").write_text("scan,finding,label\n" + "\n".join(rows) + "\n")
    cfg = tmp_path / "cfg" / "c.toml"
    cfg.write_text('[dataset]\nsource = "labels.csv"\nimage_root = "../pictures"\n'
                   'image_size = 12\nid_column = "scan"\nlabel_column = "Finding"\n'
                   'split = "stratified"\nsizes = [0.6, 0.2, 0.2]\n')
    splits = load_splits(load_config(cfg))
    assert splits.train.images.shape[1:] == (12, 12, 3) and folder.is_dir()
    assert splits.class_names == ("a", "b")
    cfg.write_text('[dataset]\nsource = "bloodmnist"\nimage_size = 64\n')
    with pytest.raises(ConfigError, match="image_size apply to an image-folder"):
        load_config(cfg)
