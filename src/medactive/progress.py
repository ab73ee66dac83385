"""Progress bars that stay quiet in tests and non-interactive logs when asked."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_bar(iterable: Iterable[T], desc: str = "", unit: str = "it", enabled: bool = True,
                 total: int | None = None) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar (ETA and throughput) unless disabled.

    ``$MEDACTIVE_PROGRESS=0`` turns every bar off (CI logs, test runs).
    """
    if not enabled or os.environ.get("MEDACTIVE_PROGRESS", "1") == "0":
        return iterable
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True)
