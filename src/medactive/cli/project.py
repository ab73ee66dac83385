"""``medactive project ...``: labelling projects (filled in by the annotate work)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)
