"""The experiment runner: initial query, acquisition rounds, evaluation, resumable results.

A *cell* is one (initial strategy, acquisition strategy, repeat). Its records are appended to
``results.jsonl`` only once the whole cell has finished (one write, flushed and fsynced), so an
interrupted run loses at most the cell in flight; re-running the same command skips finished
cells. Every random choice of a cell is seeded from (base seed, repeat, names) alone, never from
execution order, so a resumed run produces exactly the records of an uninterrupted one.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medactive.data import DatasetSplits
from medactive.errors import ConfigError
from medactive.experiment.config import ExperimentConfig, StrategySpec
from medactive.experiment.prepare import Prepared, load_splits, prepare
from medactive.experiment.results import drop_incomplete_cells, read_jsonl
from medactive.metrics import evaluate_probabilities
from medactive.models import HeadConfig
from medactive.models.device import select_device
from medactive.progress import progress_bar
from medactive.rounds import (
    ClassifierConfig,
    EncodedPool,
    EvaluationSet,
    FinetuneSettings,
    RankedPicks,
    RoundModel,
    cold_start_round,
    fit_round,
    rank_round,
    round_seeds,
    round_view,
)
from medactive.strategies import RoundView, Strategy, checked_strategy, get_strategy

RESULTS = "results.jsonl"
REFERENCE = "reference.jsonl"
CONFIG = "config.json"


def budget_schedule(config: ExperimentConfig, n_train: int) -> list[int]:
    """Cumulative labelled counts after the initial query and after each round."""

    def count(value: float) -> int:
        return round(value * n_train) if value < 1 else int(value)

    initial = count(config.initial.budget)
    acq = config.acquisition
    if acq.schedule is not None:
        sizes = [initial] + [count(v) for v in acq.schedule]
    else:
        step = count(acq.budget)
        sizes = [initial + r * step for r in range(acq.rounds + 1)]
    if sizes[0] < 1 or any(b <= a for a, b in itertools.pairwise(sizes)):
        raise ConfigError(f"budget schedule must start >= 1 and increase, got {sizes}")
    if sizes[-1] > n_train:
        raise ConfigError(
            f"budget schedule reaches {sizes[-1]} labelled images but the training pool has "
            f"{n_train}"
        )
    return sizes


@dataclass
class Runner:
    """Runs an :class:`ExperimentConfig` into ``out_dir`` (resumable)."""

    config: ExperimentConfig
    out_dir: Path
    progress: bool = True

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self._prepared: Prepared | None = None
        self._splits: DatasetSplits | None = None
        self._pool: EncodedPool | None = None

    # ------------------------------------------------------------------ setup
    def _check_out_dir(self) -> None:
        """Refuse a folder holding results of another configuration (a folder with a
        ``config.json`` but no results, e.g. from a run that failed, may be reused); write
        nothing (called only once everything else is checked)."""
        resolved = self.config.model_dump(mode="json")
        path = self.out_dir / CONFIG
        if path.exists() and json.loads(path.read_text()) != resolved and any(
                read_jsonl(self.out_dir / name) for name in (RESULTS, REFERENCE)):
            raise ConfigError(
                f"{self.out_dir} holds results of a different configuration; "
                "choose another --out or remove that folder"
            )

    def _write_config(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / CONFIG
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.config.model_dump(mode="json"), indent=2, sort_keys=True))
        tmp.replace(path)

    @property
    def prepared(self) -> Prepared:
        """Splits, encoder and cached features (computed on first use)."""
        if self._prepared is None:
            self._prepared = prepare(self.config, progress=self.progress, splits=self._splits)
        return self._prepared

    def _validate_strategies(self) -> None:
        """Every strategy name and parameter value, checked before any data or training."""
        from medactive.coldstart import checked_coldstart_strategy

        for spec in self.config.initial.strategies:
            checked_coldstart_strategy(spec.name, **spec.params)
        for spec in self.config.acquisition.strategies:
            checked_strategy(spec.name, **spec.params)
        for specs, what in ((self.config.initial.strategies, "initial"),
                            (self.config.acquisition.strategies, "acquisition")):
            names = [s.display for s in specs]
            if len(set(names)) != len(names):
                raise ConfigError(f"{what} strategies must have distinct names/labels")

    # ------------------------------------------------------------------ run
    def run(self) -> Path:
        """Run every unfinished cell; return the results file.

        Everything that can be wrong is checked before the first write: strategies, the
        device, the backbone, the output folder, the dataset and whether the budget schedule
        fits its pool (a failed run leaves the folder as it was). Numbers, seeds and the plan's
        size were checked when the config was parsed (:mod:`medactive.experiment.config`).
        """
        from medactive.experiment.config import check_model

        self._validate_strategies()
        select_device(self.config.run.device)  # `[run] device = "bogus"` fails here
        check_model(self.config)  # `backbone = "bogus"` too
        self._check_out_dir()
        self._splits = load_splits(self.config)
        budget_schedule(self.config, len(self._splits.train))
        self._write_config()  # the run really starts here
        results = self.out_dir / RESULTS
        cfg = self.config
        n_points = (cfg.acquisition.rounds if cfg.acquisition.schedule is None
                    else len(cfg.acquisition.schedule)) + 1
        done = drop_incomplete_cells(results, n_points)
        cells = [
            (rep, init, acq)
            for rep in range(cfg.run.repeats)
            for init in cfg.initial.strategies
            for acq in cfg.acquisition.strategies
            if (init.display, acq.display, rep) not in done
        ]
        if cfg.run.reference:
            self._run_reference()
        if not cells:
            return results
        p = self.prepared
        schedule = budget_schedule(cfg, len(p.splits.train))
        initial_cache: dict[tuple[int, str], np.ndarray] = {}

        def initial(rep: int, spec: StrategySpec) -> np.ndarray:
            key = (rep, spec.display)
            if key not in initial_cache:
                initial_cache[key] = self.initial_query(spec, rep, schedule[0])
            return initial_cache[key]

        self._write_dataset_info({s.display: initial(0, s) for s in cfg.initial.strategies})
        bar = progress_bar(cells, desc="cells", unit="cell", enabled=self.progress)
        for rep, init, acq in bar:
            records = self._run_cell(rep, init, acq, initial(rep, init), schedule)
            _append_records(results, records)
        return results

    def _write_dataset_info(self, first_queries: dict[str, np.ndarray]) -> None:
        """What ``report`` needs without reloading data: class names, pool counts, dataset map
        (with each initial strategy's repeat-0 query, ``first_queries``, marked)."""
        p = self.prepared
        info = {
            "name": p.splits.name, "class_names": list(p.splits.class_names),
            "train_counts": p.splits.train.class_counts().tolist(),
            "val_counts": p.splits.val.class_counts().tolist(),
            "n_train": len(p.splits.train), "n_val": len(p.splits.val), "n_test": len(p.splits.test),
            "encoder": p.encoder_info,
        }
        (self.out_dir / "dataset.json").write_text(json.dumps(info, indent=2))
        if p.confidence is not None and p.variability is not None:
            selections = {f"initial:{name}": idx for name, idx in first_queries.items()}
            # numeric arrays only: no pickle on writing, as np.load allows none on reading
            np.savez_compressed(self.out_dir / "dataset_map.npz", confidence=p.confidence,
                                variability=p.variability, labels=p.splits.train.labels,
                                allow_pickle=False, **selections)

    def _seed(self, repeat: int) -> int:
        return self.config.run.seed * 1000 + repeat

    @property
    def pool(self) -> EncodedPool:
        """The training pool as the round engine sees it (head space derived once)."""
        if self._pool is None:
            p = self.prepared
            self._pool = EncodedPool(
                p.train_features, key=str(p.encoder_info.get("cache_key", p.encoder_info)),
                encoder=p.encoder, images=p.splits.train.images, confidence=p.confidence,
                variability=p.variability, maps=p.maps,
                standardise=self.config.model.head.standardize)
        return self._pool

    @property
    def classifier(self) -> ClassifierConfig:
        """The configured classifier recipe, as the round engine takes it."""
        mc = self.config.model
        h, f = mc.head, mc.finetune
        return ClassifierConfig(
            mode=mc.mode,
            head=HeadConfig(epochs=h.epochs, lr=h.lr, weight_decay=h.weight_decay,
                            dropout=mc.dropout, batch_size=h.batch_size,
                            class_balanced=h.class_balanced),
            finetune=FinetuneSettings(
                epochs=f.epochs, lr=f.lr, weight_decay=f.weight_decay, lr_decay=f.lr_decay,
                batch_size=f.batch_size, early_stopping_patience=f.early_stopping_patience,
                reset_encoder=mc.encoder == "random"),
            device=self.config.run.device)

    def initial_query(self, spec: StrategySpec, repeat: int, budget: int) -> np.ndarray:
        """The cell's initial labelled set (round 1 of the engine), sorted: the labelled set is
        a set, so training must not depend on the order a strategy happened to pick it in."""
        from medactive.coldstart.pipeline import ColdStartRequest

        request = ColdStartRequest(spec.name, dict(spec.params), budget, self._seed(repeat),
                                   allow_simulation=True)
        selection = cold_start_round(self.pool, request,
                                     true_labels=self.prepared.splits.train.labels,
                                     explain=False)
        return np.sort(selection.indices)

    def evaluation(self) -> EvaluationSet:
        """The protocol's validation split: the evaluation set of every round (free here)."""
        p = self.prepared
        return EvaluationSet.from_features(self.pool, p.val_features, p.splits.val.labels,
                                           p.splits.val.images)

    def round_view_of(self, labeled: np.ndarray, head_seed: int) -> RoundView:
        """The engine's view of a round whose labelled set is ``labeled`` (training-pool
        positions), the head trained with ``head_seed``: what a strategy sees (benchmarks)."""
        train = self.prepared.splits.train
        model = fit_round(self.pool, labeled, train.labels[labeled], self.prepared.splits.n_classes,
                          self.classifier, head_seed)
        labels = np.full(len(train), -1, np.int64)
        labels[labeled] = train.labels[labeled]
        return round_view(self.pool, model, np.arange(len(train)), labels, self.evaluation(),
                          config=self.classifier)

    def fit(self, labeled: np.ndarray, head_seed: int) -> tuple[RoundModel, np.ndarray]:
        """The engine's classifier on ``labeled`` (training-pool positions), and its
        ``(N_test, C)`` test probabilities."""
        p = self.prepared
        cfg = self.classifier
        val = p.splits.val if cfg.mode == "finetune" else None
        model = fit_round(self.pool, labeled, p.splits.train.labels[labeled], p.splits.n_classes,
                          cfg, head_seed, validation=val)
        if model.network is not None:
            return model, model.predict_images(p.splits.test.images, cfg.device)
        return model, model.probabilities(self.pool.space.apply(p.test_features))

    def choose(self, model: RoundModel, labeled: np.ndarray, strategy: Strategy, budget: int,
               rng: np.random.Generator, evaluation: EvaluationSet | None = None) -> RankedPicks:
        """The runner's acquisition round: ``strategy``'s ``budget`` picks (training-pool
        positions) given the round's ``model`` trained on ``labeled``, with the protocol's free
        validation split as the evaluation set."""
        train = self.prepared.splits.train
        labels = np.full(len(train), -1, np.int64)
        labels[labeled] = train.labels[labeled]
        view = round_view(self.pool, model, np.arange(len(train)), labels,
                          evaluation or self.evaluation(), config=self.classifier,
                          true_labels=train.labels)
        return rank_round(strategy, view, int(budget), rng, ray=self.config.run.ray)

    def _run_cell(self, repeat: int, init: StrategySpec, acq: StrategySpec,
                  initial: np.ndarray, schedule: list[int]) -> list[dict]:
        p = self.prepared
        train = p.splits.train
        n_train, n_classes = len(train), p.splits.n_classes
        strategy = get_strategy(acq.name, **acq.params)
        labeled = np.asarray(initial, dtype=np.int64)
        records = []
        seed = self._seed(repeat)
        evaluation = self.evaluation()
        for rnd in range(len(schedule)):
            # the engine's round r + 2 is chosen by the model trained after round r + 1 (round 1
            # is the initial query); its head seed is the same for every strategy, so round 0 is
            # identical across strategies
            rng, head_seed = round_seeds(seed, rnd + 2)
            t0 = time.perf_counter()
            model, proba = self.fit(labeled, head_seed)
            train_seconds = time.perf_counter() - t0
            metrics = evaluate_probabilities(p.splits.test.labels, proba)
            record = {
                "initial": init.display, "strategy": acq.display, "repeat": repeat, "seed": seed,
                "round": rnd, "n_labeled": int(labeled.size),
                "fraction_labeled": labeled.size / n_train, **metrics,
                "acquired_per_class": np.bincount(train.labels[labeled], minlength=n_classes).tolist(),
                "train_seconds": train_seconds, "select_seconds": 0.0, "score_ms_per_image": 0.0,
                "n_pool": int(n_train - labeled.size),
            }
            if rnd + 1 < len(schedule):
                t0 = time.perf_counter()
                picks = self.choose(model, labeled, strategy, schedule[rnd + 1] - labeled.size,
                                    rng, evaluation)
                elapsed = time.perf_counter() - t0
                record["select_seconds"] = elapsed
                record["score_ms_per_image"] = 1000.0 * elapsed / max(record["n_pool"], 1)
                record["health"] = picks.health.as_dict()
                labeled = np.concatenate([labeled, picks.positions])  # the oracle answers
            records.append(record)
        return records

    def _run_reference(self) -> None:
        """Full-data ("all") performance, once per repeat."""
        path = self.out_dir / REFERENCE
        done = {r["repeat"] for r in read_jsonl(path)}
        todo = [rep for rep in range(self.config.run.repeats) if rep not in done]
        p = None
        # one model on every pool label per repeat: minutes on a CPU, so it shows progress
        for rep in progress_bar(todo, desc="full-data reference", unit="repeat",
                                enabled=self.progress):
            p = p or self.prepared
            _, proba = self.fit(np.arange(len(p.splits.train)), round_seeds(self._seed(rep), 0)[1])
            rec = {"repeat": rep, "seed": self._seed(rep), "n_labeled": len(p.splits.train),
                   **evaluate_probabilities(p.splits.test.labels, proba)}
            _append_records(path, [rec])


def _append_records(path: Path, records: list[dict]) -> None:
    with open(path, "a") as f:
        f.write("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


def run_experiment(config: ExperimentConfig, out_dir: Path, progress: bool = True,
                   report: bool = True) -> Path:
    """Run (or resume) ``config`` into ``out_dir``; write the summary and plots; return out_dir."""
    runner = Runner(config, out_dir, progress)
    runner.run()
    if report:
        from medactive.experiment.report import write_report

        write_report(out_dir)
    return Path(out_dir)
