"""Write a grey-scale (1-channel) copy of a MedMNIST colour ``.npz`` (default: BloodMNIST).

Used by the acquisition evidence (docs/results.md, "Acquisition defaults") to check a strategy on
a second, harder variant built from the data on disk: luminance ``0.299 R + 0.587 G + 0.114 B``
(ITU-R BT.601), rounded to uint8, same splits and labels.

    python benchmarks/grey_bloodmnist.py ../shared/data/bloodmnist.npz runs/data/bloodmnist_grey.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def to_grey(images: np.ndarray) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 -> ``(N, H, W)`` uint8 luminance; grey input is returned as is."""
    if images.ndim == 3:
        return images
    lum = images[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(np.rint(lum), 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    with np.load(args.source) as npz:
        arrays = {k: (to_grey(npz[k]) if k.endswith("_images") else npz[k]) for k in npz.files}
    args.target.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.target.with_name(args.target.stem + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.target)
    print(f"wrote {args.target}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
