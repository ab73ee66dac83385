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
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
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
    """Find the file a CSV names, inside ``root`` only: as given, then with each known
    extension, then by name anywhere below the root (HAM10000 ships its JPEGs in two
    sub-folders).

    The CSV is data, not a list of files to open anywhere: an absolute path, a ``..`` that
    leaves the root, and a symbolic link whose target is outside it are refused before the file
    is opened (the same rule as ``project init``'s folder scan, :func:`find_image_files`).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._real_root = self.root.resolve()
        self._index: dict[str, Path | None] | None = None

    def __call__(self, image_id: str) -> Path | None:
        """The file ``image_id`` names, or None when there is none.

        Raises:
            DataError: the id is an absolute path, leaves the root with ``..``, or names a link
                pointing outside it (the message says which; the caller adds the CSV row).
        """
        relative = confined_relative_path(image_id, self.root)
        direct = self.root / relative
        candidates = [direct]
        for ext in IMAGE_EXTENSIONS:
            candidates += [direct.with_name(direct.name + ext),
                           direct.with_name(direct.name + ext.upper())]
        for candidate in candidates:
            try:
                present = candidate.is_symlink() or candidate.is_file()
            except OSError as exc:  # a name too long for the file system, ...
                raise DataError(f"image {shown(image_id)}: {exc.strerror or exc}") from None
            if present:
                return self._inside(candidate, image_id)
        found = self._search(relative.name)
        return None if found is None else self._inside(found, image_id)

    def _inside(self, path: Path, image_id: str) -> Path | None:
        target = path.resolve()
        if not target.is_relative_to(self._real_root):
            raise DataError(f"image {shown(image_id)} is a symbolic link pointing outside the image "
                            f"root {self.root}: refused")
        return path if target.is_file() else None

    def _search(self, name: str) -> Path | None:
        if self._index is None:
            self._index = {}
            files, _ = find_image_files(self.root)  # links leaving the root are left out
            for path in files:
                if path.suffix.lower() not in IMAGE_EXTENSIONS:
                    continue
                for key in (path.name, path.stem):
                    # Two files with the same name in different folders: refuse to guess.
                    self._index[key] = None if key in self._index else path
        return self._index.get(name)


def shown(image_id: str, limit: int = 80) -> str:
    """``image_id`` quoted for a message, cut to ``limit`` characters (an error line stays one
    readable line whatever a CSV cell holds)."""
    return repr(image_id if len(image_id) <= limit else image_id[:limit] + "...")


def confined_relative_path(image_id: str, root: Path) -> PurePosixPath:
    """``image_id`` as a path relative to ``root`` that stays inside it (``a/./b`` and
    ``a/../b`` are normalised; backslashes count as separators, as in a Windows export).

    Raises:
        DataError: an absolute path (``/etc/passwd``, ``C:\\x``, ``\\\\server\\share``) or one
            whose ``..`` leaves ``root``; checked before anything is opened.
    """
    text = image_id.replace("\\", "/")
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise DataError(f"image {shown(image_id)} is an absolute path; paths in a CSV must be "
                        f"relative to the image root {root}")
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise DataError(f"image {shown(image_id)} leaves the image root {root} (..): "
                                "paths in a CSV must stay inside it")
            parts.pop()
        else:
            parts.append(part)
    if not parts:
        raise DataError(f"image {shown(image_id)} names no file")
    return PurePosixPath(*parts)


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


def decode_readable(paths: Sequence[Path], size: int | None, *,
                    settings: DecodeSettings | None = None, desc: str = "decode images",
                    ) -> tuple[list[int], list[np.ndarray], list[SkippedFile]]:
    """Decode every file that can be decoded and collect the others (a folder scan keeps going
    past an unreadable file, as ``project init`` does).

    Returns:
        (positions, arrays, skipped): the positions in ``paths`` that decoded and their arrays
        (``(H, W)`` or ``(H, W, 3)`` uint8), and the files left out with the reason.
    """

    def work(i: int) -> np.ndarray | SkippedFile:
        try:
            return read_image(paths[i], size, settings=settings)
        except DataError as exc:
            return SkippedFile(paths[i], str(exc).removeprefix(f"{paths[i]}: "))

    results = _run(work, len(paths), desc)
    kept = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    return (kept, [r for r in results if isinstance(r, np.ndarray)],
            [r for r in results if isinstance(r, SkippedFile)])


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
