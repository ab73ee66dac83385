"""Reading a decoded-image store: :class:`ImageStore`, and the on-disk format it reads.

Kept apart from :mod:`medactive.data.store` (which decodes source files into a store, resumably
and in parallel) because reading needs none of that: a complete store is opened by folder and
read lazily, batch by batch, in any process. The format both sides share lives here — the
format number, the chunk file names and sizes, :class:`StoreSettings` (kept in ``store.json``)
— so the builder depends on the reader, never the other way round.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medactive.data.decode import DecodeSettings
from medactive.data.lazy import LazyImages
from medactive.errors import DataError
from medactive.progress import progress_bar

STORE_FORMAT = 1
#: Chunk-file descriptors kept open per store (a million 224 px images are ~2,300 chunks).
_MAX_OPEN_FILES = 128
#: Identifies the decoder in the store key: change it whenever decoding changes its output.
DECODER_ID = "medactive.data.decode.decode_bytes/1"


@dataclass(frozen=True)
class StoreSettings:
    """How every source file becomes stored pixels: side length, channels, the decoder's
    DICOM settings (window, frame) and the decoder's id — all part of the store key."""

    size: int
    channels: int
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    decoder: str = DECODER_ID

    def as_dict(self) -> dict:
        """JSON-ready form (the store key hashes it; ``store.json`` keeps it)."""
        return {"size": self.size, "channels": self.channels, "decode": self.decode.to_meta(),
                "decoder": self.decoder}

    @classmethod
    def from_dict(cls, data: dict) -> StoreSettings:
        """Inverse of :meth:`as_dict`."""
        return cls(int(data["size"]), int(data["channels"]),
                   DecodeSettings.from_meta(data.get("decode")), str(data["decoder"]))

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise DataError(f"image size must be a positive number of pixels, got {self.size!r}")
        if self.channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {self.channels!r}")


def chunk_name(chunk: int) -> str:
    """File name of chunk number ``chunk`` under ``chunks/``."""
    return f"c{chunk:06d}.u8"


def chunk_ok(folder: Path, chunk: int, rows_per_chunk: int, n: int, row_bytes: int) -> bool:
    """Whether chunk ``chunk`` of an ``n``-image store is on disk with its full size."""
    path = folder / "chunks" / chunk_name(chunk)
    rows = min(rows_per_chunk, n - chunk * rows_per_chunk)
    return path.is_file() and path.stat().st_size == rows * row_bytes


class ImageStore:
    """A complete decoded-image store, read lazily (implements the ``RowSource`` protocol).

    Use :func:`build_store` to make or find one, :meth:`open` to open one by folder, and
    :attr:`images` for the lazy ``(N, H, W, C)`` array.
    """

    def __init__(self, folder: Path, meta: dict, crc: np.ndarray) -> None:
        self.folder = Path(folder)
        self.n = int(meta["n"])
        self.size = int(meta["size"])
        self.channels = int(meta["channels"])
        self.rows_per_chunk = int(meta["rows_per_chunk"])
        self.settings = StoreSettings.from_dict(meta["settings"])
        self._crc = crc
        self._row_bytes = self.size * self.size * self.channels
        self._fds: dict[int, int] = {}
        #: True when :func:`build_store` decoded (part of) it in this call
        self.built_now = False

    @classmethod
    def open(cls, folder: Path | str) -> ImageStore:
        """Open the complete store in ``folder``.

        Raises:
            DataError: no complete store there, or a chunk file is missing or has the wrong
                size (a truncated or replaced chunk).
        """
        folder = Path(folder)
        meta_path = folder / "store.json"
        if not meta_path.is_file():
            raise DataError(f"{folder}: not a complete image store (no store.json); build it "
                            "again and it resumes where it stopped")
        try:
            meta = json.loads(meta_path.read_text())
            crc = np.load(folder / "crc32.npy")
        except (OSError, ValueError) as exc:
            raise DataError(f"{folder}: unreadable image store ({exc}); delete the folder to "
                            "rebuild it") from None
        if int(meta.get("format", 0)) != STORE_FORMAT or crc.shape != (int(meta["n"]),):
            raise DataError(f"{folder}: image store of another format; delete it to rebuild")
        store = cls(folder, meta, crc)
        for c in range(-(-store.n // store.rows_per_chunk)):
            if not chunk_ok(folder, c, store.rows_per_chunk, store.n, store._row_bytes):
                raise DataError(
                    f"{folder / 'chunks' / chunk_name(c)}: image store chunk is missing or "
                    "truncated; delete the store folder to rebuild it")
        return store

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(N, H, W, C)``."""
        return (self.n, self.size, self.size, self.channels)

    @property
    def key(self) -> str:
        """The store key (its folder name): content hashes + decode settings."""
        return self.folder.name

    @property
    def images(self) -> LazyImages:
        """All images as a lazy uint8 ``(N, H, W, C)`` array."""
        return LazyImages(self)

    def __repr__(self) -> str:
        return f"ImageStore({str(self.folder)!r}, shape={self.shape})"

    def __getstate__(self) -> dict:
        # File descriptors do not travel to other processes (Ray workers, DataLoader workers).
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Close the chunk files (reading again reopens them)."""
        for fd in getattr(self, "_fds", {}).values():
            os.close(fd)
        self._fds = {}

    def _fd(self, chunk: int) -> int:
        fd = self._fds.get(chunk)
        if fd is None:
            if len(self._fds) >= _MAX_OPEN_FILES:
                self.close()
            path = self.folder / "chunks" / chunk_name(chunk)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as exc:
                raise DataError(f"{path}: cannot open image store chunk ({exc.strerror})") from None
            self._fds[chunk] = fd
        return fd

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """uint8 ``(len(rows), H, W, C)`` images at ``rows`` (any order, repeats allowed);
        runs of consecutive rows are read with one system call; every image's CRC-32 is checked.

        Raises:
            DataError: a row fails its checksum (names the chunk) or a chunk is short.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.size, self.size, self.channels), dtype=np.uint8)
        if rows.size == 0:
            return out
        order = np.argsort(rows, kind="stable")
        srt = rows[order]
        buf = out if np.array_equal(order, np.arange(rows.size)) else np.empty_like(out)
        flat = buf.reshape(rows.size, -1)
        chunk = srt // self.rows_per_chunk
        # a run = consecutive source rows in one chunk; one preadv per run
        breaks = np.flatnonzero((np.diff(srt) != 1) | (np.diff(chunk) != 0)) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [rows.size]])
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            c = int(chunk[s])
            offset = (int(srt[s]) - c * self.rows_per_chunk) * self._row_bytes
            target = memoryview(flat[s:e]).cast("B")  # type: ignore[arg-type]
            got = os.preadv(self._fd(c), [target], offset)
            if got != target.nbytes:
                raise DataError(f"{self.folder / 'chunks' / chunk_name(c)}: image store chunk "
                                "is truncated; delete the store folder to rebuild it")
        for i in range(rows.size):
            if zlib.crc32(flat[i]) != self._crc[srt[i]]:
                c = int(srt[i]) // self.rows_per_chunk
                raise DataError(
                    f"{self.folder / 'chunks' / chunk_name(c)}: image store chunk is corrupt "
                    f"(image {int(srt[i])} fails its checksum); delete the store folder to "
                    "rebuild it")
        if buf is not out:
            out[order] = buf
        return out

    def verify(self, progress: bool = True) -> None:
        """Read every image once and check its checksum (raises :class:`DataError`)."""
        step = self.rows_per_chunk
        for start in progress_bar(range(0, self.n, step), "verify store", "chunk", progress):
            self.read_rows(np.arange(start, min(self.n, start + step)))
