"""Decisions, agreement and the stopping signal against independent slow references (written
out here from the textbook formulas; nothing imported from the fast path but the function under
test)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medactive.annotate.consensus import agreement, cohen, decide, fleiss
from medactive.annotate.monitor import stability_kappa, stop_decision
from medactive.annotate.schema import Answer
from medactive.rounds.planning import (
    interleave,
    second_read_candidates,
    validation_draw_size,
)

CLASSES = ["a", "b", "c"]


def _ans(image: int, reader: str, answer: str) -> Answer:
    kind = "unsure" if answer == "unsure" else "label"
    idx = None if answer == "unsure" else CLASSES.index(answer)
    return Answer(0, image, f"img{image}", kind, idx, reader, "t")


def slow_cohen(a: list[int], b: list[int], n: int) -> float:
    """Cohen (1960): (p_o - p_e) / (1 - p_e)."""
    m = len(a)
    po = sum(x == y for x, y in zip(a, b, strict=True)) / m
    pe = sum((a.count(k) / m) * (b.count(k) / m) for k in range(n))
    return (po - pe) / (1 - pe)


def slow_fleiss(ratings: list[list[int]], n: int) -> float:
    """Fleiss (1971): mean per-item agreement against chance from the category shares."""
    items, raters = len(ratings), len(ratings[0])
    counts = [[row.count(k) for k in range(n)] for row in ratings]
    p_i = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in counts]
    p_bar = sum(p_i) / items
    p_j = [sum(row[k] for row in counts) / (items * raters) for k in range(n)]
    pe = sum(p * p for p in p_j)
    return (p_bar - pe) / (1 - pe)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), min_size=3, max_size=40))
def test_cohen_matches_formula(pairs) -> None:
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    got = cohen(np.array(a), np.array(b), [0, 1, 2])
    m = len(a)
    pe = sum((a.count(k) / m) * (b.count(k) / m) for k in range(3))
    if pe == 1:
        assert got is None  # undefined, never a made-up number
    else:
        assert got == pytest.approx(slow_cohen(a, b, 3), abs=1e-4)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=2, max_size=30))
def test_fleiss_matches_formula(rows) -> None:
    got = fleiss(np.array(rows), 3)
    flat = [x for r in rows for x in r]
    pe = sum((flat.count(k) / len(flat)) ** 2 for k in range(3))
    if pe == 1:
        assert got is None
    else:
        assert got == pytest.approx(slow_fleiss(rows, 3), abs=1e-4)


def test_decisions_in_order() -> None:
    assert decide(1, [_ans(1, "x", "a")], None, CLASSES).status == "single"
    d = decide(1, [_ans(1, "x", "a"), _ans(1, "y", "a")], None, CLASSES)
    assert (d.status, d.label, d.disagreement) == ("unanimous", 0, False)
    d = decide(1, [_ans(1, "x", "a"), _ans(1, "y", "b")], None, CLASSES)
    assert (d.status, d.label, d.disagreement) == ("unresolved", None, True)
    d = decide(1, [_ans(1, "x", "a"), _ans(1, "y", "b"), _ans(1, "z", "b")], None, CLASSES)
    assert (d.status, d.label) == ("majority", 1)
    d = decide(1, [_ans(1, "x", "a"), _ans(1, "y", "unsure")], None, CLASSES)
    assert d.status == "unresolved"  # an unsure reader is no majority for the other
    d = decide(1, [_ans(1, "x", "a"), _ans(1, "y", "b")], _ans(1, "boss", "c"), CLASSES)
    assert (d.status, d.label, d.answers) == ("adjudicated", 2, {"x": "a", "y": "b"})
    d = decide(1, [_ans(1, "x", "unsure")], None, CLASSES)
    assert (d.label, d.answer) == (None, "unsure")


def test_agreement_two_and_three_readers() -> None:
    truth = ["a", "b", "c", "a", "b", "c", "a", "a"]
    noisy = ["a", "b", "c", "b", "b", "a", "a", "a"]
    two = [_ans(i, "x", t) for i, t in enumerate(truth)] + \
          [_ans(i, "y", n) for i, n in enumerate(noisy)] + [_ans(99, "y", "unsure")]
    ag = agreement(two, CLASSES)
    idx = [CLASSES.index(t) for t in truth], [CLASSES.index(n) for n in noisy]
    assert ag.method == "cohen" and ag.n_items == 8
    assert ag.kappa == pytest.approx(slow_cohen(*idx, 3), abs=1e-4)
    binary = [int(v == 0) for v in idx[0]], [int(v == 0) for v in idx[1]]
    assert ag.per_class["a"] == pytest.approx(slow_cohen(*binary, 2), abs=1e-4)
    three = two + [_ans(i, "z", t) for i, t in enumerate(truth)]
    ag3 = agreement(three, CLASSES)
    rows = [[CLASSES.index(x) for x in r] for r in zip(truth, noisy, truth, strict=True)]
    assert ag3.method == "fleiss" and ag3.kappa == pytest.approx(slow_fleiss(rows, 3), abs=1e-4)
    assert agreement(two[:8], CLASSES).method is None  # one reader: nothing to compare


def test_stability_and_stop_rule() -> None:
    a = np.array([0, 1, 2, 0, 1, 2])
    assert stability_kappa(a, a, 3) == 1.0
    assert stability_kappa(np.zeros(5, int), np.zeros(5, int), 3) == 1.0  # undefined κ, stable
    b = a.copy()
    b[0] = 1
    assert stability_kappa(a, b, 3) == pytest.approx(slow_cohen(a.tolist(), b.tolist(), 3),
                                                     abs=1e-4)
    assert stop_decision([0.995, 0.999, 1.0], 0.99, 3)[0]
    assert not stop_decision([0.995, 0.98, 1.0], 0.99, 3)[0]
    assert not stop_decision([1.0, 1.0], 0.99, 3)[0]  # not yet three rounds


def test_budget_split_helpers() -> None:
    assert validation_draw_size(20, 0.2, np.array([5, 5, 5])) == 4
    assert validation_draw_size(20, 0.2, np.array([0, 0, 0, 0])) == 8  # 2 per class wanted
    assert validation_draw_size(20, 0.2, np.zeros(20)) == 10  # never more than half
    assert validation_draw_size(20, 0.0, np.zeros(3)) == 0
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.1, 0.1, 0.8]])
    order, score = second_read_candidates(probs, np.array([1, 1, 0, 0]))
    assert order.tolist() == [0, 3] and score == pytest.approx([0.8, 0.7])
    rng = np.random.default_rng(0)
    mixed = interleave([1, 2, 3, 4], [9, 8], rng)
    assert sorted(mixed) == [1, 2, 3, 4, 8, 9]
    assert [x for x in mixed if x < 8] == [1, 2, 3, 4] and [x for x in mixed if x >= 8] == [9, 8]
