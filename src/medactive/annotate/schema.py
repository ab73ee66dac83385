"""Schema of the project database and the row types the store returns.

Kept apart from :mod:`medactive.annotate.store` so the SQL that defines the file format can be
read (and versioned) in one place.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

APP_ID = "medactive"
DB_NAME = "project.db"
ANSWER_KINDS = ("label", "unsure")

# The version-1 tables. A new project is created at version 1 and then brought to
# SCHEMA_VERSION by the same numbered migrations an existing file goes through, so a fresh file
# and an upgraded one can never differ.
SCHEMA_SQL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    added_at TEXT NOT NULL
);
CREATE TABLE classes (idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE rounds (
    id INTEGER PRIMARY KEY,
    strategy TEXT NOT NULL,
    params TEXT NOT NULL,
    checkpoint TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE queries (
    round_id INTEGER NOT NULL REFERENCES rounds(id),
    image_id INTEGER NOT NULL REFERENCES images(id),
    rank INTEGER NOT NULL,
    score REAL,
    PRIMARY KEY (round_id, rank),
    UNIQUE (round_id, image_id)
);
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL REFERENCES images(id),
    kind TEXT NOT NULL CHECK (kind IN ('label', 'unsure', 'skip', 'retract')),
    class_idx INTEGER REFERENCES classes(idx),
    retracts INTEGER REFERENCES labels(id),
    round_id INTEGER REFERENCES rounds(id),
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    CHECK ((kind = 'label') = (class_idx IS NOT NULL)),
    CHECK ((kind = 'retract') = (retracts IS NOT NULL))
);
CREATE INDEX labels_image ON labels(image_id);
CREATE INDEX labels_retracts ON labels(retracts);
"""

# MIGRATIONS[n] turns a version n-1 database into version n. Steps are applied in order, all in
# one transaction with the version bump, so a file is always at exactly one version. Append a
# step (never edit one that has shipped) to change the schema.
MIGRATIONS: dict[int, str] = {
    # v2: the labels history is append-only in the file itself, not only by convention: an
    # answer is withdrawn by appending a retraction, so UPDATE and DELETE are refused.
    2: """
CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only: withdraw an answer with a retraction'); END;
CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
BEGIN SELECT RAISE(ABORT, 'labels are append-only: withdraw an answer with a retraction'); END;
""",
    # v3: images taken out of a project (`project remove`): append-only, one row per image; their
    # labels stay in `labels`, but a removed image is never listed, queried, shown or exported.
    3: """
CREATE TABLE removals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL UNIQUE REFERENCES images(id),
    reason TEXT NOT NULL,
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TRIGGER removals_no_update BEFORE UPDATE ON removals
BEGIN SELECT RAISE(ABORT, 'removals are append-only'); END;
CREATE TRIGGER removals_no_delete BEFORE DELETE ON removals
BEGIN SELECT RAISE(ABORT, 'removals are append-only'); END;
""",
}
SCHEMA_VERSION = max(MIGRATIONS)

# Latest live (not retracted) answer per image that is still in the project (not removed).
CURRENT_SQL = """
WITH live AS (
    SELECT * FROM labels
    WHERE kind IN ('label', 'unsure')
      AND id NOT IN (SELECT retracts FROM labels WHERE retracts IS NOT NULL)
      AND image_id NOT IN (SELECT image_id FROM removals)
), latest AS (SELECT max(id) AS id FROM live GROUP BY image_id)
SELECT live.id, live.image_id, live.kind, live.class_idx, live.annotator, live.created_at,
       images.uid
FROM live JOIN latest ON live.id = latest.id JOIN images ON images.id = live.image_id
"""


def sql_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (a trigger body's ``;`` stays inside)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def now() -> str:
    """UTC timestamp, ISO 8601 with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class ImageRow:
    """A registered image: store id, user-facing id (``uid``), file path and content hash."""

    id: int
    uid: str
    path: str
    sha256: str


@dataclass(frozen=True)
class Removal:
    """An image taken out of the project: who, when and why."""

    image_id: int
    uid: str
    reason: str
    annotator: str
    created_at: str


@dataclass(frozen=True)
class Answer:
    """The current answer for an image: ``kind`` is ``label`` (with ``class_idx``) or ``unsure``."""

    label_id: int
    image_id: int
    uid: str
    kind: str
    class_idx: int | None
    annotator: str
    created_at: str


@dataclass(frozen=True)
class RoundRow:
    """One query round."""

    id: int
    strategy: str
    params: dict[str, Any]
    checkpoint: str | None
    created_at: str


@dataclass(frozen=True)
class QueueItem:
    """One queried image of a round, with what has happened to it so far."""

    rank: int
    image_id: int
    uid: str
    score: float | None
    answer: str | None  # class name, "unsure", or None
    skipped: bool

    @property
    def done(self) -> bool:
        """Answered or skipped: the page moves past it."""
        return self.answer is not None or self.skipped
