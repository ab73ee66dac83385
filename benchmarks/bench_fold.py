"""EfficientNet-Lite0 feature extraction on a CPU: the library's network against medactive's
inference fold (batch norms folded into the convolutions, stride-1 "SAME" padding built into
them, ReLU6 in place: :func:`medactive.models.pretrained.fold_for_inference`), side by side in
one process.

Both run the same bundled ImageNet weights on the same BloodMNIST images (64 px, upsampled to
224 px by the encoder as in every ``imagenet`` extraction), channels-last, gradients off, in the
batch size feature extraction picks for 224 px on a CPU (32). Each figure is the best of
``--reps`` passes over ``--images`` images, after one warm-up batch; the threads are set per
row. The last column is the largest difference between the two networks' features.

    python benchmarks/bench_fold.py [--images 256] [--reps 3] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[1] / "src"))

from medactive.data import load_medmnist  # noqa: E402
from medactive.models.classifier import images_to_tensor  # noqa: E402
from medactive.models.pretrained import build_efficientnet_lite0, fold_for_inference  # noqa: E402

BATCH = 32


def images_64(n: int) -> np.ndarray:
    """uint8 ``(n, 64, 64, 3)``: the first ``n`` BloodMNIST training images, upsampled."""
    from PIL import Image

    path = os.environ.get("BLOODMNIST", str(HERE.parents[2] / "shared" / "data" / "bloodmnist.npz"))
    train = load_medmnist(path).train.images[:n]
    return np.stack([np.asarray(Image.fromarray(im).resize((64, 64), Image.BICUBIC))
                     for im in train])


def passes(run, batches: list[torch.Tensor], reps: int) -> tuple[float, torch.Tensor]:
    """Best images/s over ``reps`` passes, and the last pass's features."""
    with torch.no_grad():
        run(batches[0])  # warm-up: oneDNN picks its kernels on the first call
        best, out = 0.0, torch.empty(0)
        for _ in range(reps):
            start = time.perf_counter()
            out = torch.cat([run(b) for b in batches])
            best = max(best, sum(len(b) for b in batches) / (time.perf_counter() - start))
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", default="1,2")
    args = ap.parse_args()

    model = build_efficientnet_lite0(3, pretrained=True).eval()
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    folded = fold_for_inference(model.net)
    pixels = images_64(args.images)
    batches = [images_to_tensor(pixels[s:s + BATCH], torch.device("cpu"))
               .contiguous(memory_format=torch.channels_last)
               for s in range(0, len(pixels), BATCH)]

    def library(x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear",
                                            align_corners=False)
        return model.net.extract_features(x).mean(dim=(2, 3))

    def fold(x: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear",
                                            align_corners=False)
        return folded.extract_features(x).mean(dim=(2, 3))

    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.images} images, "
          f"batch {BATCH}, best of {args.reps}")
    print("| threads | library img/s | folded img/s | speed-up | max abs feature diff |")
    print("|---:|---:|---:|---:|---:|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        lib_rate, lib_out = passes(library, batches, args.reps)
        fold_rate, fold_out = passes(fold, batches, args.reps)
        diff = float((lib_out - fold_out).abs().max())
        print(f"| {threads} | {lib_rate:.1f} | {fold_rate:.1f} | {fold_rate / lib_rate:.2f}x "
              f"| {diff:.1e} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
