"""Calibrate the core model on the measured program's own kernels (micro-benchmarks).

``simsnn hw detect`` combines hwmodels' host detection (caches, latencies, bandwidths) with
these figures: the cost of the program's operations when their data sit in L1, so that the
cycles the simulator charges for computing are those of the code that runs, and the memory
model adds what the caches and DRAM cost on top. Nothing here looks at the validation points.

Each figure is the best (minimum) of ``repeat`` runs, as validation takes the best of its
timed passes, with the spread (max - min) / best:
- synaptic accumulate, run setup and remainder, per weight dtype: a layer whose few weight
  rows stay in L1 takes many events against one run of W open units, W = 4 ... 1024 (full
  blocks of 8 ... 64 and one short of them); the time per event is fitted as
  a + b W + sum of c_B (W mod B) over B = 8, 16, 32, 64: b per synaptic accumulate (from
  the whole blocks of 64), c_B per element past the last full block of B (the loop's vector
  epilogue and scalar remainder), a - (event) per run of open units (the loop's setup for
  that weight width);
- neuron update: the same layer with no events (bias store + LIF update per unit and step);
- unaligned: per element of a run whose weight piece and current start off a 32-byte
  boundary, beyond an aligned run's (see :func:`_unaligned_cost`);
- event: events against a one-unit segment (decode, row lookup, loop setup), less a run's
  setup (the slope of the time per event over 1-8 runs of 64 units beyond their
  accumulates, :func:`_run_setup`), which the run fit's ``segment`` then carries for every
  run an event visits;
- the small MLPs (gate, aggregator): per MAC, per visited row, per call, per hidden unit's
  activation (relu, sigmoid) and the gate's top-k selection (see :func:`_mlp_costs`);
- parallel efficiency: the same per-core accumulate work on one thread, then on all cores at
  once;
- task: a one-unit layer with no events, through the whole driver (kernel dispatch, segment
  lookup, spike merge), per time step;
- DRAM line and run: what the layer kernel loses per weight line and per row piece it
  reads from DRAM beyond its compute (see :func:`simsnn.memory_calibration.dram_stall`);
- spike: the driver's merge of a layer's spikes into the next layer's sorted event list,
  per spike (see :func:`_merge_cost`);
- input: the encoder, per input value and time step (see :func:`_encode_cost`);
- cold driver operations: what a driver call and the gate's selection cost more after a
  stream through twice the last private cache level (see :func:`cold_driver`).
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from simsnn import measure_kernels as mk

_T = 9


def layer_arrays(n_rows: int, n_out: int, wdtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A layer's weights (``n_rows`` x ``n_out``), current and state (``n_out`` float32
    each, zero) placed as the measured program places them (simsnn.layout's allocator on a
    page-aligned arena: weights, then current, then state, arrays of a page or more on page
    boundaries, smaller ones on cache lines). The kernel's speed depends on where these sit
    (split loads and stores, 4K aliasing between the weight loads and the current's stores:
    up to 2x here between fresh numpy arrays), so the calibration times the program's
    placement rather than whatever the allocator returns."""
    from simsnn.config.layout import LayoutConfig
    from simsnn.layout import _Allocator, aligned_arena
    cfg = LayoutConfig()
    alloc = _Allocator(cfg.align, cfg.small_align)
    item = np.dtype(wdtype).itemsize
    parts = [(alloc("w", n_rows * n_out * item), wdtype, (n_rows, n_out)),
             (alloc("cur", n_out * 4), np.float32, (n_out,)),
             (alloc("state", n_out * 4), np.float32, (n_out,))]
    arena = aligned_arena(alloc.top, cfg.align)
    return tuple(arena[b:b + n].view(dt).reshape(shape) for (b, n), dt, shape in parts)


def _layer_args(n_rows: int, n_out: int, dtype: str, n_events: int, T: int = _T):
    rng = np.random.default_rng(0)
    w32 = (rng.standard_normal((n_rows, n_out)) * 0.01).astype(np.float32)
    w, cur, state = layer_arrays(n_rows, n_out, np.uint16 if dtype == "fp16" else np.float32)
    w[...] = w32.astype(np.float16).view(np.uint16) if dtype == "fp16" else w32
    n_ev = max(n_events, 1)
    ev_idx = np.tile(np.arange(n_ev, dtype=np.int32) % n_rows, (T, 1))
    ev_val = np.ones((T, n_ev), np.float32)
    ev_n = np.full(T, n_events, np.int64)
    return dict(T=T, ev_idx=ev_idx, ev_val=ev_val, ev_n=ev_n, in_perm=np.arange(n_rows,
                dtype=np.int64), w=w, bias=np.zeros(0, np.float32),
                cur=cur, state=state,
                s0=np.array([0], np.int64), sl=np.array([n_out], np.int64),
                spk=np.zeros((1, T, n_out), np.int64), spk_n=np.zeros((1, T), np.int64))


#: the pool of :func:`pooled_timings` in use (None: none)
_POOL: dict | None = None


@contextmanager
def pooled_timings(pool: dict):
    """Inside the block, every timing that names itself (``key`` of :func:`_best_of`) is its
    best in this run and every earlier run in ``pool`` (which it updates). Validation keeps
    one pool over its rounds, so that each figure derived from timings (a difference, a
    slope, a fit) comes from the best time of each timing over all rounds: on a shared
    machine noise only adds time, and here it comes in bursts of milliseconds to seconds
    that reach one timing of a difference and not the other (docs/validation.md)."""
    global _POOL
    before, _POOL = _POOL, pool
    try:
        yield pool
    finally:
        _POOL = before


def _best_of(call, inner: int, repeat: int, key=None) -> tuple[float, float]:
    """Seconds per call: the best over ``repeat`` runs (on a shared machine noise only adds
    time) of the mean of ``inner`` calls, after one untimed call; and the spread
    (max - min) / best of these runs. With a ``key`` inside :func:`pooled_timings`, the
    best also over the earlier runs under that key."""
    call()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            call()
        runs.append((time.perf_counter() - t0) / inner)
    best = float(min(runs))
    spread = float((max(runs) - best) / best)
    if _POOL is not None and key is not None:
        best = _POOL[key] = min(best, _POOL.get(key, best))
    return best, spread


def _time_layer(a: dict, inner: int, repeat: int, key=None) -> tuple[float, float]:
    """:func:`_best_of` one layer kernel call with the arguments ``a``."""
    def call():
        mk.layer_one_core(a["T"], a["ev_idx"], a["ev_val"], a["ev_n"], True, a["in_perm"],
                          a["w"], a["bias"], False, a["cur"], a["state"], a["s0"], a["sl"],
                          False, np.float32(0.9), np.float32(1e9), False, np.float32(0.0),
                          a["spk"], a["spk_n"])
    return _best_of(call, inner, repeat, key)


def _per_event(n_out: int, dtype: str, inner: int, repeat: int, n_ev: int = 64,
               s0=(0,), sl=None) -> tuple[float, float]:
    """Seconds per event of a layer of ``n_out`` units whose open runs start at ``s0`` and
    are ``sl`` long (default: one run of all units), ``n_ev`` events per step on 8
    L1-resident rows, less the same layer with no events; and the spread."""
    out, spread = [], 0.0
    for k in (n_ev, 0):
        a = _layer_args(8, n_out, dtype, k)
        a["s0"] = np.asarray(s0, np.int64)
        a["sl"] = np.asarray([n_out] if sl is None else sl, np.int64)
        key = ("layer", n_out, dtype, k, tuple(a["s0"].tolist()), tuple(a["sl"].tolist()))
        sec, sp = _time_layer(a, inner, repeat, key)
        out.append(sec)
        spread = max(spread, sp)
    return (out[0] - out[1]) / (_T * n_ev), spread


#: run widths of the accumulate fit: full blocks of 8 ... 64 and one short of them, so that
#: every remainder block's cost is seen
RUN_WIDTHS = (4, 8, 12, 16, 20, 24, 28, 31, 32, 40, 48, 56, 63, 64, 80, 96, 112, 127, 128,
              192, 256, 512, 1024)


def _measure_runs(inner: int, repeat: int, n_ev: int) -> dict:
    """Per dtype, the time per event against one run of W open units, W in ``RUN_WIDTHS``
    (a layer whose few weight rows stay in L1, minus the same layer with no events)."""
    out: dict = {"widths": list(RUN_WIDTHS), "spread": 0.0}
    for dtype in ("fp32", "fp16"):
        vals = []
        for width in RUN_WIDTHS:
            sec, sp = _per_event(width, dtype, inner, repeat, n_ev)
            vals.append(max(sec, 0.0))
            out["spread"] = max(out["spread"], sp)
        out[dtype] = vals
    return out


def _event_cost(inner: int, repeat: int) -> tuple[float, float]:
    """Seconds per input event against one run of one unit (256 events on 8 L1-resident
    rows, less the same layer with no events): the event's own cost (decode, row lookup)
    and its run's setup. Returns (seconds, spread)."""
    sec, sp = _per_event(1, "fp32", inner, repeat, 256)
    return max(sec, 0.0), sp


def _run_setup(clock_hz: float, inner: int, repeat: int, per_synop: float,
               width: int = 64) -> dict:
    """Seconds per run of open units an event visits beyond its compute: the time per event
    against k = 1, 2, 4, 8 runs of ``width`` fp16 units (gaps of ``width`` between them, no
    remainder for any block of 8 ... 64; 64 events on 8 L1-resident rows, less the same
    layer with no events), the slope over k less the run's ``width`` accumulates at
    ``per_synop`` seconds each. :func:`calibrate_program` takes it out of the event cost,
    which was timed against one run: an event that visits several runs (a gated layer's
    shared units and open groups) pays the setup of each."""
    ks, per, sp_max = (1, 2, 4, 8), [], 0.0
    for k in ks:
        sec, sp = _per_event(2 * width * k, "fp16", inner, repeat,
                             s0=np.arange(k) * 2 * width, sl=np.full(k, width))
        per.append(max(sec, 0.0))
        sp_max = max(sp_max, sp)
    slope = float(np.polyfit(np.array(ks, float), np.array(per), 1)[0])
    sec = max(slope - width * per_synop, 0.0)
    return {"seconds": sec, "spread": sp_max, "cycles": sec * clock_hz, "per_run_s": slope}


def _unaligned_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """Per weight dtype, what an element of a run costs more when the run's weight piece and
    current do not start on a 32-byte boundary: runs of W = 256, 512 and 1,024 units
    (rows of W + 32 units, so that every row starts aligned; 64 events per step on 8
    L1-resident rows) starting at unit 0 and at units 4, 12 and 20; the slope over W of the
    time per event, unaligned (median over the three starts) less aligned."""
    widths, out = (256, 512, 1024), {}
    for dtype in ("fp32", "fp16"):
        extra, sp_max = [], 0.0
        for width in widths:
            per = {}
            for start in (0, 4, 12, 20):
                per[start], sp = _per_event(width + 32, dtype, inner, repeat, s0=[start],
                                            sl=[width])
                sp_max = max(sp_max, sp)
            extra.append(float(np.median([per[k] for k in (4, 12, 20)])) - per[0])
        slope = max(float(np.polyfit(np.array(widths, float), np.array(extra), 1)[0]), 0.0)
        out[dtype] = {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}
    return {f"unaligned.{d}": v for d, v in out.items()}


def fit_runs(runs: dict, per_event: float, clock_hz: float, simd_width: int) -> dict:
    """Per dtype, the time per event against one run of W units (:func:`_measure_runs`)
    fitted as a + b W + sum over B of c_B (W mod B), B = 8, 16, 32, 64, on relative error:
    b, the synaptic accumulate, from the widths that are whole blocks of 64 (no remainder:
    a straight line, the wide runs set it); then a and the c_B >= 0 over all widths with b
    fixed (non-negative least squares): c_B is the extra cost of an element past the last
    full block of B (``tail``: the loop's vector epilogue and scalar remainder), a - (event)
    the run's fixed cost (``segment``: the loop's setup). A width whose time came out zero
    (a difference of two timings that noise reversed; :func:`_measure_runs` clips it) is left
    out: on relative error it would weigh as much as all the others together (``dropped``)."""
    from scipy.optimize import nnls

    from simsnn.lowering import TAIL_BLOCKS
    w_all = np.array(runs["widths"], float)
    out: dict = {}
    for dtype in ("fp32", "fp16"):
        y_all = np.array(runs[dtype])
        ok = y_all > 0
        if (ok & (w_all % max(TAIL_BLOCKS) == 0)).sum() < 2:
            ok[:] = True  # nothing better to fit: keep every width
        w, y = w_all[ok], y_all[ok]
        full = w % max(TAIL_BLOCKS) == 0
        x = np.stack([np.ones_like(w)] + [w % b for b in TAIL_BLOCKS], 1)
        wt = 1.0 / np.maximum(y, 1e-12)
        line = np.stack([np.ones_like(w), w], 1)[full] * wt[full, None]
        b = float(np.linalg.lstsq(line, y[full] * wt[full], rcond=None)[0][1])
        if b <= 0:  # noise flattened the line: the widest run's time per unit instead
            b = max(float(y[np.argmax(w)] / w.max()), 1e-15)
        coef = nnls(x * wt[:, None], (y - b * w) * wt)[0]
        rms = float(np.sqrt(np.mean(((x @ coef + b * w - y) * wt) ** 2)))
        out[f"synop.{dtype}"] = {"seconds": b, "spread": runs["spread"],
                                 "cycles_per_instruction": b * clock_hz * simd_width,
                                 "fit_rms_rel": rms,
                                 "dropped": [int(v) for v in w_all[~ok]]}
        seg = max(float(coef[0]) - per_event, 0.0)
        out[f"segment.{dtype}"] = {"seconds": seg, "spread": runs["spread"],
                                   "cycles": seg * clock_hz}
        tail = {blk: float(c) for blk, c in zip(TAIL_BLOCKS, coef[1:])}
        out[f"tail.{dtype}"] = {"seconds": tail, "spread": runs["spread"],
                                "cycles": {blk: c * clock_hz for blk, c in tail.items()}}
    return out


def _median_figure(entries: list[dict]) -> dict:
    """The entry with the median ``seconds`` (the lower one of an even count)."""
    return sorted(entries, key=lambda e: e["seconds"])[(len(entries) - 1) // 2]


def best_program(progs: list[dict]) -> dict:
    """Rounds of :func:`calibrate_program` run in one :func:`pooled_timings` pool as one:
    the last round's figures, in which every timing is its best over all rounds (each
    difference, slope and fit made from such timings: taking the minimum or the median of
    the rounds' derived figures instead, the minimum picks the luckiest subtraction and the
    median keeps the bursts of a noisy machine, up to 2x here in half of the rounds), and
    the cold driver figures (medians of many paired warm and cold timings, not pooled) at
    their median over the rounds."""
    best = dict(progs[-1])
    for k in progs[-1]:
        if k.startswith("cold."):
            best[k] = _median_figure([p[k] for p in progs])
    best["noisy"] = sorted(set().union(*(p.get("noisy", []) for p in progs)))
    return best


def unsettled(prev: dict, last: dict, tol: float = 0.05, floor: float = 0.5) -> list[str]:
    """The hardware fields (:func:`program_overrides`) that moved by more than ``tol``
    (relative) between two rounds of :func:`calibrate_program` in one pooled_timings pool,
    ignoring moves under ``floor`` cycles (a tail coefficient of 0.1 cycles): figures that
    had not settled at their quiet best."""
    def flat(v) -> dict:
        if not isinstance(v, dict):
            return {(): v}
        return {(k,) + p: x for k, sub in v.items() for p, x in flat(sub).items()}
    a, b = program_overrides(prev, "")[0], program_overrides(last, "")[0]
    out = []
    for k, v in b.items():
        before = flat(a.get(k, 0.0))
        if any(abs(x - before.get(p, 0.0)) > max(tol * abs(before.get(p, 0.0)), floor)
               for p, x in flat(v).items()):
            out.append(k)
    return out


def calibrate_program(clock_hz: float, simd_width: int, repeat: int = 5,
                      quick: bool = False, cores: int = 1,
                      private_bytes: int | None = None,
                      dram: tuple[int, float] | None = None,
                      levels: list[tuple[str, int, int, float]] | None = None) -> dict:
    """Cycles per instruction (simd_width lanes) of the program's operations at ``clock_hz``
    (``private_bytes``: the size of the last private cache level, for the cold driver
    calls; ``dram``: (the largest cache's size, the DRAM latency over the memory-level
    parallelism in seconds) for the DRAM stall per line; ``levels``: the cache levels
    beyond the first, :func:`simsnn.memory_calibration.stall_levels`, for their stall per
    line and per run; None skips them)."""
    inner = 20 if quick else 60
    n_out, n_ev = 1024, 64
    out: dict = {"method": __doc__.split("\n\n")[1].strip() if __doc__ else ""}
    # neuron update (+ bias store) alone
    upd_s, upd_sp = _time_layer(_layer_args(8, n_out, "fp32", 0), inner * 4, repeat,
                                ("update", n_out))
    per_update = upd_s / (_T * n_out)
    out["neuron_update"] = {"seconds": per_update, "spread": upd_sp,
                            "cycles_per_instruction": per_update * clock_hz * simd_width}
    # events against a one-unit segment: per-event overhead
    one_run, ev_sp = _event_cost(inner * 4, repeat)
    out["runs"] = _measure_runs(inner, repeat, n_ev)
    b16 = fit_runs(out["runs"], one_run, clock_hz, simd_width)["synop.fp16"]["seconds"]
    out["run_setup"] = _run_setup(clock_hz, inner, repeat, b16)
    per_event = max(one_run - out["run_setup"]["seconds"], 0.0)
    out["event"] = {"seconds": per_event, "spread": ev_sp, "cycles": per_event * clock_hz,
                    "with_one_run_s": one_run}
    out.update(fit_runs(out["runs"], per_event, clock_hz, simd_width))
    out.update(_unaligned_cost(clock_hz, repeat, inner * 3))
    out.update(_mlp_costs(clock_hz, simd_width, repeat, inner))
    if private_bytes:
        out.update(cold_driver(clock_hz, private_bytes, 60 if quick else 200))
    out["spike"] = _merge_cost(clock_hz, repeat, inner)
    out["input"] = _encode_cost(clock_hz, repeat, inner)
    if dram is not None:
        from simsnn.memory_calibration import dram_stall
        out.update(dram_stall(clock_hz, dram[0], dram[1], 3 if quick else 5))
    if levels:
        from simsnn.memory_calibration import cache_stalls
        out.update(cache_stalls(clock_hz, levels, 3 if quick else 5))
    out["task"] = _task_overhead(clock_hz, repeat, inner)
    out["sync"] = sync_overhead(clock_hz, repeat, inner, cores, out["task"]["seconds"])
    out["parallel"] = time_parallel_efficiency(repeat, inner, cores)
    out["noisy"] = [k for k, v in out.items() if isinstance(v, dict) and v.get("spread", 0)
                    > 0.05]
    return out


def _mlp_costs(clock_hz: float, simd_width: int, repeat: int, inner: int) -> dict:
    """The small non-spiking MLPs (gate, aggregator) as the program runs them
    (measure_kernels.gate_mlp on fp16 weights, then the gate's top-k selection):
    - per row of H weights, from a one-layer MLP over 512 non-zero inputs minus the same with
      zero inputs, for H = 10 ... 1024, fitted as a + b H: ``gate_op`` (b, per MAC) and
      ``gate_row`` (a, the short loop's setup and tail);
    - ``gate_call``: a call with zero inputs (one 16-wide bias row, priced by the fit, aside);
    - ``gate_act.relu``: a two-layer relu MLP 1-512-16 whose hidden values are all negative
      over its first layer alone, per hidden unit (less the second layer's bias row);
      ``gate_act.sigmoid``: the relu's plus what a sigmoid MLP adds over a relu one when all
      hidden values are positive (the same rows visited);
    - ``gate_select``: the top-k selection (10 classes, top 2, 5 groups)."""
    from simsnn.measure import select_groups
    rng = np.random.default_rng(0)

    def f16(shape, scale=0.05, shift=0.0):
        return (rng.standard_normal(shape) * scale + shift).astype(np.float16).view(np.uint16)

    def mlp_call(key, feat, w1, b1, w2, b2, mlp, sigmoid):  # calls of a few us: 10x more
        return _best_of(lambda: mk.gate_mlp(feat, w1, b1, w2, b2, mlp, sigmoid),
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
    s_sel, sp = _best_of(lambda: select_groups(scores, c2g, 2), inner * 10, repeat,
                         ("select",))
    out["gate_select"] = {"seconds": s_sel, "spread": sp, "cycles": s_sel * clock_hz}
    return out


def _encode_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """Per input value and time step, the compiled encoder (``measure_kernels.encode_input``,
    branch-free: its time does not depend on which inputs are zero) over 9 steps of n =
    256, 1,024 and 4,096 inputs, 20 % of them non-zero; the slope of a straight-line fit of
    the time per call over the input count (the fixed part is in the task cost)."""
    rng = np.random.default_rng(0)
    counts, secs, sp_max = (256, 1024, 4096), [], 0.0
    for n in counts:
        x = np.where(rng.random((_T, n)) < 0.2, np.float32(1.0), np.float32(0.0))
        idx, val = np.zeros((_T, n), np.int32), np.zeros((_T, n), np.float32)
        sec, sp = _best_of(lambda x=x, i=idx, v=val: mk.encode_input(x, i, v), inner, repeat,
                           ("encode", n))
        secs.append(sec)
        sp_max = max(sp_max, sp)
    slope = max(float(np.polyfit(np.array(counts, float) * _T, np.array(secs), 1)[0]), 0.0)
    return {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}


def _merge_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """Per output spike, the driver's merge of a layer's spikes into the next layer's sorted
    event list (``measure_kernels.merge_events``: gather, storage-to-unit lookup, order
    check), over 9 steps of m = 64, 256 and 512 spikes among 1,024 units stored in unit
    order (dense layers, and contiguous groups, whose lists arrive sorted: no sort); the
    slope of a straight-line fit of the time per call over the spike count (the fixed part
    is in the task cost). A scattered storage order (interleaved groups) sorts: not
    modeled."""
    rng = np.random.default_rng(0)
    n_units = 1024
    inv_perm = np.arange(n_units, dtype=np.int64)
    out_idx = np.zeros((_T, n_units), np.int32)
    counts, secs, sp_max = (64, 256, 512), [], 0.0
    for m in counts:
        spk = np.zeros((1, _T, n_units), np.int64)
        for t in range(_T):
            spk[0, t, :m] = np.sort(rng.choice(n_units, m, replace=False))
        spk_n = np.full((1, _T), m, np.int64)
        sec, sp = _best_of(lambda s=spk, n=spk_n: mk.merge_events(s, n, inv_perm, out_idx),
                           inner, repeat, ("merge", m))
        secs.append(sec)
        sp_max = max(sp_max, sp)
    slope = max(float(np.polyfit(np.array(counts, float) * _T, np.array(secs), 1)[0]), 0.0)
    return {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}


def _tiny_program(n_layers: int, cores: int = 1):
    """A network of one-unit layers (the last a readout) with no input events, as the
    measured program runs it: (program, inputs, gate features, buffers)."""
    from simsnn.build import build_network
    from simsnn.config.network import NetworkConfig
    from simsnn.measure import MeasuredProgram
    cfg = NetworkConfig.model_validate({
        "version": 1, "kind": "network", "name": "calibration-tasks", "family": "dense",
        "num_classes": 1, "timesteps": _T, "input": {"shape": [1], "coding": "direct"},
        "init": "random", "layers": [{"type": "dense", "units": 1}
                                     for _ in range(n_layers - 1)] +
        [{"type": "dense", "units": 1, "spiking": False}]})
    prog = MeasuredProgram(build_network(cfg), cores=cores)
    return prog, np.zeros((_T, 1), np.float32), np.zeros(1, np.float32), prog.buffers(_T)


def cold_driver(clock_hz: float, private_bytes: int, n: int = 200) -> dict:
    """What a driver operation costs more when the caches it ran from were refilled: each
    of ``n`` times, the operation warm (right after itself), then after a stream through
    twice ``private_bytes`` (every line of the last private cache level replaced; the
    stream stays within a shared level of a few MiB); the figure is the median cold time
    less the median warm one (``cold.call``: an inference of a one-unit readout network,
    i.e. the compiled encoder and layer calls and their arguments; ``cold.gate_select``:
    the gate's compiled top-k selection)."""
    from simsnn.measure import select_groups
    prog, x, static, buf = _tiny_program(1)
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


def _task_overhead(clock_hz: float, repeat: int, inner: int, cores: int = 1) -> dict:
    """Per time step, the fixed cost of one layer of the measured driver on ``cores``
    threads: a network of one-unit layers with no input events (its arithmetic is
    negligible)."""
    n_layers = 9
    prog, x, static, buf = _tiny_program(n_layers, cores)
    best, spread = _best_of(lambda: prog.infer(x, static, buf), inner, repeat,
                            ("task", n_layers, cores))
    per = best / (n_layers * _T)
    return {"seconds": per, "spread": spread, "cycles": per * clock_hz}


@contextmanager
def _threads(n: int):
    """Run the block with ``n`` numba threads, then restore the previous count."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def parallel_layer_call(n: int, units: int, events: int):
    """A call of the parallel layer kernel (``mk.layer_cores``) on ``n`` threads, each owning
    one run of ``units`` open units, with ``events`` events per step on 8 L1-resident fp16
    rows (no spikes: the threshold is out of reach)."""
    a = _layer_args(8, units * n, "fp16", events)
    s0 = np.arange(n, dtype=np.int64) * units
    sl = np.full(n, units, np.int64)
    ptr = np.arange(n + 1, dtype=np.int64)
    spk = np.zeros((n, _T, units * n), np.int64)
    spk_n = np.zeros((n, _T), np.int64)

    def call():
        mk.layer_cores(_T, a["ev_idx"], a["ev_val"], a["ev_n"], True, a["in_perm"], a["w"],
                       a["bias"], False, a["cur"], a["state"], s0, sl, ptr, False,
                       np.float32(0.9), np.float32(1e9), False, np.float32(0.0), spk, spk_n)
    return call


def time_parallel_efficiency(repeat: int, inner: int, cores: int) -> dict:
    """Each core's synaptic-accumulate speed with all ``cores`` computing at once, over its
    speed alone: the same per-core work (1024 units, 64 events on 8 L1-resident fp16 rows)
    run on one thread, then on ``cores`` threads at once."""
    if cores < 2:
        return {"seconds": 0.0, "spread": 0.0, "efficiency": 1.0, "cores": cores}
    with _threads(1):
        one, _ = _best_of(parallel_layer_call(1, 1024, 64), inner, repeat, ("parallel", 1))
    with _threads(cores):
        many, spread = _best_of(parallel_layer_call(cores, 1024, 64), inner, repeat,
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
    with _threads(cores):
        multi = _task_overhead(clock_hz, repeat, inner, cores)
    extra = max(multi["seconds"] - one_core_s, 0.0)
    return {"seconds": extra, "spread": multi["spread"], "cycles": extra * clock_hz,
            "cores": cores}


def program_overrides(prog: dict, date: str) -> tuple[dict, list[str], str]:
    """The core fields of a hardware file from :func:`calibrate_program`: (overrides,
    source strings, header table)."""
    over = {"cycles_per_synop": prog["synop.fp32"]["cycles_per_instruction"],
            "cycles_per_synop_dtype": {d: prog[f"synop.{d}"]["cycles_per_instruction"]
                                       for d in ("fp32", "fp16")},
            "cycles_per_neuron_update": prog["neuron_update"]["cycles_per_instruction"],
            "cycles_per_event": prog["event"]["cycles"],
            "cycles_per_segment": prog["segment.fp32"]["cycles"],
            "cycles_per_segment_dtype": {d: prog[f"segment.{d}"]["cycles"]
                                         for d in ("fp32", "fp16")},
            "cycles_per_tail": prog["tail.fp32"]["cycles"],
            "cycles_per_tail_dtype": {d: prog[f"tail.{d}"]["cycles"] for d in ("fp32", "fp16")},
            "cycles_per_gate_op": prog["gate_op"]["cycles_per_instruction"],
            "cycles_per_gate_row": prog["gate_row"]["cycles"],
            "cycles_per_gate_call": prog["gate_call"]["cycles"],
            "cycles_per_gate_select": prog["gate_select"]["cycles"],
            "cycles_per_gate_act": {a: prog[f"gate_act.{a}"]["cycles"]
                                    for a in ("relu", "sigmoid")},
            "cycles_per_task": prog["task"]["cycles"],
            "cycles_per_spike": prog["spike"]["cycles"],
            "cycles_per_input": prog["input"]["cycles"],
            "cycles_per_unaligned": {d: prog[f"unaligned.{d}"]["cycles"]
                                     for d in ("fp32", "fp16") if f"unaligned.{d}" in prog},
            "cycles_cold": {k: prog[f"cold.{k}"]["cycles"] for k in ("call", "gate_select")
                            if f"cold.{k}" in prog},
            "cycles_per_sync": prog["sync"]["cycles"],
            "parallel_efficiency": prog["parallel"]["efficiency"]}
    # the DRAM stall only where it was timed (a calibration without ``dram`` leaves the
    # profile's figure as it is rather than writing 0 over it)
    over.update({f"cycles_per_{k}": prog[k]["cycles"] for k in ("dram_line", "dram_run")
                 if k in prog})
    if prog.get("level_stall"):
        for part in ("line", "run"):
            over[f"cycles_per_level_{part}"] = {lv: v[part]["cycles"]
                                                for lv, v in prog["level_stall"].items()}
    def rounded(v):
        return {k: rounded(x) for k, x in v.items()} if isinstance(v, dict) else round(v, 3)
    over = {k: rounded(v) for k, v in over.items()}
    src = (f"measured by simsnn hw detect ({date}) on the measured program's own kernels "
           f"(simsnn/program_calibration.py, data in L1): cycles_per_synop (fp32), "
           f"cycles_per_synop_dtype (fp32, fp16 widened in registers), "
           f"cycles_per_neuron_update, cycles_per_event, cycles_per_segment(_dtype), "
           f"cycles_per_tail(_dtype) (per element past a block of 8 ... 64: the accumulate "
           f"loop's remainder paths), cycles_per_unaligned (per element of a run that starts "
           f"off a 32-byte boundary), "
           f"the small MLPs' cycles_per_gate_op (per MAC), cycles_per_gate_row, "
           f"cycles_per_gate_call, cycles_per_gate_act (relu, sigmoid) and "
           f"cycles_per_gate_select (the gate's top-k selection), "
           f"cycles_cold (what a driver call and the gate's selection cost more after "
           f"the last private cache level was refilled), "
           f"cycles_per_spike (the driver's merge of a layer's spikes into a sorted event "
           f"list), cycles_per_input (the encoder, per input value and step), "
           f"cycles_per_dram_line and cycles_per_dram_run (what the kernel loses per "
           f"line and per piece of a row it reads from DRAM beyond its compute), "
           f"cycles_per_level_line and cycles_per_level_run (the same for rows a cache level "
           f"beyond the first serves, from a matrix of half its size), "
           f"cycles_per_task (driver cost per layer and time step), "
           f"cycles_per_sync (what "
           f"{prog['sync']['cores']} threads add to it), parallel_efficiency (each core's "
           f"accumulate speed with all computing at once over its speed alone)")
    rows = ["measured program (simsnn/program_calibration.py):"]
    for k in ("synop.fp32", "synop.fp16", "neuron_update", "event", "segment.fp32",
              "segment.fp16", "gate_op", "gate_row", "gate_call", "gate_act.relu",
              "gate_act.sigmoid", "gate_select", "cold.call", "cold.gate_select", "spike",
              "input",
              "dram_line", "dram_run", "task",
              "sync"):
        if k not in prog:
            continue
        v = prog[k]
        rows.append(f"  {k:<14} {v['seconds'] * 1e9:10.3f} ns  spread {100 * v['spread']:5.1f} %")
    par = prog["parallel"]
    for d in ("fp32", "fp16"):
        v = prog[f"tail.{d}"]
        rows.append(f"  tail.{d:<9} " + ", ".join(f"{b}: {c * 1e9:.3f}" for b, c in
                                                 v["seconds"].items()) +
                    " ns per element past a block of 8, 16, 32, 64")
    for d in ("fp32", "fp16"):
        if f"unaligned.{d}" in prog:
            rows.append(f"  unaligned.{d:<5} {prog[f'unaligned.{d}']['seconds'] * 1e9:10.3f} ns "
                        "per element of a run off a 32-byte boundary")
    for lv, v in prog.get("level_stall", {}).items():
        rows.append(f"  stall.{lv:<8} {v['line']['seconds'] * 1e9:10.3f} ns per line, "
                    f"{v['run']['seconds'] * 1e9:.3f} ns per run")
    for lv in prog.get("level_stall_skipped", []):
        rows.append(f"  stall.{lv:<8} not timed: less than 8x the level above it")
    rows.append(f"  parallel       efficiency {par['efficiency']:.2f} on {par['cores']} cores, "
                f"spread {100 * par['spread']:5.1f} %")
    return over, [src], "\n".join(rows)
