"""Backbone throughput on CPU: contiguous (NCHW) vs channels_last (NHWC) memory format.

Prints images/second for a forward pass (eval, no grad) and a forward+backward pass (train mode)
of each backbone, side by side for both memory formats, so that
``medactive.models.device.memory_format`` can be chosen from a measurement, not folklore.

Each figure is the best of ``--reps`` timed runs after one warm-up run, the two formats timed
alternately: on a shared machine the best run is the one least disturbed by other processes.

Usage:
    .venv/bin/python benchmarks/bench_backbones.py --threads 2 --batch 256 --reps 3
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch
from torch import nn

from medactive.models.backbones import build_backbone

# (label, backbone name, image size); the CIFAR stem is what "resnet18" picks below 128 px.
# EfficientNet-Lite0 is timed with random weights: speed does not depend on them.
CASES = [
    ("compact", "compact", 28),
    ("resnet18 (CIFAR stem)", "resnet18-cifar", 28),
    ("efficientnet-lite0", "efficientnet-lite0", 64),
]
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def _steps(model: nn.Module, x: torch.Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    """Forward (eval, no grad) and forward+backward (train) closures over ``model`` and ``x``."""

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(x)

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()

    return forward, forward_backward


def compare(name: str, size: int, channels: int, batch: int,
            reps: int) -> dict[str, tuple[float, float]]:
    """Images/second ``(forward, forward+backward)`` per memory format.

    The formats are timed alternately (A B A B ...) after one warm-up each (allocator, oneDNN
    kernel selection), so load from other processes hits both alike; the best run is kept.
    """
    x = torch.randn(batch, channels, size, size)
    steps = {}
    for fmt_name, fmt in FORMATS.items():
        torch.manual_seed(0)  # same weights for both formats
        model = build_backbone(name, in_channels=channels, image_size=size)
        steps[fmt_name] = _steps(model.to(memory_format=fmt), x.contiguous(memory_format=fmt))
    result: dict[str, list[float]] = {f: [] for f in FORMATS}
    for which in (0, 1):
        best = dict.fromkeys(FORMATS, float("inf"))
        for f in FORMATS:
            steps[f][which]()
        for _ in range(reps):
            for f in FORMATS:
                start = time.perf_counter()
                steps[f][which]()
                best[f] = min(best[f], time.perf_counter() - start)
        for f in FORMATS:
            result[f].append(batch / best[f])
    return {f: (v[0], v[1]) for f, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reps", type=int, default=3, help="timed runs per figure (best kept)")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="subset of backbone names to run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"threads={torch.get_num_threads()}, batch={args.batch}, channels={args.channels}, "
          f"best of {args.reps}")
    header = f"{'backbone':<24}{'px':>4}  {'pass':<17}" + "".join(f"{f:>15}" for f in FORMATS)
    print(header + f"{'CL / contig':>13}")
    print("-" * (len(header) + 13))
    for label, name, size in CASES:
        if args.only and name not in args.only and label not in args.only:
            continue
        results = compare(name, size, args.channels, args.batch, args.reps)
        for i, pass_name in enumerate(("forward", "forward+backward")):
            row = [results[f][i] for f in FORMATS]
            cells = "".join(f"{v:>11.0f} im/s" for v in row)
            print(f"{label:<24}{size:>4}  {pass_name:<17}{cells}{row[1] / row[0]:>12.2f}x")


if __name__ == "__main__":
    main()
