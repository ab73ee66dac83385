"""The page's request check (torch-free, :mod:`medactive.annotate.next_round`) and the round
engine agree on when a project's next round is a cold start, under either validation mode."""

from __future__ import annotations

import numpy as np
import pytest
from tests.experiment.conftest import write_synthetic_npz

from medactive.annotate.next_round import next_round_plan
from medactive.annotate.project import init_from_npz
from medactive.annotate.query import _label_state, round_policy
from medactive.annotate.settings import load_settings, update_settings
from medactive.rounds import is_cold


@pytest.mark.parametrize("mode, cold", [("crossfit", False), ("holdout", True)])
def test_validation_labels_alone_start_a_cold_round_only_under_holdout(tmp_path, mode, cold):
    npz = write_synthetic_npz(tmp_path / "s.npz")
    with init_from_npz(tmp_path / "p", npz, "train", ["r", "g", "b"]) as store:
        update_settings(store, validation_mode=mode)
        rows = store.images()
        store.import_labels([(rows[k].uid, "r") for k in range(3)], "lead", validation=True)
        state = _label_state(store, {r.id: k for k, r in enumerate(rows)}, len(rows))
        policy = round_policy(load_settings(store))
        assert is_cold(state, policy) is cold
        assert next_round_plan(store).cold_start is cold
        assert int(np.sum(state.validation >= 0)) == 3
