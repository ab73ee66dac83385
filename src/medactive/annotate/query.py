"""The human-in-the-loop cycle behind ``medactive project query``.

One query round:

1. open every image of the project (registered, not removed) lazily from the decoded-image store
   (built at ``init``, decoded with the project's settings and resized to its image size;
   :mod:`medactive.annotate.pixels`);
2. unless the project brought its own embeddings (``init --features``), get a contrastive
   encoder for them: MoCo v2 pre-training (:mod:`medactive.coldstart.pipeline`,
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

A round's budget is split (:mod:`medactive.annotate.planning`): a uniformly random
**validation draw** (``validation_share`` of the budget; labelled like any other image, never
trained on; the evaluation set of the information-gain strategies and EPIG, and the sample the
validation AUC is measured on), optional **second reads** of single-read images where the new
model disagrees with the reader, and the strategy's own picks for the rest. The training label of
an image is its decision (:mod:`medactive.annotate.consensus`): adjudicated, else majority;
unresolved disagreements are left out until someone adjudicates them.

Every query runs as a **job** recorded in the store (stage, progress, error): the page's "next
round" button starts ``medactive project query --job N`` in the background, the CLI records one
in the foreground, and the store lets only one run at a time per project.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medactive.annotate.consensus import Decision, decisions
from medactive.annotate.pixels import FEATURES_FILE, project_features, project_images
from medactive.annotate.planning import (
    draw_uniform,
    interleave,
    second_read_candidates,
    second_read_size,
    validation_draw_size,
)
from medactive.annotate.settings import ProjectSettings, load_settings
from medactive.annotate.store import ProjectStore
from medactive.coldstart.pipeline import ColdStartRequest, check_request, pretrain, run_coldstart
from medactive.data.lazy import LazyImages, take
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import MedactiveError, StrategyError
from medactive.models.contrastive import PROGRESS_LABEL as PRETRAINING_BAR
from medactive.progress import listen
from medactive.strategies import SelectionHealth, checked_strategy

if TYPE_CHECKING:
    from medactive.models.contrastive_config import ContrastiveResult, MocoConfig

DEFAULT_STRATEGY = DEFAULT_ACQUISITION  # the name this module has always exported


@dataclass
class QueryConfig:
    """Settings of one query round (the pre-training ones change the encoder cache key)."""

    seed: int = 0
    pretrain_epochs: int | None = None  # None: the project's setting (default 10)
    pretrain_batch_size: int = 256
    backbone: str = "compact"
    head_epochs: int = 200
    strategy_params: dict[str, Any] = field(default_factory=dict)
    ray: str | None = None  # scoring sharded on Ray: local | auto | ray://HOST:PORT


@dataclass
class QueryResult:
    """What a round chose: store ids in rank order, their scores (None for rank-only
    strategies), the new round's id, the strategy name and the wall time."""

    round_id: int
    strategy: str
    image_ids: list[int]
    scores: list[float | None]
    seconds: float
    purposes: list[str] = dataclasses.field(default_factory=list)
    job_id: int | None = None
    health: SelectionHealth | None = None  # acquisition rounds only (needs a trained model)


def _moco(cfg: QueryConfig) -> MocoConfig:
    from medactive.models.contrastive_config import MocoConfig

    assert cfg.pretrain_epochs is not None
    return MocoConfig(backbone=cfg.backbone, epochs=cfg.pretrain_epochs,
                      batch_size=cfg.pretrain_batch_size, seed=cfg.seed)


@dataclass
class OwnFeatures:
    """The project's own embeddings standing in for a pre-training result (``features``,
    ``key``) when it was initialised with ``--features``: no encoder, no dataset map."""

    features: np.ndarray
    key: str = "features"


Progress = Callable[[str, float], None]
# stage -> (start, end) of the job's progress bar
STAGES = {"loading images": (0.0, 0.1), "pre-training": (0.1, 0.7),
          "training classifier": (0.7, 0.8), "ranking": (0.8, 0.95), "recording": (0.95, 1.0)}


@dataclass
class _Labels:
    """The labels a round works from, by position in the project's image list."""

    train: np.ndarray  # (N,) int64 class used for training, -1 otherwise
    validation: np.ndarray  # (N,) int64 class of a decided validation image, -1 otherwise
    answered: np.ndarray  # (N,) bool: some reader answered (or an adjudication exists)
    single: np.ndarray  # (N,) bool: decided by one reader alone (a second read may help)
    drawn_validation: np.ndarray  # (N,) bool: in the validation sample, answered or not


def _labels(store: ProjectStore, position: dict[int, int], n: int) -> _Labels:
    decided: dict[int, Decision] = decisions(store)
    val_ids = store.validation_ids()
    out = _Labels(np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.zeros(n, bool),
                  np.zeros(n, bool), np.zeros(n, bool))
    for iid in val_ids:
        out.drawn_validation[position[iid]] = True
    for iid, d in decided.items():
        k = position[iid]
        out.answered[k] = True
        if d.label is None:
            continue
        if iid in val_ids:
            out.validation[k] = d.label
        else:
            out.train[k] = d.label
            out.single[k] = d.status == "single"
    return out


def _acquire(name: str, result: ContrastiveResult | OwnFeatures, images: np.ndarray | LazyImages,
             rows: np.ndarray, lab: _Labels, n_classes: int, budget: int, n_second: int,
             cfg: QueryConfig, checkpoint: Path, report: Progress
             ) -> tuple[np.ndarray, np.ndarray | None, list[int], list[float], np.ndarray,
                        dict[str, Any]]:
    """Train the head on the training labels, rank the pool with ``name``, pick second reads.

    Returns:
        ``(picked positions in rows, their scores or None, second-read positions in the
        project, their scores, (N, C) probabilities of every image, parameters to record)``.
    """
    import torch

    from medactive.models import HeadConfig, fit_head
    from medactive.strategies import RoundView, get_strategy, selection_health
    from medactive.strategies.base import softmax
    from medactive.strategies.sharded import rank_with

    all_feats = np.asarray(result.features, np.float32)
    feats, y = all_feats[rows], lab.train[rows]
    known = y >= 0
    head_cfg = HeadConfig(epochs=cfg.head_epochs, seed=cfg.seed)
    report("training classifier", 0.0)
    # one output per project class, labelled or not yet: an unseen class keeps a low logit
    weight, bias = fit_head(feats[known], y[known], n_classes, head_cfg)
    val = np.flatnonzero(lab.validation >= 0)
    # the evaluation set: the validation sample once it has two classes; before that (first
    # rounds, or validation_share 0) the labelled training set, as a project without one must
    use_val = np.unique(lab.validation[val]).size >= 2
    eval_feats = all_feats[val] if use_val else feats[known]
    eval_labels = lab.validation[val] if use_val else y[known]
    view = RoundView(features=feats, labeled_mask=known, labels=np.where(known, y, -1),
                     weight=weight, bias=bias, dropout_p=head_cfg.dropout,
                     val_features=eval_feats, val_labels=eval_labels, images=take(images, rows))
    probs = softmax(all_feats.astype(np.float64) @ weight.T.astype(np.float64)
                    + bias.astype(np.float64))
    second: list[int] = []
    second_scores: list[float] = []
    if n_second:
        single = np.flatnonzero(lab.single)
        order, sc = second_read_candidates(probs[single], lab.train[single])
        second = single[order[:n_second]].tolist()
        second_scores = sc[:n_second].tolist()
    strat = get_strategy(name, **cfg.strategy_params)
    report("ranking", 0.0)
    # second reads come out of the budget only as far as there are disagreements
    picked, scores = rank_with(strat, view, budget - len(second),
                               np.random.default_rng(cfg.seed), ray=cfg.ray)
    # the batch against its pool by the model's own predictions (recorded with the round)
    health = selection_health(view.pool_probabilities, np.searchsorted(view.pool_indices, picked))
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    partial = checkpoint.with_suffix(".part")  # a killed query leaves no truncated checkpoint
    torch.save({"weight": torch.from_numpy(weight), "bias": torch.from_numpy(bias),
                "encoder_key": result.key, "dropout": head_cfg.dropout,
                "head_config": dataclasses.asdict(head_cfg)}, partial)
    partial.replace(checkpoint)
    params = {**strat.get_params(), "head_epochs": cfg.head_epochs,
              "evaluation_set": "validation" if use_val else "training",
              "evaluation_n": int(eval_labels.size), "health": health.as_dict()}
    return picked, scores, second, second_scores, probs, params


def _job_reporter(store: ProjectStore, job_id: int, progress: Progress | None) -> Progress:
    """A ``report(stage, fraction)`` that records the job's progress (at most twice a second)."""
    last = [0.0]

    def report(stage: str, fraction: float) -> None:
        lo, hi = STAGES.get(stage, (0.0, 1.0))
        overall = lo + (hi - lo) * min(max(fraction, 0.0), 1.0)
        if progress is not None:
            progress(stage, overall)
        now_s = time.monotonic()
        if fraction in (0.0, 1.0) or now_s - last[0] > 0.5:
            last[0] = now_s
            store.update_job(job_id, stage, overall)

    return report


def _pretraining_listener(report: Progress) -> Callable[[str, int, int | None], None]:
    """Maps the pre-training bar (one over every epoch's steps) onto the job's progress."""

    def heard(desc: str, done: int, total: int | None) -> None:
        if desc == PRETRAINING_BAR and total:
            report("pre-training", done / total)

    return heard


def run_query(
    project_dir: str | Path,
    budget: int,
    strategy: str | None = None,
    config: QueryConfig | None = None,
    *,
    job_id: int | None = None,
    progress: Progress | None = None,
) -> QueryResult:
    """Run one query round on the project in ``project_dir`` and record it, as a job.

    Args:
        job_id: the job this run carries out (started by the labelling page); None records a
            new one (one job at a time per project).
        progress: optional ``(stage, overall fraction)`` callback.

    Raises:
        StrategyError: bad budget (not positive, or more than the unanswered images) or an
            unknown strategy name.
        StoreError: the project cannot be opened or written; ``JobBusyError`` when another
            query is running.
    """
    cfg = config or QueryConfig()
    if not isinstance(budget, int) or budget < 1:
        raise StrategyError(f"--budget must be a positive integer, got {budget!r}")
    with ProjectStore.open(project_dir) as store:
        store.check_writable()  # a read-only project fails now, not after minutes of training
        if job_id is None:
            job_id = store.begin_job("query", {"budget": budget, "strategy": strategy,
                                               "seed": cfg.seed}, os.getpid())
        else:
            job = store.job(job_id)
            if job is None or job.status != "running":
                raise StrategyError(f"job {job_id} is not a running job of this project")
            store.set_job_pid(job_id, os.getpid())
        report = _job_reporter(store, job_id, progress)
        try:
            with listen(_pretraining_listener(report)):
                result = _query(store, budget, strategy, cfg, report)
        except BaseException as exc:
            message = str(exc) if isinstance(exc, MedactiveError) else (
                "interrupted" if isinstance(exc, KeyboardInterrupt)
                else f"{type(exc).__name__}: {exc}")
            store.finish_job(job_id, error=message)
            raise
        store.finish_job(job_id, round_id=result.round_id)
        result.job_id = job_id
    return result


def _query(store: ProjectStore, budget: int, strategy: str | None, cfg: QueryConfig,
           report: Progress) -> QueryResult:
    start = time.perf_counter()
    settings: ProjectSettings = load_settings(store)
    if cfg.pretrain_epochs is None:
        cfg = dataclasses.replace(cfg, pretrain_epochs=settings.pretrain_epochs)
    meta, classes, rows_all = store.meta(), store.classes(), store.images()
    n = len(rows_all)
    position = {r.id: k for k, r in enumerate(rows_all)}
    lab = _labels(store, position, n)
    # view rows: training labels and the unanswered pool; never an unsure, unresolved or
    # validation image (the model must not train on those)
    pool_mask = ~lab.answered & ~lab.drawn_validation
    rows = np.flatnonzero((lab.train >= 0) | pool_mask)
    pool = np.flatnonzero(pool_mask)
    if budget > pool.size:
        raise StrategyError(f"budget {budget} is larger than the {pool.size} unanswered images")
    cold = not np.any(lab.train >= 0)
    # the default cold start needs no dataset map, so it also serves your own embeddings
    name = strategy or (DEFAULT_COLDSTART if cold else DEFAULT_STRATEGY)
    round_no = len(store.rounds()) + 1
    rng = np.random.default_rng([cfg.seed, round_no])
    val_counts = np.bincount(lab.validation[lab.validation >= 0], minlength=len(classes))
    n_val = validation_draw_size(budget, settings.validation_share, val_counts)
    n_second = 0 if cold else min(second_read_size(budget, settings.second_read_share),
                                  int(lab.single.sum()))
    validation = draw_uniform(pool, n_val, rng)
    rows = np.setdiff1d(rows, validation)
    n_acquire_max = budget - n_val
    request = ColdStartRequest(name, dict(cfg.strategy_params), n_acquire_max, cfg.seed)
    # every name and parameter checked before minutes of pre-training, not after
    if cold:
        check_request(request, rows.size)
    else:
        checked_strategy(name, **cfg.strategy_params)
    report("loading images", 0.0)
    # hashes checked: a model must never train on a file that changed after registration
    # read lazily from the decoded-image store (built at init; files re-hashed)
    images = project_images([r.path for r in rows_all], [r.sha256 for r in rows_all], meta)
    own = project_features(store.dir, meta, [r.uid for r in rows_all])  # --features
    report("loading images", 1.0)
    encoders = store.dir / "encoders"
    predictions = None
    second: list[int] = []
    second_scores: list[float] = []
    if cold:
        selection = run_coldstart(images, request, _moco(cfg), candidates=rows,
                                  cache_root=encoders, features=own)
        if own is not None:
            result: ContrastiveResult | OwnFeatures = OwnFeatures(own)
        else:  # run_coldstart pre-trains whenever it is given no features of its own
            assert selection.pretraining is not None
            result = selection.pretraining
        positions, scores = selection.indices, selection.scores
        params = selection.strategy.get_params()
        checkpoint = str(store.dir / FEATURES_FILE if own is not None
                         else encoders / result.key)
    else:
        result = pretrain(images, _moco(cfg), cache_root=encoders) if own is None \
            else OwnFeatures(own)
        ckpt = store.dir / "models" / f"round-{round_no:03d}-head.pt"
        picked, scores, second, second_scores, probs, params = _acquire(
            name, result, images, rows, lab, len(classes), n_acquire_max, n_second, cfg, ckpt,
            report)
        positions = rows[picked]
        checkpoint = str(ckpt)
        predictions = {rows_all[k].id: probs[k] for k in range(n)}
        if not store.stop_sample():
            stop = draw_uniform(pool, min(settings.stop_sample, pool.size),
                                np.random.default_rng([cfg.seed, 0]))
            store.save_stop_sample([rows_all[int(k)].id for k in stop])
    report("recording", 0.0)
    acquired = [(rows_all[int(p)].id, None if scores is None else float(s), "acquire")
                for p, s in zip(positions, scores if scores is not None else [None] * len(
                    positions), strict=True)]
    extra = [(rows_all[int(p)].id, None, "validation") for p in validation] + [
        (rows_all[int(p)].id, float(s), "second-read")
        for p, s in zip(second, second_scores, strict=True)]
    order = interleave(list(range(len(acquired))), list(range(len(acquired), len(acquired)
                                                              + len(extra))), rng)
    queued = [(acquired + extra)[k] for k in order]
    # labels given while this job ran count for the round after: drop what got answered since
    answered_now = {a.image_id for a in store.reader_answers()}
    queued = [q for q in queued if q[2] == "second-read" or q[0] not in answered_now]
    ids = [q[0] for q in queued]
    score_list = [q[1] for q in queued]
    purposes = [q[2] for q in queued]
    params = {**params, "budget": budget, "seed": cfg.seed, "encoder": result.key,
              "pretrain_epochs": cfg.pretrain_epochs, "backbone": cfg.backbone,
              "validation_draw": int(n_val), "second_reads": len(second)}
    try:
        round_id = store.add_round(name, params, checkpoint, list(zip(ids, score_list,
                                                                      strict=True)),
                                   purposes, predictions)
    except BaseException:
        if not cold:  # a head no round points at would only mislead
            Path(checkpoint).unlink(missing_ok=True)
        raise
    report("recording", 1.0)
    health = None if cold else SelectionHealth(**params["health"], class_names=list(classes))
    return QueryResult(round_id, name, ids, score_list, time.perf_counter() - start, purposes,
                       health=health)
