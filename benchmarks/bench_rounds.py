"""Cost of one acquisition round on the demo's pool, every strategy side by side with entropy.

A *round* is what the runner and ``medactive project query`` do between two labelling batches in
head mode: train the dropout + linear head on the labelled features (the demo's settings: 200
epochs, Adam lr 1e-2), build the round view (cached features, no backbone pass), score and select
B = 40 images. The state is the demo's middle round: BloodMNIST, MoCo encoder (cached), 120 random
labels, pool 11,839, evaluation set 1,712.

    MEDACTIVE_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/bench_rounds.py

One torch thread (the runner's setting under ``OMP_NUM_THREADS=1``); each figure is the median of
``--repeats`` rounds. On a shared machine the load drifts, so every strategy's rounds alternate
with entropy rounds and the ratio is against those paired entropy rounds. Figures:
docs/benchmarks.md ("Acquisition rounds").
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import torch

from medactive.experiment.config import load_config
from medactive.experiment.runner import Runner
from medactive.strategies import get_strategy

STRATEGIES: list[tuple[str, str, dict]] = [
    ("random", "random", {}),
    ("entropy", "entropy", {}),
    ("margin", "margin", {}),
    ("bald (dropout, T=20)", "bald", {}),
    ("bald (laplace, T=20)", "bald", {"posterior": "laplace"}),
    ("badge", "badge", {}),
    ("coreset", "coreset", {}),
    ("typiclust", "typiclust", {}),
    ("probcover", "probcover", {}),
    ("cluster-top (margin)", "cluster-top", {}),
    ("diversity (entropy)", "diversity", {}),
    ("epig (dropout, 100 targets)", "epig", {}),
    ("epig-balanced (dropout, 100 targets)", "epig-balanced", {}),
    ("epig (laplace, 100 targets)", "epig", {"posterior": "laplace"}),
    ("epig (dropout, all 1,712 targets)", "epig", {"n_targets": None}),
    ("eig (sgd, all targets)", "eig", {}),
    ("aeig (sgd, all targets)", "aeig", {}),
    ("aeig normalised (sgd, all targets)", "aeig", {"normalize": True}),
    ("aeig normalised (adam, all targets)", "aeig", {"normalize": True, "update": "adam"}),
    ("aeig (sgd, 100 targets)", "aeig", {"n_targets": 100}),
    ("aeig normalised (sgd, 100 targets)", "aeig", {"normalize": True, "n_targets": 100}),
    ("aeig normalised (adam, 100 targets)", "aeig",
     {"normalize": True, "update": "adam", "n_targets": 100}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="src/medactive/presets/demo.toml")
    parser.add_argument("--labeled", type=int, default=120)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated strategy names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runner = Runner(load_config(args.preset), tempfile.mkdtemp(), progress=False)
    n = len(runner.prepared.splits.train)
    labeled = np.sort(np.random.default_rng(0).choice(n, args.labeled, replace=False))
    print(f"load average before: {os.getloadavg()[0]:.2f}; pool {n - args.labeled:,}, "
          f"{args.labeled} labelled, budget {args.budget}, torch threads 1, "
          f"median of {args.repeats}\n")
    print("| strategy | train + view s | score + select s | round s | paired entropy round s | "
          "× entropy round |")
    print("|---|---:|---:|---:|---:|---:|")
    wanted = {s for s in args.only.split(",") if s}
    entropy = get_strategy("entropy")

    def one_round(strategy, rep: int) -> tuple[float, float]:
        t0 = time.perf_counter()
        view = runner.round_view_of(labeled, rep)
        t1 = time.perf_counter()
        strategy.rank(view, args.budget, np.random.default_rng(rep))
        return t1 - t0, time.perf_counter() - t1

    for label, name, params in STRATEGIES:
        if wanted and name not in wanted:
            continue
        strategy = get_strategy(name, **params)
        train_s, select_s, base_s = [], [], []
        for rep in range(args.repeats):
            base_s.append(sum(one_round(entropy, rep)))
            tr, se = one_round(strategy, rep)
            train_s.append(tr)
            select_s.append(se)
        tr, se = float(np.median(train_s)), float(np.median(select_s))
        total = float(np.median(np.add(train_s, select_s)))
        base = float(np.median(base_s))
        print(f"| {label} | {tr:.2f} | {se:.2f} | {total:.2f} | {base:.2f} | {total / base:.2f} |",
              flush=True)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
