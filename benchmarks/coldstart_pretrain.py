"""Pre-train (and cache) the MoCo v2 encoders of the cold-start study, one per setting and seed.

Every run records the whole map catalogue plus the forward-only probe map (``--probe-pairs``),
so docs/coldstart.md's map and selection tables need no further pre-training. The probe uses a
forked RNG, so the encoder equals the one a run without the probe would train.

Usage::

    nice -n 10 env OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/coldstart_pretrain.py \\
        --settings blood blood-lt20 blood-grey blood-gm4 --seeds 0 1
"""

from __future__ import annotations

import argparse
import time

from coldstart_settings import SETTINGS, build_setting

from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import MocoConfig


def study_config(seed: int, probe_pairs: int = 2, **overrides: object) -> MocoConfig:
    """The study's MoCo configuration: library defaults + the probe, single-threaded."""
    return MocoConfig(seed=seed, probe_pairs=probe_pairs, num_threads=1, **overrides)  # type: ignore[arg-type]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="bloodmnist")
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--probe-pairs", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None)
    args = p.parse_args()
    over = {} if args.epochs is None else {"epochs": args.epochs}
    for setting in args.settings:
        train = build_setting(setting, args.data).train
        for seed in args.seeds:
            t0 = time.perf_counter()
            res = pretrain_moco(train.images, study_config(seed, args.probe_pairs, **over),
                                progress=False)
            print(f"{setting} seed {seed}: encoder {res.key} "
                  f"{'cached' if res.from_cache else 'trained'} in "
                  f"{time.perf_counter() - t0:.0f}s ({len(train)} images)", flush=True)


if __name__ == "__main__":
    main()
