"""Reading, repairing and aggregating ``results.jsonl`` (one record per strategy/repeat/round)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medactive.errors import MedactiveError

REQUIRED_FIELDS = (
    "initial", "strategy", "repeat", "seed", "round", "n_labeled", "fraction_labeled", "auc",
    "accuracy", "balanced_accuracy", "acquired_per_class", "select_seconds", "score_ms_per_image",
)


def read_jsonl(path: Path) -> list[dict]:
    """Records of a JSON-lines file; a missing file is empty, a torn last line is ignored."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # a write interrupted mid-line: that cell is redone
            raise MedactiveError(f"{path}: line {i + 1} is not valid JSON") from None
    return records


@dataclass(frozen=True)
class RunData:
    """A run folder read once, for the report and every plot.

    Attributes:
        path: the folder.
        records: ``results.jsonl`` (one dict per strategy / repeat / round).
        reference: ``reference.jsonl`` (full-data runs; empty when not asked for).
        config: ``config.json`` (the resolved experiment configuration).
        info: ``dataset.json`` (class names, pool counts, split sizes, encoder).
        dataset_map: ``dataset_map.npz`` arrays (confidence, variability, labels and each
            initial strategy's repeat-0 query as ``initial:<name>``), or None.
    """

    path: Path
    records: list[dict]
    reference: list[dict]
    config: dict
    info: dict
    dataset_map: dict[str, np.ndarray] | None

    @classmethod
    def load(cls, run_dir: str | Path) -> RunData:
        """Read every file of ``run_dir``.

        Raises:
            MedactiveError: no records, or ``config.json`` / ``dataset.json`` missing.
        """
        run_dir = Path(run_dir)
        records = read_jsonl(run_dir / "results.jsonl")
        if not records:
            raise MedactiveError(f"{run_dir}: no results.jsonl records to report")
        try:
            config = json.loads((run_dir / "config.json").read_text())
            info = json.loads((run_dir / "dataset.json").read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise MedactiveError(f"{run_dir}: unreadable run folder ({exc})") from None
        map_path = run_dir / "dataset_map.npz"
        dataset_map = None
        if map_path.exists():
            with np.load(map_path) as data:
                dataset_map = {k: data[k] for k in data.files}
        return cls(run_dir, records, read_jsonl(run_dir / "reference.jsonl"), config, info,
                   dataset_map)


def drop_incomplete_cells(path: Path, n_points: int) -> set[tuple[str, str, int]]:
    """Keep only cells with all ``n_points`` rounds (atomic rewrite); return the finished ones."""
    records = read_jsonl(path)
    by_cell: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for r in records:
        by_cell[(r["initial"], r["strategy"], r["repeat"])].append(r)
    complete = {k for k, v in by_cell.items() if sorted(r["round"] for r in v) == list(range(n_points))}
    torn = path.exists() and path.stat().st_size > 0 and not path.read_text().endswith("\n")
    if len(complete) != len(by_cell) or torn:
        kept = [r for r in records if (r["initial"], r["strategy"], r["repeat"]) in complete]
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
        tmp.replace(path)
    return complete


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def curves(records: list[dict], metric: str = "auc") -> dict[tuple[str, str], dict[int, list[float]]]:
    """``{(initial, strategy): {n_labeled: [metric per repeat]}}``."""
    out: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in sorted(records, key=lambda r: (r["initial"], r["strategy"], r["repeat"], r["round"])):
        out[(r["initial"], r["strategy"])][r["n_labeled"]].append(float(r[metric]))
    return out


def fraction_to_reach(fractions: list[float], means: list[float], target: float) -> float | None:
    """Labelled fraction at which the mean curve first reaches ``target`` (linear interpolation
    between rounds); ``None`` when it never does."""
    for i, (f, m) in enumerate(zip(fractions, means, strict=True)):
        if m >= target:
            if i == 0:
                return f
            f0, m0 = fractions[i - 1], means[i - 1]
            return f0 + (target - m0) / (m - m0) * (f - f0)
    return None


def minority_classes(train_counts: np.ndarray) -> np.ndarray:
    """Classes whose share of the training pool is below the uniform share 1/C."""
    share = train_counts / train_counts.sum()
    return np.flatnonzero(share < 1.0 / train_counts.size)


def minority_share(records: list[dict], minority: np.ndarray) -> dict[tuple[str, str], list[float]]:
    """Per (initial, strategy): share of *acquired* images (after the initial query) that come
    from ``minority`` classes, one value per repeat."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_cell: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    for r in records:
        by_cell[(r["initial"], r["strategy"], r["repeat"])].append(r)
    for (init, strat, _), rs in sorted(by_cell.items()):
        rs = sorted(rs, key=lambda r: r["round"])
        acquired = np.asarray(rs[-1]["acquired_per_class"]) - np.asarray(rs[0]["acquired_per_class"])
        if acquired.sum() > 0:
            out[(init, strat)].append(float(acquired[minority].sum() / acquired.sum()))
    return out
