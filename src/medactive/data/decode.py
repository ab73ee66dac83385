"""Find and decode image files (PNG / JPEG via Pillow, DICOM via pydicom) to resized uint8 arrays.

Used by :mod:`medactive.data.folder`. Every function returns ``(H, W)`` (grayscale) or
``(H, W, 3)`` (RGB) uint8 and raises ``ValueError``/``OSError`` on unreadable input; the caller
turns that into a :class:`~medactive.errors.DataError` naming the CSV row and the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DICOM_SUFFIXES = (".dcm", ".dicom")
# Tried in turn when a CSV gives a bare id such as ISIC_0024306.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".dcm")
# Pillow modes that are already 8-bit grayscale / need min-max scaling from a wider range.
_GRAY8_MODES = ("1", "L", "LA")
_WIDE_GRAY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def to_uint8_minmax(values: np.ndarray) -> np.ndarray:
    """Scale any numeric array linearly so its min maps to 0 and max to 255 (constant -> 0)."""
    values = values.astype(np.float64, copy=False)
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Apply a DICOM linear VOI window (PS3.3 C.11.2.1.2.1) and map it to uint8.

    ``values`` are modality values (e.g. Hounsfield units after rescale slope/intercept);
    everything below the window becomes 0 and everything above 255.
    """
    width = max(float(width), 1.0)
    scaled = ((values.astype(np.float64, copy=False) - (center - 0.5)) / (width - 1.0) + 0.5)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)


def _first(value: object) -> float:
    """WindowCenter/WindowWidth may be multi-valued (several presets); the first is the default."""
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        value = next(iter(value))  # type: ignore[call-overload]
    return float(value)  # type: ignore[arg-type]


def dicom_to_array(path: Path) -> np.ndarray:
    """Read a DICOM file as display-ready uint8 ``(H, W)`` or ``(H, W, 3)``.

    Grayscale: stored values -> ``value * RescaleSlope + RescaleIntercept`` -> the first
    WindowCenter/WindowWidth preset when present, else min-max -> inverted for MONOCHROME1 (where
    low values are bright). Multi-frame files give their first frame. RGB files are used as-is
    (min-max scaled when not 8-bit).
    """
    import pydicom

    ds = pydicom.dcmread(path)
    if "PixelData" not in ds:
        raise ValueError("DICOM file has no pixel data")
    pixels = np.asarray(ds.pixel_array)
    samples = int(ds.get("SamplesPerPixel", 1))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        pixels = pixels[0]
    if samples == 3:
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise ValueError(f"RGB DICOM with unexpected pixel shape {pixels.shape}")
        return pixels if pixels.dtype == np.uint8 else to_uint8_minmax(pixels)
    if samples != 1 or pixels.ndim != 2:
        raise ValueError(f"unsupported DICOM pixel layout: {samples} samples, shape {pixels.shape}")
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    values = pixels.astype(np.float64) * slope + intercept
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        out = window_to_uint8(values, _first(center), _first(width))
    else:
        out = to_uint8_minmax(values)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        out = 255 - out
    return out


def pil_to_array(path: Path, draft_size: int | None = None) -> np.ndarray:
    """Read a PNG / JPEG (any Pillow format) as uint8 ``(H, W)`` or ``(H, W, 3)``.

    16-bit and float grayscale (common for exported X-rays) are min-max scaled to 8 bits; palette,
    alpha and CMYK images become RGB. ``draft_size`` lets JPEG decode at a reduced scale (at least
    that size), several times faster when the target is small.
    """
    with Image.open(path) as img:
        if draft_size is not None and img.format == "JPEG":
            img.draft(img.mode, (draft_size, draft_size))
        img.load()
        if img.mode in _GRAY8_MODES:
            return np.asarray(img.convert("L"))
        if img.mode in _WIDE_GRAY_MODES:
            return to_uint8_minmax(np.asarray(img))
        if img.mode == "P" and _palette_is_gray(img):
            return np.asarray(img.convert("L"))
        return np.asarray(img.convert("RGB"))


def _palette_is_gray(img: Image.Image) -> bool:
    rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(H, W[, 3])`` uint8 to ``(size, size[, 3])`` with bicubic filtering.

    Non-square images are stretched, as MedMNIST does (e.g. 600x450 dermatoscopy -> 28x28).
    Pillow's bicubic filter widens its support when shrinking, so downscaling is anti-aliased.
    """
    if array.shape[:2] == (size, size):
        return array
    return np.asarray(Image.fromarray(array).resize((size, size), Image.Resampling.BICUBIC))


def read_image(path: Path, size: int | None) -> np.ndarray:
    """Decode ``path`` (DICOM by suffix or by its ``DICM`` magic, else Pillow) and resize.

    Returns:
        uint8 ``(size, size)`` / ``(size, size, 3)``, or the native size when ``size`` is None.
    """
    if path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_magic(path):
        array = dicom_to_array(path)
    else:
        array = pil_to_array(path, draft_size=size)
    return array if size is None else resize(np.ascontiguousarray(array), size)


def _has_dicom_magic(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble, whatever their suffix."""
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


class ImageResolver:
    """Find the file for a CSV id: as given, then with each known extension, then by name
    anywhere below the root (HAM10000 ships its JPEGs in two sub-folders)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._index: dict[str, Path | None] | None = None

    def __call__(self, image_id: str) -> Path | None:
        direct = self.root / image_id
        if direct.is_file():
            return direct
        for ext in IMAGE_EXTENSIONS:
            for candidate in (direct.with_name(direct.name + ext),
                              direct.with_name(direct.name + ext.upper())):
                if candidate.is_file():
                    return candidate
        return self._search(Path(image_id).name)

    def _search(self, name: str) -> Path | None:
        if self._index is None:
            self._index = {}
            for path in sorted(self.root.rglob("*")):
                if path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
                    continue
                for key in (path.name, path.stem):
                    # Two files with the same name in different folders: refuse to guess.
                    self._index[key] = None if key in self._index else path
        return self._index.get(name)
