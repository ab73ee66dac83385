"""Rank a pool of unlabelled images with medactive's defaults, from features and whatever
labels exist: the core of the MONAI Label strategy, free of MONAI Label itself.

* With image-level classes for at least two classes: a dropout + linear head is trained on the
  labelled images' features (:func:`medactive.models.fit_head`, as ``project query`` does) and
  medactive's default acquisition (:data:`medactive.defaults.DEFAULT_ACQUISITION`) ranks the pool
  on it, the labelled set standing in as its evaluation set (as a project's first rounds do
  before a validation sample exists).
* Otherwise (nothing labelled yet, one class only, or labels that are not classes, such as
  segmentation masks): medactive's default cold start (:data:`medactive.defaults.DEFAULT_COLDSTART`,
  TypiClust), which needs no labels and puts images from clusters without labelled images
  first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import StrategyError
from medactive.models.training import HeadConfig, fit_head
from medactive.strategies import RoundView, get_strategy


@dataclass(frozen=True)
class Ranking:
    """The first ``len(order)`` picks of the pool.

    Attributes:
        order: ``(B,)`` int64 indices into the feature rows, best first (never a labelled row).
        scores: ``(B,)`` float64 scores of the picks (higher = wanted more), or None for a
            strategy without per-image scores.
        strategy: the medactive strategy that ranked them.
    """

    order: np.ndarray
    scores: np.ndarray | None
    strategy: str


def rank_pool(features: np.ndarray, labelled: np.ndarray, labels: np.ndarray, n_classes: int,
              budget: int, seed: int = 0, acquisition: str = DEFAULT_ACQUISITION,
              coldstart: str = DEFAULT_COLDSTART) -> Ranking:
    """Rank the unlabelled rows of ``features`` (module docstring).

    Args:
        features: ``(N, D)`` features of every image, labelled or not.
        labelled: ``(N,)`` bool, True for an image that has a label (of any kind): never picked.
        labels: ``(N,)`` int64 class indices in ``[0, n_classes)`` where the label names a
            class, ``-1`` elsewhere (unlabelled, or a label that is not a class). A labelled
            image without a class is left out of the acquisition's view (neither training data
            nor a candidate) and counts as labelled for the cold start.
        n_classes: ``C``, the classes a head would predict (may exceed those labelled so far).
        budget: how many picks (``1 <= budget <= unlabelled rows``).

    Raises:
        StrategyError: mismatched shapes, labels out of range or on unlabelled rows, a bad
            budget or strategy name.
    """
    features = np.asarray(features, np.float32)
    labelled = np.asarray(labelled, bool)
    labels = np.asarray(labels, np.int64)
    n = features.shape[0] if features.ndim == 2 else -1
    if n < 0 or labelled.shape != (n,) or labels.shape != (n,):
        raise StrategyError(f"features {features.shape}, labelled {labelled.shape} and labels "
                            f"{labels.shape} do not match")
    if labels.max(initial=-1) >= n_classes or labels.min(initial=-1) < -1:
        raise StrategyError(f"labels must be -1 or in [0, {n_classes})")
    if np.any(labels[~labelled] >= 0):
        raise StrategyError("an unlabelled image cannot have a class")
    rng = np.random.default_rng(seed)
    classed = labels >= 0
    if n_classes >= 2 and np.unique(labels[classed]).size >= 2:
        rows = np.flatnonzero(classed | ~labelled)
        known = classed[rows]
        head = HeadConfig(seed=seed)
        weight, bias = fit_head(features[classed], labels[classed], n_classes, head)
        view = RoundView(features=features[rows], labeled_mask=known, labels=labels[rows],
                         weight=weight, bias=bias, dropout_p=head.dropout,
                         val_features=features[classed], val_labels=labels[classed])
        name = acquisition
    else:
        rows = np.arange(n)
        # the cold start reads features and the labelled mask only; the view still needs a
        # head's shape, which no label-free strategy reads
        dim = features.shape[1]
        view = RoundView(features=features, labeled_mask=labelled, labels=np.full(n, -1),
                         weight=np.zeros((1, dim), np.float32), bias=np.zeros(1, np.float32))
        name = coldstart
    order, scores = get_strategy(name).rank(view, budget, rng)
    return Ranking(rows[np.asarray(order, np.int64)],
                   None if scores is None else np.asarray(scores, np.float64), name)
