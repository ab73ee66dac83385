"""``medactive coldstart``: label-free initial query (filled in by the cold-start work)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``coldstart`` command to ``app``."""
