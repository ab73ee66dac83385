"""Reading Label Studio's tasks and annotations as medactive answers.

A Label Studio *task* made by ``medactive project export --format labelstudio`` carries the image
as ``data.image`` = ``--image-prefix`` + image id (default prefix ``/data/local-files/?d=``) and
the bare id as ``data.medactive_id``; its *annotations* carry one ``choices`` result (the class),
the reader (``completed_by``) and, for a task the reader skipped, ``was_cancelled``. This module
turns one annotation into one :class:`LsAnswer`, or says exactly why it cannot (naming the task),
for both the ML backend's webhooks and the import of an exported JSON file:

* the image: ``data.image`` with the prefix removed, else ``data.medactive_id``; both must name
  the same registered (not removed) image;
* the answer: a skipped task (``was_cancelled``) is medactive's ``skip``; a choice is a class
  (exact name, else the one class equal to it ignoring case), or ``unsure`` when the labelling
  config offers that choice; a submitted annotation without a choice is ``unsure`` (the reader
  looked and named no class); two different choices are refused;
* the reader: the user's e-mail when Label Studio gives it (a JSON export expands
  ``completed_by``), else the name kept for that user id in the project's Label Studio ledger,
  else ``labelstudio-user-<id>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

from medactive.annotate.exports import LABEL_STUDIO_PREFIX
from medactive.annotate.store import ProjectStore
from medactive.errors import DataError

UNSURE = "unsure"
SKIP = "skip"


class LabelStudioError(DataError):
    """A Label Studio task, annotation or export that medactive cannot take (one clear line)."""


@dataclass(frozen=True)
class LsAnswer:
    """One Label Studio annotation as medactive reads it.

    Attributes:
        project: Label Studio project id.
        annotation: Label Studio annotation id (the key an update or a deletion names).
        task: Label Studio task id.
        image_id: medactive store id of the task's image.
        answer: a class name, ``"unsure"`` or ``"skip"``.
        reader: who answered (see the module docstring).
        updated_at: Label Studio's time of the annotation's last change (``""`` if not given).
        user: the Label Studio user id of the reader.
    """

    project: int
    annotation: int
    task: int
    image_id: int
    answer: str
    reader: str
    updated_at: str = ""
    user: int | None = None


@dataclass(frozen=True)
class ChoiceControl:
    """The ``Choices`` control of a labelling config: its name, the image it labels, and its
    choice values (what Label Studio accepts in a prediction)."""

    name: str
    to_name: str
    values: tuple[str, ...]


def choice_control(label_config: str | None) -> ChoiceControl:
    """The first ``<Choices>`` of ``label_config`` (medactive's export: ``label`` on ``image``).

    Raises:
        LabelStudioError: the config is not XML or has no ``Choices`` control.
    """
    if not label_config:
        raise LabelStudioError("the Label Studio project has no labelling config")
    try:
        root = ElementTree.fromstring(label_config)
    except ElementTree.ParseError as exc:
        raise LabelStudioError(f"the labelling config is not valid XML ({exc})") from None
    for node in root.iter():
        if node.tag.lower() == "choices" and node.get("name") and node.get("toName"):
            values = tuple(c.get("value", "") for c in node.iter() if c.tag.lower() == "choice")
            return ChoiceControl(str(node.get("name")), str(node.get("toName")), values)
    raise LabelStudioError("the labelling config has no <Choices name=... toName=...> control; "
                           "use the one `medactive project export --format labelstudio` writes "
                           "beside the tasks (FILE.xml)")


def class_of_choice(choice: str, classes: list[str]) -> str | None:
    """The project class ``choice`` names (exact, else the only one equal ignoring case),
    ``"unsure"`` for that reserved answer, or None."""
    if choice in classes:
        return choice
    folded = [c for c in classes if c.casefold() == choice.casefold()]
    if len(folded) == 1:
        return folded[0]
    if choice.casefold() == UNSURE:
        return UNSURE
    return None


def check_config_classes(control: ChoiceControl, classes: list[str]) -> dict[str, str]:
    """``class -> choice value`` of the config for every project class.

    Raises:
        LabelStudioError: a project class has no choice in the config, or a choice is neither a
            class nor ``unsure`` (answers with it could not be recorded).
    """
    mapping: dict[str, str] = {}
    foreign = []
    for value in control.values:
        name = class_of_choice(value, classes)
        if name is None:
            foreign.append(value)
        elif name != UNSURE:
            mapping[name] = value
    missing = [c for c in classes if c not in mapping]
    if missing or foreign:
        parts = []
        if missing:
            parts.append(f"no choice for class(es) {missing}")
        if foreign:
            parts.append(f"choice(s) {foreign} are not classes of the project")
        raise LabelStudioError("the labelling config does not fit the project: "
                               + "; ".join(parts) + f" (classes: {', '.join(classes)})")
    return mapping


class ImageIndex:
    """Finds a task's image among the project's images (registered, not removed).

    Args:
        image_prefix: what precedes the image id in ``data.image`` (``--image-prefix`` of the
            export).
    """

    def __init__(self, store: ProjectStore, image_prefix: str = LABEL_STUDIO_PREFIX) -> None:
        self.prefix = image_prefix
        self.by_uid = {img.uid: img.id for img in store.images()}

    def image_of(self, task: Mapping[str, Any]) -> int:
        """The store id of ``task``'s image.

        Raises:
            LabelStudioError: no image reference, an unknown image, or ``data.image`` and
                ``data.medactive_id`` naming different images.
        """
        tid = task.get("id")
        data = task.get("data")
        if not isinstance(data, Mapping):
            raise LabelStudioError(f"task {tid}: no 'data' object")
        found: dict[str, int] = {}
        named: list[str] = []
        image = data.get("image")
        if isinstance(image, str):
            named.append(image)
            if image.startswith(self.prefix):
                ref = image[len(self.prefix):]
                for uid in (ref, unquote(ref)):
                    if uid in self.by_uid:
                        found["data.image"] = self.by_uid[uid]
                        break
        own = data.get("medactive_id")
        if isinstance(own, str):
            named.append(own)
            if own in self.by_uid:
                found["data.medactive_id"] = self.by_uid[own]
        if not named:
            raise LabelStudioError(f"task {tid}: no image reference (data.image or "
                                   "data.medactive_id)")
        if not found:
            raise LabelStudioError(f"task {tid}: " + self._unknown(image, own))
        if len(set(found.values())) > 1:
            raise LabelStudioError(f"task {tid}: data.image and data.medactive_id name "
                                   "different images")
        return next(iter(found.values()))

    def _unknown(self, image: Any, own: Any) -> str:
        """Why neither reference names a project image, with the prefix that would fit."""
        if not isinstance(image, str):
            return f"image {own!r} is not in the project"
        if not image.startswith(self.prefix):
            return (f"data.image {image!r} does not start with the image prefix "
                    f"{self.prefix!r} (give the --image-prefix the tasks were exported with)")
        ref = image[len(self.prefix):]
        for cut in (k for k, ch in enumerate(ref) if ch == "/"):
            if ref[cut + 1:] in self.by_uid:
                return (f"image {ref!r} is not in the project (exported with --image-prefix "
                        f"{self.prefix + ref[:cut + 1]!r}?)")
        return f"image {ref!r} is not in the project"


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise LabelStudioError(f"{what} is not an integer id ({value!r})")
    return value


def answer_of(annotation: Mapping[str, Any], classes: list[str], task_id: Any) -> str:
    """The medactive answer of one annotation (see the module docstring).

    Raises:
        LabelStudioError: a choice outside the project's classes, two different choices, or a
            result that is not a list.
    """
    if annotation.get("was_cancelled"):
        return SKIP
    result = annotation.get("result")
    if result is None:
        result = []
    if not isinstance(result, list):
        raise LabelStudioError(f"task {task_id}: annotation {annotation.get('id')} has a "
                               "'result' that is not a list")
    chosen: list[str] = []
    for item in result:
        if not isinstance(item, Mapping) or item.get("type") != "choices":
            continue
        value = item.get("value")
        choices = value.get("choices") if isinstance(value, Mapping) else None
        if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
            raise LabelStudioError(f"task {task_id}: annotation {annotation.get('id')} has a "
                                   "choices result without a list of choices")
        chosen.extend(choices)
    names = []
    for choice in chosen:
        name = class_of_choice(choice, classes)
        if name is None:
            raise LabelStudioError(f"task {task_id}: choice {choice!r} is not a class of the "
                                   f"project (classes: {', '.join(classes)})")
        names.append(name)
    if len(set(names)) > 1:
        raise LabelStudioError(f"task {task_id}: annotation {annotation.get('id')} chose "
                               f"several classes {sorted(set(names))}; medactive takes one "
                               "class per image (choice=\"single\")")
    return names[0] if names else UNSURE


def fallback_reader(user_id: int) -> str:
    """The reader name of a Label Studio user whose e-mail is not known."""
    return f"labelstudio-user-{user_id}"


def reader_of(completed_by: Any, task_id: Any) -> tuple[int, str | None]:
    """``(user id, e-mail or None)`` of an annotation's ``completed_by``: an id (webhooks, the
    API's quick export), or the ``{"id", "email", ...}`` object of a JSON export.

    Raises:
        LabelStudioError: no user id.
    """
    if isinstance(completed_by, Mapping):
        uid = _int(completed_by.get("id"), f"task {task_id}: completed_by.id")
        email = completed_by.get("email")
        return uid, (email.strip() if isinstance(email, str) and email.strip() else None)
    return _int(completed_by, f"task {task_id}: completed_by"), None


def read_annotation(annotation: Any, task: Mapping[str, Any], project: int, images: ImageIndex,
                    classes: list[str], name_of: Callable[[int, str | None], str]) -> LsAnswer:
    """One annotation of ``task`` as an :class:`LsAnswer`; ``name_of(user id, e-mail or None)``
    gives the reader's name (the ledger keeps one name per user).

    Raises:
        LabelStudioError: see :meth:`ImageIndex.image_of` and :func:`answer_of`, or a malformed
            annotation.
    """
    tid = task.get("id")
    if not isinstance(annotation, Mapping):
        raise LabelStudioError(f"task {tid}: an annotation is not an object")
    ann_id = _int(annotation.get("id"), f"task {tid}: annotation id")
    image_id = images.image_of(task)
    answer = answer_of(annotation, classes, tid)
    user, email = reader_of(annotation.get("completed_by"), tid)
    reader = name_of(user, email)
    updated = annotation.get("updated_at") or annotation.get("created_at") or ""
    return LsAnswer(project, ann_id, _int(tid, "task id"), image_id, answer, reader,
                    str(updated), user)


def project_id(value: Any) -> int:
    """Label Studio's project id from its ML-backend form ``"<id>.<created timestamp>"``, a
    bare id, or a project object ``{"id": ...}``.

    Raises:
        LabelStudioError: none of those.
    """
    if isinstance(value, Mapping):
        value = value.get("id")
    if isinstance(value, str):
        head = value.split(".", 1)[0]
        if head.isdigit():
            return int(head)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise LabelStudioError(f"no Label Studio project id in {value!r}")
