"""The resumable on-disk matrix behind the feature cache (medactive.data.arraycache)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from medactive.data import arraycache
from medactive.data.arraycache import cached_rows
from medactive.progress import listen, progress_counter

N, D = 103, 7
EXPECTED = np.arange(N * D, dtype=np.float32).reshape(N, D) / 10


def blocks(start: int, size: int = 10, fail_after: int | None = None,
           calls: list[int] | None = None) -> Iterator[np.ndarray]:
    """Rows ``start..N`` of EXPECTED in blocks; raises after ``fail_after`` blocks."""
    if calls is not None:
        calls.append(start)
    for k, s in enumerate(range(start, N, size)):
        if fail_after is not None and k == fail_after:
            raise KeyboardInterrupt("killed")
        yield EXPECTED[s:s + size]


def test_computes_once_then_reads_memmap(tmp_path: Path) -> None:
    calls: list[int] = []
    rows, meta, hit = cached_rows(tmp_path / "e", N, {"a": 1}, lambda s: blocks(s, calls=calls))
    assert not hit and calls == [0]
    assert isinstance(rows, np.memmap) and not rows.flags.writeable
    np.testing.assert_array_equal(rows, EXPECTED)
    assert meta["a"] == 1 and meta["shape"] == [N, D]
    again, _, hit = cached_rows(tmp_path / "e", N, {"a": 1}, lambda s: blocks(s, calls=calls))
    assert hit and calls == [0]  # nothing computed
    np.testing.assert_array_equal(again, EXPECTED)
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["meta.json", "rows.npy"]


def test_interrupted_run_resumes_where_it_stopped(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arraycache, "SYNC_SECONDS", 0.0)  # a record after every block
    with pytest.raises(KeyboardInterrupt):
        cached_rows(tmp_path / "e", N, {"a": 1}, lambda s: blocks(s, fail_after=4))
    record = json.loads((tmp_path / "e" / "progress.json").read_text())
    assert record["rows"] == 40 and not (tmp_path / "e" / "meta.json").exists()
    calls: list[int] = []
    rows, _, hit = cached_rows(tmp_path / "e", N, {"a": 1}, lambda s: blocks(s, calls=calls))
    assert calls == [40] and not hit
    np.testing.assert_array_equal(rows, EXPECTED)


def test_other_meta_starts_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arraycache, "SYNC_SECONDS", 0.0)
    with pytest.raises(KeyboardInterrupt):
        cached_rows(tmp_path / "e", N, {"a": 1}, lambda s: blocks(s, fail_after=3))
    calls: list[int] = []
    rows, meta, _ = cached_rows(tmp_path / "e", N, {"a": 2}, lambda s: blocks(s, calls=calls))
    assert calls == [0] and meta["a"] == 2
    np.testing.assert_array_equal(rows, EXPECTED)


def test_corrupt_finished_entry_is_rebuilt(tmp_path: Path) -> None:
    cached_rows(tmp_path / "e", N, {}, blocks)
    data = tmp_path / "e" / "rows.npy"
    data.write_bytes(data.read_bytes()[:200])  # a copy cut short
    calls: list[int] = []
    rows, _, hit = cached_rows(tmp_path / "e", N, {}, lambda s: blocks(s, calls=calls))
    assert not hit and calls == [0]
    np.testing.assert_array_equal(rows, EXPECTED)


def test_wrong_blocks_are_refused_and_stay_resumable(tmp_path: Path) -> None:
    def bad(start: int) -> Iterator[np.ndarray]:
        yield EXPECTED[start:start + 10]
        yield EXPECTED[:5].astype(np.float64)

    with pytest.raises(ValueError, match="float32"):
        cached_rows(tmp_path / "e", N, {}, bad)
    assert not (tmp_path / "e" / "meta.json").exists()
    rows, _, _ = cached_rows(tmp_path / "e", N, {}, blocks)
    np.testing.assert_array_equal(rows, EXPECTED)


def test_two_writers_compute_once(tmp_path: Path) -> None:
    calls: list[int] = []
    release = threading.Event()

    def slow(start: int) -> Iterator[np.ndarray]:
        calls.append(start)
        release.wait(10)
        yield from blocks(start)

    results: list[tuple] = []
    threads = [threading.Thread(target=lambda: results.append(
        cached_rows(tmp_path / "e", N, {}, slow, progress=False))) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    release.set()
    for t in threads:
        t.join(20)
    assert len(calls) == 1  # the second waited on the lock, then read the finished entry
    assert sorted(r[2] for r in results) == [False, True]
    for r in results:
        np.testing.assert_array_equal(r[0], EXPECTED)


_KILLED_CHILD = """
import sys, time
import numpy as np
from medactive.data import arraycache
arraycache.SYNC_SECONDS = 0.0
N, D = {n}, {d}
expected = np.arange(N * D, dtype=np.float32).reshape(N, D) / 10
def slow(start):
    for s in range(start, N, 10):
        time.sleep(0.05)
        yield expected[s:s + 10]
arraycache.cached_rows(__import__("pathlib").Path(sys.argv[1]), N, {{"a": 1}}, slow,
                       progress=False)
"""


def test_sigkill_mid_run_resumes(tmp_path: Path) -> None:
    """A real kill (SIGKILL: no cleanup at all) part-way, then a resume in this process."""
    entry = tmp_path / "e"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD.format(n=N, d=D), str(entry)],
                             env=env)
    deadline = time.monotonic() + 60
    record = entry / "progress.json"
    while time.monotonic() < deadline:
        if record.is_file() and json.loads(record.read_text())["rows"] >= 30:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    done = json.loads(record.read_text())["rows"]
    assert 30 <= done < N and not (entry / "meta.json").exists()
    calls: list[int] = []
    rows, _, hit = cached_rows(entry, N, {"a": 1}, lambda s: blocks(s, calls=calls))
    assert not hit and calls[0] >= done
    np.testing.assert_array_equal(rows, EXPECTED)


def test_progress_counter_reports_overall_progress() -> None:
    heard: list[tuple[str, int, int | None]] = []
    with listen(lambda desc, done, total: heard.append((desc, done, total))), \
            progress_counter("work", total=10, initial=4, enabled=False) as bar:
        bar.advance(3)
        bar.advance(3)
    assert heard == [("work", 4, 10), ("work", 7, 10), ("work", 10, 10)]
