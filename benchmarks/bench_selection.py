"""The shared selection code against another checkout: same picks? same K-means time?

On BloodMNIST's training pool (11,959 images) with fixed, cheap features — a PCA of the pixels
(64 components, scaled to [0, 1], ``random_state=0``) — each tree in turn runs, in a fresh
single-threaded subprocess (``OMP_NUM_THREADS=1``, so the two trees see the same machine):

* the memoised K-means of the cold start (K = budget, the features L2-normalised): one call with an
  empty memo (a fit) and one repeat (a memo hit), per seed;
* the cold-start ``typiclust`` and ``probcover`` (budget 40, ``seed=s``) and the acquisition
  ``typiclust`` on the same pool with nothing labelled.

It prints, side by side, the K-means and TypiClust wall times (medians over the seeds) and how
many of the 40 picks changed between the trees (and between the two TypiClusts of each tree).

    MEDACTIVE_DATA_DIR=../shared/data PYTHONPATH=src python benchmarks/bench_selection.py \\
        --baseline-src /path/to/other/checkout/src

Figures: docs/benchmarks.md ("One selection implementation").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = r'''
import json, sys, time
import numpy as np
from medactive.coldstart import ColdStartView, get_coldstart_strategy
from medactive.coldstart import hacon
from medactive.geometry import l2_normalise
from medactive.strategies import RoundView, get_strategy

def forget():
    # this tree's memo: medactive.selection (shared) or coldstart.hacon (before)
    try:
        from medactive.selection import clear_kmeans_cache
        clear_kmeans_cache()
    except ImportError:
        hacon._KMEANS_CACHE.clear()

x = np.load(sys.argv[1])
seeds = [int(s) for s in sys.argv[2].split(",")]
budget = int(sys.argv[3])
n = x.shape[0]
cold = ColdStartView(x)
pool = RoundView(features=x, labeled_mask=np.zeros(n, bool), labels=np.full(n, -1),
                 weight=np.zeros((8, x.shape[1]), np.float32), bias=np.zeros(8, np.float32))
out = {"fit_s": [], "hit_s": [], "typiclust_s": [], "typiclust": [], "typiclust_acq": [],
       "probcover": []}
for seed in seeds:
    unit = l2_normalise(x)
    forget()
    t = time.perf_counter(); hacon.kmeans(unit, budget, seed); out["fit_s"].append(time.perf_counter() - t)
    t = time.perf_counter(); hacon.kmeans(unit, budget, seed); out["hit_s"].append(time.perf_counter() - t)
    forget()
    t = time.perf_counter()
    picks = get_coldstart_strategy("typiclust", seed=seed).select(cold, budget, np.random.default_rng(0))
    out["typiclust_s"].append(time.perf_counter() - t)
    out["typiclust"].append(picks.tolist())
    out["typiclust_acq"].append(get_strategy("typiclust", seed=seed).select(
        pool, budget, np.random.default_rng(0)).tolist())
    out["probcover"].append(get_coldstart_strategy("probcover", seed=seed).select(
        cold, budget, np.random.default_rng(0)).tolist())
print(json.dumps(out))
'''


def features(data_dir: Path, dim: int) -> np.ndarray:
    """``(11959, dim)`` float32 PCA of BloodMNIST's training pixels (fixed, label-free)."""
    from sklearn.decomposition import PCA

    with np.load(data_dir / "bloodmnist.npz") as blood:
        pixels = blood["train_images"].reshape(blood["train_images"].shape[0], -1)
    return PCA(dim, random_state=0).fit_transform(pixels.astype(np.float32) / 255.0).astype(
        np.float32)


def run_tree(src: Path, feats: Path, seeds: list[int], budget: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", WORKER, str(feats),
                           ",".join(map(str, seeds)), str(budget)],
                          env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def changed(a: list[list[int]], b: list[list[int]]) -> list[int]:
    """Per seed: how many of ``b``'s picks are not among ``a``'s (order ignored)."""
    return [len(set(y) - set(x)) for x, y in zip(a, b, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", type=Path, required=True,
                        help="src/ folder of the checkout to compare with (e.g. main's)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40)
    parser.add_argument("--dim", type=int, default=64)
    args = parser.parse_args()
    data_dir = Path(os.environ.get("MEDACTIVE_DATA_DIR", "../shared/data"))
    here = Path(__file__).resolve().parents[1] / "src"
    print("load before:", os.getloadavg())
    x = features(data_dir, args.dim)
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "features.npy"
        np.save(path, x)
        base = run_tree(args.baseline_src.resolve(), path, seeds, args.budget)
        this = run_tree(here, path, seeds, args.budget)
    print("load after:", os.getloadavg())
    print(f"pool {x.shape[0]} x {x.shape[1]} (pixel PCA), budget {args.budget}, "
          f"seeds {seeds}, one thread\n")
    print("| figure | baseline | this tree |\n|---|---:|---:|")
    for key, label in (("fit_s", f"K-means K={args.budget}, empty memo (s, median)"),
                       ("hit_s", "K-means repeat, memo hit (s, median)"),
                       ("typiclust_s", "cold-start typiclust, empty memo (s, median)")):
        print(f"| {label} | {np.median(base[key]):.3f} | {np.median(this[key]):.3f} |")
    for key, label in (("typiclust", "cold-start typiclust"), ("probcover", "cold-start probcover"),
                       ("typiclust_acq", "acquisition typiclust")):
        print(f"| {label}: picks changed vs baseline, per seed | — | "
              f"{changed(base[key], this[key])} |")
    print(f"| cold-start vs acquisition typiclust: picks not shared, per seed | "
          f"{changed(base['typiclust'], base['typiclust_acq'])} | "
          f"{changed(this['typiclust'], this['typiclust_acq'])} |")


if __name__ == "__main__":
    main()
