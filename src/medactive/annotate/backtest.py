"""``medactive project backtest PROJECT``: the product's loop replayed on a project's own labels.

A hospital labels a subset of its images (or brings a CSV of labels it already has), then asks,
before its experts spend a day: on *our* images, do medactive's picks beat labelling at random?
The pool is the project's images encoded exactly as ``project query`` encodes them
(:func:`medactive.annotate.query.project_pool`); the images with ground truth are split once
(stratified, seeded) into the images the oracle may answer and a held-out test set; the loop is
:func:`medactive.rounds.backtest.run_backtest`. Nothing in the project is changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medactive.annotate.consensus import decisions
from medactive.annotate.labelfiles import read_labels_file
from medactive.annotate.pixels import project_images
from medactive.annotate.query import QueryConfig, project_pool
from medactive.annotate.settings import load_settings
from medactive.annotate.store import ProjectStore
from medactive.errors import ConfigError
from medactive.rounds import ValidationPolicy
from medactive.rounds.backtest import BacktestData


def held_out(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``(M,)`` sorted positions of a stratified test set: ``share`` of each class's labelled
    images (at least one of every class with two or more), drawn with ``seed``.

    Args:
        labels: ``(N,)`` int64 classes, -1 for images without ground truth.
    """
    rng = np.random.default_rng(seed)
    out = []
    for c in np.unique(labels[labels >= 0]):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = round(share * members.size)
        if members.size >= 2:
            k = min(max(k, 1), members.size - 1)
        out.append(members[:k])
    return np.sort(np.concatenate(out)) if out else np.zeros(0, np.int64)


def _truth_from_file(store: ProjectStore, path: Path) -> dict[str, int]:
    """``image uid -> class`` from a labels file, through the one labels reader (columns
    detected, class names matched case-insensitively, conflicting duplicates refused); its
    ``unsure`` answers are no ground truth."""
    classes = store.classes()
    rows = read_labels_file(path, [r.uid for r in store.images()], classes).rows
    index = {name: k for k, name in enumerate(classes)}
    return {uid: index[answer] for uid, answer in rows if answer in index}


def project_backtest_data(project_dir: str | Path, *, labels: Path | None = None,
                          test_share: float = 0.25, seed: int = 0, progress: bool = True,
                          config: QueryConfig | None = None
                          ) -> tuple[BacktestData, ValidationPolicy]:
    """The project's ground truth (its decided labels, or ``labels`` CSV), held-out test set
    and encoded pool, plus its own validation policy.

    Raises:
        ConfigError / DataError: no ground truth, unknown images or classes in the CSV, too
            few labelled images for a test set — before any encoding.
    """
    if not 0.05 <= test_share <= 0.5:
        raise ConfigError(f"test share must be between 0.05 and 0.5, got {test_share}")
    cfg = config or QueryConfig()
    with ProjectStore.open(project_dir) as store:
        rows = store.images()
        classes = tuple(store.classes())
        meta = store.meta()
        settings = load_settings(store)
        if labels is not None:
            by_uid = _truth_from_file(store, labels)
            truth = np.array([by_uid.get(r.uid, -1) for r in rows], np.int64)
        else:
            decided = decisions(store)
            truth = np.array([-1 if (d := decided.get(r.id)) is None or d.label is None
                              else d.label for r in rows], np.int64)
        policy = ValidationPolicy(settings.validation_mode,  # type: ignore[arg-type]
                                  settings.validation_share).check()
        if not np.any(truth >= 0):
            raise ConfigError(f"{project_dir}: no ground truth: label some images first, or "
                              "give --labels CSV")
        test = held_out(truth, test_share, seed)
        if test.size == 0 or np.unique(truth[test]).size < 2:
            raise ConfigError("too few labelled images for a test set with two classes: "
                              "label more images, or give --labels CSV")
        if cfg.pretrain_epochs is None:
            cfg = QueryConfig(**{**cfg.__dict__, "pretrain_epochs": settings.pretrain_epochs})
        images = project_images([r.path for r in rows], [r.sha256 for r in rows], meta,
                                progress=progress)
        pool = project_pool(store, images, meta, [r.uid for r in rows], cfg, True)
    answerable = truth.copy()
    answerable[test] = -1  # the test images are never queried
    data = BacktestData(pool, answerable, np.asarray(pool.features[test]), truth[test], classes,
                        name=Path(project_dir).name, info={"encoder": pool.key,
                                                           "ground_truth": "csv" if labels
                                                           else "project labels"})
    return data, policy
