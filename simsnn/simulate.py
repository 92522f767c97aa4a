"""``simsnn.simulate``: replay a trace of a network on a hardware model; one result object."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from hwmodels.simulate import HwResult, simulate_workload
from hwmodels.spec import HardwareSpec
from hwmodels.workload import Workload
from simsnn.config.layout import LayoutConfig
from simsnn.footprint import footprint
from simsnn.lowering import lower, lowered_samples, network_layout
from simsnn.network import AnyNetwork
from simsnn.trace import SpikeTrace


def _stats(x: np.ndarray) -> dict:
    return {"mean": float(x.mean()), "p50": float(np.percentile(x, 50)),
            "p99": float(np.percentile(x, 99)), "min": float(x.min()), "max": float(x.max())}


def covered_lines(start: np.ndarray, end: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Per group id: the number of distinct lines in the union of [start, end) ranges."""
    if start.size == 0:
        return np.zeros(0)
    return _covered(np.ascontiguousarray(start, np.int64), np.ascontiguousarray(end, np.int64),
                    np.ascontiguousarray(group, np.int64), int(group.max()) + 1,
                    int(end.max()))


@njit(cache=True)
def _covered(start, end, group, n_groups, span):  # pragma: no cover - compiled
    """Ranges taken group by group (a counting sort of the ids); each line is stamped with
    the last group that covered it, so a group counts the lines it stamps."""
    first = np.zeros(n_groups + 1, np.int64)
    for i in range(group.shape[0]):
        first[group[i] + 1] += 1
    for g in range(n_groups):
        first[g + 1] += first[g]
    order = np.empty(group.shape[0], np.int64)
    fill = first[:-1].copy()
    for i in range(group.shape[0]):
        order[fill[group[i]]] = i
        fill[group[i]] += 1
    stamp = np.full(span + 1, -1, np.int64)
    out = np.zeros(n_groups)
    for k in range(order.shape[0]):
        i = order[k]
        g = group[i]
        for x in range(start[i], end[i]):
            if stamp[x] != g:
                stamp[x] = g
                out[g] += 1
    return out


def working_set(workload: Workload, line: int, chunk_samples: int = 16) -> dict:
    """Distinct cache lines touched per inference (mean over samples) and per layer.

    Samples are independent (their tasks come one sample after the other), so the ranges
    are processed ``chunk_samples`` samples at a time: memory stays small on long traces."""
    n_samples = max(int(workload.meta.get("samples", 1)), 1)
    names = workload.meta.get("layer_names", [])
    t_sample = workload.phase_info["sample"][workload.task_phase]
    t_layer = workload.phase_info["layer"][workload.task_phase]
    n_layers = int(t_layer.max()) + 1 if t_layer.size else 0
    ts = workload.task_start
    total = 0.0
    per = np.zeros(max(n_layers, 1))
    if np.any(np.diff(t_sample) < 0):  # not in sample order: one chunk
        cuts = np.array([0, t_sample.shape[0]])
    else:
        cuts = np.searchsorted(t_sample, np.arange(0, int(t_sample.max(initial=0)) + 1 +
                                                   chunk_samples, chunk_samples))
        cuts = np.unique(np.concatenate([[0], cuts, [t_sample.shape[0]]]))
    for t0, t1 in zip(cuts[:-1], cuts[1:]):
        a0, a1 = int(ts[t0]), int(ts[t1])
        if a1 == a0:
            continue
        task = np.repeat(np.arange(t0, t1), np.diff(ts[t0:t1 + 1]))
        sample = t_sample[task] - int(t_sample[t0])
        layer = t_layer[task]
        first = workload.addr[a0:a1] // line
        end = (workload.addr[a0:a1] + workload.length[a0:a1] - 1) // line + 1
        total += covered_lines(first, end, sample).sum()
        by = covered_lines(first, end, sample * n_layers + layer)
        by = np.pad(by, (0, -by.shape[0] % n_layers))
        per += by.reshape(-1, n_layers).sum(axis=0)
    per_layer = {}
    for lid in range(n_layers):
        v = per[lid] / n_samples
        if v:
            per_layer[names[lid] if lid < len(names) else str(lid)] = float(v * line)
    return {"bytes_per_inference": float(total / n_samples * line), "per_layer_bytes": per_layer}


@dataclass
class SimResult:
    """A simulated run: the workload, the hardware result and the derived report."""

    network: str
    family: str
    hardware: str
    workload: Workload
    hw: HwResult
    report: dict

    def to_dict(self) -> dict:
        return self.report


def _by(values: np.ndarray, keys: np.ndarray, names: list[str] | None = None) -> dict:
    out = {}
    for k in np.unique(keys):
        label = names[k] if names is not None and 0 <= k < len(names) else int(k)
        out[str(label)] = float(values[keys == k].sum())
    return out


#: samples lowered and replayed at a time by an exact simulation (memory stays bounded)
CHUNK_SAMPLES = 16


def _streamed(net: AnyNetwork, trace: SpikeTrace, hw: HardwareSpec, n_cores: int, lay,
              n: int, chunk: int, progress=None) -> tuple[Workload, tuple, dict]:
    """Lower and replay ``n`` samples ``chunk`` at a time through one cache hierarchy (its
    state carried from chunk to chunk, so the counters equal those of one replay); keep each
    chunk's tasks and its working set, drop its accesses. Returns the task-level workload,
    the memory model's counts and the working set."""
    from hwmodels.simulate import _line, exact_hierarchy, memory_counts
    from hwmodels.workload import tasks_only
    line = _line(hw)
    h = exact_hierarchy(hw, n_cores)
    parts, tls, tms = [], [], []
    ws_total, ws_layers = 0.0, {}
    for s0 in range(0, n, chunk):
        k = min(chunk, n - s0)
        wl = lower(net, trace.subset(slice(s0, s0 + k)), n_cores, lay)
        _, tl, tm = memory_counts(wl, hw, n_cores, "exact", hierarchy=h)
        ws = working_set(wl, line)
        ws_total += ws["bytes_per_inference"] * k
        for name, v in ws["per_layer_bytes"].items():
            ws_layers[name] = ws_layers.get(name, 0.0) + v * k
        wl.phase_info["sample"] = wl.phase_info["sample"] + s0
        parts.append(tasks_only([wl]))
        tls.append(tl)
        tms.append(tm)
        if progress is not None:
            progress(k)
    whole = tasks_only(parts)
    whole.meta["samples"] = n
    ws = {"bytes_per_inference": ws_total / n,
          "per_layer_bytes": {name: v / n for name, v in ws_layers.items()}}
    return whole, (h.stats(), np.concatenate(tls), np.concatenate(tms)), ws


def simulate(net: AnyNetwork, trace: SpikeTrace, hw: HardwareSpec, mode: str = "exact",
             cores: int | None = None, layout: LayoutConfig | None = None,
             chunk_samples: int = CHUNK_SAMPLES, progress=None) -> SimResult:
    """Lower ``trace`` of ``net`` with ``layout`` onto ``cores`` cores of ``hw`` (default:
    all), simulate it (``mode``: exact LRU replay or fast reuse distances) and report latency,
    energy, footprint and cache statistics per inference.

    The exact mode lowers and replays ``chunk_samples`` samples at a time through one cache
    hierarchy (same results as one replay, bounded memory); its ``SimResult.workload`` then
    keeps tasks and phases only (``meta["accesses"] == "not kept"``). ``progress``: called
    with the number of samples done after each chunk."""
    n_cores = cores or hw.cores.count
    lay = network_layout(net, trace, n_cores, layout)
    n = lowered_samples(trace, lay)
    if mode == "exact" and n > chunk_samples:
        wl, counts, ws = _streamed(net, trace, hw, n_cores, lay, n, chunk_samples, progress)
        res = simulate_workload(wl, hw, mode, n_cores, counts=counts)
    else:
        wl = lower(net, trace, n_cores, lay)
        res = simulate_workload(wl, hw, mode, n_cores)
        ws = working_set(wl, res.line)
        if progress is not None:
            progress(n)
    info = wl.phase_info
    n = int(wl.meta["samples"])
    phase_dur = np.diff(np.concatenate([[0.0], res.timeline.phase_end]))
    latency = np.bincount(info["sample"], weights=phase_dur, minlength=n)[:n]
    names = wl.meta["layer_names"]
    per_layer = {k: v / n for k, v in _by(phase_dur, info["layer"], names).items()}
    steps = info["timestep"]
    per_step = {k: v / n for k, v in _by(phase_dur[steps >= 0], steps[steps >= 0]).items()}
    busy = res.timeline.end - res.timeline.start
    compute_share = float(res.compute_s.sum() / busy.sum()) if busy.sum() > 0 else 0.0
    total = res.total_s
    dyn = {k: float(v.sum()) / n for k, v in res.energy_task.items()}
    static = {k: v / n for k, v in res.energy_static.items()}
    task_layer = info["layer"][wl.task_phase]
    layer_energy: dict[str, float] = {}
    for per_task in res.energy_task.values():
        for name, v in _by(per_task, task_layer, names).items():
            layer_energy[name] = layer_energy.get(name, 0.0) + v / n
    static_total = sum(static.values())
    layer_time = np.array(list(per_layer.values()))
    for name, share in zip(per_layer, layer_time / max(layer_time.sum(), 1e-300)):
        layer_energy[name] = layer_energy.get(name, 0.0) + static_total * float(share)
    fp = footprint(net, trace)
    ops = {k: v / n for k, v in wl.op_totals().items()}
    dram_busy = res.timeline.channel_busy.get("dram", 0.0)
    report = {
        "network": net.name, "family": net.family, "hardware": hw.name, "memory_mode": mode,
        "cores": n_cores, "samples_simulated": n, "timesteps": int(wl.meta["timesteps"]),
        "layout": wl.meta["layout"],
        "latency_s": float(latency.mean()),
        "latency": {**_stats(latency), "per_layer_s": per_layer, "per_timestep_s": per_step,
                    "compute_share": compute_share, "memory_stall_share": 1 - compute_share},
        "energy_j": sum(dyn.values()) + static_total,
        "energy": {"dynamic_j": dyn, "static_j": static, "per_layer_j": layer_energy,
                   "sources": res.sources},
        "footprint_bytes": fp["total_bytes"],
        "footprint": {"static": fp, "working_set": ws,
                      "program_bytes": int(wl.meta["footprint_bytes"])},
        "cache": [{k: v for k, v in s.items()} for s in res.level_stats],
        "dram": {"bandwidth_utilisation": dram_busy / total if total else 0.0,
                 "bytes_per_inference": res.timeline.channel_bytes.get("dram", 0.0) / n,
                 "achieved_bytes_per_s": res.timeline.channel_bytes.get("dram", 0.0) / total
                 if total else 0.0},
        "operations": ops,
    }
    return SimResult(net.name, net.family, hw.name, wl, res, report)
