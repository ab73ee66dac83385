"""``medactive run`` killed with SIGKILL mid-run, then re-run: identical records to a straight run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from medactive.experiment.results import read_jsonl

from .conftest import config_text, strip_timing, write_synthetic_npz


def _run(cfg, out, env):
    return subprocess.Popen([sys.executable, "-m", "medactive", "run", str(cfg), "--out", str(out),
                             "--quiet"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_then_rerun_matches_straight_run(tmp_path):
    env = {**os.environ, "MEDACTIVE_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    npz = write_synthetic_npz(tmp_path / "synthetic.npz")
    cfg = tmp_path / "synthetic.toml"
    cfg.write_text(config_text(npz, extra="", strategies='["random", "entropy", "bald"]')
                   .replace("repeats = 2", "repeats = 4"))
    straight = _run(cfg, tmp_path / "straight", env)
    assert straight.wait(timeout=300) == 0, straight.stderr.read().decode()

    killed = _run(cfg, tmp_path / "killed", env)
    results = tmp_path / "killed" / "results.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        if results.exists() and len(read_jsonl(results)) >= 3:  # at least one finished cell
            break
        time.sleep(0.02)
    assert killed.poll() is None, "the run finished before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    partial = len(read_jsonl(results))
    assert 3 <= partial < 4 * 3 * 3

    rerun = _run(cfg, tmp_path / "killed", env)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode()
    assert strip_timing(read_jsonl(results)) == strip_timing(
        read_jsonl(tmp_path / "straight" / "results.jsonl"))
