"""Pools of a hospital's size: the decoded-image store, lazy rounds, 1M-feature scoring, Ray.

Every step prints its figures side by side; each measured step runs in a fresh subprocess so its
peak resident memory (``ru_maxrss``) is its own. Torch runs 1 thread per process
(``BENCH_THREADS``): on a shared 2-core machine two OpenMP threads made the scoring loops up to
30x slower (docs/benchmarks.md). Steps (run all, or name some):

* ``folder``  — a 200,000-image folder of 64x64 RGB PNGs made by upsampling and augmenting
  BloodMNIST (train+val+test), plus ``labels.csv``; reused when present.
* ``build``   — decode the folder into the store (worker processes); images/s.
* ``rounds``  — a full acquisition round on lazy views of the first 50k, 100k and 200k images
  (features through the prefetching loader, entropy + AEIG scoring, top-B selection): time and
  peak RSS per N.
* ``lazy``    — feature-extraction throughput on the same 50k images: in memory vs the lazy store
  path, plus the raw read throughput of the store (``preadv``), a ``numpy.memmap`` of the same
  chunks and zarr (when installed), sequential and random batches.
* ``ab``      — the same comparison as alternated passes (in memory, lazy, in memory, ...) on
  the first 10,000 images, so a changing load hits both paths alike.
* ``million`` — 1,000,000 x 512 features, 2,000 evaluation images: AEIG, BALD, CoreSet, BADGE
  (and EPIG when registered): time and peak RSS each.
* ``ray``     — the 50k round's scoring sharded over a local Ray cluster of 2 workers vs the
  single process: identical picks and the overhead ratio.

    python benchmarks/bench_scale.py --work /tmp/medactive-scale [steps...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"
STEPS = ("folder", "build", "rounds", "lazy", "ab", "million", "ray")


def _gib(kib: int) -> float:
    return kib / 2**20


def _child(step: str, work: Path, **kwargs: object) -> dict:
    """Run ``step`` in a fresh interpreter; return its JSON result plus its peak RSS."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
           "MEDACTIVE_PROGRESS": "0"}
    cmd = [sys.executable, str(HERE), "--work", str(work), "--child", step,
           "--kwargs", json.dumps(kwargs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"step {step} failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN is the max over finished children; a smaller child after a bigger one
    # reports the old maximum, so every child also reports its own ru_maxrss.
    result["peak_rss_gib"] = _gib(result.get("self_maxrss_kib", max(peak, before)))
    return result


def _finish(result: dict) -> None:
    result["self_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


# --------------------------------------------------------------------------- the folder
def _augment_block(args: tuple) -> int:
    """Write PNGs ``lo..hi`` of the synthetic pool (worker process)."""
    from PIL import Image

    lo, hi, folder, size, seed = args
    from medactive.data import load_medmnist

    blood = load_medmnist(os.environ.get("BLOODMNIST", str(HERE.parents[2] / "shared" / "data"
                                                             / "bloodmnist.npz")))
    source = np.concatenate([blood.train.images, blood.val.images, blood.test.images])
    for i in range(lo, hi):
        rng = np.random.default_rng([seed, i])
        img = source[i % source.shape[0]]
        img = np.rot90(img, int(rng.integers(4)))
        if rng.random() < 0.5:
            img = img[:, ::-1]
        # random crop of 22..28 px, upsampled to `size`, with a brightness/contrast jitter
        side = int(rng.integers(22, 29))
        y, x = rng.integers(0, 28 - side + 1, 2)
        crop = np.ascontiguousarray(img[y : y + side, x : x + side])
        pil = Image.fromarray(crop).resize((size, size), Image.Resampling.BICUBIC)
        arr = np.asarray(pil).astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12)
        out = Path(folder) / f"{i // 10000:03d}" / f"img{i:06d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(out, compress_level=1)
    return hi - lo


def make_folder(work: Path, n: int, size: int = 64) -> Path:
    """The synthetic pool's folder (reused when complete)."""
    from concurrent.futures import ProcessPoolExecutor

    folder = work / "folder"
    done = folder / "DONE"
    if done.is_file() and int(done.read_text()) == n:
        return folder
    blocks = [(lo, min(n, lo + 5000), str(folder), size, 0) for lo in range(0, n, 5000)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        made = sum(pool.map(_augment_block, blocks))
    done.write_text(str(made))
    print(f"folder: {made} PNGs in {time.perf_counter() - t0:.0f} s -> {folder}")
    return folder


def folder_files(work: Path, n: int | None = None) -> list[Path]:
    """The first ``n`` PNGs of the synthetic folder, in order."""
    files = sorted((work / "folder").glob("*/img*.png"))
    return files if n is None else files[:n]


# --------------------------------------------------------------------------- children
def child_build(work: Path, n: int) -> None:
    from medactive.data.imagestore import StoreSettings
    from medactive.data.store import build_store, hash_files

    files = folder_files(work, n)
    t0 = time.perf_counter()
    hashes = hash_files(files, progress=False)
    t_hash = time.perf_counter() - t0
    t0 = time.perf_counter()
    store = build_store(files, StoreSettings(size=64, channels=3), hashes=hashes,
                        root=work / "stores", progress=False)
    t_build = time.perf_counter() - t0
    _finish({"n": len(files), "hash_s": t_hash, "build_s": t_build, "folder": str(store.folder),
             "workers": os.cpu_count()})


def _store(work: Path):
    from medactive.data.imagestore import ImageStore

    info = json.loads((work / "store.json").read_text())
    return ImageStore.open(info["folder"])


def _round_inputs(n_val: int, dim_backbone: str = "compact"):
    import torch

    from medactive.models import build_backbone

    torch.manual_seed(0)
    return build_backbone(dim_backbone, 3, 64)


def pooled_features(images, batch: int = 1024) -> np.ndarray:
    """A cheap stand-in for the backbone: 8x8 average-pooled pixels through a fixed random ReLU
    projection to 256-d, read through the same prefetching loader as ``extract_features``."""
    from medactive.data.lazy import prefetch_batches

    n, h, _, c = images.shape
    proj = np.random.default_rng(0).standard_normal((64 * c, 256)).astype(np.float32) / 8
    out = np.empty((n, 256), dtype=np.float32)
    batches = [slice(s, s + batch) for s in range(0, n, batch)]
    for sl, pixels in zip(batches, prefetch_batches(images, batches), strict=True):
        k = pixels.shape[0]
        pooled = pixels.reshape(k, 8, h // 8, 8, h // 8, c).mean(axis=(2, 4), dtype=np.float32)
        out[sl] = np.maximum(pooled.reshape(k, -1) / 255.0 @ proj, 0.0)
    return out


def child_round(work: Path, n: int, budget: int, n_val: int, strategies: list[str],
                ray: str | None = None, extractor: str = "compact") -> None:
    import torch

    from medactive.models import extract_features, fit_head
    from medactive.strategies import RoundView, get_strategy

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    images = _store(work).images.subset(np.arange(n))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    if extractor == "pool":
        feats = pooled_features(images)
    else:
        feats = extract_features(_round_inputs(n_val), images, batch_size=512, progress=False)
    t_feat = time.perf_counter() - t0
    # 1,000 labelled images (pseudo-labels: the source image's position mod 8), the last
    # n_val as the evaluation set; the head is trained on the labelled ones
    labelled = rng.choice(n - n_val, 1000, replace=False)
    mask = np.zeros(n, bool)
    mask[labelled] = True
    pseudo = np.arange(n) % 8
    weight, bias = fit_head(feats[labelled], pseudo[labelled], 8)
    view = RoundView(features=feats, labeled_mask=mask, labels=np.where(mask, pseudo, -1),
                     weight=weight, bias=bias, val_features=feats[n - n_val:],
                     val_labels=pseudo[n - n_val:])
    out: dict = {"n": n, "features_s": t_feat, "features_img_s": n / t_feat}
    if n >= 200_000 and not ray:  # kept as "your own embeddings" for the project walk-through
        np.save(work / f"features-{n}.npy", feats)
    for name in strategies:
        t0 = time.perf_counter()
        if ray:
            from medactive.strategies.sharded import rank_with

            picks, _ = rank_with(get_strategy(name), view, budget, np.random.default_rng(1),
                                 ray=ray, shards=2)
        else:
            picks, _ = get_strategy(name).rank(view, budget, np.random.default_rng(1))
        out[f"{name}_s"] = time.perf_counter() - t0
        out[f"{name}_picks"] = picks.tolist()
    _finish(out)


def child_features(work: Path, n: int, in_memory: bool, reps: int) -> None:
    import torch

    from medactive.models import extract_features

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    images = _store(work).images.subset(np.arange(n))
    if in_memory:
        images = images[:]
    backbone = _round_inputs(0)
    best = np.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        extract_features(backbone, images, batch_size=512, progress=False)
        best = min(best, time.perf_counter() - t0)
    _finish({"n": n, "in_memory": in_memory, "img_s": n / best})


def child_alternating(work: Path, n: int, rounds: int) -> None:
    """In-memory and lazy feature extraction alternated on the same images (A B A B ...), so
    a changing load on a shared machine hits both paths alike; best pass of each."""
    import torch

    from medactive.models import extract_features

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    lazy = _store(work).images.subset(np.arange(n))
    dense = lazy[:]
    backbone = _round_inputs(0)
    best = {"memory": np.inf, "lazy": np.inf}
    for _ in range(rounds):
        for name, images in (("memory", dense), ("lazy", lazy)):
            t0 = time.perf_counter()
            extract_features(backbone, images, batch_size=512, progress=False)
            best[name] = min(best[name], time.perf_counter() - t0)
    _finish({"n": n, "memory_img_s": n / best["memory"], "lazy_img_s": n / best["lazy"]})


def child_reads(work: Path, n: int, batch: int) -> None:
    """Raw read throughput of three on-disk layouts, sequential and random batches."""
    store = _store(work)
    lazy = store.images.subset(np.arange(n))
    rng = np.random.default_rng(0)
    seq = [slice(s, s + batch) for s in range(0, n, batch)]
    rnd = [np.sort(rng.choice(n, batch, replace=False)) for _ in range(n // batch)]

    def rate(read, batches) -> float:
        t0 = time.perf_counter()
        for b in batches:
            read(b)
        return n / (time.perf_counter() - t0)

    out: dict = {"n": n, "batch": batch}
    out["preadv_seq"] = rate(lazy.__getitem__, seq)
    out["preadv_rand"] = rate(lazy.__getitem__, rnd)
    # numpy.memmap over the same chunk files (one map per chunk)
    rows = store.rows_per_chunk
    maps = [np.memmap(store.folder / "chunks" / f"c{c:06d}.u8", dtype=np.uint8, mode="r")
            .reshape(-1, 64, 64, 3) for c in range(-(-n // rows))]

    def mm_read(b):
        idx = np.arange(n)[b]
        return np.concatenate([maps[c][idx[idx // rows == c] - c * rows]
                               for c in np.unique(idx // rows)])

    out["memmap_seq"] = rate(mm_read, seq)
    out["memmap_rand"] = rate(mm_read, rnd)
    out["memmap_rss_gib"] = _gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    try:
        import zarr
    except ImportError:
        _finish(out)
        return
    path = work / f"zarr-{n}"
    if not (path / "DONE").is_file():
        z = zarr.open_array(str(path), mode="w", shape=(n, 64, 64, 3), chunks=(64, 64, 64, 3),
                            dtype="uint8")
        for s in range(0, n, 4096):
            z[s : s + 4096] = lazy[s : s + 4096]
        (path / "DONE").write_text("ok")
    z = zarr.open_array(str(path), mode="r")
    out["zarr_seq"] = rate(lambda b: z[b], seq)
    out["zarr_rand"] = rate(lambda b: z.get_orthogonal_selection((b, slice(None), slice(None),
                                                                  slice(None))), rnd)
    _finish(out)


def child_million(work: Path, strategy: str, n: int, n_val: int, dim: int, budget: int) -> None:
    import torch

    from medactive.strategies import RoundView, get_strategy

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    rng = np.random.default_rng(0)
    feats = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 65536):  # post-ReLU-like features, ||h||^2 ~ 128
        block = rng.standard_normal((min(65536, n - s), dim), dtype=np.float32)
        feats[s : s + block.shape[0]] = np.maximum(block, 0) * 0.7
    mask = np.zeros(n, bool)
    mask[rng.choice(n, 100, replace=False)] = True
    labels = np.where(mask, rng.integers(0, 8, n), -1)
    val = np.maximum(rng.standard_normal((n_val, dim), dtype=np.float32), 0) * 0.7
    weight = (rng.standard_normal((8, dim)) * 0.05).astype(np.float32)
    bias = np.zeros(8, np.float32)
    view = RoundView(features=feats, labeled_mask=mask, labels=labels, weight=weight, bias=bias,
                     val_features=val, val_labels=rng.integers(0, 8, n_val))
    t0 = time.perf_counter()
    get_strategy(strategy).rank(view, budget, np.random.default_rng(1))
    _finish({"strategy": strategy, "seconds": time.perf_counter() - t0})


# --------------------------------------------------------------------------- report
def _table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("steps", nargs="*", help=f"any of {', '.join(STEPS)} (default: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/medactive-scale"))
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--sizes", default="50000,100000,200000")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--n-val", type=int, default=2000)
    ap.add_argument("--million", type=int, default=1_000_000)
    ap.add_argument("--extractor", default="compact", choices=("compact", "pool"),
                    help="features of the rounds: the compact backbone, or a cheap pooled-pixel "
                         "stand-in (same lazy reads, no forward pass) for a loaded machine")
    ap.add_argument("--reps", type=int, default=2, help="passes of the lazy step (best kept)")
    ap.add_argument("--only", default=None, help="million step: only these strategies (a,b)")
    ap.add_argument("--alternate", type=int, default=10_000,
                    help="images of the alternated in-memory / lazy comparison")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.steps = args.steps or list(STEPS)
    if set(args.steps) - set(STEPS):
        ap.error(f"unknown step(s) {sorted(set(args.steps) - set(STEPS))}; choose from {STEPS}")
    if args.child:
        globals()[f"child_{args.child}"](args.work, **json.loads(args.kwargs))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# bench_scale: {os.uname().nodename}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    sizes = [int(s) for s in args.sizes.split(",")]
    if "folder" in args.steps:
        make_folder(args.work, args.n)
    if "build" in args.steps:
        r = _child("build", args.work, n=args.n)
        (args.work / "store.json").write_text(json.dumps(r))
        print("\n## Store build\n")
        _table(["images", "hash s", "decode+write s", "images/s (decode)", "images/s (all)",
                "peak RSS GiB"],
               [[f"{r['n']:,}", f"{r['hash_s']:.1f}", f"{r['build_s']:.1f}",
                 f"{r['n'] / r['build_s']:,.0f}", f"{r['n'] / (r['hash_s'] + r['build_s']):,.0f}",
                 f"{r['peak_rss_gib']:.2f}"]])
    strategies = ["entropy", "aeig"]
    from medactive.strategies import list_strategies

    if "epig" in list_strategies():
        strategies.append("epig")
    if "rounds" in args.steps:
        rows = []
        for n in sizes:
            r = _child("round", args.work, n=n, budget=args.budget, n_val=args.n_val,
                       strategies=strategies, extractor=args.extractor)
            rows.append([f"{n:,}", f"{r['features_s']:.0f}", f"{r['features_img_s']:,.0f}",
                         *[f"{r[f'{s}_s']:.1f}" for s in strategies], f"{r['peak_rss_gib']:.2f}"])
        print(f"\n## Full round on the lazy store (budget {args.budget}, {args.n_val} eval, "
              f"features: {args.extractor})\n")
        _table(["N", "features s", "features img/s", *[f"{s} s" for s in strategies],
                "peak RSS GiB"], rows)
    if "lazy" in args.steps:
        n = sizes[0]
        mem = _child("features", args.work, n=n, in_memory=True, reps=args.reps)
        lazy = _child("features", args.work, n=n, in_memory=False, reps=args.reps)
        print(f"\n## Lazy vs in-memory feature extraction ({n:,} images, compact, 64 px)\n")
        _table(["path", "images/s", "peak RSS GiB", "lazy / in-memory"],
               [["in memory", f"{mem['img_s']:,.0f}", f"{mem['peak_rss_gib']:.2f}", ""],
                ["lazy store + prefetch", f"{lazy['img_s']:,.0f}", f"{lazy['peak_rss_gib']:.2f}",
                 f"{lazy['img_s'] / mem['img_s']:.0%}"]])
        reads = _child("reads", args.work, n=n, batch=256)
        print(f"\n## Raw reads, batches of 256 ({n:,} images)\n")
        rows = [["store (`preadv`)", f"{reads['preadv_seq']:,.0f}", f"{reads['preadv_rand']:,.0f}"],
                ["numpy.memmap", f"{reads['memmap_seq']:,.0f}", f"{reads['memmap_rand']:,.0f}"]]
        if "zarr_seq" in reads:
            rows.append(["zarr (64-image chunks, default codec)", f"{reads['zarr_seq']:,.0f}",
                         f"{reads['zarr_rand']:,.0f}"])
        _table(["layout", "sequential img/s", "random img/s"], rows)
        print(f"\nmemmap reader's peak RSS after the passes: {reads['memmap_rss_gib']:.2f} GiB")
    if "ab" in args.steps:
        alt = _child("alternating", args.work, n=args.alternate, rounds=3)
        print(f"\n## Lazy vs in-memory, alternated A/B passes ({args.alternate:,} images, 3 "
              "rounds, best of each)\n")
        _table(["in memory img/s", "lazy img/s", "lazy / in-memory"],
               [[f"{alt['memory_img_s']:,.0f}", f"{alt['lazy_img_s']:,.0f}",
                 f"{alt['lazy_img_s'] / alt['memory_img_s']:.0%}"]])
    if "million" in args.steps:
        rows = []
        names = ["aeig", "bald", "coreset", "badge"] + (["epig"] if "epig" in strategies else [])
        if args.only:
            names = [n for n in names if n in args.only.split(",")]
        for name in names:
            r = _child("million", args.work, strategy=name, n=args.million, n_val=args.n_val,
                       dim=512, budget=args.budget)
            rows.append([name, f"{r['seconds']:.1f}", f"{r['peak_rss_gib']:.2f}"])
        print(f"\n## {args.million:,} x 512 features, {args.n_val:,} evaluation images, budget "
              f"{args.budget}\n")
        _table(["strategy", "seconds", "peak RSS GiB"], rows)
    if "ray" in args.steps:
        n = sizes[0]
        single = _child("round", args.work, n=n, budget=args.budget, n_val=args.n_val,
                        strategies=strategies, extractor=args.extractor)
        sharded = _child("round", args.work, n=n, budget=args.budget, n_val=args.n_val,
                         strategies=strategies, ray="local", extractor=args.extractor)
        print(f"\n## Ray local (2 workers) vs single process, {n:,} round\n")
        rows = []
        for s in strategies:
            same = single[f"{s}_picks"] == sharded[f"{s}_picks"]
            rows.append([s, f"{single[f'{s}_s']:.1f}", f"{sharded[f'{s}_s']:.1f}",
                         f"{sharded[f'{s}_s'] / single[f'{s}_s']:.2f}x",
                         "identical" if same else "DIFFERENT"])
        _table(["strategy", "single s", "Ray s", "Ray / single", "picks"], rows)
    print(f"\nload after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
