"""The project store: one SQLite file (``DIR/project.db``, WAL mode) that never loses a label.

Tables:
    meta     key/value: ``app`` = ``medactive``, ``schema_version``, image size/channels.
    images   registered files by path + SHA-256 content hash (nothing is copied).
    classes  the project's class names in index order.
    labels   append-only history of answers. ``kind`` is ``label`` (a class), ``unsure``, ``skip``
             or ``retract`` (an undo, pointing at the record it withdraws). The *current* answer of
             an image is its latest non-retracted ``label``/``unsure`` record; nothing is updated or
             deleted, so the full history of who said what, and when, is kept.
    rounds   one per query: strategy, parameters (JSON), model checkpoint, time.
    queries  the ranked images of a round (round, image, rank, score).
    removals images taken out of the project (``project remove``: unreadable or unwanted files),
             with reason, annotator and time. Append-only; their labels stay in ``labels``, but a
             removed image is no longer listed, queried, shown or exported (schema v3).

Every write is one ``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``: a label either is in
the file completely or not at all, even when the writing process is killed with ``kill -9``.
Before every write the store checks that ``DIR/project.db`` is still the file it opened (same
device and inode): a project folder deleted or replaced under a running server fails loudly
instead of saving answers into an unlinked file. The schema evolves by numbered migrations
(:data:`~medactive.annotate.schema.MIGRATIONS`), applied in order when an older file is opened.

This file holds the store's lifecycle (create, open, the write transaction), its metadata and
its images; the records live in mixins beside it: answers (:mod:`~medactive.annotate.answers`),
rounds and queues (:mod:`~medactive.annotate.rounds`), the clinic workflow
(:mod:`~medactive.annotate.records`); opening and migrating the SQLite file itself is
:mod:`~medactive.annotate.database`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from medactive.annotate.answers import AnswerRecords, check_class_names
from medactive.annotate.database import (
    apply_migrations,
    connect,
    db_path,
    error_name,
    file_identity,
    is_read_only,
    read_only_message,
)
from medactive.annotate.records import ReviewRecords
from medactive.annotate.rounds import RoundRecords
from medactive.annotate.schema import (
    APP_ID,
    SCHEMA_SQL,
    SCHEMA_VERSION,
    Answer,
    ImageRow,
    QueueItem,
    Removal,
    RoundRow,
    now,
    sql_statements,
)
from medactive.errors import StoreError, StoreReplacedError

__all__ = ["SCHEMA_VERSION", "Answer", "ImageRow", "ProjectStore", "QueueItem", "RoundRow"]


class ProjectStore(AnswerRecords, RoundRecords, ReviewRecords):
    """Open project database. Thread-safe (one lock around the connection); use as a context
    manager or call :meth:`close`."""

    def __init__(self, con: sqlite3.Connection, path: Path) -> None:
        self._con = con
        self.path = path
        self.dir = path.parent
        self._lock = threading.RLock()
        # which file was opened: every write checks that DIR/project.db is still this one
        self._identity = file_identity(path)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls, project_dir: str | Path, classes: Sequence[str], meta: dict[str, Any] | None = None
    ) -> ProjectStore:
        """Create ``DIR/project.db`` with ``classes``; refuses to overwrite an existing project."""
        classes = check_class_names(classes)
        path = db_path(project_dir)
        if path.exists():
            raise StoreError(f"{path} already exists; a project is initialised only once")
        if path.parent.exists() and not path.parent.is_dir():
            raise StoreError(f"{path.parent} is a file, not a folder: choose another project "
                             "directory")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            con = connect(path)
            con.execute("PRAGMA journal_mode = WAL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot create {path}: {exc}") from None
        entries = {"app": APP_ID, "schema_version": "1", "created_at": now()}
        entries.update({k: json.dumps(v) for k, v in (meta or {}).items()})
        con.execute("BEGIN IMMEDIATE")
        for statement in sql_statements(SCHEMA_SQL):
            con.execute(statement)
        con.executemany("INSERT INTO meta VALUES (?, ?)", entries.items())
        con.executemany("INSERT INTO classes VALUES (?, ?)", enumerate(classes))
        con.execute("COMMIT")
        apply_migrations(con, path)
        return cls(con, path)

    @classmethod
    def open(cls, project_dir: str | Path) -> ProjectStore:
        """Open an existing project, checking that it is a medactive store of a known schema.

        Raises:
            StoreError: no project there, not an SQLite file, not a medactive database, or a
                schema version this medactive cannot read.
        """
        path = db_path(project_dir)
        if not path.is_file():
            raise StoreError(f"no project at {project_dir} ({path} not found; run "
                             "`medactive project init` first)")
        try:
            con = connect(path)
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            name = error_name(exc)
            if name == "SQLITE_READONLY_DIRECTORY" or (
                    is_read_only(exc) and not os.access(path.parent, os.W_OK)):
                # WAL mode needs project.db-wal/-shm beside the file, even to read
                raise StoreError(f"cannot open {path}: its folder {path.parent} is read-only and "
                                 "SQLite must create project.db-wal/-shm there even to read; "
                                 "make the folder writable or copy the project") from None
            if is_read_only(exc) or name.startswith("SQLITE_CANTOPEN"):
                raise StoreError(f"cannot open {path} ({exc}); check the file and folder "
                                 "permissions") from None
            raise StoreError(f"{path} is not an SQLite database ({exc})") from None
        if "meta" not in tables:
            con.close()
            raise StoreError(f"{path} is an SQLite file but not a medactive project database")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != APP_ID:
            con.close()
            raise StoreError(f"{path} is an SQLite file but not a medactive project database")
        try:
            version = int(meta.get("schema_version", ""))
        except ValueError:
            con.close()
            raise StoreError(f"{path}: unreadable schema version "
                             f"{meta.get('schema_version')!r}") from None
        if version > SCHEMA_VERSION:
            con.close()
            raise StoreError(
                f"{path} uses project schema v{version}, newer than this medactive understands "
                f"(v{SCHEMA_VERSION}); upgrade medactive to open it"
            )
        if version < 1:
            con.close()
            raise StoreError(f"{path}: unreadable schema version {version}")
        if version < SCHEMA_VERSION:
            try:
                apply_migrations(con, path)
            except BaseException:
                con.close()
                raise
        con.execute("PRAGMA journal_mode = WAL")
        return cls(con, path)

    def close(self) -> None:
        """Close the connection (committed data is already on disk)."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_same_file(self) -> None:
        """Raise :class:`StoreReplacedError` when ``DIR/project.db`` is gone or is now another
        file than the one opened (the folder was deleted, moved or replaced)."""
        current = file_identity(self.path)
        if current is None:
            raise StoreReplacedError(f"{self.path} was deleted or moved since it was opened; "
                                     "nothing was saved (restore the project folder and restart)")
        if current != self._identity:
            raise StoreReplacedError(f"{self.path} was replaced by another file since it was "
                                     "opened; nothing was saved (restart to open the new one)")

    def check_writable(self) -> None:
        """Raise :class:`StoreError` unless an answer could be saved now.

        Probes with a real write that is rolled back (SQLite opens a read-only file without a
        complaint and only fails at the first write): call it before long work whose result
        must be recorded, and before serving a page that records answers.
        """
        with self._lock:
            self.check_same_file()
            try:
                self._con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if is_read_only(exc):
                    raise StoreError(read_only_message(self.path)) from None
                raise StoreError(f"{self.path} is locked by another writer ({exc})") from None
            try:
                self._con.execute("UPDATE meta SET value = value WHERE key = 'app'")
            except sqlite3.OperationalError as exc:
                if is_read_only(exc):
                    raise StoreError(read_only_message(self.path)) from None
                raise StoreError(f"cannot write to {self.path} ({exc})") from None
            finally:
                self._con.execute("ROLLBACK")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or (on any exception) none of it."""
        with self._lock:
            self.check_same_file()
            try:
                self._con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if is_read_only(exc):
                    raise StoreError(read_only_message(self.path)) from None
                raise StoreError(f"{self.path} is locked by another writer ({exc})") from None
            try:
                yield self._con
            except sqlite3.OperationalError as exc:
                self._con.execute("ROLLBACK")
                if is_read_only(exc):
                    raise StoreError(read_only_message(self.path)) from None
                raise
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ metadata

    def meta(self) -> dict[str, Any]:
        """User metadata saved at creation (JSON-decoded), plus ``app``/``schema_version``."""
        out: dict[str, Any] = {}
        for key, value in self._query("SELECT key, value FROM meta"):
            try:
                out[key] = json.loads(value) if key not in ("app", "created_at") else value
            except json.JSONDecodeError:
                out[key] = value
        return out

    def classes(self) -> list[str]:
        """Class names in index order."""
        return [r[0] for r in self._query("SELECT name FROM classes ORDER BY idx")]

    # ------------------------------------------------------------------ images

    def add_images(self, rows: Sequence[tuple[str, str, str]]) -> int:
        """Register ``(uid, path, sha256)`` rows in one transaction; returns how many were added.

        Raises:
            StoreError: a uid is already registered (nothing is added then).
        """
        stamp = now()
        try:
            with self._write() as con:
                con.executemany(
                    "INSERT INTO images (uid, path, sha256, added_at) VALUES (?, ?, ?, ?)",
                    [(u, p, h, stamp) for u, p, h in rows],
                )
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"cannot register images: {exc}") from None
        return len(rows)

    def images(self) -> list[ImageRow]:
        """The project's images (registered, not removed) in registration order (their index in
        training arrays)."""
        return [ImageRow(*r) for r in self._query(
            "SELECT id, uid, path, sha256 FROM images WHERE id NOT IN"
            " (SELECT image_id FROM removals) ORDER BY id")]

    def image(self, image_id: int) -> ImageRow | None:
        """The image with store id ``image_id`` (removed or not), or None (also for ids outside
        SQLite's 64-bit integer range, which no row can have)."""
        if not -(2**63) <= image_id < 2**63:
            return None
        rows = self._query("SELECT id, uid, path, sha256 FROM images WHERE id = ?", (image_id,))
        return ImageRow(*rows[0]) if rows else None

    def n_images(self) -> int:
        """Number of the project's images (registered, not removed)."""
        return int(self._query("SELECT count(*) FROM images WHERE id NOT IN"
                               " (SELECT image_id FROM removals)")[0][0])

    def remove_images(self, uids: Sequence[str], reason: str, annotator: str) -> list[int]:
        """Take images out of the project (one transaction); their labels are kept.

        Returns:
            the store ids removed, in the order given.

        Raises:
            StoreError: an unknown or already removed id, or a repeated one (nothing is
                written then).
        """
        by_uid = {uid: iid for iid, uid in self._query("SELECT id, uid FROM images")}
        unknown = [u for u in uids if u not in by_uid]
        if unknown:
            raise StoreError(f"nothing removed: {len(unknown)} unknown image id(s) "
                             f"(e.g. {unknown[:3]})")
        if len(set(uids)) != len(uids):
            raise StoreError("nothing removed: an image id is given twice")
        ids = [by_uid[u] for u in uids]
        gone = self.removed_ids() & set(ids)
        if gone:
            names = [u for u in uids if by_uid[u] in gone]
            raise StoreError(f"nothing removed: already removed: {names[:3]}")
        stamp = now()
        with self._write() as con:
            con.executemany(
                "INSERT INTO removals (image_id, reason, annotator, created_at)"
                " VALUES (?, ?, ?, ?)", [(i, reason, annotator, stamp) for i in ids])
        return ids

    def removed_ids(self) -> set[int]:
        """Store ids of the removed images."""
        return {r[0] for r in self._query("SELECT image_id FROM removals")}

    def removals(self) -> list[Removal]:
        """Every removal, oldest first (for audits and ``project status``)."""
        return [Removal(*r) for r in self._query(
            "SELECT r.image_id, i.uid, r.reason, r.annotator, r.created_at FROM removals r"
            " JOIN images i ON i.id = r.image_id ORDER BY r.id")]
