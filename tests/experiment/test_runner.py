"""The experiment runner end to end on a tiny synthetic dataset: schema, resume, report, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medactive.cli import main
from medactive.errors import ConfigError, StrategyError
from medactive.experiment import Runner, budget_schedule, load_config, parse_config, write_report
from medactive.experiment.results import REQUIRED_FIELDS, read_jsonl

from .conftest import config_text, strip_timing, write_synthetic_npz


def test_end_to_end_schema_and_outputs(synthetic_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(synthetic_config), "--out", str(out), "--quiet"]) == 0
    assert "Test macro AUC" in capsys.readouterr().out
    records = read_jsonl(out / "results.jsonl")
    assert len(records) == 2 * 3 * 3  # repeats x strategies x (rounds + 1)
    for r in records:
        assert set(REQUIRED_FIELDS) <= set(r)
        assert sum(r["acquired_per_class"]) == r["n_labeled"]
        assert 0.0 <= r["auc"] <= 1.0 and r["select_seconds"] >= 0
        # every round that selected records the batch's selection health
        assert ("health" in r) == (r["round"] < 2)
        if "health" in r:
            assert abs(sum(r["health"]["batch_mix"]) - 1.0) < 1e-3
    assert sorted({r["n_labeled"] for r in records}) == [9, 15, 21]
    # All strategies of a repeat start from the same initial set and the same round-0 model.
    for rep in (0, 1):
        first = [r for r in records if r["repeat"] == rep and r["round"] == 0]
        assert len({json.dumps(r["acquired_per_class"]) for r in first}) == 1
        assert len({r["auc"] for r in first}) == 1
    assert len(read_jsonl(out / "reference.jsonl")) == 2
    for name in ("summary.md", "config.json", "dataset.json", "learning_curves.png",
                 "acquired_per_class.png"):
        assert (out / name).is_file(), name
    summary = (out / "summary.md").read_text()
    assert "| aeig |" in summary and "Labelled fraction needed to reach 95%" in summary
    assert "| initial | strategy | 95% | 99% |" in summary
    assert "minority" in summary.lower() and "class coverage" in summary
    assert "## Selection health" in summary and "flagged rounds" in summary
    # One table per configured metric (default: auc, accuracy, balanced_accuracy).
    assert "## Test accuracy, initial query: random" in summary
    assert "## Test balanced accuracy, initial query: random" in summary


def test_interrupt_and_resume_gives_identical_results(synthetic_config, tmp_path, monkeypatch):
    cfg = load_config(synthetic_config)
    Runner(cfg, tmp_path / "straight", progress=False).run()

    calls = {"n": 0}
    original = Runner._run_cell

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C in the 4th cell
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Runner, "_run_cell", flaky)
    with pytest.raises(KeyboardInterrupt):
        Runner(cfg, tmp_path / "resumed", progress=False).run()
    partial = read_jsonl(tmp_path / "resumed" / "results.jsonl")
    assert len(partial) == 3 * 3  # three finished cells, nothing of the fourth
    # A write torn mid-line (power loss) is repaired on resume too.
    with open(tmp_path / "resumed" / "results.jsonl", "a") as f:
        f.write('{"initial": "random", "strategy": "aeig", "rep')
    monkeypatch.setattr(Runner, "_run_cell", original)
    calls["n"] = 0
    Runner(cfg, tmp_path / "resumed", progress=False).run()
    straight = strip_timing(read_jsonl(tmp_path / "straight" / "results.jsonl"))
    resumed = strip_timing(read_jsonl(tmp_path / "resumed" / "results.jsonl"))
    assert resumed == straight
    # A finished run re-run does nothing.
    before = (tmp_path / "resumed" / "results.jsonl").read_text()
    Runner(cfg, tmp_path / "resumed", progress=False).run()
    assert (tmp_path / "resumed" / "results.jsonl").read_text() == before


def test_report_regenerates_identical_tables(synthetic_config, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", str(synthetic_config), "--out", str(out), "--quiet"]) == 0
    first = (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    (out / "learning_curves.png").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "summary.md").read_text() == first
    assert (out / "learning_curves.png").is_file()


def test_cold_start_initial_query_in_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    cfg = parse_config({
        "name": "cold", "dataset": {"source": str(npz)},
        "model": {"encoder": "moco", "head": {"epochs": 20},
                  "pretrain": {"epochs": 1, "batch_size": 32, "queue_size": 64}},
        "initial": {"strategies": ["random", "hacon", "kmeans-centroid"], "budget": 6},
        "acquisition": {"strategies": ["random"], "schedule": [12]},
        "run": {"repeats": 1, "correlation": [6, 12]},
    })
    out = tmp_path / "run"
    Runner(cfg, out, progress=False).run()
    write_report(out)
    records = read_jsonl(out / "results.jsonl")
    assert {r["initial"] for r in records} == {"random", "hacon", "kmeans-centroid"}
    assert (out / "dataset_map.png").is_file()
    assert (out / "initial_query_curves.png").is_file()  # one panel per acquisition strategy
    summary = (out / "summary.md").read_text()
    assert "Pearson r between AUC@6 and AUC@12" in summary


def test_budget_schedule():
    cfg = parse_config({"initial": {"budget": 0.1}, "acquisition": {"rounds": 6, "budget": 0.06}})
    assert budget_schedule(cfg, 1000) == [100, 160, 220, 280, 340, 400, 460]
    cfg = parse_config({"initial": {"budget": 20}, "acquisition": {"schedule": [30, 40, 50]}})
    assert budget_schedule(cfg, 1000) == [20, 30, 40, 50]
    with pytest.raises(ConfigError, match="training pool has 40"):
        budget_schedule(cfg, 40)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": {"epochz": 3}}, "unknown key 'model.epochz'"),
        ({"run": {"repeats": 0}}, "run.repeats: Input should be greater than or equal to 1"),
        ({"model": {"mode": "magic"}}, "model.mode"),
        ({"dataset": {"split": "stratified"}}, "needs sizes"),
        ({"surprise": 1}, "unknown key 'surprise'"),
    ],
)
def test_config_validation_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_cli_errors_are_one_line(tmp_path, capsys, synthetic_config):
    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config file not found" in err[0] and "aeig-protocol" in err[0]
    bad = tmp_path / "bad.toml"
    bad.write_text("[acquisition]\nstrategies = ['entropy', 'oracle-magic']\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "x")]) == 2
    assert "unknown strategy 'oracle-magic'" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2


def test_out_dir_of_another_config_is_refused(synthetic_config, tmp_path):
    cfg = load_config(synthetic_config)
    Runner(cfg, tmp_path / "run", progress=False).run()
    other = cfg.model_copy(update={"name": "other"})
    with pytest.raises(ConfigError, match="different configuration"):
        Runner(other, tmp_path / "run", progress=False).run()


def test_unknown_strategy_error_lists_known(tmp_path):
    npz = write_synthetic_npz(tmp_path / "s.npz")
    cfg_path = tmp_path / "c.toml"
    cfg_path.write_text(config_text(npz, strategies='["nope"]'))
    with pytest.raises(StrategyError, match=r"known strategies: .*aeig"):
        Runner(load_config(cfg_path), tmp_path / "r", progress=False).run()


def test_presets_validate():
    from medactive.cli.experiment import PRESETS

    names = sorted(p.stem for p in PRESETS.glob("*.toml"))
    assert {"aeig-protocol", "aeig-protocol-lt20", "hacon-protocol", "demo"} <= set(names)
    for p in PRESETS.glob("*.toml"):
        cfg = load_config(p)
        assert cfg.name == p.stem
    assert np.isclose(load_config(PRESETS / "aeig-protocol.toml").initial.budget, 0.1)


def test_head_model_folds_standardisation(synthetic_config):
    """The network handed to VAAL/Consistency must predict exactly what the head on standardised
    cached features predicts."""
    from medactive.models import predict_proba
    from medactive.rounds import EvaluationSet, fit_round, round_view

    runner = Runner(load_config(synthetic_config), synthetic_config.parent / "r", progress=False)
    pool, p = runner.pool, runner.prepared
    assert np.allclose(pool.head_features.mean(0), 0, atol=1e-4)
    labels = p.splits.train.labels
    everything = np.arange(len(labels))
    model = fit_round(pool, everything, labels, p.splits.n_classes, runner.classifier, 0)
    view = round_view(pool, model, everything, np.full(len(labels), -1),
                      EvaluationSet.from_features(p.val_features, p.splits.val.labels))
    expected = model.probabilities(pool.head_features)
    # built when a strategy asks for it, through the one gate network strategies call
    from medactive.strategies.base import require_network

    assert view.model is None and view.model_factory is not None
    require_network(view, "consistency")
    assert view.model is not None and view.model_factory is None
    assert np.allclose(predict_proba(view.model, p.splits.train.images), expected, atol=1e-4)


def test_finetune_mode_retrains_the_network_each_round(tmp_path, monkeypatch):
    """Finetune mode: every round re-trains the whole classifier and builds the round's view with
    one forward pass (``build_round_view``); strategies then work on those fresh features."""
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    cfg = parse_config({
        "name": "finetune", "dataset": {"source": str(npz)},
        "model": {"mode": "finetune", "encoder": "random", "finetune": {"epochs": 2, "batch_size": 16}},
        "initial": {"budget": 12},
        "acquisition": {"strategies": ["entropy", "bald", "consistency"], "rounds": 1, "budget": 8},
        "run": {"repeats": 1, "reference": False, "metrics": ["auc"]},
    })
    Runner(cfg, tmp_path / "run", progress=False).run()
    records = read_jsonl(tmp_path / "run" / "results.jsonl")
    assert len(records) == 3 * 2 and {r["n_labeled"] for r in records} == {12, 20}
    first = [r for r in records if r["round"] == 0]
    assert len({r["auc"] for r in first}) == 1  # same initial set, same seed: same model
    write_report(tmp_path / "run")
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "Test accuracy" not in summary and "| consistency |" in summary


def test_finetune_early_stopping_watches_validation_auc(tmp_path, monkeypatch):
    """``model.finetune.early_stopping_patience`` reaches the trainer, with the validation split
    whose macro AUC it watches; without it, no validation pass is paid for."""
    import medactive.rounds.classifier as runner_module  # the engine fits every round

    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    seen = []
    real_fit = runner_module.fit_classifier

    def spy(model, train, val, config):
        history = real_fit(model, train, val, config)
        seen.append((val, config.early_stopping_patience, len(history.train_loss)))
        return history

    monkeypatch.setattr(runner_module, "fit_classifier", spy)
    for patience in (1, None):
        cfg = parse_config({
            "name": f"es{patience}", "dataset": {"source": str(npz)},
            "model": {"mode": "finetune", "encoder": "random",
                      "finetune": {"epochs": 6, "batch_size": 16,
                                   "early_stopping_patience": patience}},
            "initial": {"budget": 12},
            "acquisition": {"strategies": ["entropy"], "rounds": 0},
            "run": {"repeats": 1, "reference": False, "metrics": ["auc"]},
        })
        Runner(cfg, tmp_path / f"run{patience}", progress=False).run()
    (val, patience, epochs), (no_val, no_patience, all_epochs) = seen
    assert patience == 1 and val is not None and len(val) > 0 and epochs <= 6
    assert no_patience is None and no_val is None and all_epochs == 6


def test_bad_strategy_parameters_fail_before_any_data_or_training(tmp_path, monkeypatch):
    import medactive.experiment.runner as runner_module

    monkeypatch.setattr(runner_module, "prepare",
                        lambda *a, **k: pytest.fail("prepared data before checking parameters"))
    npz = write_synthetic_npz(tmp_path / "s.npz")
    for initial, acquisition, message in (
        ('[{name = "hacon", params = {n_clusters = 0}}]', '["entropy"]', "n_clusters"),
        ('["random"]', '[{name = "bald", params = {n_samples = 0}}]', "n_samples"),
    ):
        path = tmp_path / "c.toml"
        path.write_text(config_text(npz, strategies=acquisition, initial=initial))
        with pytest.raises(StrategyError, match=message):
            Runner(load_config(path), tmp_path / "r", progress=False).run()
