"""The cold-start pieces the round engine (:mod:`medactive.rounds`) puts together: check the
request, pre-train MoCo v2 (cached), select, explain.

``medactive coldstart``, the labelling project's first ``query``, the back-test and the
experiment runner all take their first round from :func:`medactive.rounds.cold_start_round`,
which uses these, so the MoCo settings and the selection exist once:

* :func:`moco_config` — the MoCo v2 settings for a pool (batch clamped to the pool, queue at least
  one batch);
* :func:`check_request` — strategy name, parameter values and budget, checked in milliseconds
  *before* minutes of pre-training;
* :func:`select_initial` — a strategy's ranked picks on a :class:`ColdStartView`, with per-image
  evidence (cluster, confidence, variability, score);
* :func:`pretrain` — MoCo v2 with those settings (cached; warm rounds reuse its features);
* :func:`needs_features` — whether a strategy reads features at all (a random start does not,
  so it needs no pre-training).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medactive.coldstart.base import (
    ColdStartStrategy,
    ColdStartView,
    check_coldstart_budget,
    checked_coldstart_strategy,
)
from medactive.coldstart.embedding import clustering_space
from medactive.coldstart.hacon import kmeans
from medactive.data.lazy import LazyImages
from medactive.defaults import DEFAULT_COLDSTART
from medactive.errors import StrategyError
from medactive.models.contrastive import pretrain_moco
from medactive.models.contrastive_config import ContrastiveResult, MocoConfig
from medactive.models.device import select_device


def moco_config(n_images: int, base: MocoConfig | None = None, **overrides: Any) -> MocoConfig:
    """MoCo v2 settings for a pool of ``n_images``: ``base`` (default :class:`MocoConfig`) with
    ``overrides`` (``None`` values ignored), the batch clamped to the pool and the queue holding
    at least one batch of keys.

    Raises:
        ConfigError: impossible values (see :meth:`MocoConfig.validate`), or a device that
            does not exist here.
    """
    cfg = dataclasses.replace(base or MocoConfig(),
                              **{k: v for k, v in overrides.items() if v is not None})
    cfg.batch_size = max(2, min(cfg.batch_size, n_images))
    cfg.queue_size = max(cfg.queue_size, cfg.batch_size)
    cfg.validate()
    select_device(cfg.device)  # `--device bogus` fails here, before data or pre-training
    return cfg


@dataclass(frozen=True)
class ColdStartRequest:
    """What to select: a registered strategy, its parameters, how many images, and the seed.

    ``seed`` seeds the selection's generator and, for strategies with a ``seed`` parameter left
    unset, becomes that parameter (so the CLI's ``--seed`` fixes the K-means seed too).
    ``allow_simulation`` admits ground-truth analyses (experiments only, never a real project).
    """

    strategy: str = DEFAULT_COLDSTART
    params: dict[str, Any] = field(default_factory=dict)
    budget: int = 20
    seed: int = 0
    allow_simulation: bool = False

    def strategy_params(self) -> dict[str, Any]:
        """``params``, plus ``seed`` for strategies that take one and were not given it."""
        params = dict(self.params)
        from medactive.coldstart.base import get_coldstart_strategy

        cls = type(get_coldstart_strategy(self.strategy, **params))
        if "seed" in cls.param_names() and params.get("seed") is None:
            params["seed"] = self.seed
        return params


def needs_features(strategy: str, params: dict[str, Any] | None = None) -> bool:
    """True unless the cold-start strategy ``strategy`` reads no features (``random``): such a
    start needs no encoder, so no pre-training (unknown names answer True; the request check
    reports them)."""
    from medactive.coldstart.base import get_coldstart_strategy

    try:
        return bool(get_coldstart_strategy(strategy, **(params or {})).needs_features)
    except StrategyError:
        return True


def check_request(request: ColdStartRequest, n_images: int | None = None) -> ColdStartStrategy:
    """The strategy ``request`` names, with every parameter checked, and the budget checked
    against ``n_images`` when given — all before any pre-training.

    Raises:
        StrategyError: unknown name, bad parameter, simulation-only strategy (unless allowed),
            or a budget outside ``1..n_images``.
    """
    strategy = checked_coldstart_strategy(request.strategy, **request.strategy_params())
    if strategy.simulation_only and not request.allow_simulation:
        raise StrategyError(f"{request.strategy!r} is simulation-only (reads ground truth); "
                            "use it from medactive.coldstart.simulation, not on real data")
    if n_images is not None:
        check_coldstart_budget(n_images, request.budget)
    return strategy


@dataclass
class ColdStartSelection:
    """A cold-start query and why each image is in it (all arrays ``(B,)``, acquisition order).

    Attributes:
        indices: int64 positions in the pool.
        scores: float64 score of each pick from :meth:`ColdStartStrategy.rank`, or None.
        clusters: int64 K-means cluster of each pick (K = ``n_clusters`` or the budget, the
            clustering HaCon uses), or None when not computed.
        confidence, variability: the dataset map at the picks (None without a map).
        strategy: the strategy object that chose them.
    """

    indices: np.ndarray
    scores: np.ndarray | None
    clusters: np.ndarray | None
    confidence: np.ndarray | None
    variability: np.ndarray | None
    strategy: ColdStartStrategy

    def evidence(self, ids: np.ndarray | None = None) -> list[dict[str, Any]]:
        """One dict per pick: ``rank, id, index, cluster, confidence, variability, score``."""
        rows = []
        for r, i in enumerate(self.indices.tolist()):
            rows.append({
                "rank": r + 1, "id": str(ids[i]) if ids is not None else str(i), "index": i,
                "cluster": None if self.clusters is None else int(self.clusters[r]),
                "confidence": None if self.confidence is None else float(self.confidence[r]),
                "variability": None if self.variability is None else float(self.variability[r]),
                "score": None if self.scores is None else float(self.scores[r]),
            })
        return rows


def select_initial(
    strategy: ColdStartStrategy,
    view: ColdStartView,
    budget: int,
    rng: np.random.Generator,
    *,
    cluster_seed: int | None = None,
) -> ColdStartSelection:
    """Run ``strategy`` on ``view`` and gather its evidence.

    Args:
        strategy: a cold-start strategy (checked or not).
        view: features and dataset map of the pool.
        budget: how many images, ``1 <= budget <= N``.
        rng: the selection's generator.
        cluster_seed: when given, also report each pick's K-means cluster (K = the strategy's
            ``n_clusters`` or ``budget``, this seed) — costs one K-means, memoised and shared
            with HaCon when it used the same seed.

    Returns:
        The :class:`ColdStartSelection`.
    """
    indices, scores = strategy.rank(view, budget, rng)
    indices = np.asarray(indices, dtype=np.int64)
    clusters = None
    if cluster_seed is not None:
        k = getattr(strategy, "n_clusters", None) or int(
            np.ceil(getattr(strategy, "oversample", 1.0) * budget - 1e-9))
        space = clustering_space(view.features, getattr(strategy, "embedding", "features"),
                                 int(cluster_seed))
        labels, _ = kmeans(space, int(k), int(cluster_seed))
        clusters = labels[indices]
    # a view holds both halves of the map or neither (checked in ColdStartView)
    return ColdStartSelection(
        indices, None if scores is None else np.asarray(scores, np.float64), clusters,
        None if view.confidence is None else view.confidence[indices],
        None if view.variability is None else view.variability[indices],
        strategy)


def pretrain(
    images: np.ndarray | LazyImages,
    moco: MocoConfig | None = None,
    *,
    cache_root: Path | None = None,
    progress: bool = True,
) -> ContrastiveResult:
    """MoCo v2 pre-training of ``images`` with :func:`moco_config`'s settings (cached)."""
    cfg = moco_config(int(images.shape[0]), moco)
    return pretrain_moco(images, cfg, cache_root=cache_root, progress=progress)
