"""When the Label Studio loop starts the next round, and with how many images.

The round itself is the labelling page's job (:func:`~medactive.annotate.jobs.spawn_query_job`:
``medactive project query --job N`` in its own process), so a round started from Label Studio,
from the page's button or from a terminal is the same code, recorded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from medactive.annotate.next_round import OpenRoundError, next_round_plan
from medactive.annotate.records import JobBusyError
from medactive.annotate.store import ProjectStore
from medactive.errors import ConfigError, MedactiveError

log = logging.getLogger("medactive.labelstudio")
#: ``(store, budget, force) -> job id``: the page's next-round job.
StartJob = Callable[[ProjectStore, int, bool], int]


def round_state(store: ProjectStore) -> dict[str, Any]:
    """The latest round's progress (the store's own count: complete, open, of which skipped
    and partial) and whether it is complete (every image has every read it needs; a skip is
    no answer)."""
    latest = store.latest_round()
    if latest is None:
        return {"id": None, "queried": 0, "complete": 0, "open": 0, "skipped": 0,
                "partial": 0, "done": False}
    progress = store.round_progress(latest.id)
    return {"id": latest.id, "strategy": latest.strategy, "created_at": latest.created_at,
            **progress.as_dict(), "done": progress.queried > 0 and progress.open == 0}


def next_budget(store: ProjectStore, budget: int | None) -> int:
    """Images for the next round: ``budget``, else the latest round's, capped by the pool a
    query may pick from (:func:`~medactive.annotate.next_round.next_round_plan`).

    Raises:
        ConfigError: no budget given and no round to take one from.
    """
    latest = store.latest_round()
    if budget is None and latest is not None:
        recorded = latest.params.get("budget")
        budget = recorded if isinstance(recorded, int) and recorded > 0 else \
            len(store.queue(latest.id)) or None
    if budget is None:
        raise ConfigError("no round yet and no budget: start the backend with --budget N (or "
                          "run `medactive project query DIR --budget N` first)")
    return min(budget, next_round_plan(store).pool)


def start_next_round(store: ProjectStore, budget: int | None, start_job: StartJob,
                     force: bool = False) -> dict[str, Any]:
    """Start the next round now (on request); ``{"job": id, "status": ...}``, naming the
    running job when one already runs.

    Raises:
        ConfigError: no budget known, or every image already has an answer.
        OpenRoundError: the latest round still needs answers and ``force`` is False (as the
            page's button: a round is never abandoned silently).
        StrategyError: the request fails the query's own check.
    """
    running = store.running_job()
    if running is not None:
        return {"job": str(running.id), "status": "already running"}
    size = next_budget(store, budget)
    if size < 1:
        raise ConfigError("every image has an answer: there is nothing left to query")
    try:
        job = start_job(store, size, force)
    except JobBusyError:
        running = store.running_job()
        return {"job": str(running.id) if running else None, "status": "already running"}
    except OpenRoundError as exc:  # the same refusal, in the words of this door
        progress = exc.progress
        raise OpenRoundError(
            f"round {progress.round_id} is still open: {progress.describe()}; answer them first, "
            "or send {\"force\": true} to the backend's next-round route to close it without "
            "them", progress) from None
    log.info("started round job %s (budget %s)", job, size)
    return {"job": str(job), "status": "started", "budget": size}


def maybe_start_round(store: ProjectStore, budget: int | None, start_job: StartJob
                      ) -> int | None:
    """Start the next round when the latest one is complete and no job was started since it
    was recorded (a failed one is not retried: the user asks again); returns the job id."""
    latest = store.latest_round()
    if latest is None or not round_state(store)["done"]:
        return None
    if store.running_job() is not None:
        return None
    if any(job.started_at > latest.created_at for job in store.jobs()):
        return None
    try:
        size = next_budget(store, budget)
        if size < 1:
            return None
        job = start_job(store, size, False)
    except (JobBusyError, MedactiveError) as exc:
        log.warning("next round not started: %s", exc)
        return None
    log.info("round %s answered: started job %s (budget %s)", latest.id, job, size)
    return job
