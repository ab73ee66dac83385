"""``medactive project backtest`` on a dataset with ground truth, and the run folder it writes.

A MedMNIST name or ``.npz``: the training split is the pool, the test split the held-out test
set (the validation split is left out: a clinic has no free validation set, the loop draws its
own). An image-folder CSV: every labelled image, split once (stratified, seeded) into pool and
test. The pool is encoded as a project would encode its images (MoCo v2 pre-trained on the pool,
cached), and the loop itself is :func:`medactive.rounds.backtest.run_backtest`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medactive.data import DatasetSplits, ImageDataset, load_dataset
from medactive.data.longtail import make_long_tail_splits
from medactive.data.splits import stratified_split
from medactive.errors import ConfigError
from medactive.experiment.backtest_report import PLAN, RESULTS, write_backtest_report
from medactive.experiment.verdict import Verdict
from medactive.rounds import EncodedPool
from medactive.rounds.backtest import BacktestData, BacktestPlan, check_backtest, run_backtest


@dataclass(frozen=True)
class DatasetSource:
    """Where a dataset back-test's ground truth comes from.

    Attributes:
        spec: a MedMNIST name, an ``.npz`` path or an image-folder ``.csv``.
        test_share: folder CSVs: the share of labelled images held out as the test set.
        long_tail: optional imbalance ratio applied to pool and test (class order from the
            pool), to check a result on a long-tailed variant.
        limit: optional stratified subsample of the pool (quick runs).
        seed: the split's seed.
    """

    spec: str
    test_share: float = 0.25
    long_tail: float | None = None
    limit: int | None = None
    seed: int = 0

    def check(self) -> DatasetSource:
        """Raise :class:`ConfigError` for impossible values; returns ``self``."""
        if not 0.05 <= float(self.test_share) <= 0.5:
            raise ConfigError(f"test share must be between 0.05 and 0.5, got {self.test_share}")
        if self.long_tail is not None and not float(self.long_tail) >= 1:
            raise ConfigError(f"long tail ratio must be >= 1, got {self.long_tail}")
        if self.limit is not None and self.limit < 10:
            raise ConfigError(f"limit must be at least 10, got {self.limit}")
        return self


def load_ground_truth(source: DatasetSource) -> tuple[ImageDataset, ImageDataset, str]:
    """``(pool, test, name)`` of a dataset source (see the module docstring).

    Raises:
        DataError / ConfigError: unreadable source, no labels, too few images.
    """
    source.check()
    splits = load_dataset(source.spec)
    if str(source.spec).lower().endswith(".csv"):
        parts = [ds for _, ds in splits.items() if len(ds)]
        pooled = ImageDataset(np.concatenate([p.images for p in parts]),
                              np.concatenate([p.labels for p in parts]), parts[0].class_names,
                              np.concatenate([p.ids for p in parts]), splits.name)
        labelled = pooled.subset(np.flatnonzero(pooled.labels >= 0))
        if len(labelled) == 0:
            raise ConfigError(f"{source.spec}: no ground truth (no image has a label)")
        held = stratified_split(labelled, (1 - source.test_share, 0, source.test_share),
                                seed=source.seed)
        splits = DatasetSplits(held.train, held.val, held.test, name=splits.name)
    if source.long_tail is not None:
        splits = make_long_tail_splits(splits, float(source.long_tail), seed=source.seed)
    pool, test = splits.train, splits.test
    if (pool.labels < 0).all():
        raise ConfigError(f"{source.spec}: no ground truth (the pool has no labels)")
    if source.limit is not None and source.limit < len(pool):
        pool = stratified_split(pool, (source.limit, 0, 0), seed=source.seed).train
    return pool, test, splits.name


def encode_dataset(pool: ImageDataset, test: ImageDataset, *, pretrain_epochs: int | None = None,
                   progress: bool = True) -> tuple[EncodedPool, np.ndarray, dict[str, Any]]:
    """The pool encoded as a project encodes its images (MoCo v2 pre-trained on the pool,
    cached), and the test images' features from the same encoder."""
    from medactive.coldstart.pipeline import moco_config, pretrain
    from medactive.models import extract_features

    moco = moco_config(len(pool), epochs=pretrain_epochs)
    result = pretrain(pool.images, moco, progress=progress)
    test_features = extract_features(result.encoder, test.images, progress=progress)
    encoded = EncodedPool(result.features, key=result.key, encoder=result.encoder,
                          images=pool.images, confidence=result.confidence,
                          variability=result.variability, maps=result.maps or None)
    return encoded, test_features, {"encoder": f"moco ({result.key})"}


def prepare_run_folder(out_dir: Path, plan: BacktestPlan, info: dict[str, Any]) -> None:
    """Check ``out_dir`` (refusing results of another plan) and write the plan; a folder with
    results of the same plan resumes."""
    described = {**plan.describe(), "data": info}
    path = out_dir / PLAN
    if path.exists() and (out_dir / RESULTS).exists():
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != json.loads(json.dumps(described)):
            raise ConfigError(f"{out_dir} holds back-test results of another plan or data; "
                              "choose another --out or remove that folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file, not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(PLAN + ".part")
    tmp.write_text(json.dumps(described, indent=2, sort_keys=True))
    tmp.replace(path)


def backtest_to_folder(data: BacktestData, plan: BacktestPlan, out_dir: Path,
                       progress: bool = True) -> tuple[Path, Verdict]:
    """Run (or resume) the back-test into ``out_dir``: ``backtest.json`` (the plan),
    ``backtest.jsonl`` (records), ``summary.md`` and ``learning_curve.png``.

    Returns:
        ``(summary path, verdict)``.
    """
    check_backtest(data, plan)
    info = {"name": data.name, "pool": data.answerable, "test": int(data.test_labels.size),
            "classes": list(data.class_names), **data.info}
    prepare_run_folder(out_dir, plan, info)
    run_backtest(data, plan, out_dir / RESULTS, progress=progress)
    return write_backtest_report(out_dir, info)


def dataset_backtest(source: DatasetSource, plan: BacktestPlan, out_dir: Path, *,
                     pretrain_epochs: int | None = None, progress: bool = True
                     ) -> tuple[Path, Verdict]:
    """Load ground truth, check the plan against it (before any encoding), encode, run."""
    pool, test, name = load_ground_truth(source)
    plan.check(int(np.sum(pool.labels >= 0)))
    encoded, test_features, info = encode_dataset(pool, test, pretrain_epochs=pretrain_epochs,
                                                  progress=progress)
    data = BacktestData(encoded, pool.labels, test_features, test.labels, pool.class_names,
                        name=name, info=info)
    return backtest_to_folder(data, plan, out_dir, progress=progress)
