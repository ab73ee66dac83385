"""Progress bars that stay quiet in tests and non-interactive logs when asked, and status lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """False when ``$MEDACTIVE_PROGRESS=0`` (CI logs, test runs)."""
    return os.environ.get("MEDACTIVE_PROGRESS", "1") != "0"


def progress_bar(iterable: Iterable[T], desc: str = "", unit: str = "it", enabled: bool = True,
                 total: int | None = None) -> Iterable[T]:
    """Wrap ``iterable`` in a tqdm bar (ETA and throughput) unless disabled.

    ``$MEDACTIVE_PROGRESS=0`` turns every bar off (CI logs, test runs). A listener installed
    with :func:`listen` hears every step either way.
    """
    iterable = _heard(iterable, desc, total)
    if not enabled or not progress_enabled():
        return iterable
    return tqdm(iterable, desc=desc, unit=unit, total=total, leave=False, dynamic_ncols=True)


# (desc, steps done, total steps or None) -> None; set by listen() for the current context
_LISTENER: ContextVar[Callable[[str, int, int | None], None] | None] = ContextVar(
    "medactive_progress_listener", default=None)


@contextmanager
def listen(callback: Callable[[str, int, int | None], None]) -> Iterator[None]:
    """While the block runs, every :func:`progress_bar` step calls ``callback(desc, done,
    total)`` (a background job reports its progress this way, bars shown or not)."""
    token = _LISTENER.set(callback)
    try:
        yield
    finally:
        _LISTENER.reset(token)


def _heard(iterable: Iterable[T], desc: str, total: int | None) -> Iterable[T]:
    callback = _LISTENER.get()
    if callback is None:
        return iterable
    size = total if total is not None else (len(iterable) if isinstance(iterable, Sized)
                                            else None)

    def steps() -> Iterator[T]:
        callback(desc, 0, size)
        for done, item in enumerate(iterable, start=1):
            yield item
            callback(desc, done, size)

    return steps()


def note(message: str) -> None:
    """Print one status line on stderr (through tqdm, so an open bar is not torn apart)."""
    tqdm.write(message, file=sys.stderr)


class ProgressCounter:
    """A progress bar advanced by hand, for work counted in units that do not come one per
    loop step (images written in blocks of changing size, batches across epochs). Made by
    :func:`progress_counter`."""

    def __init__(self, desc: str, total: int, initial: int, unit: str, enabled: bool) -> None:
        self.desc, self.total, self.done = desc, total, initial
        self._callback = _LISTENER.get()
        self._bar = tqdm(desc=desc, total=total, initial=initial, unit=unit, leave=False,
                         dynamic_ncols=True) if enabled and progress_enabled() else None
        if self._callback is not None:
            self._callback(desc, initial, total)

    @property
    def shown(self) -> bool:
        """True when a bar is drawn (worth computing what it shows)."""
        return self._bar is not None

    def advance(self, n: int = 1, **postfix: str) -> None:
        """Count ``n`` more units done; ``postfix`` values are shown after the bar."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
        if self._callback is not None:
            self._callback(self.desc, self.done, self.total)

    def close(self) -> None:
        """Remove the bar from the terminal."""
        if self._bar is not None:
            self._bar.close()


@contextmanager
def progress_counter(desc: str, total: int, initial: int = 0, unit: str = "it",
                     enabled: bool = True) -> Iterator[ProgressCounter]:
    """A :class:`ProgressCounter` from ``initial`` to ``total`` units: its ETA is for the whole
    job, also when it resumes part-way (tqdm rates only the units done in this run). A listener
    installed with :func:`listen` hears ``(desc, done, total)`` at every advance, bar shown or
    not."""
    counter = ProgressCounter(desc, total, initial, unit, enabled)
    try:
        yield counter
    finally:
        counter.close()
