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
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medactive.data import DatasetSplits
from medactive.errors import ConfigError, StrategyError
from medactive.experiment.config import ExperimentConfig, StrategySpec
from medactive.experiment.prepare import Prepared, load_splits, prepare
from medactive.experiment.results import drop_incomplete_cells, read_jsonl
from medactive.metrics import evaluate_probabilities
from medactive.models import (
    Classifier,
    HeadConfig,
    TrainConfig,
    fit_classifier,
    fit_head,
    head_proba,
    predict_proba,
)
from medactive.models.device import select_device
from medactive.progress import progress_bar
from medactive.strategies import RoundView, checked_strategy, get_strategy, selection_health
from medactive.strategies.sharded import rank_with

RESULTS = "results.jsonl"
REFERENCE = "reference.jsonl"
CONFIG = "config.json"


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` is salted per process)."""
    return zlib.crc32(text.encode())


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
                initial_cache[key] = self._initial_query(spec, rep, schedule[0])
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

    def _initial_query(self, spec: StrategySpec, repeat: int, budget: int) -> np.ndarray:
        """The cell's initial labelled set, sorted: the labelled set is a set, so training must
        not depend on the order a strategy happened to pick it in."""
        from medactive.coldstart import ColdStartView, get_coldstart_strategy
        from medactive.coldstart.pipeline import select_initial

        p = self.prepared
        rng = np.random.default_rng([self._seed(repeat), stable_hash("initial:" + spec.display)])
        view = ColdStartView(p.train_features, p.confidence, p.variability,
                             images=p.splits.train.images, true_labels=p.splits.train.labels,
                             maps=p.maps)
        strategy = get_coldstart_strategy(spec.name, **spec.params)
        return np.sort(select_initial(strategy, view, budget, rng).indices)

    def _train_and_view(self, labeled: np.ndarray, seed: int) -> tuple[np.ndarray, RoundView]:
        """Train on the labelled set; return test probabilities and the round's view."""
        p, mc = self.prepared, self.config.model
        train = p.splits.train
        mask = np.zeros(len(train), dtype=bool)
        mask[labeled] = True
        labels = np.where(mask, train.labels, -1)
        if mc.mode == "head":
            h = mc.head
            weight, bias = fit_head(
                p.head_train[labeled], train.labels[labeled], p.splits.n_classes,
                HeadConfig(epochs=h.epochs, lr=h.lr, weight_decay=h.weight_decay,
                           dropout=mc.dropout, batch_size=h.batch_size,
                           class_balanced=h.class_balanced, seed=seed),
            )
            view = RoundView(
                features=p.head_train, labeled_mask=mask, labels=labels, weight=weight,
                bias=bias, dropout_p=mc.dropout, val_features=p.head_val,
                val_labels=p.splits.val.labels, images=train.images,
                model=self._head_model(weight, bias), true_labels=train.labels,
            )
            return head_proba(p.head_test, weight, bias), view
        from medactive.strategies.view import build_round_view

        model = self._fresh_classifier(seed)
        f = mc.finetune
        # Early stopping watches validation macro AUC, so it needs the validation split.
        val = p.splits.val if f.early_stopping_patience is not None else None
        fit_classifier(model, train.subset(labeled), val, TrainConfig(
            epochs=f.epochs, lr=f.lr, weight_decay=f.weight_decay, lr_decay=f.lr_decay,
            batch_size=f.batch_size, early_stopping_patience=f.early_stopping_patience,
            seed=seed, device=self.config.run.device, progress=False))
        view = build_round_view(model, train.images, mask, labels, p.splits.val.images,
                                p.splits.val.labels, device=self.config.run.device,
                                include_images=True, true_labels=train.labels)
        return predict_proba(model, p.splits.test.images, device=self.config.run.device), view

    def _head_model(self, weight: np.ndarray, bias: np.ndarray) -> Classifier | None:
        """The frozen encoder with the trained head, for strategies that need the network
        (VAAL, Consistency); its head must see the same features as ``weight``, so with
        standardised features the standardisation is folded into the head."""
        p, mc = self.prepared, self.config.model
        if p.encoder is None:  # your own embeddings: there is no network to run
            return None
        w, b = weight.astype(np.float64), bias.astype(np.float64)
        if p.feature_mean is not None and p.feature_std is not None:
            w, b = w / p.feature_std, b - (w / p.feature_std) @ p.feature_mean
        model = Classifier(p.encoder, p.splits.n_classes, mc.dropout)
        with torch.no_grad():
            model.head.weight.copy_(torch.from_numpy(w.astype(np.float32)))
            model.head.bias.copy_(torch.from_numpy(b.astype(np.float32)))
        return model.eval()

    def _fresh_classifier(self, seed: int) -> Classifier:
        import copy

        torch.manual_seed(seed)
        p, mc = self.prepared, self.config.model
        if p.encoder is None:  # ModelConfig already refuses mode = "finetune" without one
            raise ConfigError("fine-tuning needs an encoder; encoder = 'features' trains the head only")
        backbone = copy.deepcopy(p.encoder)
        if mc.encoder == "random":
            for module in backbone.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
        return Classifier(backbone, p.splits.n_classes, mc.dropout)

    def _run_cell(self, repeat: int, init: StrategySpec, acq: StrategySpec,
                  initial: np.ndarray, schedule: list[int]) -> list[dict]:
        p = self.prepared
        train = p.splits.train
        n_train, n_classes = len(train), p.splits.n_classes
        strategy = get_strategy(acq.name, **acq.params)
        labeled = np.asarray(initial, dtype=np.int64)
        records = []
        seed = self._seed(repeat)
        for rnd in range(len(schedule)):
            t0 = time.perf_counter()
            # Same head seed for every strategy at a round: round 0 is identical across strategies.
            proba, view = self._train_and_view(labeled, seed * 100 + rnd)
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
                budget = schedule[rnd + 1] - labeled.size
                rng = np.random.default_rng([seed, rnd, stable_hash(acq.display)])
                t0 = time.perf_counter()
                picked = np.asarray(rank_with(strategy, view, int(budget), rng,
                                              ray=self.config.run.ray)[0], dtype=np.int64)
                elapsed = time.perf_counter() - t0
                if picked.size != budget or np.intersect1d(picked, labeled).size:
                    raise StrategyError(f"{acq.display} returned an invalid selection")
                record["select_seconds"] = elapsed
                record["score_ms_per_image"] = 1000.0 * elapsed / max(record["n_pool"], 1)
                record["health"] = selection_health(
                    view.pool_probabilities, np.searchsorted(view.pool_indices, picked),
                ).as_dict()
                labeled = np.concatenate([labeled, picked])  # the oracle reveals their labels
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
            proba, _ = self._train_and_view(np.arange(len(p.splits.train)), self._seed(rep) * 100)
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
