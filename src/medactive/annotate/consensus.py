"""Several readers: the label an image is trained with, and how much the readers agree.

**Decision per image** (:func:`decide`), in this order:

1. an adjudication (the latest one) decides: ``adjudicated``;
2. otherwise the readers' current answers: one reader -> ``single``; all the same ->
   ``unanimous``; one class given by more than half the readers -> ``majority``;
3. otherwise ``unresolved``: the image is left out of training until someone adjudicates it.

An image whose decision is ``unsure`` (everyone, or the adjudicator, said unsure) is neither
trained on nor queried again.

**Agreement** (:func:`agreement`): Cohen's κ for two readers (scikit-learn's
``cohen_kappa_score``), Fleiss' κ for three or more (statsmodels' ``fleiss_kappa``), over the
images each compared reader gave a *class* (an ``unsure`` is no rating). Per class, the same
statistic on "this class or not". κ is undefined when the readers used a single category
throughout (the expected agreement is 1): reported as None, never as a number that means nothing.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from medactive.annotate.schema import Answer

STATUSES = ("single", "unanimous", "majority", "adjudicated", "unresolved")


@dataclass(frozen=True)
class Decision:
    """What an image counts as.

    Attributes:
        image_id: store id.
        label: the class index trained with, or None (unsure, or unresolved).
        answer: the decided answer: a class name, ``"unsure"``, or None when unresolved.
        status: one of :data:`STATUSES` (how it was decided).
        answers: ``reader -> answer`` (class name or ``"unsure"``) for every reader.
    """

    image_id: int
    label: int | None
    answer: str | None
    status: str
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def disagreement(self) -> bool:
        """Readers gave different answers (whether or not a majority or adjudication decides)."""
        return len(set(self.answers.values())) > 1


def _name(answer: Answer, classes: list[str]) -> str:
    return classes[answer.class_idx] if answer.kind == "label" else "unsure"


def decide(image_id: int, answers: list[Answer], adjudication: Answer | None,
           classes: list[str]) -> Decision:
    """The decision for one image from its readers' current answers and its latest
    adjudication (module docstring)."""
    by_reader = {a.annotator: _name(a, classes) for a in answers}
    if adjudication is not None:
        name = _name(adjudication, classes)
        return Decision(image_id, adjudication.class_idx, name, "adjudicated", by_reader)
    counts = Counter(by_reader.values())
    if not counts:
        return Decision(image_id, None, None, "unresolved", by_reader)
    top, n_top = counts.most_common(1)[0]
    if len(by_reader) == 1:
        status = "single"
    elif len(counts) == 1:
        status = "unanimous"
    elif n_top * 2 > len(by_reader):
        status = "majority"
    else:
        return Decision(image_id, None, None, "unresolved", by_reader)
    label = None if top == "unsure" else classes.index(top)
    return Decision(image_id, label, top, status, by_reader)


def decisions(store: Any) -> dict[int, Decision]:
    """``image_id -> Decision`` for every image with at least one reader's answer or an
    adjudication."""
    classes = store.classes()
    grouped: dict[int, list[Answer]] = {}
    for a in store.reader_answers():
        grouped.setdefault(a.image_id, []).append(a)
    adjudicated = store.adjudications()
    return {iid: decide(iid, grouped.get(iid, []), adjudicated.get(iid), classes)
            for iid in sorted(set(grouped) | set(adjudicated))}


@dataclass(frozen=True)
class Agreement:
    """Inter-reader agreement over a set of images.

    Attributes:
        method: ``"cohen"`` (two readers), ``"fleiss"`` (three or more) or None (fewer than two
            readers rated the same images).
        kappa: overall κ, or None when undefined or not computable.
        n_items: images rated by every compared reader.
        readers: the compared readers.
        per_class: ``class name -> κ`` of "this class or not" (None where undefined).
    """

    method: str | None
    kappa: float | None
    n_items: int
    readers: list[str]
    per_class: dict[str, float | None]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"method": self.method, "kappa": self.kappa, "n_items": self.n_items,
                "readers": self.readers, "per_class": self.per_class}


def _defined(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def cohen(a: np.ndarray, b: np.ndarray, labels: list[int]) -> float | None:
    """Cohen's κ of two readers' ``(n,)`` class indices (scikit-learn); None when undefined."""
    from sklearn.metrics import cohen_kappa_score

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _defined(cohen_kappa_score(a, b, labels=labels))


def fleiss(ratings: np.ndarray, n_categories: int) -> float | None:
    """Fleiss' κ of ``(n_items, n_readers)`` class indices (statsmodels); None when undefined."""
    from statsmodels.stats.inter_rater import fleiss_kappa

    table = np.stack([np.bincount(row, minlength=n_categories) for row in ratings])
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        return _defined(fleiss_kappa(table, method="fleiss"))


def agreement(answers: list[Answer], classes: list[str]) -> Agreement:
    """Agreement of the readers of ``answers`` (one current answer per image and reader).

    Two readers: Cohen's κ over the images both gave a class. Three or more: Fleiss' κ over the
    images the largest group of readers all gave a class (Fleiss' κ needs the same number of
    ratings per image); with fewer than two such images, the best-covered pair is compared with
    Cohen's κ instead.
    """
    rated: dict[int, dict[str, int]] = {}
    for a in answers:
        if a.kind == "label":
            rated.setdefault(a.image_id, {})[a.annotator] = int(a.class_idx)
    readers = sorted({r for per in rated.values() for r in per})
    labels = list(range(len(classes)))
    empty = Agreement(None, None, 0, readers, dict.fromkeys(classes))
    if len(readers) < 2:
        return empty
    if len(readers) >= 3:
        full = [per for per in rated.values() if len(per) == len(readers)]
        if len(full) >= 2:
            matrix = np.array([[per[r] for r in readers] for per in full])
            per_class = {name: fleiss((matrix == c).astype(np.int64), 2)
                         for c, name in enumerate(classes)}
            return Agreement("fleiss", fleiss(matrix, len(classes)), len(full), readers,
                             per_class)
    # two readers (or the pair of readers who share the most images)
    pair = max(combinations(readers, 2),
               key=lambda p: sum(p[0] in per and p[1] in per for per in rated.values()))
    both = [per for per in rated.values() if pair[0] in per and pair[1] in per]
    if len(both) < 2:
        return Agreement("cohen", None, len(both), list(pair), dict.fromkeys(classes))
    a = np.array([per[pair[0]] for per in both])
    b = np.array([per[pair[1]] for per in both])
    per_class = {name: cohen(a == c, b == c, [False, True]) for c, name in enumerate(classes)}
    return Agreement("cohen", cohen(a, b, labels), len(both), list(pair), per_class)
