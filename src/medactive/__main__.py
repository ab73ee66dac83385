"""``python -m medactive`` runs the CLI."""

from medactive.cli import run

run()
