"""Exceptions for user mistakes: bad configs, bad files, missing data.

Every one of them carries enough context (file, field path) to be printed as a single line by the
CLI, which exits with status 2 and never shows a traceback for them.
"""
from __future__ import annotations


class SimsnnError(Exception):
    """Base class of every error caused by user input (not by a bug)."""


class ConfigError(SimsnnError):
    """A config file or object is invalid.

    ``source`` names the file (or ``<python>`` for objects built in code), ``field`` the dotted
    path of the offending field, ``problem`` what was expected.
    """

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field, self.problem = str(source), field, problem
        where = f"{self.source}: {field}" if field else self.source
        super().__init__(f"{where}: {problem}")


class TraceFormatError(SimsnnError):
    """A spike-trace file is missing, truncated, corrupt or of an unknown version."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class DatasetError(SimsnnError):
    """A dataset is unknown, missing, or its optional dependency is not installed."""


class NetworkError(SimsnnError):
    """A network cannot do what was asked (e.g. run without weights, wrong input shape)."""
