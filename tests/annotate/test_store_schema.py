"""Schema guarantees of project.db: append-only labels in the file, numbered migrations of older
files, and checkpoint paths that do not depend on the directory a command ran from."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from medactive.annotate.schema import MIGRATIONS, SCHEMA_SQL, SCHEMA_VERSION, sql_statements
from medactive.annotate.store import ProjectStore


def _raw(store: ProjectStore) -> sqlite3.Connection:
    return sqlite3.connect(store.path, isolation_level=None)


def test_labels_refuse_update_and_delete(project: ProjectStore) -> None:
    img = project.images()[0].id
    project.record(img, "benign", "dr-a")
    before = project.history()
    with closing(_raw(project)) as con:
        for sql in ("UPDATE labels SET class_idx = 1", "UPDATE labels SET annotator = 'x'",
                    "DELETE FROM labels", f"DELETE FROM labels WHERE image_id = {img}"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                con.execute(sql)
    assert project.history() == before
    project.undo(None, "dr-a")  # withdrawing still works: it appends
    assert [r[2] for r in project.history()] == ["label", "retract"]


def test_migrations_are_numbered_steps() -> None:
    assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1))


def _version_1_file(folder: Path) -> Path:
    """A project.db exactly as medactive wrote it at schema version 1, with one label."""
    folder.mkdir()
    path = folder / "project.db"
    with closing(sqlite3.connect(path, isolation_level=None)) as con:
        con.execute("PRAGMA journal_mode = WAL")
        for statement in sql_statements(SCHEMA_SQL):
            con.execute(statement)
        con.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("app", "medactive"), ("schema_version", "1"), ("created_at", "2026-01-01"),
            ("image_size", "28"), ("channels", "3")])
        con.executemany("INSERT INTO classes VALUES (?, ?)", [(0, "a"), (1, "b")])
        con.execute("INSERT INTO images (uid, path, sha256, added_at) VALUES "
                    "('x.png', '/nowhere/x.png', 'ab', '2026-01-01')")
        con.execute("INSERT INTO labels (image_id, kind, class_idx, annotator, created_at) "
                    "VALUES (1, 'label', 1, 'dr-a', '2026-01-01')")
    return path


def test_version_1_file_is_migrated(tmp_path: Path) -> None:
    path = _version_1_file(tmp_path / "old")
    with ProjectStore.open(path.parent) as store:
        assert store.meta()["schema_version"] == SCHEMA_VERSION
        assert store.current_answers()[1].class_idx == 1  # the data came through
    with closing(sqlite3.connect(path)) as con:
        triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = "
                                              "'trigger'")}
        assert {"labels_no_update", "labels_no_delete"} <= triggers
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            con.execute("DELETE FROM labels")
    with ProjectStore.open(path.parent) as store:  # opening again changes nothing
        assert store.meta()["schema_version"] == SCHEMA_VERSION
        assert len(store.history()) == 1


def test_checkpoint_is_stored_relative_to_the_project(tmp_path: Path, image_folder: Path,
                                                      monkeypatch) -> None:
    from medactive.annotate.project import init_from_folder

    monkeypatch.chdir(tmp_path)
    with init_from_folder(Path("proj"), image_folder, ["a", "b"]) as store:
        ckpt = Path("proj/models/round-001-head.pt")  # as `query` saw it, from this cwd
        ckpt.parent.mkdir()
        ckpt.write_bytes(b"head")
        shared = tmp_path / "cache" / "encoder-key"  # an encoder cache outside the project
        ids = [i.id for i in store.images()]
        store.add_round("aeig", {}, str(ckpt), [(ids[0], 0.5)])
        store.add_round("hacon", {}, str(shared), [(ids[1], None)])
    with closing(sqlite3.connect(tmp_path / "proj" / "project.db")) as con:
        stored = [r[0] for r in con.execute("SELECT checkpoint FROM rounds ORDER BY id")]
    assert stored == ["models/round-001-head.pt", str(shared)]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # another directory: the path still resolves
    with ProjectStore.open(tmp_path / "proj") as store:
        first, second = store.rounds()
        assert Path(first.checkpoint).read_bytes() == b"head"
        assert Path(second.checkpoint) == shared
