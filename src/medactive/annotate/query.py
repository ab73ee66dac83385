"""The human-in-the-loop cycle behind ``medactive project query``.

One query round:

1. load every image of the project (registered, not removed) into one uint8 array, decoded with
   the project's settings (:mod:`medactive.data.decode`) and resized to its image size;
2. get a contrastive encoder for them: MoCo v2 pre-training (:mod:`medactive.coldstart.pipeline`,
   the same pipeline as ``medactive coldstart`` and the runner), cached under
   ``DIR/encoders/<key>`` so only the first query of a project pays for it;
3. * no labels yet -> a cold-start strategy (default ``hacon``) on the contrastive features and
     dataset map, through :func:`~medactive.coldstart.pipeline.run_coldstart`;
   * labels -> a classifier = frozen encoder + dropout/linear head trained on the labelled images
     (:func:`fit_head`; seconds on a CPU), then an acquisition strategy (default ``aeig``) on a
     :class:`RoundView` of it. The head is saved under ``DIR/models/`` as the round's checkpoint;
4. record the round and its ranked queries in one transaction.

Images whose current answer is ``unsure`` are left out of the view entirely: they are neither
training data (no class) nor candidates (the clinician has already looked at them). So a round
never queries an image that already has an answer.

The evaluation set of the information-gain strategies is the labelled set itself: a live project
has no separate validation labels, and the expected-gain scores only need labelled features and
their class shares.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medactive.annotate.store import ProjectStore
from medactive.coldstart.pipeline import ColdStartRequest, check_request, pretrain, run_coldstart
from medactive.data.decode import DecodeSettings
from medactive.data.imagefiles import load_images
from medactive.errors import StrategyError
from medactive.strategies import checked_strategy

if TYPE_CHECKING:
    from medactive.models.contrastive import ContrastiveResult, MocoConfig

DEFAULT_COLDSTART = "hacon"
DEFAULT_STRATEGY = "aeig"


@dataclass
class QueryConfig:
    """Settings of one query round (the pre-training ones change the encoder cache key)."""

    seed: int = 0
    pretrain_epochs: int = 10
    pretrain_batch_size: int = 256
    backbone: str = "compact"
    head_epochs: int = 200
    strategy_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class QueryResult:
    """What a round chose: store ids in rank order, their scores (None for rank-only
    strategies), the new round's id, the strategy name and the wall time."""

    round_id: int
    strategy: str
    image_ids: list[int]
    scores: list[float | None]
    seconds: float


def _moco(cfg: QueryConfig) -> MocoConfig:
    from medactive.models.contrastive import MocoConfig

    return MocoConfig(backbone=cfg.backbone, epochs=cfg.pretrain_epochs,
                      batch_size=cfg.pretrain_batch_size, seed=cfg.seed)


def _acquire(name: str, result: ContrastiveResult, images: np.ndarray, rows: np.ndarray,
             labels: np.ndarray, n_classes: int, budget: int, cfg: QueryConfig,
             checkpoint: Path) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Train the head on the labelled rows, rank the pool with ``name``; ``(picked positions in
    rows, their scores or None, parameters to record)``."""
    import torch

    from medactive.models import HeadConfig, fit_head
    from medactive.strategies import RoundView, get_strategy

    feats, y = np.asarray(result.features, np.float32)[rows], labels[rows]
    known = y >= 0
    head_cfg = HeadConfig(epochs=cfg.head_epochs, seed=cfg.seed)
    # one output per project class, labelled or not yet: an unseen class keeps a low logit
    weight, bias = fit_head(feats[known], y[known], n_classes, head_cfg)
    view = RoundView(features=feats, labeled_mask=known, labels=np.where(known, y, -1),
                     weight=weight, bias=bias, dropout_p=head_cfg.dropout,
                     val_features=feats[known], val_labels=y[known], images=images[rows])
    strat = get_strategy(name, **cfg.strategy_params)
    picked, scores = strat.rank(view, budget, np.random.default_rng(cfg.seed))
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".part")  # a killed query leaves no truncated checkpoint
    torch.save({"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias),
                "encoder_key": result.key, "dropout": head_cfg.dropout,
                "head_config": dataclasses.asdict(head_cfg)}, partial)
    partial.replace(checkpoint)
    return picked, scores, {**strat.get_params(), "head_epochs": cfg.head_epochs}


def run_query(
    project_dir: str | Path,
    budget: int,
    strategy: str | None = None,
    config: QueryConfig | None = None,
) -> QueryResult:
    """Run one query round on the project in ``project_dir`` and record it.

    Raises:
        StrategyError: bad budget (not positive, or more than the unanswered images) or an
            unknown strategy name.
        StoreError: the project cannot be opened.
    """
    cfg = config or QueryConfig()
    start = time.perf_counter()
    if not isinstance(budget, int) or budget < 1:
        raise StrategyError(f"--budget must be a positive integer, got {budget!r}")
    with ProjectStore.open(project_dir) as store:
        store.check_writable()  # a read-only project fails now, not after minutes of training
        meta, classes, rows_all = store.meta(), store.classes(), store.images()
        answers = store.current_answers()
        position = {r.id: k for k, r in enumerate(rows_all)}
        labels = np.full(len(rows_all), -1, dtype=np.int64)
        unsure = np.zeros(len(rows_all), dtype=bool)
        for ans in answers.values():
            if ans.kind == "label":
                labels[position[ans.image_id]] = ans.class_idx
            else:
                unsure[position[ans.image_id]] = True
        rows = np.flatnonzero(~unsure)  # view rows: everything except "unsure" answers
        n_pool = int(np.sum(labels[rows] < 0))
        if budget > n_pool:
            raise StrategyError(f"budget {budget} is larger than the {n_pool} unanswered images")
        cold = not np.any(labels >= 0)
        name = strategy or (DEFAULT_COLDSTART if cold else DEFAULT_STRATEGY)
        request = ColdStartRequest(name, dict(cfg.strategy_params), budget, cfg.seed)
        # every name and parameter checked before minutes of pre-training, not after
        if cold:
            check_request(request, rows.size)
        else:
            checked_strategy(name, **cfg.strategy_params)
        # hashes checked: a model must never train on a file that changed after registration
        images = load_images([r.path for r in rows_all], int(meta.get("image_size", 28)),
                             int(meta.get("channels", 3)), hashes=[r.sha256 for r in rows_all],
                             settings=DecodeSettings.from_meta(meta.get("decode")))
        encoders = store.dir / "encoders"
        if cold:
            selection = run_coldstart(images, request, _moco(cfg), candidates=rows,
                                      cache_root=encoders)
            result = selection.pretraining
            assert result is not None
            positions, scores = selection.indices, selection.scores
            params = selection.strategy.get_params()
            checkpoint = str(encoders / result.key)
        else:
            result = pretrain(images, _moco(cfg), cache_root=encoders)
            ckpt = store.dir / "models" / f"round-{len(store.rounds()) + 1:03d}-head.pt"
            picked, scores, params = _acquire(name, result, images, rows, labels, len(classes),
                                              budget, cfg, ckpt)
            positions = rows[picked]
            checkpoint = str(ckpt)
        ids = [rows_all[int(p)].id for p in positions]
        score_list = [None] * len(ids) if scores is None else [float(s) for s in scores]
        params = {**params, "budget": budget, "seed": cfg.seed, "encoder": result.key,
                  "pretrain_epochs": cfg.pretrain_epochs, "backbone": cfg.backbone}
        try:
            round_id = store.add_round(name, params, checkpoint,
                                       list(zip(ids, score_list, strict=True)))
        except BaseException:
            if not cold:  # a head no round points at would only mislead
                Path(checkpoint).unlink(missing_ok=True)
            raise
    return QueryResult(round_id, name, ids, score_list, time.perf_counter() - start)
