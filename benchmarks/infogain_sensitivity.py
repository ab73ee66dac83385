"""What information gain ranks on real features: AEIG's reduction and the update-rule sensitivity.

Builds the runner's own round-0 state on real data (head mode on the cached MoCo encoder, features
standardised, the head trained exactly as the runner trains it) for two regimes — the demo's 40
random labels and the information-gain paper's 10 % — and prints, on a fixed random subset of the
pool:

1. how literal AEIG (Eq. 2) ranks compared with ``-Σ_c p_c π_c`` ("confidently predicted in a
   rare evaluation class"): Spearman and top-B overlap, for SGD and Adam steps of several sizes;
2. the Spearman correlation of every variant's ranking under each update rule / step size with
   the small-step SGD limit, and with one Adam step at the paper's lr.

    MEDACTIVE_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/infogain_sensitivity.py
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from scipy.stats import spearmanr

from medactive.experiment.config import load_config
from medactive.experiment.runner import Runner
from medactive.strategies.infogain import class_prior, info_gain_scores

SGD_STEPS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
ADAM_LRS = (1e-4, 5e-4, 2e-3)
SETTINGS = [("sgd", s) for s in SGD_STEPS] + [("adam", s) for s in ADAM_LRS]
VARIANTS = [("eig", False), ("aeig", False), ("aeig", True), ("uig", False), ("cfig", False)]


def round_zero(preset: str, n_labeled: int | float, seed: int = 0):
    """The runner's view after training on a random initial set (repeat 0 of ``preset``)."""
    cfg = load_config(preset)
    runner = Runner(cfg, tempfile.mkdtemp(), progress=False)
    n = len(runner.prepared.splits.train)
    count = round(n_labeled * n) if n_labeled < 1 else int(n_labeled)
    labeled = np.sort(np.random.default_rng(seed).choice(n, count, replace=False))
    view = runner.round_view_of(labeled, seed * 100)
    return view


def overlap(a: np.ndarray, b: np.ndarray, k: int) -> int:
    return len(set(np.argsort(-a)[:k]) & set(np.argsort(-b)[:k]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="src/medactive/presets/demo.toml")
    parser.add_argument("--pool", type=int, default=3000, help="pool images scored (subset)")
    parser.add_argument("--budget", type=int, default=40, help="top-B for overlaps")
    parser.add_argument("--regimes", default="40,0.1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for regime in args.regimes.split(","):
        n_lab = float(regime) if "." in regime else int(regime)
        view = round_zero(args.preset, n_lab)
        rng = np.random.default_rng(1)
        rows = np.sort(rng.choice(view.pool_indices, min(args.pool, view.pool_indices.size),
                                  replace=False))
        pool = view.features[rows]
        ev, lab = view.val_features, view.val_labels
        w, b = view.weight, view.bias
        p = torch.softmax(torch.as_tensor(pool, dtype=torch.float64) @ torch.as_tensor(
            w, dtype=torch.float64).T + torch.as_tensor(b, dtype=torch.float64), 1).numpy()
        prior = class_prior(lab, w.shape[0])
        proxy = -(p @ prior)
        sq = float(np.mean(np.einsum("ij,ij->i", ev, ev)))
        print(f"\n## Regime: {regime} labelled ({view.labeled_mask.sum()} images), "
              f"{rows.size} pool images scored, evaluation {ev.shape[0]}, D = {ev.shape[1]}, "
              f"mean ‖h_e‖² = {sq:.1f}\n")
        scores: dict[tuple[str, bool, str, float], np.ndarray] = {}
        t0 = time.perf_counter()
        for variant, norm in VARIANTS:
            for update, step in SETTINGS:
                scores[(variant, norm, update, step)] = info_gain_scores(
                    pool, ev, lab, w, b, variant=variant, normalize=norm, update=update,
                    step_size=step)
        print(f"(scored {len(scores)} settings in {time.perf_counter() - t0:.0f} s)\n")
        print(f"### Literal AEIG vs -Σ p π (Spearman; top-{args.budget} overlap)\n")
        print("| update | step | Spearman | top-B overlap |\n|---|---:|---:|---:|")
        for update, step in SETTINGS:
            s = scores[("aeig", False, update, step)]
            print(f"| {update} | {step:g} | {spearmanr(s, proxy)[0]:.5f} | "
                  f"{overlap(s, proxy, args.budget)}/{args.budget} |")
        print("\n### Ranking sensitivity: Spearman with SGD step 0.01 (small-step limit) / "
              f"with Adam lr 5e-4; top-{args.budget} overlap with SGD 0.1\n")
        head = " | ".join(f"{u} {s:g}" for u, s in SETTINGS)
        print(f"| variant | {head} |\n|---" + "|---:" * len(SETTINGS) + "|")
        for variant, norm in VARIANTS:
            name = variant + (" norm" if norm else "")
            small = scores[(variant, norm, "sgd", 0.01)]
            adam = scores[(variant, norm, "adam", 5e-4)]
            mid = scores[(variant, norm, "sgd", 0.1)]
            cells = []
            for update, step in SETTINGS:
                s = scores[(variant, norm, update, step)]
                cells.append(f"{spearmanr(s, small)[0]:.2f} / {spearmanr(s, adam)[0]:.2f} / "
                             f"{overlap(s, mid, args.budget)}")
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
