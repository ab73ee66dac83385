"""Parity: the pipeline a clinic runs is the pipeline that was measured.

The same pool (a BloodMNIST subset with fixed embeddings), the same labels, seed and strategy
give the same picks through ``medactive project query`` (the real CLI and store), through the
experiment runner's round, and through the back-test.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.experiment.config import parse_config
from medactive.experiment.runner import Runner
from medactive.rounds import EncodedPool, ValidationPolicy, round_seeds
from medactive.rounds.backtest import BacktestData, BacktestPlan, Pipeline, backtest_cell
from medactive.strategies import get_strategy

FIRST = 24  # the random first round
SECOND = 10  # the acquisition round compared


@pytest.fixture(scope="module")
def subset(tmp_path_factory, blood) -> tuple[Path, Path, np.ndarray]:
    """A 400/80/100 BloodMNIST subset as .npz, its embeddings (a fixed random projection of the
    pixels, train/val/test order) and the training labels."""
    folder = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(0)
    parts = {"train": blood.train.subset(np.arange(400)), "val": blood.val.subset(np.arange(80)),
             "test": blood.test.subset(np.arange(100))}
    arrays = {}
    for name, ds in parts.items():
        arrays[f"{name}_images"] = ds.images
        arrays[f"{name}_labels"] = ds.labels[:, None].astype(np.uint8)
    npz = folder / "blood-subset.npz"
    np.savez(npz, **arrays)
    projection = rng.standard_normal((28 * 28 * 3, 32)).astype(np.float32)
    feats = np.concatenate([ds.images.reshape(len(ds), -1).astype(np.float32) / 255 @ projection
                            for ds in parts.values()])
    np.save(folder / "emb.npy", feats)
    np.save(folder / "train-emb.npy", feats[:400])
    return npz, folder, parts["train"].labels


@pytest.mark.parametrize("strategy", ["cluster-margin-then-margin", "margin"])
def test_query_runner_and_backtest_pick_the_same_images(subset, tmp_path, monkeypatch, strategy):
    npz, folder, truth = subset
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    seed = 0
    # 1. the product: a random first round, answered, then the round compared
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--from-npz", str(npz),
                 "--features", str(folder / "train-emb.npy")]) == 0
    assert main(["project", "settings", str(project), "--validation-share", "0"]) == 0
    assert main(["project", "query", str(project), "--budget", str(FIRST), "--strategy",
                 "random", "--seed", str(seed)]) == 0
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project) as store:
        classes = store.classes()
        rows = store.images()
        first = [q.image_id for q in store.queue(store.latest_round().id)]
        position = {r.id: k for k, r in enumerate(rows)}
    first_positions = np.array([position[i] for i in first])
    answers = tmp_path / "answers.csv"
    with answers.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "label"])
        for k in first_positions:
            writer.writerow([rows[k].uid, classes[truth[k]]])
    assert main(["project", "import", str(project), str(answers)]) == 0
    assert main(["project", "query", str(project), "--budget", str(SECOND), "--strategy",
                 strategy, "--seed", str(seed)]) == 0
    with ProjectStore.open(project) as store:
        product = [position[q.image_id] for q in store.queue(store.latest_round().id)]

    # 2. the experiment runner's round, from the same first round
    cfg = parse_config({
        "name": "parity", "dataset": {"source": str(npz)},
        "model": {"encoder": "features", "features": str(folder / "emb.npy")},
        "initial": {"strategies": ["random"], "budget": FIRST},
        "acquisition": {"strategies": [strategy], "rounds": 1, "budget": SECOND},
        "run": {"repeats": 1, "seed": seed, "reference": False},
    })
    runner = Runner(cfg, tmp_path / "run", progress=False)
    initial = runner.initial_query(cfg.initial.strategies[0], 0, FIRST)
    assert sorted(initial.tolist()) == sorted(first_positions.tolist())
    rng, head_seed = round_seeds(seed, 2)
    model, _ = runner.fit(initial, head_seed)
    picks = runner.choose(model, initial, get_strategy(strategy), SECOND, rng)
    assert picks.positions.tolist() == product

    # 3. the back-test's round
    pool = EncodedPool(np.load(folder / "train-emb.npy"), key="features")
    data = BacktestData(pool, truth, np.load(folder / "emb.npy")[480:], np.asarray(
        np.load(npz)["test_labels"]).ravel(), tuple(classes))
    plan = BacktestPlan((FIRST, SECOND), 1, 0, (Pipeline("p", "random", strategy),),
                        ValidationPolicy(share=0.0))
    from medactive.rounds import backtest as backtest_module

    seen = []
    real = backtest_module.plan_round

    def spy(*args, **kwargs):
        planned = real(*args, **kwargs)
        seen.append(planned.positions.tolist())
        return planned

    monkeypatch.setattr(backtest_module, "plan_round", spy)
    backtest_cell(data, plan, plan.pipelines[0], 0)
    assert sorted(seen[0]) == sorted(first_positions.tolist())
    assert seen[1] == product
