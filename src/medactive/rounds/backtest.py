"""The back-test: the product's own loop replayed on images whose labels are already known.

Every round is :func:`~medactive.rounds.loop.plan_round` — the function ``medactive project
query`` calls — validation draw and all; an oracle answers the queue from the ground truth, and
the model a project would train next is scored on a held-out test set. So the learning curve is
test AUC against **expert labels spent** (validation draws included), exactly what a clinic
pays, and pipelines are compared paired by repeat (same seed, same test set).

:class:`Pipeline` names a label-selection pipeline (cold start, then acquisition);
:func:`run_backtest` runs every (pipeline, repeat) cell, resumably when given a results file.
The report (tables, verdict, plot) is :mod:`medactive.experiment.backtest_report`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.errors import ConfigError
from medactive.metrics import evaluate_probabilities
from medactive.progress import progress_bar
from medactive.rounds.classifier import ClassifierConfig, RoundModel
from medactive.rounds.engine import fit_round, round_seeds
from medactive.rounds.loop import (
    LabelState,
    ValidationEstimate,
    ValidationPolicy,
    check_round_request,
    is_cold,
    plan_round,
    validation_estimate,
)
from medactive.rounds.pool import EncodedPool


@dataclass(frozen=True)
class Pipeline:
    """A label-selection pipeline: a cold-start strategy for the first round, then an
    acquisition strategy for every later one."""

    name: str
    coldstart: str
    acquisition: str
    coldstart_params: dict[str, Any] = field(default_factory=dict)
    acquisition_params: dict[str, Any] = field(default_factory=dict)

    def strategy(self, cold: bool) -> tuple[str, dict[str, Any]]:
        """The strategy name and parameters for a cold (no labels) or a later round."""
        if cold:
            return self.coldstart, dict(self.coldstart_params)
        return self.acquisition, dict(self.acquisition_params)


#: medactive's defaults, what ``project query`` runs when told nothing.
DEFAULTS = Pipeline("defaults", DEFAULT_COLDSTART, DEFAULT_ACQUISITION)
#: The yardstick: a random first round, then random rounds.
RANDOM = Pipeline("random", "random", "random")
#: The two papers' methods: HaCon's cold start, then AEIG.
PAPERS = Pipeline("papers", "hacon", "aeig")
PIPELINES = {p.name: p for p in (DEFAULTS, RANDOM, PAPERS)}


def parse_pipeline(text: str) -> Pipeline:
    """``defaults``, ``random``, ``papers``, or ``COLDSTART:ACQUISITION`` (e.g.
    ``probcover:margin``), checked against the registries.

    Raises:
        ConfigError / StrategyError: unknown name or strategy.
    """
    text = text.strip()
    if text in PIPELINES:
        return PIPELINES[text]
    if text.count(":") != 1:
        raise ConfigError(f"unknown pipeline {text!r}: use {', '.join(PIPELINES)} or "
                          "COLDSTART:ACQUISITION (e.g. probcover:margin)")
    cold, acq = (part.strip() for part in text.split(":"))
    from medactive.coldstart.pipeline import ColdStartRequest, check_request
    from medactive.strategies import checked_strategy

    check_request(ColdStartRequest(cold, {}, 1, 0))
    checked_strategy(acq)
    return Pipeline(text, cold, acq)


@dataclass(frozen=True)
class BacktestPlan:
    """What to replay.

    Attributes:
        budgets: per round, how many images the experts are asked about (validation draws
            included); the first round is the cold start.
        repeats: paired repeats (each repeat has its own seed, shared by every pipeline).
        seed: base seed; repeat ``r`` uses ``seed * 1000 + r``.
        pipelines: the pipelines compared (the first ``random`` one is the yardstick).
        policy: the validation sample's policy, as a project has it.
        classifier: how each round's classifier is trained, as a project does.
    """

    budgets: tuple[int, ...]
    repeats: int = 5
    seed: int = 0
    pipelines: tuple[Pipeline, ...] = (DEFAULTS, RANDOM)
    policy: ValidationPolicy = field(default_factory=ValidationPolicy)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)

    def check(self, pool_size: int) -> BacktestPlan:
        """Raise :class:`ConfigError` for an impossible plan (before any encoding); returns
        ``self``."""
        if not self.budgets or any(not isinstance(b, int) or isinstance(b, bool) or b < 1
                                   for b in self.budgets):
            raise ConfigError(f"budgets must be positive integers, got {list(self.budgets)}")
        if sum(self.budgets) > pool_size:
            raise ConfigError(f"the budget schedule spends {sum(self.budgets)} labels but the "
                              f"pool with ground truth has {pool_size} images")
        if not isinstance(self.repeats, int) or isinstance(self.repeats, bool) or \
                not 1 <= self.repeats <= 1000:
            raise ConfigError(f"repeats must be an integer in 1..1000, got {self.repeats!r}")
        if not self.pipelines:
            raise ConfigError("a back-test needs at least one pipeline")
        names = [p.name for p in self.pipelines]
        if len(set(names)) != len(names):
            raise ConfigError(f"pipelines must have distinct names, got {names}")
        self.policy.check()
        return self

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary (written beside the results)."""
        return {"budgets": list(self.budgets), "repeats": self.repeats, "seed": self.seed,
                "pipelines": [asdict(p) for p in self.pipelines],
                "validation": asdict(self.policy), "classifier_mode": self.classifier.mode}


@dataclass(eq=False)
class BacktestData:
    """Ground truth for a back-test.

    Attributes:
        pool: the encoded pool the loop picks from.
        labels: ``(N,)`` int64 true class of every pool image (``-1``: no ground truth, never
            queried, as a project's unlabelled images).
        test_features: ``(M, D)`` raw encoder features of the held-out test images.
        test_labels: ``(M,)`` int64.
        class_names: one per class.
        name: for the report.
        info: what produced it (encoder, sources), for the report.
    """

    pool: EncodedPool
    labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    name: str = "back-test"
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, np.int64)
        self.test_labels = np.asarray(self.test_labels, np.int64)
        c = len(self.class_names)
        if self.labels.shape != (self.pool.n,):
            raise ConfigError(f"{self.labels.shape[0]} ground-truth labels for a pool of "
                              f"{self.pool.n} images")
        known = self.labels[self.labels >= 0]
        if known.size == 0:
            raise ConfigError("no ground truth: a back-test needs images whose labels are known")
        if known.max() >= c or self.labels.min() < -1 or self.test_labels.min(initial=0) < 0 \
                or self.test_labels.max(initial=0) >= c:
            raise ConfigError(f"ground-truth labels outside the {c} classes")
        if self.test_labels.size == 0 or np.unique(self.test_labels).size < 2:
            raise ConfigError("the test set needs images of at least two classes")
        if self.test_features.shape[0] != self.test_labels.size:
            raise ConfigError("test features and test labels differ in length")

    @property
    def answerable(self) -> int:
        """How many pool images the oracle can answer."""
        return int(np.sum(self.labels >= 0))


def _initial_state(data: BacktestData) -> LabelState:
    state = LabelState.empty(data.pool.n)
    # images without ground truth are out of the loop, as an answered "unsure" would be
    state.answered[data.labels < 0] = True
    return state


def _metrics(data: BacktestData, model: RoundModel | None, estimate: ValidationEstimate | None
             ) -> dict[str, Any]:
    """Test metrics of ``model`` (uniform guesses before any model) and its validation
    estimate, as a record's fields."""
    n_classes = len(data.class_names)
    if model is None:  # nothing to train on yet (e.g. a round of validation draws only)
        proba = np.full((data.test_labels.size, n_classes), 1.0 / n_classes)
    else:
        proba = model.probabilities(data.pool.space.apply(data.test_features))
    return {**evaluate_probabilities(data.test_labels, proba),
            "validation_auc": None if estimate is None else estimate.auc,
            "validation_n": 0 if estimate is None else estimate.n}


def _next_model(data: BacktestData, state: LabelState, plan: BacktestPlan, seed: int,
                round_index: int) -> tuple[RoundModel | None, ValidationEstimate | None]:
    """The model (and validation estimate) round ``round_index`` of a project would train on
    ``state``: what :func:`plan_round` fits, for the round after the last one."""
    labels = state.fit_labels(plan.policy)
    labelled = np.flatnonzero(labels >= 0)
    if labelled.size == 0:
        return None, None
    n_classes = len(data.class_names)
    _, head_seed = round_seeds(seed, round_index)
    model = fit_round(data.pool, labelled, labels[labelled], n_classes, plan.classifier,
                      head_seed)
    return model, validation_estimate(data.pool, state, model, n_classes, plan.policy,
                                      plan.classifier, head_seed)


def backtest_cell(data: BacktestData, plan: BacktestPlan, pipeline: Pipeline,
                  repeat: int) -> list[dict[str, Any]]:
    """One pipeline, one repeat: every round planned, answered by the oracle and scored.

    Round ``r`` is scored by the model a project trains on everything answered up to it — the
    model :func:`plan_round` fits when it plans round ``r + 1`` (so it is fitted once), or, after
    the last round, the same fit done here.

    Returns:
        One record per round: ``pipeline, repeat, seed, round, strategy, labels_spent,
        n_train, n_validation, auc, accuracy, balanced_accuracy, validation_auc,
        validation_n, acquired_per_class, seconds``.
    """
    seed = plan.seed * 1000 + repeat
    state = _initial_state(data)
    n_classes = len(data.class_names)
    spent = 0
    records: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None  # the last round's record, waiting for its model

    def close(model: RoundModel | None, estimate: ValidationEstimate | None) -> None:
        if pending is not None:
            records.append({**pending, **_metrics(data, model, estimate)})

    for r, budget in enumerate(plan.budgets, start=1):
        start = time.perf_counter()
        name, params = pipeline.strategy(is_cold(state, plan.policy))
        planned = plan_round(data.pool, state, budget, n_classes=n_classes, round_index=r,
                             seed=seed, strategy=name, params=params, policy=plan.policy,
                             classifier=plan.classifier, class_names=list(data.class_names))
        close(planned.model, planned.validation)
        state.record(planned.positions, data.labels[planned.positions], planned.purposes)
        spent += planned.positions.size
        train = state.train[state.train >= 0]
        pending = {
            "pipeline": pipeline.name, "repeat": repeat, "seed": seed, "round": r,
            "strategy": name, "labels_spent": spent,
            "n_train": int(np.sum(state.fit_labels(plan.policy) >= 0)),
            "n_validation": int(np.sum(state.validation >= 0)),
            "acquired_per_class": np.bincount(train, minlength=n_classes).tolist(),
            "seconds": time.perf_counter() - start,
        }
    close(*_next_model(data, state, plan, seed, len(plan.budgets) + 1))
    return records


def check_backtest(data: BacktestData, plan: BacktestPlan) -> None:
    """Every pipeline's strategies and the schedule against the pool, before any round."""
    plan.check(data.answerable)
    empty = _initial_state(data)
    for p in plan.pipelines:
        check_round_request(data.pool.n, empty, plan.budgets[0], p.coldstart,
                            p.coldstart_params, plan.policy)
        from medactive.strategies import checked_strategy

        checked_strategy(p.acquisition, **p.acquisition_params)


def _append(path: Path, records: Iterable[dict[str, Any]]) -> None:
    with open(path, "a") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def _finished_cells(results: Path, rounds: int) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """The cells ``results`` holds in full; the file is rewritten (atomically) without a line
    torn by a kill or a cell cut short, so later appends start on a clean line."""
    if not results.exists():
        return {}
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for line in results.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn by a kill: that cell is redone
        cells.setdefault((rec["pipeline"], rec["repeat"]), []).append(rec)
    cells = {k: v for k, v in cells.items() if len(v) == rounds}
    tmp = results.with_name(results.name + ".part")
    tmp.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for v in cells.values()
                           for r in v))
    tmp.replace(results)
    return cells


def run_backtest(data: BacktestData, plan: BacktestPlan, results: Path | None = None,
                 progress: bool = True) -> list[dict[str, Any]]:
    """Run every (pipeline, repeat) cell; with ``results`` (a JSON-lines file), finished cells
    are appended one at a time and skipped when the same command runs again.

    Returns:
        Every record (finished earlier or now), cells in (repeat, pipeline) order.
    """
    check_backtest(data, plan)
    done = {} if results is None else _finished_cells(results, len(plan.budgets))
    cells = [(rep, p) for rep in range(plan.repeats) for p in plan.pipelines]
    out: list[dict[str, Any]] = []
    for rep, pipeline in progress_bar(cells, desc="back-test", unit="cell", enabled=progress):
        if (pipeline.name, rep) in done:
            out.extend(done[pipeline.name, rep])
            continue
        records = backtest_cell(data, plan, pipeline, rep)
        if results is not None:
            _append(results, records)
        out.extend(records)
    return out
