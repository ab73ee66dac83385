"""A new user's first ``medactive project query`` on a 2,000-image folder, per encoder, through
the real CLI: moco vs imagenet vs an ``hf:`` model (issue 19 item 5).

For each encoder, in fresh processes one after the other (peak RSS is each process's own; the
user cache is a fresh folder per encoder, so nothing is reused between them):

1. ``medactive project init DIR --images FOLDER --classes ... --encoder NAME
   [--encoder-weights W]``;
2. ``medactive project query DIR --budget 40`` — the first query (encoder pre-training or
   feature extraction, cold start): wall time and peak RSS;
3. the queried images are answered from the ground truth (``medactive project import``);
4. ``medactive project query DIR --budget 40`` again — a later round (features cached).

The folder is 2,000 BloodMNIST training images upsampled to 64 px PNGs (bicubic), the size of
the issue's measurement. The table also says what actually produced the features (a MoCo entry
under ``encoders/`` or a ``feature-cache/`` entry), so a query that ignores ``--encoder`` cannot
pass for a fast pretrained one.

The ``hf:`` encoder is ``--hf`` (default ``facebook/dinov2-small``) with ``--hf-weights`` (a
folder from ``hf download``) when given; offline and without it, a randomly initialised
DINOv2-small-sized folder stands in (speed only: the weights do not change it).

    python benchmarks/bench_first_query.py --work /tmp/medactive-first-query [--threads 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SRC = HERE.parents[1] / "src"
sys.path.insert(0, str(HERE.parent))
from bench_encoders import hf_dinov2_small  # noqa: E402

SIZE, BUDGET = 64, 40


def make_folder(work: Path, n: int) -> tuple[Path, Path, list[str]]:
    """The ``n``-image folder, its ground-truth CSV and the class names (reused when there)."""
    from PIL import Image

    from medactive.data import load_medmnist

    folder, truth = work / f"folder-{n}", work / f"truth-{n}.csv"
    blood = load_medmnist(os.environ.get("BLOODMNIST", str(HERE.parents[2] / "shared" / "data"
                                                             / "bloodmnist.npz")))
    names = [n.replace(",", " ") for n in blood.train.class_names]
    if not truth.is_file():
        rows = []
        for i in range(n):
            out = folder / f"{i // 500}" / f"img{i:05d}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(blood.train.images[i]).resize(
                (SIZE, SIZE), Image.Resampling.BICUBIC).save(out)
            rows.append((out.relative_to(folder).as_posix(), names[int(blood.train.labels[i])]))
        with open(truth, "w", newline="") as f:
            csv.writer(f).writerows([("image_id", "label"), *rows])
    return folder, truth, names


def cli(args: list[str], env: dict[str, str]) -> dict:
    """Run ``medactive ARGS`` in a fresh interpreter; wall seconds, peak RSS, its output."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE), "--cli", json.dumps(args)], env=env,
                         capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"medactive {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    lines = out.stdout.strip().splitlines()
    return {"seconds": seconds, "peak_rss_gib": json.loads(lines[-1])["rss_kib"] / 2**20,
            "output": "\n".join(lines[:-1])}


def answer_latest_round(project: Path, truth: Path, out: Path) -> int:
    """Write the ground truth of the latest round's queue to ``out``; returns how many."""
    from medactive.annotate.store import ProjectStore

    with open(truth, newline="") as f:
        labels = dict(csv.reader(f))
    with ProjectStore.open(project) as store:
        latest = store.latest_round()
        assert latest is not None
        ids = {img.id: img.uid for img in store.images()}
        asked = [ids[q.image_id] for q in store.queue(latest.id)]
    with open(out, "w", newline="") as f:
        csv.writer(f).writerows([("image_id", "label"), *((u, labels[u]) for u in asked)])
    return len(asked)


def features_source(project: Path, cache: Path) -> str:
    """What produced the features: MoCo entries and/or feature-cache entries on disk."""
    found = []
    for root in (project, cache):
        if any(root.glob("encoders/*/meta.json")):
            found.append("moco")
        if any(root.glob("feature-cache/*/meta.json")):
            found.append("feature cache")
    return " + ".join(sorted(set(found))) or "?"


def run(work: Path, threads: int, n: int,
        encoders: list[tuple[str, str, str, str | None]]) -> None:
    folder, truth, names = make_folder(work, n)
    print(f"{n} images; threads={threads}; load at start: {os.getloadavg()}", flush=True)
    rows = []
    for key, label, name, weights in encoders:
        project, cache = work / f"project-{key}", work / f"cache-{key}"
        for path in (project, cache):
            subprocess.run(["rm", "-rf", str(path)], check=True)
        env = {**os.environ, "PYTHONPATH": f"{SRC}:{os.environ.get('PYTHONPATH', '')}",
               "MEDACTIVE_CACHE_DIR": str(cache), "MEDACTIVE_PROGRESS": "0",
               "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
        init = cli(["project", "init", str(project), "--images", str(folder), "--classes",
                    ",".join(names), "--encoder", name,
                    *(["--encoder-weights", weights] if weights else [])], env)
        first = cli(["project", "query", str(project), "--budget", str(BUDGET)], env)
        answer_latest_round(project, truth, work / f"answers-{key}.csv")
        cli(["project", "import", str(project), str(work / f"answers-{key}.csv")], env)
        later = cli(["project", "query", str(project), "--budget", str(BUDGET)], env)
        rows.append((label, init, first, later, features_source(project, cache)))
        print(label, json.dumps({"init_s": init["seconds"], "first_s": first["seconds"],
                                 "first_rss": first["peak_rss_gib"], "later_s": later["seconds"],
                                 "later_rss": later["peak_rss_gib"]}), first["output"],
              flush=True)
    print(f"load at end: {os.getloadavg()}")
    print("| encoder | init s | first query s | first query peak RSS GiB | later round s | "
          "later round peak RSS GiB | features from |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for label, init, first, later, source in rows:
        print(f"| {label} | {init['seconds']:.1f} | {first['seconds']:.1f} | "
              f"{first['peak_rss_gib']:.2f} | {later['seconds']:.1f} | "
              f"{later['peak_rss_gib']:.2f} | {source} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/medactive-first-query"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000, help="images in the folder")
    ap.add_argument("--encoders", default="moco,imagenet,hf")
    ap.add_argument("--hf", default="facebook/dinov2-small")
    ap.add_argument("--hf-weights", default=None, help="folder of the --hf model (offline)")
    ap.add_argument("--cli", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.cli is not None:  # a child: the real CLI entry point, then its own peak RSS
        import torch

        from medactive.cli import main as medactive

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        code = medactive(json.loads(args.cli))
        print(json.dumps({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
        raise SystemExit(code)
    args.work.mkdir(parents=True, exist_ok=True)
    hf_weights = args.hf_weights or str(hf_dinov2_small(args.work))
    hf_label = f"hf:{args.hf}" + ("" if args.hf_weights else " (random weights)")
    table = {"moco": ("moco", "moco", "moco", None),
             "imagenet": ("imagenet", "imagenet", "imagenet", None),
             "hf": ("hf", hf_label, f"hf:{args.hf}", hf_weights)}
    run(args.work, args.threads, args.n, [table[e] for e in args.encoders.split(",")])


if __name__ == "__main__":
    main()
