"""Encoders of the registry: feature-extraction speed and memory, and a 200k-image lazy pool.

Steps (run all, or name some); every measurement runs in a fresh subprocess, one after the
other, so its peak resident memory (``ru_maxrss``) is its own:

* ``speed`` — images/s of feature extraction through the feature cache (``encode_pool``, cold
  cache: forward passes plus writing the cache entry), at 64 and 224 px, for

  - ``moco``: the compact CNN MoCo trains (random weights: speed does not depend on them), at
    the image's own size; plus one epoch of MoCo v2 pre-training (augmented pairs/s), the cost
    that dominates a first ``moco`` query;
  - ``imagenet``: EfficientNet-Lite0 (bundled ImageNet weights), which sees every image at
    224 px (smaller ones are upsampled, so 64 and 224 px pools cost the same);
  - ``hf``: a DINOv2-small-sized ``transformers`` model (12 layers, width 384, patch 14, input
    224: the shape of ``facebook/dinov2-small``) with *random* weights — no download, and
    weights do not change speed;

  with the time to read the finished entry back (a later round's cost) and peak RSS.
* ``scale`` — a lazy pool of the first 50k, 100k and 200k images of ``bench_scale.py``'s
  200,000-image store (built by it when missing) through ``imagenet``: each N in its own
  process encodes its first ``--scale-images`` images, then is interrupted (the cache is
  resumable: the run stops on a progress callback, exactly like a kill between blocks); peak
  RSS per N shows whether memory grows with the pool. A second 200k process resumes the entry
  and must start where the first stopped. (The full 200k pass at 224 px is hours on a 2-core
  CPU; it is projected from the measured rate, not run.)

    python benchmarks/bench_encoders.py [speed] [scale] --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"
STEPS = ("speed", "scale")
DINOV2_SMALL = {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                "intermediate_size": 1536, "patch_size": 14, "image_size": 518,
                "layerscale_value": 1.0}
DINOV2_PROCESSOR = {"image_processor_type": "BitImageProcessor", "do_center_crop": True,
                    "crop_size": {"height": 224, "width": 224}, "size": {"shortest_edge": 256},
                    "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
                    "image_std": [0.229, 0.224, 0.225], "do_rescale": True,
                    "rescale_factor": 1 / 255}


def _child(step: str, work: Path, threads: int, **kwargs: object) -> dict:
    """Run ``step`` in a fresh interpreter; its JSON result includes its own peak RSS."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "MEDACTIVE_PROGRESS": "0", "OMP_NUM_THREADS": str(threads),
           "BENCH_THREADS": str(threads)}
    cmd = [sys.executable, str(HERE), "--work", str(work), "--child", step,
           "--kwargs", json.dumps(kwargs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _finish(result: dict) -> None:
    result["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(result))


def _threads() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))


def _pool(n: int, size: int) -> np.ndarray:
    """``n`` BloodMNIST training images resized to ``size`` px (bicubic), uint8 RGB."""
    from PIL import Image

    from medactive.data import load_medmnist

    blood = load_medmnist(os.environ.get("BLOODMNIST", str(HERE.parents[2] / "shared" / "data"
                                                             / "bloodmnist.npz")))
    src = blood.train.images[:n]
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size),
                                                            Image.Resampling.BICUBIC))
                     for im in src])


def hf_dinov2_small(work: Path) -> Path:
    """A randomly initialised DINOv2-small-sized model saved under ``work`` (reused)."""
    folder = work / "dinov2-small-random"
    if not (folder / "config.json").is_file():
        import torch
        import transformers

        torch.manual_seed(0)
        transformers.Dinov2Model(transformers.Dinov2Config(**DINOV2_SMALL)).save_pretrained(
            folder)
        (folder / "preprocessor_config.json").write_text(json.dumps(DINOV2_PROCESSOR))
    return folder


# --------------------------------------------------------------------------- children
def child_extract(work: Path, encoder: str, size: int, n: int) -> None:
    from medactive.models.encoders import EncoderSpec, check_encoder
    from medactive.models.features import EncodedPool, encode_pool

    _threads()
    images = _pool(n, size)
    cache = Path(tempfile.mkdtemp(dir=work))
    t0 = time.perf_counter()
    if encoder == "moco":
        from medactive.models import build_backbone

        # the encoder MoCo trains, random weights, through the same cached path as a
        # trained one's further image sets (EncodedPool.encode)
        pool = EncodedPool(EncoderSpec("moco"), np.zeros((0, 0), np.float32), "bench",
                           cache_root=cache, _encoder=build_backbone("compact", 3, size),
                           _identity={"encoder": {"moco": "bench"}, "channels": 3})
        pool.encode(images, progress=False)
        meta = next((cache / "feature-cache").glob("*/meta.json"))
        rate = json.loads(meta.read_text())["images_per_second"]
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        pool.encode(images, progress=False)
    else:
        name = "imagenet" if encoder == "imagenet" else f"hf:{hf_dinov2_small(work)}"
        spec = check_encoder(name)
        pool = encode_pool(spec, images, cache_root=cache, progress=False)
        rate = pool.info["images_per_second"]
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = encode_pool(spec, images, cache_root=cache, progress=False)
        assert again.from_cache
        np.asarray(again.features).sum()  # read every row back
    hit = time.perf_counter() - t1
    _finish({"encoder": encoder, "size": size, "n": n, "images_per_second": rate,
             "total_s": total, "cache_hit_s": hit})


def child_moco_epoch(work: Path, size: int, n: int) -> None:
    from medactive.models.contrastive import pretrain_moco
    from medactive.models.contrastive_config import MocoConfig, fit_to_pool

    _threads()
    images = _pool(n, size)
    cfg = fit_to_pool(MocoConfig(epochs=1, warmup_epochs=0), n)
    result = pretrain_moco(images, cfg, cache_root=Path(tempfile.mkdtemp(dir=work)),
                           progress=False)
    _finish({"encoder": "moco pre-training (1 epoch)", "size": size, "n": n,
             "pairs_per_second": result.images_per_second})


class _Stop(Exception):
    """Raised from the progress listener: the run stops between blocks, as after a kill."""


def child_scale(work: Path, n: int, stop_after: int, cache: str) -> None:
    from medactive.data.imagestore import ImageStore
    from medactive.models.encoders import check_encoder
    from medactive.models.features import encode_pool
    from medactive.progress import listen

    _threads()
    info = json.loads((work / "store.json").read_text())
    images = ImageStore.open(info["folder"]).images.subset(np.arange(n))
    seen: list[int] = []

    def heard(desc: str, done: int, total: int | None) -> None:
        seen.append(done)
        if done - seen[0] >= stop_after:
            raise _Stop

    t0 = time.perf_counter()
    try:
        with listen(heard):
            encode_pool(check_encoder("imagenet"), images, cache_root=Path(cache),
                        progress=False)
    except _Stop:
        pass
    seconds = time.perf_counter() - t0
    _finish({"n": n, "started_at": seen[0], "stopped_at": seen[-1], "seconds": seconds,
             "images_per_second": (seen[-1] - seen[0]) / seconds})


# --------------------------------------------------------------------------- steps
def run_speed(work: Path, threads: int, counts: dict[str, int]) -> None:
    print(f"speed: threads={threads}; load at start: {os.getloadavg()}", flush=True)
    rows = []
    for size in (64, 224):
        for encoder in ("moco", "imagenet", "hf"):
            rows.append(_child("extract", work, threads, encoder=encoder, size=size,
                               n=counts[encoder]))
            print(json.dumps(rows[-1]), flush=True)
        rows.append(_child("moco_epoch", work, threads, size=size,
                           n=counts["moco_epoch_64" if size == 64 else "moco_epoch_224"]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"load at end: {os.getloadavg()}")
    print("| encoder | px | images | images/s | cold wall s | cache hit s | peak RSS GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rate = r.get("images_per_second", r.get("pairs_per_second"))
        print(f"| {r['encoder']} | {r['size']} | {r['n']} | {rate:.1f} | "
              f"{r.get('total_s', float('nan')):.1f} | {r.get('cache_hit_s', float('nan')):.2f} | "
              f"{r['peak_rss_gib']:.2f} |")


def run_scale(work: Path, threads: int, sizes: list[int], stop_after: int) -> None:
    if not (work / "store.json").is_file():
        subprocess.run([sys.executable, str(HERE.parent / "bench_scale.py"), "--work", str(work),
                        "folder", "build"], check=True,
                       env={**os.environ, "PYTHONPATH": str(SRC)})
    print(f"scale: threads={threads}; load at start: {os.getloadavg()}", flush=True)
    rows = []
    cache = Path(tempfile.mkdtemp(dir=work))
    for n in sizes:
        rows.append(_child("scale", work, threads, n=n, stop_after=stop_after,
                           cache=str(cache / str(n))))
        print(json.dumps(rows[-1]), flush=True)
    resumed = _child("scale", work, threads, n=sizes[-1], stop_after=stop_after,
                     cache=str(cache / str(sizes[-1])))
    print(json.dumps(resumed), flush=True)
    print(f"load at end: {os.getloadavg()}")
    print("| pool N | images encoded | images/s | peak RSS GiB |")
    print("|---:|---:|---:|---:|")
    for r in [*rows, resumed]:
        print(f"| {r['n']:,} | {r['started_at']:,}–{r['stopped_at']:,} | "
              f"{r['images_per_second']:.1f} | {r['peak_rss_gib']:.2f} |")
    rate = np.median([r["images_per_second"] for r in rows])
    print(f"projected full pass of {sizes[-1]:,} images at {rate:.1f} images/s: "
          f"{sizes[-1] / rate / 3600:.1f} h")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("steps", nargs="*", help=f"any of {', '.join(STEPS)} (default: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/medactive-scale"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--counts", default='{"moco": 2000, "imagenet": 300, "hf": 150, '
                    '"moco_epoch_64": 1000, "moco_epoch_224": 256}',
                    help="images per measurement (JSON)")
    ap.add_argument("--sizes", default="50000,100000,200000")
    ap.add_argument("--scale-images", type=int, default=1000,
                    help="images each scale process encodes before it is interrupted")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        {"extract": child_extract, "moco_epoch": child_moco_epoch,
         "scale": child_scale}[args.child](args.work, **json.loads(args.kwargs))
        return
    steps = args.steps or list(STEPS)
    if "speed" in steps:
        run_speed(args.work, args.threads, json.loads(args.counts))
    if "scale" in steps:
        run_scale(args.work, args.threads, [int(s) for s in args.sizes.split(",")],
                  args.scale_images)


if __name__ == "__main__":
    main()
