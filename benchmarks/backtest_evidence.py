"""Back-tests of the product's own loop on BloodMNIST and its variants: what a user gets per
expert label spent, validation draws included, paired by repeat.

Two uses (docs/results.md, "The product's loop, per expert label"):

* the validation sample's policy and the head's feature space (``--variants``): the default
  pipeline under each policy (hold-out as the product had it, cross-fitting, smaller shares, no
  sample), and on raw instead of standardised features;
* the defaults against random and the papers' methods (``--pipelines``) on the four settings of
  the cold-start study (``benchmarks/coldstart_settings.py``).

Every (setting, variant) is one back-test folder under ``--out`` (resumable: run the same
command again after a kill); the combined table is printed and written to ``--out/README.md``.

    OMP_NUM_THREADS=1 python benchmarks/backtest_evidence.py --settings blood,blood-lt20 \\
        --variants holdout-0.2,holdout-0.1,crossfit-0.2,crossfit-0.1,none,crossfit-0.2-raw \\
        --pipelines defaults --repeats 10 --out docs/results/validation
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from coldstart_settings import build_setting

from medactive.experiment.backtest import backtest_to_folder, encode_dataset
from medactive.rounds import ValidationPolicy
from medactive.rounds.backtest import BacktestData, BacktestPlan, parse_pipeline


def variant(name: str) -> tuple[ValidationPolicy, bool]:
    """``MODE-SHARE[-raw]`` or ``none`` -> (policy, standardise)."""
    raw = name.endswith("-raw")
    core = name.removesuffix("-raw")
    if core == "none":
        return ValidationPolicy("none", 0.0), not raw
    mode, share = core.rsplit("-", 1)
    return ValidationPolicy(mode, float(share)).check(), not raw  # type: ignore[arg-type]


def _table(rows: list[dict], variants: list[str], pipelines: list[str]) -> list[str]:
    spent = sorted({r["labels_spent"] for r in rows})
    lines = ["| setting | variant | pipeline | " + " | ".join(f"AUC @{n}" for n in spent)
             + " | mean abs. validation error |",
             "|---|---|---|" + "---|" * len(spent) + "---|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for v in variants:
            for p in pipelines:
                mine = [r for r in rows if (r["setting"], r["variant"], r["pipeline"])
                        == (setting, v, p)]
                if not mine:
                    continue
                cells = []
                for n in spent:
                    a = [r["auc"] for r in mine if r["labels_spent"] == n]
                    cells.append(f"{np.mean(a):.4f}" if a else "-")
                err = [abs(r["validation_auc"] - r["auc"]) for r in mine
                       if r.get("validation_auc") is not None]
                lines.append(f"| {setting} | {v} | {p} | " + " | ".join(cells)
                             + f" | {np.mean(err):.3f} |" if err else
                             f"| {setting} | {v} | {p} | " + " | ".join(cells) + " | - |")
    return lines


def _paired(rows: list[dict], base: str, variants: list[str], pipeline: str) -> list[str]:
    """Each variant minus ``base`` (same setting, repeat, round), mean and wins."""
    lines = [f"Paired differences against `{base}` ({pipeline}), mean over repeats "
             "(repeats at or above):", "",
             "| setting | variant | " + "labels spent: difference (wins) |", "|---|---|---|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        ref = {(r["repeat"], r["labels_spent"]): r["auc"] for r in rows
               if (r["setting"], r["variant"], r["pipeline"]) == (setting, base, pipeline)}
        for v in variants:
            if v == base:
                continue
            mine = {(r["repeat"], r["labels_spent"]): r["auc"] for r in rows
                    if (r["setting"], r["variant"], r["pipeline"]) == (setting, v, pipeline)}
            cells = []
            for n in sorted({k[1] for k in mine}):
                d = [mine[k] - ref[k] for k in mine if k[1] == n and k in ref]
                if d:
                    cells.append(f"@{n}: {np.mean(d):+.4f} ({int(np.sum(np.array(d) >= 0))}"
                                 f"/{len(d)})")
            lines.append(f"| {setting} | {v} | {', '.join(cells)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="blood,blood-lt20")
    parser.add_argument("--variants", default="crossfit-0.2")
    parser.add_argument("--pipelines", default="defaults")
    parser.add_argument("--budgets", default="16,16,32,64,128")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--data", default="bloodmnist")
    parser.add_argument("--out", type=Path, default=Path("runs/backtest-evidence"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    variants = [v for v in args.variants.split(",") if v]
    pipelines = tuple(parse_pipeline(p) for p in args.pipelines.split(","))
    budgets = tuple(int(b) for b in args.budgets.split(","))
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[dict] = []
    for setting in args.settings.split(","):
        splits = build_setting(setting, args.data)
        t0 = time.perf_counter()
        encoded, test_features, info = encode_dataset(splits.train, splits.test)
        print(f"{setting}: pool {len(splits.train)}, test {len(splits.test)}, encoder ready in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        for v in variants:
            policy, standardise = variant(v)
            pool = dataclasses.replace(encoded, standardise=standardise)
            data = BacktestData(pool, splits.train.labels, test_features, splits.test.labels,
                                splits.train.class_names, name=f"{setting} ({v})",
                                info={**info, "variant": v})
            plan = BacktestPlan(budgets, args.repeats, 0, pipelines, policy)
            t0 = time.perf_counter()
            folder = args.out / setting / v
            backtest_to_folder(data, plan, folder, progress=False)
            print(f"  {v}: {time.perf_counter() - t0:.0f} s", flush=True)
            for line in (folder / "backtest.jsonl").read_text().splitlines():
                rows.append({**json.loads(line), "setting": setting, "variant": v})
    names = [p.name for p in pipelines]
    text = ["# Back-test evidence", "", f"`{' '.join(sys.argv)}`", "",
            f"Load average after: {os.getloadavg()[0]:.2f}.", "", *_table(rows, variants, names),
            ""]
    if len(variants) > 1:
        text += [*_paired(rows, variants[0], variants, names[0]), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "README.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
