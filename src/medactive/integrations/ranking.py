"""Rank a pool of unlabelled images with medactive's defaults, from features and whatever
labels exist: the core of the MONAI Label strategy, free of MONAI Label itself.

It goes through the round engine of ``medactive project query`` (:mod:`medactive.rounds`:
standardised head features, :func:`~medactive.rounds.fit_round`,
:func:`~medactive.rounds.round_view`, :func:`~medactive.rounds.rank_round`,
:func:`~medactive.rounds.cold_start_round`), so a MONAI Label datastore is ranked as a medactive
project's round would rank it:

* once an image's label names one of ``n_classes >= 2`` classes: the round's head on the labelled
  images, then medactive's default acquisition (:data:`medactive.defaults.DEFAULT_ACQUISITION`),
  the labelled images standing in as its evaluation set (as a project's first rounds do before a
  validation sample exists);
* before that, or when labels are not classes (segmentation masks): medactive's default cold
  start (:data:`medactive.defaults.DEFAULT_COLDSTART`) on the unlabelled images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medactive.coldstart.pipeline import ColdStartRequest
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import StrategyError
from medactive.rounds import (
    ClassifierConfig,
    EvaluationSet,
    RoundPool,
    cold_start_round,
    fit_round,
    rank_round,
    round_seeds,
    round_view,
)
from medactive.strategies import checked_strategy


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
            class, ``-1`` elsewhere (unlabelled, or a label that is not a class: such an image
            is neither trained on nor picked, as an ``unsure`` answer in a project).
        n_classes: ``C``, the classes the head predicts (may exceed those labelled so far).
        budget: how many picks (``1 <= budget <= unlabelled rows``).
        seed: the loop's seed (the round's generator comes from it, as in a project).

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
    free = np.flatnonzero(~labelled)
    if not 1 <= budget <= free.size:
        raise StrategyError(f"budget {budget} must be between 1 and the {free.size} unlabelled "
                            "images")
    pool = RoundPool(features, key="monailabel")
    classed = np.flatnonzero(labels >= 0)
    round_index = 2 if classed.size else 1
    if n_classes < 2 or classed.size == 0:
        request = ColdStartRequest(coldstart, {}, int(budget), seed)
        selection = cold_start_round(pool, request, candidates=free, round_index=round_index,
                                     explain=False)
        return Ranking(np.asarray(selection.indices, np.int64),
                       None if selection.scores is None else
                       np.asarray(selection.scores, np.float64), coldstart)
    rng, head_seed = round_seeds(seed, round_index)
    config = ClassifierConfig()
    model = fit_round(pool, classed, labels[classed], n_classes, config, head_seed)
    evaluation = EvaluationSet.from_pool(pool, classed, labels[classed])
    rows = np.union1d(classed, free)
    view = round_view(pool, model, rows, labels[rows], evaluation, config=config)
    ranked = rank_round(checked_strategy(acquisition), view, int(budget), rng)
    return Ranking(rows[ranked.positions], ranked.scores, acquisition)
