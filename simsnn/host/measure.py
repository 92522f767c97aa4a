"""``simsnn measure``: time the measured program (simsnn.host.program) on this CPU: warm-up
passes, then timed passes with each sample timed; the result entry of docs/measure.md."""
from __future__ import annotations

import os
import resource

import numpy as np

from simsnn.config.layout import LayoutConfig
from simsnn.host.counters import PerfSession
from simsnn.host.program import MeasuredProgram, MeasureError, run_measured
from simsnn.network import AnyNetwork


def measure(net: AnyNetwork, inputs: np.ndarray, labels: np.ndarray | None = None, *,
            cores: int = 1, layout: LayoutConfig | None = None, warmup: int = 1,
            repeat: int = 5, per_layer: bool = False, pin: list[int] | None = None,
            seed: int = 0, counters: bool = True) -> dict:
    """Measure ``net`` on ``inputs`` on this CPU: ``warmup`` untimed passes, then ``repeat``
    timed passes over all samples (one sample after the other, each timed). Returns one
    result entry (docs/result-format.md, measured fields in docs/measure.md)."""
    if repeat < 1 or warmup < 0:
        raise MeasureError("repeat must be at least 1 and warmup at least 0")
    threads = set_threads(cores, pin)
    prog = MeasuredProgram(net, layout, cores)
    x = np.asarray(inputs)
    for _ in range(warmup):
        run_measured(prog, x, seed)
    perf = PerfSession() if counters else None
    reps = []
    scores = None
    if perf is not None:
        perf.start()
    for _ in range(repeat):
        scores, secs = run_measured(prog, x, seed)
        reps.append(secs)
    count = perf.stop() if perf is not None else {"available": False, "reason": "not asked"}
    per_inf = np.array([r.mean() for r in reps])
    med = float(np.median(per_inf))
    allv = np.concatenate(reps)
    # each sample at its best over the passes (noise comes in bursts shorter than a pass)
    per_sample = np.min(np.stack(reps), axis=0)
    n = x.shape[0]
    entry = {
        "network": net.name, "family": net.family, "measured": True,
        "samples": n, "timesteps": int(net.timesteps), "cores": cores,
        "threads": threads, "layout": prog.lay.config.model_dump(),
        "weight_dtype": prog.dtype, "program_bytes": int(prog.lay.total_bytes),
        "latency_s": med,
        "latency": {"median_of_repeats": med, "best_of_repeats": float(per_inf.min()),
                    "mean": float(allv.mean()),
                    "p50": float(np.percentile(allv, 50)), "p99": float(np.percentile(allv, 99)),
                    "min": float(allv.min()), "max": float(allv.max()), "repeats": repeat,
                    "per_repeat": per_inf.tolist(),
                    "best_per_sample": float(per_sample.mean()),
                    "per_sample_best_s": per_sample.tolist(),
                    "spread": float((per_inf.max() - per_inf.min()) / med) if med else 0.0},
        "energy_j": None,
        "counters": count,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    # the parallel runtime the passes ran on (its wait policy decides what a layer call on
    # several threads costs: simsnn.host.kernels)
    entry["threads"].update(layer=_threading_layer(),
                            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                            gomp_spincount=os.environ.get("GOMP_SPINCOUNT"))
    if labels is not None and scores is not None:
        entry["accuracy"] = float((scores.argmax(axis=1) == np.asarray(labels)[:n]).mean())
    else:
        entry["accuracy"] = None
    from simsnn.footprint import footprint
    fp = footprint(net)
    entry["footprint_bytes"] = fp["total_bytes"]
    entry["weight_bytes"] = fp["weight_bytes"]
    if per_layer:
        timer: dict = {}
        run_measured(prog, x, seed, timer=timer)
        entry["latency"]["per_layer_s"] = {k: v / n for k, v in timer.items()}
        entry["latency"]["per_layer_note"] = ("one extra instrumented pass, a clock read "
                                              "around each layer")
    return entry



def host_summary() -> dict:
    """CPU model and logical CPUs of this host (for measured results)."""
    from hwmodels.hostinfo import DetectError, read_host
    try:
        model = read_host().model
    except DetectError:
        model = ""
    return {"cpu": model, "logical_cpus": os.cpu_count(), "numba_threads":
            __import__("numba").config.NUMBA_NUM_THREADS}


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _threading_layer() -> str:
    import numba
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel call in this process yet (one-core runs)
        return "none loaded"


def set_threads(cores: int, pin: list[int] | None) -> dict:
    """Use ``cores`` numba threads; pin the process (and so its threads) to ``pin`` CPUs."""
    import numba
    if cores > numba.config.NUMBA_NUM_THREADS:
        raise MeasureError(f"{cores} cores asked, numba has {numba.config.NUMBA_NUM_THREADS} "
                           f"threads on this machine")
    numba.set_num_threads(cores)
    if pin:
        try:
            os.sched_setaffinity(0, set(pin))
        except (OSError, ValueError) as exc:
            raise MeasureError(f"cannot pin to CPUs {pin}: {exc}") from None
    return {"threads": cores, "affinity": sorted(os.sched_getaffinity(0))}

