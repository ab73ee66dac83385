"""The human-in-the-loop cycle behind ``medactive project query``: the store's side of a round.

The round itself — validation draw, second reads, the classifier, the strategy's picks, the
selection-health check — is :func:`medactive.rounds.plan_round`, the same function the back-test
(``medactive project backtest``) replays with an oracle, so what was measured is what runs here.
This module adds what only a project has:

1. every image of the project (registered, not removed) read lazily from the decoded-image store
   (built at ``init``; :mod:`medactive.annotate.pixels`);
2. the project's features: its own embeddings (``init --features``), or a MoCo v2 encoder
   pre-trained on its images (:mod:`medactive.coldstart.pipeline`), cached under
   ``DIR/encoders/<key>`` so only the first query pays for it — and none at all for a random
   cold start, which reads no features;
3. the labels so far as a :class:`~medactive.rounds.LabelState`: a training label is an image's
   decision (:mod:`medactive.annotate.consensus`: adjudicated, else majority; unresolved
   disagreements and ``unsure`` answers are left out), validation labels are the validation
   sample's;
4. the round recorded in one transaction: its ranked queue with purposes, the model's
   probabilities on every image (out-of-fold on the validation images it trained on), the head as
   the round's checkpoint under ``DIR/models/``.

With no labels yet the round is a cold start (default: :data:`~medactive.defaults.DEFAULT_COLDSTART`),
afterwards an acquisition round (default: :data:`~medactive.defaults.DEFAULT_ACQUISITION`).

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
from medactive.annotate.next_round import check_round_request as check_project_request
from medactive.annotate.pixels import FEATURES_FILE, project_features, project_images
from medactive.annotate.project import project_encoder
from medactive.annotate.settings import ProjectSettings, load_settings
from medactive.annotate.store import ProjectStore
from medactive.coldstart.pipeline import needs_features
from medactive.data.lazy import LazyImages
from medactive.defaults import DEFAULT_ACQUISITION
from medactive.errors import MedactiveError, StrategyError
from medactive.models import HeadConfig, check_encoder, encode_pool
from medactive.models.contrastive import PROGRESS_LABEL as PRETRAINING_BAR
from medactive.progress import listen
from medactive.rounds import (
    ClassifierConfig,
    LabelState,
    PlannedRound,
    RoundPool,
    ValidationPolicy,
    check_round_request,
    is_cold,
    plan_round,
)
from medactive.rounds.planning import draw_uniform
from medactive.strategies import SelectionHealth

if TYPE_CHECKING:
    from medactive.models.contrastive_config import MocoConfig

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


Progress = Callable[[str, float], None]
# stage -> (start, end) of the job's progress bar
#: the encoder's bar label prefix when it extracts features (``encoding (NAME)``)
ENCODING_BAR = "encoding"
STAGES = {"loading images": (0.0, 0.1), "pre-training": (0.1, 0.7),
          "training classifier": (0.7, 0.8), "ranking": (0.8, 0.95), "recording": (0.95, 1.0)}


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
    """Maps the encoder's bar (MoCo's pre-training over every epoch, or a pretrained
    network's feature extraction) onto the job's progress."""

    def heard(desc: str, done: int, total: int | None) -> None:
        if (desc == PRETRAINING_BAR or desc.startswith(ENCODING_BAR)) and total:
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
    force: bool = False,
) -> QueryResult:
    """Run one query round on the project in ``project_dir`` and record it, as a job.

    Args:
        job_id: the job this run carries out (started by the labelling page); None records a
            new one (one job at a time per project).
        progress: optional ``(stage, overall fraction)`` callback.
        force: close the latest round even though some of its images still need an answer.

    Raises:
        StrategyError: bad budget (not positive, or more than the unanswered images) or an
            unknown strategy name — refused before any job is recorded.
        OpenRoundError: the latest round still has open images and ``force`` is False.
        StoreError: the project cannot be opened or written; ``JobBusyError`` when another
            query is running.
    """
    cfg = config or QueryConfig()
    if not isinstance(budget, int) or budget < 1:
        raise StrategyError(f"--budget must be a positive integer, got {budget!r}")
    with ProjectStore.open(project_dir) as store:
        store.check_writable()  # a read-only project fails now, not after minutes of training
        request = (budget, strategy, cfg.strategy_params)
        if job_id is None:
            # a typo or an open round is refused before a job exists (no failed job for it)
            check_project_request(store, *request, force=force, seed=cfg.seed)
            job_id = store.begin_job("query", {"budget": budget, "strategy": strategy,
                                               "seed": cfg.seed}, os.getpid())
        else:
            job = store.job(job_id)
            if job is None or job.status != "running":
                raise StrategyError(f"job {job_id} is not a running job of this project")
            store.set_job_pid(job_id, os.getpid())
            try:  # the page checked it before starting the job; the project may have moved on
                check_project_request(store, *request, force=force, seed=cfg.seed)
            except MedactiveError as exc:
                store.finish_job(job_id, error=str(exc))
                raise
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


def _label_state(store: ProjectStore, position: dict[int, int], n: int) -> LabelState:
    """The project's labels by position in its image list (decisions, validation sample)."""
    decided: dict[int, Decision] = decisions(store)
    val_ids = store.validation_ids()
    state = LabelState.empty(n)
    for iid, d in decided.items():
        k = position[iid]
        state.answered[k] = True
        # a query runs when the latest round is complete or being closed (--force): a validation
        # draw still unanswered then goes back to the pool like any unanswered image
        state.drawn_validation[k] = iid in val_ids
        if d.label is None:
            continue
        if iid in val_ids:
            state.validation[k] = d.label
        else:
            state.train[k] = d.label
            state.single[k] = d.status == "single"
    return state


def round_policy(settings: ProjectSettings) -> ValidationPolicy:
    """The project's validation policy (``validation_mode`` and ``validation_share``)."""
    return ValidationPolicy(settings.validation_mode,  # type: ignore[arg-type]
                            settings.validation_share).check()


def project_pool(store: ProjectStore, images: LazyImages, meta: dict[str, Any],
                 uids: list[str], cfg: QueryConfig, needs_features: bool,
                 progress: bool = True) -> RoundPool:
    """The project's pool as the round engine sees it: its own embeddings, or the features of
    its encoder (:func:`medactive.models.encode_pool`: MoCo v2 pre-trained on every image, or a
    pretrained network), cached in the project folder so only the first query pays.

    Raises:
        ConfigError: the project's encoder or its weights cannot be used (checked again here:
            the weights may have moved since ``init``).
    """
    own = project_features(store.dir, meta, uids)
    if own is not None:
        return RoundPool(own, key="features", images=images)
    if not needs_features:  # a random cold start reads no features: no encoder for it
        return RoundPool(np.zeros((images.shape[0], 0), np.float32), key="none", images=images)
    spec = project_encoder(meta)
    assert spec is not None  # no features file means an encoder
    spec = check_encoder(spec.name, spec.weights, spec.revision)
    encoded = encode_pool(spec, images, cache_root=store.dir,
                          moco=_moco(cfg) if spec.family == "moco" else None, progress=progress)
    return RoundPool.from_encoded(encoded, images)


def _save_head(path: Path, plan: PlannedRound, pool: RoundPool, cfg: QueryConfig) -> None:
    """The round's head (and the feature space it works in) as its checkpoint; atomic."""
    import torch

    assert plan.model is not None
    space = pool.space
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")  # a killed query leaves no truncated checkpoint
    torch.save({"weight": torch.from_numpy(plan.model.weight),
                "bias": torch.from_numpy(plan.model.bias),
                "space_mean": None if space.mean is None else torch.from_numpy(space.mean),
                "space_std": None if space.std is None else torch.from_numpy(space.std),
                "encoder_key": pool.key, "dropout": plan.model.dropout,
                "head_config": dataclasses.asdict(_classifier(cfg).head)}, partial)
    partial.replace(path)


def _encoder_checkpoint(project_dir: Path, key: str) -> str | None:
    """What a cold-start round was chosen with: the project's own embeddings, the MoCo encoder
    folder or the pretrained encoder's feature-cache entry (None for a random start)."""
    if key == "features":
        return str(project_dir / FEATURES_FILE)
    if key == "none":
        return None
    moco = project_dir / "encoders" / key
    return str(moco if moco.exists() else project_dir / "feature-cache" / key)


def _classifier(cfg: QueryConfig) -> ClassifierConfig:
    return ClassifierConfig(head=HeadConfig(epochs=cfg.head_epochs))


def _query(store: ProjectStore, budget: int, strategy: str | None, cfg: QueryConfig,
           report: Progress) -> QueryResult:
    start = time.perf_counter()
    settings: ProjectSettings = load_settings(store)
    if cfg.pretrain_epochs is None:
        cfg = dataclasses.replace(cfg, pretrain_epochs=settings.pretrain_epochs)
    meta, classes, rows_all = store.meta(), store.classes(), store.images()
    n = len(rows_all)
    position = {r.id: k for k, r in enumerate(rows_all)}
    state = _label_state(store, position, n)
    policy = round_policy(settings)
    # every name, parameter and the budget checked before minutes of pre-training
    name = check_round_request(n, state, budget, strategy, cfg.strategy_params, policy)
    cold = is_cold(state, policy)
    round_no = len(store.rounds()) + 1
    report("loading images", 0.0)
    # hashes checked: a model must never train on a file that changed after registration
    images = project_images([r.path for r in rows_all], [r.sha256 for r in rows_all], meta)
    report("loading images", 1.0)
    needs = not cold or needs_features(name, cfg.strategy_params)
    pool = project_pool(store, images, meta, [r.uid for r in rows_all], cfg, needs)
    report("training classifier", 0.0)
    plan = plan_round(pool, state, budget, n_classes=len(classes), round_index=round_no,
                      seed=cfg.seed, strategy=name, params=cfg.strategy_params, policy=policy,
                      classifier=_classifier(cfg), second_read_share=settings.second_read_share,
                      class_names=list(classes), ray=cfg.ray)
    report("recording", 0.0)
    predictions = None
    checkpoint: str | None
    if plan.model is not None:
        checkpoint = str(store.dir / "models" / f"round-{round_no:03d}-head.pt")
        _save_head(Path(checkpoint), plan, pool, cfg)
        assert plan.probabilities is not None
        predictions = {rows_all[k].id: plan.probabilities[k] for k in range(n)}
        if not store.stop_sample():
            pool_positions = state.candidates()
            stop = draw_uniform(pool_positions, min(settings.stop_sample, pool_positions.size),
                                np.random.default_rng([cfg.seed, 0]))
            store.save_stop_sample([rows_all[int(k)].id for k in stop])
    else:
        checkpoint = _encoder_checkpoint(store.dir, pool.key)
    # labels given while this job ran count for the round after: drop what got answered since
    answered_now = {a.image_id for a in store.reader_answers()}
    queued = [(rows_all[int(p)].id, s, purpose)
              for p, s, purpose in zip(plan.positions.tolist(), plan.scores, plan.purposes,
                                       strict=True)
              if purpose == "second-read" or rows_all[int(p)].id not in answered_now]
    ids = [q[0] for q in queued]
    score_list = [q[1] for q in queued]
    purposes = [q[2] for q in queued]
    params = {**plan.params, "encoder": pool.key, "pretrain_epochs": cfg.pretrain_epochs,
              "backbone": cfg.backbone, "head_epochs": cfg.head_epochs}
    if plan.selection is not None and plan.selection.clusters is not None:
        # "why this image" at a cold start: the K-means cluster each pick stands for
        params["clusters"] = {str(rows_all[int(p)].id): int(c) for p, c in
                              zip(plan.selection.indices, plan.selection.clusters, strict=True)}
    try:
        round_id = store.add_round(name, params, checkpoint, list(zip(ids, score_list,
                                                                      strict=True)),
                                   purposes, predictions)
    except BaseException:
        if plan.model is not None and checkpoint is not None:  # a head no round points at
            Path(checkpoint).unlink(missing_ok=True)  # would only mislead
        raise
    report("recording", 1.0)
    return QueryResult(round_id, name, ids, score_list, time.perf_counter() - start, purposes,
                       health=plan.health)
