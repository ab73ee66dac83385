"""The full human-in-the-loop cycle on real BloodMNIST, through the CLI.

init from npz (600 train images) -> cold-start query (the default cold start on a 2-epoch MoCo
encoder) -> the true labels of the queried images imported as if a clinician gave them -> query
with the default acquisition.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from medactive.annotate.store import ProjectStore
from medactive.cli import main
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART

N_IMAGES = 600
BUDGET = 24


@pytest.mark.slow
def test_simulated_cycle(tmp_path: Path, bloodmnist_path: Path, blood, capsys) -> None:
    proj = tmp_path / "blood"
    assert main(["project", "init", str(proj), "--from-npz", str(bloodmnist_path),
                 "--split", "train", "--limit", str(N_IMAGES)]) == 0
    # the validation draw is tested in test_workflow.py; here every pick is the strategy's
    assert main(["project", "settings", str(proj), "--validation-share", "0"]) == 0
    assert main(["project", "query", str(proj), "--budget", str(BUDGET),
                 "--pretrain-epochs", "2"]) == 0
    assert f"{DEFAULT_COLDSTART} chose 24 images" in capsys.readouterr().out

    with ProjectStore.open(proj) as store:
        (r1,) = store.rounds()
        first = [q.uid for q in store.queue(r1.id)]
        assert r1.strategy == DEFAULT_COLDSTART and len(set(first)) == BUDGET
        assert Path(r1.checkpoint, "meta.json").is_file()  # encoder cached inside the project
        names = store.classes()
        spare = next(i.uid for i in store.images() if i.uid not in first)

    truth = blood.train.labels  # ids are "train-<index>" into the full split
    labels = tmp_path / "truth.csv"
    with labels.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "label"])
        w.writerows((uid, names[truth[int(uid.split("-")[1])]]) for uid in first)
        w.writerow((spare, "unsure"))  # an answer too: never queried again
    assert main(["project", "import", str(proj), str(labels)]) == 0
    assert main(["project", "query", str(proj), "--budget", str(BUDGET),
                 "--pretrain-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT_ACQUISITION} chose 24 images" in out
    assert "selection health: predicted classes" in out  # the batch's mix vs the pool's

    with ProjectStore.open(proj) as store:
        r1, r2 = store.rounds()
        second = store.queue(r2.id)
        answered = {a.uid for a in store.current_answers().values()}
        assert r2.strategy == DEFAULT_ACQUISITION and Path(r2.checkpoint).is_file()
        assert r2.params["encoder"] == r1.params["encoder"]  # pre-trained once, then cached
        health = r2.params["health"]  # recorded with the round
        assert sum(health["batch_mix"]) == pytest.approx(1.0, abs=1e-3)
        assert "health" not in r1.params  # a cold start has no model to judge it by
        uids = [q.uid for q in second]
        assert len(set(uids)) == BUDGET
        assert not set(uids) & set(first), "second round re-queried first-round images"
        assert not set(uids) & answered, "a round queried an already-answered image"
        scores = np.array([q.score for q in second])
        assert np.all(np.isfinite(scores)) and np.all(np.diff(scores) <= 0)  # rank order

    assert main(["project", "status", str(proj)]) == 0
    out = capsys.readouterr().out
    assert f"{N_IMAGES} images, {BUDGET} labelled, 1 unsure" in out
    assert f"rounds: 2 (latest: {DEFAULT_ACQUISITION}); pending queries: 24" in out


def test_query_rejects_bad_budget_and_strategy(tmp_path: Path, image_folder: Path,
                                               capsys) -> None:
    proj = tmp_path / "p"
    assert main(["project", "init", str(proj), "--images", str(image_folder),
                 "--classes", "a,b", "--image-size", "16"]) == 0
    assert main(["project", "query", str(proj), "--budget", "0"]) == 2
    assert "positive" in capsys.readouterr().err
    assert main(["project", "query", str(proj), "--budget", "13"]) == 2
    assert "larger than the 12 unanswered images" in capsys.readouterr().err
    assert main(["project", "query", str(proj), "--budget", "2", "--strategy", "nonsense",
                 "--pretrain-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "nonsense" in err and len(err.strip().splitlines()) == 1
    with ProjectStore.open(proj) as store:
        path = store.images()[3].path
    with open(path, "ab") as f:  # a file changed after registration is never trained on
        f.write(b"changed")
    assert main(["project", "query", str(proj), "--budget", "2"]) == 2
    assert "changed on disk since it was registered" in capsys.readouterr().err
    with ProjectStore.open(proj) as store:
        assert store.rounds() == []
