"""Reading ``.npz`` files without letting a file decide how much memory is allocated.

``numpy.load`` trusts a member's ``.npy`` header: it allocates the declared shape first and
reads the data afterwards. A 4 KB file whose header claims 279 GiB, or a 28 MB deflate bomb
that expands to 6 GiB, then ends in a ``MemoryError`` traceback or takes the machine's memory.
:func:`read_npz` checks every member it is asked for before anything is allocated:

* the member's ``.npy`` header (read with :mod:`numpy.lib.format`, at most a few KB) declares a
  shape and dtype; object arrays (pickles) are refused;
* the declared size must match the size the zip directory records for the member (a header
  that lies about its shape is "truncated or corrupt"), and the zip's own record must be
  believable: a stored member is as large as its data; a compressed one expands at most
  :func:`max_npz_ratio` times (default 100; real image arrays compress 1-10x, MedMNIST's by
  1.1x);
* the declared sizes of all members read, together, must stay under :func:`max_array_bytes`
  (default: this machine's physical memory; ``$MEDACTIVE_MAX_ARRAY_BYTES`` or the
  ``max_bytes`` argument overrides it, e.g. ``64G``).

Only then is each member read, into an array of exactly its declared size; a decompression
error (bad CRC, truncated stream) or an allocation the system cannot satisfy after all is one
:class:`~medactive.errors.DataError`.
"""

from __future__ import annotations

import math
import os
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from medactive.errors import DataError

MAX_BYTES_ENV = "MEDACTIVE_MAX_ARRAY_BYTES"
MAX_RATIO_ENV = "MEDACTIVE_MAX_NPZ_RATIO"
#: Default largest expansion of a compressed member: deflate cannot exceed ~1032x, real image
#: arrays compress 1-10x (MedMNIST's 1.1x); 100x leaves a wide margin for dark, flat scans.
DEFAULT_MAX_RATIO = 100.0
#: Members smaller than this are never refused for their ratio (a 1 MB array of zeros is
#: harmless, and label arrays of few classes compress well).
RATIO_FLOOR_BYTES = 16 << 20
#: Where the machine's memory cannot be read.
FALLBACK_MAX_BYTES = 16 << 30
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class MemberHeader:
    """What a member's ``.npy`` header declares, checked against the zip directory."""

    key: str
    shape: tuple[int, ...]
    dtype: np.dtype
    nbytes: int


def parse_bytes(text: str, what: str = MAX_BYTES_ENV) -> int:
    """``"4G"``, ``"512M"``, ``"1.5T"`` or a plain number of bytes, as an int.

    Raises:
        DataError: not a positive size.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if match is None or float(match.group(1)) <= 0:
        raise DataError(f"{what}={text!r} is not a size; use e.g. 4G, 512M or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def physical_memory() -> int | None:
    """This machine's physical memory in bytes, or None where it cannot be read."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    return int(pages) * int(size) if pages > 0 and size > 0 else None


def max_array_bytes() -> int:
    """Largest total an ``.npz`` may declare: ``$MEDACTIVE_MAX_ARRAY_BYTES``, else the physical
    memory (more could never be loaded at once), else 16 GiB."""
    env = os.environ.get(MAX_BYTES_ENV)
    if env:
        return parse_bytes(env)
    return physical_memory() or FALLBACK_MAX_BYTES


def max_npz_ratio() -> float:
    """Largest believable expansion of a compressed member (``$MEDACTIVE_MAX_NPZ_RATIO``, else
    100)."""
    env = os.environ.get(MAX_RATIO_ENV)
    if not env:
        return DEFAULT_MAX_RATIO
    try:
        value = float(env)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1:
        raise DataError(f"{MAX_RATIO_ENV}={env!r} must be a number >= 1")
    return value


def _size(n: int) -> str:
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _read_header(stream, path: Path, key: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, header_bytes)`` of the ``.npy`` stream (its position: the data)."""
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy_format.read_array_header_1_0(stream)
        elif version in ((2, 0), (3, 0)):  # 3.0 differs only in the header's text encoding
            shape, _, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: {key} has no readable .npy header ({exc})") from None
    return tuple(int(n) for n in shape), np.dtype(dtype), int(stream.tell())


def _check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, key: str,
                  ratio: float) -> MemberHeader:
    stored, packed = info.file_size, info.compress_size
    if info.compress_type == zipfile.ZIP_STORED and stored != packed:
        raise DataError(f"{path}: {key}: the zip directory records {_size(stored)} for "
                        f"{_size(packed)} of stored data (corrupt file)")
    if stored > RATIO_FLOOR_BYTES and stored > ratio * max(packed, 1):
        raise DataError(
            f"{path}: {key} would expand {_size(packed)} into {_size(stored)} "
            f"({stored / max(packed, 1):.0f}x; image data compresses at most ~10x): refused as "
            f"a decompression bomb (set {MAX_RATIO_ENV} above {ratio:g} if the file is genuine)")
    with zf.open(info) as stream:
        shape, dtype, offset = _read_header(stream, path, key)
    if dtype.hasobject:
        raise DataError(f"{path}: {key} holds Python objects; expected a plain numeric array")
    nbytes = math.prod(shape) * dtype.itemsize
    if offset + nbytes != stored:
        raise DataError(
            f"{path}: {key}: its header declares shape {shape} {dtype} ({_size(nbytes)}) but "
            f"the file holds {_size(max(stored - offset, 0))} of data (truncated or corrupt)")
    return MemberHeader(key, shape, dtype, nbytes)


def npz_members(path: Path) -> list[str]:
    """The array names in an ``.npz`` (member names without ``.npy``).

    Raises:
        DataError: not a readable zip file.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return [n.removesuffix(".npy") for n in zf.namelist()]
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None


def read_npz(path: str | Path, keys: Sequence[str], *,
             max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read ``keys`` of an ``.npz``, every header checked before anything is allocated.

    Args:
        path: the ``.npz`` file.
        keys: array names to read (each must be a member; see :func:`npz_members`).
        max_bytes: largest total of the declared array sizes (default
            :func:`max_array_bytes`).

    Returns:
        ``{key: array}`` with the shapes and dtypes the headers declare.

    Raises:
        DataError: not a zip file; a missing member; an object (pickled) array; a header that
            disagrees with the zip directory; an expansion beyond :func:`max_npz_ratio`; a total
            beyond ``max_bytes``; corrupt compressed data; or not enough memory after all.
    """
    path = Path(path)
    limit = max_array_bytes() if max_bytes is None else int(max_bytes)
    ratio = max_npz_ratio()
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    with zf:
        infos = {i.filename.removesuffix(".npy"): i for i in zf.infolist()}
        missing = [k for k in keys if k not in infos]
        if missing:
            raise DataError(f"{path}: no array named {', '.join(missing)}")
        headers = [_check_member(zf, infos[k], path, k, ratio) for k in keys]
        total = sum(h.nbytes for h in headers)
        if total > limit:
            biggest = max(headers, key=lambda h: h.nbytes)
            raise DataError(
                f"{path}: its arrays declare {_size(total)} (largest: {biggest.key} "
                f"{biggest.shape} {biggest.dtype}), more than the {_size(limit)} allowed; set "
                f"{MAX_BYTES_ENV} (e.g. 64G) if this machine can hold it")
        out = {}
        for header in headers:
            try:
                with zf.open(infos[header.key]) as stream:
                    out[header.key] = npy_format.read_array(stream, allow_pickle=False)
            except MemoryError:
                raise DataError(f"{path}: not enough memory to load {header.key} "
                                f"({_size(header.nbytes)})") from None
            except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
                raise DataError(f"{path}: {header.key}: truncated or corrupt array data "
                                f"({exc})") from None
    return out
