"""Labels files in and out of a project (``project init --labels``, ``project import``,
``project export``): reading a CSV (or another registered format) against a project's images and
classes, importing it in one transaction, and writing the CSV export.

Split from :mod:`medactive.annotate.project` (initialising a project, its encoder, status).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from medactive.annotate.csvcells import unescape_cell
from medactive.annotate.store import ProjectStore
from medactive.data.labelcsv import (
    ClassMatcher,
    match_image_names,
    merge_duplicates,
    read_image_list,
)
from medactive.errors import DataError

#: Where imported labels go: the training labels, or the project's validation sample.
IMPORT_SETS = ("training", "validation")


@dataclass(frozen=True)
class LabelFileOptions:
    """How to read a labels file: the CSV's id and label columns (default: detected)."""

    id_column: str | None = None
    label_column: str | None = None


@dataclass(frozen=True)
class LabelRows:
    """What a labels file says, matched to a project: ``(image id, answer)`` rows (answer: a
    class name as the project spells it, or ``unsure``), one per image, and how many rows of
    the file were duplicates taken once or open disagreements skipped."""

    rows: list[tuple[str, str]]
    duplicates: int = 0
    unresolved: int = 0


def read_labels_csv(path: Path, image_ids: Sequence[str], classes: Sequence[str],
                    options: LabelFileOptions | None = None) -> LabelRows:
    """Read a labels CSV for a project with ``image_ids`` and ``classes``, through the one CSV
    reader (:mod:`medactive.data.labelcsv`).

    * columns: detected (``image_id``/``image``/``filename``/... and ``label``/``class``/
      ``diagnosis``/...) or named in ``options``; other columns are ignored;
    * images: by id, or by a file name (with or without extension) that is unique in the
      project; ambiguous and unknown names are refused, named;
    * classes: case-insensitively (``Basophil`` is ``basophil``), or ``unsure``;
    * the same image twice with the same label is taken once; with two labels the file is
      refused, naming the rows;
    * cells escaped against spreadsheet formulas by :func:`export_csv` are read back
      unescaped, and a medactive export's open disagreements (empty label, ``decided_by`` =
      ``unresolved``) are skipped.

    Raises:
        DataError: one line naming every problem found; nothing is returned then.
    """
    opts = options or LabelFileOptions()
    table = read_image_list(path, id_column=opts.id_column, label_column=opts.label_column,
                            labels="required", what="labels file")
    decided_by = next((h for h in table.header if h.lower() == "decided_by"), None)
    kept, unresolved = [], 0
    for row in table.rows:
        label = unescape_cell(row.label)
        if not label and decided_by and row.cells.get(decided_by) == "unresolved":
            unresolved += 1  # a medactive export's open disagreement: nothing to import yet
            continue
        if not label:
            raise DataError(f"{path}: row {row.line}: empty label in column "
                            f"{table.label_column!r} for {row.name!r}")
        kept.append((row.line, unescape_cell(row.name), label))
    if not kept:
        return LabelRows([], 0, unresolved)
    uid_of = match_image_names([name for _, name, _ in kept], list(image_ids), path)
    match = ClassMatcher(list(classes), extra=("unsure",))
    unknown = sorted({label for _, _, label in kept if match(label) is None})
    if unknown:
        raise DataError(f"{path}: unknown class(es) {', '.join(repr(u) for u in unknown[:5])}"
                        f"{' ...' if len(unknown) > 5 else ''} (classes: {', '.join(classes)}; "
                        "case does not matter)")
    uids = [uid_of[name] for _, name, _ in kept]
    answers = [str(match(label)) for _, _, label in kept]
    keep = merge_duplicates(path, uids, answers, [line for line, _, _ in kept])
    return LabelRows([(uids[k], answers[k]) for k in keep], len(kept) - len(keep), unresolved)


#: Readers of labels files by suffix: ``reader(path, image_ids, classes, options)``. Another
#: format (a Label Studio JSON export) plugs in here.
LABEL_READERS: dict[str, Callable[[Path, Sequence[str], Sequence[str], LabelFileOptions],
                                  LabelRows]] = {".csv": read_labels_csv}


def read_labels_file(path: Path, image_ids: Sequence[str], classes: Sequence[str],
                     options: LabelFileOptions | None = None) -> LabelRows:
    """Read a labels file with the reader its suffix names (:data:`LABEL_READERS`).

    Raises:
        DataError: a file type no reader is registered for, or the reader's refusal.
    """
    path = Path(path)
    reader = LABEL_READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(f"{path}: cannot import {path.suffix or 'a file without suffix'} "
                        f"files; known: {', '.join(sorted(LABEL_READERS))}")
    return reader(path, image_ids, classes, options or LabelFileOptions())


def import_labels_file(store: ProjectStore, path: Path, annotator: str = "import", *,
                       options: LabelFileOptions | None = None,
                       label_set: str = "training") -> LabelRows:
    """Import a labels file into ``store``: every row checked first, then one transaction.

    ``label_set`` ``validation`` puts the images into the project's validation sample
    (:meth:`~medactive.annotate.answers.AnswerRecords.import_labels`).

    Raises:
        DataError / StoreError: an unknown set, or any problem in the file (nothing written).
    """
    if label_set not in IMPORT_SETS:
        raise DataError(f"--set must be training or validation, got {label_set!r}")
    store.check_writable()
    result = read_labels_file(path, [img.uid for img in store.images()], store.classes(),
                              options)
    if not result.rows:  # e.g. an export holding only open disagreements: nothing to write
        return result
    store.import_labels(result.rows, annotator, validation=label_set == "validation",
                        source=Path(path).name)
    return result


def export_csv(store: ProjectStore, path: Path | None) -> list[dict[str, str]]:
    """Write one CSV row per image with an answer (:mod:`medactive.annotate.exports`): final
    label, how it was decided, training or validation, every reader's answer, who and when, the
    file's path. Cells starting with ``= + - @`` (tab, CR) are written with a leading ``'`` so
    a spreadsheet shows them instead of running them; :func:`read_labels_csv` strips it again.
    Returns the rows (unescaped); writes nothing when ``path`` is None.

    Raises:
        StoreError: the output folder is missing or not writable (nothing is written).
    """
    from medactive.annotate.exports import csv_rows, csv_text, write_atomically

    rows = csv_rows(store)
    if path is not None:
        text = csv_text(rows)
        write_atomically(Path(path), lambda f: f.write(text))
    return rows
