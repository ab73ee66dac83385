"""Name -> class registries shared by the acquisition and the cold-start strategies, and the
parameter conventions both follow (scikit-learn style: the constructor stores its arguments)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from medactive.errors import StrategyError


class Parametrized:
    """Mixin: ``get_params()`` from the constructor's signature, a matching ``repr``, and a
    ``check_params()`` hook run by :meth:`Registry.create`.

    Subclasses store every constructor argument under the same attribute name (scikit-learn's
    convention), so ``type(obj)(**obj.get_params())`` rebuilds an equal object.
    """

    name: ClassVar[str] = ""

    @classmethod
    def param_names(cls) -> list[str]:
        """Constructor parameter names, in signature order (``**kwargs`` excluded)."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in list(sig.parameters.values())[1:]
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters and their values (for logging and reproducibility)."""
        return {k: getattr(self, k) for k in self.param_names()}

    def check_params(self) -> None:
        """Raise :class:`StrategyError` for impossible parameter values (default: none).

        Construction only stores parameters (scikit-learn's convention) and every run checks
        them again; :meth:`Registry.checked` calls this up front so callers about to start
        expensive work (pre-training, training) fail in milliseconds, not minutes later.
        """

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


T = TypeVar("T", bound=Parametrized)


class Registry(Generic[T]):
    """Classes registered under names, instantiated with keyword parameters.

    Args:
        kind: what the entries are, for messages (``"strategy"``, ``"cold-start strategy"``).
        plural: the plural used in "known ...: a, b, c".
        loader: called before every lookup; imports the package whose modules register the
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
            cls.name = name
            self._entries[name] = cls
            return cls

        return decorator

    def entries(self) -> dict[str, type[T]]:
        """Name -> class of every registered entry (built-ins loaded)."""
        if self._loader is not None:
            self._loader()
        return dict(self._entries)

    def create(self, name: str, **params: Any) -> T:
        """Instantiate ``name`` with ``params`` (values are not checked yet, see :meth:`checked`).

        Raises:
            StrategyError: unknown name (listing the known ones) or unknown parameters.
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

    def checked(self, name: str, **params: Any) -> T:
        """:meth:`create`, then ``check_params()``: every name and value problem, before any work.

        Raises:
            StrategyError: unknown name, unknown parameters or impossible values, naming the
                entry and the parameter.
        """
        obj = self.create(name, **params)
        try:
            obj.check_params()
        except StrategyError as exc:
            raise StrategyError(f"bad parameters for {self.kind} {name!r}: {exc}") from None
        return obj
