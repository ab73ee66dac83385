"""Cross-setting summary of the cold-start evidence (docs/coldstart.md, "Which default and why").

Reads the ``draws.csv`` that ``coldstart_evidence.py`` wrote for each setting and prints, per
variant, the mean test-AUC difference to random in every (setting, budget) cell, how many cells
it wins against random and against ``kmeans-centroid``, and its mean rank among the variants run
in every setting (1 = best).

Usage::

    PYTHONPATH=src python benchmarks/coldstart_summary.py --root docs/results/coldstart \\
        --out docs/results/coldstart/summary.md
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from coldstart_settings import SETTINGS


def load(root: Path) -> dict[str, dict[tuple[str, int], np.ndarray]]:
    """``{setting: {(variant, budget): AUCs over draws}}`` for every setting with results."""
    out: dict[str, dict[tuple[str, int], np.ndarray]] = {}
    for setting in SETTINGS:
        path = root / setting / "draws.csv"
        if not path.is_file():
            continue
        cells: dict[tuple[str, int], list[float]] = defaultdict(list)
        with path.open(newline="") as f:
            for r in csv.DictReader(f):
                cells[(r["variant"], int(r["budget"]))].append(float(r["auc"]))
        out[setting] = {k: np.asarray(v) for k, v in cells.items()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("docs/results/coldstart"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    data = load(args.root)
    settings = list(data)
    budgets = sorted({b for s in settings for (_, b) in data[s]})
    common = [v for v in dict.fromkeys(v for (v, _) in data[settings[0]])
              if all((v, b) in data[s] for s in settings for b in budgets)]
    cells = [(s, b) for s in settings for b in budgets]
    ranks: dict[str, list[float]] = defaultdict(list)
    for s, b in cells:
        means = {v: data[s][(v, b)].mean() for v in common}
        order = sorted(means, key=lambda v: -means[v])
        for r, v in enumerate(order):
            ranks[v].append(r + 1)
    head = ("| variant | " + " | ".join(f"{s} B={b}" for s, b in cells)
            + " | wins vs random | wins vs kmeans-centroid | mean rank |")
    lines = [head, "|---|" + "---|" * (len(cells) + 3)]
    rows = []
    for v in common:
        deltas = [data[s][(v, b)].mean() - data[s][("random", b)].mean() for s, b in cells]
        vs_km = [data[s][(v, b)].mean() - data[s][("kmeans-centroid", b)].mean() for s, b in cells]
        rows.append((np.mean(ranks[v]), v, deltas, vs_km))
    for mean_rank, v, deltas, vs_km in sorted(rows):
        wins = sum(d > 0 for d in deltas)
        km = "—" if v == "kmeans-centroid" else f"{sum(d > 0 for d in vs_km)}/{len(cells)}"
        rnd = "—" if v == "random" else f"{wins}/{len(cells)}"
        lines.append(f"| {v} | " + " | ".join(f"{d:+.3f}" for d in deltas)
                     + f" | {rnd} | {km} | {mean_rank:.1f} |")
    text = ("Mean test-AUC difference to random per (setting, budget); "
            f"{len(common)} variants run in all of {', '.join(settings)}.\n\n"
            + "\n".join(lines) + "\n")
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
