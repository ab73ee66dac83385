"""Progress bars that stay quiet in tests and non-interactive logs when asked, and status lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """False when ``$MEDACTIVE_PROGRESS=0`` (CI logs, test runs)."""
    return os.environ.get("MEDACTIVE_PROGRESS", "1") != "0"


def progress_bar(iterable: Iterable[T], desc: str = "", unit: str = "it", enabled: bool = True,
                 total: int | None = None) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar (ETA and throughput) unless disabled.

    ``$MEDACTIVE_PROGRESS=0`` turns every bar off (CI logs, test runs).
    """
    if not enabled or not progress_enabled():
        return iterable
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True)


def note(message: str) -> None:
    """Print one status line on stderr (through tqdm, so an open bar is not torn apart)."""
    tqdm.write(message, file=sys.stderr)
