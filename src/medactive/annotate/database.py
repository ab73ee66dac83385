"""The SQLite file under a project: where it is, how it is opened, migrated and diagnosed.

Kept apart from :mod:`medactive.annotate.store` (the store's records) because this is about the
file, not its contents: the connection pragmas that make every write durable, the numbered
migrations applied when an older file is opened, the device/inode identity that detects a
replaced file, and telling a read-only file from a locked one in the error a user reads.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from medactive.annotate.schema import DB_NAME, MIGRATIONS, SCHEMA_VERSION, sql_statements
from medactive.errors import StoreError


def db_path(project_dir: str | Path) -> Path:
    """``DIR/project.db``."""
    return Path(project_dir) / DB_NAME


def error_name(exc: sqlite3.Error) -> str:
    """SQLite's extended error name of ``exc`` (``SQLITE_READONLY_DIRECTORY``...), or ``""``."""
    return str(getattr(exc, "sqlite_errorname", "") or "")


def is_read_only(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file (or its folder) cannot be written."""
    return error_name(exc).startswith("SQLITE_READONLY") or "readonly" in str(exc)


def read_only_message(path: Path) -> str:
    """The one error line for a project file at ``path`` that cannot be written."""
    return (f"{path} is read-only (or its folder is): nothing can be saved; make the file and "
            "its folder writable by you, or work on a copy")


def apply_migrations(con: sqlite3.Connection, path: Path) -> None:
    """Bring the database to :data:`SCHEMA_VERSION` by applying each numbered step in order.

    One transaction: the steps and the version bump commit together, or not at all; a second
    process migrating at the same time finds the work done once it gets the lock.
    """
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if is_read_only(exc):
            raise StoreError(f"{path} needs an upgrade of its schema; "
                             + read_only_message(path)) from None
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
        if is_read_only(exc):
            raise StoreError(f"{path} needs an upgrade of its schema; "
                             + read_only_message(path)) from None
        raise
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def file_identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of ``path``, or None when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def connect(path: Path) -> sqlite3.Connection:
    """A connection to ``path`` with the store's pragmas (busy timeout, foreign keys,
    ``synchronous=FULL``) and no implicit transactions."""
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves so every write takes the lock up
    # front (no deadlock-prone read->write upgrades between concurrent writers).
    con = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout = 30000")
    con.execute("PRAGMA foreign_keys = ON")
    con.execute("PRAGMA synchronous = FULL")
    return con
