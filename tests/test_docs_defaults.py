"""Docs and help that cannot drift from :mod:`medactive.defaults`.

Any sentence of the README, ``docs/*.md`` or a ``--help`` text that *claims* which strategy the
product uses by default ("default: X", "X, the default", "cold start: X", "query (X)",
"X, then Y" in a ``project query`` line) must name medactive's defaults: the default cold start,
the default acquisition, or the two strategies the default acquisition switches between.
The commands that choose images say their defaults in their help.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medactive.cli import main
from medactive.coldstart import list_coldstart_strategies
from medactive.defaults import DEFAULT_ACQUISITION, DEFAULT_COLDSTART
from medactive.strategies import get_strategy, list_strategies

REPO = Path(__file__).resolve().parents[1]


def _allowed() -> set[str]:
    switch = get_strategy(DEFAULT_ACQUISITION)
    parts = {getattr(switch, "low", None), getattr(switch, "high", None)} - {None}
    return {DEFAULT_COLDSTART, DEFAULT_ACQUISITION, *parts}  # type: ignore[arg-type]


def _claims() -> list[re.Pattern[str]]:
    names = sorted(set(list_strategies()) | set(list_coldstart_strategies(True)), key=len,
                   reverse=True)
    name = r"`?(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])`?"
    return [
        re.compile(r"\bdefault(?:s| is)?\s*(?:[:=]|to)?\s*" + name),
        re.compile(r"(?<![\w-])" + name + r"\s*[,(]?\s*(?:is\s+)?the\s+(?:\w+\s+)?default\b"),
        re.compile(r"\b(?:cold start|first round|first query|round 1|later|afterwards)\s*:\s*"
                   + name),
        re.compile(r"\bquery\s*\(\s*" + name + r"\s*\)"),
    ]


def _sequence() -> re.Pattern[str]:
    names = sorted(set(list_strategies()) | set(list_coldstart_strategies(True)), key=len,
                   reverse=True)
    name = r"`?(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])`?"
    return re.compile(r"(?<![\w-])" + name + r",?\s+then\s+" + name)


def wrong_defaults(text: str) -> list[str]:
    """The lines of ``text`` that claim a default other than medactive's."""
    allowed = _allowed()
    bad = []
    for line in text.splitlines():
        low = line.lower()
        found = [m for p in _claims() for m in p.findall(low)]
        # a pipeline written as "X, then Y" is a claim where it describes what the product
        # runs; the papers' pipeline (HaCon, then AEIG) is named as such
        if "project query" in low or ("default" in low and "paper" not in low):
            found += [n for pair in _sequence().findall(low) for n in pair]
        wrong = sorted(set(found) - allowed)
        if wrong:
            bad.append(f"{wrong}: {line.strip()}")
    return bad


def test_the_rule_catches_the_claims_it_is_for():
    assert wrong_defaults("init ──► query (cold start: hacon) ──► query (aeig)")
    assert wrong_defaults("query ward3 --budget 20  # project query: kmeans-centroid, then aeig")
    assert wrong_defaults("`kmeans-centroid`, the project default here")
    assert wrong_defaults("strategy (default `aeig`)")
    assert not wrong_defaults("the papers' methods (HaCon, then AEIG) stay available by name")
    assert not wrong_defaults(f"first round: {DEFAULT_COLDSTART}; later: {DEFAULT_ACQUISITION}")


@pytest.mark.parametrize("path", [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))],
                         ids=lambda p: p.name)
def test_docs_name_only_the_real_defaults(path):
    assert wrong_defaults(path.read_text()) == []


def _help(args: list[str], capsys) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("args", [[], ["coldstart"], ["project"], ["project", "query"],
                                  ["project", "backtest"], ["demo"], ["run"]],
                         ids=lambda a: " ".join(a) or "medactive")
def test_help_names_only_the_real_defaults(args, capsys):
    assert wrong_defaults(_help(args, capsys)) == []


def test_commands_that_choose_images_state_their_defaults(capsys):
    coldstart = " ".join(_help(["coldstart"], capsys).split())
    assert DEFAULT_COLDSTART in coldstart.lower()
    query = " ".join(_help(["project", "query"], capsys).split())
    assert DEFAULT_COLDSTART in query and DEFAULT_ACQUISITION in query
    top = " ".join(_help([], capsys).split()).lower()
    assert DEFAULT_COLDSTART in top.split("coldstart", 1)[1].split("pretrain", 1)[0]
