"""The rounds of a project store: each query's ranked images, and the queue a reader works
through.

A mixin of :class:`~medactive.annotate.store.ProjectStore` (kept apart so the store file holds
the file's lifecycle and its images, and this one the query cycle's records): every write goes
through the store's one-transaction ``_write``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medactive.annotate.schema import PURPOSES, QueueItem, RoundRow, inserted_id, now
from medactive.errors import StoreError


@dataclass(frozen=True)
class RoundProgress:
    """How far a round's queue got: ``queried`` images (removed ones left out), ``complete``
    ones (every read the settings ask for), ``open`` ones (the rest), of which ``skipped``
    (someone skipped it and nobody answered it) and ``partial`` (some reads, not all of them:
    double reading or a second read)."""

    round_id: int
    queried: int
    complete: int
    open: int
    skipped: int
    partial: int

    def as_dict(self) -> dict[str, int]:
        """JSON-ready dict."""
        return dict(self.__dict__)

    def describe(self) -> str:
        """``"18 of 30 images still need an answer (2 skipped, 3 waiting for a second
        reader)"``."""
        extra = [f"{self.skipped} skipped"] if self.skipped else []
        if self.partial:
            extra.append(f"{self.partial} waiting for another reader")
        tail = f" ({', '.join(extra)})" if extra else ""
        return f"{self.open} of {self.queried} images still need an answer{tail}"


class RoundRecords:
    """Mixin: needs ``_write()``, ``_query()``, ``dir``, ``classes()``, ``current_answers()``
    and ``reader_answers()`` of the store."""

    _write: Any
    _query: Any
    dir: Path
    classes: Any
    current_answers: Any
    reader_answers: Any
    raw_settings: Any

    def add_round(
        self,
        strategy: str,
        params: dict[str, Any],
        checkpoint: str | None,
        ranked: Sequence[tuple[int, float | None]],
        purposes: Sequence[str] | None = None,
        predictions: dict[int, np.ndarray] | None = None,
    ) -> int:
        """Record a round, its ranked ``(image_id, score)`` queries and (optionally) the round
        model's ``(C,)`` probabilities per image, all in one transaction.

        Args:
            purposes: per query, why it is asked (:data:`~medactive.annotate.schema.PURPOSES`);
                default all ``"acquire"``. Only a ``"second-read"`` may name a labelled image.
            predictions: ``image_id -> (C,)`` probabilities of the model that chose the round.

        The round it replaces is closed by this one: its progress at this moment (how many of
        its images were still open, :class:`RoundProgress`) is recorded in the new round's
        parameters as ``closed_round``, so ``status`` can say honestly that a round was closed
        with images unanswered (``project query --force``), not leave it looking half done.

        Raises:
            StoreError: a queried image already has an answer (outside a second read), is
                listed twice, or a purpose is unknown.
        """
        ids = [int(i) for i, _ in ranked]
        kinds = list(purposes) if purposes is not None else ["acquire"] * len(ids)
        if len(kinds) != len(ids) or any(k not in PURPOSES for k in kinds):
            raise StoreError(f"one purpose per query, each one of {PURPOSES}")
        if len(set(ids)) != len(ids):
            raise StoreError("a round cannot query the same image twice")
        answered = {a.image_id for a in self.reader_answers()}
        clash = [i for i, k in zip(ids, kinds, strict=True)
                 if i in answered and k != "second-read"]
        if clash:
            raise StoreError(f"refusing to query {len(clash)} already-labelled image(s)")
        previous = self.latest_round_id()
        if previous is not None:
            params = {**params, "closed_round": self.round_progress(previous).as_dict()}
        with self._write() as con:
            cur = con.execute(
                "INSERT INTO rounds (strategy, params, checkpoint, created_at) VALUES (?, ?, ?, ?)",
                (strategy, json.dumps(params, default=str), self._project_relative(checkpoint),
                 now()),
            )
            rid = inserted_id(cur)
            con.executemany(
                "INSERT INTO queries (round_id, image_id, rank, score, purpose)"
                " VALUES (?, ?, ?, ?, ?)",
                [(rid, i, r, None if s is None else float(s), k)
                 for r, ((i, s), k) in enumerate(zip(ranked, kinds, strict=True), start=1)],
            )
            if predictions:
                con.executemany(
                    "INSERT INTO predictions (round_id, image_id, probs) VALUES (?, ?, ?)",
                    [(rid, int(i), np.asarray(p, np.float32).tobytes())
                     for i, p in predictions.items()])
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

    def latest_round_id(self) -> int | None:
        """The id of the most recent round (one cheap query: the page polls it), or None."""
        rows = self._query("SELECT max(id) FROM rounds")
        return None if rows[0][0] is None else int(rows[0][0])

    def rounds_of_image(self, image_id: int) -> list[int]:
        """The rounds that queried ``image_id``, oldest first."""
        return [int(r[0]) for r in self._query(
            "SELECT round_id FROM queries WHERE image_id = ? ORDER BY round_id", (image_id,))]

    def round_progress(self, round_id: int, reads_needed: int | None = None) -> RoundProgress:
        """How far round ``round_id`` got (see :class:`RoundProgress`); ``reads_needed``
        defaults to the project's ``reads_per_image`` setting. A skip leaves an image open: it
        was looked at, not answered."""
        if reads_needed is None:
            reads_needed = int(self.raw_settings().get("reads_per_image", 1))
        queue = self.queue(round_id, None, reads_needed)
        complete = skipped = partial = 0
        for q in queue:
            need = max(reads_needed, 2) if q.purpose == "second-read" else reads_needed
            if len(q.answers) >= need:
                complete += 1
            elif q.answers:
                partial += 1
            elif q.skipped:
                skipped += 1
        return RoundProgress(round_id, len(queue), complete, len(queue) - complete, skipped,
                             partial)

    def queue(self, round_id: int, reader: str | None = None,
              reads_needed: int = 1) -> list[QueueItem]:
        """The round's queried images in rank order, with every reader's answer and whether
        the page of ``reader`` moves past each one.

        An image is *done* for ``reader`` once they answered or skipped it, or once it has
        ``reads_needed`` readers' answers (2 at least for a second read, which also never goes
        back to a reader who has answered it). Without a reader, an image is done once anyone
        answered or skipped it (the single-reader view). Removed images are left out.
        """
        answers = self.current_answers()
        names = self.classes()
        by_reader: dict[int, dict[str, str]] = {}
        for a in self.reader_answers():
            by_reader.setdefault(a.image_id, {})[a.annotator] = a.display(names)
        skips = self._query(
            "SELECT image_id, annotator FROM labels WHERE kind = 'skip' AND round_id = ? AND id"
            " NOT IN (SELECT retracts FROM labels WHERE retracts IS NOT NULL)", (round_id,))
        skipped = {iid for iid, who in skips if reader is None or who == reader}
        items = []
        for rank, iid, uid, score, purpose in self._query(
            "SELECT q.rank, q.image_id, i.uid, q.score, q.purpose FROM queries q JOIN images i"
            " ON i.id = q.image_id WHERE q.round_id = ? AND q.image_id NOT IN"
            " (SELECT image_id FROM removals) ORDER BY q.rank", (round_id,)
        ):
            ans = answers.get(iid)
            name = None if ans is None else ans.display(names)
            readers = by_reader.get(iid, {})
            need = max(reads_needed, 2) if purpose == "second-read" else reads_needed
            if reader is None:
                done = (len(readers) >= need or iid in skipped) if purpose == "second-read" \
                    else (ans is not None or iid in skipped)
            else:
                done = reader in readers or iid in skipped or len(readers) >= need
            items.append(QueueItem(rank, iid, uid, score, name, iid in skipped and ans is None,
                                   purpose, readers, done))
        return items
