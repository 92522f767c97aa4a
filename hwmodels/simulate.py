"""Price a workload on a hardware description: memory model -> timing -> energy."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hwmodels.cache import CacheHierarchy
from hwmodels.core import ThroughputCore, op_base
from hwmodels.energy import dynamic_energy, static_power
from hwmodels.engine import TaskCosts, Timeline, run_timeline
from hwmodels.errors import HardwareError
from hwmodels.loader import build_levels
from hwmodels.spec import HardwareSpec
from hwmodels.workload import Workload


@dataclass
class HwResult:
    """Everything the hardware side knows about one workload on one machine."""

    mode: str
    cores: int
    level_stats: list[dict]
    task_lines: np.ndarray  # (n_tasks, levels, 3) hits, misses, run-start misses
    task_mem: np.ndarray  # (n_tasks, 2) lines read, written
    compute_s: np.ndarray
    transfer_s: np.ndarray
    latency_s: np.ndarray
    timeline: Timeline
    energy_task: dict[str, np.ndarray]
    energy_static: dict[str, float]
    sources: dict[str, str]
    line: int
    extra: dict = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return self.timeline.total

    def energy_totals(self) -> dict[str, float]:
        out = {k: float(v.sum()) for k, v in self.energy_task.items()}
        out.update(self.energy_static)
        return out


def memory_counts(workload: Workload, spec: HardwareSpec, cores: int, mode: str,
                  hierarchy: CacheHierarchy | None = None):
    """(level stats, per-task lines, per-task memory lines) from the exact or fast model.
    ``hierarchy``: the exact model's caches to replay through, their state kept (a stream
    replayed in chunks); by default a fresh one (:func:`exact_hierarchy`)."""
    order = workload.replay_order()
    task = workload.access_task()[order]
    core = workload.task_core[task]
    if mode == "exact":
        h = hierarchy if hierarchy is not None else exact_hierarchy(spec, cores)
        tl, tm = h.access(workload.addr[order], workload.length[order], workload.write[order],
                          core, task, n_tasks=workload.n_tasks)
        return h.stats(), tl, tm
    if mode == "fast":
        from hwmodels.reuse import price, reuse_profile, set_counts
        caches = [m for m in spec.memory if m.type == "cache"]
        if len(caches) != len(spec.memory):
            raise HardwareError("the fast memory mode prices LRU caches only; use "
                                "memory_mode: exact for other memory levels")
        prof = reuse_profile(workload.addr[order], workload.length[order],
                             workload.write[order], core, task, workload.n_tasks, cores,
                             line=_line(spec), sets=set_counts(caches))
        return price(prof, spec.memory, cores)
    raise HardwareError(f"unknown memory mode {mode!r}; expected 'exact' or 'fast'")


def exact_hierarchy(spec: HardwareSpec, cores: int) -> CacheHierarchy:
    """The exact memory model's caches of ``spec`` for ``cores`` cores, empty."""
    return CacheHierarchy(build_levels(spec, cores), cores=cores, line=_line(spec))


def _line(spec: HardwareSpec) -> int:
    lines = [int(m.line) for m in spec.memory if hasattr(m, "line")]
    return lines[0] if lines else 64


def cold_calls(workload: Workload, spec: HardwareSpec, task_lines: np.ndarray) -> np.ndarray:
    """Seconds per task of driver operations that find their code and state evicted
    (``cycles_cold``): each occurrence of such an operation kind on a core pays its cycles
    times the share of the core's last private cache level that the core's tasks refilled
    (lines it missed, its own task's excluded) since the kind's previous occurrence on that
    core, at most 1."""
    out = np.zeros(workload.n_tasks)
    private = [i for i, m in enumerate(spec.memory) if not m.shared]
    if not spec.cores.cycles_cold or not private:
        return out
    lv = spec.memory[private[-1]]
    capacity = float(lv.size) / _line(spec)
    misses = task_lines[:, private[-1], 1].astype(np.float64)
    bases = [op_base(k) for k in workload.op_kinds]
    for kind, cycles in spec.cores.cycles_cold.items():
        if kind not in bases:
            continue
        n = workload.ops[:, bases.index(kind)]
        for c in np.unique(workload.task_core):
            idx = np.nonzero(workload.task_core == c)[0]  # this core's tasks, in order
            before = np.cumsum(misses[idx]) - misses[idx]  # refills before each task
            at = np.nonzero(n[idx] > 0)[0]
            if at.size == 0:
                continue
            since = np.diff(np.concatenate([[0.0], before[at]]))
            if at.size > 1:  # from the end of the previous occurrence's task
                since[1:] -= misses[idx[at[:-1]]]
            out[idx[at]] += n[idx[at]] * cycles * np.clip(since / capacity, 0.0, 1.0)
    return out / spec.cores.frequency


def task_costs(workload: Workload, spec: HardwareSpec, task_lines: np.ndarray,
               task_mem: np.ndarray, line: int) -> tuple[TaskCosts, list[tuple[str, float]]]:
    """Compute, transfer and latency terms of every task (see hwmodels.engine)."""
    f = spec.cores.frequency
    compute = ThroughputCore(spec.cores).compute_cycles(workload.ops, workload.op_kinds) / f
    per_phase = np.bincount(workload.task_phase, minlength=workload.n_phases)
    multi = per_phase[workload.task_phase] > 1  # tasks of phases run on several cores
    # the parallel efficiency slows the operations (each core's throughput while all
    # compute), not the task's fixed cost (the driver's dispatch, paid once per task)
    fixed = spec.cores.cycles_per_task / f
    ops = np.maximum(compute - fixed, 0.0)
    n_cores = per_phase[workload.task_phase]
    counts = np.unique(n_cores[multi]) if multi.any() else np.zeros(0, np.int64)
    eff = np.ones(workload.n_tasks)
    sync = np.zeros(workload.n_tasks)
    for n in counts:  # each phase's figures at its core count
        at = n_cores == n
        eff[at] = spec.cores.parallel_efficiency_at(int(n))
        sync[at] = spec.cores.cycles_per_sync_at(int(n))
    compute = np.where(multi, ops / eff + fixed, compute)
    compute = compute + multi * sync / f
    n_runs = np.diff(workload.task_start).astype(np.float64)
    overlapped = spec.transfers == "overlapped"
    private = np.zeros(workload.n_tasks)
    channels: list[tuple[str, float]] = []
    shared_cols = []
    latency_cycles = np.zeros(workload.n_tasks)
    stall_cycles = np.zeros(workload.n_tasks)  # the core's own, per level beyond the first
    above_rs = n_runs  # run starts that reached this level
    for i, lv in enumerate(spec.memory):
        demand = task_lines[:, i, 0] + task_lines[:, i, 1]  # lines requested from this level
        seconds = demand * line / (lv.bandwidth * f)
        if lv.shared:
            channels.append((lv.name, lv.bandwidth * f))
            shared_cols.append(demand * line)
        elif overlapped:
            private = np.maximum(private, seconds)
        else:
            private += seconds
        if i > 0:
            served = np.maximum(above_rs - task_lines[:, i, 2], 0)
            latency_cycles += served * lv.latency
            stall_cycles += (task_lines[:, i, 0] *
                             spec.cores.cycles_per_level_line.get(lv.name, 0.0) +
                             served * spec.cores.cycles_per_level_run.get(lv.name, 0.0))
        above_rs = task_lines[:, i, 2] if spec.memory else above_rs
    channels.append(("dram", spec.dram.bandwidth))
    shared_cols.append((task_mem[:, 0] + task_mem[:, 1]) * line)
    rs_dram = above_rs if spec.memory else n_runs
    # the core's own stall on its DRAM stream (per line, per run that starts there): busy
    # time on the compute side, so that the shared channel's transfers overlap it rather
    # than add to it
    compute = compute + (task_mem[:, 0] * spec.cores.cycles_per_dram_line +
                         rs_dram * spec.cores.cycles_per_dram_run + stall_cycles) / f
    latency = (latency_cycles / f + rs_dram * spec.dram.latency) / spec.cores.mlp
    latency = latency + cold_calls(workload, spec, task_lines)  # stalls, not overlapped
    return TaskCosts(compute, private, np.stack(shared_cols, axis=1), latency,
                     overlapped), channels


def simulate_workload(workload: Workload, spec: HardwareSpec, mode: str = "exact",
                      cores: int | None = None, chunk_bytes: float = 16384.0,
                      counts: tuple | None = None) -> HwResult:
    """Memory model (``exact`` LRU replay or ``fast`` reuse distances), simpy timeline and
    energy of ``workload`` on ``spec`` with ``cores`` cores (default: the workload's).
    ``counts``: the memory model's result when the caller has it already (e.g.
    ``hwmodels.reuse.price`` of a profile shared by many hardware points)."""
    n_cores = cores or workload.n_cores
    if workload.n_cores > spec.cores.count:
        raise HardwareError(f"the workload uses {workload.n_cores} cores, {spec.name!r} has "
                            f"{spec.cores.count}")
    line = _line(spec)
    level_stats, tl, tm = counts if counts is not None else memory_counts(workload, spec,
                                                                          n_cores, mode)
    costs, channels = task_costs(workload, spec, tl, tm, line)
    timeline = run_timeline(workload.task_phase, workload.n_phases, costs, channels,
                            chunk_bytes)
    wb_in = np.array([s.get("writebacks_in", 0) for s in level_stats[:len(spec.memory)]])
    dyn = dynamic_energy(spec, workload.ops, workload.op_kinds, tl, tm, line,
                         [1 if m.shared else n_cores for m in spec.memory], wb_in)
    static = {}
    sources = dict(dyn["sources"])
    for name, (power, src) in static_power(spec, n_cores).items():
        static[name] = power * timeline.total
        sources[name] = src
    transfer = costs.transfer_time(np.array([bw for _, bw in channels]))
    return HwResult(mode, n_cores, level_stats, tl, tm, costs.compute, transfer, costs.latency,
                    timeline, dyn["per_task"], static, sources, line)
