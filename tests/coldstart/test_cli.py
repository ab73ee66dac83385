"""``medactive coldstart``: clear one-line errors, and a tiny real run writing CSV and plots."""

from __future__ import annotations

import csv

import pytest

from medactive.cli import main


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDACTIVE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_unknown_strategy_is_one_line_error(bloodmnist_path, isolated_cache, capsys):
    code = main(["coldstart", "--data", str(bloodmnist_path), "--strategy", "nope",
                 "--out", str(isolated_cache / "s.csv")])
    err = capsys.readouterr().err
    assert code != 0 and "unknown cold-start strategy 'nope'" in err and "hacon" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_budget_larger_than_pool_fails_before_training(bloodmnist_path, isolated_cache, capsys):
    code = main(["coldstart", "--data", str(bloodmnist_path), "--limit", "10", "--budget", "50",
                 "--out", str(isolated_cache / "s.csv"), "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and "budget 50" in err and "(10)" in err
    assert not (isolated_cache / "cache" / "encoders").exists()  # no pre-training happened


def test_simulation_strategy_refused(bloodmnist_path, isolated_cache, capsys):
    code = main(["coldstart", "--data", str(bloodmnist_path), "--strategy", "hard-to-learn",
                 "--out", str(isolated_cache / "s.csv")])
    assert code != 0 and "simulation-only" in capsys.readouterr().err


def test_tiny_run_writes_ordered_csv_and_plots(bloodmnist_path, isolated_cache):
    out = isolated_cache / "sel.csv"
    code = main(["coldstart", "--data", str(bloodmnist_path), "--limit", "160", "--epochs", "1",
                 "--batch-size", "80", "--budget", "6", "--out", str(out),
                 "--plot", str(isolated_cache / "plots"), "--no-progress", "--threads", "1"])
    assert code == 0
    rows = list(csv.DictReader(out.open()))
    assert [int(r["rank"]) for r in rows] == list(range(1, 7))
    assert set(rows[0]) == {"rank", "id", "index", "cluster", "confidence", "variability"}
    assert len({r["id"] for r in rows}) == 6
    assert len({r["cluster"] for r in rows}) == 6  # hacon: K = budget, one image per cluster
    for name in ("dataset_map.png", "embedding.png"):
        assert (isolated_cache / "plots" / name).stat().st_size > 1000


def test_bad_parameter_fails_before_loading_or_training(isolated_cache, capsys):
    # no such data file: the parameter check must come first, in milliseconds
    code = main(["coldstart", "--data", str(isolated_cache / "missing.npz"), "--n-clusters", "0",
                 "--out", str(isolated_cache / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "n_clusters" in err and err.count("\n") == 1
    assert not (isolated_cache / "cache" / "encoders").exists()
