"""Which encoder picks the first images, which one the classifier learns from, and how both
compare with the cold-start paper's authors' own picks (docs/coldstart.md, "Encoders").

For each setting of the cold-start study (``coldstart_settings.py``), each selection encoder
(``moco``: MoCo v2 pre-trained on the pool, ``imagenet``: EfficientNet-Lite0) and each label-free
start (random, TypiClust, ProbCover, HaCon on MoCo's map, and the authors' HaCon ordering for
BloodMNIST from github.com/cliangyu/CSVAL as a fixed list), ``--repeats`` selections per budget
(the paper's 0.13-1 %: 16, 24, 59, 119) are scored by the round engine's classifier (head mode,
:func:`medactive.rounds.fit_round`) trained on the picks alone, on EACH evaluation encoder's
features: test macro AUC. Selection on encoder A, classifier on encoder B are the pairs.

Every encoding comes from the registry's cache (:func:`medactive.models.encode_pool`); the
long-tailed and 4-class settings are subsets of BloodMNIST, so their ImageNet features are the
full set's rows (one extraction). The authors' ordering is restricted to each subset's images
(their positions follow the ids). Repeat ``r`` seeds the selection with ``r`` and the head with
the engine's round seed of ``(r, 2)``.

    OMP_NUM_THREADS=1 python benchmarks/encoder_coldstart_evidence.py \\
        --settings blood,blood-lt20,blood-grey,blood-gm4 --repeats 10 --out docs/results/encoders
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coldstart_settings import build_setting

from medactive.coldstart.pipeline import ColdStartRequest
from medactive.data import DatasetSplits
from medactive.metrics import macro_auc
from medactive.models import check_encoder, encode_pool
from medactive.rounds import ClassifierConfig, RoundPool, cold_start_round, fit_round, round_seeds

AUTHORS = Path(__file__).resolve().parent / "reference" / "csval-bloodmnist-hard_idx.npy"
BUDGETS = (16, 24, 59, 119)
STARTS = {"moco": ("random", "typiclust", "probcover", "hacon"),
          "imagenet": ("typiclust", "probcover")}


def _encode(name: str, splits: DatasetSplits, full: DatasetSplits | None
            ) -> tuple[RoundPool, np.ndarray]:
    """``(pool, test features)`` of a setting through encoder ``name`` (cached). Subsets of
    BloodMNIST (``full``) take the full set's ImageNet rows by id."""
    spec = check_encoder(name)
    if name == "imagenet" and full is not None:
        pool_full = encode_pool(spec, full.train.images)
        test_full = pool_full.encode(full.test.images)
        rows = {str(i): k for k, i in enumerate(full.train.ids)}
        trows = {str(i): k for k, i in enumerate(full.test.ids)}
        take = np.array([rows[str(i)] for i in splits.train.ids])
        ttake = np.array([trows[str(i)] for i in splits.test.ids])
        return (RoundPool(np.asarray(pool_full.features)[take], key=pool_full.key + "-subset"),
                np.asarray(test_full)[ttake])
    encoded = encode_pool(spec, splits.train.images)
    return RoundPool.from_encoded(encoded, splits.train.images), encoded.encode(splits.test.images)


def _authors(splits: DatasetSplits, full_ids: np.ndarray | None) -> np.ndarray | None:
    """The authors' ordering as positions in this setting's pool (restricted to its images)."""
    if not AUTHORS.exists():
        return None
    order = np.load(AUTHORS, allow_pickle=False)
    ids = full_ids if full_ids is not None else splits.train.ids
    position = {str(i): k for k, i in enumerate(splits.train.ids)}
    return np.array([position[str(ids[k])] for k in order if str(ids[k]) in position])


def _score(pool: RoundPool, test: np.ndarray, labels: np.ndarray, test_labels: np.ndarray,
           picks: np.ndarray, n_classes: int, repeat: int) -> float:
    _, head_seed = round_seeds(repeat, 2)
    model = fit_round(pool, np.sort(picks), labels[np.sort(picks)], n_classes,
                      ClassifierConfig(), head_seed)
    return float(macro_auc(test_labels, model.probabilities(pool.space.apply(test))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="blood,blood-lt20,blood-grey,blood-gm4")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", default="bloodmnist")
    parser.add_argument("--out", type=Path, default=Path("runs/encoder-coldstart"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    done = set()
    if results.exists():
        for line in results.read_text().splitlines():
            r = json.loads(line)
            done.add((r["setting"], r["selection"], r["start"], r["budget"], r["repeat"]))
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    full = build_setting("blood", args.data)
    for setting in args.settings.split(","):
        splits = build_setting(setting, args.data)
        subset = setting in ("blood-lt20", "blood-gm4")
        t0 = time.perf_counter()
        encoded = {name: _encode(name, splits, full if subset else None)
                   for name in ("moco", "imagenet")}
        print(f"{setting}: encoders ready in {time.perf_counter() - t0:.0f} s", flush=True)
        labels, test_labels = splits.train.labels, splits.test.labels
        n_classes = splits.train.n_classes
        authors = _authors(splits, full.train.ids if subset else None)
        jobs = [(sel, start) for sel, starts in STARTS.items() for start in starts]
        if authors is not None:
            jobs.append(("authors", "hacon (authors' picks)"))
        for sel, start in jobs:
            t0 = time.perf_counter()
            for budget in BUDGETS:
                for rep in range(args.repeats):
                    if (setting, sel, start, budget, rep) in done:
                        continue
                    if sel == "authors":
                        assert authors is not None
                        picks = authors[:budget]
                    else:
                        request = ColdStartRequest(start, {}, budget, rep)
                        picks = cold_start_round(encoded[sel][0], request, explain=False).indices
                    aucs = {ev: _score(encoded[ev][0], encoded[ev][1], labels, test_labels,
                                       picks, n_classes, rep) for ev in ("moco", "imagenet")}
                    record = {"setting": setting, "selection": sel, "start": start,
                              "budget": budget, "repeat": rep,
                              "classes": int(np.unique(labels[picks]).size),
                              **{f"auc_{ev}": a for ev, a in aucs.items()}}
                    with results.open("a") as f:
                        f.write(json.dumps(record) + "\n")
            print(f"  {sel} {start}: {time.perf_counter() - t0:.0f} s", flush=True)
    _report(results, args.out, args.repeats)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _report(results: Path, out: Path, repeats: int) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    lines = ["# Encoders for the label-free start", "",
             "Test macro AUC (mean ± std over repeats) of the round engine's head trained on the "
             "picks alone, on the moco / imagenet evaluation features.", ""]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        lines += [f"## {setting}", "", "| selection | start | " + " | ".join(
            f"{b}: head on moco | {b}: head on imagenet" for b in BUDGETS) + " |",
            "|---|---|" + "---|---|" * len(BUDGETS)]
        for sel, start in dict.fromkeys((r["selection"], r["start"]) for r in rows
                                        if r["setting"] == setting):
            cells = []
            for b in BUDGETS:
                for ev in ("moco", "imagenet"):
                    a = np.array([r[f"auc_{ev}"] for r in rows if (r["setting"], r["selection"],
                                  r["start"], r["budget"]) == (setting, sel, start, b)])
                    cells.append(f"{a.mean():.3f} ± {a.std(ddof=1):.3f}" if a.size > 1 else
                                 (f"{a.mean():.3f}" if a.size else "-"))
            lines.append(f"| {sel} | {start} | " + " | ".join(cells) + " |")
        lines.append("")
    (out / "README.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
