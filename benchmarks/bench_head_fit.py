"""A round's classifier fit, as the round engine runs it, against the former recipe, idle and
under load, side by side in one run.

* **former, default threads**: the head as medactive fitted it before (``nn.Linear`` under
  ``nn.Dropout``, autograd, ``torch.optim.Adam``, masks from ``torch.bernoulli_``) with torch's
  default thread count: reproduced here, as the reference;
* **former, 1 thread**: the same, on one thread;
* **engine**: :func:`medactive.rounds.classifier.fit_head_classifier` (one thread, hand-written
  gradients, 16-bit PCG64 masks: :mod:`medactive.models.head`).

Same epochs, batch size and optimiser in all three. The head is ``(M, D) @ (D, C)``: far too
small for intra-op threads to pay, and those threads spin when other processes share the cores
(docs/benchmarks.md, "Fitting a round's classifier"). ``--load N`` starts N busy processes for
the "under load" half, so the contention is the same on every run; the machine's own load
average is printed too.

    python benchmarks/bench_head_fit.py --load 4
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import torch

from medactive.models import HeadConfig
from medactive.rounds import ClassifierConfig
from medactive.rounds.classifier import fit_head_classifier


def former_fit_head(x: np.ndarray, y: np.ndarray, classes: int, cfg: HeadConfig) -> None:
    """The head as it was fitted before medactive.models.head: autograd, torch.optim.Adam,
    torch's dropout."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    head, drop = torch.nn.Linear(x.shape[1], classes), torch.nn.Dropout(cfg.dropout)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    bs = min(cfg.batch_size or len(x), len(x))
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(x), generator=gen)
        for start in range(0, len(x), bs):
            idx = perm[start:start + bs]
            loss = torch.nn.functional.cross_entropy(head(drop(xt[idx])), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


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


def _rows(sizes: list[int], dim: int, classes: int, repeats: int
          ) -> list[tuple[int, float, float, float]]:
    rng = np.random.default_rng(0)
    out = []
    default_threads = torch.get_num_threads()
    for m in sizes:
        x = rng.standard_normal((m, dim)).astype(np.float32)
        y = rng.integers(0, classes, m)
        former = []
        for threads in (default_threads, 1):
            torch.set_num_threads(threads)
            former.append(_time(lambda x=x, y=y: former_fit_head(x, y, classes, HeadConfig()),
                                repeats))
        torch.set_num_threads(default_threads)
        engine = _time(lambda x=x, y=y: fit_head_classifier(x, y, classes, ClassifierConfig(), 0),
                       repeats)
        out.append((m, former[0], former[1], engine))
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
    for title, rows in (("as found", idle), (f"+{args.load} busy processes", loaded)):
        print(f"\n{title}\n\n| labels M | former, default threads | former, 1 thread | engine | "
              "former (default threads) / engine |")
        print("|---:|---:|---:|---:|---:|")
        for m, d, one, e in rows:
            print(f"| {m:,} | {d:.2f} s | {one:.2f} s | {e:.2f} s | {d / e:.1f}x |")
    print(f"\nload average with the busy processes: {load_avg:.2f}")


if __name__ == "__main__":
    main()
