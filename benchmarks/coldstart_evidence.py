"""Evidence for docs/coldstart.md: cold-start strategies on real BloodMNIST.

For every budget and strategy, ``--draws`` selections (each with its own generator: K-means seed,
cluster order, random draws) are scored by
* class coverage of the selected images (fraction of the 8 classes present), and
* test macro AUC of a linear head (``fit_head``) trained on only the selected images, on top of
  the frozen MoCo v2 encoder features (standardised with label-free pool statistics).

Usage (about 10 minutes on 2 CPU cores once the encoder is cached)::

    nice .venv/bin/python benchmarks/coldstart_evidence.py --out docs/results/coldstart
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from medactive.coldstart import ColdStartView, get_coldstart_strategy, kmeans, l2_normalise
from medactive.coldstart.plots import plot_dataset_map, plot_embedding
from medactive.data.loading import load_dataset
from medactive.metrics import class_coverage, macro_auc
from medactive.models import HeadConfig, extract_features, fit_head, head_proba
from medactive.models.contrastive import MocoConfig, pretrain_moco

STRATEGIES = ["hacon", "easy-to-contrast", "kmeans-centroid", "hard-to-contrast-global",
              "kmeans-pixels", "typiclust", "probcover", "random"]
# simulation-only reference (reads ground truth): random with a perfectly class-balanced budget
ORACLE = ("label-diversity", {"base": "random"})


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="bloodmnist")
    p.add_argument("--budgets", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("--draws", type=int, default=20)
    p.add_argument("--strategies", nargs="+", default=STRATEGIES)
    p.add_argument("--epochs", type=int, default=None, help="MoCo epochs (default MocoConfig)")
    p.add_argument("--tau-map", type=float, default=None)
    p.add_argument("--crop-min-scale", type=float, default=None)
    p.add_argument("--n-clusters", type=int, default=None, help="K for hacon & co (default B)")
    p.add_argument("--out", type=Path, default=Path("docs/results/coldstart"))
    p.add_argument("--no-oracle", action="store_true")
    return p.parse_args()


def main() -> None:
    args = parse()
    # One thread: the per-draw work is thousands of tiny ops (a head on 8-32 images, K-means),
    # where OpenMP hand-offs dominate; on a shared 2-core box two threads were ~100x slower.
    torch.set_num_threads(1)
    threadpool_limits(1)
    splits = load_dataset(args.data)
    train, test = splits.train, splits.test
    c = splits.n_classes
    over = {k: v for k, v in {"epochs": args.epochs, "tau_map": args.tau_map,
                              "crop_min_scale": args.crop_min_scale}.items() if v is not None}
    cfg = MocoConfig(**over)
    t0 = time.perf_counter()
    res = pretrain_moco(train.images, cfg, progress=True)
    print(f"encoder {res.key}: {'cached' if res.from_cache else 'trained'} "
          f"({time.perf_counter() - t0:.0f}s), {res.images_per_second:.0f} images/s", flush=True)
    # label-free standardisation: statistics of the unlabelled pool only
    mu, sd = res.features.mean(0), res.features.std(0) + 1e-6
    f_train = (res.features - mu) / sd
    f_test = (extract_features(res.encoder, test.images, progress=False) - mu) / sd
    view = ColdStartView(res.features, res.confidence, res.variability, train.images)
    oracle_view = ColdStartView(res.features, res.confidence, res.variability, train.images,
                                train.labels)
    runs = [(s, get_coldstart_strategy(s), view) for s in args.strategies]
    if not args.no_oracle:
        runs.append(("oracle: label-diversity random", get_coldstart_strategy(ORACLE[0], **ORACLE[1]),
                     oracle_view))
    if args.n_clusters is not None:
        runs = [(n, get_coldstart_strategy(n, n_clusters=args.n_clusters), v)
                if n in ("hacon", "easy-to-contrast", "kmeans-centroid", "kmeans-pixels") else
                (n, s, v) for n, s, v in runs]
    rows = []
    for budget in args.budgets:
        for draw in range(args.draws):
            for name, strat, v in runs:
                # same generator for every strategy of a draw: they share K-means seeds (memoised)
                sel = strat.select(v, budget, np.random.default_rng([draw, budget]))
                y = train.labels[sel]
                w, b = fit_head(f_train[sel], y, c, HeadConfig(seed=draw))
                auc = macro_auc(test.labels, head_proba(f_test, w, b))
                rows.append({"strategy": name, "budget": budget, "draw": draw,
                             "coverage": class_coverage(y, c), "auc": auc,
                             "n_classes": int(np.unique(y).size), "selected": sel.tolist()})
            print(f"budget {budget} draw {draw} done ({time.perf_counter() - t0:.0f}s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "draws.csv").open("w", newline="") as f:
        w_ = csv.DictWriter(f, fieldnames=list(rows[0]))
        w_.writeheader()
        w_.writerows(rows)
    table = summarise(rows, args.budgets, [r[0] for r in runs], c)
    (args.out / "table.md").write_text(table)
    (args.out / "meta.json").write_text(json.dumps(
        {"encoder_key": res.key, "config": vars(cfg), "images_per_second": res.images_per_second,
         "draws": args.draws, "budgets": args.budgets}, indent=2))
    print(table)
    make_plots(res, train, args.out, rows)


def summarise(rows: list[dict], budgets: list[int], names: list[str], c: int) -> str:
    """Markdown table: mean ± std of AUC and coverage; ``all 8`` = share of draws with all classes."""
    head = "| strategy | " + " | ".join(
        f"B={b} AUC | B={b} coverage (all {c})" for b in budgets) + " |"
    lines = [head, "|---|" + "---|---|" * len(budgets)]
    rand = {b: np.mean([r["auc"] for r in rows if r["strategy"] == "random" and r["budget"] == b])
            for b in budgets}
    for name in names:
        cells = []
        for b in budgets:
            sub = [r for r in rows if r["strategy"] == name and r["budget"] == b]
            auc = np.array([r["auc"] for r in sub])
            cov = np.array([r["coverage"] for r in sub])
            full = np.mean([r["n_classes"] == c for r in sub])
            mark = " ↑" if name != "random" and auc.mean() > rand[b] else ""
            cells += [f"{auc.mean():.3f} ± {auc.std():.3f}{mark}",
                      f"{cov.mean():.2f} ± {cov.std():.2f} ({full:.0%})"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def make_plots(res, train, out: Path, rows: list[dict]) -> None:
    """Dataset maps (by true class — simulation view — and by cluster) with hacon's B=16 pick."""
    pick = [r for r in rows if r["strategy"] == "hacon" and r["budget"] == 16 and r["draw"] == 0]
    if not pick:
        return
    sel = np.asarray(pick[0]["selected"])
    names = list(train.class_names)
    clusters, _ = kmeans(l2_normalise(res.features), 16, 0)
    plot_dataset_map(res.confidence, res.variability, sel, out / "dataset_map_true_class.png",
                     groups=train.labels, group_names=names,
                     title="BloodMNIST dataset map (colour = true class), HaCon B=16")
    plot_dataset_map(res.confidence, res.variability, sel, out / "dataset_map_clusters.png",
                     groups=clusters, title="BloodMNIST dataset map (colour = K-means cluster)")
    plot_embedding(res.features, sel, out / "embedding_true_class.png", groups=train.labels,
                   group_names=names, title="MoCo v2 features, HaCon B=16")


if __name__ == "__main__":
    main()
