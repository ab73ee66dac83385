"""``medactive`` command line: a thin Typer layer over the library.

Every :class:`~medactive.errors.MedactiveError` is printed on one line (``error: ...``) with a
non-zero exit code and no traceback; the library does the work.
"""

from __future__ import annotations

import sys

import typer

from medactive.cli import coldstart as _coldstart
from medactive.cli import data as _data
from medactive.cli import experiment as _experiment
from medactive.cli import project as _project
from medactive.errors import MedactiveError

app = typer.Typer(
    name="medactive",
    help="Choose which medical images an expert should label next.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(_data.app, name="data", help="Inspect and fetch datasets.")
app.add_typer(_project.app, name="project", help="Labelling projects: init, query, serve, export.")
_coldstart.register(app)
_experiment.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except MedactiveError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted (finished work is saved; re-run the same command to resume)", err=True)
        return 130
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())
