"""The one reader of the CSVs that list images (and perhaps their labels).

Every command that reads such a file goes through here: ``project init --labels``,
``project import``, and the image-folder CSVs of ``coldstart`` and ``run``
(:mod:`medactive.data.folder`, :mod:`medactive.data.pool`). So they accept the same habits:

* the id and label columns are found by name, case-insensitively (:data:`ID_COLUMNS`,
  :data:`LABEL_COLUMNS`), or named explicitly (``--id-column`` / ``--label-column``); a file
  with a single column is a list of images, with or without a header row;
* class names match case-insensitively (:class:`ClassMatcher`: ``Basophil`` is ``basophil``;
  an exact match wins when two classes differ only in case);
* an image may be named by its path, by its unique file name, or by its unique file name
  without extension (:func:`match_image_names`); a name that fits several images is refused,
  naming them;
* an image listed twice with the same label is taken once; with two different labels the file
  is refused, naming the rows (:func:`merge_duplicates`).

Text handling (UTF-8 with or without a byte-order mark, nothing guessed) is
:func:`medactive.data.csvfile.read_csv`'s. Row numbers in messages are the file's line numbers
(the header is line 1), what a spreadsheet or an editor shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from medactive.data.csvfile import CsvRow, read_csv
from medactive.errors import DataError

#: Auto-detected id columns (case-insensitive), in order of preference.
ID_COLUMNS = ("image", "image_id", "image_name", "imageid", "id", "path", "image_path",
              "filepath", "file", "filename", "file_name")
#: Auto-detected label columns (case-insensitive), in order of preference.
LABEL_COLUMNS = ("label", "dx", "diagnosis", "level", "class")
#: File suffixes that make a lone header cell an image name (a list without a header row).
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".bmp")

LabelPolicy = Literal["required", "optional", "ignore"]


@dataclass(frozen=True)
class ListedImage:
    """One data row: its line number, the image as the file names it, its label cell (``""``
    when there is none) and every stripped cell."""

    line: int
    name: str
    label: str
    cells: dict[str, str]


@dataclass(frozen=True)
class ImageList:
    """A CSV of images: which columns were used, and the rows in file order."""

    path: Path
    header: list[str]
    id_column: str
    label_column: str | None
    rows: list[ListedImage]


def find_column(header: Sequence[str], candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` present in ``header`` (case-insensitive), or None."""
    lower = {h.lower(): h for h in header}
    return next((lower[c.lower()] for c in candidates if c.lower() in lower), None)


def _named_column(path: Path, header: Sequence[str], name: str, option: str) -> str:
    found = find_column(header, [name])
    if found is None:
        raise DataError(f"{path}: no column {name!r} ({option}); columns: {', '.join(header)}")
    return found


def read_image_list(
    path: str | Path,
    *,
    id_column: str | None = None,
    label_column: str | None = None,
    labels: LabelPolicy = "optional",
    what: str = "CSV file",
) -> ImageList:
    """Read a CSV naming images, and perhaps their labels.

    Args:
        path: the file (UTF-8, byte-order mark or not).
        id_column: the column naming each image (default: the first of :data:`ID_COLUMNS`
            present; a single-column file uses its one column).
        label_column: the column of labels (default: the first of :data:`LABEL_COLUMNS`
            present, other than the id column).
        labels: ``"required"`` (no label column is an error), ``"optional"`` (None when there is
            none) or ``"ignore"`` (never look for one).
        what: how to call the file in the "not found" message.

    Returns:
        The columns used and the non-blank rows; a row's ``label`` is ``""`` without a label
        column or when its cell is empty.

    Raises:
        DataError: unreadable file, no rows, no id (or required label) column, a named column
            that is not there, or an empty image name (naming its row).
    """
    path = Path(path)
    header, raw = read_csv(path, what)
    if len(header) == 1 and header[0].lower().endswith(_IMAGE_SUFFIXES) and id_column is None:
        # `ls > images.csv`: a list without a header row; its first line is an image too
        column = header[0]
        raw = [CsvRow(1, {column: column}), *raw]
        header = ["image"]
        raw = [CsvRow(r.line, {"image": r.cells.get(column, "")}) for r in raw]
    if not raw:
        raise DataError(f"{path}: the CSV has a header but no rows")
    if id_column is not None:
        id_col = _named_column(path, header, id_column, "--id-column")
    else:
        found = find_column(header, ID_COLUMNS)
        if found is None and len(header) == 1:
            found = header[0]
        if found is None:
            raise DataError(
                f"{path}: no image id column found (columns: {', '.join(header)}); name it one "
                f"of {', '.join(ID_COLUMNS)}, or pass --id-column")
        id_col = found
    label_col = None
    if label_column is not None:
        label_col = _named_column(path, header, label_column, "--label-column")
        if label_col == id_col:
            raise DataError(f"{path}: the id and label columns are both {id_col!r}")
    elif labels != "ignore":
        label_col = find_column([h for h in header if h != id_col], LABEL_COLUMNS)
        if label_col is None and labels == "required":
            raise DataError(
                f"{path}: no label column found (columns: {', '.join(header)}); name it one of "
                f"{', '.join(LABEL_COLUMNS)}, or pass --label-column")
    rows = []
    for row in raw:
        name = row.cells.get(id_col, "")
        if not name:
            raise DataError(f"{path}: row {row.line}: empty image id in column {id_col!r}")
        label = row.cells.get(label_col, "") if label_col is not None else ""
        rows.append(ListedImage(row.line, name, label, row.cells))
    return ImageList(path, header, id_col, label_col, rows)


class ClassMatcher:
    """Class names matched as a person means them: exactly, else ignoring case (``Basophil``
    is ``basophil``). ``unsure`` may be accepted as an answer too."""

    def __init__(self, classes: Sequence[str], extra: Sequence[str] = ()) -> None:
        self.classes = list(classes)
        self._exact = {c: c for c in [*classes, *extra]}
        self._folded: dict[str, list[str]] = {}
        for name in [*classes, *extra]:
            self._folded.setdefault(name.casefold(), []).append(name)

    def __call__(self, value: str) -> str | None:
        """The class ``value`` names, or None when it names none or several (``A`` when the
        classes are ``a`` and ``A`` is an exact match, so it is not ambiguous)."""
        if value in self._exact:
            return self._exact[value]
        found = self._folded.get(value.casefold(), [])
        return found[0] if len(found) == 1 else None


def _stem(name: str) -> str:
    path = PurePosixPath(name)
    return path.stem if path.suffix else path.name


def match_image_names(names: Sequence[str], image_ids: Sequence[str],
                      source: str | Path) -> dict[str, str]:
    """Map the images a file names to registered image ids.

    A name matches an id when it equals it (backslashes read as ``/``), else when it is the
    file name of exactly one id (``img001.png`` for ``ward3/img001.png``), else when it is the
    file name without extension of exactly one id (``img001``).

    Args:
        names: the names as written (duplicates allowed).
        image_ids: the registered ids (relative POSIX paths, or dataset ids such as
            ``train-17``).
        source: the file, for messages.

    Returns:
        ``{name: image_id}`` for every distinct name.

    Raises:
        DataError: one line naming how many names match no image (with examples) and which
            names match several (with their candidates); nothing is returned then.
    """
    exact = set(image_ids)
    by_file: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for uid in image_ids:
        base = PurePosixPath(uid).name
        by_file.setdefault(base, []).append(uid)
        by_stem.setdefault(_stem(base), []).append(uid)
    out: dict[str, str] = {}
    unknown: list[str] = []
    ambiguous: list[tuple[str, list[str]]] = []
    for name in dict.fromkeys(names):
        key = name.replace("\\", "/")
        if key in exact:
            out[name] = key
            continue
        candidates = by_file.get(key) or by_stem.get(key) or []
        if len(candidates) == 1:
            out[name] = candidates[0]
        elif candidates:
            ambiguous.append((name, candidates))
        else:
            unknown.append(name)
    problems = []
    if unknown:
        problems.append(f"{len(unknown)} unknown image id(s), not in the project (e.g. "
                        f"{', '.join(repr(u) for u in unknown[:3])})")
    if ambiguous:
        shown = "; ".join(f"{n!r} could be {' or '.join(c[:3])}"
                          + (f" (+{len(c) - 3} more)" if len(c) > 3 else "")
                          for n, c in ambiguous[:3])
        problems.append(f"{len(ambiguous)} ambiguous name(s): {shown}; give the path")
    if problems:
        raise DataError(f"{source}: " + "; ".join(problems))
    return out


def merge_duplicates(source: str | Path, keys: Sequence[str], labels: Sequence[str],
                     lines: Sequence[int], what: str = "labels") -> list[int]:
    """Positions of the rows to keep: the first row of each image, its label taken from any
    row that has one.

    Rows naming the same image (same ``key``) with the same label, or with an empty label, are
    one row; two different labels for one image are refused.

    Args:
        source: the file, for messages.
        keys: per row, the image it names (after matching names to images).
        labels: per row, its label in canonical form (``""``: none).
        lines: per row, its line number.
        what: what the ``labels`` are, for the message (``labels``, ``splits``).

    Returns:
        positions in ``keys`` (first occurrences, file order); when a later duplicate carries
        the label, the caller should take it from :func:`merged_labels`.

    Raises:
        DataError: naming up to three conflicting images with their rows and labels.
    """
    first: dict[str, int] = {}
    label_of: dict[str, tuple[str, int]] = {}
    conflicts: list[str] = []
    for pos, (key, label, line) in enumerate(zip(keys, labels, lines, strict=True)):
        first.setdefault(key, pos)
        if not label:
            continue
        seen = label_of.setdefault(key, (label, line))
        if seen[0] != label:
            conflicts.append(f"{key!r} is {seen[0]!r} on row {seen[1]} but {label!r} on row "
                             f"{line}")
    if conflicts:
        more = f" (and {len(conflicts) - 3} more)" if len(conflicts) > 3 else ""
        raise DataError(f"{source}: conflicting {what} for the same image: "
                        f"{'; '.join(conflicts[:3])}{more}")
    return sorted(first.values())


def merged_labels(keys: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """``{key: label}``: the label each image's rows give (after :func:`merge_duplicates` has
    checked that they agree)."""
    out: dict[str, str] = {}
    for key, label in zip(keys, labels, strict=True):
        if label:
            out.setdefault(key, label)
    return out
