"""The decoded-image store: every image decoded and resized once into chunked files on disk.

A pool of a hospital's size does not fit in memory as one uint8 array (100,000 images at
224x224 RGB are 15 GB), and decoding PNG/JPEG/DICOM again in every run costs minutes. A store
decodes each source file once, in parallel worker processes, into fixed-size chunk files of raw
``(rows, H, W, C)`` uint8 pixels, and every later run reads it lazily
(:class:`~medactive.data.lazy.LazyImages`).

Layout of ``<root>/<key>/``:

* ``chunks/c000000.u8`` ... — raw pixels, row-major, ``rows_per_chunk`` images each (the last
  chunk may be shorter); each is written to a temporary name, fsynced, then renamed, so a chunk
  file is either complete or absent;
* ``progress.jsonl`` — while building: one line per finished chunk with its per-image CRC-32s,
  fsynced, so a build killed with ``kill -9`` resumes with the chunks already done;
* ``crc32.npy`` — ``(N,)`` uint32 CRC-32 of every image, checked on every read, so a corrupt or
  truncated chunk is reported (naming the chunk) instead of training on garbage;
* ``store.json`` — shape, chunking and decode settings; written last, so its presence means the
  store is complete.

The key is a SHA-256 of the source files' content hashes (in order) and the decode settings, so
the same files decoded the same way map to the same store whoever asks (the experiment loader,
the labelling project), and a changed file or setting gets a new store.

Why raw chunk files read with ``os.preadv`` rather than a ``numpy.memmap`` or zarr (measured in
``benchmarks/bench_scale.py``, docs/benchmarks.md): random batches (training, MoCo) read single
12 KiB images; raw files serve them with one system call each and no decompression, while zarr
must decompress a whole chunk per image. Pages read through a memmap stay mapped and count in
the process's resident memory, which then grows with the pool; ``preadv`` into a fresh batch
buffer leaves them in the kernel's page cache, which the kernel reclaims, so a round's peak
memory does not grow with N.

This module builds stores; reading a complete one (:class:`~medactive.data.imagestore.ImageStore`)
and the format both sides share live in :mod:`medactive.data.imagestore`.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from medactive.data.decode import DecodeSettings, decode_bytes
from medactive.data.imagestore import (
    STORE_FORMAT,
    ImageStore,
    StoreSettings,
    chunk_name,
    chunk_ok,
)
from medactive.data.lazy import LazyImages
from medactive.errors import DataError
from medactive.progress import progress_bar

#: Target bytes of one chunk file: large enough that a 200k-image pool is a few dozen files,
#: small enough that a worker holds one in memory and a killed build loses little.
CHUNK_BYTES = 64 * 2**20
# Below this many images worker processes cost more than they save.
_PARALLEL_MIN = 256


# --------------------------------------------------------------------------- decoding adapter
# The decoder's id in the store key is imagestore.DECODER_ID: change it with decode_source's output.
def decode_source(data: bytes, path: Path, settings: StoreSettings) -> np.ndarray:
    """Decode one source file's (hash-checked) bytes to uint8 ``(size, size, channels)``.

    The store's only dependency on the decoder: the one decoder every path uses
    (:func:`medactive.data.decode.decode_bytes`), with the project's DICOM window and frame.
    """
    return decode_bytes(data, path.suffix, settings.size, channels=settings.channels,
                        settings=settings.decode)


def store_key(hashes: Sequence[str], settings: StoreSettings) -> str:
    """24 hex chars of SHA-256 over the decode settings and the content hashes, in order."""
    h = hashlib.sha256(json.dumps(settings.as_dict(), sort_keys=True).encode())
    h.update(f"format={STORE_FORMAT}\n".encode())
    for digest in hashes:
        h.update(digest.encode())
        h.update(b"\n")
    return h.hexdigest()[:24]


def hash_files(paths: Sequence[Path | str], progress: bool = True) -> list[str]:
    """Hex SHA-256 of every file (threaded: hashlib releases the GIL on large buffers)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: Path | str) -> str:
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError as exc:
            raise DataError(f"cannot read image {path} ({exc.strerror or exc})") from None

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 1)) as pool:
        return list(progress_bar(pool.map(one, paths), "hash images", "img",
                                 progress and len(paths) >= 200, len(paths)))


# --------------------------------------------------------------------------- building
def _decode_chunk(task: tuple[int, list[str], list[str], StoreSettings, str]) -> tuple[int, bytes]:
    """Worker: decode one chunk's files, write the chunk atomically, return its CRC-32s."""
    chunk, paths, hashes, settings, folder = task
    out = np.empty((len(paths), settings.size, settings.size, settings.channels), dtype=np.uint8)
    crcs = np.empty(len(paths), dtype=np.uint32)
    for i, (name, expected) in enumerate(zip(paths, hashes, strict=True)):
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read image {path} ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != expected:
            raise DataError(f"{path} changed on disk since it was hashed (content hash differs)")
        try:
            out[i] = decode_source(data, path, settings)
        except Exception as exc:  # any decoder failure means a bad file
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"cannot decode image {path} ({first})") from None
        crcs[i] = zlib.crc32(out[i])
    final = Path(folder) / "chunks" / chunk_name(chunk)
    tmp = final.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(out.tobytes())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(final)
    return chunk, crcs.tobytes()


def _read_progress(path: Path) -> dict[int, bytes]:
    """Chunks a previous (possibly killed) build finished; a torn last line is ignored."""
    done: dict[int, bytes] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            done[int(entry["chunk"])] = bytes.fromhex(entry["crc32"])
        except (ValueError, KeyError, TypeError):
            continue
    return done


def build_store(
    paths: Sequence[Path | str],
    settings: StoreSettings,
    *,
    hashes: Sequence[str] | None = None,
    root: Path | None = None,
    workers: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: bool = True,
) -> ImageStore:
    """Decode ``paths`` into a store (or open the complete one with the same key).

    Args:
        paths: source files (PNG / JPEG / DICOM), in dataset order.
        settings: side length, channels, decoder.
        hashes: hex SHA-256 of each file's bytes (e.g. from a project database); computed when
            None. Every file is re-hashed while decoding and must match.
        root: folder holding stores (default ``cache_dir()/stores``).
        workers: decoding processes (default: the CPU count).
        chunk_bytes: target size of one chunk file.
        progress: show a progress bar.

    Returns:
        The complete :class:`ImageStore`. A build interrupted at any point (even ``kill -9``)
        resumes from its finished chunks when called again; two concurrent builds of the same
        store wait for each other (file lock).

    Raises:
        DataError: a file is missing, unreadable, undecodable or changed since it was hashed.
    """
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no images to store")
    if hashes is None:
        hashes = hash_files(files, progress)
    if len(hashes) != len(files):
        raise DataError(f"{len(hashes)} content hashes for {len(files)} images")
    if root is None:
        from medactive.data.medmnist_registry import cache_dir

        root = cache_dir() / "stores"
    folder = Path(root) / store_key(hashes, settings)
    if (folder / "store.json").is_file():
        return ImageStore.open(folder)
    (folder / "chunks").mkdir(parents=True, exist_ok=True)
    with open(folder / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a concurrent build of the same store finishes first
        if (folder / "store.json").is_file():
            return ImageStore.open(folder)
        _build(folder, files, list(hashes), settings, workers, chunk_bytes, progress)
    store = ImageStore.open(folder)
    store.built_now = True  # every file was just read and checked against its hash
    return store


def _build(folder: Path, paths: list[Path], hashes: list[str], settings: StoreSettings,
           workers: int | None, chunk_bytes: int, progress: bool) -> None:
    n, size, channels = len(paths), settings.size, settings.channels
    row_bytes = size * size * channels
    meta_path = folder / "building.json"
    if meta_path.is_file():  # resuming: keep the chunking the interrupted build chose
        rows_per_chunk = int(json.loads(meta_path.read_text())["rows_per_chunk"])
    else:
        rows_per_chunk = max(1, chunk_bytes // row_bytes)
        _write_json(meta_path, {"rows_per_chunk": rows_per_chunk})
    n_chunks = -(-n // rows_per_chunk)
    log_path = folder / "progress.jsonl"
    done = {c: crc for c, crc in _read_progress(log_path).items()
            if c < n_chunks and chunk_ok(folder, c, rows_per_chunk, n, row_bytes)}
    tasks = []
    for c in range(n_chunks):
        if c in done:
            continue
        lo, hi = c * rows_per_chunk, min(n, (c + 1) * rows_per_chunk)
        tasks.append((c, [str(p) for p in paths[lo:hi]], hashes[lo:hi], settings, str(folder)))
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    bar = progress_bar(range(n), f"decode {n} images", "img", progress, n)
    if hasattr(bar, "update"):
        bar.update(sum(len(_crc_array(v)) for v in done.values()))
    with open(log_path, "a") as log:

        def record(chunk: int, crc: bytes) -> None:
            log.write(json.dumps({"chunk": chunk, "crc32": crc.hex()}) + "\n")
            log.flush()
            os.fsync(log.fileno())
            done[chunk] = crc
            if hasattr(bar, "update"):
                bar.update(len(crc) // 4)

        if n_workers == 1 or n < _PARALLEL_MIN:
            for task in tasks:
                record(*_decode_chunk(task))
        else:
            # spawn: workers start clean (no copy of a parent holding torch threads or a GUI)
            with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
                futures = [pool.submit(_decode_chunk, t) for t in tasks]
                try:
                    for fut in as_completed(futures):
                        record(*fut.result())
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
    if hasattr(bar, "close"):
        bar.close()
    crc = np.concatenate([_crc_array(done[c]) for c in range(n_chunks)])
    tmp = folder / "crc32.tmp.npy"
    np.save(tmp, crc)
    tmp.replace(folder / "crc32.npy")
    _write_json(folder / "store.json", {
        "format": STORE_FORMAT, "n": n, "size": size, "channels": channels,
        "rows_per_chunk": rows_per_chunk, "settings": settings.as_dict(),
    })
    log_path.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)


def _crc_array(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.uint32)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def store_images(paths: Sequence[Path | str], size: int, channels: int | None = None,
                 decode: DecodeSettings | None = None, progress: bool = True) -> LazyImages:
    """The lazy ``(N, size, size, channels)`` images of ``paths`` through the store (built or
    reused). ``channels=None``: 3 if any of the first 64 files is colour, else 1 (a lazy pool
    cannot look at every image before it is built)."""
    decode = decode or DecodeSettings()
    if channels is None:
        from medactive.data.decode import read_image

        sample = [read_image(p, size, settings=decode) for p in list(paths)[:64]]
        channels = 3 if any(a.ndim == 3 for a in sample) else 1
    return build_store(paths, StoreSettings(size, channels, decode), progress=progress).images
