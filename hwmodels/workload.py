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
        concurrently at the same pace."""
        task = self.access_task()
        rank = np.arange(self.n_accesses) - self.task_start[task]
        return np.lexsort((self.task_core[task], rank, self.task_phase[task]))


def concat(workloads: list[Workload]) -> Workload:
    """Join workloads one after the other (phases renumbered)."""
    if not workloads:
        raise ValueError("nothing to concatenate")
    kinds = workloads[0].op_kinds
    if any(w.op_kinds != kinds for w in workloads):
        raise ValueError("workloads disagree on op kinds")
    acc_off = np.cumsum([0] + [w.n_accesses for w in workloads])
    ph_off = np.cumsum([0] + [w.n_phases for w in workloads])
    starts = [w.task_start[:-1] + o for w, o in zip(workloads, acc_off)] + [acc_off[-1:]]
    info_keys = set.intersection(*(set(w.phase_info) for w in workloads))
    return Workload(
        np.concatenate([w.addr for w in workloads]),
        np.concatenate([w.length for w in workloads]),
        np.concatenate([w.write for w in workloads]),
        np.concatenate(starts).astype(np.int64),
        np.concatenate([w.task_core for w in workloads]),
        np.concatenate([w.task_phase + o for w, o in zip(workloads, ph_off)]).astype(np.int32),
        np.concatenate([w.ops for w in workloads]),
        kinds, [n for w in workloads for n in w.phase_names],
        max(w.n_cores for w in workloads),
        {k: np.concatenate([w.phase_info[k] for w in workloads]) for k in info_keys},
        # the first workload's meta, less what indexes its accesses (they have moved)
        {k: v for k, v in workloads[0].meta.items() if k != "kernel_calls"},
    )
