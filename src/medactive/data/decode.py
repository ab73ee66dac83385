"""The one image decoder: bytes of a PNG / JPEG / TIFF / DICOM file -> uint8 array.

Every path that turns a file into pixels goes through :func:`decode_bytes`: the image-folder
loader (:mod:`medactive.data.folder`), ``project init`` (checks every file), ``project query``
(the model's input) and the labelling app (what the clinician sees, via :func:`render_png`). So the
model and the clinician always see the same pixels, and one setting (:class:`DecodeSettings`)
controls DICOM windowing and the frame of multi-frame files everywhere.

Formats: PNG, JPEG, TIFF and the rest of Pillow's formats; DICOM (by suffix, or by its ``DICM``
magic whatever the suffix) via :mod:`medactive.data.dicom`. Policies (scaling of 16-bit grey,
frame choice, resizing, channels) are in :mod:`medactive.data.pixels`.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from medactive.data.dicom import decode_dicom
from medactive.data.pixels import pick_frame, resize, to_channels, to_uint8_minmax
from medactive.errors import DataError

DICOM_SUFFIXES = (".dcm", ".dicom")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
IMAGE_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES

# Standard CT display windows as (centre, width) in Hounsfield units, from Radiopaedia,
# "Windowing (CT)" (https://radiopaedia.org/articles/windowing-ct): brain W:80 L:40,
# lungs W:1500 L:-600, mediastinum W:350 L:50, abdomen (soft tissue) W:400 L:50, bone W:1800 L:400.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (50.0, 400.0),
    "bone": (400.0, 1800.0),
}

# Pillow modes that are 8-bit grey already / grey wider than 8 bits (scaled min-max).
_GREY8_MODES = ("1", "L", "LA", "La")
_WIDE_GREY_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


@dataclass(frozen=True)
class DecodeSettings:
    """How files become pixels, shared by every path (stored in a labelling project's meta).

    Attributes:
        window: ``(center, width)`` of a linear VOI window in modality units (Hounsfield units
            for CT) that overrides the DICOM header's window; None = the header's VOI.
        frame: frame index of multi-frame files (DICOM series, multi-page TIFF); None = the
            middle frame. Single-frame files ignore it.
    """

    window: tuple[float, float] | None = None
    frame: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None:
            center, width = (float(v) for v in self.window)
            if not (np.isfinite(center) and np.isfinite(width)) or width < 1:
                raise DataError(f"window width must be a number >= 1, got {self.window[1]!r}")
            object.__setattr__(self, "window", (center, width))
        if self.frame is not None and (not isinstance(self.frame, int) or self.frame < 0):
            raise DataError(f"frame must be a non-negative integer, got {self.frame!r}")

    @classmethod
    def parse(cls, window: str | None = None, frame: int | None = None) -> DecodeSettings:
        """Build from command-line text: ``window`` is ``CENTER,WIDTH`` or a preset name
        (brain, lung, mediastinum, abdomen, bone)."""
        if window is None:
            return cls(None, frame)
        key = window.strip().lower()
        if key in CT_WINDOWS:
            return cls(CT_WINDOWS[key], frame)
        parts = [p.strip() for p in window.split(",")]
        try:
            center, width = (float(p) for p in parts)
        except ValueError:
            raise DataError(
                f"--window {window!r}: give CENTER,WIDTH (e.g. 40,400) or one of "
                f"{', '.join(CT_WINDOWS)}"
            ) from None
        return cls((center, width), frame)

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready form (for a project's meta table)."""
        return {"window": None if self.window is None else list(self.window),
                "frame": self.frame}

    @classmethod
    def from_meta(cls, meta: dict[str, Any] | None) -> DecodeSettings:
        """Inverse of :meth:`to_meta`; None or a missing key gives the defaults."""
        meta = meta or {}
        window = meta.get("window")
        return cls(None if window is None else (window[0], window[1]), meta.get("frame"))


def is_dicom(data: bytes, suffix: str) -> bool:
    """DICOM by suffix, or by the ``DICM`` magic after the 128-byte preamble."""
    return suffix.lower() in DICOM_SUFFIXES or data[128:132] == b"DICM"


def _pil_to_array(img: Image.Image) -> np.ndarray:
    if img.mode in _GREY8_MODES:
        return np.asarray(img.convert("L"))
    if img.mode in _WIDE_GREY_MODES:
        return to_uint8_minmax(np.asarray(img))
    if img.mode == "P":
        rgb = np.asarray(img.convert("RGB"))
        grey = (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()
        return np.ascontiguousarray(rgb[..., 0]) if grey else rgb
    return np.asarray(img.convert("RGB"))


def decode_raster(data: bytes, frame: int | None = None,
                  draft_size: int | None = None) -> np.ndarray:
    """Decode PNG / JPEG / TIFF (any Pillow format) bytes to uint8 ``(H, W)`` or ``(H, W, 3)``.

    8-bit grey stays as it is; wider grey (16-bit, 32-bit, float) is scaled min–max; palette,
    alpha and CMYK images become RGB (a palette of greys stays grey). ``draft_size`` lets JPEG
    decode at a reduced scale that is still at least that size (several times faster).
    """
    try:
        with Image.open(io.BytesIO(data)) as img:
            n_frames = int(getattr(img, "n_frames", 1) or 1)
            if n_frames > 1:
                img.seek(pick_frame(n_frames, frame))
            if draft_size is not None and img.format == "JPEG":
                img.draft(img.mode, (draft_size, draft_size))
            img.load()
            return _pil_to_array(img)
    except UnidentifiedImageError:
        raise DataError("not a PNG, JPEG, TIFF or DICOM image (unrecognised content)") from None
    except DataError:
        raise
    except Exception as exc:  # truncated data, decompression bombs, codec errors
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"cannot decode image ({type(exc).__name__}: {text[:200]})") from None


def decode_bytes(
    data: bytes,
    suffix: str,
    size: int | None = None,
    *,
    channels: int | None = None,
    settings: DecodeSettings | None = None,
) -> np.ndarray:
    """Decode one file's bytes, the same way in every path.

    Args:
        data: the file's bytes.
        suffix: its suffix (``.dcm`` forces DICOM; other files are sniffed).
        size: resize to ``(size, size)`` (bicubic), or None for the native size.
        channels: 1 or 3 for ``(H, W, channels)``; None keeps ``(H, W)`` grey or ``(H, W, 3)``.
        settings: DICOM window and frame (default: header window, middle frame).

    Returns:
        uint8 ``(H, W)`` / ``(H, W, 3)``, or ``(H, W, channels)`` when ``channels`` is given.

    Raises:
        DataError: empty or undecodable data; the message names the problem, not the file.
    """
    settings = settings or DecodeSettings()
    if not data:
        raise DataError("empty file (0 bytes)")
    if is_dicom(data, suffix):
        array = decode_dicom(data, settings.window, settings.frame)
    else:
        array = decode_raster(data, settings.frame, draft_size=size)
    if array.size == 0:
        raise DataError("image has no pixels (0 rows or columns)")
    if size is not None:
        array = resize(array, size)
    return array if channels is None else to_channels(array, channels)


def read_verified(path: str | Path, sha256: str | None = None) -> bytes:
    """Read a file's bytes; with ``sha256`` they must hash to it.

    The check and the decoding use this one read, so what is decoded is exactly what was
    registered, never a file swapped in between two reads.

    Raises:
        DataError: the file is missing or unreadable, or its content changed.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: missing or unreadable ({exc.strerror or type(exc).__name__})") \
            from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DataError(f"{path} changed on disk since it was registered (content hash differs)")
    return data


def read_image(path: str | Path, size: int | None = None, *, channels: int | None = None,
               settings: DecodeSettings | None = None, sha256: str | None = None) -> np.ndarray:
    """:func:`read_verified` then :func:`decode_bytes`; errors name the file."""
    path = Path(path)
    data = read_verified(path, sha256)
    try:
        return decode_bytes(data, path.suffix, size, channels=channels, settings=settings)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of uint8 ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (lossless)."""
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG")
    return buf.getvalue()


def render_png(path: str | Path, sha256: str | None = None,
               settings: DecodeSettings | None = None) -> bytes:
    """What the clinician sees: the registered file decoded at native size, as PNG bytes."""
    return encode_png(read_image(path, None, settings=settings, sha256=sha256))
