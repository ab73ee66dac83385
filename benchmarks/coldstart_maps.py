"""How noisy is each dataset-map variant, and does it measure typicality? (docs/coldstart.md)

For one setting and the encoders pre-trained by ``coldstart_pretrain.py`` (seeds given), every
recorded map variant (``ContrastiveResult.maps``) is scored by:

* ``ties`` — share of images whose value equals the most common value (a hit map recorded over
  few iterations is mostly zeros; ties make "the hardest member" arbitrary);
* ``split-half`` — Spearman between the map averaged over odd and over even epochs of one run
  (noise of the recording alone, same encoder trajectory), mean over seeds;
* ``seeds`` — Spearman between the maps of two pre-training seeds (noise + encoder);
* ``typicality`` — Spearman with TypiClust typicality (1 / mean distance to the 20 nearest
  neighbours in the L2-normalised features of the same run); negative = harder is more typical,
  the paper's claim;
* ``majority`` — SIMULATION (reads labels): in a 16-cluster K-means partition, the share of
  clusters whose hardest member belongs to the cluster's majority class (the member nearest the
  centroid, and the expected share for a random member, are printed below the table);
* ``cost`` — extra compute of the variant relative to plain training (probe passes).

Usage::

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/coldstart_maps.py \\
        --data ../shared/data/bloodmnist.npz --setting blood --seeds 0 1 --out docs/results/coldstart/maps
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from coldstart_pretrain import study_config
from coldstart_settings import SETTINGS, build_setting
from scipy.stats import spearmanr
from threadpoolctl import threadpool_limits

from medactive.coldstart import kmeans, l2_normalise
from medactive.geometry import typicality
from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import ContrastiveResult


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="bloodmnist")
    p.add_argument("--setting", default="blood", choices=SETTINGS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--probe-pairs", type=int, default=2)
    p.add_argument("--last-epochs", type=int, nargs="+", default=[1, 3, 5, 10],
                   help="also report cross-seed stability of maps from only the last P epochs")
    p.add_argument("--plots", action="store_true",
                   help="also draw the seed's dataset map and embedding with HaCon's and "
                        "kmeans-centroid's B=16 picks")
    p.add_argument("--epochs", type=int, default=None, help="MoCo epochs (default MocoConfig)")
    p.add_argument("--limit", type=int, default=None, help="first N training images (smoke test)")
    p.add_argument("--out", type=Path, default=Path("docs/results/coldstart/maps"))
    return p.parse_args()


def rho(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation (NaN when one side is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def tie_share(x: np.ndarray) -> float:
    """Share of entries equal to the most common value."""
    _, counts = np.unique(np.round(x, 12), return_counts=True)
    return float(counts.max() / x.size)


def split_half(traj: np.ndarray) -> float:
    """Spearman between the odd- and even-epoch means of one ``(E, N)`` trajectory (NaN rows,
    epochs that recorded nothing, are skipped)."""
    rows = [t for t in traj if np.all(np.isfinite(t))]
    if len(rows) < 2:
        return float("nan")
    rows_arr = np.stack(rows)
    return rho(rows_arr[0::2].mean(0), rows_arr[1::2].mean(0))


def last_epochs_map(traj: np.ndarray, p: int) -> np.ndarray:
    """Mean of the last ``p`` epochs that recorded the variant."""
    rows = [t for t in traj if np.all(np.isfinite(t))]
    return np.stack(rows[-p:]).mean(0)


def majority_hit(labels: np.ndarray, clusters: np.ndarray, key: np.ndarray) -> float:
    """Share of clusters whose lowest-``key`` member has the cluster's majority true class."""
    hits = []
    for c in np.unique(clusters):
        m = np.flatnonzero(clusters == c)
        major = np.bincount(labels[m]).argmax()
        hits.append(labels[m[np.argmin(key[m])]] == major)
    return float(np.mean(hits))


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    threadpool_limits(1)
    train = build_setting(args.setting, args.data).train
    if args.limit:
        train = train.subset(np.arange(min(args.limit, len(train))))
    over = {} if args.epochs is None else {"epochs": args.epochs}
    runs: list[ContrastiveResult] = [
        pretrain_moco(train.images, study_config(s, args.probe_pairs, **over), progress=False)
        for s in args.seeds]
    names = list(runs[0].maps)
    x0 = l2_normalise(runs[0].features)
    typ = [typicality(l2_normalise(r.features), 20) for r in runs]
    clusters, cents = kmeans(x0, 16, 0)
    centroid_key = np.linalg.norm(x0 - cents[clusters], axis=1)
    labels = train.labels
    shares = [np.bincount(labels[clusters == c]).max() / (clusters == c).sum()
              for c in np.unique(clusters)]
    metas = [json.loads((Path(_cache_folder(r)) / "meta.json").read_text()) for r in runs]
    probe_cost = np.mean([m["probe_seconds"] / max(m["train_seconds"], 1e-9) for m in metas])

    lines = ["| map variant | mean | ties | split-half ρ | seeds ρ | ρ with typicality | "
             "hardest is majority (K=16) | extra compute |", "|---|---|---|---|---|---|---|---|"]
    rows = []
    for i, name in enumerate(names):
        conf = [r.maps[name] for r in runs]
        sh = np.nanmean([split_half(r.map_trajectory[:, i]) for r in runs])
        seeds = rho(conf[0], conf[1]) if len(runs) > 1 else float("nan")
        ty = np.mean([rho(c, t) for c, t in zip(conf, typ, strict=True)])
        maj = majority_hit(labels, clusters, conf[0])
        cost = f"+{probe_cost:.0%}" if name.startswith("probe:") else "0"
        row = {"variant": name, "mean": float(conf[0].mean()), "ties": tie_share(conf[0]),
               "split_half": sh, "seeds": seeds, "typicality": ty, "majority": maj}
        rows.append(row)
        lines.append(f"| `{name}` | {row['mean']:.4f} | {row['ties']:.0%} | {sh:.2f} | "
                     f"{seeds:.2f} | {ty:.2f} | {maj:.0%} ({round(maj * 16)}/16) | {cost} |")
    lines.append("")
    lines.append(f"Reference for *hardest is majority*: the member nearest the centroid "
                 f"{majority_hit(labels, clusters, centroid_key):.0%}; a random member "
                 f"{np.mean(shares):.0%} (mean majority share). Seeds: {args.seeds}; "
                 f"{len(train)} images; probe: {args.probe_pairs} pairs per image per epoch, "
                 f"{runs[0].config.probe_negatives} fixed negatives.")
    if len(runs) > 1:
        lines += ["", "Cross-seed Spearman of the map built from only the last P epochs:", "",
                  "| map variant | " + " | ".join(f"P={p}" for p in args.last_epochs) + " |",
                  "|---|" + "---|" * len(args.last_epochs)]
        for i, name in enumerate(names):
            cells = [rho(last_epochs_map(runs[0].map_trajectory[:, i], p),
                         last_epochs_map(runs[1].map_trajectory[:, i], p))
                     for p in args.last_epochs]
            lines.append(f"| `{name}` | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    table = "\n".join(lines) + "\n"
    out = args.out / args.setting
    out.mkdir(parents=True, exist_ok=True)
    (out / "maps.md").write_text(table)
    (out / "maps.json").write_text(json.dumps(
        {"rows": rows, "encoders": [r.key for r in runs], "probe_cost": probe_cost}, indent=2))
    print(table)
    if args.plots:
        make_plots(runs[0], train, out)


def make_plots(res: ContrastiveResult, train, out: Path) -> None:
    """Dataset map (colour = true class, simulation view) with HaCon's B=16 picks, and the 2-D
    embedding with HaCon's (top) and kmeans-centroid's picks."""
    from medactive.coldstart.pipeline import ColdStartRequest
    from medactive.coldstart.plots import plot_dataset_map, plot_embedding
    from medactive.rounds import RoundPool, cold_start_round

    pool = RoundPool(res.features, key=res.key, confidence=res.confidence,
                     variability=res.variability, maps=res.maps or None)
    names = list(train.class_names)
    for strategy in ("hacon", "kmeans-centroid"):
        sel = cold_start_round(pool, ColdStartRequest(strategy, {}, 16, 0),
                               explain=False).indices
        plot_dataset_map(res.confidence, res.variability, sel,
                         out / f"dataset_map_{strategy}.png", groups=train.labels,
                         group_names=names,
                         title=f"Dataset map ({res.config.map_name}), {strategy} B=16")
        plot_embedding(res.features, sel, out / f"embedding_{strategy}.png", groups=train.labels,
                       group_names=names, title=f"MoCo v2 features, {strategy} B=16")


def _cache_folder(res: ContrastiveResult) -> Path:
    from medactive.data import cache_dir

    return cache_dir() / "encoders" / res.key


if __name__ == "__main__":
    main()
