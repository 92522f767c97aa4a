"""Run an experiment file: every network on the same trace source, compared side by side."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from simsnn.config.experiment import (
    DatasetTraceConfig,
    ExperimentConfig,
    FileTraceConfig,
    SyntheticTraceConfig,
)
from simsnn.datasets import load_dataset
from simsnn.errors import ConfigError
from simsnn.footprint import footprint
from simsnn.inference import run_network
from simsnn.loading import load_network
from simsnn.metrics import neurobench_metrics
from simsnn.network import AnyNetwork
from simsnn.synth import SynthParams, synthesize_trace
from simsnn.trace import SpikeTrace, load_trace

RESULT_SCHEMA = "simsnn-result"
RESULT_VERSION = 1


def _rel(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


def _network_ref(base: Path, ref: str) -> str | Path:
    candidate = _rel(base, ref)
    return candidate if candidate.exists() else ref


def trace_for(net: AnyNetwork, cfg: ExperimentConfig, base: Path, source: str,
              data_cache: dict) -> tuple[SpikeTrace, float | None]:
    """Record, synthesize or read the trace of ``net``; also return inference seconds."""
    t = cfg.trace
    if isinstance(t, DatasetTraceConfig):
        key = (t.dataset, t.seed)
        if key not in data_cache:
            ds_name = t.dataset if not t.dataset.endswith(".npz") else str(_rel(base, t.dataset))
            data_cache[key] = load_dataset(ds_name, seed=t.seed)
        ds = data_cache[key]
        x, y = (ds.x_test, ds.y_test) if t.split == "test" else (ds.x_train, ds.y_train)
        if t.samples is not None:
            x, y = x[: t.samples], y[: t.samples]
        start = time.perf_counter()
        _, trace = run_network(net, x, record=True, labels=y, seed=t.seed)
        return trace, time.perf_counter() - start  # type: ignore[return-value]
    if isinstance(t, SyntheticTraceConfig):
        try:
            params = SynthParams(**t.model_dump(exclude={"source"}))
            return synthesize_trace(net, params), None
        except ValueError as exc:
            raise ConfigError(source, "trace", str(exc)) from None
    assert isinstance(t, FileTraceConfig)
    if net.name not in t.paths:
        raise ConfigError(source, "trace.paths", f"no trace file for network {net.name!r}")
    return load_trace(_rel(base, t.paths[net.name])), None


_TRACE_STEP = {"DatasetTraceConfig": "running the inference and recording its trace",
               "SyntheticTraceConfig": "synthesizing its trace",
               "FileTraceConfig": "reading its trace"}


def _hardware(cfg: ExperimentConfig, base: Path):
    if cfg.hardware is None:
        return None
    from hwmodels.loader import load_hardware
    candidate = _rel(base, cfg.hardware)
    return load_hardware(candidate if candidate.exists() else cfg.hardware)


def run_experiment(cfg: ExperimentConfig, source: str | Path = "<python>",
                   progress: bool = False) -> dict:
    """Evaluate every network of ``cfg``; return the result object (documented in
    docs/cli.md)."""
    base = Path(source).parent if source != "<python>" else Path(".")
    hw = _hardware(cfg, base)
    if hw is not None and cfg.cores is not None and cfg.cores > hw.cores.count:
        raise ConfigError(str(source), "cores", f"{cfg.cores} cores requested, hardware "
                          f"{hw.name!r} has {hw.cores.count}")
    cache: dict = {}
    results = []
    for ref in cfg.networks:
        net = load_network(_network_ref(base, ref))
        if progress:
            print(f"  {net.name}: {_TRACE_STEP[type(cfg.trace).__name__]}", file=sys.stderr,
                  flush=True)
        trace, seconds = trace_for(net, cfg, base, str(source), cache)
        if cfg.save_traces:
            out = _rel(base, cfg.save_traces)
            out.mkdir(parents=True, exist_ok=True)
            trace.save(out / f"{net.name}.h5")
        fp = footprint(net, trace)
        nb = neurobench_metrics(net, trace)
        entry = {
            "network": net.name, "family": net.family,
            "accuracy": trace.accuracy(),
            "samples": trace.n_samples, "timesteps": trace.timesteps,
            "footprint_bytes": fp["total_bytes"], "weight_bytes": fp["weight_bytes"],
            "touched_weight_bytes": fp["touched_weight_bytes"],
            "params": fp["params"],
            "activation_sparsity": nb["activation_sparsity"],
            "synaptic_operations": nb["synaptic_operations"],
            "membrane_updates": nb["membrane_updates"],
            "connection_sparsity": nb["connection_sparsity"],
            "firing_rates": trace.rates(),
            "inference_seconds": seconds,
            "footprint": fp,
        }
        if hw is not None:
            from simsnn.simulate import simulate
            bar = None
            if progress:
                from tqdm import tqdm
                n_sim = trace.n_samples if cfg.layout is None or cfg.layout.samples is None \
                    else min(cfg.layout.samples, trace.n_samples)
                bar = tqdm(total=n_sim, desc=f"  {net.name}: simulating", unit="sample",
                           file=sys.stderr, leave=False)
            sim = simulate(net, trace, hw, cfg.memory_mode, cfg.cores, cfg.layout,
                           progress=None if bar is None else bar.update)
            if bar is not None:
                bar.close()
            for key in ("hardware", "memory_mode", "cores", "samples_simulated", "layout",
                        "latency_s", "latency", "energy_j", "energy", "cache", "dram",
                        "operations"):
                entry[key] = sim.report[key]
            entry["footprint"]["working_set"] = sim.report["footprint"]["working_set"]
            entry["footprint"]["program_bytes"] = sim.report["footprint"]["program_bytes"]
            del sim  # its workload and memory-model arrays: free them before the next network
        results.append(entry)
        if progress:
            print(f"  {net.name}: {trace.n_samples} samples", flush=True)
    ref = results[cfg.baseline]
    for r in results:
        eff = sum(r["synaptic_operations"][k] for k in ("effective_macs", "effective_acs"))
        ref_eff = sum(ref["synaptic_operations"][k] for k in ("effective_macs", "effective_acs"))
        r["vs_baseline"] = {
            "touched_weight_ratio": r["touched_weight_bytes"]["mean"]
            / ref["touched_weight_bytes"]["mean"],
            "effective_ops_ratio": eff / ref_eff if ref_eff else None,
            "params_ratio": r["params"] / ref["params"],
        }
        if hw is not None:
            r["vs_baseline"]["speedup"] = ref["latency_s"] / r["latency_s"]
            r["vs_baseline"]["energy_gain"] = ref["energy_j"] / r["energy_j"]
    return {"schema": RESULT_SCHEMA, "schema_version": RESULT_VERSION, "kind": "experiment",
            "experiment": cfg.name, "baseline": results[cfg.baseline]["network"],
            "trace_source": cfg.trace.source, "hardware": None if hw is None else hw.name,
            "results": results}


def _mib(b: float) -> str:
    return f"{b / 2**20:.2f}"


def format_table(result: dict) -> str:
    """A plain-text comparison table for people."""
    hw = result.get("hardware")
    head = ["network", "family", "acc %", "params", "footprint MiB", "touched MiB",
            "act. sparsity", "eff. ops/inf", "ops vs base"]
    if hw:
        head += ["latency us", "p99 us", "energy uJ", "speed-up", "energy gain"]
    rows = []
    for r in result["results"]:
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}"
        eff = r["synaptic_operations"]["effective_macs"] + r["synaptic_operations"]["effective_acs"]
        ratio = r["vs_baseline"]["effective_ops_ratio"]
        row = [r["network"], r["family"], acc, f"{r['params']:,}",
               _mib(r["footprint_bytes"]), _mib(r["touched_weight_bytes"]["mean"]),
               f"{r['activation_sparsity']:.3f}", f"{eff:,.0f}",
               "-" if ratio is None else f"{ratio:.2f}x"]
        if hw:
            v = r["vs_baseline"]
            row += [f"{1e6 * r['latency_s']:.1f}", f"{1e6 * r['latency']['p99']:.1f}",
                    f"{1e6 * r['energy_j']:.2f}", f"{v['speedup']:.2f}x",
                    f"{v['energy_gain']:.2f}x"]
        rows.append(row)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    tail = f"baseline: {result['baseline']}; trace source: {result['trace_source']}"
    if hw:
        r0 = result["results"][0]
        tail += (f"; hardware: {hw}, {r0['cores']} core(s), {r0['memory_mode']} memory model, "
                 f"{r0['samples_simulated']} samples simulated")
    lines.append(tail)
    return "\n".join(lines)


def json_ready(obj):
    """Convert numpy scalars/arrays inside ``obj`` for json.dumps."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj
