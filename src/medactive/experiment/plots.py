"""PNG plots of a run: learning curves (the information-gain paper's Fig. 2–3), per-class acquired
counts (Fig. 4–7), and the contrastive dataset map for cold-start runs."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medactive.experiment.results import curves, mean_std, read_jsonl


def plot_learning_curves(run_dir: Path) -> Path:
    """Mean ± std test macro AUC against labelled fraction, one panel per initial strategy, with
    the "all" and "all-95%" reference lines."""
    records = read_jsonl(run_dir / "results.jsonl")
    info = json.loads((run_dir / "dataset.json").read_text())
    reference = read_jsonl(run_dir / "reference.jsonl")
    auc = curves(records, "auc")
    initials = sorted({k[0] for k in auc})
    fig, axes = plt.subplots(1, len(initials), figsize=(6 * len(initials), 4.5), squeeze=False)
    for ax, init in zip(axes[0], initials, strict=True):
        for (i, strategy), c in auc.items():
            if i != init:
                continue
            ns = sorted(c)
            x = 100 * np.asarray(ns) / info["n_train"]
            stats = np.array([mean_std(c[n]) for n in ns])
            ax.plot(x, stats[:, 0], marker="o", ms=3, label=strategy)
            ax.fill_between(x, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], alpha=0.15)
        if reference:
            all_auc = float(np.mean([r["auc"] for r in reference]))
            ax.axhline(all_auc, color="k", ls="--", lw=1, label="all")
            ax.axhline(0.95 * all_auc, color="k", ls=":", lw=1, label="all-95%")
        ax.set_xlabel("labelled training images (%)")
        ax.set_ylabel("test macro AUC")
        ax.set_title(f"{info['name']} — initial query: {init}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = run_dir / "learning_curves.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_acquired_per_class(run_dir: Path) -> Path:
    """Cumulative labelled images per class against labelled fraction, one panel per strategy
    (first initial strategy; mean over repeats)."""
    records = read_jsonl(run_dir / "results.jsonl")
    info = json.loads((run_dir / "dataset.json").read_text())
    init = sorted({r["initial"] for r in records})[0]
    strategies = list(dict.fromkeys(r["strategy"] for r in records))
    cols = min(3, len(strategies))
    rows = int(np.ceil(len(strategies) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    names = info["class_names"]
    for ax, strategy in zip(axes.flat, strategies, strict=False):
        rs = [r for r in records if r["initial"] == init and r["strategy"] == strategy]
        rounds = sorted({r["round"] for r in rs})
        counts = np.array([np.mean([r["acquired_per_class"] for r in rs if r["round"] == k], 0)
                           for k in rounds])
        frac = [100 * np.mean([r["fraction_labeled"] for r in rs if r["round"] == k]) for k in rounds]
        for c in range(counts.shape[1]):
            ax.plot(frac, counts[:, c], marker=".", label=f"{c}: {names[c][:18]}")
        ax.set_title(strategy)
        ax.set_xlabel("labelled (%)")
        ax.set_ylabel("labelled images per class")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(strategies):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{info['name']}: images labelled per class (initial: {init})")
    fig.tight_layout()
    out = run_dir / "acquired_per_class.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_run_dataset_map(run_dir: Path) -> Path | None:
    """Contrastive dataset map coloured by true class, with the first repeat's HaCon selection
    (or the first initial strategy's) marked; ``None`` when the run has no map."""
    from medactive.coldstart.plots import plot_dataset_map

    path = run_dir / "dataset_map.npz"
    if not path.exists():
        return None
    data = np.load(path)
    info = json.loads((run_dir / "dataset.json").read_text())
    selections = [k for k in data.files if k.startswith("initial:")]
    key = "initial:hacon" if "initial:hacon" in selections else selections[0]
    return plot_dataset_map(
        data["confidence"], data["variability"], data[key], run_dir / "dataset_map.png",
        groups=data["labels"], group_names=info["class_names"],
        title=f"{info['name']}: contrastive dataset map ({key.split(':', 1)[1]} selection)",
    )


def write_plots(run_dir: Path) -> list[Path]:
    """All plots of a run folder."""
    run_dir = Path(run_dir)
    out = [plot_learning_curves(run_dir), plot_acquired_per_class(run_dir)]
    dm = plot_run_dataset_map(run_dir)
    return out + ([dm] if dm else [])
