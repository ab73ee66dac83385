"""Import a Label Studio JSON export into a project (the way back of
``medactive project export --format labelstudio``).

The file is Label Studio's **JSON** export (Export -> JSON, or the API's
``/api/projects/<id>/export?exportType=JSON``): a list of tasks, each with ``data`` and
``annotations``. Every annotation is checked first (image, choice, reader; see
:mod:`medactive.annotate.labelstudio.tasks`); any problem rejects the whole file with one line
naming the task ids, and nothing is written. Then each annotation is recorded like an answer on
the labelling page (:class:`~medactive.annotate.labelstudio.recorder.Recorder`): a skipped task
as medactive's ``skip``, the reader as who answered, the image's round when it is queried in
the latest one. Importing the same file again, or a later export of the same Label Studio
project, records only what changed (annotations are keyed by their Label Studio id in the
project's ledger, ``DIR/labelstudio.db``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medactive.annotate.exports import LABEL_STUDIO_PREFIX
from medactive.annotate.labelstudio.ledger import Ledger
from medactive.annotate.labelstudio.recorder import Outcome, Recorder
from medactive.annotate.labelstudio.tasks import (
    ImageIndex,
    LabelStudioError,
    LsAnswer,
    fallback_reader,
    project_id,
    read_annotation,
)
from medactive.annotate.store import ProjectStore
from medactive.progress import progress_bar

MAX_LISTED = 5


@dataclass
class ImportSummary:
    """What an import did: tasks and annotations read, and each annotation's fate."""

    tasks: int
    annotations: int
    skips: int
    outcome: Outcome = field(default_factory=Outcome)

    def describe(self) -> str:
        """One line for the command line."""
        return (f"read {self.annotations} annotation(s) of {self.tasks} task(s) "
                f"({self.skips} skipped): {self.outcome.describe()}")


@dataclass
class ReadTasks:
    """The answers read from a list of tasks, and the problems found (``task N: ...``)."""

    answers: list[LsAnswer]
    problems: list[str]
    tasks: int


def read_tasks(tasks: Any, store: ProjectStore, ledger: Ledger, images: ImageIndex,
               where: str) -> ReadTasks:
    """Read every annotation of ``tasks`` (a JSON export's list, or the tasks of a ``/train``
    call), collecting problems instead of stopping at the first.

    Raises:
        LabelStudioError: ``tasks`` is not a list of task objects (``where`` names the source).
    """
    if not isinstance(tasks, list):
        raise LabelStudioError(f"{where}: not a Label Studio JSON export (expected a list of "
                               f"tasks, found {type(tasks).__name__})")
    classes = store.classes()
    answers: list[LsAnswer] = []
    problems: list[str] = []
    seen: set[tuple[int, int]] = set()

    def name_of(user: int, email: str | None) -> str:
        return ledger.user_name(user) or email or fallback_reader(user)

    for k, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise LabelStudioError(f"{where}: item {k} is not a task object")
        if "annotations" not in task:
            if "annotation_id" in task or "annotator" in task:
                raise LabelStudioError(f"{where}: this is a JSON-MIN export; export the project "
                                       "as JSON (with annotations) instead")
            raise LabelStudioError(f"{where}: task {task.get('id', k)} has no 'annotations' "
                                   "list: not a Label Studio JSON export")
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise LabelStudioError(f"{where}: task {task.get('id', k)}: 'annotations' is not "
                                   "a list")
        if not annotations:  # every task must still be one of the project's images
            try:
                images.image_of(task)
            except LabelStudioError as exc:
                problems.append(str(exc))
        for annotation in annotations:
            try:
                pid = project_id(annotation.get("project") if isinstance(annotation, Mapping)
                                 and annotation.get("project") is not None
                                 else task.get("project", 0))
                answer = read_annotation(annotation, task, pid, images, classes, name_of)
            except LabelStudioError as exc:
                problems.append(str(exc))
                continue
            key = (answer.project, answer.annotation)
            if key in seen:
                problems.append(f"task {answer.task}: annotation {answer.annotation} appears "
                                "twice")
                continue
            seen.add(key)
            answers.append(answer)
    answers.sort(key=lambda a: (a.project, a.annotation))  # creation order: the latest wins
    return ReadTasks(answers, problems, len(tasks))


def refusal(problems: list[str], where: str) -> str:
    """The one line that refuses a file: the first problems and how many there are."""
    shown = "; ".join(problems[:MAX_LISTED])
    more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return f"{where}: import rejected, nothing written: {shown}{more}"


def load_export(path: Path) -> Any:
    """The parsed JSON of an export file.

    Raises:
        LabelStudioError: missing, unreadable or not JSON.
    """
    try:
        text = Path(path).read_text("utf-8-sig")
    except FileNotFoundError:
        raise LabelStudioError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelStudioError(f"{path}: cannot read it ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelStudioError(f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column "
                               f"{exc.colno})") from None


def import_labelstudio_export(store: ProjectStore, path: str | Path,
                              image_prefix: str = LABEL_STUDIO_PREFIX) -> ImportSummary:
    """Record the annotations of Label Studio JSON export ``path`` in ``store``.

    Args:
        image_prefix: the ``--image-prefix`` the tasks were exported with (what precedes the
            image id in ``data.image``).

    Returns:
        how many tasks and annotations were read and what became of each annotation.

    Raises:
        LabelStudioError: a malformed file, or any task for an unknown image, a choice outside
            the project's classes, several choices, or an annotation id given twice (the
            message names the task ids); nothing is written then.
        StoreError: the project cannot be written.
    """
    data = load_export(Path(path))
    store.check_writable()
    with Ledger.open(store.dir) as ledger:
        images = ImageIndex(store, image_prefix)
        read = read_tasks(data, store, ledger, images, str(path))
        if read.problems:
            raise LabelStudioError(refusal(read.problems, str(path)))
        recorder = Recorder(store, ledger)
        recorder.recover()
        for answer in read.answers:  # the first name a reader gets stays theirs
            if answer.user is not None:
                ledger.keep_user_name(answer.user, answer.reader)
        # one committed transaction per answer, as on the page (about 1 ms each here)
        outcome = recorder.apply_all(progress_bar(read.answers, "recording", "annotation",
                                                  enabled=len(read.answers) > 1000,
                                                  total=len(read.answers)))
    skips = sum(a.answer == "skip" for a in read.answers)
    return ImportSummary(read.tasks, len(read.answers), skips, outcome)

