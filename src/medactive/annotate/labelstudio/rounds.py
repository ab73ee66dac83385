"""When the Label Studio loop starts the next round, and with how many images.

The round itself is the labelling page's job (:func:`~medactive.annotate.jobs.spawn_query_job`:
``medactive project query --job N`` in its own process), so a round started from Label Studio,
from the page's button or from a terminal is the same code, recorded the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from medactive.annotate.records import JobBusyError
from medactive.annotate.settings import load_settings
from medactive.annotate.store import ProjectStore
from medactive.errors import ConfigError

log = logging.getLogger("medactive.labelstudio")
StartJob = Callable[[ProjectStore, int], int]


def round_state(store: ProjectStore) -> dict[str, Any]:
    """The latest round: how many images it queries, how many have an answer, a skip only, or
    nothing yet, and whether it is complete (every image answered; a skip is no answer)."""
    latest = store.latest_round()
    if latest is None:
        return {"id": None, "queued": 0, "answered": 0, "skipped": 0, "open": 0,
                "complete": False}
    reads = load_settings(store).reads_per_image
    queue = store.queue(latest.id, None, reads)
    answered = sum(q.done and not q.skipped for q in queue)
    skipped = sum(q.skipped for q in queue)
    return {"id": latest.id, "strategy": latest.strategy, "created_at": latest.created_at,
            "queued": len(queue), "answered": answered, "skipped": skipped,
            "open": len(queue) - answered - skipped,
            "complete": bool(queue) and answered == len(queue)}


def next_budget(store: ProjectStore, budget: int | None) -> int:
    """Images for the next round: ``budget``, else the latest round's, capped by the images
    left to ask about (no answer, no adjudication, not drawn for validation).

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
    asked = {a.image_id for a in store.reader_answers()}
    asked |= set(store.adjudications()) | store.validation_ids()
    return min(budget, sum(img.id not in asked for img in store.images()))


def start_next_round(store: ProjectStore, budget: int | None, start_job: StartJob
                     ) -> dict[str, Any]:
    """Start the next round now (on request); ``{"job": id, "status": ...}``, naming the
    running job when one already runs.

    Raises:
        ConfigError: no budget known, or every image already has an answer.
    """
    running = store.running_job()
    if running is not None:
        return {"job": str(running.id), "status": "already running"}
    size = next_budget(store, budget)
    if size < 1:
        raise ConfigError("every image has an answer: there is nothing left to query")
    try:
        job = start_job(store, size)
    except JobBusyError:
        running = store.running_job()
        return {"job": str(running.id) if running else None, "status": "already running"}
    log.info("started round job %s (budget %s)", job, size)
    return {"job": str(job), "status": "started", "budget": size}


def maybe_start_round(store: ProjectStore, budget: int | None, start_job: StartJob
                      ) -> int | None:
    """Start the next round when the latest one is complete and no job was started since it
    was recorded (a failed one is not retried: the user asks again); returns the job id."""
    latest = store.latest_round()
    if latest is None or not round_state(store)["complete"]:
        return None
    if store.running_job() is not None:
        return None
    if any(job.started_at > latest.created_at for job in store.jobs()):
        return None
    try:
        size = next_budget(store, budget)
        if size < 1:
            return None
        job = start_job(store, size)
    except (JobBusyError, ConfigError) as exc:
        log.warning("next round not started: %s", exc)
        return None
    log.info("round %s answered: started job %s (budget %s)", latest.id, job, size)
    return job
