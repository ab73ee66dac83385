"""Finding image files in a folder and decoding many of them in parallel.

* :func:`find_image_files` lists a folder's images and refuses links that leave it;
* :class:`ImageResolver` maps a CSV id (``ISIC_0024306``) to its file;
* :func:`decode_files` (arrays, stop at the first bad file), :func:`scan_images` (hash and check
  every file, collect the bad ones) and :func:`load_images` (one stacked array, hashes verified)
  all run :func:`medactive.data.decode.read_image` in a thread pool with a progress bar.
  Threads suffice: Pillow, zlib and the JPEG/JPEG 2000 codecs release the GIL while decoding.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from medactive.data.decode import (
    IMAGE_SUFFIXES,
    DecodeSettings,
    decode_bytes,
    read_image,
    read_verified,
)
from medactive.errors import DataError
from medactive.progress import progress_bar

T = TypeVar("T")
# Tried in turn when a CSV gives a bare id such as ISIC_0024306.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")
# Below this many files a pool and a progress bar cost more than they save.
PARALLEL_MIN = 64
PROGRESS_MIN = 200


@dataclass(frozen=True)
class SkippedFile:
    """A file left out of a folder scan, with the reason (one line, no file contents)."""

    path: Path
    reason: str


@dataclass(frozen=True)
class ScannedImage:
    """A file that decoded: its content hash and whether it is in colour."""

    path: Path
    sha256: str
    colour: bool


class ImageDecodeError(DataError):
    """A file of a batch failed; ``index`` is its position in the batch."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def _has_dicom_magic(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def find_image_files(folder: str | Path) -> tuple[list[Path], list[SkippedFile]]:
    """Every image file below ``folder`` (recursively, sorted), and the links refused.

    Images are files with a PNG/JPEG/TIFF/DICOM suffix, or without a suffix but with the DICOM
    ``DICM`` magic (many DICOM exports have bare names). Symbolic links are never followed out
    of the folder: a linked file must resolve inside it, and linked folders are not entered.

    Returns:
        (files, skipped): paths as found under the resolved folder, and the refused links.

    Raises:
        DataError: ``folder`` is not a folder.
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"image folder not found: {folder}")
    files: list[Path] = []
    skipped: list[SkippedFile] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames.sort()
        for name in list(dirnames):
            if (here / name).is_symlink():
                skipped.append(SkippedFile(here / name, "symbolic link to a folder: not followed"))
                dirnames.remove(name)
        for name in sorted(filenames):
            path = here / name
            suffix = path.suffix.lower()
            if suffix not in IMAGE_SUFFIXES and not (suffix == "" and _has_dicom_magic(path)):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    skipped.append(SkippedFile(path, "symbolic link pointing outside the "
                                                     "image folder: not followed"))
                    continue
                if not target.is_file():
                    skipped.append(SkippedFile(path, "broken symbolic link"))
                    continue
            elif not path.is_file():
                continue  # a socket or device named *.png
            files.append(path)
    return files, skipped


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


def _run(work: Callable[[int], T], n: int, desc: str) -> list[T]:
    """``[work(0), ..., work(n-1)]`` in a thread pool (order kept) with a progress bar.

    ``work`` raising stops the batch: queued items are cancelled and the error propagates.
    """
    bar_on = n >= PROGRESS_MIN
    if n < PARALLEL_MIN:
        return [work(i) for i in progress_bar(range(n), desc, "img", bar_on)]
    workers = min(8, (os.cpu_count() or 1) + 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            return list(progress_bar(pool.map(work, range(n)), desc, "img", bar_on, n))
        except BaseException:
            # report the first bad file now instead of decoding thousands more first
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def decode_files(paths: Sequence[Path], size: int | None, *, channels: int | None = None,
                 settings: DecodeSettings | None = None,
                 desc: str = "decode images") -> list[np.ndarray]:
    """Decode every file (see :func:`~medactive.data.decode.decode_bytes`), in order.

    Raises:
        ImageDecodeError: for the first file that cannot be read or decoded (``index`` says
            which); nothing is returned then.
    """

    def work(i: int) -> np.ndarray:
        try:
            return read_image(paths[i], size, channels=channels, settings=settings)
        except DataError as exc:
            raise ImageDecodeError(str(exc), i) from None

    return _run(work, len(paths), desc)


def scan_images(paths: Sequence[Path], size: int | None, *,
                settings: DecodeSettings | None = None,
                desc: str = "check images") -> tuple[list[ScannedImage], list[SkippedFile]]:
    """Read, hash and decode every file; keep no pixels (any folder size fits in memory).

    Returns:
        (good, bad): decodable files with their SHA-256 (hashed from the same read that was
        decoded) in input order, and the others with the reason.
    """

    def work(i: int) -> ScannedImage | SkippedFile:
        path = paths[i]
        try:
            data = read_verified(path)
            array = decode_bytes(data, path.suffix, size, settings=settings)
        except DataError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            return SkippedFile(path, reason)
        return ScannedImage(path, hashlib.sha256(data).hexdigest(), array.ndim == 3)

    results = _run(work, len(paths), desc)
    good = [r for r in results if isinstance(r, ScannedImage)]
    bad = [r for r in results if isinstance(r, SkippedFile)]
    return good, bad


def load_images(paths: Sequence[str | Path], size: int, channels: int, *,
                hashes: Sequence[str] | None = None, settings: DecodeSettings | None = None,
                desc: str = "load images") -> np.ndarray:
    """Decode files into one uint8 ``(N, size, size, channels)`` array.

    With ``hashes``, every file must still have its registered SHA-256 (checked on the same
    read that is decoded).

    Raises:
        DataError: naming the first file that is missing, changed or undecodable.
    """
    out = np.empty((len(paths), size, size, channels), dtype=np.uint8)

    def work(i: int) -> None:
        out[i] = read_image(paths[i], size, channels=channels, settings=settings,
                            sha256=None if hashes is None else hashes[i])

    _run(work, len(paths), desc)
    return out
