"""A round's classifier fit, as the round engine runs it (one torch thread) against torch's
default thread count, idle and under load, side by side in one run.

The head is ``(M, D) @ (D, C)``: far too small for intra-op threads to pay, and those threads
spin when other processes share the cores (docs/benchmarks.md, "Fitting a round's classifier").
``--load N`` starts N busy processes for the "under load" half, so the contention is the same
on every run; the machine's own load average is printed too.

    python benchmarks/bench_head_fit.py --load 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import torch

from medactive.models import HeadConfig, fit_head
from medactive.rounds import ClassifierConfig
from medactive.rounds.classifier import fit_head_classifier


def _spin(stop: mp.synchronize.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def _time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _rows(sizes: list[int], dim: int, classes: int, repeats: int) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(0)
    out = []
    default_threads = torch.get_num_threads()
    for m in sizes:
        x = rng.standard_normal((m, dim)).astype(np.float32)
        y = rng.integers(0, classes, m)
        torch.set_num_threads(default_threads)
        default = _time(lambda x=x, y=y: fit_head(x, y, classes, HeadConfig()), repeats)
        engine = _time(lambda x=x, y=y: fit_head_classifier(x, y, classes, ClassifierConfig(), 0),
                       repeats)
        out.append((m, default, engine))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,100,1000,11959")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=4, help="busy processes for the loaded half")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"cores {os.cpu_count()}, torch default threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.2f}; median of {args.repeats}; "
          f"D = {args.dim}, C = {args.classes}, 200 epochs, batch 256\n")
    idle = _rows(sizes, args.dim, args.classes, args.repeats)
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(args.load)]
    for p in spinners:
        p.start()
    try:
        time.sleep(1.0)
        loaded = _rows(sizes, args.dim, args.classes, args.repeats)
        load_avg = os.getloadavg()[0]
    finally:
        stop.set()
        for p in spinners:
            p.join()
    print(f"| labels M | default threads, as found | engine (1 thread), as found | "
          f"default threads, +{args.load} busy | engine, +{args.load} busy | "
          "default / engine under load |")
    print("|---:|---:|---:|---:|---:|---:|")
    for (m, d0, e0), (_, d1, e1) in zip(idle, loaded, strict=True):
        print(f"| {m:,} | {d0:.2f} s | {e0:.2f} s | {d1:.2f} s | {e1:.2f} s | {d1 / e1:.1f}x |")
    print(f"\nload average with the busy processes: {load_avg:.2f}")


if __name__ == "__main__":
    main()
