"""Validation: measure workloads on this CPU, predict them on a hardware profile, report the
error (MAPE, max error, Spearman rank correlation, family ranking). See docs/validation.md.

The hardware profile must come from `simsnn hw detect` (host detection and micro-benchmarks
only): nothing here fits a model parameter to the measured points.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from simsnn.config.validation import ValidationConfig, ValidationPoint
from simsnn.errors import ConfigError
from simsnn.host.timing import LOADED
from simsnn.host.validation_report import (
    breakdowns,
    error_stats,
    family_ranking,
    plot_points,
    write_csv,
)
from simsnn.io import write_json_atomic


def _network(point: ValidationPoint, base: Path):
    from simsnn.build import build_network
    from simsnn.config.network import NetworkConfig
    from simsnn.loading import load_network
    src = f"points[{point.name}].network"
    if isinstance(point.network, dict):
        try:
            cfg = NetworkConfig.model_validate(point.network)
        except Exception as exc:  # pydantic error: one line
            raise ConfigError(src, "network", str(exc).splitlines()[0]) from None
        return build_network(cfg, src, base)
    candidate = base / point.network
    return load_network(candidate if candidate.exists() else point.network)


def _program_costs(hw, cores: int) -> dict:
    """The costs of the measured program timed now: the one-core figures (quick
    micro-benchmarks of simsnn.host.calibration at the profile's clock) and, for a point
    on several cores, the parallel efficiency (longer runs: it is the noisiest figure) and
    the sync cost on that many cores; caches, latencies, bandwidths and energies stay as
    detected."""
    from simsnn.host.calibrate_memory import stall_levels
    from simsnn.host.calibration import (
        calibrate_program,
        sync_overhead,
        time_parallel_efficiency,
    )
    private = [m for m in hw.memory if not m.shared]
    largest = max((int(m.size) for m in hw.memory), default=32 << 20)
    prog = calibrate_program(hw.cores.frequency, hw.cores.simd_width, repeat=5, quick=True,
                             cores=1, private_bytes=int(private[-1].size) if private else None,
                             dram=(largest, hw.dram.latency / hw.cores.mlp),
                             levels=stall_levels(hw))
    if cores > 1:
        prog["parallel"] = time_parallel_efficiency(7, 60, cores)
        prog["sync"] = sync_overhead(hw.cores.frequency, 5, 20, cores,
                                     prog["task"]["seconds"])
    return prog


def _core_overrides(prog: dict, cores: int) -> dict:
    """The core fields of :func:`_program_costs`'s figures (the sync cost and the parallel
    efficiency only for a point on several cores)."""
    from simsnn.host.calibration import program_overrides
    over, _, _ = program_overrides(prog, "")
    if cores < 2:
        over.pop("cycles_per_sync")
        over.pop("parallel_efficiency")
    else:  # re-timed at the point's core count: the profile's table gives way to it
        over["parallel_efficiency_cores"] = {cores: over["parallel_efficiency"]}
        over["cycles_per_sync_cores"] = {cores: over["cycles_per_sync"]}
    return over


def timed_rounds(jobs: list[tuple], hw, cores: int, *, rounds: int, max_rounds: int,
                 settle: float, recalibrate: bool = True, warmup: int = 1, repeat: int = 5,
                 seed: int = 0) -> tuple[list[list[dict]], object]:
    """Rounds of (re-time the program's costs, measure ``repeat`` passes of every job), the
    jobs interleaved so that the machine's drift reaches all of them alike (each round starts
    one job later); a job is (network, inputs, labels, layout). The re-timings share one
    pool (simsnn.host.timing.pooled_timings): each timing is its best over all
    rounds so far. At least ``rounds`` rounds, then more up to ``max_rounds`` until the last
    round improved no best-of figure (a job's measured latency, :func:`measured_latency`, or
    a pooled timing) by more than ``settle`` and its speed probes (simsnn.host.timing.Probes,
    before and after its measurements) found the machine at its quiet speed: a round taken
    while the machine was slowed does not count as settled (each measurement records its
    round's slower probe, ``probe_s``). Returns (per job, the measurements of every round; ``hw``
    with the last round's costs: simsnn.host.calibration.best_program)."""
    from simsnn.host.calibration import best_program
    from simsnn.host.measure import measure
    from simsnn.host.timing import Probes, pooled_timings
    probes = Probes()
    progs: list[dict] = []
    pool: dict = {}
    gains: list[float] = []
    runs: list[list[dict]] = [[] for _ in jobs]
    while True:
        if recalibrate:
            before = dict(pool)
            with pooled_timings(pool):
                progs.append(_program_costs(hw, cores))
            gains.append(_pool_gain(before, pool))
        first = len(runs[0])  # this round starts with job first % n

        def measure_all(first=first):
            for k in range(len(jobs)):
                j = (first + k) % len(jobs)
                net, xs, y, layout = jobs[j]
                runs[j].append(measure(net, xs, y, cores=cores, layout=layout, warmup=warmup,
                                       repeat=repeat, seed=seed, per_layer=True))
        probes.around(measure_all)
        for job in runs:
            job[-1]["probe_s"] = max(probes.rounds[-1])
        done = len(runs[0])
        if done >= rounds and (done >= max_rounds or (
                not probes.loaded() and all(_settled(job, settle) for job in runs) and
                (not gains or gains[-1] <= settle))):
            break
    if not progs:
        return runs, hw
    best = _core_overrides(best_program(progs), cores)
    return runs, hw.model_copy(update={"cores": hw.cores.model_copy(update=best)})


def _pool_gain(before: dict, after: dict) -> float:
    """The largest relative improvement of a pooled timing in one round (0 for a first
    round: nothing to improve on)."""
    return max(((before[k] - after[k]) / before[k] for k in before if before[k] > 0),
               default=0.0)


def measured_latency(runs: list[dict]) -> float:
    """A job's measured latency per inference over its rounds: each sample at its best over
    every timed pass of every round, averaged over the samples (noise only adds time, and
    it comes in bursts shorter than a pass: the best whole pass still carries some; the
    re-timed costs are best-of timings of calls of similar length)."""
    return float(np.min([r["latency"]["per_sample_best_s"] for r in runs], axis=0).mean())


def _settled(runs: list[dict], tol: float) -> bool:
    """Whether the last round lowered the job's measured latency (:func:`measured_latency`)
    by no more than ``tol`` (relative)."""
    if len(runs) < 2:
        return False
    before, now = measured_latency(runs[:-1]), measured_latency(runs)
    return (before - now) / before <= tol


def _inputs(x: np.ndarray, scale: float, coding: str) -> np.ndarray:
    xs = x.astype(np.float32) * np.float32(scale)
    return np.clip(xs, 0.0, 1.0) if coding == "rate" else xs


def run_validation(cfg: ValidationConfig, source: str | Path, out_dir: str | Path,
                   log=print) -> dict:
    """Measure and predict every point of ``cfg``; write the tables, plot and summary.
    Everything a point needs (its network, the profile's cores, whether the measured program
    can run it) is checked before the first measurement; a point the program cannot run is
    predicted only and listed, with the reason, under ``unmeasured``."""
    import simsnn
    from hwmodels.loader import load_hardware
    from simsnn.datasets import load_dataset
    from simsnn.host.measure import host_summary
    from simsnn.host.program import unsupported
    base = Path(source).parent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hw_ref = base / cfg.hardware
    hw = load_hardware(hw_ref if hw_ref.exists() else cfg.hardware)
    nets = {}
    for point in cfg.points:
        nets[point.name] = _network(point, base)
        for cores in point.cores:
            if cores > hw.cores.count:
                raise ConfigError(str(source), f"points[{point.name}].cores",
                                  f"{cores} cores, the hardware profile has {hw.cores.count}")
    ds = load_dataset(cfg.dataset, seed=cfg.seed)
    x, y = ds.x_test[: cfg.samples], ds.y_test[: cfg.samples]
    started = time.perf_counter()
    # every (point, input scale, cores); those of one comparison group at the same input
    # scale and cores are measured together, interleaved round by round
    batches: dict[tuple, list[dict]] = {}
    unmeasured: list[dict] = []
    for point in cfg.points:
        net = nets[point.name]
        why = unsupported(net, point.layout)
        for scale in point.input_scale:
            xs = _inputs(x, scale, net.coding)
            _, trace = simsnn.run_network(net, xs, record=True, labels=y, seed=cfg.seed)
            rate = float(np.mean([v.mean() for k, v in trace.layers.items() if k != "input"]))
            for cores in point.cores:
                if why:
                    rep = predict(net, trace, hw, cfg.memory_mode, cores, point.layout)
                    unmeasured.append({"point": point.name, "cores": cores,
                                       "input_scale": scale, "reason": "; ".join(why),
                                       "predicted_s": rep["latency_s"]})
                    log(f"{point.name:<24} cores {cores} scale {scale:<4g} not measured: "
                        f"{why[0]}")
                    continue
                key = (point.group or f"point:{point.name}", scale, cores)
                batches.setdefault(key, []).append(
                    {"point": point, "net": net, "xs": xs, "trace": trace, "rate": rate,
                     "scale": scale, "cores": cores})
    if not batches:
        raise ConfigError(str(source), "points", "the measured program can run none of the "
                          f"points (first: {unmeasured[0]['point']}: {unmeasured[0]['reason']})")
    rows: list[dict] = []
    for (_, _, cores), units in batches.items():
        runs_all, hw_point = timed_rounds(
            [(u["net"], u["xs"], y, u["point"].layout) for u in units], hw, cores,
            rounds=cfg.rounds, max_rounds=cfg.max_rounds, settle=cfg.settle,
            recalibrate=cfg.recalibrate, warmup=cfg.warmup, repeat=cfg.repeat, seed=cfg.seed)
        for u, runs in zip(units, runs_all):
            rows.append(_row(u, runs, hw_point, cfg.memory_mode))
            r = rows[-1]
            log(f"{r['point']:<24} cores {cores} scale {r['input_scale']:<4g} measured "
                f"{1e3 * r['measured_s']:8.3f} ms  predicted {1e3 * r['predicted_s']:8.3f}"
                f" ms  error {r['error_pct']:+6.1f}%")
    stats = error_stats([r["predicted_s"] for r in rows], [r["measured_s"] for r in rows])
    summary = {"schema": "simsnn-validation", "schema_version": 2, "name": cfg.name,
               "hardware": hw.name, "host": host_summary(), "samples": cfg.samples,
               "repeat": cfg.repeat, "rounds": cfg.rounds, "memory_mode": cfg.memory_mode,
               # detect-once (the profile as detected) or re-timed before every point
               "recalibrate": cfg.recalibrate, **stats,
               **breakdowns(rows), "family_ranking": family_ranking(rows),
               "unmeasured": unmeasured,
               # how noisy the machine was: the error grows with it (docs/validation.md)
               "measured_spread_median": float(np.median([r["measured_spread"]
                                                          for r in rows])),
               "seconds": time.perf_counter() - started}
    write_json_atomic(out / "points.json", {"points": rows})
    write_csv(out / "points.csv", rows)
    summary["plot"] = plot_points(out / "predicted_vs_measured.png", rows, summary)
    write_json_atomic(out / "summary.json", summary)
    return summary


def _loaded_rounds(runs: list[dict]) -> int:
    """How many of a job's rounds ran slowed: a probe over :data:`LOADED` times the best
    probe of its rounds."""
    probes = [r["probe_s"] for r in runs if "probe_s" in r]
    return sum(p > LOADED * min(probes) for p in probes)


def network_kind(net) -> str:
    """``conv`` for a network (or ensemble) with a convolution, else ``mlp``."""
    from simsnn.network import Conv2d, Ensemble
    members = net.members if isinstance(net, Ensemble) else [net]
    return "conv" if any(isinstance(layer, Conv2d) for m in members
                         for layer in m.layers) else "mlp"


def layer_kinds(net) -> dict[str, str]:
    """The kind of every part of a point's per-layer breakdown: input, gate, dense,
    readout, conv, pool, aggregator (keys as the measured program and the lowering name
    them)."""
    from simsnn.network import AvgPool2d, Conv2d, Dense, Ensemble
    out = {"input": "input", "gate": "gate", "aggregator": "aggregator"}
    members = [(f"m{i}.", m) for i, m in enumerate(net.members)] if \
        isinstance(net, Ensemble) else [("", net)]
    for prefix, m in members:
        for layer in m.layers:
            if isinstance(layer, Conv2d):
                out[prefix + layer.name] = "conv"
            elif isinstance(layer, AvgPool2d):
                out[prefix + layer.name] = "pool"
            elif isinstance(layer, Dense):
                out[prefix + layer.name] = "dense" if layer.neuron is not None else "readout"
    return out


#: accesses one prediction replays at most (~110 bytes each in the exact model): a wide conv
#: net at 2 cores has ~4.6 M a sample, 48 samples would need ~25 GB
MAX_ACCESSES = 64_000_000
#: samples replayed before each chunk after the first, to warm the caches (a gated net's
#: groups differ from sample to sample: one sample leaves most of them cold)
WARM_SAMPLES = 4


def predict(net, trace, hw, memory_mode: str, cores: int, layout) -> dict:
    """The simulator's latency per inference of ``trace`` (``latency_s``, ``per_layer_s``,
    ``compute_share``), in chunks of samples where all of them would exceed
    :data:`MAX_ACCESSES`; each chunk after the first replays the :data:`WARM_SAMPLES` samples
    before it first, to warm the caches, and leaves them out of the figures."""
    import simsnn
    from simsnn.lowering import lower
    from simsnn.simulate import _by  # the report's per-layer sums
    n = trace.n_samples
    per_sample = max(lower(net, trace.subset(slice(0, 1)), cores, layout).n_accesses, 1)
    if per_sample * n <= MAX_ACCESSES:
        rep = simsnn.simulate(net, trace, hw, memory_mode, cores, layout).report
        return {"latency_s": rep["latency_s"], "per_layer_s": dict(rep["latency"]["per_layer_s"]),
                "compute_share": rep["latency"]["compute_share"]}
    k = max(1, MAX_ACCESSES // per_sample - WARM_SAMPLES)
    total, compute, busy, layers = 0.0, 0.0, 0.0, {}
    for a in range(0, n, k):
        warm = min(a, WARM_SAMPLES)
        idx = np.arange(a - warm, min(a + k, n))
        res = simsnn.simulate(net, trace.subset(idx), hw, memory_mode, cores, layout)
        wl, tl = res.workload, res.hw.timeline
        keep = wl.phase_info["sample"] >= warm
        dur = np.diff(np.concatenate([[0.0], tl.phase_end]))[keep]
        total += float(dur.sum())
        for name, v in _by(dur, wl.phase_info["layer"][keep], wl.meta["layer_names"]).items():
            layers[name] = layers.get(name, 0.0) + v
        t_keep = keep[wl.task_phase]
        compute += float(res.hw.compute_s[t_keep].sum())
        busy += float((tl.end - tl.start)[t_keep].sum())
    return {"latency_s": total / n, "per_layer_s": {k: v / n for k, v in layers.items()},
            "compute_share": compute / busy if busy > 0 else 0.0}


def _row(u: dict, runs: list[dict], hw, memory_mode: str) -> dict:
    """One point's row: its measured latency over its rounds (:func:`measured_latency`)
    against the prediction on ``hw``."""
    net, point = u["net"], u["point"]
    m = min(runs, key=lambda r: r["latency"]["best_per_sample"])
    best = measured_latency(runs)
    bests = sorted(r["latency"]["best_per_sample"] for r in runs)
    passes = np.concatenate([r["latency"]["per_repeat"] for r in runs])
    rep = predict(net, u["trace"], hw, memory_mode, u["cores"], point.layout)
    return {"point": point.name, "group": point.group, "network": net.name,
            "family": net.family, "kind": network_kind(net),
            "weight_dtype": (point.layout.weight_dtype if point.layout and
                             point.layout.weight_dtype else net.weight_dtype),
            "cores": u["cores"], "input_scale": u["scale"],
            "firing_rate": u["rate"], "accuracy": m["accuracy"],
            # each sample at its best over all passes: noise only adds time
            "measured_s": best, "measured_best_pass_s": float(passes.min()),
            "measured_median_s": float(np.median(passes)),
            "measured_spread": float((passes.max() - passes.min()) / np.median(passes)),
            # how far the best-of figure moves between rounds: the second-best round's gap
            "measured_uncertainty": (bests[1] - bests[0]) / bests[0] if len(bests) > 1
            else 0.0,
            "rounds": len(runs), "predicted_s": rep["latency_s"],
            # rounds whose speed probes found the machine slowed (simsnn.host.timing.Probes)
            "loaded_rounds": _loaded_rounds(runs),
            # where the time goes, both sides: the instrumented pass of each round (a clock
            # read around each layer), each part at its best over the rounds
            "measured_per_layer_s": {k: min(r["latency"]["per_layer_s"][k] for r in runs)
                                     for k in m["latency"].get("per_layer_s", {})},
            "predicted_per_layer_s": rep["per_layer_s"],
            "predicted_compute_share": rep["compute_share"],
            "layer_kinds": layer_kinds(net),
            # the core figures the prediction used (re-timed in this point's rounds)
            "predicted_core": {k: v for k, v in hw.cores.model_dump().items()
                               if k.startswith("cycles_") or k == "parallel_efficiency"},
            "error_pct": (rep["latency_s"] - best) / best * 100,
            "program_bytes": m["program_bytes"]}



__all__ = ["measured_latency", "run_validation", "timed_rounds"]
