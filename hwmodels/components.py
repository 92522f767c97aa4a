"""Extension points: the contracts a memory level, a main memory or a core model fulfils.

A hierarchy is a chain of :class:`MemoryLevel` objects. Each one receives the requests of the
level above in order (:class:`Requests`) and returns the requests it passes on (fills it needs,
dirty lines it writes back), so levels compose without knowing each other: the built-in LRU
cache is one, a scratchpad another, and a user's component a third. User components are found
through the ``hwmodels.components`` entry-point group (see docs/custom-hardware.md).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

LOAD, STORE, WRITEBACK = 0, 1, 2
READ_MODIFY_WRITE = 3  # each line loaded, then stored (found by hwmodels.runs; LRU levels only)
STAT_FIELDS = ("loads", "stores", "hits", "misses", "writebacks_in", "evictions", "writebacks",
               "run_start_misses")


@dataclass
class Requests:
    """Columnar requests, in order: each one covers the ``count`` lines from line ``start``
    (byte address ``start * line``) in ascending order. ``kind``: LOAD, STORE or WRITEBACK
    (and READ_MODIFY_WRITE between run finding and a built-in LRU level); ``core``: issuing
    core; ``task``: workload task (for per-task counters); ``run_start``: true where the
    first line of the request starts a sequential run (its latency cannot be hidden by
    prefetching); run finding (hwmodels.runs) hands the built-in LRU levels int8 values
    instead: 0 none, 1 the first line, 2 every line."""

    start: np.ndarray
    count: np.ndarray
    kind: np.ndarray
    core: np.ndarray
    task: np.ndarray
    run_start: np.ndarray
    line: int

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def lines(self) -> int:
        return int(self.count.sum())

    def expand(self) -> tuple[np.ndarray, np.ndarray]:
        """(line index, request index) of every line, in order."""
        idx = np.repeat(np.arange(len(self)), self.count)
        first = np.cumsum(self.count) - self.count
        return self.start[idx] + np.arange(idx.shape[0]) - first[idx], idx


class MemoryLevel(ABC):
    """One level of on-chip memory between the cores and main memory.

    Implementations keep their own state and counters. ``process`` must return every request
    that must go further down, in order: a fill (LOAD) for each demand miss, then a WRITEBACK
    for each dirty line it evicts. ``tstats`` is an int64 array (n_tasks, 3) to which the level
    adds, per task, the lines that hit, missed, and missed at a run start.
    """

    #: the ``type`` name used in hardware YAML files
    type_name: str = ""

    def __init__(self, spec, cores: int):
        self.spec = spec
        self.name = spec.name
        self.shared = bool(getattr(spec, "shared", False))
        self.cores = cores
        self.counters = np.zeros(len(STAT_FIELDS), dtype=np.int64)

    @property
    def instances(self) -> int:
        """Physical copies: one for a shared level, one per core for a private level."""
        return 1 if self.shared else self.cores

    @abstractmethod
    def process(self, req: Requests, tstats: np.ndarray) -> Requests:
        """Serve ``req``; return the requests for the next level down."""

    def reset_stats(self) -> None:
        self.counters[:] = 0

    def stats(self) -> dict:
        d = {"name": self.name}
        d.update({k: int(v) for k, v in zip(STAT_FIELDS, self.counters)})
        return d


class CoreModel(ABC):
    """Turns a task's operation counts into compute cycles."""

    type_name: str = ""

    def __init__(self, spec):
        self.spec = spec

    @abstractmethod
    def compute_cycles(self, ops: np.ndarray, op_kinds: tuple[str, ...]) -> np.ndarray:
        """Cycles of every task (rows of ``ops``) spent computing, ignoring memory."""
