"""Recording Label Studio's annotations in the project store, through the web app's own path.

Every answer is written by :meth:`ProjectStore.record <medactive.annotate.answers.AnswerRecords.record>`,
the call behind the labelling page's ``POST /api/answer`` (same reader, round and time stamp
rules): with the latest round's id when the image is queried in it, else with no round (as an
imported label). An edit or a deletion in Label Studio withdraws the record it replaces with
:meth:`~medactive.annotate.answers.AnswerRecords.retract` (an appended retraction, as the page's
undo), and the :class:`~medactive.annotate.labelstudio.ledger.Ledger` ties each record to its
Label Studio annotation id, so a redelivered or re-imported annotation changes nothing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from medactive.annotate.labelstudio.ledger import Ledger, LedgerEntry
from medactive.annotate.labelstudio.tasks import SKIP, UNSURE, LsAnswer
from medactive.annotate.store import ProjectStore

# what happened to one annotation
RECORDED, CHANGED, WITHDRAWN, UNCHANGED = "recorded", "changed", "withdrawn", "unchanged"


@dataclass
class Outcome:
    """How many annotations were recorded, changed, withdrawn or found unchanged."""

    counts: Counter = field(default_factory=Counter)

    def add(self, what: str) -> None:
        """Count one annotation's fate."""
        self.counts[what] += 1

    def as_dict(self) -> dict[str, int]:
        """``{"recorded": n, "changed": n, "withdrawn": n, "unchanged": n}``."""
        return {k: int(self.counts[k]) for k in (RECORDED, CHANGED, WITHDRAWN, UNCHANGED)}

    def describe(self) -> str:
        """One line: ``3 recorded, 1 changed, 0 withdrawn, 2 unchanged``."""
        return ", ".join(f"{n} {k}" for k, n in self.as_dict().items())


class Recorder:
    """Applies Label Studio annotations to one project (thread-safe: one lock, as the store).

    Args:
        store: the open project.
        ledger: its open Label Studio ledger.
    """

    def __init__(self, store: ProjectStore, ledger: Ledger) -> None:
        self.store = store
        self.ledger = ledger
        self.classes = store.classes()
        self._lock = threading.RLock()
        self._round: tuple[int | None, set[int]] = (None, set())
        history = store.history()
        # the highest store record id known: an intent's watermark. Kept up to date with the
        # records written here (one history read per recorder, not per answer); a record another
        # process writes meanwhile only widens what recovery may adopt, which must still match
        # the intent's image, reader and answer exactly
        self._high = int(history[-1][0]) if history else 0

    # ------------------------------------------------------------------ public

    def apply(self, answer: LsAnswer) -> str:
        """Record one annotation (new or edited); returns what happened (:data:`RECORDED`,
        :data:`CHANGED` or :data:`UNCHANGED`).

        Raises:
            StoreError: the store refuses the write (nothing of this annotation is lost: a
                retry completes it).
        """
        with self._lock:
            entry = self._settled(answer.project, answer.annotation)
            if (entry is not None and entry.label_id is not None
                    and (entry.answer, entry.image_id, entry.reader)
                    == (answer.answer, answer.image_id, answer.reader)):
                return UNCHANGED
            replaces = entry.label_id if entry is not None else None
            intent = {"answer": answer.answer, "reader": answer.reader,
                      "replaces": replaces,
                      "replaces_reader": entry.reader if entry is not None else None,
                      "watermark": self._high, "round_id": self._round_of(answer.image_id),
                      "ls_updated_at": answer.updated_at}
            self.ledger.begin(answer.project, answer.annotation, answer.task, answer.image_id,
                              answer.reader, intent)
            self._carry_out(answer.project, answer.annotation, answer.image_id, intent, False)
            return CHANGED if replaces is not None else RECORDED

    def withdraw(self, ls_project: int, annotation: int) -> str:
        """Withdraw the record of a deleted annotation; returns :data:`WITHDRAWN` or
        :data:`UNCHANGED` (unknown to medactive, or withdrawn already)."""
        with self._lock:
            entry = self._settled(ls_project, annotation)
            if entry is None or entry.label_id is None:
                return UNCHANGED
            intent = {"answer": None, "reader": entry.reader, "replaces": entry.label_id,
                      "replaces_reader": entry.reader, "watermark": self._high,
                      "round_id": None, "ls_updated_at": entry.ls_updated_at}
            self.ledger.begin(ls_project, annotation, entry.task, entry.image_id, entry.reader,
                              intent)
            self._carry_out(ls_project, annotation, entry.image_id, intent, False)
            return WITHDRAWN

    def apply_all(self, answers: Iterable[LsAnswer], outcome: Outcome | None = None) -> Outcome:
        """:meth:`apply` each answer, in order; returns the counts."""
        outcome = outcome or Outcome()
        for answer in answers:
            outcome.add(self.apply(answer))
        return outcome

    def withdraw_missing(self, ls_project: int, present: set[int],
                         outcome: Outcome | None = None) -> Outcome:
        """Withdraw every recorded annotation of ``ls_project`` whose id is not in ``present``
        (a complete listing of the project's annotations showed it deleted)."""
        outcome = outcome or Outcome()
        for entry in self.ledger.entries(ls_project):
            if entry.annotation not in present and entry.label_id is not None:
                outcome.add(self.withdraw(ls_project, entry.annotation))
        return outcome

    def recover(self) -> int:
        """Complete every change a killed process left half-done; returns how many."""
        with self._lock:
            pending = self.ledger.pending()
            for entry in pending:
                self._settled(entry.ls_project, entry.annotation)
            return len(pending)

    # ------------------------------------------------------------------ the two-step change

    def _settled(self, ls_project: int, annotation: int) -> LedgerEntry | None:
        """The entry of ``annotation`` after completing any change left pending."""
        entry = self.ledger.get(ls_project, annotation)
        if entry is not None and entry.pending is not None:
            self._carry_out(ls_project, annotation, entry.image_id, entry.pending, True)
            entry = self.ledger.get(ls_project, annotation)
        return entry

    def _carry_out(self, ls_project: int, annotation: int, image_id: int,
                   intent: dict[str, Any], recovering: bool) -> None:
        """Withdraw the replaced record, record the new answer (or, ``recovering`` an intent a
        killed run left, adopt the record it may already have written), then clear the
        intent. Each step may be repeated safely."""
        if intent["replaces"] is not None:
            self.store.retract(int(intent["replaces"]), str(intent["replaces_reader"]))
        label_id = None
        if intent["answer"] is not None:
            label_id = self._written_since(image_id, intent) if recovering else None
            if label_id is None:
                label_id = self.store.record(image_id, intent["answer"], intent["reader"],
                                             intent["round_id"])
                self._high = max(self._high, label_id)
        self.ledger.finish(ls_project, annotation, intent["answer"], intent["reader"],
                           label_id, intent["ls_updated_at"])

    def _written_since(self, image_id: int, intent: dict[str, Any]) -> int | None:
        """The live record matching ``intent`` written after its watermark, if any."""
        answer = intent["answer"]
        kind = answer if answer in (SKIP, UNSURE) else "label"
        class_idx = None if kind != "label" else self.classes.index(answer)
        history = self.store.history()
        retracted = {r[4] for r in history if r[4] is not None}
        for rid, iid, rkind, cidx, _, _, who, _ in reversed(history):
            if rid <= intent["watermark"]:
                break
            if (iid, rkind, cidx, who) == (image_id, kind, class_idx, intent["reader"]) \
                    and rid not in retracted:
                return int(rid)
        return None

    def _round_of(self, image_id: int) -> int | None:
        """The latest round's id when ``image_id`` is queried in it, else None."""
        latest = self.store.latest_round()
        if latest is None:
            return None
        if self._round[0] != latest.id:
            self._round = (latest.id, {q.image_id for q in self.store.queue(latest.id)})
        return latest.id if image_id in self._round[1] else None
