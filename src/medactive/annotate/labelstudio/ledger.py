"""The project's Label Studio ledger: which medactive answer stands for which Label Studio
annotation (``DIR/labelstudio.db``, beside ``project.db``).

Label Studio names an answer by its annotation id; an edit or a deletion names only that id.
The ledger keeps, per ``(Label Studio project, annotation)``, the answer medactive recorded for
it and the id of that record in the store, so that

* a webhook delivered twice, an export imported twice, or a ``/train`` call that resends every
  annotation changes nothing the second time;
* an edit withdraws the old record (a retraction, as the page's undo appends) and records the
  new answer; a deletion withdraws it.

**Crash safety.** A change is two steps in two files (the store's answer, then the ledger's
pointer to it), so the ledger first writes the *intent* (``pending``: the new answer, the record
it replaces and the store's highest record id at that moment), then the store is changed, then
the intent is cleared together with the new pointer. A process killed in between leaves the
intent behind; the next touch of that annotation (or the backend's start) completes it: a record
written after the intent's watermark for that image and reader is adopted instead of written
again, so nothing is lost and nothing is recorded twice.

It also keeps the reader name given to each Label Studio user id (one name per reader, whatever
later payloads carry) and the Label Studio projects the backend serves.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medactive.annotate.database import connect, is_read_only
from medactive.annotate.schema import now
from medactive.errors import StoreError

LEDGER_NAME = "labelstudio.db"
LEDGER_VERSION = 1
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # answer: class name, 'unsure' or 'skip'; NULL once deleted in Label Studio.
    # label_id: the store record standing for it (NULL once withdrawn).
    # pending: JSON intent of a change under way (see the module docstring), else NULL.
    """CREATE TABLE IF NOT EXISTS annotations (
        ls_project INTEGER NOT NULL,
        annotation INTEGER NOT NULL,
        task INTEGER NOT NULL,
        image_id INTEGER NOT NULL,
        answer TEXT,
        reader TEXT NOT NULL,
        label_id INTEGER,
        pending TEXT,
        ls_updated_at TEXT NOT NULL DEFAULT '',
        recorded_at TEXT NOT NULL,
        PRIMARY KEY (ls_project, annotation))""",
    "CREATE TABLE IF NOT EXISTS users (user_id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS projects (
        ls_project INTEGER PRIMARY KEY,
        hostname TEXT NOT NULL DEFAULT '',
        synced_version TEXT NOT NULL DEFAULT '',
        seen_at TEXT NOT NULL)""",
)


@dataclass(frozen=True)
class LedgerEntry:
    """What the ledger holds for one Label Studio annotation."""

    ls_project: int
    annotation: int
    task: int
    image_id: int
    answer: str | None
    reader: str
    label_id: int | None
    pending: dict[str, Any] | None
    ls_updated_at: str
    recorded_at: str


_COLUMNS = ("ls_project, annotation, task, image_id, answer, reader, label_id, pending, "
            "ls_updated_at, recorded_at")


def _entry(row: tuple) -> LedgerEntry:
    return LedgerEntry(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], str(row[5]),
                       row[6], json.loads(row[7]) if row[7] else None, str(row[8]),
                       str(row[9]))


class Ledger:
    """The open ledger of one project (thread-safe; one lock around the connection)."""

    def __init__(self, con: sqlite3.Connection, path: Path) -> None:
        self._con = con
        self.path = path
        self._lock = threading.RLock()

    @classmethod
    def open(cls, project_dir: str | Path) -> Ledger:
        """Open (creating it on first use) ``DIR/labelstudio.db``.

        Raises:
            StoreError: it cannot be created or written, or was written by a newer medactive.
        """
        path = Path(project_dir) / LEDGER_NAME
        try:
            con = connect(path)
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                con.execute(statement)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('version', ?)", (str(LEDGER_VERSION),))
            version = int(con.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])
            con.execute("COMMIT")
        except sqlite3.Error as exc:
            if is_read_only(exc):
                raise StoreError(f"{path} is read-only (or its folder is): the Label Studio "
                                 "ledger cannot be written") from None
            raise StoreError(f"cannot open the Label Studio ledger {path} ({exc})") from None
        if version > LEDGER_VERSION:
            con.close()
            raise StoreError(f"{path} was written by a newer medactive (ledger v{version}); "
                             "upgrade medactive")
        return cls(con, path)

    def close(self) -> None:
        """Close the connection (everything is committed already)."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._con.execute(sql, params).fetchall()

    # ------------------------------------------------------------------ annotations

    def get(self, ls_project: int, annotation: int) -> LedgerEntry | None:
        """The entry of one annotation, or None."""
        rows = self._query(f"SELECT {_COLUMNS} FROM annotations WHERE ls_project = ? AND "
                           "annotation = ?", (ls_project, annotation))
        return _entry(rows[0]) if rows else None

    def entries(self, ls_project: int | None = None) -> list[LedgerEntry]:
        """Every entry (of one Label Studio project), in annotation order."""
        if ls_project is None:
            rows = self._query(f"SELECT {_COLUMNS} FROM annotations ORDER BY ls_project, "
                               "annotation")
        else:
            rows = self._query(f"SELECT {_COLUMNS} FROM annotations WHERE ls_project = ? "
                               "ORDER BY annotation", (ls_project,))
        return [_entry(r) for r in rows]

    def pending(self) -> list[LedgerEntry]:
        """Entries with a change under way (left by a killed process)."""
        return [_entry(r) for r in self._query(
            f"SELECT {_COLUMNS} FROM annotations WHERE pending IS NOT NULL")]

    def begin(self, ls_project: int, annotation: int, task: int, image_id: int, reader: str,
              intent: dict[str, Any]) -> None:
        """Record the intent of a change (creating the entry if new)."""
        with self._write() as con:
            con.execute(
                "INSERT INTO annotations (ls_project, annotation, task, image_id, answer, reader,"
                " label_id, pending, recorded_at) VALUES (?, ?, ?, ?, NULL, ?, NULL, ?, ?)"
                " ON CONFLICT (ls_project, annotation) DO UPDATE SET pending = excluded.pending",
                (ls_project, annotation, task, image_id, reader, json.dumps(intent), now()))

    def finish(self, ls_project: int, annotation: int, answer: str | None, reader: str,
               label_id: int | None, ls_updated_at: str) -> None:
        """Clear the intent and point the entry at its new record (None: withdrawn)."""
        with self._write() as con:
            con.execute(
                "UPDATE annotations SET answer = ?, reader = ?, label_id = ?, pending = NULL,"
                " ls_updated_at = ?, recorded_at = ? WHERE ls_project = ? AND annotation = ?",
                (answer, reader, label_id, ls_updated_at, now(), ls_project, annotation))

    # ------------------------------------------------------------------ users and projects

    def user_name(self, user_id: int) -> str | None:
        """The reader name given to Label Studio user ``user_id``, or None."""
        rows = self._query("SELECT name FROM users WHERE user_id = ?", (user_id,))
        return str(rows[0][0]) if rows else None

    def keep_user_name(self, user_id: int, name: str) -> str:
        """Give ``user_id`` the reader name ``name`` unless it has one; returns the kept one."""
        with self._write() as con:
            con.execute("INSERT OR IGNORE INTO users VALUES (?, ?)", (user_id, name))
            return str(con.execute("SELECT name FROM users WHERE user_id = ?",
                                   (user_id,)).fetchone()[0])

    def see_project(self, ls_project: int, hostname: str = "") -> None:
        """Remember a Label Studio project the backend serves (and its server's address)."""
        with self._write() as con:
            con.execute(
                "INSERT INTO projects (ls_project, hostname, seen_at) VALUES (?, ?, ?)"
                " ON CONFLICT (ls_project) DO UPDATE SET seen_at = excluded.seen_at,"
                " hostname = CASE WHEN excluded.hostname != '' THEN excluded.hostname"
                " ELSE projects.hostname END", (ls_project, hostname, now()))

    def projects(self) -> list[tuple[int, str, str]]:
        """``(Label Studio project id, hostname, synced model version)`` of every project."""
        return [(int(r[0]), str(r[1]), str(r[2])) for r in self._query(
            "SELECT ls_project, hostname, synced_version FROM projects ORDER BY ls_project")]

    def set_synced(self, ls_project: int, version: str) -> None:
        """Record that ``ls_project`` now orders by ``version``'s predictions."""
        with self._write() as con:
            con.execute("UPDATE projects SET synced_version = ? WHERE ls_project = ?",
                        (version, ls_project))
