"""Tables of the acquisition evidence (docs/results.md, "Acquisition defaults") from run folders.

Every run folder comes from ``medactive run <config> --out <folder>`` with a config under
``docs/results/acquisition/configs/``. For each strategy: test macro AUC per round (mean ± std
over repeats), the paired difference to random and to entropy (same repeat = same initial set
and round-0 model), how many rounds it is at least random's mean, and the selection-health flags.

    python benchmarks/acquisition_evidence.py runs/acq-demo-blood [runs/acq-hybrids-blood ...]

Several folders of the same dataset and schedule are merged (strategies present in more than one
must agree: same seeds give the same records).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def load(folders: list[Path], metric: str) -> dict[str, dict[tuple[int, int], dict]]:
    """strategy -> (repeat, round) -> record, merged over folders; with several initial
    strategies the name is "initial: strategy" and random means the same initial's random."""
    out: dict[str, dict[tuple[int, int], dict]] = defaultdict(dict)
    records = [json.loads(line) for folder in folders
               for line in (folder / "results.jsonl").read_text().splitlines() if line.strip()]
    several = len({r["initial"] for r in records}) > 1
    for r in records:
        name = f"{r['initial']}: {r['strategy']}" if several else r["strategy"]
        out[name].setdefault((r["repeat"], r["round"]), r)
    return out


def table(data: dict[str, dict[tuple[int, int], dict]], metric: str, order: list[str]) -> str:
    rounds = sorted({k[1] for recs in data.values() for k in recs})
    sizes = {k[1]: r["n_labeled"] for recs in data.values() for k, r in recs.items()}
    head = " | ".join(f"{sizes[k]}" for k in rounds)
    lines = [f"| strategy | n | {head} | Δ random (paired mean ± s.e.), rounds 1–{rounds[-1]} | "
             f"rounds ≥ random | Δ entropy, last | flagged rounds |",
             "|---" * (len(rounds) + 6) + "|"]
    for s in order:
        prefix = s.split(": ")[0] + ": " if ": " in s else ""
        base = data.get(prefix + "random", {})
        ent = data.get(prefix + "entropy", {})
        recs = data[s]
        reps = sorted({k[0] for k in recs if all((k[0], j) in recs for j in rounds)})
        if not reps:
            continue
        vals = np.array([[recs[(r, k)][metric] for k in rounds] for r in reps])
        cells = [f"{m:.4f} ± {sd:.4f}" for m, sd in zip(vals.mean(0), vals.std(0, ddof=1)
                                                        if len(reps) > 1 else np.zeros(len(rounds)),
                                                        strict=True)]
        paired = [r for r in reps if all((r, k) in base for k in rounds)]
        if paired and s != prefix + "random":
            per_rep = np.array([[recs[(r, k)][metric] - base[(r, k)][metric]
                                 for k in rounds[1:]] for r in paired])
            diff = per_rep.mean(0)
            # standard error of the paired mean difference, for judging what is noise
            se = per_rep.std(0, ddof=1) / np.sqrt(len(paired)) if len(paired) > 1 else 0 * diff
            d_txt = " ".join(f"{d:+.4f}±{e:.4f}" for d, e in zip(diff, se, strict=True))
            ge = f"{int((diff >= 0).sum())}/{diff.size}"
        else:
            d_txt, ge = "—", "—"
        e_pair = [r for r in reps if all((r, k) in ent for k in rounds)]
        if e_pair and s != prefix + "entropy":
            last = rounds[-1]
            e_txt = f"{np.mean([recs[(r, last)][metric] - ent[(r, last)][metric] for r in e_pair]):+.4f}"
        else:
            e_txt = "—"
        health = [recs[(r, k)]["health"] for r in reps for k in rounds if "health" in recs[(r, k)]]
        flagged = f"{sum(bool(h['warnings']) for h in health)}/{len(health)}" if health else "—"
        lines.append(f"| {s} | {len(reps)} | " + " | ".join(cells) +
                     f" | {d_txt} | {ge} | {e_txt} | {flagged} |")
    return "\n".join(lines)


#: The tiny-budget evaluations pooled in docs/results.md: label -> (folders, initial prefix).
POOLED = {
    "BloodMNIST s0": (["demo-blood", "hybrids-blood"], ""),
    "LT20 s0": (["demo-lt20", "hybrids-lt20"], ""),
    "grey s0": (["demo-grey"], ""),
    "BloodMNIST s1": (["confirm-blood", "confirm2-blood"], ""),
    "LT20 s1": (["confirm-lt20", "confirm2-lt20"], ""),
    "grey s1": (["confirm-grey", "confirm2-grey"], ""),
    "demo, random start": (["demo-candidates"], "random: "),
    "demo, HaCon start": (["demo-candidates"], "hacon: "),
}
CANDIDATES = ["entropy", "margin", "badge", "cluster-margin", "typiclust-margin",
              "typiclust>cluster-margin@10"]


def pooled(root: Path, metric: str) -> str:
    """One row per candidate: mean paired Δ random over rounds 1-4 in every evaluation of
    :data:`POOLED` (rounds ≥ random in brackets), the mean, the worst round and the count."""
    lines = ["| strategy | " + " | ".join(POOLED) + " | mean Δ | worst round | rounds ≥ random |",
             "|---" * (len(POOLED) + 4) + "|"]
    for cand in CANDIDATES:
        cells, means, worst = [], [], np.inf
        for folders, prefix in POOLED.values():
            data = load([root / f for f in folders], metric)
            # the seed-0 hybrid run called typiclust-margin by its switch label
            name = next((prefix + n for n in (cand, "typiclust>margin@10")
                         if prefix + n in data and (n == cand or cand == "typiclust-margin")),
                        None)
            if name is None:
                cells.append("—")
                continue
            recs, base = data[name], data[prefix + "random"]
            rounds = sorted({k[1] for k in recs})[1:]
            reps = [r for r in sorted({k[0] for k in recs})
                    if all((r, k) in recs and (r, k) in base for k in rounds)]
            diff = np.array([[recs[(r, k)][metric] - base[(r, k)][metric] for k in rounds]
                             for r in reps]).mean(0)
            means.extend(diff)
            worst = min(worst, float(diff.min()))
            cells.append(f"{diff.mean():+.4f} ({int((diff >= 0).sum())}/{diff.size})")
        ge = sum(m >= 0 for m in means)
        lines.append(f"| {cand} | " + " | ".join(cells) +
                     f" | {np.mean(means):+.4f} | {worst:+.4f} | {ge}/{len(means)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--metric", default="auc")
    parser.add_argument("--pooled", type=Path, metavar="ROOT",
                        help="print the pooled tiny-budget table of the run folders under ROOT")
    args = parser.parse_args()
    if args.pooled is not None:
        print(pooled(args.pooled, args.metric))
        return
    data = load(args.folders, args.metric)
    order = list(data)
    print(f"Test {args.metric} by labelled-set size (mean ± std over repeats); "
          f"{', '.join(str(f) for f in args.folders)}\n")
    print(table(data, args.metric, order))


if __name__ == "__main__":
    main()
