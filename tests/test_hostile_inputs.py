"""Issue 21: the last hostile inputs, as regression tests (seconds in all).

Every probe of :mod:`hostile` runs through the real CLI entry point: exit 2, one ``error:``
line naming the problem, no traceback, nothing written or left behind. The tests below it pin
the details: files are never opened outside their root, limits are overridable, class names
come from content.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from hostile import (
    BLOOD_SIZES,
    NOT_IN_SUITE,
    PROBES,
    Probe,
    bomb_npz,
    config,
    image_folder,
    lying_npz,
    synthetic_npz,
    verdict,
)
from medactive.cli import main
from medactive.errors import ConfigError, DataError, MedactiveError

SUITE = [p for p in PROBES if p.name not in NOT_IN_SUITE]


@pytest.mark.parametrize("probe", SUITE, ids=[p.name for p in SUITE])
def test_probe_holds(probe: Probe, tmp_path, bloodmnist_path, capsys, monkeypatch) -> None:
    case = probe.setup(tmp_path, bloodmnist_path)
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    if case.precheck is not None:  # screened first: a regression must not run for minutes
        with pytest.raises(MedactiveError):
            case.precheck()
    capsys.readouterr()
    code = main(case.argv)
    out, err = capsys.readouterr()
    assert verdict(probe.name, case, code, out, err) is None, (code, out, err)


@pytest.mark.parametrize("name", ["npz header claiming 279 GiB", "config in UTF-16"])
def test_probe_holds_in_a_real_process(name: str, tmp_path, bloodmnist_path) -> None:
    """The console script itself: exit status and stderr as a shell sees them."""
    probe = next(p for p in PROBES if p.name == name)
    case = probe.setup(tmp_path, bloodmnist_path)
    env = {**os.environ, "MEDACTIVE_PROGRESS": "0", **case.env}
    proc = subprocess.run([sys.executable, "-m", "medactive", *case.argv], capture_output=True,
                          text=True, env=env, timeout=120)
    assert verdict(name, case, proc.returncode, proc.stdout, proc.stderr) is None, proc.stderr


# ----------------------------------------------------------------------- paths from a CSV

def _spy_opens(monkeypatch) -> list[Path]:
    """Record every image file the decoder opens."""
    import medactive.data.imagefiles as imagefiles

    opened: list[Path] = []
    real = imagefiles.read_image

    def spy(path, *args, **kwargs):
        opened.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(imagefiles, "read_image", spy)
    return opened


@pytest.mark.parametrize("row, message", [
    ("/etc/passwd", "is an absolute path"),
    ("../outside.png", "leaves the image root"),
    ("sub/../../outside.png", "leaves the image root"),
    ("C:\\\\Windows\\\\x.png", "is an absolute path"),
])
def test_csv_paths_never_opened_outside_the_root(tmp_path, monkeypatch, row, message) -> None:
    from medactive.data.folder import load_image_folder

    folder = image_folder(tmp_path / "imgs")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "outside.png")
    csv = folder / "l.csv"
    csv.write_text("image,label\nimg0.png,a\nimg1.png,b\n" + f'"{row}",a\n')
    opened = _spy_opens(monkeypatch)
    with pytest.raises(DataError, match=message) as err:
        load_image_folder(csv)
    assert "row 4" in str(err.value)
    assert opened == []  # refused while resolving, before any image was decoded


def test_symlink_out_of_the_root_refused_like_project_init(tmp_path, capsys) -> None:
    from medactive.data.folder import load_image_folder

    folder = image_folder(tmp_path / "imgs", n=4)
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(secret)
    (folder / "link.png").symlink_to(secret)
    csv = folder / "l.csv"
    csv.write_text("image,label\nimg0.png,a\nimg1.png,b\nlink.png,a\n")
    with pytest.raises(DataError, match="symbolic link pointing outside"):
        load_image_folder(csv)
    # project init skips the same link (not followed), so both paths agree
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(folder),
                 "--classes", "a,b"]) == 0
    assert "symbolic link pointing outside the image folder" in capsys.readouterr().err


def test_relative_paths_inside_the_root_still_work(tmp_path) -> None:
    from medactive.data.folder import load_image_folder

    folder = image_folder(tmp_path / "imgs" / "sub", n=4)
    csv = tmp_path / "imgs" / "l.csv"
    csv.write_text("image,label\nsub/img0.png,a\n./sub/img1.png,b\nsub/x/../img2.png,a\n"
                   "img3,b\n")
    ds = load_image_folder(csv, image_size=8)
    assert len(ds) == 4 and folder.is_dir()


# ----------------------------------------------------------------------- npz memory

def test_npz_limit_is_overridable(tmp_path, monkeypatch) -> None:
    from medactive.data import load_medmnist
    from medactive.data.npzfile import MAX_BYTES_ENV

    path = synthetic_npz(tmp_path / "d.npz", n=12, size=12)  # 3 x 12 x 432 B of images
    with pytest.raises(DataError, match=f"more than the 1.0 KiB allowed; set {MAX_BYTES_ENV}"):
        load_medmnist(path, max_bytes=1024)
    monkeypatch.setenv(MAX_BYTES_ENV, "1K")
    with pytest.raises(DataError, match=r"declare 15\.2 KiB"):
        load_medmnist(path)
    monkeypatch.setenv(MAX_BYTES_ENV, "1M")
    assert len(load_medmnist(path).train) == 12
    monkeypatch.setenv(MAX_BYTES_ENV, "lots")
    with pytest.raises(DataError, match="is not a size"):
        load_medmnist(path)


def test_bomb_ratio_is_overridable(tmp_path, monkeypatch) -> None:
    from medactive.data.npzfile import MAX_RATIO_ENV, read_npz

    path = bomb_npz(tmp_path / "b.npz", mib=20)
    with pytest.raises(DataError, match="decompression bomb"):
        read_npz(path, ["train_images"])
    monkeypatch.setenv(MAX_RATIO_ENV, "5000")  # a genuine file of flat images: the user says so
    assert read_npz(path, ["train_images"])["train_images"].shape[1:] == (28, 28, 3)


def test_lying_header_is_never_allocated(tmp_path, monkeypatch) -> None:
    from medactive.data.npzfile import read_npz

    monkeypatch.setenv("MEDACTIVE_MAX_ARRAY_BYTES", "1T")  # the size limit alone would pass it
    with pytest.raises(DataError, match=r"declares shape \(300000, 1000, 1000, 1\) uint8 "
                                        r"\(279.4 GiB\) but the file holds 4.0 KiB"):
        read_npz(lying_npz(tmp_path / "lie.npz"), ["train_images"])


def test_npz_object_arrays_and_garbage(tmp_path) -> None:
    from medactive.data.npzfile import read_npz

    np.savez(tmp_path / "o.npz", a=np.array([{"x": 1}], dtype=object))
    with pytest.raises(DataError, match="holds Python objects"):
        read_npz(tmp_path / "o.npz", ["a"])
    (tmp_path / "g.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        read_npz(tmp_path / "g.npz", ["a"])


# ----------------------------------------------------------------------- class names

def _blood_shaped(path: Path, top_label: int = 7) -> Path:
    """Arrays of BloodMNIST's split sizes (zeros), labels 0..top_label."""
    arrays = {}
    for split, n in zip(("train", "val", "test"), BLOOD_SIZES, strict=True):
        arrays[f"{split}_images"] = np.zeros((n, 28, 28, 3), np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % (top_label + 1)).astype(np.uint8)[:, None]
    np.savez(path, **arrays)
    return path


def test_class_names_come_from_content_not_the_file_name(tmp_path, capsys) -> None:
    from medactive.data import load_medmnist

    # BloodMNIST's content under another name: its names (also at another image size)
    assert load_medmnist(_blood_shaped(tmp_path / "cells.npz")).class_names[0] == "basophil"
    # a file *named* bloodmnist.npz whose content is not: numbered classes, and a hint
    other = synthetic_npz(tmp_path / "bloodmnist.npz")
    splits = load_medmnist(other)
    assert splits.class_names == ("class_0", "class_1", "class_2")
    assert splits.meta["class_names"] == "inferred"
    assert main(["project", "init", str(tmp_path / "p"), "--from-npz", str(other)]) == 0
    assert "--classes" in capsys.readouterr().err
    # labels beyond a subset's classes: not that subset
    assert load_medmnist(_blood_shaped(tmp_path / "x.npz", top_label=9)).class_names[0] == \
        "class_0"


# ----------------------------------------------------------------------- configs

def test_config_numbers_seeds_and_plan(tmp_path) -> None:
    from medactive.experiment import load_config
    from medactive.experiment.config import MAX_PLAN

    npz = synthetic_npz(tmp_path / "d.npz")
    for key, value, message in [
        ("initial", "budget = nan", "initial.budget: must be a finite number"),
        ("acquisition", "rounds = 1\nbudget = 3\nschedule = [10, inf]", "finite"),
        ("run", "seed = -1", "run.seed"),
        ("run", f"seed = {2**32}", "run.seed"),
    ]:
        text = config(tmp_path / "c.toml", npz).read_text()
        if key == "initial":
            text = text.replace("budget = 3", value, 1)
        elif key == "acquisition":
            text = text.replace("[acquisition]\nstrategies = [\"random\"]\nrounds = 1\n"
                                "budget = 3", "[acquisition]\nstrategies = [\"random\"]\n"
                                + value)
        else:
            text = text.replace("reference = false", f"reference = false\n{value}")
        (tmp_path / "c.toml").write_text(text)
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
            load_config(tmp_path / "c.toml")
    # the plan bound is exact: MAX_PLAN models pass, one more repeat's worth does not
    text = config(tmp_path / "c.toml", npz).read_text()
    (tmp_path / "c.toml").write_text(text.replace("rounds = 1", "rounds = 0").replace(
        "repeats = 1", f"repeats = {MAX_PLAN}"))
    assert load_config(tmp_path / "c.toml").plan_size == MAX_PLAN
    (tmp_path / "c.toml").write_text(text.replace("rounds = 1", "rounds = 0").replace(
        "repeats = 1", f"repeats = {MAX_PLAN + 1}"))
    with pytest.raises(ConfigError, match=r"lower run\.repeats"):
        load_config(tmp_path / "c.toml")


def test_config_encodings(tmp_path) -> None:
    from medactive.experiment import load_config

    cfg = config(tmp_path / "c.toml", synthetic_npz(tmp_path / "d.npz"))
    text = cfg.read_text()
    cfg.write_bytes(b"\xef\xbb\xbf" + text.encode())  # UTF-8 with a BOM: accepted
    assert load_config(cfg).name == "probe"
    cfg.write_bytes(("# caf\xe9\n" + text).encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text .*line 1"):
        load_config(cfg)
    cfg.write_text("[dataset]\nsource = 5\ndataset = 3\n")  # not tables: one line, no crash
    with pytest.raises(ConfigError):
        load_config(cfg)
    cfg.write_text("dataset = 3\n")
    with pytest.raises(ConfigError, match="dataset"):
        load_config(cfg)


def test_seed_bounds_in_the_library() -> None:
    from medactive.models.device import MAX_SEED, check_seed, seed_everything

    assert check_seed(MAX_SEED) == MAX_SEED
    for bad in (-1, MAX_SEED + 1, 2**70, 1.5, True):
        with pytest.raises(ConfigError, match="--seed"):
            check_seed(bad, "--seed")
    with pytest.raises(ConfigError):
        seed_everything(2**70)


def test_coldstart_seed_and_plot_checked_first(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "f").write_text("x")
    for extra, message in [(["--seed", str(2**70)], "--seed"),
                           (["--plot", str(tmp_path / "f")], "--plot"),
                           (["--image-size", "64"], "--image-size applies"),
                           (["--backbone", "bogus"], "unknown backbone")]:
        code = main(["coldstart", "--data", str(tmp_path / "missing.npz"), "--out",
                     str(tmp_path / "s.csv"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "cache").exists() and not (tmp_path / "s.csv").exists()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "b.png", "..", ".", "", "/", "\\", "C:", "~", "%2e%2e"]),
                max_size=8))
def test_confined_paths_never_leave_the_root(parts: list[str]) -> None:
    """Any mix of separators, dots and drive letters: refused, or a path inside the root
    (checked lexically against os.path.normpath, an independent reference)."""
    import posixpath

    from medactive.data.imagefiles import confined_relative_path

    text = "".join(parts)
    try:
        relative = confined_relative_path(text, Path("/root-of-images"))
    except DataError:
        return
    joined = posixpath.normpath(posixpath.join("/root-of-images", str(relative)))
    assert joined.startswith("/root-of-images/") and ".." not in relative.parts
    assert not relative.is_absolute()
