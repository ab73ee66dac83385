"""Exports of a project: CSV (one row per image), JSON (the full history) and Label Studio tasks.

* **CSV** — one row per image with an answer: the final label (empty while readers disagree and
  nobody adjudicated), how it was decided (``single`` / ``unanimous`` / ``majority`` /
  ``adjudicated`` / ``unresolved``), whether it is a training or validation image, and every
  reader's answer. Cells a spreadsheet would run as a formula are escaped; ``project import``
  reads the file back (unresolved rows are skipped).
* **JSON** — everything: classes, settings, images, rounds with their queues (rank, score,
  purpose), the append-only label and adjudication histories, and the decisions.
* **Label Studio** — a list of tasks in Label Studio's JSON import format
  (``{"data": {...}, "predictions": [...], "annotations": [...]}``, an image classification
  ``Choices`` control named ``label`` on an ``Image`` named ``image``; see
  :func:`label_studio_config`): medactive's latest predictions as pre-annotations (model version
  = the round, score = the top probability) and the decided labels as annotations.

Files are written to a temporary name and renamed: a failed export leaves nothing half-written.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from medactive.annotate.consensus import decisions
from medactive.annotate.csvcells import CSV_ID, CSV_LABEL, escape_cell
from medactive.annotate.settings import load_settings
from medactive.annotate.store import ProjectStore
from medactive.errors import StoreError

FORMATS = ("csv", "json", "labelstudio")
CSV_FIELDS = [CSV_ID, CSV_LABEL, "decided_by", "set", "answers", "annotator", "labelled_at",
              "path"]
#: Label Studio's URL form for files served by its local-files storage.
LABEL_STUDIO_PREFIX = "/data/local-files/?d="


def csv_rows(store: ProjectStore, include_paths: bool = True) -> list[dict[str, str]]:
    """One dict per image with an answer or adjudication (unescaped), in image order."""
    decided = decisions(store)
    images = {img.id: img for img in store.images()}
    val = store.validation_ids()
    latest: dict[int, tuple[str, str]] = {}
    for a in store.reader_answers():
        latest[a.image_id] = (a.annotator, a.created_at)
    adjudicated = store.adjudications()
    rows = []
    for iid, d in decided.items():
        adj = adjudicated.get(iid)
        who, when = (adj.annotator, adj.created_at) if d.status == "adjudicated" and adj \
            else latest.get(iid, ("", ""))
        if d.status in ("majority", "unanimous"):
            who = "; ".join(sorted(d.answers))
        rows.append({
            CSV_ID: images[iid].uid, CSV_LABEL: d.answer or "", "decided_by": d.status,
            "set": "validation" if iid in val else "training",
            "answers": "; ".join(f"{r}: {a}" for r, a in sorted(d.answers.items())),
            "annotator": who, "labelled_at": when,
            "path": images[iid].path if include_paths else ""})
    return rows


def csv_text(rows: list[dict[str, str]]) -> str:
    """The CSV file for ``rows`` (formula cells escaped)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: escape_cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def history(store: ProjectStore, include_paths: bool = True) -> dict[str, Any]:
    """The whole project as one JSON-ready dict."""
    classes = store.classes()
    decided = decisions(store)
    label_cols = ("id", "image_id", "kind", "class_idx", "retracts", "round_id", "annotator",
                  "created_at")
    adj_cols = ("id", "image_id", "kind", "class_idx", "annotator", "created_at")
    return {
        "app": "medactive", "format": "medactive-history", "version": 1,
        "classes": classes, "settings": load_settings(store).as_dict(),
        "images": [{"id": i.id, "uid": i.uid, "sha256": i.sha256,
                    **({"path": i.path} if include_paths else {})} for i in store.images()],
        "rounds": [{"id": r.id, "strategy": r.strategy, "params": r.params,
                    "created_at": r.created_at,
                    "queue": [{"rank": q.rank, "image_id": q.image_id, "score": q.score,
                               "purpose": q.purpose} for q in store.queue(r.id)]}
                   for r in store.rounds()],
        "labels": [dict(zip(label_cols, row, strict=True)) for row in store.history()],
        "adjudications": [dict(zip(adj_cols, row, strict=True))
                          for row in store.adjudication_history()],
        "decisions": [{"image_id": d.image_id, "answer": d.answer, "status": d.status,
                       "answers": d.answers} for d in decided.values()],
        "validation": sorted(store.validation_ids()),
    }


def label_studio_config(classes: list[str]) -> str:
    """The Label Studio labelling config the exported tasks fit (image + one choice)."""
    choices = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in classes)
    return ('<View>\n  <Image name="image" value="$image"/>\n'
            '  <Choices name="label" toName="image" choice="single" showInLine="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def _choice(name: str) -> dict[str, Any]:
    return {"from_name": "label", "to_name": "image", "type": "choices",
            "value": {"choices": [name]}}


def label_studio_tasks(store: ProjectStore, image_prefix: str = LABEL_STUDIO_PREFIX
                       ) -> list[dict[str, Any]]:
    """One Label Studio task per image: ``data.image`` = ``image_prefix + uid``, the latest
    round's prediction (if any) and the decided label (if any)."""
    classes = store.classes()
    decided = decisions(store)
    with_model = store.rounds_with_predictions()
    last = with_model[-1] if with_model else None
    probs = store.predictions(last) if last is not None else {}
    model = next((f"medactive round {r.id} ({r.strategy})" for r in store.rounds()
                  if r.id == last), None)
    tasks = []
    for img in store.images():
        task: dict[str, Any] = {"data": {"image": image_prefix + img.uid,
                                         "medactive_id": img.uid}}
        p = probs.get(img.id)
        if p is not None:
            top = int(np.argmax(p))
            task["predictions"] = [{"model_version": model, "score": round(float(p[top]), 6),
                                    "result": [_choice(classes[top])]}]
        d = decided.get(img.id)
        if d is not None and d.label is not None:
            task["annotations"] = [{"result": [_choice(classes[d.label])],
                                    "ground_truth": d.status == "adjudicated"}]
        tasks.append(task)
    return tasks


def export_text(store: ProjectStore, fmt: str, include_paths: bool = True,
                image_prefix: str = LABEL_STUDIO_PREFIX) -> str:
    """The export in format ``fmt`` (one of :data:`FORMATS`) as text."""
    if fmt == "csv":
        return csv_text(csv_rows(store, include_paths))
    if fmt == "json":
        return json.dumps(history(store, include_paths), indent=1, default=str)
    if fmt == "labelstudio":
        return json.dumps(label_studio_tasks(store, image_prefix), indent=1)
    raise StoreError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")


def write_atomically(path: Path, write: Callable[[io.TextIOBase], object]) -> None:
    """Write ``path`` through a temporary file renamed into place.

    Raises:
        StoreError: the folder is missing or not writable, or ``path`` is a folder (nothing is
            written).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise StoreError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise StoreError(f"cannot write {path}: it is a folder; give a file name")
    tmp = path.with_suffix(path.suffix + ".part")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            write(f)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None


def guess_format(path: Path, fmt: str | None) -> str:
    """``fmt`` if given, else from the suffix (``.json`` -> json, anything else -> csv)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise StoreError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
        return fmt
    return "json" if Path(path).suffix.lower() == ".json" else "csv"


def export_file(store: ProjectStore, path: Path, fmt: str | None = None,
                image_prefix: str = LABEL_STUDIO_PREFIX) -> str:
    """Write the export to ``path`` (format from ``fmt`` or the suffix); returns the format.
    A Label Studio export also writes its labelling config beside it (``<path>.xml``)."""
    fmt = guess_format(path, fmt)
    text = export_text(store, fmt, image_prefix=image_prefix)
    write_atomically(path, lambda f: f.write(text))
    if fmt == "labelstudio":
        config = label_studio_config(store.classes())
        write_atomically(Path(f"{path}.xml"), lambda f: f.write(config))
    return fmt


def describe_export(path: Path, fmt: str, n_images: int) -> str:
    """One line saying what the export at ``path`` holds, counted from the file just written
    (so it is true for each format): ``"wrote csv export of 52 labelled images (2000 in the
    project) to labels.csv"``."""
    path = Path(path)
    text = path.read_text("utf-8")
    if fmt == "csv":
        rows = sum(1 for _ in csv.DictReader(io.StringIO(text)))
        return (f"wrote csv export of {rows} labelled image(s) ({n_images} in the project) "
                f"to {path}")
    if fmt == "labelstudio":
        tasks = json.loads(text)
        labelled = sum(1 for t in tasks if t.get("annotations"))
        predicted = sum(1 for t in tasks if t.get("predictions"))
        return (f"wrote labelstudio export of {len(tasks)} task(s) ({labelled} with a label, "
                f"{predicted} with a prediction) to {path}; labelling config: {path}.xml")
    history = json.loads(text)
    return (f"wrote json export of the full history: {len(history['images'])} image(s), "
            f"{len(history['decisions'])} with a decided answer, {len(history['labels'])} "
            f"label record(s), {len(history['rounds'])} round(s) to {path}")
