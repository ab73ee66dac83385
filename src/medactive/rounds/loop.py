"""One round of the labelling loop a clinic runs: the validation sample, second reads and the
strategy's picks, from the labels so far.

:func:`plan_round` is the product's round. ``medactive project query`` (and the page's
next-round job) calls it with the labels in the project store; the back-test
(:mod:`medactive.experiment.backtest`) calls it with an oracle's answers; the experiment runner
calls the same engine functions with its protocol's free validation split. So the back-test
measures exactly what a project does, validation draw and all.

The validation sample (:class:`ValidationPolicy`) is a uniformly random draw from each round's
budget, so the validation AUC it gives is an unbiased estimate. How it is spent:

* ``"crossfit"`` (the default): the drawn images are trained on like every other label; the
  validation AUC comes from *out-of-fold* predictions (the sample split in ``folds`` parts, each
  predicted by a head trained on every other label). Every label an expert gives trains the
  model, and the estimate stays honest;
* ``"holdout"``: the drawn images are never trained on (the classic hold-out);
* ``"none"``: no draw; no validation AUC.

docs/labelling.md ("The validation sample") gives the evidence for the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from medactive.coldstart.pipeline import ColdStartRequest, ColdStartSelection
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import StrategyError
from medactive.metrics import macro_auc
from medactive.rounds.classifier import ClassifierConfig, RoundModel
from medactive.rounds.engine import (
    EvaluationSet,
    cold_start_round,
    fit_round,
    rank_round,
    round_seeds,
    round_view,
)
from medactive.rounds.planning import (
    MIN_VALIDATION_PER_CLASS,
    draw_uniform,
    interleave,
    second_read_candidates,
    second_read_size,
    validation_draw_size,
)
from medactive.rounds.pool import EncodedPool
from medactive.strategies import SelectionHealth, checked_strategy

ValidationMode = Literal["crossfit", "holdout", "none"]
VALIDATION_MODES: tuple[str, ...] = ("crossfit", "holdout", "none")


@dataclass(frozen=True)
class ValidationPolicy:
    """How each round's random validation draw is sized and spent (module docstring).

    Attributes:
        mode: ``"crossfit"``, ``"holdout"`` or ``"none"``.
        share: fraction of each round's budget drawn at random (0 turns the draw off).
        folds: out-of-fold parts of the validation sample (crossfit).
    """

    mode: ValidationMode = "crossfit"
    share: float = 0.2
    folds: int = 5

    def check(self) -> ValidationPolicy:
        """Raise :class:`StrategyError` naming the first bad value; returns ``self``."""
        if self.mode not in VALIDATION_MODES:
            raise StrategyError(f"validation mode must be one of {', '.join(VALIDATION_MODES)}, "
                                f"got {self.mode!r}")
        if not isinstance(self.share, (int, float)) or isinstance(self.share, bool) or \
                not 0 <= self.share <= 0.5:
            raise StrategyError(f"validation share must be between 0 and 0.5, got {self.share!r}")
        if not isinstance(self.folds, int) or isinstance(self.folds, bool) or self.folds < 2:
            raise StrategyError(f"validation folds must be an integer >= 2, got {self.folds!r}")
        return self

    def draw_size(self, budget: int, validation_counts: np.ndarray) -> int:
        """How many of ``budget`` images to draw for validation, given ``(C,)`` labels so far.

        Hold-out keeps today's rule (``round(share * budget)``, grown while a class has fewer
        than :data:`MIN_VALIDATION_PER_CLASS`, at most half the budget): its labels buy only the
        estimate. Cross-fitting trains on them, so it draws exactly ``round(share * budget)``.
        """
        if self.mode == "none" or self.share <= 0 or budget < 2:
            return 0
        if self.mode == "holdout":
            return validation_draw_size(budget, self.share, validation_counts)
        return max(1, round(self.share * budget))

    @property
    def trains_on_validation(self) -> bool:
        """True when validation labels also train the round's classifier."""
        return self.mode == "crossfit"


@dataclass
class LabelState:
    """What the experts have said so far, by pool position (all arrays ``(N,)``).

    Attributes:
        train: int64 class of a decided training (strategy-picked) image, -1 otherwise.
        validation: int64 class of a decided validation-sample image, -1 otherwise.
        drawn_validation: bool, in the validation sample (answered or not yet).
        answered: bool, an expert answered it (or it was adjudicated): never queried again.
        single: bool, decided by one reader alone (a second read may help).
    """

    train: np.ndarray
    validation: np.ndarray
    drawn_validation: np.ndarray
    answered: np.ndarray
    single: np.ndarray

    @classmethod
    def empty(cls, n: int) -> LabelState:
        """No labels yet, for a pool of ``n`` images."""
        return cls(np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.zeros(n, bool),
                   np.zeros(n, bool), np.zeros(n, bool))

    def fit_labels(self, policy: ValidationPolicy) -> np.ndarray:
        """``(N,)`` the classes the round's classifier trains on (-1 elsewhere)."""
        if policy.trains_on_validation:
            return np.where(self.train >= 0, self.train, self.validation)
        return self.train

    def candidates(self) -> np.ndarray:
        """Positions a round may query: never answered, not already in the validation sample."""
        return np.flatnonzero(~self.answered & ~self.drawn_validation)

    def record(self, positions: np.ndarray, labels: np.ndarray, purposes: list[str]) -> None:
        """Store an oracle's answers to a round's queue (the back-test): validation draws go to
        the validation sample, everything else to training."""
        for pos, label, purpose in zip(np.asarray(positions).tolist(),
                                       np.asarray(labels).tolist(), purposes, strict=True):
            self.answered[pos] = True
            if purpose == "validation":
                self.drawn_validation[pos] = True
                self.validation[pos] = label
            else:
                self.train[pos] = label


@dataclass
class ValidationEstimate:
    """The validation sample's macro AUC of a round's model (None: fewer than 2 classes)."""

    auc: float | None
    n: int
    method: str  # "out-of-fold" or "held-out"
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)  # position -> (C,)


@dataclass
class PlannedRound:
    """A round's queue and why each image is in it.

    Attributes:
        round_index: 1 for the cold start, then 2, 3, ...
        strategy: the strategy that chose the ``"acquire"`` images.
        positions: ``(K,)`` int64 pool positions in the order the readers see them.
        scores: per queued image, the score that put it there (None for draws).
        purposes: per queued image: ``"acquire"``, ``"validation"`` or ``"second-read"``.
        params: what to record (strategy parameters, draw sizes, evaluation set, health).
        model: the round's classifier (None at a cold start).
        probabilities: ``(N, C)`` the model's probabilities on the pool (out-of-fold on the
            validation images it trained on), None at a cold start.
        health: the selection-health check (acquisition rounds).
        selection: the cold-start selection with its evidence (cold start).
        validation: the validation estimate of ``model`` (None at a cold start).
    """

    round_index: int
    strategy: str
    positions: np.ndarray
    scores: list[float | None]
    purposes: list[str]
    params: dict[str, Any]
    model: RoundModel | None = None
    probabilities: np.ndarray | None = None
    health: SelectionHealth | None = None
    selection: ColdStartSelection | None = None
    validation: ValidationEstimate | None = None

    def count(self, purpose: str) -> int:
        """How many queued images have ``purpose``."""
        return self.purposes.count(purpose)


def is_cold(state: LabelState, policy: ValidationPolicy) -> bool:
    """True when no label can train a classifier yet (the next round is a cold start)."""
    return not bool(np.any(state.fit_labels(policy) >= 0))


def check_round_request(pool_size: int, state: LabelState, budget: int, strategy: str | None,
                        params: dict[str, Any], policy: ValidationPolicy) -> str:
    """Every name, parameter and the budget of a round, checked in milliseconds before any
    work; returns the strategy name the round will use.

    Raises:
        StrategyError: bad budget (not a positive integer, or more than the images still
            unanswered), unknown strategy or parameter.
    """
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise StrategyError(f"budget must be a positive integer, got {budget!r}")
    n_free = int(state.candidates().size)
    if budget > n_free:
        raise StrategyError(f"budget {budget} is larger than the {n_free} unanswered images")
    policy.check()
    cold = is_cold(state, policy)
    name = strategy or (DEFAULT_COLDSTART if cold else DEFAULT_ACQUISITION)
    if cold:
        from medactive.coldstart.pipeline import check_request

        check_request(ColdStartRequest(name, dict(params), 1, 0))
    else:
        checked_strategy(name, **params)
    return name


def validation_estimate(pool: EncodedPool, state: LabelState, model: RoundModel,
                        n_classes: int, policy: ValidationPolicy, config: ClassifierConfig,
                        head_seed: int) -> ValidationEstimate | None:
    """The validation AUC of the round's model, honest under the policy.

    Hold-out: the model never saw the validation labels, so its own predictions are used.
    Cross-fitting: the sample is split in ``policy.folds`` parts (a seeded permutation); each
    part is predicted by a head trained on every other label (a ``folds``-fold cost in head
    fits, well under a second each), giving out-of-fold predictions for every validation image.
    """
    val = np.flatnonzero(state.validation >= 0)
    if val.size == 0 or policy.mode == "none":
        return None
    y = state.validation[val]
    if policy.mode == "holdout":
        probs = model.probabilities(pool.head_features[val])
        method = "held-out"
    else:
        train_labels = state.fit_labels(policy)
        probs = np.empty((val.size, n_classes))
        folds = min(policy.folds, val.size)
        order = np.random.default_rng([head_seed, 7]).permutation(val.size)
        for k in range(folds):
            held = order[k::folds]
            labels = train_labels.copy()
            labels[val[held]] = -1
            fit_on = np.flatnonzero(labels >= 0)
            if fit_on.size == 0:  # everything labelled is in this fold: nothing to train on
                probs[held] = 1.0 / n_classes
                continue
            fold_model = fit_round(pool, fit_on, labels[fit_on], n_classes, config,
                                   head_seed + k + 1)
            probs[held] = fold_model.probabilities(pool.head_features[val[held]])
        method = "out-of-fold"
    auc = macro_auc(y, probs) if np.unique(y).size >= 2 else None
    return ValidationEstimate(None if auc is None or np.isnan(auc) else float(auc), int(val.size),
                              method, {int(p): probs[k] for k, p in enumerate(val.tolist())})


def plan_round(
    pool: EncodedPool,
    state: LabelState,
    budget: int,
    *,
    n_classes: int,
    round_index: int,
    seed: int = 0,
    strategy: str | None = None,
    params: dict[str, Any] | None = None,
    policy: ValidationPolicy | None = None,
    classifier: ClassifierConfig | None = None,
    second_read_share: float = 0.0,
    class_names: list[str] | None = None,
    ray: str | None = None,
) -> PlannedRound:
    """Choose the next round's queue from the labels so far (module docstring).

    Args:
        pool: the encoded pool.
        state: the labels so far (pool positions).
        budget: how many images the experts will be asked about this round.
        n_classes: ``C``.
        round_index: this round's number (1 = the first query of a project).
        seed: the loop's seed (:func:`~medactive.rounds.engine.round_seeds`).
        strategy: cold-start or acquisition strategy name (default: medactive's defaults,
            :mod:`medactive.defaults`, cold start while nothing can train a classifier).
        params: the strategy's parameters.
        policy: the validation sample's policy (default :class:`ValidationPolicy`).
        classifier: how the round's classifier is trained (default head mode).
        second_read_share: share of the budget for second reads of single-read images where the
            model disagrees (0: off).
        class_names: for the selection-health messages.
        ray: Ray address for sharded scoring (None: this process).

    Returns:
        The :class:`PlannedRound`; nothing is recorded (the caller stores it or answers it).

    Raises:
        StrategyError: see :func:`check_round_request`.
    """
    policy = policy or ValidationPolicy()
    classifier = classifier or ClassifierConfig()
    params = dict(params or {})
    name = check_round_request(pool.n, state, budget, strategy, params, policy)
    cold = is_cold(state, policy)
    rng, head_seed = round_seeds(seed, round_index)
    # the draw and the queue order have their own generator, so the strategy's draws are the
    # same whatever the policy (and equal to the runner's for the same seed and round)
    planning_rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(round_index), 2]))
    candidates = state.candidates()
    val_counts = np.bincount(state.validation[state.validation >= 0], minlength=n_classes)
    n_val = min(policy.draw_size(budget, val_counts), budget - 1)
    drawn = draw_uniform(candidates, n_val, planning_rng)
    free = np.setdiff1d(candidates, drawn)
    fit_labels = state.fit_labels(policy)
    labelled = np.flatnonzero(fit_labels >= 0)
    model = probabilities = health = selection = estimate = None
    second: list[int] = []
    second_scores: list[float] = []
    record: dict[str, Any] = {}
    if cold:
        request = ColdStartRequest(name, params, budget - n_val, seed)
        selection = cold_start_round(pool, request, candidates=free, round_index=round_index)
        picked, scores = selection.indices, selection.scores
        record.update(selection.strategy.get_params())
    else:
        model = fit_round(pool, labelled, fit_labels[labelled], n_classes, classifier, head_seed)
        probabilities = model.probabilities(pool.head_features)
        estimate = validation_estimate(pool, state, model, n_classes, policy, classifier,
                                       head_seed)
        if estimate is not None:
            for pos, p in estimate.probabilities.items():
                probabilities[pos] = p
        if second_read_share > 0 and state.single.any():
            single = np.flatnonzero(state.single)
            order, sc = second_read_candidates(probabilities[single], state.train[single])
            n_second = min(second_read_size(budget, second_read_share), budget - n_val - 1)
            second = [int(k) for k in single[order[:n_second]]]
            second_scores = sc[:n_second].tolist()
        # the evaluation set: the validation sample once it has two classes; before that (first
        # rounds, or no draw) the labelled training images, as a project without one must
        val = np.flatnonzero(state.validation >= 0)
        use_val = np.unique(state.validation[val]).size >= 2
        eval_positions = val if use_val else labelled
        evaluation = EvaluationSet.from_pool(pool, eval_positions, fit_labels[eval_positions]
                                             if not use_val else state.validation[val])
        rows = np.union1d(labelled, free)
        view = round_view(pool, model, rows, fit_labels[rows], evaluation, config=classifier)
        strat = checked_strategy(name, **params)
        ranked = rank_round(strat, view, budget - n_val - len(second), rng, ray=ray,
                            class_names=class_names)
        picked, scores = rows[ranked.positions], ranked.scores
        health = ranked.health
        record.update(ranked.params)
        record.update({"evaluation_set": "validation" if use_val else "training",
                       "evaluation_n": int(eval_positions.size), "health": health.as_dict()})
        if estimate is not None:
            record["validation_auc"] = estimate.auc
            record["validation_n"] = estimate.n
            record["validation_method"] = estimate.method
    acquired = [(int(p), None if scores is None else float(s), "acquire")
                for p, s in zip(picked.tolist(), scores.tolist() if scores is not None
                                else [None] * picked.size, strict=True)]
    extra = [(int(p), None, "validation") for p in drawn.tolist()] + [
        (int(p), float(s), "second-read") for p, s in zip(second, second_scores, strict=True)]
    queue_order = interleave(list(range(len(acquired))),
                             list(range(len(acquired), len(acquired) + len(extra))), planning_rng)
    queued = [(acquired + extra)[k] for k in queue_order]
    record.update({"budget": int(budget), "seed": int(seed), "validation_draw": int(n_val),
                   "validation_mode": policy.mode, "second_reads": len(second)})
    return PlannedRound(round_index, name, np.asarray([q[0] for q in queued], np.int64),
                        [q[1] for q in queued], [q[2] for q in queued], record, model,
                        probabilities, health, selection, estimate)


__all__ = [
    "MIN_VALIDATION_PER_CLASS",
    "VALIDATION_MODES",
    "LabelState",
    "PlannedRound",
    "ValidationEstimate",
    "ValidationPolicy",
    "check_round_request",
    "is_cold",
    "plan_round",
    "validation_estimate",
]
