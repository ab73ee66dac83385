"""Do medactive's defaults pick better images than random in this run? A plain answer.

The demo (and any run that holds ``random`` beside a default) ends with this check, so a user sees
at once whether the product earned its keep on their data:

* the default cold start against a random start of the same size: test AUC of the model trained
  on the initial query alone (round 0), paired by repeat;
* the default acquisition against random acquisition from the same initial query: paired by
  repeat (same initial set, same round-0 model), at every round after the initial one;
* the whole default pipeline (default cold start, then default acquisition) against the
  all-random one (random start, random acquisition), paired by repeat, at every round: what a
  user gets from medactive against labelling at random.

"Holds" means the mean over repeats is at or above random's — at round 0 for the cold start, at
*every* round for the acquisition and the pipeline. With few repeats the standard error of a
paired difference is a few thousandths of AUC, so the counts of repeats above random are printed
beside the means, and each round also gets a word that weighs the difference against its noise
(:meth:`Comparison.call`): ``yes`` when the paired mean difference is above twice its standard
error (about a 95 % interval that excludes 0), ``NO`` when it is below minus twice that, ``tie``
in between — a difference the repeats cannot tell from zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.experiment.results import RunData

RANDOM = "random"


@dataclass
class Comparison:
    """One default against random.

    Attributes:
        what: ``"cold start"``, ``"acquisition"`` or ``"pipeline"``.
        default: the default (acquisition) strategy's name.
        initial: the initial query both arms started from (acquisition), the default cold
            start (pipeline), or ``None``.
        labels: ``(R,)`` labelled-set sizes compared (one per round).
        deltas: ``(R,)`` mean paired AUC difference, default − random, per round.
        wins: ``(R,)`` repeats in which the default was at or above random, per round.
        default_auc, random_auc: ``(R,)`` mean test AUC of each arm per round.
        repeats: number of paired repeats.
        ses: ``(R,)`` standard error of the paired difference per round (``nan`` with one
            repeat).
    """

    what: str
    default: str
    initial: str | None
    labels: list[int]
    deltas: list[float]
    wins: list[int]
    default_auc: list[float]
    random_auc: list[float]
    repeats: int
    ses: list[float] = field(default_factory=list)

    def call(self, k: int) -> str:
        """``"yes"``, ``"tie"`` or ``"NO"`` for round ``k``: the paired mean difference against
        twice its standard error (a tie when it cannot be told from zero, or with one repeat)."""
        d = self.deltas[k]
        se = self.ses[k] if k < len(self.ses) else float("nan")
        if not np.isfinite(se):
            return "tie"
        if d > 2 * se:
            return "yes"
        return "NO" if d < -2 * se else "tie"

    @property
    def holds(self) -> bool:
        """The default is at or above random (mean over repeats) at every compared round."""
        return all(d >= 0 for d in self.deltas)

    @property
    def mark(self) -> str:
        """One word for the whole comparison: ``"NO"`` when some round is below random beyond
        the noise, ``"yes"`` when every round is at or above it in mean and some round is above
        it beyond the noise, else ``"tie"``."""
        calls = [self.call(k) for k in range(len(self.deltas))]
        if "NO" in calls:
            return "NO"
        return "yes" if self.holds and "yes" in calls else "tie"

    def _where(self, which: str) -> str:
        return ", ".join(f"@{n}" for k, n in enumerate(self.labels) if self.call(k) == which)

    def _summary(self) -> str:
        below_mean = ", ".join(f"@{n}" for n, d in zip(self.labels, self.deltas, strict=True)
                               if d < 0)
        if self.mark == "NO":
            return f"does NOT beat random (below it beyond the noise at {self._where('NO')})"
        if not self.holds:
            return (f"does NOT beat random everywhere (below it at {below_mean}, within the "
                    "noise)")
        if self.mark == "yes":
            return f"beats random (beyond the noise at {self._where('yes')})"
        return "is at or above random, within the noise"

    def line(self) -> str:
        """One line for a terminal or a Markdown list."""
        start = "" if self.initial is None else f" from a {self.initial} start"
        if self.what == "pipeline":
            start = f" (`{self.initial}` start, then `{self.default}`) vs all-random"
            return f"pipeline{start} {self._summary()}: {self._cells()}"
        return f"{self.what} `{self.default}`{start} {self._summary()}: {self._cells()}"

    def _cells(self) -> str:
        return ", ".join(
            f"@{n}: {a:.4f} vs {r:.4f} ({d:+.4f}, {w}/{self.repeats}, {self.call(k)})"
            for k, (n, a, r, d, w) in enumerate(zip(self.labels, self.default_auc,
                                                    self.random_auc, self.deltas, self.wins,
                                                    strict=True)))


@dataclass
class Verdict:
    """Every comparison a run allows (empty when it holds no default beside random)."""

    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        """Every comparison holds (and there is at least one)."""
        return bool(self.comparisons) and all(c.holds for c in self.comparisons)

    def markdown(self) -> list[str]:
        """A ``summary.md`` section (no lines when there is nothing to compare)."""
        if not self.comparisons:
            return []
        marks = [c.mark for c in self.comparisons]
        head = ("**At least one default is below random beyond the noise in this run** (see "
                "below)." if "NO" in marks else
                "Every default is at or above random in this run." if self.holds else
                "**At least one default is below random in some round** (within the noise; see "
                "below).")
        return ["## Defaults against random", "",
                "Mean test AUC of the default vs random, paired by repeat (same seed, same "
                "initial set), the difference, and the repeats where the default was at or "
                "above random. Cold start: the model on the initial query alone; acquisition: "
                "every round after it; pipeline: the default start and acquisition against a "
                "random start and random acquisition, every round.", "", head, "",
                *[f"- {c.line()}" for c in self.comparisons], ""]


def _auc_by(records: list[dict], initial: str, strategy: str) -> dict[tuple[int, int], tuple]:
    # (repeat, round) -> (n_labeled, auc)
    return {(r["repeat"], r["round"]): (r["n_labeled"], r["auc"]) for r in records
            if r["initial"] == initial and r["strategy"] == strategy}


def compare_paired(what: str, default: str, initial: str | None, ours: dict, theirs: dict,
                   rounds: list[int]) -> Comparison | None:
    """``ours`` against ``theirs`` (each ``{(repeat, round): (labels, auc)}``) at ``rounds``,
    paired by repeat; rounds not finished in every common repeat are left out; None when
    nothing can be compared."""
    labels, deltas, wins, mine, base, ses = [], [], [], [], [], []
    repeats = sorted({rep for rep, _ in ours} & {rep for rep, _ in theirs})
    if not repeats:
        return None
    for rnd in rounds:
        pairs = [(ours[rep, rnd], theirs[rep, rnd]) for rep in repeats
                 if (rep, rnd) in ours and (rep, rnd) in theirs]
        if len(pairs) < len(repeats):
            continue  # a round not finished in every repeat is not compared
        a = np.array([p[0][1] for p in pairs])
        b = np.array([p[1][1] for p in pairs])
        labels.append(int(pairs[0][0][0]))
        deltas.append(float(np.mean(a - b)))
        ses.append(float(np.std(a - b, ddof=1) / np.sqrt(a.size)) if a.size > 1 else float("nan"))
        wins.append(int(np.sum(a >= b)))
        mine.append(float(a.mean()))
        base.append(float(b.mean()))
    if not labels:
        return None
    return Comparison(what, default, initial, labels, deltas, wins, mine, base, len(repeats), ses)


def default_verdict(run: RunData, coldstart: str = DEFAULT_COLDSTART,
                    acquisition: str = DEFAULT_ACQUISITION) -> Verdict:
    """Compare the defaults with random wherever the run holds both.

    Args:
        run: a finished (or partly finished) run.
        coldstart: the cold-start strategy to judge (default: the product's default).
        acquisition: the acquisition strategy to judge (default: the product's default).

    Returns:
        A :class:`Verdict`; the cold-start comparison uses any acquisition arm's round 0 (it is
        the same model in every arm of a repeat), the acquisition comparisons one per initial
        query the run holds, and the pipeline comparison the default cold start followed by the
        default acquisition against random followed by random.
    """
    records = run.records
    initials = list(dict.fromkeys(r["initial"] for r in records))
    strategies = list(dict.fromkeys(r["strategy"] for r in records))
    out = Verdict()
    if coldstart in initials and RANDOM in initials and strategies:
        arm = strategies[0]  # round 0 is the initial query's model, whatever comes after
        c = compare_paired("cold start", coldstart, None, _auc_by(records, coldstart, arm),
                           _auc_by(records, RANDOM, arm), [0])
        if c is not None:
            out.comparisons.append(c)
    if acquisition in strategies and RANDOM in strategies:
        for init in initials:
            ours = _auc_by(records, init, acquisition)
            rounds = sorted({rnd for _, rnd in ours if rnd > 0})
            c = compare_paired("acquisition", acquisition, init, ours,
                               _auc_by(records, init, RANDOM), rounds)
            if c is not None:
                out.comparisons.append(c)
    if {coldstart, RANDOM} <= set(initials) and {acquisition, RANDOM} <= set(strategies):
        ours = _auc_by(records, coldstart, acquisition)
        rounds = sorted({rnd for _, rnd in ours})
        c = compare_paired("pipeline", acquisition, coldstart, ours,
                           _auc_by(records, RANDOM, RANDOM), rounds)
        if c is not None:
            out.comparisons.append(c)
    return out
