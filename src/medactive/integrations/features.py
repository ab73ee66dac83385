"""Features of a datastore's images for the MONAI Label strategy: read once, cached on disk.

**Images.** A 2-D file medactive reads itself (PNG, JPEG, TIFF, a DICOM file:
:func:`medactive.data.decode.read_image`, middle frame of a multi-frame DICOM) is one view. A
volume (NIfTI, NRRD, MHA, a DICOM series folder: whatever MONAI's ``LoadImage`` reads, which is
installed wherever MONAI Label is) gives :data:`N_SLICES` slices evenly spaced along its last
axis, each mapped to 8 bits by the volume's own 0.5-99.5 percentile window (no CT window is
assumed: the same rule serves CT, MR and any modality); the image's features are the mean over
its slices.

**Encoder.** :func:`default_encoder`: the encoder registry's ``imagenet`` (EfficientNet-Lite0,
:mod:`medactive.models.encoders`; ``[pretrained]`` extra; weights bundled, never downloaded) at
its 224-px input. It is the one place to switch to another encoder.

**Cache.** One ``.npy`` per image under ``cache_dir``, named by the encoder, the slicing, the
file's real path, size and modification time: an edited or replaced file is encoded again, an
unchanged one never.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from medactive.data.decode import IMAGE_SUFFIXES, read_image
from medactive.data.pixels import resize
from medactive.errors import DataError

N_SLICES = 5
INPUT_SIZE = 224  # EfficientNet-Lite0's ImageNet resolution
WINDOW = (0.5, 99.5)  # percentiles mapped to 0 and 255
Encoder = Callable[[np.ndarray], np.ndarray]
#: Cache name of :func:`default_encoder`'s features.
DEFAULT_ENCODER = "efficientnet-lite0-imagenet"


def default_encoder() -> Encoder:
    """``encode``: uint8 ``(N, H, W, 3)`` images to float32 ``(N, D)`` features
    (EfficientNet-Lite0, ImageNet weights, ``D = 1280``; named :data:`DEFAULT_ENCODER`)."""
    from medactive.models.encoders import IMAGENET, check_encoder, resolve_encoder
    from medactive.models.training import extract_features

    backbone = resolve_encoder(check_encoder(IMAGENET)).build(3)

    def encode(images: np.ndarray) -> np.ndarray:
        return extract_features(backbone, images, batch_size=32, progress=False)

    return encode


def window_uint8(array: np.ndarray) -> np.ndarray:
    """``array`` mapped to uint8 by its own :data:`WINDOW` percentiles (a constant array
    gives zeros)."""
    values = np.asarray(array, np.float64)
    lo, hi = np.percentile(values, WINDOW)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return np.zeros(values.shape, np.uint8)
    return np.round(np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def volume_slices(volume: np.ndarray, n_slices: int = N_SLICES) -> list[np.ndarray]:
    """2-D uint8 views of a 2-D or 3-D array (a leading or trailing singleton channel is
    dropped): the image itself, or ``n_slices`` slices evenly spaced along the last axis,
    windowed together.

    Raises:
        DataError: not 2-D or 3-D once singleton axes are dropped.
    """
    array = np.squeeze(np.asarray(volume))
    if array.ndim == 2:
        return [window_uint8(array)]
    if array.ndim != 3:
        raise DataError(f"expected a 2-D image or a 3-D volume, got shape {volume.shape}")
    depth = array.shape[-1]
    picks = sorted({min(depth - 1, int(depth * (k + 1) / (n_slices + 1)))
                    for k in range(n_slices)})
    windowed = window_uint8(array[..., picks])
    return [windowed[..., k] for k in range(len(picks))]


def load_views(path: str | Path, n_slices: int = N_SLICES, size: int = INPUT_SIZE
               ) -> np.ndarray:
    """The views of one image as uint8 ``(V, size, size, 3)`` (module docstring).

    Raises:
        DataError: unreadable, or a volume format without MONAI installed.
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        return read_image(path, size, channels=3)[None]
    try:
        from monai.transforms import LoadImage
    except ImportError:
        raise DataError(f"{path}: reading volumes needs MONAI (installed with MONAI "
                        "Label)") from None
    try:
        volume = LoadImage(image_only=True)(str(path))
    except Exception as exc:  # MONAI raises many types for unreadable files
        raise DataError(f"{path}: cannot read it ({exc})") from None
    views = volume_slices(np.asarray(volume), n_slices)
    return np.stack([np.repeat(resize(v, size)[..., None], 3, axis=-1) for v in views])


class FeatureCache:
    """Features of image files, computed once per file version.

    Args:
        folder: where the ``.npy`` files go (created if missing).
        encoder: ``(name, encode)``; None: :func:`default_encoder` (built at the first file
            not cached), named :data:`DEFAULT_ENCODER`.
        n_slices: slices per volume.
    """

    def __init__(self, folder: str | Path, encoder: tuple[str, Encoder] | None = None,
                 n_slices: int = N_SLICES) -> None:
        self.folder = Path(folder)
        self.name = encoder[0] if encoder is not None else DEFAULT_ENCODER
        self._encode = encoder[1] if encoder is not None else None
        self.n_slices = n_slices

    def encode(self, images: np.ndarray) -> np.ndarray:
        """The encoder's features of uint8 ``(N, H, W, 3)`` images (built on first use)."""
        if self._encode is None:
            self._encode = default_encoder()
        return self._encode(images)

    def key(self, path: str | Path) -> str:
        """The cache file name of ``path``'s current version."""
        real = os.path.realpath(path)
        stat = os.stat(real)  # a folder (DICOM series) keys on the folder's own stat
        text = f"{self.name}|{self.n_slices}|{INPUT_SIZE}|{real}|{stat.st_size}|" \
               f"{stat.st_mtime_ns}"
        return hashlib.sha256(text.encode()).hexdigest()[:32] + ".npy"

    def features(self, paths: Sequence[str | Path]) -> np.ndarray:
        """float32 ``(len(paths), D)`` features, encoding only files not cached yet.

        Raises:
            DataError: a file is missing or unreadable (its path is named).
        """
        rows = []
        for path in paths:
            if not os.path.exists(path):
                raise DataError(f"{path}: image file not found")
            target = self.folder / self.key(path)
            if target.is_file():
                rows.append(np.load(target))
                continue
            views = load_views(path, self.n_slices)
            row = np.asarray(self.encode(views), np.float32).mean(axis=0)
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".part")  # a killed run leaves no truncated entry
            with open(tmp, "wb") as f:
                np.save(f, row)
            tmp.replace(target)
            rows.append(row)
        return np.stack(rows).astype(np.float32)
