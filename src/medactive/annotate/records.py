"""The clinic-workflow records of a project store: readers' answers, adjudications, the round
models' predictions, project settings, background jobs and per-reader tokens.

A mixin of :class:`~medactive.annotate.store.ProjectStore` (kept apart so each file stays
readable); every write goes through the store's one-transaction ``_write``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import sqlite3
from typing import Any

import numpy as np

from medactive.annotate.schema import Answer, Job, inserted_id, now
from medactive.errors import StoreError

# Latest live (not retracted) answer per image *and reader*, removed images left out.
READER_ANSWERS_SQL = """
WITH live AS (
    SELECT * FROM labels
    WHERE kind IN ('label', 'unsure')
      AND id NOT IN (SELECT retracts FROM labels WHERE retracts IS NOT NULL)
      AND image_id NOT IN (SELECT image_id FROM removals)
), latest AS (SELECT max(id) AS id FROM live GROUP BY image_id, annotator)
SELECT live.id, live.image_id, images.uid, live.kind, live.class_idx, live.annotator,
       live.created_at
FROM live JOIN latest ON live.id = latest.id JOIN images ON images.id = live.image_id
ORDER BY live.id
"""
JOB_COLUMNS = ("id, kind, status, params, stage, progress, error, pid, host, round_id, "
               "started_at, updated_at, finished_at")


class JobBusyError(StoreError):
    """Another job of this project is still running (one at a time)."""


def _job(row: tuple) -> Job:
    return Job(row[0], row[1], row[2], json.loads(row[3]), *row[4:])


def token_digest(token: str) -> str:
    """Hex SHA-256 of a reader token (only the digest is stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReviewRecords:
    """Mixin: needs ``_write()``, ``_query()``, ``image()`` and ``_class_idx()`` of the store."""

    _write: Any
    _query: Any
    image: Any
    _class_idx: Any

    # ------------------------------------------------------------------ readers' answers

    def reader_answers(self) -> list[Answer]:
        """Every reader's current answer (latest live ``label``/``unsure`` per image and
        reader), oldest first."""
        return [Answer(r[0], r[1], r[2], r[3], r[4], r[5], r[6])
                for r in self._query(READER_ANSWERS_SQL)]

    def last_own_record(self, round_id: int | None, annotator: str) -> tuple[int, str] | None:
        """``(image_id, kind)`` of ``annotator``'s latest live answer or skip in ``round_id``
        (what their undo would withdraw), or None."""
        rows = self._query(
            "SELECT image_id, kind FROM labels WHERE kind IN ('label', 'unsure', 'skip')"
            " AND round_id IS ? AND annotator = ? AND id NOT IN"
            " (SELECT retracts FROM labels WHERE retracts IS NOT NULL)"
            " ORDER BY id DESC LIMIT 1", (round_id, annotator))
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def skipped(self, round_id: int) -> set[int]:
        """Images of ``round_id`` with a live skip by anyone."""
        return {int(r[0]) for r in self._query(
            "SELECT image_id FROM labels WHERE kind = 'skip' AND round_id = ? AND id NOT IN"
            " (SELECT retracts FROM labels WHERE retracts IS NOT NULL)", (round_id,))}

    def adjudicate(self, image_id: int, answer: str, annotator: str) -> int:
        """Record an adjudication (a class name or ``"unsure"``); the latest one per image is
        the image's training label. Returns the record id.

        Raises:
            StoreError: unknown image or class.
        """
        if self.image(image_id) is None:
            raise StoreError(f"unknown image id {image_id}")
        kind, class_idx = ("unsure", None) if answer == "unsure" else (
            "label", self._class_idx(answer))
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO adjudications (image_id, kind, class_idx, annotator, created_at)"
                " VALUES (?, ?, ?, ?, ?)", (image_id, kind, class_idx, annotator, now()))
            return inserted_id(cur)

    def adjudications(self) -> dict[int, Answer]:
        """``image_id -> Answer`` of the latest adjudication per image (removed images left
        out)."""
        rows = self._query(
            "SELECT a.id, a.image_id, i.uid, a.kind, a.class_idx, a.annotator, a.created_at"
            " FROM adjudications a JOIN images i ON i.id = a.image_id"
            " WHERE a.image_id NOT IN (SELECT image_id FROM removals) ORDER BY a.id")
        return {r[1]: Answer(*r) for r in rows}

    def adjudication_history(self) -> list[tuple]:
        """Every adjudication record, oldest first."""
        return self._query("SELECT id, image_id, kind, class_idx, annotator, created_at"
                           " FROM adjudications ORDER BY id")

    # ------------------------------------------------------------------ queries and predictions

    def purposes(self) -> dict[int, set[str]]:
        """``image_id -> {purpose, ...}`` over every round's queries."""
        out: dict[int, set[str]] = {}
        for iid, purpose in self._query("SELECT image_id, purpose FROM queries"):
            out.setdefault(int(iid), set()).add(purpose)
        return out

    def validation_ids(self) -> set[int]:
        """Images drawn into (or imported to) the validation sample; whether they also train the
        model is the project's ``validation_mode`` (cross-fitting by default).

        An image belongs to the sample when its latest query (second reads aside) is a
        validation draw: a draw left unanswered when ``query --force`` closed its round goes
        back to the pool like any unanswered image, and if a later round's strategy picks it,
        it is a training image (it was not drawn at random for the answer it got)."""
        latest: dict[int, str] = {}
        for iid, purpose in self._query(
                "SELECT image_id, purpose FROM queries WHERE purpose != 'second-read'"
                " AND image_id NOT IN (SELECT image_id FROM removals) ORDER BY round_id"):
            latest[int(iid)] = purpose
        return {iid for iid, purpose in latest.items() if purpose == "validation"}

    def predictions(self, round_id: int, image_ids: list[int] | None = None
                    ) -> dict[int, np.ndarray]:
        """``image_id -> (C,)`` float32 probabilities of round ``round_id``'s model (empty for
        a cold-start round, which has no classifier)."""
        if image_ids is None:
            rows = self._query("SELECT image_id, probs FROM predictions WHERE round_id = ?",
                               (round_id,))
        else:
            rows = []
            for start in range(0, len(image_ids), 500):  # SQLite's bound-parameter limit
                chunk = [int(i) for i in image_ids[start:start + 500]]
                marks = ",".join("?" * len(chunk))
                rows += self._query(f"SELECT image_id, probs FROM predictions WHERE round_id = ?"
                                    f" AND image_id IN ({marks})", (round_id, *chunk))
        return {int(i): np.frombuffer(p, dtype=np.float32) for i, p in rows}

    def rounds_with_predictions(self) -> list[int]:
        """Ids of the rounds that recorded model predictions, oldest first."""
        return [int(r[0]) for r in self._query(
            "SELECT DISTINCT round_id FROM predictions ORDER BY round_id")]

    def stop_sample(self) -> list[int]:
        """The fixed random images the stopping signal compares predictions on (empty until
        the first query with a model draws it)."""
        rows = self._query("SELECT value FROM meta WHERE key = 'stop_sample'")
        return [int(i) for i in json.loads(rows[0][0])] if rows else []

    def save_stop_sample(self, image_ids: list[int]) -> None:
        """Record the stop sample once (a second call keeps the first sample: it is fixed)."""
        with self._write() as con:
            con.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('stop_sample', ?)",
                        (json.dumps([int(i) for i in image_ids]),))

    # ------------------------------------------------------------------ settings

    def raw_settings(self) -> dict[str, Any]:
        """The project settings as saved (see :mod:`medactive.annotate.settings`)."""
        rows = self._query("SELECT value FROM meta WHERE key = 'settings'")
        return json.loads(rows[0][0]) if rows else {}

    def save_settings(self, values: dict[str, Any]) -> None:
        """Replace the saved project settings (one transaction)."""
        with self._write() as con:
            con.execute("INSERT INTO meta (key, value) VALUES ('settings', ?) ON CONFLICT(key)"
                        " DO UPDATE SET value = excluded.value", (json.dumps(values),))

    # ------------------------------------------------------------------ jobs

    def begin_job(self, kind: str, params: dict[str, Any], pid: int | None) -> int:
        """Record a new running job; returns its id.

        Raises:
            JobBusyError: another job is running (a job whose process is gone is marked failed
                first, so a killed job never blocks the project).
        """
        self.reap_jobs()
        stamp = now()
        try:
            with self._write() as con:
                cur = con.execute(
                    "INSERT INTO jobs (kind, status, params, pid, host, started_at, updated_at)"
                    " VALUES (?, 'running', ?, ?, ?, ?, ?)",
                    (kind, json.dumps(params, default=str), pid, socket.gethostname(), stamp,
                     stamp))
                return inserted_id(cur)
        except sqlite3.IntegrityError:
            running = self.running_job()
            what = f"job {running.id} ({running.stage or 'starting'})" if running else "a job"
            raise JobBusyError(f"{what} is already running on this project; wait for it to "
                               "finish (one query at a time)") from None

    def set_job_pid(self, job_id: int, pid: int) -> None:
        """Record the process that runs ``job_id``."""
        with self._write() as con:
            con.execute("UPDATE jobs SET pid = ?, updated_at = ? WHERE id = ?",
                        (pid, now(), job_id))

    def update_job(self, job_id: int, stage: str, progress: float) -> None:
        """Record a running job's stage and progress (0..1)."""
        with self._write() as con:
            con.execute("UPDATE jobs SET stage = ?, progress = ?, updated_at = ? WHERE id = ?"
                        " AND status = 'running'",
                        (stage, float(min(max(progress, 0.0), 1.0)), now(), job_id))

    def finish_job(self, job_id: int, round_id: int | None = None,
                   error: str | None = None) -> None:
        """Mark a job done (with the round it recorded) or failed (with its error)."""
        stamp = now()
        with self._write() as con:
            if error is None:
                con.execute("UPDATE jobs SET status = 'done', progress = 1, stage = 'done',"
                            " round_id = ?, updated_at = ?, finished_at = ? WHERE id = ?",
                            (round_id, stamp, stamp, job_id))
            else:
                con.execute("UPDATE jobs SET status = 'failed', error = ?, updated_at = ?,"
                            " finished_at = ? WHERE id = ? AND status = 'running'",
                            (error, stamp, stamp, job_id))

    def jobs(self) -> list[Job]:
        """Every job, oldest first."""
        return [_job(r) for r in self._query(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")]

    def job(self, job_id: int) -> Job | None:
        """One job by id, or None."""
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def running_job(self) -> Job | None:
        """The running job, if any (after marking dead ones failed)."""
        self.reap_jobs()
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'running'")
        return _job(rows[0]) if rows else None

    def latest_job(self) -> Job | None:
        """The most recent job, if any (after marking dead ones failed)."""
        self.reap_jobs()
        rows = self._query(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id DESC LIMIT 1")
        return _job(rows[0]) if rows else None

    def reap_jobs(self) -> None:
        """Mark failed every running job whose process is gone (killed, machine restarted): a
        job is never left "running" forever."""
        for row in self._query(f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'running'"):
            job = _job(row)
            if not _job_alive(job):
                self.finish_job(job.id, error="the job stopped before it finished (its process "
                                              "was killed or the machine restarted)")

    # ------------------------------------------------------------------ reader tokens

    def add_reader(self, name: str) -> str:
        """Register reader ``name`` with a fresh token; returns the token (shown once; only
        its SHA-256 is stored). A second call for the same name replaces the token."""
        token = secrets.token_urlsafe(18)
        with self._write() as con:
            con.execute("INSERT INTO readers (name, token_sha256, created_at) VALUES (?, ?, ?)"
                        " ON CONFLICT(name) DO UPDATE SET token_sha256 = excluded.token_sha256",
                        (name, token_digest(token), now()))
        return token

    def readers(self) -> list[str]:
        """Names of the readers with a token, sorted."""
        return [r[0] for r in self._query("SELECT name FROM readers ORDER BY name")]

    def check_reader(self, name: str, token: str) -> bool:
        """True when ``token`` is reader ``name``'s (constant-time comparison)."""
        rows = self._query("SELECT token_sha256 FROM readers WHERE name = ?", (name,))
        given = token_digest(token)
        stored = rows[0][0] if rows else token_digest(secrets.token_hex(16))
        return bool(rows) & hmac.compare_digest(given, stored)


def _job_alive(job: Job) -> bool:
    """Whether a running job's process still exists (on this machine: by pid, and on Linux by
    its command line naming the job; a job of another machine counts as alive for a day)."""
    if job.pid is None:
        return _age_seconds(job.updated_at) < 120  # spawned, its pid not yet recorded
    if job.host != socket.gethostname():
        return _age_seconds(job.updated_at) < 86400
    try:
        os.kill(job.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    cmdline = f"/proc/{job.pid}/cmdline"
    if os.path.exists(cmdline):
        try:
            with open(cmdline, "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{job.pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            return False
        if b") Z" in stat:  # a zombie: finished, not yet reaped by its parent
            return False
        return b"medactive" in b" ".join(args) or job.pid == os.getpid()
    return True


def _age_seconds(stamp: str) -> float:
    from datetime import datetime, timezone

    try:
        return (datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds()
    except ValueError:
        return float("inf")


__all__ = ["JobBusyError", "ReviewRecords", "token_digest"]
