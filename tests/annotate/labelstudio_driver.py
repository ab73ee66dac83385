"""Drives a real Label Studio through ``label-studio-sdk``, for tests/annotate/test_labelstudio_live.py.

It runs in Label Studio's own environment (``.venv-labelstudio``, made by
``make labelstudio-env``: Label Studio pins far more packages than medactive's), one process per
test module, and answers one JSON command per line on stdin with one JSON line on stdout
(``{"ok": ...}`` or ``{"error": ...}``), so the sdk is imported once. Nothing here is medactive:
it is what a Label Studio user does by hand (create a project, connect the backend, label).
"""

from __future__ import annotations

import base64
import json
import sys
import traceback
from typing import Any

import requests
from label_studio_sdk import LabelStudio

STATE: dict[str, Any] = {}


def ls() -> LabelStudio:
    return STATE["client"]


def api(method: str, path: str, **kwargs: Any) -> Any:
    """A REST call the sdk does not wrap (the labelling stream's next task)."""
    response = requests.request(method, STATE["url"] + path, timeout=120,
                                headers={"Authorization": f"Token {STATE['key']}"}, **kwargs)
    response.raise_for_status()
    return response.json()


def connect(url: str, key: str) -> dict[str, Any]:
    STATE.update(url=url, key=key, client=LabelStudio(base_url=url, api_key=key))
    me = ls().users.whoami()
    return {"user": me.id, "email": me.email}


def create_project(title: str, config: str, tasks_file: str, images: str) -> dict[str, Any]:
    """A project with medactive's labelling config and exported tasks, and the image folder as
    local-files storage (not synced: the tasks come from the export)."""
    project = ls().projects.create(title=title, label_config=config)
    with open(tasks_file, encoding="utf-8") as f:
        tasks = json.load(f)
    ls().projects.import_tasks(id=project.id, request=tasks)
    ls().import_storage.local.create(project=project.id, path=images, title="images",
                                     use_blob_urls=True)
    return {"project": project.id, "tasks": len(tasks)}


def connect_backend(project: int, url: str, token: str) -> dict[str, Any]:
    """Settings > Model > Connect Model (Basic Authentication), then the webhook Label Studio
    made for it gets the same credentials (Settings > Webhooks > Headers)."""
    ml = ls().ml.create(url=url, project=project, title="medactive", auth_method="BASIC_AUTH",
                        basic_auth_user="labelstudio", basic_auth_pass=token)
    header = "Basic " + base64.b64encode(f"labelstudio:{token}".encode()).decode()
    hooks = [h for h in ls().webhooks.list(project=project) if h.url == url.rstrip("/") + "/webhook"]
    for hook in hooks:
        ls().webhooks.update(id=hook.id, url=hook.url, headers={"Authorization": header})
    return {"ml": ml.id, "state": ml.state, "webhooks": len(hooks)}


def order_view(project: int) -> dict[str, Any]:
    """The Data Manager tab the docs describe: ordered by prediction score, ascending, showing
    only scores below 1 (the latest round's images)."""
    shown = ("tasks:id", "tasks:data.image", "tasks:data.medactive_id", "tasks:predictions_score")
    hidden = [f"tasks:{c}" for c in (
        "inner_id", "completed_at", "total_annotations", "cancelled_annotations",
        "total_predictions", "annotators", "annotations_results", "annotations_ids",
        "predictions_model_versions", "predictions_results", "file_upload", "storage_filename",
        "created_at", "updated_at", "updated_by", "avg_lead_time", "draft_exists")]
    assert not set(hidden) & set(shown)
    view = ls().views.create(project=project, data={
        "title": "medactive order", "ordering": ["tasks:predictions_score"],
        "hiddenColumns": {"explore": hidden, "labeling": hidden},
        "filters": {"conjunction": "and", "items": [{
            "filter": "filter:tasks:predictions_score", "operator": "less", "type": "Number",
            "value": 1}]}})
    return {"view": view.id}


def view_tasks(view: int) -> dict[str, Any]:
    """The tab's tasks in its order, with their scores and model versions."""
    data = api("GET", "/api/tasks", params={"view": view, "fields": "all", "page_size": 1000})
    return {"tasks": [{"id": t["id"], "medactive_id": t["data"].get("medactive_id"),
                       "score": t.get("predictions_score"), "labelled": t.get("is_labeled")}
                      for t in data["tasks"]]}


def next_task(project: int, view: int) -> dict[str, Any]:
    """What the labelling stream opens next (Label All Tasks from the tab)."""
    task = api("GET", f"/api/projects/{project}/next", params={"view": view})
    return {"id": task["id"], "medactive_id": task["data"].get("medactive_id")}


def annotate(task: int, choice: str | None, cancelled: bool = False) -> dict[str, Any]:
    result = [] if choice is None else [{"from_name": "label", "to_name": "image",
                                         "type": "choices", "value": {"choices": [choice]}}]
    ann = ls().annotations.create(id=task, result=result, was_cancelled=cancelled)
    return {"annotation": ann.id}


def update(annotation: int, choice: str) -> dict[str, Any]:
    ls().annotations.update(id=annotation, result=[{
        "from_name": "label", "to_name": "image", "type": "choices",
        "value": {"choices": [choice]}}])
    return {"annotation": annotation}


def project_state(project: int) -> dict[str, Any]:
    p = ls().projects.get(id=project)
    return {"model_version": p.model_version}


def export(project: int, path: str, expand_users: bool = False) -> dict[str, Any]:
    """An export snapshot in JSON (Export > JSON); ``expand_users``: each annotation's
    ``completed_by`` as the user (id, e-mail, names) instead of the bare id."""
    options = {"annotations__completed_by": {"only_id": False}} if expand_users else None
    snapshot = ls().projects.exports.create(id=project, title="medactive round trip",
                                            **({"serialization_options": options}
                                               if options else {}))
    data = b"".join(ls().projects.exports.download(id=project, export_pk=snapshot.id,
                                                   export_type="JSON"))
    with open(path, "wb") as f:
        f.write(data)
    return {"tasks": len(json.loads(data))}


COMMANDS = {f.__name__: f for f in (connect, create_project, connect_backend, order_view,
                                    view_tasks, next_task, annotate, update, project_state,
                                    export)}


def main() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"ok": COMMANDS[request.pop("command")](**request)}
        except Exception as exc:
            reply = {"error": f"{type(exc).__name__}: {exc}",
                     "trace": traceback.format_exc()[-2000:]}
        sys.stdout.write(json.dumps(reply, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
