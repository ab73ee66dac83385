"""The image decoder: raster policies, DICOM by the standard (against formulas written out here),
compressed transfer syntaxes, frame policy, errors, and no patient data in any message."""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, RLELossless

from medactive.data.decode import CT_WINDOWS, DecodeSettings, decode_bytes, read_image
from medactive.errors import DataError
from samples import (
    PHI_ID,
    PHI_NAME,
    bundled,
    ramp,
    write_dicom,
    write_jpeg_baseline_dicom,
    write_rgb_dicom,
)


def _linear_window_reference(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 (LINEAR), output scaled to 0..255, written out independently."""
    x = np.asarray(x, dtype=np.float64)
    lo_edge, hi_edge = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    t = np.where(x <= lo_edge, 0.0, np.where(x > hi_edge, 1.0,
                                              (x - (center - 0.5)) / (width - 1) + 0.5))
    return np.round(t * 255).astype(np.uint8)


def _minmax_reference(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.round((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ raster files

def test_16bit_png_is_scaled_to_its_own_range() -> None:
    xray = np.round(ramp(lo=300, hi=3900)).astype(np.uint16)  # 12 bits used of 16
    out = decode_bytes(_png(xray), ".png")
    assert out.dtype == np.uint8 and out.shape == xray.shape
    assert np.array_equal(out, _minmax_reference(xray))


def test_float_tiff_and_8bit_grey() -> None:
    values = ramp(lo=-1.5, hi=2.5).astype(np.float32)
    buf = io.BytesIO()
    Image.fromarray(values, mode="F").save(buf, format="TIFF")
    assert np.array_equal(decode_bytes(buf.getvalue(), ".tif"), _minmax_reference(values))
    grey = np.round(ramp(lo=3, hi=200)).astype(np.uint8)
    assert np.array_equal(decode_bytes(_png(grey), ".png"), grey)  # 8-bit stays as it is


def test_multipage_tiff_follows_the_frame_policy() -> None:
    pages = [Image.fromarray(np.full((6, 5), v, np.uint8)) for v in (10, 20, 30, 40)]
    buf = io.BytesIO()
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    data = buf.getvalue()
    assert decode_bytes(data, ".tif")[0, 0] == 30  # middle of 4 = index 2
    assert decode_bytes(data, ".tif", settings=DecodeSettings(frame=0))[0, 0] == 10
    with pytest.raises(DataError, match=r"frame 7 asked for, but the file has 4 frames"):
        decode_bytes(data, ".tif", settings=DecodeSettings(frame=7))


def test_size_and_channels() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    out = decode_bytes(_png(rgb), ".png", 8)
    assert out.shape == (8, 8, 3)
    grey = decode_bytes(_png(rgb), ".png", 8, channels=1)
    luma = np.clip(np.round(out @ np.array([0.299, 0.587, 0.114])), 0, 255)
    assert grey.shape == (8, 8, 1) and np.array_equal(grey[..., 0], luma.astype(np.uint8))


@pytest.mark.parametrize(("data", "message"), [
    (b"", "empty file"),
    (_png(np.zeros((50, 50), np.uint8))[:60], "cannot decode image"),
    (b"hello, not an image", "not a PNG, JPEG, TIFF or DICOM image"),
])
def test_bad_raster_bytes_are_one_clear_error(data, message) -> None:
    with pytest.raises(DataError, match=message):
        decode_bytes(data, ".png")


# ------------------------------------------------------------------ DICOM grey pipeline

def test_header_window_after_rescale_matches_the_standard(tmp_path) -> None:
    stored = np.round(ramp(lo=0, hi=2000)).astype(np.uint16)
    path = write_dicom(tmp_path / "ct.dcm", stored, intercept=-1024.0, window=(40.0, 400.0),
                       bits=12)
    hu = stored.astype(np.float64) - 1024.0
    assert np.array_equal(read_image(path), _linear_window_reference(hu, 40.0, 400.0))


def test_user_window_and_presets_override_the_header(tmp_path) -> None:
    stored = np.round(ramp(lo=0, hi=3000)).astype(np.uint16)
    path = write_dicom(tmp_path / "ct.dcm", stored, intercept=-1024.0, window=(40.0, 400.0))
    hu = stored.astype(np.float64) - 1024.0
    for name, (center, width) in CT_WINDOWS.items():
        out = read_image(path, settings=DecodeSettings.parse(name))
        assert np.array_equal(out, _linear_window_reference(hu, center, width)), name
    out = read_image(path, settings=DecodeSettings.parse("-100, 900"))
    assert np.array_equal(out, _linear_window_reference(hu, -100.0, 900.0))
    assert CT_WINDOWS["lung"] == (-600.0, 1500.0) and CT_WINDOWS["brain"] == (40.0, 80.0)


@pytest.mark.parametrize("text", ["wide", "40", "40,400,3", "a,b", "40,0", "40,nan"])
def test_bad_window_text(text) -> None:
    with pytest.raises(DataError, match="window"):
        DecodeSettings.parse(text)


def test_settings_round_trip_through_project_meta() -> None:
    settings = DecodeSettings.parse("lung", 3)
    assert DecodeSettings.from_meta(settings.to_meta()) == settings
    assert DecodeSettings.from_meta(None) == DecodeSettings()
    with pytest.raises(DataError, match="frame"):
        DecodeSettings(frame=-1)


def test_voi_lut_sequence_is_used(tmp_path) -> None:
    stored = np.arange(40 * 48, dtype=np.uint16).reshape(40, 48) % 1000
    lut = (np.sqrt(np.arange(1000) / 999) * 4095).astype(np.int64)  # a gamma-like VOI LUT
    path = write_dicom(tmp_path / "lut.dcm", stored, window=(10.0, 20.0),
                       voi_lut=(0, 12, lut))  # the LUT wins over the window (PS3.4 N.2.1.1)
    expected = np.round(lut[stored] / lut.max() * 255).astype(np.uint8)
    assert np.array_equal(read_image(path), expected)


def test_sigmoid_window(tmp_path) -> None:
    stored = np.round(ramp(lo=0, hi=1000)).astype(np.uint16)
    path = write_dicom(tmp_path / "s.dcm", stored, window=(500.0, 200.0), voi_function="SIGMOID")
    expected = np.round(255 / (1 + np.exp(-4 * (stored - 500.0) / 200.0)))
    assert np.abs(read_image(path).astype(int) - expected).max() <= 1


def test_monochrome1_is_inverted_and_signed_pixels(tmp_path) -> None:
    stored = np.round(ramp(lo=-500, hi=1500)).astype(np.int16)
    m2 = read_image(write_dicom(tmp_path / "m2.dcm", stored, signed=True))
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", stored, signed=True,
                                photometric="MONOCHROME1"))
    assert np.array_equal(m2, _minmax_reference(stored))  # no window: min-max, as 16-bit PNGs
    assert np.array_equal(m1, 255 - m2)


def test_invalid_header_window_falls_back_to_minmax(tmp_path) -> None:
    stored = np.round(ramp(lo=0, hi=1000)).astype(np.uint16)
    path = write_dicom(tmp_path / "w0.dcm", stored, window=(500.0, 0.0))
    assert np.array_equal(read_image(path), _minmax_reference(stored))


def test_multiframe_middle_frame_and_frame_option(tmp_path) -> None:
    frames = np.stack([np.full((4, 5), v, np.uint16) for v in (0, 100, 200)])
    frames[:, 0, 0], frames[:, 0, 1] = 0, 1000  # the same 0..1000 range in every frame
    path = write_dicom(tmp_path / "series.dcm", frames)
    assert read_image(path)[1, 1] == round(100 / 1000 * 255)  # the middle: frame 1 of 3
    assert read_image(path, settings=DecodeSettings(frame=2))[1, 1] == round(200 / 1000 * 255)
    assert read_image(path, settings=DecodeSettings(frame=0))[1, 1] == 0
    with pytest.raises(DataError, match=r"series\.dcm: frame 3 asked for, but the file has 3"):
        read_image(path, settings=DecodeSettings(frame=3))


def test_enhanced_multiframe_uses_the_frames_own_window(tmp_path) -> None:
    import pydicom

    frames = np.stack([np.round(ramp(lo=0, hi=2000)).astype(np.uint16)] * 2)
    path = write_dicom(tmp_path / "enh.dcm", frames)
    ds = pydicom.dcmread(path)
    per_frame = []
    for center, width in ((100.0, 200.0), (1500.0, 400.0)):
        voi, group = Dataset(), Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        group.FrameVOILUTSequence = [voi]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    shared, rescale = Dataset(), Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept = 1.0, 0.0
    shared.PixelValueTransformationSequence = [rescale]
    ds.SharedFunctionalGroupsSequence = [shared]
    del ds.RescaleSlope, ds.RescaleIntercept
    ds.save_as(path)
    for index, (center, width) in enumerate(((100.0, 200.0), (1500.0, 400.0))):
        out = read_image(path, settings=DecodeSettings(frame=index))
        assert np.array_equal(out, _linear_window_reference(frames[index], center, width))


# ------------------------------------------------------------------ DICOM colour, compression

def test_rgb_and_palette_dicom(tmp_path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    assert np.array_equal(read_image(write_rgb_dicom(tmp_path / "rgb.dcm", rgb)), rgb)
    palette = read_image(bundled("examples_palette.dcm"))  # PALETTE COLOR via its colour LUT
    assert palette.dtype == np.uint8 and palette.shape == (350, 800, 3)
    assert (palette[..., 0] != palette[..., 2]).any()


def test_compressed_transfer_syntaxes_decode_like_the_uncompressed_file(tmp_path) -> None:
    stored = np.round(ramp(lo=0, hi=4000)).astype(np.uint16)
    plain = read_image(write_dicom(tmp_path / "plain.dcm", stored, intercept=-1024.0, bits=12))
    for name, syntax in (("rle", RLELossless), ("j2k", JPEG2000Lossless)):
        path = write_dicom(tmp_path / f"{name}.dcm", stored, intercept=-1024.0, bits=12,
                           compress=syntax)
        assert np.array_equal(read_image(path), plain), name
    rgb = np.random.default_rng(2).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    assert np.array_equal(read_image(write_rgb_dicom(tmp_path / "c.dcm", rgb, RLELossless)), rgb)
    grey = np.round(ramp(lo=20, hi=230)).astype(np.uint8)
    path, jpeg_pixels = write_jpeg_baseline_dicom(tmp_path / "jpeg.dcm", grey)
    # lossy: what the JPEG itself decodes to (min-max: the file has no window), up to the
    # +-1 by which two JPEG libraries' inverse DCTs may differ (x255/range after scaling)
    assert np.abs(read_image(path).astype(int) - _minmax_reference(jpeg_pixels)).max() <= 2


def test_bundled_jpeg_ls_jpeg_lossless_and_extended_samples() -> None:
    mr = read_image(bundled("MR_small.dcm"))
    assert np.array_equal(read_image(bundled("MR_small_jpeg_ls_lossless.dcm")), mr)  # JPEG-LS
    assert np.array_equal(read_image(bundled("MR_small_jp2klossless.dcm")), mr)
    assert np.array_equal(read_image(bundled("MR_small_RLE.dcm")), mr)
    # JPEG lossless (process 14, SV1) vs the same picture stored RLE
    assert np.array_equal(read_image(bundled("SC_rgb_jpeg_gdcm.dcm")),
                          read_image(bundled("SC_rgb_rle.dcm")))
    extended = read_image(bundled("JPGExtended.dcm"))  # 12-bit JPEG extended (process 4)
    assert extended.shape == (1024, 256) and extended.max() > extended.min()


@pytest.mark.parametrize(("name", "message"), [
    ("rtplan.dcm", "no pixel data"),
    ("MR_truncated.dcm", "cannot decode DICOM pixel data"),
])
def test_bad_dicom_is_one_clear_error(name, message) -> None:
    with pytest.raises(DataError, match=message):
        read_image(bundled(name))


# ------------------------------------------------------------------ privacy

def test_no_patient_data_in_errors_warnings_or_logs(tmp_path, caplog) -> None:
    stored = np.round(ramp(lo=0, hi=1000)).astype(np.uint16)
    good = write_dicom(tmp_path / "good.dcm", stored)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(good.read_bytes()[:-500])  # truncated pixel data
    unsupported = write_dicom(tmp_path / "odd.dcm", stored, photometric="HSV")
    assert PHI_NAME.encode() in good.read_bytes()  # the header really holds patient data
    caplog.set_level(logging.DEBUG)
    messages = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        read_image(good)
        for path in (broken, unsupported):
            with pytest.raises(DataError) as err:
                read_image(path)
            messages.append(str(err.value))
    text = "\n".join(messages + [str(w.message) for w in caught] + [caplog.text])
    assert "broken.dcm" in messages[0] and "odd.dcm" in messages[1]
    for secret in (PHI_NAME, "Doe", PHI_ID, "19610407"):
        assert secret not in text
