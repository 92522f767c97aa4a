"""Calibration of the measured program's driver and small kernels: the gate and aggregator
MLPs, the encoder, the spike merge, the per-layer task cost, cold driver calls, and the
multi-core figures (parallel efficiency, the sync cost of a parallel layer call)."""
from __future__ import annotations

import time

import numpy as np

from simsnn.host import kernels as mk
from simsnn.host.timing import ONE, STEPS, best_of, layer_args, threads

ONES = np.ones(4, np.float32)  # the small MLP's int8 scales, for fp16 weights


def mlp_costs(clock_hz: float, simd_width: int, repeat: int, inner: int) -> dict:
    """The small non-spiking MLPs (gate, aggregator) as the program runs them
    (kernels.gate_mlp on fp16 weights, then the gate's top-k selection):
    - per row of H weights, from a one-layer MLP over 512 non-zero inputs minus the same with
      zero inputs, for H = 10 ... 1024, fitted as a + b H: ``gate_op`` (b, per MAC) and
      ``gate_row`` (a, the short loop's setup and tail);
    - ``gate_call``: a call with zero inputs (one 16-wide bias row, priced by the fit, aside);
    - ``gate_act.relu``: a two-layer relu MLP 1-512-16 whose hidden values are all negative
      over its first layer alone, per hidden unit (less the second layer's bias row);
      ``gate_act.sigmoid``: the relu's plus what a sigmoid MLP adds over a relu one when all
      hidden values are positive (the same rows visited);
    - ``gate_select``: the top-k selection (10 classes, top 2, 5 groups)."""
    from simsnn.host.program import select_groups
    rng = np.random.default_rng(0)

    def f16(shape, scale=0.05, shift=0.0):
        return (rng.standard_normal(shape) * scale + shift).astype(np.float16).view(np.uint16)

    def mlp_call(key, feat, w1, b1, w2, b2, mlp, sigmoid):  # calls of a few us: 10x more
        return best_of(lambda: mk.gate_mlp(feat, w1, b1, w2, b2, mlp, sigmoid, ONES),
                        inner * 10, repeat, ("mlp",) + key)

    n_in = 512
    feat = rng.random(n_in).astype(np.float32) + np.float32(0.1)
    zero = np.zeros(n_in, np.float32)
    widths = (10, 32, 128, 512, 1024)
    per_row, sp_max = [], 0.0
    none = np.zeros((0, 0), np.uint16), np.zeros(0, np.uint16)
    for h in widths:
        w1, b1 = f16((n_in, h)), f16(h)
        s_on, sp = mlp_call(("on", h), feat, w1, b1, *none, False, False)
        s_off, _ = mlp_call(("off", h), zero, w1, b1, *none, False, False)
        per_row.append(max(s_on - s_off, 0.0) / n_in)
        sp_max = max(sp_max, sp)
    b, a = np.polyfit(np.array(widths, float), np.array(per_row), 1)
    mac, row = max(float(b), 1e-15), max(float(a), 0.0)
    out = {"gate_op": {"seconds": mac, "spread": sp_max,
                       "cycles_per_instruction": mac * clock_hz * simd_width,
                       "per_row_by_width_s": dict(zip(widths, per_row))},
           "gate_row": {"seconds": row, "spread": sp_max, "cycles": row * clock_hz}}
    s_call, sp = mlp_call(("call",), zero[:16], f16((16, 16)), f16(16), *none, False, False)
    call = max(s_call - row - 16 * mac, 0.0)
    out["gate_call"] = {"seconds": call, "spread": sp, "cycles": call * clock_hz}
    hidden, n_out = 512, 16
    one = np.ones(1, np.float32)
    w1 = f16((1, hidden))
    w2, b2 = f16((hidden, n_out)), f16(n_out)
    # relu: all hidden values negative, so no second-layer row but its bias row
    b1 = f16(hidden, 0.05, -4.0)
    s_lin, _ = mlp_call(("lin",), one, w1, b1, *none, False, False)
    s_two, sp = mlp_call(("two",), one, w1, b1, w2, b2, True, False)
    relu = max(s_two - s_lin - (row + n_out * mac), 0.0) / hidden
    out["gate_act.relu"] = {"seconds": relu, "spread": sp, "cycles": relu * clock_hz}
    # sigmoid: all hidden values positive, against the relu on the same (every row visited)
    b1 = f16(hidden, 0.05, 4.0)
    s_relu, _ = mlp_call(("relu",), one, w1, b1, w2, b2, True, False)
    s_sig, sp = mlp_call(("sigmoid",), one, w1, b1, w2, b2, True, True)
    sig = relu + max(s_sig - s_relu, 0.0) / hidden
    out["gate_act.sigmoid"] = {"seconds": sig, "spread": sp, "cycles": sig * clock_hz}
    scores = rng.random(10).astype(np.float32)
    c2g = np.zeros((10, 5), bool)
    c2g[np.arange(10), np.arange(10) // 2] = True
    s_sel, sp = best_of(lambda: select_groups(scores, c2g, 2), inner * 10, repeat,
                         ("select",))
    out["gate_select"] = {"seconds": s_sel, "spread": sp, "cycles": s_sel * clock_hz}
    return out


def encode_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """Per input value and time step, the compiled encoder (``kernels.encode_input``,
    branch-free: its time does not depend on which inputs are zero) over 9 steps of n =
    256, 1,024 and 4,096 inputs, 20 % of them non-zero; the slope of a straight-line fit of
    the time per call over the input count (the fixed part is in the task cost)."""
    rng = np.random.default_rng(0)
    counts, secs, sp_max = (256, 1024, 4096), [], 0.0
    for n in counts:
        x = np.where(rng.random((STEPS, n)) < 0.2, np.float32(1.0), np.float32(0.0))
        idx, val = np.zeros((STEPS, n), np.int32), np.zeros((STEPS, n), np.float32)
        sec, sp = best_of(lambda x=x, i=idx, v=val: mk.encode_input(x, i, v), inner, repeat,
                           ("encode", n))
        secs.append(sec)
        sp_max = max(sp_max, sp)
    slope = max(float(np.polyfit(np.array(counts, float) * STEPS, np.array(secs), 1)[0]), 0.0)
    return {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}


def merge_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """Per output spike, the driver's merge of a layer's spikes into the next layer's sorted
    event list (``kernels.merge_events``: gather, storage-to-unit lookup, order
    check), over 9 steps of m = 64, 256 and 512 spikes among 1,024 units stored in unit
    order (dense layers, and contiguous groups, whose lists arrive sorted: no sort); the
    slope of a straight-line fit of the time per call over the spike count (the fixed part
    is in the task cost). A scattered storage order (interleaved groups) sorts: not
    modeled."""
    rng = np.random.default_rng(0)
    n_units = 1024
    inv_perm = np.arange(n_units, dtype=np.int64)
    out_idx = np.zeros((STEPS, n_units), np.int32)
    counts, secs, sp_max = (64, 256, 512), [], 0.0
    for m in counts:
        spk = np.zeros((1, STEPS, n_units), np.int64)
        for t in range(STEPS):
            spk[0, t, :m] = np.sort(rng.choice(n_units, m, replace=False))
        spk_n = np.full((1, STEPS), m, np.int64)
        sec, sp = best_of(lambda s=spk, n=spk_n: mk.merge_events(s, n, inv_perm, out_idx),
                           inner, repeat, ("merge", m))
        secs.append(sec)
        sp_max = max(sp_max, sp)
    slope = max(float(np.polyfit(np.array(counts, float) * STEPS, np.array(secs), 1)[0]), 0.0)
    return {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}


def tiny_program(n_layers: int, cores: int = 1):
    """A network of one-unit layers (the last a readout) with no input events, as the
    measured program runs it: (program, inputs, gate features, buffers)."""
    from simsnn.build import build_network
    from simsnn.config.network import NetworkConfig
    from simsnn.host.program import MeasuredProgram
    cfg = NetworkConfig.model_validate({
        "version": 1, "kind": "network", "name": "calibration-tasks", "family": "dense",
        "num_classes": 1, "timesteps": STEPS, "input": {"shape": [1], "coding": "direct"},
        "init": "random", "layers": [{"type": "dense", "units": 1}
                                     for _ in range(n_layers - 1)] +
        [{"type": "dense", "units": 1, "spiking": False}]})
    prog = MeasuredProgram(build_network(cfg), cores=cores)
    return prog, np.zeros((STEPS, 1), np.float32), np.zeros(1, np.float32), prog.buffers(STEPS)


def cold_driver(clock_hz: float, private_bytes: int, n: int = 200) -> dict:
    """What a driver operation costs more when the caches it ran from were refilled: each
    of ``n`` times, the operation warm (right after itself), then after a stream through
    twice ``private_bytes`` (every line of the last private cache level replaced; the
    stream stays within a shared level of a few MiB); the figure is the median cold time
    less the median warm one (``cold.call``: an inference of a one-unit readout network,
    i.e. the compiled encoder and layer calls and their arguments; ``cold.gate_select``:
    the gate's compiled top-k selection)."""
    from simsnn.host.program import select_groups
    prog, x, static, buf = tiny_program(1)
    rng = np.random.default_rng(0)
    scores = rng.random(10).astype(np.float32)
    c2g = np.zeros((10, 5), bool)
    c2g[np.arange(10), np.arange(10) // 2] = True
    stream = np.zeros(2 * int(private_bytes), np.uint8)
    clock = time.perf_counter
    out = {}
    for name, op in (("call", lambda: prog.infer(x, static, buf)),
                     ("gate_select", lambda: select_groups(scores, c2g, 2))):
        op()
        warm, cold = np.empty(n), np.empty(n)
        for i in range(n):
            t0 = clock()
            op()
            warm[i] = clock() - t0
            stream[::64] += 1
            t0 = clock()
            op()
            cold[i] = clock() - t0
        extra = max(float(np.median(cold) - np.median(warm)), 0.0)
        half = n // 2
        halves = [float(np.median(cold[s]) - np.median(warm[s]))
                  for s in (slice(0, half), slice(half, n))]
        spread = abs(halves[0] - halves[1]) / extra if extra > 0 else 0.0
        out[f"cold.{name}"] = {"seconds": extra, "spread": spread, "cycles": extra * clock_hz,
                               "warm_s": float(np.median(warm))}
    return out


def task_overhead(clock_hz: float, repeat: int, inner: int, cores: int = 1) -> dict:
    """Per time step, the fixed cost of one layer of the measured driver on ``cores``
    threads: a network of one-unit layers with no input events (its arithmetic is
    negligible)."""
    n_layers = 9
    prog, x, static, buf = tiny_program(n_layers, cores)
    best, spread = best_of(lambda: prog.infer(x, static, buf), inner, repeat,
                            ("task", n_layers, cores))
    per = best / (n_layers * STEPS)
    return {"seconds": per, "spread": spread, "cycles": per * clock_hz}


def parallel_layer_call(n: int, units: int, events: int):
    """A call of the parallel layer kernel (``mk.layer_cores``) on ``n`` threads, each owning
    one run of ``units`` open units, with ``events`` events per step on 8 L1-resident fp16
    rows (no spikes: the threshold is out of reach)."""
    a = layer_args(8, units * n, "fp16", events)
    s0 = np.arange(n, dtype=np.int64) * units
    sl = np.full(n, units, np.int64)
    ptr = np.arange(n + 1, dtype=np.int64)
    spk = np.zeros((n, STEPS, units * n), np.int64)
    spk_n = np.zeros((n, STEPS), np.int64)

    def call():
        mk.layer_cores(STEPS, a["ev_idx"], a["ev_val"], a["ev_n"], True, a["in_perm"], a["w"],
                       ONE, a["bias"], ONE, False, a["cur"], a["state"], s0, sl, ptr, False,
                       np.float32(0.9), np.float32(1e9), False, np.float32(0.0), spk, spk_n)
    return call


def time_parallel_efficiency(repeat: int, inner: int, cores: int) -> dict:
    """Each core's synaptic-accumulate speed with all ``cores`` computing at once, over its
    speed alone: the same per-core work (1024 units, 64 events on 8 L1-resident fp16 rows)
    run on one thread, then on ``cores`` threads at once."""
    if cores < 2:
        return {"seconds": 0.0, "spread": 0.0, "efficiency": 1.0, "cores": cores}
    with threads(1):
        one, _ = best_of(parallel_layer_call(1, 1024, 64), inner, repeat, ("parallel", 1))
    with threads(cores):
        many, spread = best_of(parallel_layer_call(cores, 1024, 64), inner, repeat,
                                ("parallel", cores))
    return {"seconds": many, "spread": spread, "efficiency": min(1.0, one / many),
            "cores": cores}


def sync_overhead(clock_hz: float, repeat: int, inner: int, cores: int,
                   one_core_s: float) -> dict:
    """Per time step and layer, what running the driver's layers on ``cores`` threads adds
    to the one-thread cost (waking the threads for the layer's parallel region, joining
    them); 0 for one core."""
    if cores < 2:
        return {"seconds": 0.0, "spread": 0.0, "cycles": 0.0, "cores": cores}
    with threads(cores):
        multi = task_overhead(clock_hz, repeat, inner, cores)
    extra = max(multi["seconds"] - one_core_s, 0.0)
    return {"seconds": extra, "spread": multi["spread"], "cycles": extra * clock_hz,
            "cores": cores}


