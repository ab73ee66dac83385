"""``medactive run``, ``report`` and ``demo``: the experiment runner."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``run``, ``report`` and ``demo`` to ``app``."""
