"""Every command-line mistake on every subcommand: exit 2, a usage line, one error line.

The commands are enumerated from the Typer app itself, so a new command is covered the day it is
added. Each gets an unknown option, a missing argument (or an option without its value), and a
value of the wrong type for each numeric option (or a value for a flag / an extra argument when
it has none). Nothing runs: the parser rejects every one of these before the command's body.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
import typer

from medactive.cli import app, main

NUMERIC = (int, float)


def _leaves(command: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    subs = getattr(command, "commands", None)
    if subs is None:
        return [(path, command)]
    out = []
    for name, sub in sorted(subs.items()):
        out.extend(_leaves(sub, [*path, name]))
    return out


def _groups(command: Any, path: list[str]) -> list[list[str]]:
    subs = getattr(command, "commands", None)
    if subs is None:
        return []
    return [path] + [g for name, sub in sorted(subs.items()) for g in _groups(sub, [*path, name])]


ROOT = typer.main.get_command(app)
COMMANDS = _leaves(ROOT, [])


def _base_type(hint: Any) -> Any:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if len(args) == 1 else hint


def _types(command: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(inspect.unwrap(command.callback))
    return {name: _base_type(h) for name, h in hints.items() if name != "return"}


def _dummy(kind: Any) -> str:
    return {int: "1", float: "0.5"}.get(kind, "x")


def _bad_invocations(path: list[str], command: Any) -> list[tuple[str, list[str]]]:
    """(what is wrong, argv) pairs for one command."""
    types = _types(command)
    arguments = [p for p in command.params if not p.opts[0].startswith("-")]
    options = [p for p in command.params if p.opts[0].startswith("-")]
    required = [_dummy(types.get(p.name)) for p in arguments if p.required]
    for p in options:
        if p.required:
            required += [p.opts[0], _dummy(types.get(p.name))]
    cases = [("unknown option", [*path, *required, "--no-such-option"])]
    if any(p.required for p in command.params):
        cases.append(("missing argument", list(path)))
    valued = [p for p in options if not p.is_flag]
    if valued:
        cases.append(("option without its value", [*path, *required, valued[0].opts[0]]))
    numeric = [p for p in options if types.get(p.name) in NUMERIC]
    for p in numeric:
        cases.append((f"wrong type for {p.opts[0]}", [*path, *required, p.opts[0], "abc"]))
    flags = [p for p in options if p.is_flag]
    if not numeric and flags:
        cases.append((f"value for flag {flags[0].opts[0]}", [*path, *required, f"{flags[0].opts[0]}=abc"]))
    if not numeric and not flags:
        cases.append(("extra argument", [*path, *required, "extra-argument"]))
    return cases


CASES = [case for path, cmd in COMMANDS for case in _bad_invocations(path, cmd)]
CASES += [("unknown command", [*group, "no-such-command"]) for group in _groups(ROOT, [])]


def test_every_command_is_enumerated() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"run", "coldstart", "project init", "project serve", "data info"} <= names
    assert len(CASES) >= 3 * len(COMMANDS)


@pytest.mark.parametrize("what, argv", CASES, ids=[f"{' '.join(a[:2])}: {w}" for w, a in CASES])
def test_usage_errors_exit_2_without_traceback(what: str, argv: list[str], capsys) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert code == 2, f"{argv}: exit {code}\n{output}"
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) <= 2 and all(line == errors[0] or line.startswith("Usage:") for line in lines), \
        output
