"""The acquisition-strategy interface: a round's cached state ("view"), strategies, and a registry.

A :class:`RoundView` is built once per round (see
:func:`medactive.strategies.view.build_round_view`) with one batched forward pass of the
classifier; every strategy then works on cached arrays.
Indices are always positions in the *whole* training set (``view.features``), so a strategy's
output can be checked against ``view.labeled_mask`` directly.

Every strategy implements :meth:`Strategy.rank`, returning the picked indices in acquisition order
*and* the score that put each one there (``None`` when a strategy has no per-image score, e.g.
random) — baal's ``get_ranks`` and scikit-activeml's ``return_utilities``: callers that show or
store scores never re-implement a ranking. :meth:`Strategy.select` is the thin indices-only
wrapper. Score-based strategies implement :meth:`ScoreStrategy.score` instead, returning one float
per pool image (``view.pool_indices`` order), higher = acquire first; their ranking is the top-B
with ties broken by the round's random generator. Batch-aware strategies (CoreSet, BADGE,
BatchBALD, the diversity wrapper) implement :meth:`Strategy.rank` directly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from medactive.data.lazy import LazyImages
from medactive.errors import StrategyError
from medactive.registry import Parametrized, Registry
from medactive.selection import check_budget as check_budget_of_pool

# Rows processed at once by chunked helpers: 16k x 512 float64 = 64 MB at most per temporary.
_CHUNK_ROWS = 16384


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits, computed stably in the input's float type."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass(eq=False)
class RoundView:
    """Everything a strategy may look at in one acquisition round.

    Attributes:
        features: ``(N, D)`` float32 penultimate features (input of the linear head) of every
            training image, labelled or not.
        labeled_mask: ``(N,)`` bool, True where the label is known.
        labels: ``(N,)`` int64 labels, ``-1`` where unknown. Strategies must only read
            ``labels[labeled_mask]`` — the one exception is simulation-only wrappers that say so.
        weight: ``(C, D)`` weight of the linear head.
        bias: ``(C,)`` bias of the linear head.
        dropout_p: dropout probability in front of the head (MC-dropout strategies use it).
        val_features: ``(K, D)`` features of the evaluation (validation) images.
        val_labels: ``(K,)`` labels of the evaluation images.
        images: optional ``(N, H, W, C)`` uint8 training images, in memory or lazy
            (:class:`~medactive.data.lazy.LazyImages`, read one batch at a time), for strategies
            that need the network itself (VAAL, Consistency) and for pixel-space baselines.
        model: optional trained classifier (``medactive.models.Classifier``), same purpose.
        model_factory: builds ``model`` when a strategy first asks for it
            (:func:`require_network`), so a round whose strategy never runs the network never
            builds it (the round engine's head-mode views; building DINOv2-small took 3.7 s).
        true_labels: optional ``(N,)`` ground truth, **simulation only** (label-diversity
            wrapper with ``groups="true"``); never read by label-free code.
        extras: free-form cached arrays (e.g. contrastive confidence) keyed by name.
    """

    features: np.ndarray
    labeled_mask: np.ndarray
    labels: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    dropout_p: float = 0.2
    val_features: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    images: np.ndarray | LazyImages | None = None
    model: Any = None
    true_labels: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    model_factory: Callable[[], Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n, d = self.features.shape
        if self.labeled_mask.shape != (n,) or self.labels.shape != (n,):
            raise StrategyError(
                f"view: labeled_mask {self.labeled_mask.shape} and labels {self.labels.shape} "
                f"must both have shape ({n},)"
            )
        if self.weight.ndim != 2 or self.weight.shape[1] != d or self.bias.shape != (
            self.weight.shape[0],
        ):
            raise StrategyError(
                f"view: head weight {self.weight.shape} / bias {self.bias.shape} do not match "
                f"feature dimension {d}"
            )
        # Checked in row chunks: a full-size boolean temporary would be N*D bytes (512 MB for a
        # million 512-d features), which matters under the 4 GiB budget of large pools.
        for start in range(0, n, _CHUNK_ROWS):
            if not np.all(np.isfinite(self.features[start : start + _CHUNK_ROWS])):
                raise StrategyError("view: features contain NaN or infinite values")

    @property
    def n_classes(self) -> int:
        """Number of classes ``C``."""
        return int(self.weight.shape[0])

    @cached_property
    def pool_indices(self) -> np.ndarray:
        """``(N_pool,)`` int64 indices of the unlabelled images, ascending."""
        return np.flatnonzero(~self.labeled_mask).astype(np.int64)

    @property
    def pool_features(self) -> np.ndarray:
        """``(N_pool, D)`` features of the unlabelled images."""
        return self.features[self.pool_indices]

    @cached_property
    def pool_logits(self) -> np.ndarray:
        """``(N_pool, C)`` float64 logits of the head on the pool (dropout off)."""
        # Chunked so no float64 copy of the whole pool's features is ever made (memory bound).
        idx = self.pool_indices
        w = self.weight.T.astype(np.float64)
        b = self.bias.astype(np.float64)
        out = np.empty((idx.size, self.n_classes), dtype=np.float64)
        for start in range(0, idx.size, _CHUNK_ROWS):
            rows = idx[start : start + _CHUNK_ROWS]
            out[start : start + rows.size] = self.features[rows].astype(np.float64) @ w + b
        return out

    @cached_property
    def pool_probabilities(self) -> np.ndarray:
        """``(N_pool, C)`` float64 softmax probabilities on the pool (dropout off)."""
        return softmax(self.pool_logits)


def iter_pool_chunks(
    view: RoundView, chunk: int = _CHUNK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, features)`` over the pool in row chunks of ``view.features``.

    ``features`` is a ``(n, D)`` float32 copy of at most ``chunk`` pool rows and ``start`` its
    offset in ``view.pool_indices``; lets strategies stream over huge pools without ever copying
    ``view.pool_features`` whole.
    """
    idx = view.pool_indices
    for start in range(0, idx.size, chunk):
        yield start, view.features[idx[start : start + chunk]]


def check_budget(view: RoundView, budget: int) -> None:
    """Raise :class:`StrategyError` unless ``budget`` is an integer in ``[1, pool size]``
    (booleans refused): :func:`medactive.selection.check_budget` over the unlabelled pool."""
    check_budget_of_pool(budget, int(view.pool_indices.size), "unlabelled pool")


def top_k_with_random_ties(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of the ``k`` largest ``scores``, highest first, ties broken by ``rng``.

    Args:
        scores: ``(N,)`` finite floats.
        k: how many to take, ``1 <= k <= N``.
        rng: random generator used only to order exactly-equal scores.

    Returns:
        ``(k,)`` int64 positions into ``scores``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise StrategyError("strategy produced NaN or infinite scores")
    tiebreak = np.asarray(rng.random(scores.shape[0]))
    # lexsort sorts by the last key first: primary key -score, secondary a random permutation.
    order = np.lexsort((tiebreak, -scores))
    return order[:k].astype(np.int64)


class Strategy(Parametrized, ABC):
    """An acquisition strategy; the constructor stores parameters (``check_params`` validates
    them when the registry creates the strategy)."""

    @abstractmethod
    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Choose ``budget`` pool images.

        Args:
            view: the round's cached arrays.
            budget: how many images, ``1 <= budget <= pool size``.
            rng: the round's generator (every random choice of the strategy comes from it,
                unless a ``seed`` parameter fixes it).

        Returns:
            ``(indices, scores)``: ``(budget,)`` distinct int64 training-set indices, none
            already labelled, in acquisition order; and ``(budget,)`` float64 scores of those
            images (higher = wanted more; the value that decided each pick), or ``None`` when
            the strategy has no per-image score.
        """

    def select(self, view: RoundView, budget: int, rng: np.random.Generator) -> np.ndarray:
        """The indices of :meth:`rank` only: ``(budget,)`` int64 in acquisition order."""
        return self.rank(view, budget, rng)[0]


class ScoreStrategy(Strategy):
    """A strategy defined by a per-image score; its ranking is the top-B scores."""

    @abstractmethod
    def score(self, view: RoundView, rng: np.random.Generator | None = None) -> np.ndarray:
        """``(N_pool,)`` float64 scores aligned with ``view.pool_indices``; higher = acquire
        first. ``rng`` is the round's generator for strategies whose score is random (MC
        dropout, augmentations); ``None`` gives their fixed default (seed 0, or ``seed``)."""

    def rank(
        self, view: RoundView, budget: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        check_budget(view, budget)
        scores = np.asarray(self.score(view, rng), dtype=np.float64)
        if scores.shape != view.pool_indices.shape:
            raise StrategyError(
                f"{self.name}: score returned shape {scores.shape}, "
                f"expected {view.pool_indices.shape}"
            )
        order = top_k_with_random_ties(scores, budget, rng)
        return view.pool_indices[order], scores[order]


def _load_builtin_strategies() -> None:
    # Importing the package registers every built-in strategy module exactly once.
    import medactive.strategies  # noqa: F401


_REGISTRY: Registry[Strategy] = Registry("strategy", "strategies", _load_builtin_strategies)


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator adding a strategy to the registry under ``name``."""
    return _REGISTRY.register(name)


def get_strategy(name: str, **params: Any) -> Strategy:
    """Instantiate the registered strategy ``name`` with ``params``.

    Raises:
        StrategyError: unknown name (the message lists the known ones) or bad parameters.
    """
    return _REGISTRY.create(name, **params)


def checked_strategy(name: str, **params: Any) -> Strategy:
    """:func:`get_strategy` plus a check of every parameter value, for callers about to start
    expensive work (training, pre-training) who want bad input to fail first.

    Raises:
        StrategyError: unknown name, unknown parameter or impossible value.
    """
    return _REGISTRY.checked(name, **params)


def list_strategies() -> list[str]:
    """Names of all registered acquisition strategies, sorted."""
    return sorted(_REGISTRY.entries())


def require_network(view: RoundView, name: str,
                    need_model: bool = True) -> np.ndarray | LazyImages:
    """The view's ``(N, H, W, C)`` training images (index them in batches: they may be lazy);
    raise :class:`StrategyError` unless it
    carries them (and the trained model when ``need_model``, built here by the view's
    ``model_factory`` when it has one)."""
    if need_model and view.model is None and view.model_factory is not None:
        view.model, view.model_factory = view.model_factory(), None
    missing = [
        what
        for what, absent in (("trained model", need_model and view.model is None),
                             ("training images", view.images is None))
        if absent
    ]
    if missing:
        raise StrategyError(
            f"{name} needs the {' and the '.join(missing)} in the round view; build it with "
            "build_round_view(..., include_images=True)"
        )
    images = view.images
    assert images is not None
    if images.shape[0] != view.features.shape[0]:
        raise StrategyError(
            f"{name}: view has {images.shape[0]} images but {view.features.shape[0]} features"
        )
    return images
