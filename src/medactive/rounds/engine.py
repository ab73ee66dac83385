"""The round engine: the one place a round is fitted, viewed, ranked and checked.

``medactive project query`` (CLI and the page's next-round job), the experiment runner,
``medactive coldstart``, the back-test and every benchmark go through these functions, so what
was measured is what a clinic runs:

* :func:`round_seeds` — the round's generator and head seed from ``(seed, round index)``;
* :func:`cold_start_round` — a label-free strategy's picks on the pool (round 1);
* :func:`fit_round` — the round's classifier on the labelled positions (head or finetune);
* :func:`round_view` — the strategies' :class:`~medactive.strategies.RoundView` of it;
* :func:`rank_round` — any strategy's ranked picks, checked, with the selection-health check.

Round indices count from 1 (the cold start); the picks of round ``r`` are chosen by a model
trained on what rounds ``1 .. r-1`` labelled.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from medactive.coldstart.pipeline import (
    ColdStartRequest,
    ColdStartSelection,
    check_request,
    select_initial,
)
from medactive.data.dataset import ImageDataset
from medactive.data.lazy import LazyImages, take
from medactive.errors import StrategyError
from medactive.models import Classifier
from medactive.rounds.classifier import (
    ClassifierConfig,
    RoundModel,
    finetune_classifier,
    fit_head_classifier,
)
from medactive.rounds.pool import RoundPool
from medactive.strategies import (
    RoundView,
    SelectionHealth,
    Strategy,
    build_round_view,
    selection_health,
)
from medactive.strategies.sharded import rank_with


def round_seeds(seed: int, round_index: int) -> tuple[np.random.Generator, int]:
    """``(generator, head seed)`` of round ``round_index`` of a loop seeded with ``seed``.

    Derived from the two numbers alone (never from execution order), so a resumed run, the
    product and the back-test draw the same numbers for the same round.
    """
    sequence = np.random.SeedSequence([int(seed), int(round_index)])
    head_seed = int(sequence.generate_state(1)[0] & 0x7FFFFFFF)
    return np.random.default_rng(sequence), head_seed


@dataclass(eq=False)
class EvaluationSet:
    """The labelled images information-gain strategies and EPIG measure entropy on.

    Attributes:
        features: ``(K, D)`` float32 raw encoder features (head mode; the view maps them into
            the strategies' space).
        labels: ``(K,)`` int64 classes.
        images: ``(K, H, W, C)`` uint8 images (finetune mode: the view runs the network).
    """

    features: np.ndarray | None
    labels: np.ndarray
    images: np.ndarray | LazyImages | None = None

    @classmethod
    def from_pool(cls, pool: RoundPool, positions: np.ndarray, labels: np.ndarray
                  ) -> EvaluationSet:
        """Pool images at ``(K,)`` ``positions`` with their ``(K,)`` labels."""
        positions = np.asarray(positions, np.int64)
        images = None if pool.images is None else take(pool.images, positions)
        return cls(np.asarray(pool.features[positions], np.float32),
                   np.asarray(labels, np.int64), images)

    @classmethod
    def from_features(cls, features: np.ndarray | None, labels: np.ndarray,
                      images: np.ndarray | LazyImages | None = None) -> EvaluationSet:
        """A separate labelled set (the runner's validation split): ``(K, D)`` raw encoder
        ``features``."""
        return cls(None if features is None else np.asarray(features, np.float32),
                   np.asarray(labels, np.int64), images)


def cold_start_round(pool: RoundPool, request: ColdStartRequest, *,
                     candidates: np.ndarray | None = None,
                     true_labels: np.ndarray | None = None,
                     round_index: int = 1,
                     explain: bool = True) -> ColdStartSelection:
    """Round 1: the label-free strategy of ``request`` on the pool.

    Args:
        pool: the encoded pool (features, and the dataset map for map-based strategies).
        request: strategy, parameters, budget and seed (checked here, before any work).
        candidates: ``(M,)`` positions the picks may come from (default: every image); the
            strategy sees only those.
        true_labels: ``(N,)`` ground truth for simulation-only strategies (runner analyses).
        round_index: the round's number (1 unless earlier rounds labelled only images that
            cannot train a classifier).
        explain: also compute each pick's K-means cluster (one more clustering, memoised).

    Returns:
        The selection, ``indices`` as pool positions.
    """
    rows = np.arange(pool.n) if candidates is None else np.asarray(candidates, np.int64)
    strategy = check_request(request, int(rows.size))
    view = pool.coldstart_view(true_labels)
    if rows.size != pool.n:
        view = view.subset(rows)
    rng, _ = round_seeds(request.seed, round_index)
    # a start that reads no features (random) may come with none: nothing to cluster then
    explain = explain and pool.features.shape[1] > 0
    selection = select_initial(strategy, view, request.budget, rng,
                               cluster_seed=request.seed if explain else None)
    selection.indices = rows[selection.indices]
    return selection


def fit_round(pool: RoundPool, labelled: np.ndarray, labels: np.ndarray, n_classes: int,
              config: ClassifierConfig, seed: int, *,
              validation: ImageDataset | None = None) -> RoundModel:
    """Train the round's classifier on pool positions ``labelled`` ``(M,)`` with ``(M,)``
    ``labels``: the head on :attr:`RoundPool.head_features` (head mode), or a fine-tuned copy
    of the pool's encoder on the images (finetune mode; ``validation`` for early stopping).

    Raises:
        StrategyError: nothing labelled, or finetune mode without an encoder or images.
    """
    labelled = np.asarray(labelled, np.int64)
    labels = np.asarray(labels, np.int64)
    if labelled.size == 0:
        raise StrategyError("a round's classifier needs at least one labelled image")
    if config.mode == "head":
        return fit_head_classifier(pool.head_features[labelled], labels, n_classes, config, seed)
    encoder = pool.network()
    if encoder is None or pool.images is None:
        raise StrategyError("finetune mode needs the encoder network and the pool's images")
    train = ImageDataset(cast(np.ndarray, take(pool.images, labelled)), labels,
                         tuple(str(c) for c in range(n_classes)),
                         np.asarray([str(i) for i in labelled.tolist()]), "labelled")
    return finetune_classifier(encoder, train, validation, n_classes, config, seed)


def _head_network(pool: RoundPool, model: RoundModel) -> Classifier | None:
    """The frozen encoder with the round's head folded back to raw features (VAAL and
    Consistency run the network), or None without an encoder."""
    import torch

    encoder = pool.network()
    if encoder is None:
        return None
    weight, bias = pool.space.fold_into_head(model.weight, model.bias)
    network = Classifier(encoder, int(weight.shape[0]), model.dropout)
    with torch.no_grad():
        network.head.weight.copy_(torch.from_numpy(weight))
        network.head.bias.copy_(torch.from_numpy(bias))
    return network.eval()


def round_view(pool: RoundPool, model: RoundModel, rows: np.ndarray, labels: np.ndarray,
               evaluation: EvaluationSet, *, config: ClassifierConfig | None = None,
               true_labels: np.ndarray | None = None) -> RoundView:
    """The strategies' view of the round over pool positions ``rows`` ``(R,)``.

    Args:
        rows: the positions a strategy may see: the labelled training images and the
            candidates (a labelling project leaves out validation, unsure and unresolved images).
        labels: ``(R,)`` class of each row, ``-1`` for a candidate.
        evaluation: the labelled evaluation set.
        config: the classifier config (finetune mode re-encodes images through the network).
        true_labels: ``(R,)`` ground truth, simulation-only wrappers (runner analyses).
    """
    rows = np.asarray(rows, np.int64)
    labels = np.asarray(labels, np.int64)
    mask = labels >= 0
    if model.network is not None:  # finetune: one forward pass of the trained network
        if pool.images is None or evaluation.images is None:
            raise StrategyError("finetune mode's view needs the pool's and evaluation images")
        device = None if config is None else config.device
        return build_round_view(model.network, take(pool.images, rows), mask, labels,
                                evaluation.images, evaluation.labels, device=device,
                                include_images=True, true_labels=true_labels)
    if evaluation.features is None:
        raise StrategyError("head mode needs the evaluation set's features")
    full = rows.size == pool.n and bool(np.all(rows == np.arange(pool.n)))
    images = pool.images if full or pool.images is None else take(pool.images, rows)
    features = pool.view_features if full else pool.view_features[rows]
    weight, bias = pool.view_head(model.weight, model.bias)
    return RoundView(features=np.asarray(features, np.float32), labeled_mask=mask,
                     labels=np.where(mask, labels, -1), weight=weight, bias=bias,
                     dropout_p=model.dropout,
                     val_features=pool.to_view_space(evaluation.features),
                     val_labels=evaluation.labels, images=images,
                     model_factory=functools.partial(_head_network, pool, model),
                     true_labels=true_labels)


@dataclass
class RankedPicks:
    """A strategy's picks for a round.

    Attributes:
        positions: ``(B,)`` int64 view rows (positions in the ``rows`` the view was built on),
            in acquisition order.
        scores: ``(B,)`` float64 score that decided each pick, or None (rank-only strategies).
        health: the batch checked against its pool by the model's own predictions.
        params: the strategy's parameters as it ran, with the name of the strategy a switch
            delegated to (``"active"``), for the record.
    """

    positions: np.ndarray
    scores: np.ndarray | None
    health: SelectionHealth
    params: dict[str, Any]


def rank_round(strategy: Strategy, view: RoundView, budget: int, rng: np.random.Generator, *,
               ray: str | None = None, class_names: list[str] | None = None) -> RankedPicks:
    """Rank the view's candidates with ``strategy`` and check the result.

    Raises:
        StrategyError: the strategy returned a wrong number of picks, duplicates or labelled
            images.
    """
    picked, scores = rank_with(strategy, view, int(budget), rng, ray=ray)
    picked = np.asarray(picked, np.int64)
    if (picked.size != budget or np.unique(picked).size != picked.size
            or view.labeled_mask[picked].any()):
        raise StrategyError(f"{strategy.name} returned an invalid selection")
    health = selection_health(view.pool_probabilities, np.searchsorted(view.pool_indices, picked),
                              class_names)
    params = dict(strategy.get_params())
    active = getattr(strategy, "active", None)
    if callable(active):
        params["active"] = active(view)[0]
    return RankedPicks(picked, None if scores is None else np.asarray(scores, np.float64),
                       health, params)
