"""MedMNIST loading on the real BloodMNIST file and on broken files."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.data import MEDMNIST, load_dataset, load_medmnist, resolve_medmnist
from medactive.data.medmnist_registry import md5sum
from medactive.errors import DataError


def test_real_bloodmnist_shapes_and_counts(blood, bloodmnist_path):
    assert [len(d) for _, d in blood.items()] == [11959, 1712, 3421]
    assert blood.train.images.shape == (11959, 28, 28, 3)
    assert blood.train.images.dtype == np.uint8
    assert blood.train.labels.dtype == np.int64
    assert blood.train.class_counts().tolist() == [852, 2181, 1085, 2026, 849, 993, 2330, 1643]
    assert blood.class_names[0] == "basophil" and blood.n_classes == 8
    assert md5sum(bloodmnist_path) == MEDMNIST["bloodmnist"].md5
    # Ids are unique across splits and survive subsetting.
    ids = np.concatenate([d.ids for _, d in blood.items()])
    assert len(set(ids)) == ids.size
    sub = blood.train.subset([5, 7])
    assert sub.ids.tolist() == ["train-5", "train-7"]


def test_resolution_by_name_through_env(monkeypatch, bloodmnist_path, tmp_path):
    monkeypatch.setenv("MEDACTIVE_DATA_DIR", str(bloodmnist_path.parent))
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    assert resolve_medmnist("bloodmnist") == bloodmnist_path
    assert resolve_medmnist("BloodMNIST") == bloodmnist_path


def test_missing_name_without_download_says_where(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDACTIVE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"pathmnist.npz not found.*MEDACTIVE_DATA_DIR"):
        resolve_medmnist("pathmnist", download=False)


def test_failed_download_gives_one_clear_error(monkeypatch, tmp_path):
    import medactive.data.medmnist_registry as registry

    monkeypatch.setenv("MEDACTIVE_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(registry, "ZENODO", "http://127.0.0.1:9/{name}.npz")
    with pytest.raises(DataError, match=r"download from .* failed.*medactive data fetch"):
        resolve_medmnist("dermamnist")
    assert not list((tmp_path / "cache").glob("*.part"))


def test_unknown_and_multilabel_names():
    with pytest.raises(DataError, match=r"unknown dataset 'foomnist'.*bloodmnist"):
        load_medmnist("foomnist")
    with pytest.raises(DataError, match=r"multi-label"):
        load_medmnist("chestmnist")


def test_missing_path():
    with pytest.raises(DataError, match=r"not found"):
        load_dataset("/no/such/file.npz")


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good_arrays(n=6, rgb=True):
    rng = np.random.default_rng(0)
    shape = (n, 8, 8, 3) if rgb else (n, 8, 8)
    out = {}
    for s in ("train", "val", "test"):
        out[f"{s}_images"] = rng.integers(0, 255, shape, dtype=np.uint8)
        out[f"{s}_labels"] = (np.arange(n) % 3).reshape(-1, 1).astype(np.uint8)
    return out


def test_grayscale_file_gets_channel_axis(tmp_path):
    splits = load_medmnist(_write_npz(tmp_path / "tiny.npz", **_good_arrays(rgb=False)))
    assert splits.train.images.shape == (6, 8, 8, 1)
    assert splits.class_names == ("class_0", "class_1", "class_2")


def test_corrupt_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"this is not a zip archive")
    with pytest.raises(DataError, match=r"not a readable .npz"):
        load_medmnist(bad)


def test_truncated_file(tmp_path, bloodmnist_path):
    raw = bloodmnist_path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"cut\.npz"):
        load_medmnist(cut)


def test_wrong_keys(tmp_path):
    arrays = _good_arrays()
    arrays["training_images"] = arrays.pop("train_images")
    with pytest.raises(DataError, match=r"missing keys train_images"):
        load_medmnist(_write_npz(tmp_path / "keys.npz", **arrays))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("train_images", np.zeros((6, 8), np.uint8), "expected \\(N, H, W\\)"),
        ("train_images", np.zeros((6, 8, 8, 5), np.uint8), "expected \\(N, H, W\\)"),
        ("train_images", np.zeros((6, 8, 8, 3), np.float32), "uint8"),
        ("train_labels", np.zeros((5, 1), np.uint8), "5 entries for 6 images"),
        ("train_labels", np.zeros((6, 4), np.uint8), "multi-label"),
        ("val_labels", -np.ones((6, 1), np.int64), "negative"),
    ],
)
def test_wrong_shapes_and_values(tmp_path, key, value, message):
    arrays = _good_arrays()
    arrays[key] = value
    with pytest.raises(DataError, match=message):
        load_medmnist(_write_npz(tmp_path / "shape.npz", **arrays))


def test_labels_out_of_range_for_registry_classes(tmp_path, monkeypatch):
    # loaded by its registry name, a file must fit that subset's classes
    arrays = _good_arrays()
    arrays["train_labels"][0, 0] = 9  # bloodmnist has 8 classes
    _write_npz(tmp_path / "bloodmnist.npz", **arrays)
    monkeypatch.setenv("MEDACTIVE_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match=r"out of range for 8 classes"):
        load_medmnist("bloodmnist", download=False)


def test_registry_lists_2d_multiclass_subsets():
    assert {"pathmnist", "bloodmnist", "organamnist", "dermamnist"} <= set(MEDMNIST)
    assert "chestmnist" not in MEDMNIST
    for info in MEDMNIST.values():
        assert len(info.md5) == 32 and info.url.startswith("https://zenodo.org/")
        assert info.license == "CC BY 4.0"
