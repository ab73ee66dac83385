"""Acquisition-strategy benchmark: one run, one fixed input, one printed table.

    .venv/bin/python benchmarks/bench_strategies.py            # synthetic + BloodMNIST + baal
    /usr/bin/time -v .venv/bin/python benchmarks/bench_strategies.py --memory   # 1M x 512 pool

Synthetic input (seed 0): pool 20,000 + 1,000 labelled, validation 1,712, C = 8, D = 512,
post-ReLU-like float32 features and a random head. Times are ms per pool image (total / pool).
The BloodMNIST part trains the compact classifier briefly on 1,000 labelled images and times
whole rounds (forward pass over pool + validation included). baal (the ``[bench]`` extra) runs
its MC-dropout BALD on the same classifier and pool subset. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from medactive.defaults import DEFAULT_ACQUISITION
from medactive.strategies import RoundView, build_round_view, get_strategy
from medactive.strategies.infogain import (
    DEFAULT_STEP_SIZE,
    VARIANTS,
    info_gain_scores,
    sgd_learning_rate,
)
from medactive.strategies.reference import info_gain_scores_reference

REPO = Path(__file__).resolve().parents[1]


def synthetic_view(n_pool: int, n_val: int, c: int = 8, d: int = 512, n_labeled: int = 1000,
                   seed: int = 0) -> RoundView:
    """A seeded view with post-ReLU-like features (|N(0, 0.5²)|, ‖h‖² ≈ 128) and a random head."""
    rng = np.random.default_rng(seed)
    n = n_pool + n_labeled
    feats = rng.standard_normal((n, d), dtype=np.float32)
    np.abs(feats, out=feats)
    feats *= 0.5
    mask = np.zeros(n, bool)
    mask[rng.choice(n, n_labeled, replace=False)] = True
    val = np.abs(rng.standard_normal((n_val, d), dtype=np.float32)) * 0.5
    return RoundView(
        features=feats, labeled_mask=mask,
        labels=np.where(mask, rng.integers(0, c, n), -1),
        weight=(rng.standard_normal((c, d)) * 0.05).astype(np.float32),
        bias=(rng.standard_normal(c) * 0.1).astype(np.float32),
        dropout_p=0.2, val_features=val, val_labels=rng.integers(0, c, n_val),
    )


def timed(fn, repeat: int = 1):
    """(best wall seconds over ``repeat`` runs, last result)."""
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def row(name: str, ms: float, note: str = "") -> None:
    print(f"| {name:<34} | {ms:>12.4f} | {note} |")


def bench_synthetic(n_pool: int, n_ref: int, budget: int) -> None:
    view = synthetic_view(n_pool, 1712)
    rng = np.random.default_rng(0)
    pool = view.pool_features
    args = (view.val_features, view.val_labels, view.weight, view.bias)
    print(f"\n### Synthetic: pool {n_pool:,}, validation 1,712, C=8, D=512 "
          f"(torch threads {torch.get_num_threads()})\n")
    print("| strategy | ms / pool image | note |\n|---|---:|---|")
    t_ref, ref = timed(lambda: info_gain_scores_reference(pool[:n_ref], *args, variant="aeig"))
    ms_ref = t_ref / n_ref * 1e3
    row("info gain reference (Algorithm 1)", ms_ref, f"AEIG, timed on the first {n_ref} images")
    ms_fast = {}
    for variant in VARIANTS:
        t, s = timed(lambda v=variant: get_strategy(v).score(view))
        ms_fast[variant] = t / n_pool * 1e3
        row(f"info gain fast {variant}", ms_fast[variant], f"{t:.2f} s total")
        if variant == "aeig":
            err = np.abs(s[:n_ref] - info_gain_scores(pool[:n_ref], *args)).max()
            ref_err = np.abs(info_gain_scores(pool[:n_ref].astype(np.float64), *args) - ref).max()
    for name, kw, note in [
        ("entropy", {}, ""), ("bald", {"n_samples": 20}, "T = 20"),
        ("coreset", {}, f"budget {budget}, 1,000 labelled centres"),
        ("badge", {}, f"budget {budget}"),
    ]:
        t, _ = timed(lambda n=name, k=kw: get_strategy(n, **k).select(view, budget, rng))
        row(name, t / n_pool * 1e3, note)
    print(f"\nreference / fast AEIG: **{ms_ref / ms_fast['aeig']:.0f}x** "
          f"(|fast - reference| on the timed subset, float64 features: {ref_err:.1e}; "
          f"chunked vs whole: {err:.1e})")


def _find_blood() -> Path:
    for cand in [os.environ.get("MEDACTIVE_DATA_DIR", ""), str(REPO.parent / "shared" / "data")]:
        if cand and (Path(cand) / "bloodmnist.npz").is_file():
            return Path(cand) / "bloodmnist.npz"
    from medactive.data import cache_dir

    return cache_dir() / "bloodmnist.npz"


def bench_blood(n_labeled: int, n_baal: int, with_baal: bool) -> None:
    from medactive.data import load_medmnist
    from medactive.models import TrainConfig, build_classifier, fit_classifier

    splits = load_medmnist(_find_blood(), download=False)
    train, val = splits.train, splits.val
    rng = np.random.default_rng(0)
    mask = np.zeros(len(train), bool)
    mask[rng.choice(len(train), n_labeled, replace=False)] = True
    torch.manual_seed(0)
    model = build_classifier("compact", len(train.class_names), image_size=28)
    t_fit, _ = timed(lambda: fit_classifier(
        model, train.subset(np.flatnonzero(mask)), None,
        TrainConfig(epochs=3, seed=0, progress=False, device="cpu"),
    ))
    print(f"\n### BloodMNIST round: pool {int((~mask).sum()):,}, validation {len(val):,}, "
          f"compact backbone trained 3 epochs on {n_labeled:,} labels ({t_fit:.1f} s, not counted)\n")

    def round_cost(name: str) -> tuple[float, float, RoundView]:
        t0 = time.perf_counter()
        view = build_round_view(model, train.images, mask, train.labels, val.images, val.labels,
                                device="cpu")
        t1 = time.perf_counter()
        get_strategy(name).select(view, 100, np.random.default_rng(0))
        return time.perf_counter() - t0, t1 - t0, view

    # entropy, AEIG, EPIG (100 evaluation targets, MC dropout) and the default acquisition,
    # interleaved three times (the first pass warms caches and allocators), medians reported
    names = ["entropy", "aeig", "epig", DEFAULT_ACQUISITION]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(3):
        for name in names:
            total, fwd, view = round_cost(name)
            runs[name].append((total, fwd))
    med = {name: np.median(np.array(r), axis=0) for name, r in runs.items()}
    t_ent, t_aeig = float(med["entropy"][0]), float(med["aeig"][0])
    sq = (view.features.astype(np.float64) ** 2).sum(1)
    eta = sgd_learning_rate(DEFAULT_STEP_SIZE, view.val_features)
    print("| round (budget 100) | total s | of which forward pass s | x entropy round |\n"
          "|---|---:|---:|---:|")
    for name in names:
        total, fwd = med[name]
        print(f"| {name} | {total:.2f} | {fwd:.2f} | {total / t_ent:.2f} |")
    print(f"\nAEIG round / entropy round: **{t_aeig / t_ent:.2f}x**; feature ‖h‖²: median "
          f"{np.median(sq):.3g}; the default step ({DEFAULT_STEP_SIZE:g} logit units) is "
          f"η = {eta:.3g} here")
    bench_precision(view)
    if with_baal:
        bench_baal(model, train.images, mask, val, n_baal)


def bench_precision(view: RoundView, n: int = 3000, top: int = 100) -> None:
    """Ranking stability of info gain on real features: float32 vs float64, and vs step size."""
    pool = view.pool_features[:n]
    args = (view.val_features, view.val_labels, view.weight, view.bias)
    print(f"\n### Info-gain ranking stability on BloodMNIST features ({n:,} pool images, "
          f"top-{top})\n")
    print("| variant | step (logit units) | max abs(f32 - f64) / score std | top-B overlap f32 vs "
          f"f64 | top-B overlap vs step {DEFAULT_STEP_SIZE:g} |\n|---|---:|---:|---:|---:|")
    for variant in ("eig", "aeig"):
        base = info_gain_scores(pool.astype(np.float64), *args, variant=variant)
        base_top = set(np.argsort(-base)[:top])
        for eta in (0.01, 0.1, 1.0):
            s64 = info_gain_scores(pool.astype(np.float64), *args, variant=variant, step_size=eta)
            s32 = info_gain_scores(pool, *args, variant=variant, step_size=eta)
            top64 = set(np.argsort(-s64)[:top])
            print(f"| {variant} | {eta:g} | {np.abs(s32 - s64).max() / s64.std():.1e} | "
                  f"{len(top64 & set(np.argsort(-s32)[:top]))}/{top} | "
                  f"{len(top64 & base_top)}/{top} |")


def bench_baal(model, images: np.ndarray, mask: np.ndarray, val, n_pool: int) -> None:
    try:
        from baal.active.heuristics import BALD as BaalBALD
        from baal.bayesian.dropout import MCDropoutModule
    except ImportError:
        print("\nbaal not installed (pip install '.[bench]'): peer comparison skipped")
        return
    from medactive.models.classifier import images_to_tensor

    pool_idx = np.flatnonzero(~mask)[:n_pool]
    sub_mask = np.ones(mask.size, bool)
    sub_mask[pool_idx] = False  # a view whose pool is exactly the compared subset
    t_ours, (pool_view, ours) = timed(lambda: _ours_bald(model, images, sub_mask, val))

    def baal_run() -> np.ndarray:
        mc = MCDropoutModule(model).eval()  # baal keeps dropout on in eval mode
        preds = []
        with torch.no_grad():
            for s in range(0, pool_idx.size, 512):
                x = images_to_tensor(images[pool_idx[s : s + 512]])
                # baal's predict_on_batch(iterations=T): T full forward passes of the network.
                preds.append(torch.stack([torch.softmax(mc(x), 1) for _ in range(20)], -1))
        return BaalBALD().compute_score(torch.cat(preds).numpy())

    t_baal, theirs = timed(baal_run)
    rho = spearmanr(ours, theirs).statistic
    # Yardstick for "only Monte-Carlo noise": our BALD against itself with other masks.
    view_other = get_strategy("bald", n_samples=20, seed=12345).score(pool_view)
    rho_self = spearmanr(ours, view_other).statistic
    print(f"\n### Peer: baal MC-dropout BALD, T = 20, same classifier, {pool_idx.size:,} pool "
          "images\n")
    print("| implementation | s | ms / pool image |\n|---|---:|---:|")
    print(f"| baal (T full passes) | {t_baal:.2f} | {t_baal / pool_idx.size * 1e3:.3f} |")
    print(f"| medactive bald (1 pass + cached features) | {t_ours:.2f} | "
          f"{t_ours / pool_idx.size * 1e3:.3f} |")
    print(f"\nspeed-up **{t_baal / t_ours:.1f}x**, Spearman rank correlation of the scores "
          f"**{rho:.3f}**; ours vs ours with other dropout masks: {rho_self:.3f} (the size of "
          "Monte-Carlo noise at T = 20)")


def _ours_bald(model, images, mask, val):
    # Only the pool subset and validation need features for BALD; a view of just those rows.
    keep = np.flatnonzero(~mask)
    view = build_round_view(model, images[keep], np.zeros(keep.size, bool),
                            np.full(keep.size, -1), val.images[:0], val.labels[:0], device="cpu")
    return view, get_strategy("bald", n_samples=20).score(view)


def bench_memory(n: int, n_val: int) -> None:
    view = synthetic_view(n, n_val, n_labeled=100)
    rng = np.random.default_rng(0)
    print(f"\n### Memory: pool {n:,} x 512 float32 features ({view.features.nbytes / 2**30:.2f} "
          f"GiB), validation {n_val}\n\n| strategy | s | peak RSS so far GiB |\n|---|---:|---:|")
    for name, kw, budget in [("aeig", {}, 100), ("bald", {"n_samples": 20}, 100),
                             ("coreset", {}, 10)]:
        t, picked = timed(lambda n=name, k=kw, b=budget: get_strategy(n, **k).select(view, b, rng))
        assert picked.size == budget
        print(f"| {name} (budget {budget}) | {t:.1f} | {peak_rss_gib():.2f} |")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--memory", action="store_true", help="only the 1M-feature memory run")
    p.add_argument("--n-pool", type=int, default=20_000)
    p.add_argument("--n-ref", type=int, default=20, help="pool images timed for the reference")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--n-labeled", type=int, default=1000)
    p.add_argument("--n-baal", type=int, default=2000, help="pool images for the baal comparison")
    p.add_argument("--no-synthetic", action="store_true")
    p.add_argument("--no-blood", action="store_true")
    p.add_argument("--no-baal", action="store_true")
    p.add_argument("--memory-n", type=int, default=1_000_000)
    p.add_argument("--memory-val", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (1: on a shared, oversubscribed CPU two OpenMP threads "
                        "stall at every barrier and were up to 30x slower)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CPU threads "
          f"{torch.get_num_threads()}, command: {' '.join(sys.argv)}")
    if a.memory:
        bench_memory(a.memory_n, a.memory_val)
        print(f"\npeak RSS {peak_rss_gib():.2f} GiB")
        return
    if not a.no_synthetic:
        bench_synthetic(a.n_pool, a.n_ref, a.budget)
    if not a.no_blood:
        bench_blood(a.n_labeled, a.n_baal, not a.no_baal)


if __name__ == "__main__":
    main()
