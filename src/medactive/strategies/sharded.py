"""Scoring sharded by pool chunk on a Ray cluster, with the same picks as one process.

:func:`rank_with` is the one entry point the runner and the labelling project call: without an
address it is ``strategy.rank``; with one (``--ray``, ``[run] ray``):

* a :class:`~medactive.strategies.base.ScoreStrategy` that scores from cached arrays (entropy,
  margin, information gain, BALD, ...) is scored shard by shard: the pool's rows are split into
  ``shards`` chunks, the head, dropout rate and evaluation features go to the object store
  **once**, each Ray task scores its chunk through the strategy's own :meth:`score` on a
  sub-view holding only that chunk, and the driver gathers the scores and takes the top B with
  the round's generator, exactly as :meth:`ScoreStrategy.rank` does. Every shard receives a copy
  of the round generator's state, so random scores (MC-dropout masks) use the same draws as one
  process; the driver's generator is then advanced by one score call on a one-row view, which
  draws what a full call draws (masks are ``(T, D)``, targets a subsample of the evaluation
  set: independent of the pool size). Each sub-view also holds the round's labelled rows
  (broadcast with the head), so a posterior fitted on them (last-layer Laplace) is the same;
* selections that need the whole pool at once (CoreSet, BADGE, BatchBALD, the diversity
  wrapper) and strategies that need the network or the pixels (VAAL, Consistency) run on the
  driver, on the gathered view.

The sharded scores equal the single-process ones to floating-point tolerance (identical
arithmetic per row; only BLAS blocking may differ), so the picks are the same
(``tests/strategies/test_sharded.py``; the overhead is measured in ``benchmarks/bench_scale.py``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from medactive.errors import StrategyError
from medactive.models.cluster import connect
from medactive.strategies.base import (
    RoundView,
    ScoreStrategy,
    Strategy,
    check_budget,
    top_k_with_random_ties,
)

#: Score strategies that read the network or the pixels, not only cached arrays.
WHOLE_POOL_SCORES = frozenset({"vaal", "consistency"})


def shardable(strategy: Strategy) -> bool:
    """True when ``strategy``'s ranking is a top-B of per-image scores computed from cached
    arrays alone (so each pool chunk can be scored on its own)."""
    return isinstance(strategy, ScoreStrategy) and strategy.name not in WHOLE_POOL_SCORES


def _sub_view(features: np.ndarray, shared: dict[str, Any]) -> RoundView:
    """A view whose pool is exactly ``features``, after the round's labelled rows (a Laplace
    posterior, for one, is fitted on them), with the round's head and evaluation set."""
    head = {k: v for k, v in shared.items() if not k.startswith("labelled_")}
    n_lab, n = shared["labelled_features"].shape[0], features.shape[0]
    return RoundView(features=np.concatenate([shared["labelled_features"], features]),
                     labeled_mask=np.arange(n_lab + n) < n_lab,
                     labels=np.concatenate([shared["labelled_labels"], np.full(n, -1, np.int64)]),
                     **head)


def _score_chunk(strategy: ScoreStrategy, head: dict[str, Any], features: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """``(n,)`` scores of one pool chunk (runs in a Ray task)."""
    return np.asarray(strategy.score(_sub_view(features, head), rng), dtype=np.float64)


def sharded_scores(strategy: ScoreStrategy, view: RoundView, rng: np.random.Generator | None,
                   shards: int, address: str = "local") -> np.ndarray:
    """``(N_pool,)`` scores of ``view.pool_indices`` computed in ``shards`` Ray tasks.

    ``rng`` is the round generator; each shard scores with a copy of its current state, and
    ``rng`` itself is advanced as by one :meth:`ScoreStrategy.score` call.
    """
    ray = connect(address)  # the head, evaluation set and labelled rows are broadcast once
    if shards < 1:
        raise StrategyError(f"shards must be a positive integer, got {shards!r}")
    head = {"weight": view.weight, "bias": view.bias, "dropout_p": view.dropout_p,
            "val_features": view.val_features, "val_labels": view.val_labels,
            "labelled_features": view.features[view.labeled_mask],
            "labelled_labels": view.labels[view.labeled_mask]}
    head_ref = ray.put(head)  # broadcast once: every task reads the same object
    task = ray.remote(_score_chunk)
    chunks = np.array_split(view.pool_indices, min(shards, max(1, view.pool_indices.size)))
    refs = [task.remote(strategy, head_ref, view.features[rows], copy.deepcopy(rng))
            for rows in chunks if rows.size]
    scores = np.concatenate(ray.get(refs))
    if rng is not None:  # consume what one score() call consumes, on one row
        strategy.score(_sub_view(view.features[view.pool_indices[:1]], head), rng)
    return scores


def rank_with(strategy: Strategy, view: RoundView, budget: int, rng: np.random.Generator,
              *, ray: str | None = None, shards: int | None = None) -> tuple[np.ndarray,
                                                                             np.ndarray | None]:
    """``strategy.rank(view, budget, rng)``, sharded on Ray when ``ray`` names a cluster.

    Args:
        strategy, view, budget, rng: as for :meth:`Strategy.rank`.
        ray: ``None`` (one process, the default), ``"local"``, ``"auto"`` or ``"ray://H:P"``.
        shards: pool chunks (default: the cluster's CPU count).

    Returns:
        ``(indices, scores)`` as :meth:`Strategy.rank`.
    """
    if ray is None or not shardable(strategy):
        return strategy.rank(view, budget, rng)
    assert isinstance(strategy, ScoreStrategy)
    check_budget(view, budget)
    if shards is None:
        shards = max(1, int(connect(ray).cluster_resources().get("CPU", 1)))
    scores = sharded_scores(strategy, view, rng, shards, ray)
    order = top_k_with_random_ties(scores, budget, rng)
    return view.pool_indices[order], scores[order]
