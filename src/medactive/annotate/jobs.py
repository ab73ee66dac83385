"""The "next round" button: ``medactive project query`` run in the background.

One pipeline: the job is the CLI command itself (``python -m medactive project query DIR
--budget B --job N``) in its own process, so a query from the page and one from a terminal are
the same code, a crash in training cannot take the labelling server down, and the server keeps
answering (and saving labels) while the model trains. The job's state lives in the store
(:class:`~medactive.annotate.schema.Job`): the page polls it, a reload or a restarted server
shows it, and a job whose process is gone is marked failed (``ReviewRecords.reap_jobs``),
never left "running".
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from medactive.annotate.next_round import check_round_request
from medactive.annotate.store import ProjectStore

LOG_TAIL = 2000


def job_log(project_dir: Path, job_id: int) -> Path:
    """``DIR/jobs/job-N.log``: the job's output (kept for a failed job's details)."""
    return Path(project_dir) / "jobs" / f"job-{job_id}.log"


def error_from_log(path: Path) -> str:
    """The ``error: ...`` line of a job's log, else its tail, else a generic message."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return "the job stopped without a log"
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error: "):
            return line[len("error: "):]
    return ("the job failed: " + " | ".join(lines[-3:]))[-LOG_TAIL:] if lines else \
        "the job stopped before it finished"


def spawn_query_job(store: ProjectStore, budget: int, force: bool = False, seed: int = 0) -> int:
    """Start a query round in the background; returns its job id. The request is checked first
    (:func:`~medactive.annotate.next_round.check_round_request`, as ``project query`` does): a
    bad one records no job.

    Args:
        force: close the latest round even though some of its images still need an answer.

    Raises:
        StrategyError: a bad budget or strategy; OpenRoundError: the latest round is still
            open and ``force`` is False (nothing recorded in either case).
        JobBusyError: a job is already running on this project.
        StoreError: the project cannot be written.
    """
    store.check_writable()
    check_round_request(store, budget, force=force, seed=seed)
    job_id = store.begin_job("query", {"budget": budget, "seed": seed, "force": force,
                                       "from": "page"}, None)
    log = job_log(store.dir, job_id)
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "wb")  # noqa: SIM115 - handed to the child, closed by the reaper
        command = [sys.executable, "-m", "medactive", "project", "query", str(store.dir),
                   "--budget", str(budget), "--seed", str(seed), "--job", str(job_id)] + (
                       ["--force"] if force else [])
        env = {**os.environ, "MEDACTIVE_PROGRESS": "0"}
        # its own session: stopping the server (Ctrl-C) does not kill a job half-way
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    except OSError as exc:
        store.finish_job(job_id, error=f"cannot start the job: {exc.strerror or exc}")
        raise
    store.set_job_pid(job_id, proc.pid)

    def reap() -> None:
        proc.wait()
        out.close()
        try:
            job = store.job(job_id)
            if job is not None and job.status == "running":  # died without recording an end
                store.finish_job(job_id, error=error_from_log(log))
        except Exception:  # the server closed the store meanwhile: reap_jobs() marks it later
            pass

    threading.Thread(target=reap, name=f"medactive-job-{job_id}", daemon=True).start()
    return job_id
