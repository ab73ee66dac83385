"""The project store: durability under kill -9, concurrent writers, schema errors, history."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medactive.annotate.store import SCHEMA_VERSION, ProjectStore
from medactive.errors import StoreError

WRITER = """
import sys
from medactive.annotate.store import ProjectStore
store = ProjectStore.open(sys.argv[1])
ids = [img.id for img in store.images()]
classes = store.classes()
name = sys.argv[2]
uids = [img.uid for img in store.images()]
bulk = [(u, classes[k % len(classes)]) for k in range(20) for u in uids]
i = 0
while True:
    if len(sys.argv) <= 3 and i % 4 == 3:  # a multi-row transaction: all of it or none
        store.import_labels(bulk, "bulk")
    rid = store.record(ids[i % len(ids)], classes[i % len(classes)], name)
    print(rid, flush=True)  # printed only after the commit returned
    i += 1
    if len(sys.argv) > 3 and i >= int(sys.argv[3]):
        break
"""


def _writer(project_dir: Path, name: str, count: int | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", WRITER, str(project_dir), name]
    if count is not None:
        args.append(str(count))
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_labels_survive_kill_9(project: ProjectStore) -> None:
    proc = _writer(project.dir, "killed")
    committed: list[int] = []
    deadline = time.monotonic() + 60
    while len(committed) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"writer died early: {proc.stderr.read()}")
        committed.append(int(line))
    proc.send_signal(signal.SIGKILL)  # mid-loop: very likely inside a transaction
    proc.wait(timeout=10)
    committed += [int(x) for x in proc.stdout.read().split()]
    assert len(committed) >= 40

    with ProjectStore.open(project.dir) as store:
        con = sqlite3.connect(store.path)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        con.close()
        rows = {r[0]: r for r in store.history()}
        missing = [i for i in committed if i not in rows]
        assert not missing, f"committed labels lost after kill -9: {missing}"
        single = [r for r in rows.values() if r[6] == "killed"]
        assert len(single) - len(committed) <= 1  # at most the commit that raced the print
        # nothing half-written: each bulk import is entirely there (240 rows) or absent
        per_batch: dict[str, int] = {}
        for r in rows.values():
            assert r[2] == "label" and r[3] is not None and r[6] in ("killed", "bulk") and r[7]
            if r[6] == "bulk":
                per_batch[r[7]] = per_batch.get(r[7], 0) + 1
        assert per_batch and set(per_batch.values()) == {240}
        # the store is still writable after the crash
        store.record(store.images()[0].id, "normal", "after")


def test_two_concurrent_writers(project: ProjectStore) -> None:
    procs = [_writer(project.dir, f"w{k}", count=60) for k in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    ids = [int(x) for out, _ in outs for x in out.split()]
    assert len(ids) == len(set(ids)) == 120
    hist = project.history()
    assert sorted(r[0] for r in hist) == sorted(ids)
    assert sum(r[6] == "w0" for r in hist) == sum(r[6] == "w1" for r in hist) == 60


def test_missing_project_is_clear(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no project at"):
        ProjectStore.open(tmp_path)


def test_future_schema_is_rejected(project: ProjectStore) -> None:
    con = sqlite3.connect(project.path)
    con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with pytest.raises(StoreError,
                       match=rf"schema v99, newer than .* \(v{SCHEMA_VERSION}\); upgrade medactive"):
        ProjectStore.open(project.dir)


def test_foreign_sqlite_file_is_rejected(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "project.db")
    con.execute("CREATE TABLE patients (id INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a medactive project database"):
        ProjectStore.open(tmp_path)
    con = sqlite3.connect(tmp_path / "project.db")
    con.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    con.execute("INSERT INTO meta VALUES ('app', 'something-else')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a medactive project database"):
        ProjectStore.open(tmp_path)


def test_garbage_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "project.db").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StoreError, match="not an SQLite database"):
        ProjectStore.open(tmp_path)


def test_init_twice_refused(project: ProjectStore, image_folder: Path) -> None:
    from medactive.annotate.project import init_from_folder

    with pytest.raises(StoreError, match="already exists"):
        init_from_folder(project.dir, image_folder, ["x", "y"])


def test_history_is_append_only_and_latest_wins(project: ProjectStore) -> None:
    img = project.images()[0].id
    project.record(img, "benign", "ann")
    project.record(img, "unsure", "ann")
    assert project.current_answers()[img].kind == "unsure"
    project.record(img, "malignant", "bob")
    ans = project.current_answers()[img]
    assert (ans.kind, ans.class_idx, ans.annotator) == ("label", 1, "bob")
    assert project.undo(None, "bob") == img  # back to the previous answer, not to nothing
    assert project.current_answers()[img].kind == "unsure"
    assert [r[2] for r in project.history()] == ["label", "unsure", "label", "retract"]


def test_record_rejects_unknown_image_and_class(project: ProjectStore) -> None:
    with pytest.raises(StoreError, match="unknown image"):
        project.record(10_000, "benign", "ann")
    with pytest.raises(StoreError, match="unknown class"):
        project.record(project.images()[0].id, "cancer", "ann")
    assert project.history() == []


def test_round_never_queries_labelled_image(project: ProjectStore) -> None:
    imgs = [i.id for i in project.images()]
    project.record(imgs[0], "benign", "ann")
    with pytest.raises(StoreError, match="already-labelled"):
        project.add_round("random", {}, None, [(imgs[0], 1.0), (imgs[1], 0.5)])
    rid = project.add_round("random", {"seed": 0}, None, [(imgs[2], 0.9), (imgs[1], 0.5)])
    assert [q.image_id for q in project.queue(rid)] == [imgs[2], imgs[1]]
    assert project.rounds()[0].params == {"seed": 0}
