"""Evaluate sweep points (runs in worker processes or Dask workers).

What does not depend on the hardware is computed once per content hash and shared: the
network, its trace (network + trace source), the lowered workload (+ cores and layout) and,
in the fast memory mode, the reuse-distance profile (+ line size and the set counts of every
hardware point that uses it). Each is kept in the worker's memory and on disk under the
sweep's cache folder (written atomically, so workers and later runs share them safely); a
hardware point then costs only the pricing, the timeline and the energy.
"""
from __future__ import annotations

import functools
import hashlib
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simsnn.errors import SimsnnError
from simsnn.sweep.diskcache import cached
from simsnn.sweep.plan import config_hash

# the last few pieces of each kind a worker keeps in memory (workloads and profiles of large
# networks take gigabytes: few of them)
_MEMO_MAX = {"net": 8, "trace": 8, "static": 64, "workload": 2, "profile": 2}
_MEMO: dict[str, "OrderedDict[str, Any]"] = {k: OrderedDict() for k in _MEMO_MAX}


def _memo(kind: str, key: str, make: Callable[[], Any]) -> Any:
    memo = _MEMO[kind]
    if key in memo:
        memo.move_to_end(key)
        return memo[key]
    while len(memo) >= _MEMO_MAX[kind]:  # free before making the next one
        memo.popitem(last=False)
    v = make()
    memo[key] = v
    return v


def _disk(cache: str | None, name: str, make: Callable[[], Any]) -> Any:
    """``make()``, or its pickled result from ``cache/name`` (simsnn.sweep.diskcache: atomic
    writes, least recently used entries evicted beyond the folder's size limit)."""
    return cached(cache, name, make)


# ----------------------------------------------------------------------------- keys
_CODE_MODULES = ("simsnn.build", "simsnn.network", "simsnn.neurons", "simsnn.kernels",
                 "simsnn.inference", "simsnn.synth", "simsnn.trace", "simsnn.datasets",
                 "simsnn.layout", "simsnn.lowering", "simsnn.replay", "hwmodels.workload",
                 "hwmodels.reuse")


@functools.lru_cache(maxsize=1)
def code_key() -> str:
    """A hash of the source of the modules that make the cached pieces: a cache written by
    other code (an upgrade, a local change) is never reused."""
    import importlib
    h = hashlib.sha256()
    for name in _CODE_MODULES:
        h.update(Path(importlib.import_module(name).__file__).read_bytes())
    return h.hexdigest()[:16]


def point_specs(point: dict) -> tuple:
    """The validated experiment and hardware of a resolved point and its per-network
    :func:`keys`; raises the one-line user error of an invalid point."""
    from hwmodels.loader import build_levels, parse_hardware
    from simsnn.config.experiment import ExperimentConfig
    from simsnn.config.loader import validate
    exp = validate(ExperimentConfig, point["experiment"], "experiment")
    spec = parse_hardware(point["hardware"], "hardware")
    build_levels(spec)
    if exp.cores is not None and exp.cores > spec.cores.count:
        raise SimsnnError(f"{exp.cores} cores requested, hardware {spec.name!r} has "
                          f"{spec.cores.count}")
    return exp, spec, keys(point, exp, spec)


def keys(point: dict, exp, spec) -> list[dict]:
    """Per network of a resolved point: the content hashes of its network, trace, workload
    and profile, and what they need (``exp``: the validated ExperimentConfig, ``spec``: the
    HardwareSpec)."""
    from hwmodels.reuse import set_counts
    from hwmodels.simulate import _line
    cores = exp.cores or spec.cores.count
    layout = exp.layout.model_dump()
    trace = exp.trace.model_dump()
    out = []
    for net_dict, _ in point["networks"]:
        k_net = config_hash([code_key(), net_dict])
        k_trace = config_hash([k_net, trace])
        k_wl = config_hash([k_trace, cores, layout])
        line = _line(spec)
        sets = set_counts(spec.memory) if exp.memory_mode == "fast" else []
        out.append({"net": k_net, "trace": k_trace, "workload": k_wl, "line": line,
                    "sets": sets, "cores": cores})
    return out


# ----------------------------------------------------------------------------- pieces
def _network(net_dict: dict, net_dir: str, k: str):
    from simsnn.build import build_network
    from simsnn.config.loader import validate
    from simsnn.config.network import NetworkConfig

    def make():
        cfg = validate(NetworkConfig, net_dict, f"network {net_dict.get('name')!r}")
        return build_network(cfg, f"network {net_dict.get('name')!r}", net_dir)
    return _memo("net", k, make)


def _trace(net, exp, base_dir: str, k: str, cache: str | None):
    from simsnn.experiment import trace_for

    def make():
        return trace_for(net, exp, Path(base_dir), "sweep base", {})[0]
    return _memo("trace", k, lambda: _disk(cache, f"trace-{k}.pkl", make))


def _static(net, trace, k: str) -> dict:
    from simsnn.footprint import footprint
    from simsnn.metrics import neurobench_metrics

    def make():
        fp = footprint(net, trace)
        nb = neurobench_metrics(net, trace)
        so = nb["synaptic_operations"]
        return {"footprint_bytes": fp["total_bytes"], "weight_bytes": fp["weight_bytes"],
                "touched_weight_bytes": fp["touched_weight_bytes"]["mean"],
                "params": fp["params"], "accuracy": trace.accuracy(),
                "synaptic_operations": so["effective_macs"] + so["effective_acs"]}
    return _memo("static", k, make)


def _workload(net, trace, exp, cores: int, k: str, cache: str | None):
    from simsnn.lowering import lower
    return _memo("workload", k, lambda: _disk(cache, f"workload-{k}.pkl",
                                              lambda: lower(net, trace, cores, exp.layout)))


def _profile(wl, k: dict, set_hints: dict | None, cache: str | None):
    """The reuse profile of workload ``wl`` (keys ``k``) with the set counts of its point
    and of every other point using it (``set_hints``)."""
    from hwmodels.reuse import profile_workload
    line = k["line"]
    sets = sorted(set(k["sets"]) | set((set_hints or {}).get(k["workload"], ())))
    kp = config_hash([k["workload"], line, sets])
    return _memo("profile", kp, lambda: _disk(cache, f"profile-{kp}.pkl",
                                              lambda: profile_workload(wl, line, sets)))


# ----------------------------------------------------------------------------- one point
def _metrics(wl, res) -> dict:
    info = wl.phase_info
    n = int(wl.meta["samples"])
    phase_dur = np.diff(np.concatenate([[0.0], res.timeline.phase_end]))
    lat = np.bincount(info["sample"], weights=phase_dur, minlength=n)[:n]
    busy = float((res.timeline.end - res.timeline.start).sum())
    energy = sum(float(v.sum()) for v in res.energy_task.values()) + \
        sum(res.energy_static.values())
    return {"latency_s": float(lat.mean()), "latency_p99_s": float(np.percentile(lat, 99)),
            "energy_j": energy / n,
            "dram_bytes": res.timeline.channel_bytes.get("dram", 0.0) / n,
            "compute_share": float(res.compute_s.sum() / busy) if busy > 0 else 0.0,
            "program_bytes": int(wl.meta["footprint_bytes"])}


def evaluate_point(point: dict, base_dir: str, cache: str | None,
                   set_hints: dict | None = None) -> dict:
    """Metrics of every network of one resolved point: ``{"status": "ok", "metrics":
    {network: {...}}}``, or ``{"status": "invalid", "error": ...}`` for bad input."""
    from hwmodels.errors import HardwareError
    from hwmodels.simulate import simulate_workload
    started = time.perf_counter()
    try:
        exp, spec, ks = point_specs(point)
        per: dict[str, dict] = {}
        for (net_dict, net_dir), k in zip(point["networks"], ks):
            net = _network(net_dict, net_dir, k["net"])
            trace = _trace(net, exp, base_dir, k["trace"], cache)
            wl = _workload(net, trace, exp, k["cores"], k["workload"], cache)
            counts = None
            if exp.memory_mode == "fast":
                from hwmodels.reuse import price
                counts = price(_profile(wl, k, set_hints, cache), spec.memory, k["cores"])
            res = simulate_workload(wl, spec, exp.memory_mode, k["cores"], counts=counts)
            m = _metrics(wl, res)
            m.update(_static(net, trace, k["trace"]))
            m["family"] = net.family
            # the design this network is at this point: the same network, experiment and
            # hardware at another point (an axis it does not have) is the same candidate
            m["design_id"] = config_hash([net_dict, point["experiment"], point["hardware"]])
            per[net.name] = m
    except (SimsnnError, HardwareError, ValueError) as exc:
        return {"status": "invalid", "error": str(exc).splitlines()[0] if str(exc) else
                type(exc).__name__, "seconds": time.perf_counter() - started}
    names = list(per)
    ref = per[names[exp.baseline]]
    for m in per.values():
        m["speedup"] = ref["latency_s"] / m["latency_s"] if m["latency_s"] else None
        m["energy_gain"] = ref["energy_j"] / m["energy_j"] if m["energy_j"] else None
        m["params_ratio"] = m["params"] / ref["params"] if ref["params"] else None
    return {"status": "ok", "metrics": per, "seconds": time.perf_counter() - started}


def prepare(items: list[tuple[dict, int, str]], base_dir: str, cache: str | None,
            set_hints: dict | None = None) -> int:
    """Compute the hardware-independent pieces of ``items`` ((resolved point, network index,
    stage)) into the disk cache: stage "trace" the network's trace, stage "workload" its
    lowering and (fast mode) reuse profile. Invalid points are skipped (the point
    evaluation reports them). Returns the number of items done."""
    _single_thread()
    done = 0
    for point, i, stage in items:
        try:
            exp, _, ks = point_specs(point)
            k = ks[i]
            net = _network(*point["networks"][i], k["net"])
            trace = _trace(net, exp, base_dir, k["trace"], cache)
            if stage == "workload":
                wl = _workload(net, trace, exp, k["cores"], k["workload"], cache)
                if exp.memory_mode == "fast":
                    _profile(wl, k, set_hints, cache)
        except Exception:  # noqa: BLE001 - reported with its point in the evaluation stage
            continue
        done += 1
    return done


def evaluate_chunk(points: list[dict], base_dir: str, cache: str | None,
                   set_hints: dict | None = None) -> list[dict]:
    """Evaluate several points in order (one worker task); each result carries its
    ``point_id`` and ``values``."""
    _single_thread()
    out = []
    for p in points:
        r = evaluate_point(p, base_dir, cache, set_hints)
        out.append({"point_id": p["point_id"], "values": p["values"], "code": code_key(), **r})
    return out


def _single_thread() -> None:
    """Workers are processes: one numba thread each, so that N workers use N cores."""
    try:
        import numba
        if numba.get_num_threads() != 1:
            numba.set_num_threads(1)
    except Exception:  # pragma: no cover - numba always there
        pass
