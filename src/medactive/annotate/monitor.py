"""When to stop: what ``medactive project status`` and the page's "Progress" tab show.

* **labels per class** (training and validation separately), unsure answers, disagreements
  still unresolved;
* **per round**: its state (``open``, ``complete``, or ``closed`` by ``query --force`` with
  images unanswered, as recorded when it was closed), the readers' agreement
  (:func:`~medactive.annotate.consensus.agreement`), the macro AUC of that round's model on
  the validation sample, and the *stabilizing predictions* κ (Bloodgood & Vijay-Shanker, CoNLL
  2009): Cohen's κ between the predicted classes of this round's model and the previous
  round's on one fixed random sample of images (the stop set). When κ has stayed at or above
  ``stop_kappa`` for ``stop_rounds`` consecutive rounds, new labels have stopped changing the
  model's mind: **consider stopping**;
* **labels per class over rounds** (the Progress page's plot): the current decided labels of the
  images each round added, cumulated.

Every figure is computed from what the store holds (the rounds' recorded probabilities, the
current labels), so the validation AUC of *every* round is measured on the *same, current*
validation sample: the trend compares like with like. Each validation image is scored by a
model that never saw its label: the models older than its draw never had it, and a model that
trained on it (cross-fitting) recorded out-of-fold probabilities for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medactive.annotate.consensus import Agreement, Decision, agreement, cohen, decisions
from medactive.annotate.settings import ProjectSettings, load_settings
from medactive.metrics import macro_auc


@dataclass
class RoundSummary:
    """One round as the monitor sees it."""

    id: int
    strategy: str
    created_at: str
    queried: int
    answered: int
    purposes: dict[str, int]
    agreement: Agreement
    validation_auc: float | None  # this round's model on the current validation sample
    validation_n: int
    stability_kappa: float | None  # vs the previous round with a model, on the stop set
    health: dict[str, Any] | None  # the strategy's selection-health record, when it made one
    state: str = "open"  # open | complete | closed (replaced with images still open)
    open: int = 0  # images still needing an answer now (skipped ones included)
    skipped: int = 0  # of those, skipped by someone
    closed_open: int | None = None  # images still open when the next round replaced it
    replaced_by: int | None = None  # the round that replaced it

    def state_text(self) -> str:
        """``"open: 18 to answer"``, ``"complete"`` or ``"closed, 15 unanswered"``."""
        if self.state == "open":
            return f"open: {self.open} to answer" if self.open else "open"
        if self.state == "closed":
            return f"closed, {self.closed_open if self.closed_open is not None else self.open}" \
                   " unanswered"
        return "complete"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = dict(self.__dict__)
        out["agreement"] = self.agreement.as_dict()
        return out


@dataclass
class Progress:
    """Everything the stop decision needs."""

    classes: list[str]
    train_per_class: dict[str, int]
    validation_per_class: dict[str, int]
    unsure: int
    unresolved: int
    disagreements: int
    rounds: list[RoundSummary]
    overall_agreement: Agreement
    stop_kappa: float
    stop_rounds: int
    consider_stopping: bool
    stop_reason: str
    settings: dict[str, Any] = field(default_factory=dict)
    # cumulative decided labels per class after each round ({"round": r, "per_class": {...}};
    # round 0 = labels imported before the first round, listed only when there are some)
    labels_by_round: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = dict(self.__dict__)
        out["rounds"] = [r.as_dict() for r in self.rounds]
        out["overall_agreement"] = self.overall_agreement.as_dict()
        return out


def stability_kappa(previous: np.ndarray, current: np.ndarray, n_classes: int) -> float | None:
    """Cohen's κ between two models' ``(n,)`` predicted classes on the stop set.

    Identical predictions count as κ = 1 even when a single class is predicted throughout
    (there κ itself is undefined, but the predictions could not be more stable).
    """
    if previous.size == 0:
        return None
    if np.array_equal(previous, current):
        return 1.0
    return cohen(previous, current, list(range(n_classes)))


def stop_decision(kappas: list[float | None], threshold: float, window: int) -> tuple[bool, str]:
    """``(consider stopping, why)`` from the stabilizing-predictions κ of consecutive rounds."""
    recent = kappas[-window:]
    if len(recent) < window or any(k is None for k in recent):
        return False, (f"needs {window} consecutive rounds with a κ (have "
                       f"{sum(k is not None for k in kappas)})")
    if all(k >= threshold for k in recent):  # type: ignore[operator]
        return True, (f"predictions stable: κ ≥ {threshold} for the last {window} rounds — "
                      "consider stopping")
    return False, f"predictions still changing (last κ {recent[-1]:.3f} < {threshold})"


def round_states(store: Any, rounds: list[Any], reads_needed: int
                 ) -> list[tuple[str, Any, int | None, int | None]]:
    """Per round ``(state, progress now, open images when it was replaced, replaced by)``.

    The latest round is ``open`` while any image still needs an answer, else ``complete``. An
    earlier round was replaced by the next one: ``closed`` when that round recorded it still
    had open images (``query --force``; ``closed_round`` in the new round's parameters), else
    ``complete``. A project from before that record judges by the images still open now.
    """
    out: list[tuple[str, Any, int | None, int | None]] = []
    for k, rnd in enumerate(rounds):
        progress = store.round_progress(rnd.id, reads_needed)
        if k == len(rounds) - 1:
            out.append(("open" if progress.open else "complete", progress, None, None))
            continue
        after = rounds[k + 1]
        closed = after.params.get("closed_round")
        recorded = isinstance(closed, dict) and closed.get("round_id") == rnd.id
        left = int(closed["open"]) if recorded else progress.open
        out.append(("closed" if left else "complete", progress, left if left else None,
                    after.id))
    return out


def labels_by_round(store: Any, rounds: list[Any], decided: dict[int, Decision],
                    classes: list[str]) -> list[dict[str, Any]]:
    """Cumulative decided labels per class after each round: an image counts from the first
    round that queried it (with its current decision); labels of images no round queried
    (imported) count from round 0, listed only when there are some."""
    first: dict[int, int] = {}
    for rnd in rounds:
        for q in store.queue(rnd.id):
            first.setdefault(q.image_id, rnd.id)
    marks = [0] + [r.id for r in rounds]
    counts = {m: dict.fromkeys(classes, 0) for m in marks}
    for iid, d in decided.items():
        if d.label is None:
            continue
        since = first.get(iid, 0)
        for m in marks:
            if m >= since:
                counts[m][classes[d.label]] += 1
    shown = marks if any(counts[0].values()) or not rounds else marks[1:]
    return [{"round": m, "per_class": counts[m]} for m in shown]


def validation_labels(store: Any, decided: dict[int, Decision]) -> dict[int, int]:
    """``image_id -> class`` of the validation sample's decided labels."""
    return {i: d.label for i in store.validation_ids()
            if (d := decided.get(i)) is not None and d.label is not None}


def project_progress(store: Any, settings: ProjectSettings | None = None) -> Progress:
    """Compute the :class:`Progress` of the project in ``store``."""
    settings = settings or load_settings(store)
    classes = store.classes()
    decided = decisions(store)
    val = validation_labels(store, decided)
    train = dict.fromkeys(classes, 0)
    valc = dict.fromkeys(classes, 0)
    for iid, d in decided.items():
        if d.label is not None:
            (valc if iid in val else train)[classes[d.label]] += 1
    answers = store.reader_answers()
    stop_ids = store.stop_sample()
    rounds, previous = [], None
    all_rounds = store.rounds()
    states = round_states(store, all_rounds, settings.reads_per_image)
    for rnd, (state, prog, closed_open, replaced_by) in zip(all_rounds, states, strict=True):
        queue = store.queue(rnd.id)
        ids = {q.image_id for q in queue}
        probs = store.predictions(rnd.id, sorted(set(val) | set(stop_ids)))
        auc, kappa = None, None
        val_ids = [i for i in val if i in probs]
        y = np.array([val[i] for i in val_ids], np.int64)
        if len(set(y.tolist())) >= 2:
            auc = round(macro_auc(y, np.stack([probs[i] for i in val_ids])), 4)
        current = np.array([int(np.argmax(probs[i])) for i in stop_ids if i in probs])
        if current.size:
            if previous is not None and previous.size == current.size:
                kappa = stability_kappa(previous, current, len(classes))
            previous = current
        purposes: dict[str, int] = {}
        for q in queue:
            purposes[q.purpose] = purposes.get(q.purpose, 0) + 1
        rounds.append(RoundSummary(
            rnd.id, rnd.strategy, rnd.created_at, len(queue),
            sum(bool(q.answers) for q in queue), purposes,
            agreement([a for a in answers if a.image_id in ids], classes), auc, len(val_ids),
            kappa, rnd.params.get("health"), state, prog.open, prog.skipped, closed_open,
            replaced_by))
    kappas: list[float | None] = [r.stability_kappa for r in rounds
                                  if r.stability_kappa is not None]
    stop, why = stop_decision(kappas, settings.stop_kappa, settings.stop_rounds)
    return Progress(
        classes, train, valc,
        sum(d.answer == "unsure" for d in decided.values()),
        sum(d.status == "unresolved" for d in decided.values()),
        sum(d.disagreement for d in decided.values()),
        rounds, agreement(answers, classes), settings.stop_kappa, settings.stop_rounds, stop,
        why, settings.as_dict(), labels_by_round(store, all_rounds, decided, classes))
