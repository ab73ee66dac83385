"""A name -> class registry shared by the acquisition and the cold-start strategies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from medactive.errors import StrategyError

T = TypeVar("T")


class Registry(Generic[T]):
    """Classes registered under names, instantiated with keyword parameters.

    Args:
        kind: what the entries are, for messages (``"strategy"``, ``"cold-start strategy"``).
        plural: the plural used in "known ...: a, b, c".
        loader: called before every lookup; imports the modules whose decorators register the
            built-in entries (so importing this module alone stays cheap and cycle-free).
    """

    def __init__(self, kind: str, plural: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self.plural = plural
        self._loader = loader
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator adding ``cls`` under ``name`` (and setting ``cls.name``)."""

        def decorator(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            cls.name = name  # type: ignore[attr-defined]
            self._entries[name] = cls
            return cls

        return decorator

    def entries(self) -> dict[str, type[T]]:
        """Name -> class of every registered entry (built-ins loaded)."""
        if self._loader is not None:
            self._loader()
        return dict(self._entries)

    def create(self, name: str, **params: Any) -> T:
        """Instantiate ``name`` with ``params``.

        Raises:
            StrategyError: unknown name (listing the known ones) or bad parameters.
        """
        entries = self.entries()
        if name not in entries:
            raise StrategyError(
                f"unknown {self.kind} {name!r}; known {self.plural}: "
                f"{', '.join(sorted(entries))}"
            )
        try:
            return entries[name](**params)
        except TypeError as exc:
            raise StrategyError(f"bad parameters for {self.kind} {name!r}: {exc}") from None
