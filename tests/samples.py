"""Image files written by the tests themselves (no committed binaries): PNG, JPEG, TIFF and DICOM,
uncompressed and compressed. Imported by test modules as ``from samples import ...`` (this folder
is on ``sys.path`` because ``tests/conftest.py`` lives here)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

SHAPE = (40, 48)  # rows, columns of every file in the zoo
PHI_NAME = "Doe^Jane^Q"
PHI_ID = "PID-83746251"


def bundled(name: str) -> Path:
    """A test file shipped inside the pydicom wheel (installed, never downloaded)."""
    return Path(pydicom.__file__).parent / "data" / "test_files" / name


def _dataset(path: Path, sop_class: str, transfer_syntax: str = ExplicitVRLittleEndian,
             patient: bool = True) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if patient:  # identifying elements that must never surface anywhere
        ds.PatientName = PHI_NAME
        ds.PatientID = PHI_ID
        ds.PatientBirthDate = "19610407"
    return ds


def write_dicom(
    path: Path, stored: np.ndarray, *, slope: float = 1.0, intercept: float = 0.0,
    window: tuple[float, float] | None = None, photometric: str = "MONOCHROME2",
    bits: int = 16, signed: bool = False, compress: str | None = None,
    voi_lut: tuple[int, int, np.ndarray] | None = None, voi_function: str | None = None,
) -> Path:
    """Grey DICOM (CT-like): ``stored`` is ``(rows, cols)`` or ``(frames, rows, cols)``.

    ``voi_lut`` = (first mapped value, bits per entry, LUT entries) adds a VOI LUT Sequence.
    ``compress`` = a transfer syntax UID to encode with (RLE, JPEG 2000 lossless).
    """
    ds = _dataset(path, CTImageStorage)
    ds.Modality = "CT"
    ds.Rows, ds.Columns = stored.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    if stored.ndim == 3:
        ds.NumberOfFrames = stored.shape[0]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function is not None:
        ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        first, depth, entries = voi_lut
        item = Dataset()
        item.LUTDescriptor = [len(entries), first, depth]
        item.add_new("LUTData", "OW", np.asarray(entries, "<u2").tobytes())
        ds.VOILUTSequence = [item]
    ds.PixelData = stored.astype("<i2" if signed else "<u2").tobytes()
    if compress is not None:
        ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_rgb_dicom(path: Path, rgb: np.ndarray, compress: str | None = None) -> Path:
    """8-bit RGB DICOM (secondary capture), e.g. dermatoscopy."""
    ds = _dataset(path, SecondaryCaptureImageStorage)
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = rgb.astype(np.uint8).tobytes()
    if compress is not None:
        ds.compress(compress)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_jpeg_baseline_dicom(path: Path, grey: np.ndarray) -> tuple[Path, np.ndarray]:
    """An 8-bit grey JPEG baseline DICOM (pydicom cannot encode JPEG: Pillow does, pydicom
    encapsulates). Returns the path and the pixels the JPEG decodes to."""
    from pydicom.encaps import encapsulate

    buf = io.BytesIO()
    Image.fromarray(grey.astype(np.uint8)).save(buf, format="JPEG", quality=95)
    ds = _dataset(path, SecondaryCaptureImageStorage, JPEGBaseline8Bit)
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path, np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def ramp(shape: tuple[int, int] = SHAPE, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """A smooth 2-D gradient from ``lo`` to ``hi`` (float64)."""
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    t = (x / max(shape[1] - 1, 1) + y / max(shape[0] - 1, 1)) / 2
    return lo + (hi - lo) * t


def write_zoo(folder: Path) -> dict[str, Path]:
    """One file of every kind the decoder handles, all ``SHAPE`` pixels, into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}
    grey8 = np.round(ramp(lo=10, hi=240)).astype(np.uint8)
    rgb8 = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    Image.fromarray(grey8).save(out.setdefault("png8_grey", folder / "png8_grey.png"))
    Image.fromarray(rgb8).save(out.setdefault("png8_rgb", folder / "png8_rgb.png"))
    # a 12-bit X-ray in a 16-bit PNG: values 0..4095 of 0..65535
    xray = np.round(ramp(lo=300, hi=3900)).astype(np.uint16)
    Image.fromarray(xray).save(out.setdefault("png16_xray", folder / "png16_xray.png"))
    smooth_rgb = np.stack([grey8, 255 - grey8, np.full_like(grey8, 90)], axis=-1)
    Image.fromarray(smooth_rgb).save(out.setdefault("jpeg", folder / "photo.jpg"), quality=90)
    Image.fromarray(xray).save(out.setdefault("tiff16", folder / "scan16.tif"))
    hu = np.round(ramp(lo=0, hi=2000)).astype(np.uint16)  # stored; HU = stored - 1024
    out["dcm_mono2_ct"] = write_dicom(folder / "ct.dcm", hu, intercept=-1024.0,
                                      window=(40.0, 400.0), bits=12)
    out["dcm_mono1"] = write_dicom(folder / "cr.dcm", hu, photometric="MONOCHROME1", bits=12)
    out["dcm_rgb"] = write_rgb_dicom(folder / "derm.dcm", rgb8)
    frames = np.stack([hu, 2000 - hu, hu // 2])
    out["dcm_multiframe"] = write_dicom(folder / "series.dcm", frames, intercept=-1024.0,
                                        bits=12)
    out["dcm_rle"] = write_dicom(folder / "rle.dcm", hu, intercept=-1024.0, window=(40.0, 400.0),
                                 bits=12, compress=RLELossless)
    out["dcm_j2k"] = write_dicom(folder / "j2k.dcm", hu, intercept=-1024.0, bits=12,
                                 compress=JPEG2000Lossless)
    out["dcm_jpeg"], _ = write_jpeg_baseline_dicom(folder / "jpegbase.dcm", grey8)
    return out
