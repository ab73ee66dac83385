"""The clinic-workflow part of the labelling API (issue 14), added to the app of
:mod:`medactive.annotate.app`, behind the same guard (Host, session cookie, JSON-only writes
from the served origin, body size, path-free errors):

* ``GET /api/state`` (built here): the reader's next image with *why* it was asked (rank,
  strategy, purpose, and the score with its meaning: :mod:`medactive.annotate.why`) and, once
  answered (or always, if the project says so), the model's top-3 classes; answered and
  skipped counts (a skip is not an answer); the round's predicted class mix; the running job;
  what the next round would be (strategy, unanswered pool);
* ``GET /api/item/{id}``: the same for any image of the round (the gallery's "jump to");
* ``GET /api/gallery``: the round's queue with thumbnails' ids, status and filters;
* ``GET /api/disagreements`` / ``POST /api/adjudicate``: the adjudication view;
* ``GET /api/progress``: labels per class, agreement, validation AUC, stopping signal;
* ``POST /api/next-round`` / ``GET /api/job``: the background query, checked first as
  ``project query`` checks it (:mod:`medactive.annotate.next_round`: a bad budget is a 422, an
  open round a 409 naming how many images wait, unless ``force``); ``/api/job`` also names the
  latest round, which every open page polls to notice a new one;
* ``GET /api/export/{csv|json|labelstudio|labelstudio-config}``: downloads (without server
  paths; the last is Label Studio's labelling config for the tasks);
* ``POST /api/signin``: a reader proves their personal token (once any reader has one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from medactive.annotate.consensus import decisions
from medactive.annotate.exports import FORMATS, export_text, label_studio_config
from medactive.annotate.guard import MAX_ID, NAME_PATTERN
from medactive.annotate.monitor import project_progress
from medactive.annotate.next_round import OpenRoundError, check_round_request, next_round_plan
from medactive.annotate.project import encoder_label
from medactive.annotate.schema import Job, QueueItem, RoundRow
from medactive.annotate.settings import ProjectSettings, load_settings
from medactive.annotate.store import ProjectStore
from medactive.annotate.thumbs import thumbnail_png
from medactive.annotate.why import explain_pick
from medactive.data.decode import DecodeSettings
from medactive.errors import StrategyError

MAX_BUDGET = 100_000
FILTERS = ("all", "open", "unsure", "skipped", "disagree")
TOP_K = 3
WHY = {"acquire": "chosen by the strategy",
       "validation": "uniform random draw for the validation sample (each image scored by a "
       "model that never saw its label)",
       "second-read": "second read: the model disagrees with the first reader"}
LABEL_STUDIO_CONFIG = "labelstudio-config"
EXPORT_TYPES = {"csv": ("text/csv; charset=utf-8", "labels.csv"),
                "json": ("application/json", "history.json"),
                "labelstudio": ("application/json", "label-studio-tasks.json")}


class AdjudicateIn(BaseModel):
    """Body of ``POST /api/adjudicate``."""

    model_config = ConfigDict(extra="forbid")
    image_id: int = Field(ge=1, le=MAX_ID)
    answer: str = Field(min_length=1, max_length=200)
    annotator: str = Field(pattern=NAME_PATTERN)


class NextRoundIn(BaseModel):
    """Body of ``POST /api/next-round`` (``force``: close a round whose images still need an
    answer, as ``query --force``)."""

    model_config = ConfigDict(extra="forbid")
    budget: int = Field(ge=1, le=MAX_BUDGET)
    annotator: str = Field(pattern=NAME_PATTERN)
    force: bool = False


class SignInIn(BaseModel):
    """Body of ``POST /api/signin``."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME_PATTERN)
    token: str = Field(min_length=1, max_length=200)


def not_in_round(store: ProjectStore, image_id: int, latest: int) -> str:
    """Why an image cannot be answered in round ``latest``, in the reader's words (the image's
    own name, never a store id), with what to do."""
    row = store.image(image_id)
    name = row.uid if row is not None else "this image"
    earlier = [r for r in store.rounds_of_image(image_id) if r < latest]
    if earlier:
        return (f"{name} belongs to round {earlier[-1]}, which was replaced by round {latest} "
                "— reload to continue")
    return f"{name} is not part of round {latest}, the current round — reload to continue"


def replaced_round(asked: int, latest: int) -> str:
    """The message for an answer sent from the page of a round since replaced."""
    return (f"This image belongs to round {asked}, which was replaced by round {latest} — "
            "reload to continue")


def top_predictions(probs: np.ndarray | None, classes: list[str]) -> list[dict[str, Any]] | None:
    """The ``TOP_K`` most probable classes ``[{"class", "p"}]``, or None without a model."""
    if probs is None:
        return None
    order = np.argsort(-probs, kind="stable")[:TOP_K]
    return [{"class": classes[int(c)], "p": round(float(probs[c]), 4)} for c in order]


def round_mix(store: ProjectStore, rnd: RoundRow, queue: list[QueueItem],
              classes: list[str]) -> dict[str, Any] | None:
    """The predicted class mix of the whole query (the selection-health figure): the
    strategy's own health record when the round has one, else computed from the round model's
    recorded predictions; None for a round without a model (cold start)."""
    health = rnd.params.get("health") if isinstance(rnd.params.get("health"), dict) else None
    mix = health.get("batch_mix") if health else None
    if mix is None:
        probs = store.predictions(rnd.id, [q.image_id for q in queue])
        if not probs:
            return None
        counts = np.bincount([int(np.argmax(p)) for p in probs.values()],
                             minlength=len(classes))
        mix = (counts / max(1, counts.sum())).tolist()
    return {"mix": {name: round(float(m), 4) for name, m in zip(classes, mix, strict=False)},
            "warnings": list(health.get("warnings", [])) if health else [],
            "confident_share": health.get("confident_share") if health else None}


def job_dict(job: Job | None, redact: Callable[[str], str]) -> dict[str, Any] | None:
    """What the page shows of a job (error without server paths)."""
    if job is None:
        return None
    return {"id": job.id, "status": job.status, "stage": job.stage,
            "progress": round(job.progress, 4), "error": redact(job.error) if job.error else None,
            "round_id": job.round_id, "started_at": job.started_at,
            "finished_at": job.finished_at}


def item_dict(store: ProjectStore, rnd: RoundRow, q: QueueItem, reader: str | None,
              settings: ProjectSettings, classes: list[str], n_picks: int) -> dict[str, Any]:
    """One queued image: why it is asked (:func:`~medactive.annotate.why.explain_pick`), and
    the model's guess when it may be shown. ``n_picks``: the round's strategy picks."""
    own = q.answers.get(reader) if reader else None
    reveal = settings.show_predictions == "first" or own is not None
    probs = store.predictions(rnd.id, [q.image_id]).get(q.image_id)
    explained = explain_pick(strategy=rnd.strategy, params=rnd.params, purpose=q.purpose,
                             score=q.score, image_id=q.image_id, probs=probs, classes=classes,
                             reveal=reveal, n_picks=n_picks)
    return {"image_id": q.image_id, "uid": q.uid, "rank": q.rank, "score": q.score,
            "round_id": rnd.id, "purpose": q.purpose, "strategy": rnd.strategy,
            "why": WHY[q.purpose], "explain": explained, "own_answer": own,
            "skipped": q.skipped, "n_answers": len(q.answers), "done": q.done,
            "predictions_hidden": not reveal,
            "predictions": top_predictions(probs, classes) if reveal else None}


def picks(queue: list[QueueItem]) -> int:
    """How many of a round's queries are the strategy's own picks."""
    return sum(q.purpose == "acquire" for q in queue)


def page_state(store: ProjectStore, project: str, classes: list[str], annotator: str | None,
               reader: str | None, sign_in: bool, redact: Callable[[str], str]
               ) -> dict[str, Any]:
    """Everything the page shows for ``reader`` (None: before a name is typed)."""
    settings = load_settings(store)
    latest = store.latest_round()
    queue = store.queue(latest.id, reader, settings.reads_per_image) if latest else []
    current = next((q for q in queue if not q.done), None)
    last = store.last_own_record(latest.id, reader) if latest and reader else None
    last_item = next((q for q in queue if last and q.image_id == last[0]), None)
    # a skip moves the page on, but the image still needs an answer: counted apart
    skipped = [q.image_id for q in queue if q.done and q.skipped]
    n_picks = picks(queue)
    return {
        "project": project,
        "classes": classes,
        "annotator": annotator,
        "reader": reader,
        "sign_in": sign_in,
        "settings": {"show_predictions": settings.show_predictions,
                     "reads_per_image": settings.reads_per_image},
        "round": None if latest is None else {
            "id": latest.id, "strategy": latest.strategy, "created_at": latest.created_at,
            "health": round_mix(store, latest, queue, classes)},
        "total": len(queue),
        "done": sum(q.done for q in queue),
        "answered": sum(q.done for q in queue) - len(skipped),
        "skipped": skipped,
        "current": None if current is None or latest is None else item_dict(
            store, latest, current, reader, settings, classes, n_picks),
        "last": None if last_item is None or latest is None else item_dict(
            store, latest, last_item, reader, settings, classes, n_picks),
        "can_undo": last is not None,
        "job": job_dict(store.latest_job(), redact),
        "next": next_round_plan(store).as_dict(),
        "encoder": encoder_label(store.meta(), paths=False),
    }


def add_review_routes(
    app: FastAPI,
    store: ProjectStore,
    classes: list[str],
    read_json: Callable[[Request, type[BaseModel]], Any],
    json_body: Callable[[type[BaseModel]], dict[str, Any]],
    reader_for: Callable[[Request, str | None], str | None],
    sign_in: Callable[[str], Response],
    state: Callable[[str | None], dict[str, Any]],
    start_job: Callable[[ProjectStore, int, bool], int],
    redact: Callable[[str], str],
    decode: DecodeSettings | None = None,
) -> None:
    """Register the routes of the module docstring on ``app``.

    ``reader_for(request, claimed)`` returns the reader acting (a signed-in reader's name, or
    the claimed one where the project has no reader tokens) and raises 401/403 otherwise.
    """

    def latest_queue(reader: str | None) -> tuple[RoundRow, list[QueueItem], ProjectSettings]:
        """The latest round, its queue for ``reader`` and the settings (409 before any)."""
        latest = store.latest_round()
        if latest is None:
            raise HTTPException(409, "no round yet: run `medactive project query` first")
        settings = load_settings(store)
        return latest, store.queue(latest.id, reader, settings.reads_per_image), settings

    @app.get("/api/item/{image_id}")
    def item(request: Request, image_id: int = PathParam(le=MAX_ID),
             reader: str | None = Query(None, pattern=NAME_PATTERN)) -> dict[str, Any]:
        who = reader_for(request, reader)
        latest, queue, settings = latest_queue(who)
        q = next((q for q in queue if q.image_id == image_id), None)
        if q is None:
            raise HTTPException(404, not_in_round(store, image_id, latest.id))
        return item_dict(store, latest, q, who, settings, classes, picks(queue))

    @app.get("/api/gallery")
    def gallery(request: Request, reader: str | None = Query(None, pattern=NAME_PATTERN),
                show: str = Query("all", pattern="^(" + "|".join(FILTERS) + ")$")
                ) -> dict[str, Any]:
        who = reader_for(request, reader)
        latest, queue, _ = latest_queue(who)
        skipped = store.skipped(latest.id)
        items = []
        for q in queue:
            answers = set(q.answers.values())
            status = ("disagree" if len(answers) > 1 else "unsure" if answers == {"unsure"}
                      else "answered" if answers else "skipped" if q.image_id in skipped
                      else "open")
            keep = (show == "all" or (show == "open" and not q.done)
                    or (show == "unsure" and "unsure" in answers)
                    or (show == "skipped" and q.image_id in skipped)
                    or (show == "disagree" and len(answers) > 1))
            if keep:
                items.append({"image_id": q.image_id, "uid": q.uid, "rank": q.rank,
                              "purpose": q.purpose, "score": q.score, "status": status,
                              "own_answer": q.answers.get(who) if who else None,
                              "n_answers": len(q.answers), "done": q.done})
        return {"round": latest.id, "filter": show, "items": items}

    @app.get("/api/thumb/{image_id}")
    def thumb(image_id: int = PathParam(le=MAX_ID)) -> Response:
        row = store.image(image_id)
        if row is None:
            raise HTTPException(404, f"unknown image id {image_id}")
        try:
            data = thumbnail_png(row.path, row.sha256, decode)
        except Exception:  # the full image endpoint explains; a thumbnail only goes blank
            raise HTTPException(409, f"image {row.uid} cannot be shown") from None
        return Response(data, media_type="image/png")

    @app.get("/api/disagreements")
    def disagreements() -> dict[str, Any]:
        uids = {i.id: i.uid for i in store.images()}
        rows = [{"image_id": d.image_id, "uid": uids[d.image_id], "answers": d.answers,
                 "status": d.status, "decided": d.answer}
                for d in decisions(store).values() if d.disagreement]
        return {"classes": classes, "items": rows}

    @app.post("/api/adjudicate", openapi_extra=json_body(AdjudicateIn))
    async def adjudicate(request: Request) -> dict[str, Any]:
        body: AdjudicateIn = await read_json(request, AdjudicateIn)
        who = reader_for(request, body.annotator)
        if body.answer not in classes and body.answer != "unsure":
            raise HTTPException(422, f"unknown class {body.answer!r}; classes: {classes}")
        if store.image(body.image_id) is None:
            raise HTTPException(404, f"unknown image id {body.image_id}")
        decided = decisions(store).get(body.image_id)
        if decided is None or not decided.disagreement:
            raise HTTPException(409, f"image {body.image_id} has no disagreement to adjudicate")
        await run_in_threadpool(store.adjudicate, body.image_id, body.answer, str(who))
        return disagreements()

    @app.get("/api/progress")
    def progress() -> dict[str, Any]:
        return project_progress(store).as_dict()

    @app.get("/api/job")
    def job() -> dict[str, Any]:
        # polled by every open page: the latest round's id tells it a new round has started
        return {"job": job_dict(store.latest_job(), redact), "round_id": store.latest_round_id()}

    @app.post("/api/next-round", openapi_extra=json_body(NextRoundIn))
    async def next_round(request: Request) -> Response:
        body: NextRoundIn = await read_json(request, NextRoundIn)
        reader_for(request, body.annotator)
        try:  # the CLI's own check, before a job exists: a typo never shows as a failed job
            await run_in_threadpool(check_round_request, store, body.budget, force=body.force)
        except OpenRoundError as exc:
            progress = exc.progress
            return JSONResponse({"detail": f"round {progress.round_id} is still open: "
                                           f"{progress.describe()}",
                                 "open_round": progress.as_dict()}, status_code=409)
        except StrategyError as exc:
            raise HTTPException(422, str(exc)) from None
        job_id = await run_in_threadpool(start_job, store, body.budget, body.force)
        return JSONResponse({"job": job_dict(store.job(job_id), redact)})

    @app.get("/api/export/{fmt}")
    def export(fmt: str) -> Response:
        if fmt == LABEL_STUDIO_CONFIG:  # the labelling config the Label Studio tasks fit
            return Response(label_studio_config(classes), media_type="application/xml",
                            headers={"Content-Disposition":
                                     'attachment; filename="label-studio-config.xml"'})
        if fmt not in FORMATS:
            raise HTTPException(404, f"unknown export format; formats: {', '.join(FORMATS)}, "
                                     f"{LABEL_STUDIO_CONFIG}")
        media, name = EXPORT_TYPES[fmt]
        text = export_text(store, fmt, include_paths=False)
        return Response(text, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.post("/api/signin", openapi_extra=json_body(SignInIn))
    async def signin(request: Request) -> Response:
        body: SignInIn = await read_json(request, SignInIn)
        if not store.check_reader(body.name, body.token):
            raise HTTPException(401, "unknown reader or wrong token")
        return sign_in(body.name)
