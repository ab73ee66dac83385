"""Pixel policies shared by every decoder: scaling to 8 bits, frame choice, size and channels.

Kept apart from the file formats (:mod:`medactive.data.decode`, :mod:`medactive.data.dicom`) so
that PNG, TIFF and DICOM follow the same rules:

* **wide grey values** (16-bit or float PNG/TIFF, DICOM without a window) are scaled min–max per
  image: the container's bit depth says nothing about the range used (a 12-bit X-ray saved as a
  16-bit PNG uses 0..4095 of 0..65535), while the image's own extremes do;
* **multi-frame files** (DICOM series, multi-page TIFF) give their middle frame (index
  ``n // 2``, the frame most likely to show the organ rather than the edge of the scanned
  volume) unless a frame index is asked for; a single-frame file is always its one frame;
* **size**: bicubic resize to a square (non-square images are stretched, as MedMNIST does);
* **channels**: grey is replicated to RGB; RGB becomes grey by ITU-R 601 luma.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from medactive.errors import DataError

# ITU-R BT.601 luma weights (what Pillow's convert("L") uses).
LUMA = np.array([0.299, 0.587, 0.114])


def to_uint8_minmax(values: np.ndarray) -> np.ndarray:
    """Scale any numeric array linearly so its min maps to 0 and its max to 255.

    A constant image becomes 0. NaN values (possible in float images) become 0 too.

    Args:
        values: any shape, any numeric dtype.

    Returns:
        uint8 array of the same shape.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return np.zeros(values.shape, dtype=np.uint8)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    return scale_to_uint8(np.where(finite, values, lo), lo, hi)


def scale_to_uint8(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map ``[lo, hi]`` linearly onto ``[0, 255]`` (clipped, rounded); ``hi <= lo`` gives 0.

    Args:
        values: any shape, any numeric dtype.
        lo, hi: the value shown black and the value shown white.

    Returns:
        uint8 array of the same shape.
    """
    values = np.asarray(values, dtype=np.float64)
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - lo) * (255.0 / (hi - lo))
    return np.round(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def pick_frame(n_frames: int, frame: int | None) -> int:
    """The frame of a file with ``n_frames`` frames to use (see the module's policy).

    Args:
        n_frames: frames in the file (1 for an ordinary image).
        frame: the index asked for, or None for the middle frame.

    Raises:
        DataError: ``frame`` is past the last frame of a multi-frame file.
    """
    if n_frames <= 1:
        return 0
    if frame is None:
        return n_frames // 2
    if not 0 <= frame < n_frames:
        raise DataError(f"frame {frame} asked for, but the file has {n_frames} frames "
                        f"(valid: 0..{n_frames - 1})")
    return frame


def resize(array: np.ndarray, size: int) -> np.ndarray:
    """Resize uint8 ``(H, W)`` / ``(H, W, 3)`` to ``(size, size)`` / ``(size, size, 3)``.

    Bicubic; Pillow widens the filter support when shrinking, so downscaling is anti-aliased.
    Non-square images are stretched.
    """
    if array.shape[:2] == (size, size):
        return array
    image = Image.fromarray(np.ascontiguousarray(array))
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))


def to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """Convert uint8 ``(H, W)`` or ``(H, W, 3)`` to ``(H, W, channels)``, channels in {1, 3}.

    Grey is replicated to three channels; colour becomes grey by ITU-R 601 luma (rounded).
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if array.ndim == 2:
        grey = array[..., None]
        return np.repeat(grey, 3, axis=2) if channels == 3 else grey
    if channels == 3:
        return array
    return np.clip(np.round(array @ LUMA), 0, 255).astype(np.uint8)[..., None]
