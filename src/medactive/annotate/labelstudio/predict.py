"""What the ML backend answers to Label Studio's ``/predict``: medactive's order as the
prediction score, and (when the project allows it) the round model's class as pre-annotation.

**The score is medactive's priority, not a confidence.** Label Studio Community orders tasks by
*prediction score* in its Data Manager (and its "uncertainty sampling" serves the lowest score
first), so every task gets

* ``rank / (queue size + 1)`` when its image is queried in the latest round (rank 1, the image
  medactive wants labelled first, gets the lowest score), and
* ``1.0`` for every other image,

so ordering by *Prediction score* **ascending** serves the latest round's images in medactive's
order, and a Data Manager filter *Prediction score < 1* shows only them.

**The model version names the round** (``medactive-round-<id>``): Label Studio asks again only for
tasks without a prediction of the backend's current version, so a new round refreshes every
score, and the project's *model version* setting must name it for the Data Manager to use those
scores (the backend sets it when it can reach Label Studio's API; docs/integrations.md).

**The class is shown only if the project says so.** medactive's default
(``show_predictions = after``) hides the model's guess until the reader has answered, against
anchoring; a pre-annotation would show it first, so the prediction then carries the score alone.
With ``show_predictions = first`` it also carries the round model's most probable class, as the
config's choice, with the model's probability as that result's score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from medactive.annotate.labelstudio.tasks import ImageIndex, LabelStudioError, choice_control
from medactive.annotate.labelstudio.tasks import check_config_classes as config_choices
from medactive.annotate.settings import load_settings
from medactive.annotate.store import ProjectStore

#: Score of an image that the latest round does not query.
NOT_QUERIED = 1.0


def model_version(store: ProjectStore) -> str:
    """``medactive-round-<latest round id>`` (``medactive-no-round`` before the first query)."""
    latest = store.latest_round()
    return "medactive-no-round" if latest is None else f"medactive-round-{latest.id}"


def priorities(store: ProjectStore) -> dict[int, float]:
    """``image id -> score`` for the latest round's queued images (rank 1 lowest; see the module
    docstring); every other image scores :data:`NOT_QUERIED`."""
    latest = store.latest_round()
    if latest is None:
        return {}
    queue = store.queue(latest.id)
    return {q.image_id: round(q.rank / (len(queue) + 1), 6) for q in queue}


def predictions(store: ProjectStore, tasks: Sequence[Any], label_config: str | None,
                images: ImageIndex) -> list[dict[str, Any]]:
    """One Label Studio prediction per task, in order (``{"model_version", "score",
    "result"}``); a task whose image is not in the project gets an empty prediction without a
    score (it sorts last).

    Raises:
        LabelStudioError: the labelling config does not fit the project (no ``Choices`` for
            its classes), or ``tasks`` is not a list of task objects.
    """
    classes = store.classes()
    control = choice_control(label_config)
    choice = config_choices(control, classes)
    version = model_version(store)
    score = priorities(store)
    latest = store.latest_round()
    show = load_settings(store).show_predictions == "first"
    ids: list[int | None] = []
    for task in tasks:
        if not isinstance(task, Mapping):
            raise LabelStudioError("/predict: 'tasks' must be a list of task objects")
        try:
            ids.append(images.image_of(task))
        except LabelStudioError:
            ids.append(None)
    probs: dict[int, np.ndarray] = {}
    if show and latest is not None:
        probs = store.predictions(latest.id, [i for i in ids if i is not None])
    out: list[dict[str, Any]] = []
    for image_id in ids:
        if image_id is None:
            out.append({"model_version": version, "score": None, "result": []})
            continue
        result: list[dict[str, Any]] = []
        p = probs.get(image_id)
        if p is not None:
            top = int(np.argmax(p))
            result.append({"from_name": control.name, "to_name": control.to_name,
                           "type": "choices", "value": {"choices": [choice[classes[top]]]},
                           "score": round(float(p[top]), 6)})
        out.append({"model_version": version, "score": score.get(image_id, NOT_QUERIED),
                    "result": result})
    return out
