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
  reads from DRAM beyond its compute (see :func:`simsnn.host.calibrate_memory.dram_stall`);
- spike: the driver's merge of a layer's spikes into the next layer's sorted event list,
  per spike (see :func:`_merge_cost`);
- input: the encoder, per input value and time step (see :func:`_encode_cost`);
- cold driver operations: what a driver call and the gate's selection cost more after a
  stream through twice the last private cache level (see :func:`cold_driver`).
"""
from __future__ import annotations

from simsnn.host.calibrate_conv import (
    conv_event_costs,
    conv_merge_cost,
    pool_cost,
    update_run_cost,
)
from simsnn.host.calibrate_driver import (
    cold_driver,
    encode_cost,
    merge_cost,
    mlp_costs,
    sync_overhead,
    task_overhead,
    time_parallel_efficiency,
)
from simsnn.host.calibrate_layer import (
    event_cost,
    fit_runs,
    measure_runs,
    run_setup,
    unaligned_cost,
)
from simsnn.host.timing import DTYPES, STEPS, layer_args, time_layer


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


def core_counts(cores: int) -> list[int]:
    """The core counts whose multi-core figures a profile of ``cores`` cores holds: the
    powers of two from 2 below it, and ``cores`` (none for one core)."""
    if cores < 2:
        return []
    out, n = [], 2
    while n < cores:
        out.append(n)
        n *= 2
    return out + [cores]


def calibrate_program(clock_hz: float, simd_width: int, repeat: int = 5,
                      quick: bool = False, cores: int = 1,
                      private_bytes: int | None = None,
                      dram: tuple[int, float] | None = None,
                      levels: list[tuple[str, int, int, float]] | None = None) -> dict:
    """Cycles per instruction (simd_width lanes) of the program's operations at ``clock_hz``
    (``private_bytes``: the size of the last private cache level, for the cold driver
    calls; ``dram``: (the largest cache's size, the DRAM latency over the memory-level
    parallelism in seconds) for the DRAM stall per line; ``levels``: the cache levels
    beyond the first, :func:`simsnn.host.calibrate_memory.stall_levels`, for their stall per
    line and per run; None skips them)."""
    inner = 20 if quick else 60
    n_out, n_ev = 1024, 64
    out: dict = {"method": __doc__.split("\n\n")[1].strip() if __doc__ else ""}
    # neuron update (+ bias store) alone
    upd_s, upd_sp = time_layer(layer_args(8, n_out, "fp32", 0), inner * 4, repeat,
                                ("update", n_out))
    per_update = upd_s / (STEPS * n_out)
    out["neuron_update"] = {"seconds": per_update, "spread": upd_sp,
                            "cycles_per_instruction": per_update * clock_hz * simd_width}
    # events against a one-unit segment: per-event overhead
    one_run, ev_sp = event_cost(inner * 4, repeat)
    out["runs"] = measure_runs(inner, repeat, n_ev)
    b16 = fit_runs(out["runs"], one_run, clock_hz, simd_width)["synop.fp16"]["seconds"]
    out["run_setup"] = run_setup(clock_hz, inner, repeat, b16)
    per_event = max(one_run - out["run_setup"]["seconds"], 0.0)
    out["event"] = {"seconds": per_event, "spread": ev_sp, "cycles": per_event * clock_hz,
                    "with_one_run_s": one_run}
    out.update(fit_runs(out["runs"], per_event, clock_hz, simd_width))
    out.update(unaligned_cost(clock_hz, repeat, inner * 3))
    out.update(conv_event_costs(clock_hz, repeat, inner, out["segment.fp16"]["seconds"],
                                out["synop.fp16"]["seconds"]))
    out.update(update_run_cost(clock_hz, repeat, inner))
    out.update(conv_merge_cost(clock_hz, repeat, inner))
    out.update(pool_cost(clock_hz, repeat, inner))
    out.update(mlp_costs(clock_hz, simd_width, repeat, inner))
    if private_bytes:
        out.update(cold_driver(clock_hz, private_bytes, 60 if quick else 200))
    out["spike"] = merge_cost(clock_hz, repeat, inner)
    out["input"] = encode_cost(clock_hz, repeat, inner)
    if dram is not None:
        from simsnn.host.calibrate_memory import dram_stall
        out.update(dram_stall(clock_hz, dram[0], dram[1], 3 if quick else 5))
    if levels:
        from simsnn.host.calibrate_memory import cache_stalls
        out.update(cache_stalls(clock_hz, levels, 3 if quick else 5))
    out["task"] = task_overhead(clock_hz, repeat, inner)
    # the multi-core figures at every core count a workload may run on (2, 4, 8, ...)
    counts = core_counts(cores)
    out["sync_cores"] = {n: sync_overhead(clock_hz, repeat, inner, n, out["task"]["seconds"])
                         for n in counts}
    out["parallel_cores"] = {n: time_parallel_efficiency(repeat, inner, n) for n in counts}
    out["sync"] = out["sync_cores"][cores] if counts else \
        sync_overhead(clock_hz, repeat, inner, 1, 0.0)
    out["parallel"] = out["parallel_cores"][cores] if counts else \
        time_parallel_efficiency(repeat, inner, 1)
    out["noisy"] = [k for k, v in out.items() if isinstance(v, dict) and v.get("spread", 0)
                    > 0.05]
    return out



def program_overrides(prog: dict, date: str) -> tuple[dict, list[str], str]:
    """The core fields of a hardware file from :func:`calibrate_program`: (overrides,
    source strings, header table)."""
    over = {"cycles_per_synop": prog["synop.fp32"]["cycles_per_instruction"],
            "cycles_per_synop_dtype": {d: prog[f"synop.{d}"]["cycles_per_instruction"]
                                       for d in DTYPES},
            "cycles_per_neuron_update": prog["neuron_update"]["cycles_per_instruction"],
            "cycles_per_event": prog["event"]["cycles"],
            "cycles_per_segment": prog["segment.fp32"]["cycles"],
            "cycles_per_segment_dtype": {d: prog[f"segment.{d}"]["cycles"]
                                         for d in DTYPES},
            "cycles_per_tail": prog["tail.fp32"]["cycles"],
            "cycles_per_tail_dtype": {d: prog[f"tail.{d}"]["cycles"] for d in DTYPES},
            "cycles_per_gate_op": prog["gate_op"]["cycles_per_instruction"],
            "cycles_per_gate_row": prog["gate_row"]["cycles"],
            "cycles_per_gate_call": prog["gate_call"]["cycles"],
            "cycles_per_gate_select": prog["gate_select"]["cycles"],
            "cycles_per_gate_act": {a: prog[f"gate_act.{a}"]["cycles"]
                                    for a in ("relu", "sigmoid")},
            "cycles_per_task": prog["task"]["cycles"],
            "cycles_per_conv_event": prog["conv_event"]["cycles"],
            "cycles_per_conv_tap": prog["conv_tap"]["cycles"],
            "cycles_per_conv_spike": prog["conv_spike"]["cycles"],
            "cycles_per_update_run": prog["update_run"]["cycles"],
            "cycles_per_pool_op": prog["pool_op"]["cycles"],
            "cycles_per_spike": prog["spike"]["cycles"],
            "cycles_per_input": prog["input"]["cycles"],
            "cycles_per_unaligned": {d: prog[f"unaligned.{d}"]["cycles"]
                                     for d in DTYPES if f"unaligned.{d}" in prog},
            "cycles_cold": {k: prog[f"cold.{k}"]["cycles"] for k in ("call", "gate_select")
                            if f"cold.{k}" in prog},
            "cycles_per_sync": prog["sync"]["cycles"],
            "parallel_efficiency": prog["parallel"]["efficiency"]}
    if prog.get("parallel_cores"):
        over["parallel_efficiency_cores"] = {n: v["efficiency"]
                                             for n, v in prog["parallel_cores"].items()}
        over["cycles_per_sync_cores"] = {n: v["cycles"] for n, v in prog["sync_cores"].items()}
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
           f"(simsnn.host.calibration, data in L1): cycles_per_synop (fp32), "
           f"cycles_per_synop_dtype (fp32; fp16 and int8 widened in registers), "
           f"cycles_per_conv_event, cycles_per_conv_tap and cycles_per_update_run (a "
           f"convolution's event, valid tap, and the run overhead of the current's init and "
           f"the neuron update), cycles_per_conv_spike (a convolution's spike merge), "
           f"cycles_per_pool_op (average pooling, per input spike), "
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
    rows = ["measured program (simsnn.host.calibration):"]
    for k in ("synop.fp32", "synop.fp16", "synop.int8", "neuron_update", "event",
              "segment.fp32", "segment.fp16", "segment.int8", "conv_event", "conv_tap",
              "update_run", "conv_spike", "pool_op", "gate_op", "gate_row", "gate_call",
              "gate_act.relu", "gate_act.sigmoid", "gate_select", "cold.call",
              "cold.gate_select", "spike", "input", "dram_line", "dram_run", "task",
              "sync"):
        if k not in prog:
            continue
        v = prog[k]
        rows.append(f"  {k:<14} {v['seconds'] * 1e9:10.3f} ns  spread {100 * v['spread']:5.1f} %")
    par = prog["parallel"]
    for d in DTYPES:
        v = prog[f"tail.{d}"]
        rows.append(f"  tail.{d:<9} " + ", ".join(f"{b}: {c * 1e9:.3f}" for b, c in
                                                 v["seconds"].items()) +
                    " ns per element past a block of 8, 16, 32, 64")
    for d in DTYPES:
        if f"unaligned.{d}" in prog:
            rows.append(f"  unaligned.{d:<5} {prog[f'unaligned.{d}']['seconds'] * 1e9:10.3f} ns "
                        "per element of a run off a 32-byte boundary")
    for lv, v in prog.get("level_stall", {}).items():
        rows.append(f"  stall.{lv:<8} {v['line']['seconds'] * 1e9:10.3f} ns per line, "
                    f"{v['run']['seconds'] * 1e9:.3f} ns per run")
    for lv in prog.get("level_stall_skipped", []):
        rows.append(f"  stall.{lv:<8} not timed: less than 8x the level above it")
    for n, p in (prog.get("parallel_cores") or {par["cores"]: par}).items():
        sync = prog.get("sync_cores", {}).get(n, prog["sync"])
        rows.append(f"  parallel       efficiency {p['efficiency']:.2f} on {n} cores, "
                    f"spread {100 * p['spread']:5.1f} %; sync {sync['seconds'] * 1e9:.0f} ns")
    return over, [src], "\n".join(rows)

