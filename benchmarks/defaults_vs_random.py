"""The recommended pipeline against all-random, per round (docs/results/item9/README.md).

Compares two (initial, acquisition) cells of the same repeats: by default the product's
defaults, a TypiClust start then ``cluster-margin``, against a random start then random
acquisition. Pairs are formed by repeat (same base seed, so the same random start and the same
round seeds); round 0 is the cold-start comparison alone. Also prints class coverage and the
rarest class's count at round 0.

    python benchmarks/defaults_vs_random.py runs/item9-imagenet-blood
    python benchmarks/defaults_vs_random.py runs/item9-finetune-random2-blood \
        runs/item9-finetune-typiclust-blood

Several folders are merged (they must share the dataset, schedule and encoder to be comparable).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def cells(folders: list[Path]) -> dict[tuple[str, str], dict[int, list[dict]]]:
    """(initial, strategy) -> repeat -> records sorted by round."""
    out: dict[tuple[str, str], dict[int, list[dict]]] = {}
    for folder in folders:
        for line in (folder / "results.jsonl").read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                out.setdefault((r["initial"], r["strategy"]), {}).setdefault(r["repeat"], []).append(r)
    for reps in out.values():
        for recs in reps.values():
            recs.sort(key=lambda r: r["round"])
    return out


def compare(data: dict, cand: tuple[str, str], base: tuple[str, str], metric: str) -> str:
    """A markdown table: per round, both means and the paired difference (mean ± s.e., wins)."""
    reps = sorted(set(data[cand]) & set(data[base]))
    a = np.array([[r[metric] for r in data[cand][k]] for k in reps])
    b = np.array([[r[metric] for r in data[base][k]] for k in reps])
    sizes = [r["n_labeled"] for r in data[base][reps[0]]]
    diff = a - b
    se = diff.std(0, ddof=1) / np.sqrt(len(reps)) if len(reps) > 1 else np.zeros(diff.shape[1])
    lines = [f"| labelled | {' → '.join(cand)} | {' → '.join(base)} | paired Δ (± s.e.) | "
             f"repeats ahead |", "|---|---|---|---|---|"]
    for j, n in enumerate(sizes):
        lines.append(f"| {n} | {a[:, j].mean():.4f} | {b[:, j].mean():.4f} | "
                     f"{diff[:, j].mean():+.4f} ± {se[j]:.4f} | {int((diff[:, j] > 0).sum())}/{len(reps)} |")
    return "\n".join(lines)


def coverage(data: dict, initial: str) -> str:
    """Classes covered and the rarest class's count in each repeat's initial set."""
    reps = next(v for (i, _), v in data.items() if i == initial)
    counts = [np.asarray(recs[0]["acquired_per_class"]) for _, recs in sorted(reps.items())]
    cov = [int((c > 0).sum()) for c in counts]
    return (f"{initial}: classes covered {cov} of {counts[0].size}, rarest class count "
            f"{[int(c.min()) for c in counts]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--metric", default="auc")
    parser.add_argument("--candidate", nargs=2, default=["typiclust", "cluster-margin"],
                        metavar=("INITIAL", "STRATEGY"))
    parser.add_argument("--baseline", nargs=2, default=["random", "random"],
                        metavar=("INITIAL", "STRATEGY"))
    args = parser.parse_args()
    data = cells(args.folders)
    print(compare(data, tuple(args.candidate), tuple(args.baseline), args.metric))
    print()
    for initial in dict.fromkeys((args.candidate[0], args.baseline[0])):
        print(coverage(data, initial))


if __name__ == "__main__":
    main()
