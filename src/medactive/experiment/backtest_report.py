"""The back-test's report: the learning curve per expert label spent, the verdict against random,
and how far the validation AUC a project shows was from the truth.

:func:`backtest_verdict` reuses the demo's paired comparison
(:func:`medactive.experiment.verdict.compare_paired`); :func:`write_backtest_report` writes
``summary.md`` and ``learning_curve.png`` beside ``backtest.jsonl``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medactive.experiment.verdict import Comparison, Verdict, compare_paired

RESULTS = "backtest.jsonl"
PLAN = "backtest.json"
SUMMARY = "summary.md"
PLOT = "learning_curve.png"
YARDSTICK = "random"


def _by_pipeline(records: list[dict[str, Any]], name: str) -> dict[tuple[int, int], tuple]:
    return {(r["repeat"], r["round"]): (r["labels_spent"], r["auc"]) for r in records
            if r["pipeline"] == name}


def backtest_verdict(records: list[dict[str, Any]], pipelines: list[dict[str, Any]]) -> Verdict:
    """Every pipeline against the all-random one, round by round, paired by repeat.

    Args:
        records: the back-test's records.
        pipelines: the plan's pipelines (``name``, ``coldstart``, ``acquisition`` each).

    Returns:
        One ``"pipeline"`` :class:`~medactive.experiment.verdict.Comparison` per pipeline other
        than random (none when random was not run).
    """
    out = Verdict()
    theirs = _by_pipeline(records, YARDSTICK)
    if not theirs:
        return out
    rounds = sorted({rnd for _, rnd in theirs})
    for p in pipelines:
        if p["name"] == YARDSTICK:
            continue
        c = compare_paired("pipeline", p["acquisition"], p["coldstart"],
                           _by_pipeline(records, p["name"]), theirs, rounds)
        if c is not None:
            out.comparisons.append(c)
    return out


def _mean_sd(values: list[float]) -> str:
    a = np.asarray(values, np.float64)
    return f"{a.mean():.4f} ± {a.std(ddof=1):.4f}" if a.size > 1 else f"{a.mean():.4f}"


def _round_table(records: list[dict[str, Any]], names: list[str], verdict: Verdict
                 ) -> list[str]:
    rounds = sorted({r["round"] for r in records})
    spent = {r["round"]: r["labels_spent"] for r in records}
    head = "| round | labels spent | " + " | ".join(names) + " |"
    lines = [head, "|" + "---|" * (len(names) + 2)]
    for rnd in rounds:
        cells = []
        for name in names:
            aucs = [r["auc"] for r in records if r["pipeline"] == name and r["round"] == rnd]
            cells.append(_mean_sd(aucs) if aucs else "-")
        lines.append(f"| {rnd} | {spent[rnd]} | " + " | ".join(cells) + " |")
    lines.append("")
    for c in verdict.comparisons:
        lines += _yes_no_table(c)
    return lines


def _yes_no_table(c: Comparison) -> list[str]:
    title = f"`{c.initial}` start, then `{c.default}`"
    lines = [f"Does {title} beat random here, round by round? (yes: the paired difference is "
             "above twice its standard error; NO: below minus twice; tie: the repeats cannot "
             "tell it from zero)", "",
             "| labels spent | it | random | difference (paired) ± 2 SE | repeats at or above "
             "random | beats random? |", "|---|---|---|---|---|---|"]
    for k, (n, a, r, d, w) in enumerate(zip(c.labels, c.default_auc, c.random_auc, c.deltas,
                                            c.wins, strict=True)):
        call = c.call(k)
        se = c.ses[k] if k < len(c.ses) else float("nan")
        lines.append(f"| {n} | {a:.4f} | {r:.4f} | {d:+.4f} ± {2 * se:.4f} | {w}/{c.repeats} | "
                     f"{'**NO**' if call == 'NO' else call} |")
    return [*lines, ""]


def _trust_section(records: list[dict[str, Any]], names: list[str]) -> list[str]:
    """How far the validation AUC (what the project page shows) was from the test AUC."""
    lines = ["## Validation AUC against the truth", "",
             "What a project would show as its validation AUC, minus the test AUC of the same "
             "model (mean and mean absolute difference over repeats, rounds with an estimate).",
             "", "| pipeline | rounds with an estimate | mean difference | mean absolute difference |",
             "|---|---|---|---|"]
    for name in names:
        diffs = [r["validation_auc"] - r["auc"] for r in records
                 if r["pipeline"] == name and r.get("validation_auc") is not None]
        if diffs:
            lines.append(f"| {name} | {len(diffs)} | {np.mean(diffs):+.4f} | "
                         f"{np.mean(np.abs(diffs)):.4f} |")
        else:
            lines.append(f"| {name} | 0 | - | - |")
    return [*lines, ""]


def plot_learning_curve(records: list[dict[str, Any]], names: list[str], path: Path) -> Path:
    """Mean ± std test AUC against expert labels spent, one line per pipeline."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name in names:
        mine = [r for r in records if r["pipeline"] == name]
        rounds = sorted({r["round"] for r in mine})
        x = [next(r["labels_spent"] for r in mine if r["round"] == rnd) for rnd in rounds]
        aucs = [np.array([r["auc"] for r in mine if r["round"] == rnd]) for rnd in rounds]
        mean = np.array([a.mean() for a in aucs])
        sd = np.array([a.std(ddof=1) if a.size > 1 else 0.0 for a in aucs])
        ax.plot(x, mean, marker="o", label=name)
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    ax.set_xlabel("expert labels spent (validation draws included)")
    ax.set_ylabel("test macro AUC")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def summarize_backtest(records: list[dict[str, Any]], plan: dict[str, Any],
                       info: dict[str, Any]) -> tuple[str, Verdict]:
    """``summary.md``'s text and the verdict."""
    names = [p["name"] for p in plan["pipelines"]]
    verdict = backtest_verdict(records, plan["pipelines"])
    repeats = len({r["repeat"] for r in records})
    lines = [f"# Back-test: {info.get('name', 'data')}", "",
             f"The product's own loop (`medactive project query`: validation draw, classifier, "
             f"strategy) replayed with an oracle on {info.get('pool', '?')} pool images with "
             f"ground truth, scored on {info.get('test', '?')} held-out test images. Encoder: "
             f"{info.get('encoder', '?')}. Budgets per round: "
             f"{', '.join(str(b) for b in plan['budgets'])}; validation: "
             f"{plan['validation']['mode']} ({plan['validation']['share']:.0%} of each round); "
             f"{repeats} repeats, paired by repeat.", "",
             "## Test AUC per expert label spent", "",
             "Mean ± std over repeats of the model a project trains after each round.", "",
             *_round_table(records, names, verdict), *_trust_section(records, names),
             f"![learning curve]({PLOT})", ""]
    return "\n".join(lines), verdict


def write_backtest_report(out_dir: Path, info: dict[str, Any]) -> tuple[Path, Verdict]:
    """Write ``summary.md`` and the plot from ``backtest.jsonl`` and ``backtest.json``."""
    records = [json.loads(line) for line in (out_dir / RESULTS).read_text().splitlines()
               if line.strip()]
    plan = json.loads((out_dir / PLAN).read_text())
    text, verdict = summarize_backtest(records, plan, info)
    plot_learning_curve(records, [p["name"] for p in plan["pipelines"]], out_dir / PLOT)
    (out_dir / SUMMARY).write_text(text)
    return out_dir / SUMMARY, verdict
