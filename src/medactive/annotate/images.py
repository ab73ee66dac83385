"""Reading registered image files (PNG, JPEG, DICOM) and hashing them.

Only paths stored in the project database are ever opened; the web app maps an image *id* to a
row and never builds a path from client input.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

from medactive.data.medmnist import file_digest
from medactive.errors import DataError

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")
DICOM_SUFFIXES = (".dcm", ".dicom")
IMAGE_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (the content hash images are registered with)."""
    return file_digest(path, "sha256")


def find_images(folder: Path) -> list[Path]:
    """All PNG/JPEG/DICOM files under ``folder`` (recursive), sorted for a stable order."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no PNG, JPEG or DICOM images found under {folder}")
    return files


def _dicom_to_array(path: Path, data: bytes) -> np.ndarray:
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        arr = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises many types for broken files
        raise DataError(f"{path}: cannot read DICOM pixel data ({exc})") from None
    if arr.ndim == 3 and arr.shape[-1] not in (3, 4):
        arr = arr[arr.shape[0] // 2]  # multi-frame: the middle frame stands for the series
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    arr = arr * slope + intercept
    # Window to the 1st-99th percentile: raw CT/MR ranges would otherwise show as flat grey.
    lo, hi = np.percentile(arr, [1, 99]) if arr.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    arr = np.clip((arr - lo) / (hi - lo), 0, 1) * 255.0
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        arr = 255.0 - arr
    return arr.astype(np.uint8)


def load_pil(path: str | Path, sha256: str | None = None) -> Image.Image:
    """Open a registered file as a PIL image (mode ``L`` or ``RGB``).

    With ``sha256``, the bytes read must hash to it (the file was not changed since it was
    registered); the check and the decoding use the same read, so they cannot disagree.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        raise DataError(f"registered image is missing or unreadable: {path}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{path} changed on disk since it was registered (content hash differs)")
    if path.suffix.lower() in DICOM_SUFFIXES:
        return Image.fromarray(_dicom_to_array(path, data))
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            grey = img.mode in ("L", "I", "I;16", "1", "F")
            return img.convert("L") if grey else img.convert("RGB")
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from None


def to_png_bytes(path: str | Path, sha256: str | None = None) -> bytes:
    """The file as PNG bytes (DICOM converted, PNG/JPEG re-encoded) for the browser."""
    buf = io.BytesIO()
    load_pil(path, sha256).save(buf, format="PNG")
    return buf.getvalue()


def load_array(paths: list[str], size: int, channels: int,
               hashes: list[str] | None = None) -> np.ndarray:
    """Load files into one uint8 ``(N, size, size, channels)`` array (resized, bilinear);
    with ``hashes``, every file must still match its registered content hash."""
    out = np.empty((len(paths), size, size, channels), dtype=np.uint8)
    mode = "RGB" if channels == 3 else "L"
    for i, p in enumerate(paths):
        img = load_pil(p, None if hashes is None else hashes[i]).convert(mode)
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        out[i] = arr if arr.ndim == 3 else arr[..., None]
    return out
