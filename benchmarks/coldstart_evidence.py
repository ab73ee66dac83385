"""Evidence for docs/coldstart.md: label-free initial queries scored on labelled benchmarks.

For one setting (``coldstart_settings.py``: BloodMNIST, long-tailed, grey-scale, 4-class subset),
every budget and every strategy variant (``VARIANTS``), ``--draws`` selections are made through
the round engine's cold start (:func:`medactive.rounds.cold_start_round`, seed ``d``: the same
for every variant, so variants of one draw share K-means / UMAP seeds), on the encoder of MoCo
seed ``seeds[d % len(seeds)]``. Each selection is scored by

* class coverage (share of the classes present among the picks; "all" = share of draws with every
  class), and
* test macro AUC of the round engine's classifier (:func:`medactive.rounds.fit_round`: the
  product's head on the pool's standardised features, the head seed of round ``(d, 2)``)
  trained on only the picked images.

The tables in docs/coldstart.md up to "Encoders" were made by this script's earlier version
(its own batched head trainer and per-budget generators, commit 5c9e247), before the round
engine; a run of this version gives the engine's figures.

Usage (one command per table of docs/coldstart.md; encoders come from the cache, see
``coldstart_pretrain.py``)::

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/coldstart_evidence.py \\
        --data ../shared/data/bloodmnist.npz --setting blood --seeds 0 1 --draws 10 \\
        --out docs/results/coldstart/blood
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import torch
from coldstart_pretrain import study_config
from coldstart_settings import SETTINGS, build_setting
from threadpoolctl import threadpool_limits

from medactive.coldstart.pipeline import ColdStartRequest
from medactive.metrics import class_coverage, macro_auc
from medactive.models import extract_features
from medactive.models.contrastive import pretrain_moco
from medactive.rounds import ClassifierConfig, RoundPool, cold_start_round, fit_round, round_seeds

# label -> (registered strategy, parameters). "code" = the authors' public code (CSVAL).
VARIANTS: dict[str, tuple[str, dict]] = {
    "random": ("random", {}),
    # HaCon as the paper's text states it, then one option of the authors' code at a time
    "hacon": ("hacon", {}),
    "hacon K=30": ("hacon", {"n_clusters": 30}),
    "hacon τ=0.001": ("hacon", {"map": "batch:tau=0.001"}),
    "hacon hit": ("hacon", {"map": "batch:hit"}),
    "hacon queue τ=0.05": ("hacon", {"map": "batch+queue:tau=0.05"}),
    "hacon queue hit": ("hacon", {"map": "batch+queue:hit"}),
    "hacon UMAP K=30": ("hacon", {"n_clusters": 30, "embedding": "umap"}),
    "hacon code (UMAP K=30 τ=0.001)": ("hacon", {"n_clusters": 30, "embedding": "umap",
                                                 "map": "batch:tau=0.001"}),
    # lower-noise maps (issue 10 item 7) and a temperature-free rule
    "hacon rank": ("hacon", {"map": "batch:rank"}),
    "hacon probe τ=0.05": ("hacon", {"map": "probe:tau=0.05"}),
    "hacon probe rank": ("hacon", {"map": "probe:rank"}),
    "hacon probe τ=0.2": ("hacon", {"map": "probe:tau=0.2"}),
    # typical AND hard: hardest among the members nearest the centroid
    "hacon typical 10%": ("hacon", {"typical_fraction": 0.1}),
    "hacon typical 25%": ("hacon", {"typical_fraction": 0.25}),
    "hacon probe typical 25%": ("hacon", {"map": "probe:tau=0.05", "typical_fraction": 0.25}),
    # ablations and label-free baselines
    "easy-to-contrast": ("easy-to-contrast", {}),
    "hard-to-contrast-global": ("hard-to-contrast-global", {}),
    "kmeans-centroid": ("kmeans-centroid", {}),
    "kmeans-centroid K=30": ("kmeans-centroid", {"n_clusters": 30}),
    "kmeans-centroid UMAP": ("kmeans-centroid", {"embedding": "umap"}),
    "kmeans-centroid UMAP K=30": ("kmeans-centroid", {"n_clusters": 30, "embedding": "umap"}),
    # K as a function of the budget: K = 2B, clusters visited at random or spread-first
    "kmeans-centroid K=2B": ("kmeans-centroid", {"oversample": 2.0}),
    "kmeans-centroid K=2B farthest": ("kmeans-centroid", {"oversample": 2.0, "order": "farthest"}),
    "kmeans-pixels": ("kmeans-pixels", {}),
    "typiclust": ("typiclust", {}),
    "probcover": ("probcover", {}),
}
# simulation-only reference (reads ground truth): random with the budget spread over true classes
ORACLE = "oracle: class-balanced random"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="bloodmnist")
    p.add_argument("--setting", default="blood", choices=SETTINGS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="MoCo seeds (encoders)")
    p.add_argument("--probe-pairs", type=int, default=2, help="as in coldstart_pretrain.py")
    p.add_argument("--budgets", type=int, nargs="+", default=[8, 16, 20, 40])
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--no-oracle", action="store_true")
    p.add_argument("--epochs", type=int, default=None, help="MoCo epochs (default MocoConfig)")
    p.add_argument("--limit", type=int, default=None, help="first N training images (smoke test)")
    p.add_argument("--out", type=Path, default=Path("docs/results/coldstart/blood"))
    return p.parse_args()


def main() -> None:
    args = parse()
    # One thread: the per-draw work is thousands of tiny ops (a head on 8-40 images, K-means),
    # where OpenMP hand-offs dominate; on a shared 2-core box two threads were ~100x slower.
    torch.set_num_threads(1)
    threadpool_limits(1)
    splits = build_setting(args.setting, args.data)
    train, test, c = splits.train, splits.test, splits.n_classes
    if args.limit:
        train = train.subset(np.arange(min(args.limit, len(train))))
    over = {} if args.epochs is None else {"epochs": args.epochs}
    t0 = time.perf_counter()
    encoders = []
    for seed in args.seeds:
        res = pretrain_moco(train.images, study_config(seed, args.probe_pairs, **over),
                            progress=False)
        # the round engine's pool: its head space is the label-free pool standardisation
        pool = RoundPool(res.features, key=res.key, encoder=res.encoder, images=train.images,
                         confidence=res.confidence, variability=res.variability,
                         maps=res.maps or None)
        f_test = extract_features(res.encoder, test.images, progress=False)
        encoders.append((res.key, pool, f_test))
        print(f"encoder seed {seed}: {res.key} ({'cached' if res.from_cache else 'trained'})",
              flush=True)
    runs = [(label, *VARIANTS[label]) for label in args.variants]
    if not args.no_oracle:
        runs.append((ORACLE, "label-diversity", {"base": "random"}))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = _resume(args.out / "draws.csv", [e[0] for e in encoders])
    done = {(r["variant"], r["budget"], r["draw"]) for r in rows}
    with (args.out / "draws.csv").open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        if f.tell() == 0:
            writer.writeheader()
        for draw in range(args.draws):  # draws outermost: an interrupted run is balanced
            key, pool, f_test = encoders[draw % len(encoders)]
            for budget in args.budgets:
                todo = [(label, name, params) for label, name, params in runs
                        if (label, budget, draw) not in done]
                if not todo:
                    continue
                picks = [cold_start_round(
                    pool, ColdStartRequest(name, params, budget, draw, allow_simulation=True),
                    true_labels=train.labels if label == ORACLE else None, explain=False,
                    ).indices for label, name, params in todo]
                aucs = score_picks(picks, pool, train.labels, f_test, test.labels, c, draw)
                for (label, _, _), sel, auc in zip(todo, picks, aucs, strict=True):
                    y = train.labels[sel]
                    row = {"variant": label, "budget": budget, "draw": draw, "encoder": key,
                           "coverage": class_coverage(y, c), "auc": auc,
                           "n_classes": int(np.unique(y).size), "selected": sel.tolist()}
                    writer.writerow(row)
                    rows.append(row)
                f.flush()
                print(f"draw {draw} budget {budget} done ({time.perf_counter() - t0:.0f}s)",
                      flush=True)
    rows = [r for r in rows if r["draw"] < args.draws and r["budget"] in args.budgets]
    table = summarise(rows, args.budgets, [r[0] for r in runs], c)
    (args.out / "table.md").write_text(table)
    (args.out / "meta.json").write_text(json.dumps(
        {"setting": args.setting, "n_train": len(train), "n_test": len(test), "classes": c,
         "encoders": [e[0] for e in encoders], "draws": args.draws, "budgets": args.budgets,
         "variants": {r[0]: [r[1], r[2]] for r in runs}}, indent=2, ensure_ascii=False))
    print(table)


def score_picks(picks: list[np.ndarray], pool: RoundPool, labels: np.ndarray,
                f_test: np.ndarray, test_labels: np.ndarray, c: int, draw: int) -> list[float]:
    """Test macro AUC of the round engine's classifier (:func:`medactive.rounds.fit_round`, the
    product's head) trained on each pick alone (identical picks are trained once)."""
    _, head_seed = round_seeds(draw, 2)
    test = pool.space.apply(f_test)
    auc: dict[tuple[int, ...], float] = {}
    for p in picks:
        key = tuple(sorted(p.tolist()))
        if key not in auc:
            rows = np.asarray(key, np.int64)
            model = fit_round(pool, rows, labels[rows], c, ClassifierConfig(), head_seed)
            auc[key] = macro_auc(test_labels, model.probabilities(test))
    return [auc[tuple(sorted(p.tolist()))] for p in picks]


FIELDS = ["variant", "budget", "draw", "encoder", "coverage", "auc", "n_classes", "selected"]


def _resume(path: Path, encoders: list[str]) -> list[dict]:
    """Rows already in ``path`` (an interrupted or shorter run with the same encoders)."""
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or any(r["encoder"] not in encoders for r in rows):
        path.unlink()  # another setting or encoder: start afresh
        return []
    return [{**r, "budget": int(r["budget"]), "draw": int(r["draw"]),
             "coverage": float(r["coverage"]), "auc": float(r["auc"]),
             "n_classes": int(r["n_classes"]), "selected": json.loads(r["selected"])}
            for r in rows]


def summarise(rows: list[dict], budgets: list[int], names: list[str], c: int) -> str:
    """Markdown: mean ± std AUC per budget (↑ above random's mean, ★ above kmeans-centroid's too),
    then coverage (mean, and in brackets the share of draws covering all ``c`` classes)."""
    def cell(name: str, b: int, field: str) -> np.ndarray:
        return np.array([r[field] for r in rows if r["variant"] == name and r["budget"] == b])

    ref = {b: (cell("random", b, "auc").mean() if "random" in names else np.nan,
               cell("kmeans-centroid", b, "auc").mean() if "kmeans-centroid" in names else np.nan)
           for b in budgets}
    head = "| variant | " + " | ".join(f"B={b} AUC" for b in budgets) + " | beats random at every B |"
    lines = [head, "|---|" + "---|" * (len(budgets) + 1)]
    for name in names:
        cells, wins = [], []
        for b in budgets:
            auc = cell(name, b, "auc")
            up = auc.mean() > ref[b][0]
            star = " ★" if up and auc.mean() > ref[b][1] else (" ↑" if up else "")
            wins.append(up)
            cells.append(f"{auc.mean():.3f} ± {auc.std():.3f}{star}")
        verdict = "—" if name == "random" else ("yes" if all(wins) else "no")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {verdict} |")
    lines += ["", f"Class coverage (mean share of the {c} classes; in brackets: draws with all {c}):",
              "", "| variant | " + " | ".join(f"B={b}" for b in budgets) + " |",
              "|---|" + "---|" * len(budgets)]
    for name in names:
        cells = []
        for b in budgets:
            cov, ncls = cell(name, b, "coverage"), cell(name, b, "n_classes")
            cells.append(f"{cov.mean():.2f} ({np.mean(ncls == c):.0%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
