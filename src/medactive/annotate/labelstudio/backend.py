"""The Label Studio ML backend's state over one project: what each protocol call does.

The HTTP layer (routes, authentication, the protocol's description) is
:mod:`medactive.annotate.labelstudio.app`; this module answers the calls.

**Answers.** ``ANNOTATION_CREATED``, ``ANNOTATIONS_CREATED``, ``ANNOTATION_UPDATED`` and
``ANNOTATIONS_DELETED`` webhooks, and the annotated tasks of a ``/train`` call, are recorded in the
project store by the :class:`~medactive.annotate.labelstudio.recorder.Recorder` (through the
page's own ``ProjectStore.record``; each annotation keyed by its Label Studio id in the ledger).

**Rounds.** When every image of the latest round has an answer, the next round starts through
the page's own job, once per round (:mod:`~medactive.annotate.labelstudio.rounds`); on request
(*Start Training*, ``START_TRAINING``, ``/next-round``) too, but a round whose images still need
answers is closed only with ``/next-round`` ``{"force": true}``, as the page's button: otherwise
the request is refused naming how many wait.

**Label Studio's side of a new round.** When the backend can call Label Studio's API (its address
and an API key: ``--label-studio-url`` and ``LABEL_STUDIO_API_KEY``, else the ones Label Studio
sends to ``/setup``), a watcher thread notices each new round, makes Label Studio retrieve the
new predictions and sets the project's model version to the round, so *Prediction score* orders
by the new ranks; it also catches up, once per launch, on annotations made while the backend was
down (Label Studio does not resend a webhook that failed). Without that access the docs give the
two clicks that do the same.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medactive.annotate.exports import LABEL_STUDIO_PREFIX
from medactive.annotate.guard import MIN_TOKEN_LENGTH, redact_paths
from medactive.annotate.jobs import spawn_query_job
from medactive.annotate.labelstudio.client import LabelStudioClient, LabelStudioUnavailable
from medactive.annotate.labelstudio.importer import read_tasks
from medactive.annotate.labelstudio.ledger import Ledger
from medactive.annotate.labelstudio.predict import model_version, predictions
from medactive.annotate.labelstudio.recorder import Outcome, Recorder
from medactive.annotate.labelstudio.rounds import (
    StartJob,
    maybe_start_round,
    round_state,
    start_next_round,
)
from medactive.annotate.labelstudio.tasks import (
    ImageIndex,
    LabelStudioError,
    check_config_classes,
    choice_control,
    fallback_reader,
    project_id,
    read_annotation,
)
from medactive.annotate.store import ProjectStore
from medactive.errors import ConfigError, StoreError

log = logging.getLogger("medactive.labelstudio")
RETRY_S = 30.0  # a failed call to Label Studio is retried after this long
TRAIN_EVENTS = ("ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED",
                "ANNOTATIONS_DELETED", "START_TRAINING")


@dataclass
class BackendConfig:
    """Settings of one backend.

    Attributes:
        token: the shared secret every request must carry (>= 16 characters).
        host, port: the bound address (for the ``Host`` check).
        budget: images per automatically started round (None: the previous round's budget).
        auto_next_round: start the next round when the latest one is answered.
        label_studio_url, label_studio_key: Label Studio's API (None: what ``/setup`` sends).
        image_prefix: ``--image-prefix`` of the exported tasks.
        poll_s: how often the watcher looks for a new round (0: no watcher thread).
    """

    token: str
    host: str = "127.0.0.1"
    port: int = 9090
    budget: int | None = None
    auto_next_round: bool = True
    label_studio_url: str | None = None
    label_studio_key: str | None = None
    image_prefix: str = LABEL_STUDIO_PREFIX
    poll_s: float = 2.0

    def check(self) -> BackendConfig:
        """Raise :class:`ConfigError` for a short token or a non-positive budget."""
        if not self.token or len(self.token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"the backend needs a token of at least {MIN_TOKEN_LENGTH} "
                              "characters (MEDACTIVE_TOKEN=... or --token; e.g. "
                              "`openssl rand -hex 16`): Label Studio sends it as the Basic "
                              "Authentication password")
        if self.budget is not None and self.budget < 1:
            raise ConfigError(f"--budget must be a positive integer, got {self.budget}")
        return self


class Backend:
    """The backend's state over one project (routes call these methods in worker threads).

    Args:
        start_job: ``(store, budget) -> job id``: the page's next-round job (tests pass a
            stand-in).
    """

    def __init__(self, project_dir: str | Path, config: BackendConfig,
                 start_job: StartJob = spawn_query_job) -> None:
        self.config = config.check()
        self.store = ProjectStore.open(project_dir)
        try:
            self.store.check_writable()
            self.ledger = Ledger.open(self.store.dir)
        except BaseException:
            self.store.close()
            raise
        self.recorder = Recorder(self.store, self.ledger)
        self.recorder.recover()  # a change a killed backend left half-done
        self.classes = self.store.classes()
        self.start_job = start_job
        self.project_name = Path(project_dir).resolve().name
        self._lock = threading.RLock()
        self._setup: dict[str, str] = {}  # hostname, access_token (memory only)
        self._caught_up: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the watcher thread (no-op when ``poll_s`` is 0)."""
        if self.config.poll_s > 0 and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="medactive-ls-watcher",
                                             daemon=True)
            self._watcher.start()

    def close(self) -> None:
        """Stop the watcher and close the files (everything is committed already)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=60)
        self.ledger.close()
        self.store.close()

    # ------------------------------------------------------------------ the protocol

    def health(self) -> dict[str, Any]:
        """``/health``."""
        return {"status": "UP", "model_class": "medactive", "project": self.project_name,
                "model_version": model_version(self.store)}

    def setup(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``/setup``: check the config, remember the project and Label Studio's address."""
        check_config_classes(choice_control(payload.get("schema")), self.classes)
        pid = project_id(payload.get("project"))
        hostname = payload.get("hostname")
        token = payload.get("access_token")
        if isinstance(hostname, str) and isinstance(token, str) and hostname and token:
            self._setup = {"hostname": hostname, "access_token": token}
        self.ledger.see_project(pid, hostname if isinstance(hostname, str) else "")
        return {"model_version": model_version(self.store)}

    def predict(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``/predict``: one prediction per task (medactive's order as the score)."""
        tasks = payload.get("tasks")
        if not isinstance(tasks, list):
            raise LabelStudioError("/predict: no 'tasks' list")
        if payload.get("project") is not None:
            self.ledger.see_project(project_id(payload.get("project")))
        images = ImageIndex(self.store, self.config.image_prefix)
        return {"results": predictions(self.store, tasks, payload.get("label_config"), images)}

    def webhook(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``/webhook``: record answers, withdraw deleted ones, or start the next round."""
        action = payload.get("action")
        if action not in TRAIN_EVENTS:
            return {"status": "ignored", "action": action}
        pid = project_id(payload.get("project"))
        self.ledger.see_project(pid)
        if action == "START_TRAINING":
            return {"status": "ok", **self.next_round(None)}
        outcome = Outcome()
        with self._lock:
            if action == "ANNOTATIONS_DELETED":
                for item in _list(payload.get("annotations"), "annotations"):
                    ann = item.get("id") if isinstance(item, Mapping) else None
                    if isinstance(ann, int) and not isinstance(ann, bool):
                        outcome.add(self.recorder.withdraw(pid, ann))
            else:
                annotations = payload.get("annotation")
                tasks = payload.get("task")
                if action == "ANNOTATIONS_CREATED":
                    by_id = {t.get("id"): t for t in _list(tasks, "task")
                             if isinstance(t, Mapping)}
                    pairs = [(a, by_id.get(a.get("task")) if isinstance(a, Mapping) else None)
                             for a in _list(annotations, "annotation")]
                else:
                    pairs = [(annotations, tasks)]
                images = ImageIndex(self.store, self.config.image_prefix)
                answers = []
                for annotation, task in pairs:
                    if not isinstance(task, Mapping):
                        raise LabelStudioError(f"{action}: an annotation without its task")
                    answers.append(read_annotation(annotation, task, pid, images, self.classes,
                                                   self._reader_name))
                self.recorder.apply_all(answers, outcome)
        started = self.maybe_start_round() if self.config.auto_next_round else None
        return {"status": "ok", **outcome.as_dict(),
                **({"job": str(started)} if started is not None else {})}

    def train(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``/train``: record every annotation Label Studio sends (and withdraw those deleted
        meanwhile), then start the next round."""
        pid = project_id(payload.get("project"))
        self.ledger.see_project(pid)
        outcome, problems = self._record_all(pid, payload.get("annotations"), "/train")
        started = self.next_round(None)
        return {**started, **outcome.as_dict(), "problems": problems[:20]}

    def job_status(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``/job_status``: a round job's state in Label Studio's words."""
        try:
            job = self.store.job(int(str(payload.get("job"))))
        except ValueError:
            job = None
        if job is None:
            return {"job_status": "removed"}
        status = {"running": "started", "done": "finished"}.get(job.status, "failed")
        return {"job_status": status, "error": job.error, "round_id": job.round_id}

    # ------------------------------------------------------------------ rounds

    def next_round(self, budget: int | None, force: bool = False) -> dict[str, Any]:
        """Start the next round now (on request): ``{"job": id, "status": ...}``; an open
        round is closed only with ``force`` (as the page's button)."""
        return start_next_round(self.store, budget if budget is not None else
                                self.config.budget, self.start_job, force)

    def maybe_start_round(self) -> int | None:
        """Start the next round if the latest one is complete (once per round)."""
        with self._lock:
            return maybe_start_round(self.store, self.config.budget, self.start_job)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """``/status``: the round, the latest job, the ledger and the Label Studio sync."""
        job = self.store.latest_job()
        entries = self.ledger.entries()
        return {
            "project": self.project_name, "model_version": model_version(self.store),
            "round": round_state(self.store),
            "job": None if job is None else {
                "id": job.id, "status": job.status, "stage": job.stage,
                "error": redact_paths(job.error) if job.error else None,
                "round_id": job.round_id},
            "ledger": {"annotations": len(entries),
                       "live": sum(e.label_id is not None for e in entries),
                       "pending": sum(e.pending is not None for e in entries)},
            "label_studio": [{"project": p, "synced_version": v}
                             for p, _, v in self.ledger.projects()],
            "api": self._client_source(), "last_error": self.last_error,
        }

    # ------------------------------------------------------------------ Label Studio's API

    def _client_source(self) -> str | None:
        if self.config.label_studio_url and self.config.label_studio_key:
            return "configured"
        if self._setup or self.config.label_studio_key:
            return "from /setup"
        return None

    def _client(self) -> LabelStudioClient | None:
        url = self.config.label_studio_url or self._setup.get("hostname")
        key = self.config.label_studio_key or self._setup.get("access_token")
        return LabelStudioClient(url, key) if url and key else None

    def _reader_name(self, user: int, email: str | None) -> str:
        """One name per Label Studio user: the one kept, else the e-mail (given, or asked of
        Label Studio), else ``labelstudio-user-<id>``."""
        kept = self.ledger.user_name(user)
        if kept is not None:
            return kept
        if email is None:
            client = self._client()
            if client is not None:
                try:
                    email = client.user_email(user)
                except LabelStudioUnavailable as exc:
                    log.warning("reader name of Label Studio user %s: %s", user, exc)
                finally:
                    client.close()
        return self.ledger.keep_user_name(user, email or fallback_reader(user))

    def _record_all(self, pid: int, tasks: Any, where: str) -> tuple[Outcome, list[str]]:
        """Record every annotation of ``tasks`` (a complete listing: annotations missing from it
        were deleted); annotations medactive cannot take are reported, the rest recorded."""
        with self._lock:
            images = ImageIndex(self.store, self.config.image_prefix)
            read = read_tasks(tasks, self.store, self.ledger, images, where)
            for answer in read.answers:
                if answer.user is not None:
                    self.ledger.keep_user_name(answer.user, answer.reader)
            mine = [a for a in read.answers if a.project in (pid, 0)]
            outcome = self.recorder.apply_all(
                [a if a.project == pid else replace(a, project=pid) for a in mine])
            present = {int(a["id"]) for t in tasks if isinstance(t, Mapping)
                       for a in (t.get("annotations") or []) if isinstance(a, Mapping)
                       and isinstance(a.get("id"), int)}
            self.recorder.withdraw_missing(pid, present, outcome)
        for problem in read.problems:
            log.warning("%s: not recorded: %s", where, problem)
        return outcome, read.problems

    def catch_up(self, pid: int, client: LabelStudioClient) -> Outcome:
        """Record what Label Studio holds for project ``pid`` (its JSON export) that the
        ledger missed, and withdraw what was deleted (annotations made while the backend was
        down reach it this way)."""
        outcome, _ = self._record_all(pid, client.export(pid), f"export of project {pid}")
        if self.config.auto_next_round:
            self.maybe_start_round()
        return outcome

    def sync(self) -> None:
        """One pass of the watcher: catch up once per launch, and point every known Label Studio
        project at the latest round's predictions."""
        client = self._client()
        if client is None:
            return
        try:
            version = model_version(self.store)
            for pid, _, synced in self.ledger.projects():
                if time.monotonic() < self._retry_at.get(pid, 0.0):
                    continue
                try:
                    if pid not in self._caught_up:
                        outcome = self.catch_up(pid, client)
                        self._caught_up.add(pid)
                        log.info("caught up with Label Studio project %s: %s", pid,
                                 outcome.describe())
                    if synced != version and self.store.latest_round() is not None:
                        client.retrieve_predictions(pid)
                        client.set_model_version(pid, version)
                        self.ledger.set_synced(pid, version)
                        log.info("Label Studio project %s now orders by %s", pid, version)
                    self.last_error = None
                except (LabelStudioUnavailable, LabelStudioError, StoreError) as exc:
                    self.last_error = f"Label Studio project {pid}: {exc}"
                    log.warning("%s (retried in %.0f s)", self.last_error, RETRY_S)
                    self._retry_at[pid] = time.monotonic() + RETRY_S
        finally:
            client.close()

    def _watch(self) -> None:
        while not self._stop.wait(self.config.poll_s):
            try:
                self.sync()
            except Exception:  # the watcher must outlive any one failure
                log.exception("Label Studio sync failed")




def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise LabelStudioError(f"webhook: '{what}' is not a list")
    return value
