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

from medactive.annotate.schema import (
    APP_ID,
    CURRENT_SQL,
    DB_NAME,
    MIGRATIONS,
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

RESERVED_ANSWERS = ("unsure", "skip")

__all__ = ["SCHEMA_VERSION", "Answer", "ImageRow", "ProjectStore", "QueueItem", "RoundRow",
           "check_class_names", "db_path"]


def check_class_names(classes: Sequence[str]) -> list[str]:
    """Strip and validate class names: at least two, non-empty, unique, not a reserved answer.

    Returns:
        the stripped names. Raises :class:`StoreError` naming the problem.
    """
    names = [str(c).strip() for c in classes]
    if len(names) < 2 or any(not c for c in names):
        raise StoreError(f"need at least 2 non-empty class names, got {names!r}")
    if len(set(names)) != len(names):
        raise StoreError(f"class names must be unique, got {names!r}")
    if any(c in RESERVED_ANSWERS for c in names):
        raise StoreError("'unsure' and 'skip' are reserved answers, not class names")
    return names

def check_label_rows(rows: Sequence[tuple[str, str]], uids: set[str], classes: list[str]) -> None:
    """Raise :class:`StoreError` naming every unknown image id and class in ``rows``."""
    bad_ids = sorted({u for u, _ in rows if u not in uids})
    bad_classes = sorted({a for _, a in rows if a not in classes and a != "unsure"})
    problems = []
    if bad_ids:
        problems.append(f"{len(bad_ids)} unknown image id(s) (e.g. {bad_ids[:3]})")
    if bad_classes:
        problems.append(f"unknown class(es) {bad_classes} (classes: {', '.join(classes)})")
    if problems:
        raise StoreError("import rejected, nothing written: " + "; ".join(problems))


def db_path(project_dir: str | Path) -> Path:
    """``DIR/project.db``."""
    return Path(project_dir) / DB_NAME


def _error_name(exc: sqlite3.Error) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def _is_read_only(exc: sqlite3.Error) -> bool:
    return _error_name(exc).startswith("SQLITE_READONLY") or "readonly" in str(exc)


def _read_only_message(path: Path) -> str:
    return (f"{path} is read-only (or its folder is): nothing can be saved; make the file and "
            "its folder writable by you, or work on a copy")


def _apply_migrations(con: sqlite3.Connection, path: Path) -> None:
    """Bring the database to :data:`SCHEMA_VERSION` by applying each numbered step in order.

    One transaction: the steps and the version bump commit together, or not at all; a second
    process migrating at the same time finds the work done once it gets the lock.
    """
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if _is_read_only(exc):
            raise StoreError(f"{path} needs an upgrade of its schema; "
                             + _read_only_message(path)) from None
        raise StoreError(f"{path} is locked by another writer ({exc})") from None
    try:
        version = int(con.execute(
            "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        for step in range(version + 1, SCHEMA_VERSION + 1):
            for statement in sql_statements(MIGRATIONS[step]):
                con.execute(statement)
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                    (str(SCHEMA_VERSION),))
    except sqlite3.OperationalError as exc:
        con.execute("ROLLBACK")
        if _is_read_only(exc):
            raise StoreError(f"{path} needs an upgrade of its schema; "
                             + _read_only_message(path)) from None
        raise
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so every write takes the lock up
    # front (no deadlock-prone read->write upgrades between concurrent writers).
    con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 30000")
    con.execute("PRAGMA foreign_keys = ON")
    con.execute("PRAGMA synchronous = FULL")
    return con


class ProjectStore:
    """Open project database. Thread-safe (one lock around the connection); use as a context
    manager or call :meth:`close`."""

    def __init__(self, con: sqlite3.Connection, path: Path) -> None:
        self._con = con
        self.path = path
        self.dir = path.parent
        self._lock = threading.RLock()
        # which file was opened: every write checks that DIR/project.db is still this one
        self._identity = _file_identity(path)

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
            con = _connect(path)
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
        _apply_migrations(con, path)
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
            con = _connect(path)
            tables = {r[0] for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            name = _error_name(exc)
            if name == "SQLITE_READONLY_DIRECTORY" or (
                    _is_read_only(exc) and not os.access(path.parent, os.W_OK)):
                # WAL mode needs project.db-wal/-shm beside the file, even to read
                raise StoreError(f"cannot open {path}: its folder {path.parent} is read-only and "
                                 "SQLite must create project.db-wal/-shm there even to read; "
                                 "make the folder writable or copy the project") from None
            if _is_read_only(exc) or name.startswith("SQLITE_CANTOPEN"):
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
                _apply_migrations(con, path)
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
        current = _file_identity(self.path)
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
                if _is_read_only(exc):
                    raise StoreError(_read_only_message(self.path)) from None
                raise StoreError(f"{self.path} is locked by another writer ({exc})") from None
            try:
                self._con.execute("UPDATE meta SET value = value WHERE key = 'app'")
            except sqlite3.OperationalError as exc:
                if _is_read_only(exc):
                    raise StoreError(_read_only_message(self.path)) from None
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
                if _is_read_only(exc):
                    raise StoreError(_read_only_message(self.path)) from None
                raise StoreError(f"{self.path} is locked by another writer ({exc})") from None
            try:
                yield self._con
            except sqlite3.OperationalError as exc:
                self._con.execute("ROLLBACK")
                if _is_read_only(exc):
                    raise StoreError(_read_only_message(self.path)) from None
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

    # ------------------------------------------------------------------ answers

    def _class_idx(self, class_name: str) -> int:
        rows = self._query("SELECT idx FROM classes WHERE name = ?", (class_name,))
        if not rows:
            raise StoreError(f"unknown class {class_name!r}; classes: {', '.join(self.classes())}")
        return int(rows[0][0])

    def record(
        self,
        image_id: int,
        answer: str,
        annotator: str,
        round_id: int | None = None,
    ) -> int:
        """Record one answer (a class name, ``"unsure"`` or ``"skip"``) in its own transaction.

        Returns:
            the new record's id.

        Raises:
            StoreError: unknown image or class (nothing is written).
        """
        if self.image(image_id) is None:
            raise StoreError(f"unknown image id {image_id}")
        if image_id in self.removed_ids():
            raise StoreError(f"image {image_id} was removed from the project")
        if answer in ("unsure", "skip"):
            kind, class_idx = answer, None
        else:
            kind, class_idx = "label", self._class_idx(answer)
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO labels (image_id, kind, class_idx, round_id, annotator, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (image_id, kind, class_idx, round_id, annotator, now()),
            )
            return int(cur.lastrowid)

    def undo(self, round_id: int | None, annotator: str) -> int | None:
        """Withdraw the latest live answer or skip of ``round_id`` by appending a retraction.

        Returns:
            the image id whose answer was withdrawn, or None when there is nothing to undo.
        """
        with self._write() as con:
            row = con.execute(
                "SELECT id, image_id FROM labels WHERE kind IN ('label', 'unsure', 'skip')"
                " AND round_id IS ? AND id NOT IN"
                " (SELECT retracts FROM labels WHERE retracts IS NOT NULL)"
                " ORDER BY id DESC LIMIT 1",
                (round_id,),
            ).fetchone()
            if row is None:
                return None
            con.execute(
                "INSERT INTO labels (image_id, kind, retracts, round_id, annotator, created_at)"
                " VALUES (?, 'retract', ?, ?, ?, ?)",
                (row[1], row[0], round_id, annotator, now()),
            )
            return int(row[1])

    def current_answers(self) -> dict[int, Answer]:
        """``image_id -> Answer`` for every image with a live ``label`` or ``unsure`` answer."""
        return {r[1]: Answer(r[0], r[1], r[6], r[2], r[3], r[4], r[5])
                for r in self._query(CURRENT_SQL)}

    def history(self) -> list[tuple]:
        """Every record of the labels table, oldest first (for audits and tests)."""
        return self._query("SELECT id, image_id, kind, class_idx, retracts, round_id, annotator,"
                           " created_at FROM labels ORDER BY id")

    def import_labels(self, rows: Sequence[tuple[str, str]], annotator: str) -> int:
        """Import ``(uid, answer)`` rows (answer: a class name or ``unsure``) atomically.

        Every row is checked before anything is written: one unknown id or class rejects the
        whole import.
        """
        by_uid = {uid: iid for iid, uid in self._query("SELECT id, uid FROM images")}
        classes = {name: k for k, name in enumerate(self.classes())}
        check_label_rows(rows, set(by_uid), list(classes))
        stamp = now()
        with self._write() as con:
            con.executemany(
                "INSERT INTO labels (image_id, kind, class_idx, annotator, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [(by_uid[u], "unsure" if a == "unsure" else "label", classes.get(a), annotator,
                  stamp) for u, a in rows],
            )
        return len(rows)

    # ------------------------------------------------------------------ rounds

    def add_round(
        self,
        strategy: str,
        params: dict[str, Any],
        checkpoint: str | None,
        ranked: Sequence[tuple[int, float | None]],
    ) -> int:
        """Record a round and its ranked ``(image_id, score)`` queries in one transaction.

        Raises:
            StoreError: a queried image already has an answer, or is listed twice.
        """
        ids = [int(i) for i, _ in ranked]
        if len(set(ids)) != len(ids):
            raise StoreError("a round cannot query the same image twice")
        answered = set(self.current_answers())
        clash = [i for i in ids if i in answered]
        if clash:
            raise StoreError(f"refusing to query {len(clash)} already-labelled image(s)")
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO rounds (strategy, params, checkpoint, created_at) VALUES (?, ?, ?, ?)",
                (strategy, json.dumps(params, default=str), self._project_relative(checkpoint),
                 now()),
            )
            rid = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO queries (round_id, image_id, rank, score) VALUES (?, ?, ?, ?)",
                [(rid, i, r, None if s is None else float(s))
                 for r, (i, s) in enumerate(ranked, start=1)],
            )
        return rid

    def _project_relative(self, path: str | Path | None) -> str | None:
        """A path inside the project folder as a POSIX path relative to it (so the project can
        be moved, and the path does not depend on the directory a command ran from); a path
        outside it (a shared encoder cache) stays absolute."""
        if path is None:
            return None
        absolute = Path(path).resolve()
        try:
            return absolute.relative_to(self.dir.resolve()).as_posix()
        except ValueError:
            return str(absolute)

    def rounds(self) -> list[RoundRow]:
        """All rounds, oldest first; ``checkpoint`` resolved against the project folder."""
        return [RoundRow(r[0], r[1], json.loads(r[2]),
                         None if r[3] is None else str(self.dir / r[3]), r[4])
                for r in self._query(
            "SELECT id, strategy, params, checkpoint, created_at FROM rounds ORDER BY id")]

    def latest_round(self) -> RoundRow | None:
        """The most recent round, or None before the first query."""
        rounds = self.rounds()
        return rounds[-1] if rounds else None

    def queue(self, round_id: int) -> list[QueueItem]:
        """The round's queried images in rank order, with their current answer / skip state
        (removed images left out)."""
        answers = self.current_answers()
        names = self.classes()
        skipped = {r[0] for r in self._query(
            "SELECT image_id FROM labels WHERE kind = 'skip' AND round_id = ? AND id NOT IN"
            " (SELECT retracts FROM labels WHERE retracts IS NOT NULL)", (round_id,))}
        items = []
        for rank, iid, uid, score in self._query(
            "SELECT q.rank, q.image_id, i.uid, q.score FROM queries q JOIN images i"
            " ON i.id = q.image_id WHERE q.round_id = ? AND q.image_id NOT IN"
            " (SELECT image_id FROM removals) ORDER BY q.rank", (round_id,)
        ):
            ans = answers.get(iid)
            name = None if ans is None else (
                names[ans.class_idx] if ans.kind == "label" else ans.kind)
            items.append(QueueItem(rank, iid, uid, score, name, iid in skipped and ans is None))
        return items
