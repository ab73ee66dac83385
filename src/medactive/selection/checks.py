"""One check for scalar parameters and one for budgets, shared by every strategy.

Modelled on scikit-activeml's ``check_scalar`` (``skactiveml/utils/_validation.py``: a name, a
target type, bounds, one message shape), with two changes for medactive: booleans are refused
where an integer or a number is expected (``True`` is an ``int`` to Python, never a budget), and
the error is a :class:`~medactive.errors.MedactiveError` (one line, exit code 2 in the CLI)
rather than a ``TypeError`` / ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

from medactive.errors import MedactiveError, StrategyError

_KINDS = {int: "an integer", float: "a number"}


def _is_kind(value: Any, kind: type) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False  # a flag is never a count or a size, whatever Python's int says
    if kind is int:
        return isinstance(value, (int, np.integer))
    return isinstance(value, (int, float, np.integer, np.floating))


def _describe_bounds(min_val: float | None, max_val: float | None, min_inclusive: bool,
                     max_inclusive: bool) -> str:
    if min_val is not None and max_val is not None:
        return (f" in {'[' if min_inclusive else '('}{min_val:g}, "
                f"{max_val:g}{']' if max_inclusive else ')'}")
    if min_val is not None:
        return f" {'>=' if min_inclusive else '>'} {min_val:g}"
    if max_val is not None:
        return f" {'<=' if max_inclusive else '<'} {max_val:g}"
    return ""


def check_scalar(
    value: Any,
    name: str,
    kind: type[int] | type[float],
    *,
    min_val: float | None = None,
    max_val: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_none: bool = False,
    error: type[MedactiveError] = StrategyError,
) -> None:
    """Raise ``error`` unless ``value`` is a ``kind`` within the bounds.

    Args:
        value: the parameter value to check.
        name: the parameter's name, as the user wrote it (the message starts with it).
        kind: ``int`` (Python or NumPy integers) or ``float`` (any real number, integers
            included). Booleans are refused for both; NaN and infinities for ``float``.
        min_val, max_val: bounds (``None``: unbounded on that side).
        min_inclusive, max_inclusive: whether each bound itself is allowed.
        allow_none: ``None`` is a valid value (a parameter whose default is computed).
        error: the exception class (``StrategyError`` for strategies, ``ConfigError`` for
            configurations).

    Raises:
        ``error``: one line, ``"<name> must be <kind><bounds>, got <value!r>"``, e.g.
        ``"budget must be an integer >= 1, got True"``.
    """
    if value is None and allow_none:
        return
    ok = _is_kind(value, kind)
    if ok and kind is float:
        ok = math.isfinite(float(value))
    if ok and min_val is not None:
        ok = value >= min_val if min_inclusive else value > min_val
    if ok and max_val is not None:
        ok = value <= max_val if max_inclusive else value < max_val
    if not ok:
        bounds = _describe_bounds(min_val, max_val, min_inclusive, max_inclusive)
        none = " or None" if allow_none else ""
        raise error(f"{name} must be {_KINDS[kind]}{bounds}{none}, got {value!r}")


def check_choice(value: Any, name: str, choices: Collection[Any], *,
                 error: type[MedactiveError] = StrategyError) -> None:
    """Raise ``error`` unless ``value`` is one of ``choices`` (listed in the message)."""
    if not any(value == c and type(value) is type(c) for c in choices):
        listed = ", ".join(repr(c) for c in choices)
        raise error(f"{name} must be one of {listed}, got {value!r}")


def check_budget(budget: Any, available: int, pool: str = "pool") -> None:
    """Raise :class:`StrategyError` unless ``budget`` is an integer in ``[1, available]``.

    The one budget check of cold start (``pool="pool"``, every image) and acquisition
    (``pool="unlabelled pool"``): ``True``, ``2.0`` and ``0`` are refused alike.

    Args:
        budget: how many images were asked for.
        available: how many can be picked (the pool, or its unlabelled part).
        pool: what ``available`` counts, for the message.
    """
    check_scalar(budget, "budget", int, min_val=1)
    if budget > available:
        raise StrategyError(f"budget {budget} is larger than the {pool}: it must be between 1 "
                            f"and the {pool} size ({available})")
