"""Resumable, memory-mapped on-disk matrices: one float32 ``(N, D)`` array per cache entry.

What it is for: features of a large pool, computed once (minutes to hours) and read by every
later round, back-test and experiment. The writer fills an entry in blocks of rows; a run that is
killed part-way resumes at the first row not yet on disk; a finished entry is never written
again. Readers get a read-only ``numpy.memmap``, so a 200,000 x 1,280 matrix costs page cache,
not process memory.

Layout of an entry ``<root>/<key>/``:

* ``rows.npy.part`` — the ``.npy`` file being filled, sized to ``(N, D)`` when the first block
  arrives (a sparse file until written);
* ``progress.json`` — ``{"rows": k, "shape": [N, D], "meta": {...}}``: rows ``0..k-1`` are on
  disk. Updated (atomically, by rename) only after those rows were written and flushed;
* ``rows.npy`` — the finished matrix (renamed from ``.part`` after the last row);
* ``meta.json`` — written last: its presence means the entry is complete.

Concurrency: one writer per entry, through an exclusive ``flock`` on ``<root>/<key>.lock``
(released by the kernel when a process dies, so a killed run never leaves an entry locked); a
second process asking for the same entry waits and then reads the finished one. Rows are written
with ``os.pwrite``, not through a writable memory map, so the writer's resident memory does not
grow with N (dirty pages of a writable map count as the writer's RSS until flushed).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medactive.progress import progress_counter

log = logging.getLogger(__name__)

DATA_FILE = "rows.npy"
PART_FILE = "rows.npy.part"
PROGRESS_FILE = "progress.json"
META_FILE = "meta.json"
#: Seconds between progress records (fsync of the rows, then ``progress.json``): a killed run
#: or a power cut redoes at most this much work, and a record never claims rows not on disk.
SYNC_SECONDS = 5.0


@contextlib.contextmanager
def entry_lock(folder: Path, *, enabled: bool = True,
               waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``<folder>.lock`` (POSIX ``flock``).

    Args:
        folder: the cache entry (need not exist yet).
        enabled: False skips locking (e.g. data-parallel ranks that never write).
        waiting: printed on stderr when another process holds the lock and this one waits.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process lock available
        enabled = False
    if not enabled:
        yield
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_json_atomically(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    tmp.replace(path)


def read_complete(folder: Path, n_rows: int) -> tuple[np.ndarray, dict] | None:
    """The finished matrix of ``folder`` (read-only memmap ``(n_rows, D)`` float32) and its
    ``meta.json``, or None when the entry is absent, unfinished, or does not hold ``n_rows``
    float32 rows (a corrupt or foreign entry is logged and treated as absent)."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        rows = np.load(folder / DATA_FILE, mmap_mode="r")
    except (OSError, ValueError, EOFError) as exc:
        log.warning("feature cache %s is unreadable (%s); rebuilding it", folder,
                    type(exc).__name__)
        return None
    if rows.ndim != 2 or rows.shape[0] != n_rows or rows.dtype != np.float32:
        log.warning("feature cache %s holds %s %s, not %d float32 rows; rebuilding it", folder,
                    rows.shape, rows.dtype, n_rows)
        return None
    return rows, meta


def cached_rows(
    folder: Path,
    n_rows: int,
    meta: dict[str, Any],
    produce: Callable[[int], Iterable[np.ndarray]],
    *,
    desc: str = "rows",
    progress: bool = True,
    on_complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> tuple[np.ndarray, dict[str, Any], bool]:
    """The ``(n_rows, D)`` float32 matrix of the entry ``folder``, computed when missing.

    Args:
        folder: the entry (``<root>/<key>``; the key must identify everything the rows depend
            on: an entry is trusted once complete).
        n_rows: ``N``.
        meta: JSON-able description stored with the entry; a half-written entry is resumed
            only when its ``meta`` is equal (else it is started again).
        produce: ``produce(start)`` yields float32 ``(k, D)`` blocks of rows ``start, start+1,
            ...`` in order, up to ``N`` in all; it is called once per run (with the first row
            missing from disk).
        desc: label of the progress bar (rows, with an ETA for the whole matrix).
        progress: show the bar.
        on_complete: ``on_complete(meta)`` returns extra fields written into ``meta.json``
            when the last row is on disk (e.g. the time the encoding took).

    Returns:
        ``(rows, meta of the entry, from_cache)``: ``rows`` a read-only memmap; ``from_cache``
        is True when nothing was computed by this call.

    Raises:
        ValueError: ``produce`` yielded blocks of the wrong shape, dtype or count (a bug in
            the caller, not a user error). The entry is left resumable.
    """
    found = read_complete(folder, n_rows)
    if found is not None:
        return found[0], found[1], True
    with entry_lock(folder, waiting=f"waiting for another process writing {folder.name}"):
        found = read_complete(folder, n_rows)  # written while this process waited
        if found is not None:
            return found[0], found[1], True
        (folder / META_FILE).unlink(missing_ok=True)  # unreadable: not complete any more
        folder.mkdir(parents=True, exist_ok=True)
        done, dim = _resume_point(folder, n_rows, meta)
        if done < n_rows or dim is None:
            dim = _fill(folder, n_rows, meta, produce, done, dim, desc, progress)
        (folder / PART_FILE).replace(folder / DATA_FILE)
        extra = on_complete(meta) if on_complete is not None else {}
        complete = {**meta, **extra, "shape": [n_rows, dim]}
        write_json_atomically(folder / META_FILE, complete)  # last: the entry is complete
        (folder / PROGRESS_FILE).unlink(missing_ok=True)
        rows = np.load(folder / DATA_FILE, mmap_mode="r")
        return rows, complete, False


def _resume_point(folder: Path, n_rows: int, meta: dict[str, Any]) -> tuple[int, int | None]:
    """``(rows already on disk, D)`` of a half-written entry made with the same ``meta``;
    ``(0, None)`` when there is none (anything else there is discarded)."""
    part, record = folder / PART_FILE, folder / PROGRESS_FILE
    try:
        state = json.loads(record.read_text())
        done, shape = int(state["rows"]), [int(s) for s in state["shape"]]
        same = state.get("meta") == json.loads(json.dumps(meta)) and shape[0] == n_rows
        header_ok = same and part.is_file() and tuple(
            np.load(part, mmap_mode="r").shape) == tuple(shape)
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        header_ok = False
    if not header_ok:
        part.unlink(missing_ok=True)
        record.unlink(missing_ok=True)
        return 0, None
    if done:
        log.info("resuming %s at row %d of %d", folder, done, n_rows)
    return done, shape[1]


def _fill(folder: Path, n_rows: int, meta: dict[str, Any],
          produce: Callable[[int], Iterable[np.ndarray]], done: int, dim: int | None,
          desc: str, progress: bool) -> int:
    """Write rows ``done..N`` from ``produce(done)``; returns ``D``."""
    part = folder / PART_FILE
    offset = _data_offset(part) if dim is not None else 0
    fd = os.open(part, os.O_RDWR) if dim is not None else -1
    last_sync = time.monotonic()
    try:
        with progress_counter(desc, n_rows, done, unit="img", enabled=progress) as bar:
            for block in produce(done):
                block = np.ascontiguousarray(block)
                if block.dtype != np.float32 or block.ndim != 2 or done + len(block) > n_rows:
                    raise ValueError(f"{desc}: block {block.shape} {block.dtype} does not fit "
                                     f"rows {done}..{n_rows} of float32")
                if dim is None:  # first block: the width is known now
                    dim = int(block.shape[1])
                    np.lib.format.open_memmap(part, mode="w+", dtype=np.float32,
                                              shape=(n_rows, dim))
                    offset = _data_offset(part)
                    fd = os.open(part, os.O_RDWR)
                if block.shape[1] != dim:
                    raise ValueError(f"{desc}: block of width {block.shape[1]}, expected {dim}")
                os.pwrite(fd, block.tobytes(), offset + done * dim * 4)
                done += len(block)
                now = time.monotonic()
                if now - last_sync >= SYNC_SECONDS or done == n_rows:
                    os.fsync(fd)  # the rows reach the disk before the record says so
                    write_json_atomically(folder / PROGRESS_FILE,
                                          {"rows": done, "shape": [n_rows, dim], "meta": meta})
                    last_sync = now
                bar.advance(len(block))
    finally:
        if fd >= 0:
            os.close(fd)
    if done != n_rows or dim is None:
        raise ValueError(f"{desc}: produced {done} of {n_rows} rows")
    return dim


def _data_offset(path: Path) -> int:
    """Byte offset of the first row in the ``.npy`` file ``path`` (after its header)."""
    return int(np.load(path, mmap_mode="r").offset)
