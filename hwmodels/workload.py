"""The workload: hwmodels' input language.

A workload is a sequence of **phases** separated by barriers (for an SNN: one layer at one time
step of one sample). A phase holds one **task** per participating core; a task is an address
stream (byte ranges, each read or written) plus operation counts. Everything is columnar numpy:
accesses are stored task after task (CSR offsets in ``task_start``), so millions of accesses and
tens of thousands of tasks cross into compiled code as a handful of arrays.

Operation kinds are free-form strings priced by the energy model and timed by the core model,
e.g. ``synop.fp16`` (synaptic accumulates with fp16 weights), ``mac.fp32``, ``neuron_update``,
``gate_op``, ``event`` (input events decoded).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit


@dataclass
class Workload:
    """Columnar phases of per-core tasks. Arrays:

    - accesses: ``addr`` (int64 bytes), ``length`` (int64 bytes), ``write`` (bool);
    - tasks: ``task_start`` (int64, n_tasks + 1 offsets into accesses), ``task_core`` (int32),
      ``task_phase`` (int32, non-decreasing), ``ops`` (float64, n_tasks x len(op_kinds));
    - phases: ``phase_names`` (list of str) and free-form integer columns in ``phase_info``
      (e.g. ``sample``, ``timestep``, ``layer``).
    """

    addr: np.ndarray
    length: np.ndarray
    write: np.ndarray
    task_start: np.ndarray
    task_core: np.ndarray
    task_phase: np.ndarray
    ops: np.ndarray
    op_kinds: tuple[str, ...]
    phase_names: list[str]
    n_cores: int
    phase_info: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, t = self.addr.shape[0], self.task_core.shape[0]
        if self.length.shape != (n,) or self.write.shape != (n,):
            raise ValueError("addr, length and write must have the same length")
        if self.task_start.shape != (t + 1,) or self.task_start[0] != 0 or \
                self.task_start[-1] != n or np.any(np.diff(self.task_start) < 0):
            raise ValueError("task_start must be CSR offsets from 0 to the number of accesses")
        if self.task_phase.shape != (t,) or self.ops.shape != (t, len(self.op_kinds)):
            raise ValueError("task arrays disagree in length")
        if t and (np.any(np.diff(self.task_phase) < 0) or self.task_phase[-1] >= self.n_phases):
            raise ValueError("task_phase must be non-decreasing phase indices")
        if t and (self.task_core.min() < 0 or self.task_core.max() >= self.n_cores):
            raise ValueError(f"task cores must lie in 0..{self.n_cores - 1}")
        if n and (self.length.min() < 1 or self.addr.min() < 0):
            raise ValueError("accesses need non-negative addresses and positive lengths")

    @property
    def n_tasks(self) -> int:
        return int(self.task_core.shape[0])

    @property
    def n_phases(self) -> int:
        return len(self.phase_names)

    @property
    def n_accesses(self) -> int:
        return int(self.addr.shape[0])

    def op_totals(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(self.op_kinds, self.ops.sum(axis=0))}

    def access_task(self) -> np.ndarray:
        """Task index of every access."""
        return np.repeat(np.arange(self.n_tasks), np.diff(self.task_start))

    def replay_order(self) -> np.ndarray:
        """Order in which the memory system sees the accesses: phase by phase; inside a phase
        the cores' streams are interleaved one access (range) at a time, as if they ran
        concurrently at the same pace (ties: the lower core, then the earlier task)."""
        tasks = np.lexsort((np.arange(self.n_tasks), self.task_core, self.task_phase))
        return _interleave(self.task_start, self.task_phase, tasks, self.n_accesses)


@njit(cache=True)
def _interleave(task_start, task_phase, tasks, n):  # pragma: no cover - compiled
    """Access order from ``tasks`` sorted by (phase, core, task): per phase, rank by rank,
    the rank-th access of each of its tasks that has one, in that task order."""
    out = np.empty(n, np.int64)
    active = np.empty(tasks.shape[0], np.int64)
    m = 0
    i = 0
    while i < tasks.shape[0]:
        j = i
        while j < tasks.shape[0] and task_phase[tasks[j]] == task_phase[tasks[i]]:
            j += 1
        k = 0
        for q in range(i, j):
            if task_start[tasks[q] + 1] > task_start[tasks[q]]:
                active[k] = tasks[q]
                k += 1
        r = 0
        while k:
            kk = 0
            for q in range(k):
                t = active[q]
                out[m] = task_start[t] + r
                m += 1
                if task_start[t] + r + 1 < task_start[t + 1]:
                    active[kk] = t
                    kk += 1
            k = kk
            r += 1
        i = j
    return out


def concat(workloads: list[Workload], keep_accesses: bool = True) -> Workload:
    """Join workloads one after the other (phases renumbered).

    ``keep_accesses=False`` keeps only what the timing and energy models read: tasks, phases
    and each task's number of accesses. The access columns are then read-only placeholders
    of the right length that hold no memory (address 0, length 1, read), and
    ``meta["accesses"]`` says so: what a streamed simulation keeps after its memory model
    has seen each chunk's accesses."""
    if not workloads:
        raise ValueError("nothing to concatenate")
    kinds = workloads[0].op_kinds
    if any(w.op_kinds != kinds for w in workloads):
        raise ValueError("workloads disagree on op kinds")
    counts = np.concatenate([np.diff(w.task_start) for w in workloads])
    n = int(counts.sum())
    ph_off = np.cumsum([0] + [w.n_phases for w in workloads])
    info_keys = set.intersection(*(set(w.phase_info) for w in workloads))
    # the first workload's meta, less what indexes its accesses (they have moved)
    meta = {k: v for k, v in workloads[0].meta.items() if k != "kernel_calls"}
    if keep_accesses:
        cols = [np.concatenate([getattr(w, c) for w in workloads])
                for c in ("addr", "length", "write")]
    else:
        cols = [np.broadcast_to(np.int64(0), (n,)), np.broadcast_to(np.int64(1), (n,)),
                np.broadcast_to(np.False_, (n,))]
        meta["accesses"] = "not kept"
    return Workload(
        *cols, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.concatenate([w.task_core for w in workloads]),
        np.concatenate([w.task_phase + o for w, o in zip(workloads, ph_off)]).astype(np.int32),
        np.concatenate([w.ops for w in workloads]),
        kinds, [nm for w in workloads for nm in w.phase_names],
        max(w.n_cores for w in workloads),
        {k: np.concatenate([w.phase_info[k] for w in workloads]) for k in info_keys}, meta)


def tasks_only(workloads: list[Workload]) -> Workload:
    """:func:`concat` without the accesses (``keep_accesses=False``)."""
    return concat(workloads, keep_accesses=False)
