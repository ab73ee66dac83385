"""Validating class labels from files before anything is allocated for them.

Labels arrive as numbers (an ``.npz`` array, an integer CSV column). They are checked against the
declared class list when there is one, otherwise a class list ``0..max`` is inferred, with two
guards so a typo never becomes thousands of classes (or, with a label of 2**40, 21 GB of class
names before the kernel kills the process):

* at most :data:`MAX_INFERRED_CLASSES` inferred classes;
* at least half of the inferred classes must actually occur. A dataset missing one grade of
  five still loads (Kaggle DR subsets often lack grade 3), while ``0..7`` plus a stray ``99``
  (100 classes, 91 of them empty) is refused with the advice to declare the classes.

Fractional and NaN labels are errors, never truncated; text labels in a numeric array are errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from medactive.errors import DataError

MAX_INFERRED_CLASSES = 10_000


def check_label_array(labels: np.ndarray, where: str, n_classes: int | None = None) -> np.ndarray:
    """Validate ``(N,)`` or ``(N, 1)`` numeric labels and return them as int64 ``(N,)``.

    Args:
        labels: the array as stored (any dtype).
        where: what to name in messages (``file.npz: train_labels``).
        n_classes: the declared number of classes, or None when they are inferred (then only
            the :data:`MAX_INFERRED_CLASSES` bound applies here; see :func:`infer_class_count`).

    Raises:
        DataError: text labels, NaN or infinite values, fractional values, negative labels, or
            a label outside the class list.
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"{where}: labels must be one class index per image, got shape "
                        f"{labels.shape}")
    kind = labels.dtype.kind
    if kind not in "biuf":
        raise DataError(f"{where}: labels are {labels.dtype} ({_example(labels)}); expected "
                        "integer class indices")
    if kind == "f":
        bad = ~np.isfinite(labels)
        if bad.any():
            raise DataError(f"{where}: label {labels[bad][0]} at position {int(np.argmax(bad))};"
                            " expected integer class indices")
        fractional = labels != np.floor(labels)
        if fractional.any():
            raise DataError(f"{where}: fractional label {labels[fractional][0]} at position "
                            f"{int(np.argmax(fractional))}; expected integer class indices")
    if labels.size == 0:
        return labels.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{where}: contains negative labels (e.g. {labels.min()})")
    limit = n_classes if n_classes is not None else MAX_INFERRED_CLASSES
    top = labels.max()
    if top >= limit:
        if n_classes is not None:
            raise DataError(f"{where}: label {_as_int(top)} out of range for {n_classes} classes "
                            f"(valid: 0..{n_classes - 1})")
        raise DataError(
            f"{where}: label {_as_int(top)} is too large (class lists are inferred only up to "
            f"{MAX_INFERRED_CLASSES} classes); declare the class names if it is intended"
        )
    return labels.astype(np.int64)


def infer_class_count(label_arrays: Sequence[np.ndarray], where: str) -> int:
    """``max + 1`` over already-checked int64 label arrays (unknown ``-1`` ignored).

    Raises:
        DataError: fewer than half of the classes ``0..max`` occur (a stray label).
    """
    known = np.concatenate([np.asarray(a, dtype=np.int64).ravel() for a in label_arrays])
    known = known[known >= 0]
    if known.size == 0:
        return 0
    n = int(known.max()) + 1
    present = np.unique(known)
    if present.size * 2 < n:
        missing = np.setdiff1d(np.arange(n), present)
        raise DataError(
            f"{where}: label {n - 1} implies {n} classes but only {present.size} of them occur "
            f"(never: {_listing(missing)}); a stray label? Declare the class names if the "
            "classes really are 0.." + str(n - 1)
        )
    return n


def _as_int(value: float | np.number) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _example(labels: np.ndarray) -> str:
    return f"e.g. {labels.ravel()[0]!r}" if labels.size else "empty"


def _listing(values: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f", ... ({values.size} in all)" if values.size > limit else "")
