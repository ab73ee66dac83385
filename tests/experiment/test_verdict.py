"""The defaults-against-random verdict: paired by repeat, every round, in summary.md."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from medactive.experiment.results import RunData
from medactive.experiment.verdict import default_verdict


def _records(table: dict[tuple[str, str], list[list[float]]]) -> list[dict]:
    # (initial, strategy) -> [repeat][round] AUC; 40 labels at round 0, +40 a round
    return [{"initial": init, "strategy": s, "repeat": rep, "round": rnd,
             "n_labeled": 40 * (rnd + 1), "auc": auc}
            for (init, s), reps in table.items() for rep, aucs in enumerate(reps)
            for rnd, auc in enumerate(aucs)]


def _run(records: list[dict]) -> RunData:
    return RunData(Path("."), records, [], {}, {}, None)


def test_paired_deltas_wins_and_holds() -> None:
    run = _run(_records({
        ("random", "random"): [[0.80, 0.85, 0.90], [0.82, 0.86, 0.88]],
        ("random", "good"): [[0.80, 0.87, 0.91], [0.82, 0.85, 0.90]],
        ("typi", "random"): [[0.84, 0.86, 0.90], [0.83, 0.87, 0.89]],
        ("typi", "good"): [[0.84, 0.86, 0.89], [0.83, 0.86, 0.88]],
    }))
    v = default_verdict(run, coldstart="typi", acquisition="good")
    cold, from_random, from_typi, pipeline = v.comparisons
    assert cold.what == "cold start" and cold.labels == [40]
    assert cold.deltas == pytest.approx([(0.04 + 0.01) / 2]) and cold.wins == [2] and cold.holds
    assert from_random.initial == "random" and from_random.labels == [80, 120]
    # round 1: +0.02 and -0.01 -> +0.005, one repeat of two at or above random
    assert from_random.deltas == pytest.approx([0.005, 0.015]) and from_random.wins == [1, 2]
    assert from_random.holds
    assert from_typi.deltas == pytest.approx([-0.005, -0.01]) and not from_typi.holds
    # the whole pipeline (typi, then good) against all-random, every round including round 0
    assert pipeline.what == "pipeline" and pipeline.labels == [40, 80, 120]
    assert pipeline.deltas == pytest.approx([0.025, 0.005, -0.005]) and not pipeline.holds
    assert not v.holds
    text = "\n".join(v.markdown())
    assert "does NOT beat random" in text and "@80: " in text


def test_nothing_to_compare_gives_no_section() -> None:
    run = _run(_records({("random", "entropy"): [[0.8, 0.9]]}))
    v = default_verdict(run, coldstart="typi", acquisition="good")
    assert v.comparisons == [] and v.markdown() == [] and not v.holds


def test_unfinished_rounds_are_not_compared() -> None:
    recs = _records({("random", "random"): [[0.8, 0.9], [0.8, 0.9]],
                     ("random", "good"): [[0.8, 0.95], [0.8, 0.95]]})
    recs = [r for r in recs if not (r["strategy"] == "good" and r["repeat"] == 1
                                    and r["round"] == 1)]  # interrupted mid-run
    # not every repeat reached round 1 yet: nothing is claimed
    assert default_verdict(_run(recs), coldstart="typi", acquisition="good").comparisons == []


def test_each_round_is_called_against_twice_its_standard_error() -> None:
    """yes / tie / NO from the paired differences, against a hand computation."""
    import math

    # [repeat][round]; the paired differences per round over the three repeats:
    # round 0: +0.010 each (no spread: yes); round 1: +0.03, -0.02, +0.00 (tie);
    # round 2: -0.010, -0.012, -0.008 (NO)
    rnd_random = [[0.80, 0.80, 0.80], [0.81, 0.81, 0.81], [0.82, 0.82, 0.82]]
    rnd_good = [[0.81, 0.83, 0.79], [0.82, 0.79, 0.798], [0.83, 0.82, 0.812]]
    run = _run(_records({("random", "random"): rnd_random, ("typi", "random"): rnd_random,
                         ("random", "good"): rnd_good, ("typi", "good"): rnd_good}))
    pipeline = default_verdict(run, coldstart="typi", acquisition="good").comparisons[-1]
    diffs = [[g - r for g, r in zip(gs, rs, strict=True)]
             for gs, rs in zip(rnd_good, rnd_random, strict=True)]
    for k in range(3):
        d = [rep[k] for rep in diffs]
        mean = sum(d) / 3
        se = math.sqrt(sum((x - mean) ** 2 for x in d) / 2) / math.sqrt(3)
        assert pipeline.ses[k] == pytest.approx(se, abs=1e-12)
    assert [pipeline.call(k) for k in range(3)] == ["yes", "tie", "NO"]
    assert "tie" in pipeline.line() and "NO)" in pipeline.line()
    assert pipeline.mark == "NO" and "below it beyond the noise at @120" in pipeline.line()
    # the same rounds without the last: above beyond the noise once, never below -> yes
    first_two = dataclasses.replace(
        pipeline, **{f: getattr(pipeline, f)[:2] for f in
                     ("labels", "deltas", "ses", "wins", "default_auc", "random_auc")})
    assert first_two.mark == "yes" and "beats random (beyond the noise at @40)" in \
        first_two.line()
    # a mean below random inside the noise is a tie, and the line says where
    level = dataclasses.replace(pipeline, labels=[40], deltas=[-0.001], ses=[0.01], wins=[1],
                                default_auc=[0.8], random_auc=[0.801])
    assert level.mark == "tie" and "below it at @40, within the noise" in level.line()
