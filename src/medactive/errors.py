"""Exception types: every user-facing failure is a :class:`MedactiveError` with one clear line.

The CLI catches :class:`MedactiveError`, prints its message on one line and exits non-zero, so
library code raises these (never bare ``ValueError``) for anything a user can cause.
"""

from __future__ import annotations


class MedactiveError(Exception):
    """Base class for errors caused by user input (files, configs, arguments)."""


class DataError(MedactiveError):
    """A dataset file or folder is missing, corrupt, or inconsistent."""


class ConfigError(MedactiveError):
    """An experiment or command configuration is invalid."""


class StrategyError(MedactiveError):
    """A strategy was asked for something impossible (unknown name, budget larger than pool)."""


class StoreError(MedactiveError):
    """The annotation project store is missing, locked, or has an unexpected schema."""


class StoreReplacedError(StoreError):
    """The project database was deleted, moved or replaced while it was open."""
