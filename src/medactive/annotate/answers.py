"""The answers of a project store: recording, undoing and importing labels, and the current
answer of each image.

A mixin of :class:`~medactive.annotate.store.ProjectStore` (kept apart so the store file holds
the file's lifecycle and its images, and this one what may be said about an image): every write
goes through the store's one-transaction ``_write``. The checks of class names and of imported
label rows live here too, so ``project init`` can reject a bad CSV before anything is created.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from medactive.annotate.schema import CURRENT_SQL, Answer, inserted_id, now
from medactive.errors import StoreError

RESERVED_ANSWERS = ("unsure", "skip")


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


class AnswerRecords:
    """Mixin: needs ``_write()``, ``_query()``, ``image()``, ``removed_ids()`` and
    ``classes()`` of the store."""

    _write: Any
    _query: Any
    image: Any
    removed_ids: Any
    classes: Any
    reader_answers: Any
    latest_round: Any
    queue: Any

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
            return inserted_id(cur)

    def undo(self, round_id: int | None, annotator: str) -> int | None:
        """Withdraw ``annotator``'s own latest live answer or skip of ``round_id`` by appending
        a retraction (one reader never withdraws another's answer).

        Returns:
            the image id whose answer was withdrawn, or None when there is nothing to undo.
        """
        with self._write() as con:
            row = con.execute(
                "SELECT id, image_id FROM labels WHERE kind IN ('label', 'unsure', 'skip')"
                " AND round_id IS ? AND annotator = ? AND id NOT IN"
                " (SELECT retracts FROM labels WHERE retracts IS NOT NULL)"
                " ORDER BY id DESC LIMIT 1",
                (round_id, annotator),
            ).fetchone()
            if row is None:
                return None
            con.execute(
                "INSERT INTO labels (image_id, kind, retracts, round_id, annotator, created_at)"
                " VALUES (?, 'retract', ?, ?, ?, ?)",
                (row[1], row[0], round_id, annotator, now()),
            )
            return int(row[1])

    def retract(self, label_id: int, annotator: str) -> bool:
        """Withdraw one given answer or skip (record ``label_id``) by appending a retraction,
        as :meth:`undo` does for a reader's latest one; for callers that know which record they
        withdraw (an answer edited or deleted in another tool, e.g. Label Studio).

        Returns:
            True when a retraction was appended; False when the record was already withdrawn.

        Raises:
            StoreError: no such record, or it is itself a retraction (nothing is written).
        """
        with self._write() as con:
            row = con.execute("SELECT image_id, kind, round_id FROM labels WHERE id = ?",
                              (label_id,)).fetchone()
            if row is None or row[1] == "retract":
                raise StoreError(f"no answer record {label_id} to withdraw")
            if con.execute("SELECT 1 FROM labels WHERE retracts = ?", (label_id,)).fetchone():
                return False
            con.execute(
                "INSERT INTO labels (image_id, kind, retracts, round_id, annotator, created_at)"
                " VALUES (?, 'retract', ?, ?, ?, ?)",
                (row[0], label_id, row[2], annotator, now()),
            )
            return True

    def current_answers(self) -> dict[int, Answer]:
        """``image_id -> Answer`` for every image with a live ``label`` or ``unsure`` answer."""
        return {r[1]: Answer(r[0], r[1], r[6], r[2], r[3], r[4], r[5])
                for r in self._query(CURRENT_SQL)}

    def history(self) -> list[tuple]:
        """Every record of the labels table, oldest first (for audits and tests)."""
        return self._query("SELECT id, image_id, kind, class_idx, retracts, round_id, annotator,"
                           " created_at FROM labels ORDER BY id")

    def import_labels(self, rows: Sequence[tuple[str, str]], annotator: str,
                      validation: bool = False, source: str = "") -> int:
        """Import ``(uid, answer)`` rows (answer: a class name or ``unsure``) atomically.

        Every row is checked before anything is written: one unknown id or class rejects the
        whole import.

        With ``validation``, the images join the project's validation sample, the mechanism a
        query's random validation draw uses: one transaction records a round of its own
        (strategy ``import``, ``source`` in its parameters) whose queries have the purpose
        ``validation``, and the answers as that round's. The sample must be a set declared
        before its labels were used (hold-out keeps it out of training, cross-fitting scores it
        out of fold), so an image that already has an answer is refused, and so is an import while the latest
        round still has unanswered images (the import round would hide its queue).
        """
        by_uid = {uid: iid for iid, uid in self._query("SELECT id, uid FROM images")}
        classes = {name: k for k, name in enumerate(self.classes())}
        check_label_rows(rows, set(by_uid), list(classes))
        if validation:
            self._check_validation_import([by_uid[u] for u, _ in rows])
        stamp = now()
        with self._write() as con:
            round_id = None
            if validation:
                cur = con.execute(
                    "INSERT INTO rounds (strategy, params, checkpoint, created_at)"
                    " VALUES ('import', ?, NULL, ?)",
                    (json.dumps({"set": "validation", "source": source}), stamp))
                round_id = inserted_id(cur)
                con.executemany(
                    "INSERT INTO queries (round_id, image_id, rank, score, purpose)"
                    " VALUES (?, ?, ?, NULL, 'validation')",
                    [(round_id, by_uid[u], rank) for rank, (u, _) in enumerate(rows, start=1)])
            con.executemany(
                "INSERT INTO labels (image_id, kind, class_idx, round_id, annotator, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(by_uid[u], "unsure" if a == "unsure" else "label", classes.get(a), round_id,
                  annotator, stamp) for u, a in rows],
            )
        return len(rows)

    def _check_validation_import(self, image_ids: list[int]) -> None:
        """Raise :class:`StoreError` unless ``image_ids`` may join the validation sample."""
        if len(set(image_ids)) != len(image_ids):
            raise StoreError("import rejected, nothing written: an image is listed twice")
        answered = {a.image_id for a in self.reader_answers()}
        clash = [i for i in image_ids if i in answered]
        if clash:
            uids = [self.image(i).uid for i in clash[:3]]
            raise StoreError(
                f"import rejected, nothing written: {len(clash)} image(s) already have an "
                f"answer (e.g. {', '.join(uids)}); a validation image must never have been "
                "trained on")
        latest = self.latest_round()
        if latest is not None:
            pending = sum(not q.done for q in self.queue(latest.id))
            if pending:
                raise StoreError(
                    f"import rejected, nothing written: round {latest.id} still has {pending} "
                    "unanswered image(s); answer them (or start the next round) first, because "
                    "a validation import is recorded as a round of its own")
