"""Errors for bad hardware input. hwmodels never imports simsnn, so it has its own base class;
the simsnn CLI reports both the same way (one line, exit status 2)."""
from __future__ import annotations


class HardwareError(Exception):
    """Base class of every hwmodels error caused by user input."""


class HardwareConfigError(HardwareError):
    """A hardware file or object is invalid: ``source`` (file), ``field`` (dotted path),
    ``problem`` (what was expected)."""

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field, self.problem = str(source), field, problem
        where = f"{self.source}: {field}" if field else self.source
        super().__init__(f"{where}: {problem}")
