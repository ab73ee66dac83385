"""Image folder + CSV loading: PNG, JPEG and DICOM files written by the tests themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medactive.data.dataset import UNKNOWN_LABEL
from medactive.data.folder import load_folder_splits, load_image_folder
from medactive.data.loading import load_dataset
from medactive.errors import DataError

ISIC = ("MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC")


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def write_png(path: Path, value: int, size: tuple[int, int] = (40, 30), rgb: bool = True) -> None:
    shape = (size[1], size[0], 3) if rgb else (size[1], size[0])
    array = np.full(shape, value, dtype=np.uint8)
    if rgb:
        array[..., 0] = 255 - value  # a real colour image: channels differ
    Image.fromarray(array).save(path)


def write_dicom(
    path: Path, stored: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0,
    window: tuple[float, float] | None = None, photometric: str = "MONOCHROME2",
    frames: int = 1,
) -> None:
    """A minimal valid DICOM Part 10 file: 16-bit unsigned grayscale (CT-like) pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_rgb_dicom(path: Path, rgb: np.ndarray) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.astype(np.uint8).tobytes()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def isic(tmp_path: Path) -> Path:
    """ISIC 2018 style: bare ids, one-hot 0.0/1.0 columns, PNG and JPEG images (8 images)."""
    rows = []
    for i in range(8):
        name = f"ISIC_{i:07d}"
        cls = i % 4
        if i % 2:
            write_png(tmp_path / f"{name}.png", 20 * i)
        else:
            Image.fromarray(np.full((30, 40, 3), 20 * i, np.uint8)).save(tmp_path / f"{name}.jpg")
        rows.append(",".join([name, *("1.0" if c == cls else "0.0" for c in range(len(ISIC)))]))
    return write_csv(tmp_path / "ISIC2018_GroundTruth.csv", "image," + ",".join(ISIC), rows)


def test_one_hot_isic_csv(isic: Path) -> None:
    ds = load_image_folder(isic)
    assert ds.class_names == ISIC
    assert ds.images.shape == (8, 28, 28, 3) and ds.images.dtype == np.uint8
    assert ds.labels.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert ds.ids[0] == "ISIC_0000000"
    assert ds.name == "ISIC2018_GroundTruth"


def test_single_label_names_paths_and_gray(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    for i in range(6):
        write_png(tmp_path / "imgs" / f"{i}.png", 40 * i, rgb=False)
    rows = [f"imgs/{i}.png,{'nv' if i % 2 else 'mel'},{30 + i}" for i in range(6)]
    ds = load_image_folder(write_csv(tmp_path / "meta.csv", "path,dx,age", rows), image_size=16)
    assert ds.class_names == ("mel", "nv")
    assert ds.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert ds.images.shape == (6, 16, 16, 1)
    assert ds.images[3].min() == ds.images[3].max() == 120  # a flat image stays flat on resize
    rgb = load_image_folder(tmp_path / "meta.csv", image_size=16, channels=3)
    assert rgb.images.shape == (6, 16, 16, 3)
    assert (rgb.images[..., 0] == rgb.images[..., 2]).all()


def test_integer_levels_native_size_and_empty_label(tmp_path: Path) -> None:
    for i in range(5):
        write_png(tmp_path / f"eye{i}.png", 10 * i)
    rows = ["eye0,0", "eye1,2", "eye2,4", "eye3,1", "eye4,"]  # Kaggle DR: image,level
    ds = load_image_folder(write_csv(tmp_path / "trainLabels.csv", "image,level", rows),
                           image_size=None, channels=1)
    assert ds.class_names == ("0", "1", "2", "3", "4")
    assert ds.labels.tolist() == [0, 2, 4, 1, UNKNOWN_LABEL]
    assert ds.images.shape == (5, 30, 40, 1)


def test_dicom_rescale_window_and_monochrome1(tmp_path: Path) -> None:
    # CT-like: stored 0..2000, HU = stored - 1024; soft-tissue window 40 / 400 -> [-160, 240].
    stored = np.array([[0, 864, 1064, 1264], [1500, 2000, 1000, 1100]], dtype=np.uint16)
    write_dicom(tmp_path / "ct.dcm", stored, intercept=-1024.0, window=(40.0, 400.0))
    write_dicom(tmp_path / "cr.dcm", stored, photometric="MONOCHROME1")  # no window: min-max
    write_dicom(tmp_path / "multi.dcm", np.stack([stored, 2000 - stored]), frames=2)
    rows = ["ct,a", "cr,b", "multi.dcm,a"]
    ds = load_image_folder(write_csv(tmp_path / "l.csv", "id,label", rows), image_size=None)
    assert ds.images.shape == (3, 2, 4, 1)
    ct = ds.images[0, ..., 0].astype(int)
    assert ct[0, 0] == 0 and ct[1, 0] == 255 and ct[1, 1] == 255  # below / above the window
    assert abs(ct[0, 2] - 128) <= 1  # HU 40 = window centre
    assert abs(ct[0, 1] - 0) <= 1 and abs(ct[0, 3] - 255) <= 1  # HU -160 / 240: window edges
    cr = ds.images[1, ..., 0].astype(int)
    assert cr[0, 0] == 255 and cr[1, 1] == 0  # MONOCHROME1: smallest value is brightest
    # multi-frame: the middle frame (index n // 2 = 1 of 2), min-max (no window in the header)
    expected = np.round((2000 - stored) / 2000 * 255).astype(int)
    assert np.abs(ds.images[2, ..., 0].astype(int) - expected).max() <= 1


def test_rgb_dicom_mixed_with_png(tmp_path: Path) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 50
    write_rgb_dicom(tmp_path / "derm.dcm", rgb)
    write_png(tmp_path / "b.png", 90, size=(8, 8), rgb=False)
    ds = load_image_folder(write_csv(tmp_path / "x.csv", "image,label", ["derm,x", "b,y"]),
                           image_size=8)
    assert ds.images.shape == (2, 8, 8, 3)
    assert ds.images[0, 0, 0].tolist() == [200, 0, 50]
    assert ds.images[1, 0, 0].tolist() == [90, 90, 90]
    gray = load_image_folder(tmp_path / "x.csv", image_size=8, channels=1)
    assert abs(int(gray.images[0, 0, 0, 0]) - 66) <= 1  # ITU-R 601 luma of (200, 0, 50)


def test_many_files_threaded_and_subfolders(tmp_path: Path) -> None:
    for part in ("part_1", "part_2"):
        (tmp_path / part).mkdir()
    rows = []
    for i in range(80):  # above the threading threshold; HAM10000 layout: two sub-folders
        write_png(tmp_path / f"part_{1 + i % 2}" / f"ISIC_{i}.png", i, size=(12, 12))
        rows.append(f"HAM_{i},ISIC_{i},{['bkl', 'nv', 'mel'][i % 3]}")
    ds = load_image_folder(write_csv(tmp_path / "HAM10000_metadata.csv",
                                     "lesion_id,image_id,dx", rows))
    assert len(ds) == 80 and ds.images.shape[1:] == (28, 28, 3)
    assert ds.ids[79] == "ISIC_79"
    assert ds.images[79, 5, 5, 1] == 79  # order preserved through the thread pool
    (tmp_path / "part_2" / "ISIC_41.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"row 43: cannot read image .*ISIC_41\.png"):
        load_image_folder(tmp_path / "HAM10000_metadata.csv")


def test_splits_from_column_and_stratified(tmp_path: Path) -> None:
    for i in range(20):
        write_png(tmp_path / f"{i}.png", i, size=(8, 8))
    splits = ["train"] * 12 + ["val"] * 4 + ["test"] * 4
    rows = [f"{i},{'ab'[i % 2]},{s}" for i, s in enumerate(splits)]
    csv_path = write_csv(tmp_path / "s.csv", "image,label,split", rows)
    parts = load_dataset(csv_path)
    assert [len(p) for _, p in parts.items()] == [12, 4, 4]
    assert parts.val.ids.tolist() == ["12", "13", "14", "15"]
    plain = write_csv(tmp_path / "p.csv", "image,label", [r.rsplit(",", 1)[0] for r in rows])
    a = load_folder_splits(plain, sizes=(10, 4, 6), seed=3)
    b = load_folder_splits(plain, sizes=(10, 4, 6), seed=3)
    assert [len(p) for _, p in a.items()] == [10, 4, 6]
    assert a.test.ids.tolist() == b.test.ids.tolist()
    assert a.train.class_counts().tolist() == [5, 5]
    all_ids = sorted(np.concatenate([p.ids for _, p in a.items()]).tolist())
    assert all_ids == sorted(str(i) for i in range(20))


def test_bad_split_value_names_row(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1)
    csv_path = write_csv(tmp_path / "s.csv", "image,label,split", ["a,x,train", "a2,y,holdout"])
    with pytest.raises(DataError, match=r"row 3: split 'holdout'"):
        load_folder_splits(csv_path)


# --- every user error names the CSV row (line number, header = 1) and the file -----------------


def _error(csv_path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        load_image_folder(csv_path, **kwargs)  # type: ignore[arg-type]
    message = str(info.value)
    assert "\n" not in message and str(csv_path) in message
    return message


def test_missing_image(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1)
    message = _error(write_csv(tmp_path / "l.csv", "image,label", ["a,x", "ghost,y"]))
    assert "row 3" in message and "'ghost'" in message and "not found" in message


def test_unreadable_image(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1)
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "c.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    csv_path = write_csv(tmp_path / "l.csv", "image,label", ["a,x", "b.png,y"])
    message = _error(csv_path)
    assert "row 3" in message and "b.png" in message and "cannot read" in message
    csv_path = write_csv(tmp_path / "d.csv", "image,label", ["a,x", "c,y"])
    message = _error(csv_path)
    assert "row 3" in message and "c.dcm" in message and "cannot read" in message


def test_unknown_label(tmp_path: Path) -> None:
    for n in "abc":
        write_png(tmp_path / f"{n}.png", 1)
    csv_path = write_csv(tmp_path / "l.csv", "image,label", ["a,mel", "b,nv", "c,melanoma"])
    message = _error(csv_path, class_names=["mel", "nv"])
    assert "row 4" in message and "(c)" in message and "'melanoma'" in message


@pytest.mark.parametrize(("cells", "what"), [("0,0,0", "0 one-hot columns set"),
                                              ("1.0,1.0,0", "2 one-hot columns set (MEL, NV)"),
                                              ("0,0.5,1", "holds '0.5'")])
def test_bad_one_hot_rows(tmp_path: Path, cells: str, what: str) -> None:
    for n in "ab":
        write_png(tmp_path / f"{n}.png", 1)
    csv_path = write_csv(tmp_path / "gt.csv", "image,MEL,NV,BCC", ["a,1,0,0", f"b,{cells}"])
    message = _error(csv_path, one_hot_columns=["MEL", "NV", "BCC"])
    assert "row 3" in message and "(b)" in message and what in message


def test_structural_errors(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", 1, size=(8, 8))
    write_png(tmp_path / "b.png", 1, size=(9, 8))
    # the same image twice: two labels are refused naming both rows (issue 20)
    message = _error(write_csv(tmp_path / "d.csv", "image,label", ["a,x", "a,y", "b,x"]))
    assert "conflicting labels" in message and "row 2" in message and "row 3" in message
    assert "pass image_size" in _error(write_csv(tmp_path / "s.csv", "image,label",
                                                 ["a,x", "b,y"]), image_size=None)
    assert "labels" in _error(write_csv(tmp_path / "n.csv", "image,notes", ["a,hello"]))
    assert "image id column" in _error(write_csv(tmp_path / "i.csv", "who,label", ["a,x"]))
    with pytest.raises(DataError, match="CSV file not found"):
        load_image_folder(tmp_path / "nope.csv")
