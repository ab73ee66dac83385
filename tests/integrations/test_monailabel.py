"""The MONAI Label strategy against the real ``monailabel`` package, in MONAI Label's own
environment (``.venv-monailabel``: ``make monailabel-env``, which ``make test`` runs when it is
missing; MONAI Label pins numpy below 2 and brings ITK, MLflow and more, so it does not share
medactive's environment). A missing environment is a failure, not a skip.

The checks themselves are in ``monailabel_check.py`` (a real ``LocalDatastore`` of PNGs and of
NIfTI volumes, labels saved through it, the strategy called as MONAI Label's app calls it).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MONAI_PYTHON = REPO / ".venv-monailabel" / "bin" / "python"


@pytest.mark.slow
def test_strategy_on_a_real_monailabel_datastore(bloodmnist_path: Path, tmp_path: Path) -> None:
    if not MONAI_PYTHON.exists():
        pytest.fail(f"{MONAI_PYTHON} not found: run `make monailabel-env` (make test does)")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "2"}
    done = subprocess.run(
        [str(MONAI_PYTHON), str(Path(__file__).with_name("monailabel_check.py")),
         str(bloodmnist_path), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["versions"]["monailabel"].startswith("0.8")
    assert facts["versions"]["torch"].startswith("2.13.0")  # beside this project's torch
    assert facts["png"]["encoded"] == 40 and facts["png"]["classes"] >= 2
    assert facts["nifti"]["slices"] == 30 and facts["nifti"]["first"] != facts["nifti"]["after"]
