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
from medactive.cli import labelstudio as _labelstudio
from medactive.cli import pretrain as _pretrain
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
app.add_typer(_labelstudio.app, name="labelstudio",
              help="Label Studio: serve the project as its ML backend.")
_coldstart.register(app)
_pretrain.register(app)
_experiment.register(app)


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The exception classes the argument parser raises for a user's mistake.

    typer 0.29 vendors click and raises its own copies (``typer.TyperException`` subclasses,
    not ``click.ClickException``); older typers raise click's. Both are caught, so a typer
    upgrade cannot bring tracebacks back (the version range is pinned in pyproject.toml and
    ``tests/test_cli_usage.py`` drives every command with bad arguments).
    """
    types: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        types.append(typer.TyperException)
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # pragma: no cover - typer >= 0.29 no longer needs click
        pass
    return tuple(types)


def _show_usage_error(exc: BaseException) -> int:
    """Print the command's usage line and one ``error: ...`` line; return 2."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help is the answer
        typer.echo(exc.format_message(), err=True)  # type: ignore[attr-defined]
        return 2
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    message = " ".join(str(message).split())  # one line, whatever the parser wrapped
    if ctx is not None:
        typer.echo(ctx.get_usage().splitlines()[0].strip(), err=True)
        message += f" (see `{ctx.command_path} --help`)"
    typer.echo(f"error: {message}", err=True)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code.

    User errors never print a traceback: a :class:`MedactiveError` prints ``error: ...``; a
    command-line mistake (unknown command or option, wrong type, missing argument) prints the
    command's usage line and ``error: ...``; both exit 2.
    """
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
    except _usage_error_types() as exc:
        return _show_usage_error(exc)
    return 0


def run() -> None:
    """Console-script wrapper: exit with :func:`main`'s code."""
    sys.exit(main())
