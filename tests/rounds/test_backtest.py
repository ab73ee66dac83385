"""The back-test: the product's loop with an oracle, its records, resumption, report, CLI and
refusals."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tests.experiment.conftest import write_synthetic_npz
from tests.rounds.conftest import blob_pool

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.experiment.backtest import backtest_to_folder
from medactive.experiment.backtest_report import backtest_verdict
from medactive.rounds.backtest import (
    DEFAULTS,
    RANDOM,
    BacktestData,
    BacktestPlan,
    backtest_cell,
    parse_pipeline,
    run_backtest,
)


def _data() -> BacktestData:
    pool, y, xt, yt = blob_pool()
    return BacktestData(pool, y, xt, yt, ("a", "b", "c", "d"), name="blobs")


def test_a_cell_spends_exactly_its_budgets_and_scores_every_round():
    data = _data()
    plan = BacktestPlan((10, 10, 20), 1)
    records = backtest_cell(data, plan, DEFAULTS, 0)
    assert [r["round"] for r in records] == [1, 2, 3]
    assert [r["labels_spent"] for r in records] == [10, 20, 40]
    assert [r["strategy"] for r in records] == ["typiclust", "cluster-margin-then-margin",
                                                "cluster-margin-then-margin"]
    # crossfit: the validation draws (20 % of each round) train the model too
    assert all(r["n_train"] == r["labels_spent"] for r in records)
    assert [r["n_validation"] for r in records] == [2, 4, 8]
    assert all(0.5 < r["auc"] <= 1.0 for r in records)
    holdout = backtest_cell(data, BacktestPlan((10, 10), 1, policy=__import__(
        "medactive.rounds", fromlist=["ValidationPolicy"]).ValidationPolicy("holdout")),
        RANDOM, 0)
    assert all(r["n_train"] + r["n_validation"] == r["labels_spent"] for r in holdout)


def test_resumes_after_a_torn_write_with_the_same_records(tmp_path, monkeypatch):
    data = _data()
    plan = BacktestPlan((8, 8), 2)
    path = tmp_path / "backtest.jsonl"
    first = run_backtest(data, plan, path, progress=False)
    lines = path.read_text().splitlines()
    # a kill: the last cell lost one record and the one before was cut mid-line
    path.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:17])
    import medactive.rounds.backtest as module

    calls = []
    real = module.backtest_cell
    monkeypatch.setattr(module, "backtest_cell", lambda *a: calls.append(a[2:]) or real(*a))
    again = run_backtest(data, plan, path, progress=False)
    assert calls == [(RANDOM, 1)]  # only the cut cell is redone
    key = lambda r: (r["pipeline"], r["repeat"], r["round"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert sorted(map(strip, first), key=key) == sorted(map(strip, again), key=key)
    assert len(path.read_text().splitlines()) == 8


def test_report_and_verdict(tmp_path):
    summary, verdict = backtest_to_folder(_data(), BacktestPlan((8, 8, 16), 3), tmp_path / "bt",
                                          progress=False)
    text = summary.read_text()
    assert "Test AUC per expert label spent" in text and "beat random here" in text
    assert (tmp_path / "bt" / "learning_curve.png").stat().st_size > 1000
    assert [c.what for c in verdict.comparisons] == ["pipeline"]
    assert verdict.comparisons[0].labels == [8, 16, 32]
    records = [json.loads(line) for line in (tmp_path / "bt" / "backtest.jsonl").open()]
    plan = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    again = backtest_verdict(records, plan["pipelines"])
    assert again.comparisons[0].deltas == verdict.comparisons[0].deltas
    # another plan into the same folder is refused, and nothing there changes
    before = (tmp_path / "bt" / "backtest.jsonl").read_text()
    with pytest.raises(ConfigError, match="another plan"):
        backtest_to_folder(_data(), BacktestPlan((8, 8), 3), tmp_path / "bt", progress=False)
    assert (tmp_path / "bt" / "backtest.jsonl").read_text() == before


def test_bad_ground_truth_and_plans_are_refused():
    pool, y, xt, yt = blob_pool()
    with pytest.raises(ConfigError, match="no ground truth"):
        BacktestData(pool, np.full_like(y, -1), xt, yt, ("a", "b", "c", "d"))
    with pytest.raises(ConfigError, match="outside the 3 classes"):
        BacktestData(pool, y, xt, yt, ("a", "b", "c"))
    with pytest.raises(ConfigError, match="spends 200 labels but the pool"):
        BacktestPlan((100, 100)).check(160)
    with pytest.raises(ConfigError, match="positive integers"):
        BacktestPlan((10, 0)).check(160)
    with pytest.raises(ConfigError, match="unknown pipeline"):
        parse_pipeline("fastest")
    assert parse_pipeline("probcover:margin").acquisition == "margin"


def test_cli_backtest_on_an_npz(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    out = tmp_path / "bt"
    code = main(["project", "backtest", str(npz), "--budgets", "6,6", "--repeats", "2",
                 "--pretrain-epochs", "1", "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Do the defaults beat random here?" in printed
    assert (out / "summary.md").exists() and (out / "learning_curve.png").exists()


@pytest.mark.parametrize("args, message", [
    (["--budgets", "60,60"], "spends 120 labels but the pool"),
    (["--pipelines", "defaults,nope"], "unknown pipeline"),
    (["--budgets", "6,x"], "comma-separated integers"),
    (["--repeats", "0"], "repeats must be"),
])
def test_cli_bad_plans_exit_2_and_write_nothing(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    out = tmp_path / "bt"
    assert main(["project", "backtest", str(npz), "--out", str(out), "--quiet", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "cache" / "encoders").exists()


def _project(tmp_path: Path, npz: Path, labelled: bool) -> tuple[Path, list[str], list[str]]:
    data = np.load(npz)
    feats = data["train_images"].reshape(len(data["train_images"]), -1).astype(np.float32)
    feats = feats[:, ::7] / 255.0
    np.save(tmp_path / "emb.npy", feats)
    project = tmp_path / "p"
    assert main(["project", "init", str(project), "--from-npz", str(npz), "--classes",
                 "red,green,blue", "--features", str(tmp_path / "emb.npy")]) == 0
    labels = data["train_labels"].ravel()
    uids = [f"train-{i}" for i in range(labels.size)]
    names = ["red", "green", "blue"]
    if labelled:
        path = tmp_path / "labels.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image_id", "label"])
            writer.writerows([uid, names[c]] for uid, c in zip(uids, labels, strict=True))
        assert main(["project", "import", str(project), str(path)]) == 0
    return project, uids, [names[c] for c in labels]


def test_cli_backtest_on_a_projects_own_labels(tmp_path, capsys):
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    project, _, _ = _project(tmp_path, npz, labelled=True)
    from medactive.annotate.store import ProjectStore

    with ProjectStore.open(project) as store:
        before = (len(store.rounds()), len(store.reader_answers()))
    out = tmp_path / "bt"
    assert main(["project", "backtest", str(project), "--budgets", "6,6,12", "--repeats", "2",
                 "--out", str(out), "--quiet"]) == 0
    assert "labels spent" in (out / "summary.md").read_text()
    with ProjectStore.open(project) as store:  # a back-test changes nothing in the project
        assert (len(store.rounds()), len(store.reader_answers())) == before


def test_cli_backtest_on_a_project_refuses_bad_ground_truth(tmp_path, capsys):
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    project, uids, _ = _project(tmp_path, npz, labelled=False)
    out = tmp_path / "bt"
    assert main(["project", "backtest", str(project), "--out", str(out), "--quiet"]) == 2
    assert "no ground truth" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image_id,label\n{uids[0]},purple\n")
    assert main(["project", "backtest", str(project), "--labels", str(bad), "--out", str(out),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "'purple'" in err and "Traceback" not in err
    assert not out.exists()
