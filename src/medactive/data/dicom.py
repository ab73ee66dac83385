"""DICOM pixels to display-ready 8-bit arrays, by the standard (PS3.3 C.7.6.3, C.11.1, C.11.2).

Grey images (MONOCHROME1/2):

1. stored values -> **Modality LUT** (rescale slope/intercept or a Modality LUT Sequence) with
   pydicom's :func:`~pydicom.pixels.apply_modality_lut`;
2. -> **VOI LUT**: a window chosen by the user (centre/width, linear) overrides the header;
   otherwise pydicom's :func:`~pydicom.pixels.apply_voi_lut` applies the header's first VOI LUT
   Sequence item or first Window Center/Width (LINEAR, LINEAR_EXACT or SIGMOID); the VOI output
   range is then mapped onto 0..255. Without any VOI in the header (or with an invalid one, such
   as a zero width) the modality values are scaled min–max, the same policy as 16-bit PNGs;
3. MONOCHROME1 (and a Presentation LUT Shape of INVERSE) is inverted, so low values show bright.

Colour images: YBR is converted to RGB by the decoder, PALETTE COLOR goes through its colour LUT
(:func:`~pydicom.pixels.apply_color_lut`), and samples wider than 8 bits are scaled by their bit
depth. Enhanced multi-frame files carry rescale and window per frame (functional groups); those
of the chosen frame are used.

Compressed transfer syntaxes (JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE) are
decoded by pydicom's pixel backends: ``pylibjpeg`` with ``pylibjpeg-libjpeg`` (JPEG, JPEG-LS),
``pylibjpeg-openjpeg`` (JPEG 2000) and ``pylibjpeg-rle`` or pydicom itself (RLE).

Privacy: only the image-pixel elements (group 0028, pixel data, functional groups) are parsed,
via ``dcmread(specific_tags=...)``; patient and study elements are never read, so they cannot
reach a log, an export or an error message. Errors name the problem only; callers add the file.
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from medactive.data.pixels import pick_frame, scale_to_uint8, to_uint8_minmax
from medactive.errors import DataError

_PIXEL_KEYWORDS = (
    "PixelData", "FloatPixelData", "DoubleFloatPixelData", "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths", "NumberOfFrames", "RescaleSlope", "RescaleIntercept",
    "RescaleType", "ModalityLUTSequence", "VOILUTSequence", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "PresentationLUTShape", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")


@lru_cache(maxsize=1)
def _pixel_tags() -> list[int]:
    """Every tag of the Image Pixel / LUT group (0028,xxxx) plus the elements named above."""
    from pydicom.datadict import DicomDictionary, tag_for_keyword

    group = [int(tag) for tag in DicomDictionary if (int(tag) >> 16) == 0x0028]
    named = [int(tag_for_keyword(k)) for k in _PIXEL_KEYWORDS]  # type: ignore[arg-type]
    return sorted(set(group + named))


def _reason(exc: BaseException) -> str:
    """``Type: first line`` of a decoder exception (the dataset holds no patient elements)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def read_pixel_dataset(data: bytes):
    """Parse the pixel-related elements of a DICOM Part 10 file (or a bare dataset).

    Returns:
        a ``pydicom.Dataset`` with ``file_meta.TransferSyntaxUID`` always set.
    """
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True, specific_tags=_pixel_tags())
    except Exception as exc:  # pydicom raises many types for broken files
        raise DataError(f"not a readable DICOM file ({_reason(exc)})") from None
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        if data[128:132] != b"DICM" and "Rows" not in ds:
            raise DataError("not a DICOM file (no DICM marker and no image elements)")
        raise DataError("DICOM file has no pixel data (not an image)")
    meta = ds.file_meta
    if not meta.get("TransferSyntaxUID"):  # a bare dataset without File Meta: use its encoding
        implicit, _little = ds.original_encoding
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def _frame_count(ds) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        raise DataError("DICOM Number of Frames is not a number") from None


def _use_frame_groups(ds, index: int) -> None:
    """Copy rescale and window of frame ``index`` from the functional groups (enhanced IODs)."""
    groups = []
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    wanted = {"PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
              "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction")}
    for group in groups:  # per-frame values first: they win over shared ones
        for sequence, keywords in wanted.items():
            items = group.get(sequence)
            if not items:
                continue
            for keyword in keywords:
                if keyword in items[0] and keyword not in ds:
                    setattr(ds, keyword, items[0][keyword].value)


def _valid_voi_lut(ds) -> bool:
    items = ds.get("VOILUTSequence")
    return bool(items) and None not in (items[0].get("LUTDescriptor"), items[0].get("LUTData"))


def _window_range(ds) -> tuple[float, float]:
    """Output range of pydicom's windowing for ``ds``: the images of -inf and +inf."""
    from pydicom.pixels import apply_windowing

    lo, hi = apply_windowing(np.array([-np.inf, np.inf]), ds)
    return float(lo), float(hi)


def _lut_range(ds) -> tuple[float, float]:
    """Smallest and largest entry of the first VOI LUT (its whole input domain)."""
    from pydicom.pixels import apply_voi

    n_entries, first = int(ds.VOILUTSequence[0].LUTDescriptor[0] or 65536), \
        int(ds.VOILUTSequence[0].LUTDescriptor[1])
    out = apply_voi(np.arange(first, first + n_entries, dtype=np.int64), ds)
    return float(out.min()), float(out.max())


def _grey_to_uint8(pixels: np.ndarray, ds, window: tuple[float, float] | None) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing

    values = apply_modality_lut(pixels, ds)
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = float(window[0]), float(window[1])
        ds.VOILUTFunction = "LINEAR"
        out = scale_to_uint8(apply_windowing(values, ds), *_window_range(ds))
    elif _valid_voi_lut(ds):
        # a VOI LUT maps the (integer) modality output; pydicom warns on float input
        out = scale_to_uint8(apply_voi_lut(np.round(values).astype(np.int64), ds), *_lut_range(ds))
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        try:
            out = scale_to_uint8(apply_voi_lut(values, ds), *_window_range(ds))
        except ValueError:  # e.g. a zero or negative width: treat as "no window given"
            out = to_uint8_minmax(values)
    else:
        out = to_uint8_minmax(values)
    photometric = str(ds.PhotometricInterpretation).strip().upper()
    invert = (photometric == "MONOCHROME1") != (
        str(ds.get("PresentationLUTShape", "")).strip().upper() == "INVERSE")
    return 255 - out if invert else out


def _colour_to_uint8(pixels: np.ndarray, ds, photometric: str) -> np.ndarray:
    from pydicom.pixels import apply_color_lut

    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(pixels, ds)
        bits = 8 * rgb.dtype.itemsize
    else:
        rgb = pixels
        bits = int(ds.get("BitsStored") or 8 * rgb.dtype.itemsize)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DataError(f"unexpected colour pixel shape {rgb.shape}")
    if rgb.dtype == np.uint8 and bits == 8:
        return rgb
    return scale_to_uint8(rgb, 0.0, float(2**bits - 1))


def decode_dicom(data: bytes, window: tuple[float, float] | None = None,
                 frame: int | None = None) -> np.ndarray:
    """Decode DICOM bytes to uint8 ``(H, W)`` (grey) or ``(H, W, 3)`` (colour).

    Args:
        data: the file's bytes.
        window: ``(center, width)`` in modality units (e.g. Hounsfield units) overriding the
            header's VOI; ignored for colour images.
        frame: frame of a multi-frame file; None = the middle one.

    Raises:
        DataError: not DICOM, no pixel data, an undecodable or unsupported pixel encoding, or a
            frame past the end. The message never contains header values.
    """
    from pydicom.pixels import pixel_array

    ds = read_pixel_dataset(data)
    n_frames = _frame_count(ds)
    index = pick_frame(n_frames, frame)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    grey = photometric in _MONOCHROME
    if not (grey or photometric.startswith(("RGB", "YBR")) or photometric == "PALETTE COLOR"):
        raise DataError(f"unsupported DICOM photometric interpretation {photometric or 'none'!r}")
    try:
        _use_frame_groups(ds, index)
        # one frame is decoded, not the whole series; YBR comes back as RGB
        pixels = pixel_array(ds, index=index if n_frames > 1 else None)
        if not grey:
            return _colour_to_uint8(pixels, ds, photometric)
        if pixels.ndim != 2:
            raise DataError(f"unexpected grey pixel shape {pixels.shape}")
        return _grey_to_uint8(pixels, ds, window)
    except DataError:
        raise
    except Exception as exc:  # decoder plugins raise many types
        raise DataError(f"cannot decode DICOM pixel data ({_reason(exc)})") from None
