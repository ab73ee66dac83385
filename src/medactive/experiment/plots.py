"""PNG plots of a run: learning curves (the information-gain paper's Fig. 2–3), per-class acquired
counts (Fig. 4–7), and the contrastive dataset map for cold-start runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from medactive.experiment.results import RunData, curves, mean_std


def _grid(n: int, cols: int = 4, size: tuple[float, float] = (5.0, 3.8)):
    cols = min(cols, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def _curve_panels(run: RunData, by: str, filename: str) -> Path:
    """Mean ± std test macro AUC against labelled fraction with the "all" and "all-95%" lines.

    ``by="initial"``: one panel per initial strategy, one line per acquisition strategy (the
    information-gain paper's Fig. 2–3). ``by="strategy"``: one panel per acquisition strategy,
    one line per initial query (the cold-start paper's Fig. 6).
    """
    info, reference = run.info, run.reference
    auc = curves(run.records, "auc")
    panel_of = (lambda k: k[0]) if by == "initial" else (lambda k: k[1])
    line_of = (lambda k: k[1]) if by == "initial" else (lambda k: k[0])
    panels = list(dict.fromkeys(panel_of(k) for k in auc))
    fig, axes = _grid(len(panels))
    all_auc = float(np.mean([r["auc"] for r in reference])) if reference else None
    for ax, panel in zip(axes, panels, strict=True):
        for key, c in auc.items():
            if panel_of(key) != panel:
                continue
            ns = sorted(c)
            x = 100 * np.asarray(ns) / info["n_train"]
            stats = np.array([mean_std(c[n]) for n in ns])
            ax.plot(x, stats[:, 0], marker="o", ms=3, label=line_of(key))
            ax.fill_between(x, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], alpha=0.12)
        if all_auc is not None:
            ax.axhline(all_auc, color="k", ls="--", lw=1, label="all")
            ax.axhline(0.95 * all_auc, color="k", ls=":", lw=1, label="all-95%")
        ax.set_xlabel("labelled training images (%)")
        ax.set_ylabel("test macro AUC")
        ax.set_title(f"{'initial query' if by == 'initial' else 'acquisition'}: {panel}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(info["name"])
    fig.tight_layout()
    out = run.path / filename
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_learning_curves(run: RunData) -> Path:
    """Learning curves, one panel per initial strategy (the information-gain paper's Fig. 2–3)."""
    return _curve_panels(run, "initial", "learning_curves.png")


def plot_acquired_per_class(run: RunData) -> Path:
    """Cumulative labelled images per class against labelled fraction, one panel per strategy
    (first initial strategy; mean over repeats)."""
    records, info = run.records, run.info
    init = sorted({r["initial"] for r in records})[0]
    strategies = list(dict.fromkeys(r["strategy"] for r in records))
    fig, axes = _grid(len(strategies), cols=3, size=(5.0, 3.6))
    names = info["class_names"]
    for ax, strategy in zip(axes, strategies, strict=True):
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
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{info['name']}: images labelled per class (initial: {init})")
    fig.tight_layout()
    out = run.path / "acquired_per_class.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_run_dataset_map(run: RunData) -> Path | None:
    """Contrastive dataset map coloured by true class, with the first repeat's HaCon selection
    (or the first initial strategy's) marked; ``None`` when the run has no map."""
    from medactive.coldstart.plots import plot_dataset_map

    data, info = run.dataset_map, run.info
    if data is None:
        return None
    selections = [k for k in data if k.startswith("initial:")]
    key = "initial:hacon" if "initial:hacon" in selections else selections[0]
    return plot_dataset_map(
        data["confidence"], data["variability"], data[key], run.path / "dataset_map.png",
        groups=data["labels"], group_names=info["class_names"],
        title=f"{info['name']}: contrastive dataset map ({key.split(':', 1)[1]} selection)",
    )


def write_plots(run: RunData) -> list[Path]:
    """All plots of a run."""
    out = [plot_learning_curves(run)]
    if len({r["initial"] for r in run.records}) > 1:
        out.append(_curve_panels(run, "strategy", "initial_query_curves.png"))
    out.append(plot_acquired_per_class(run))
    dm = plot_run_dataset_map(run)
    return out + ([dm] if dm else [])
