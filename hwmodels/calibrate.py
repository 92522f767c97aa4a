"""Calibration micro-benchmarks of the host, compiled with numba (see docs/hw-detect.md).

Every benchmark is timed ``repeat`` times after a warm-up; a figure is the median of the runs
and its ``spread`` is (max - min) / median of the same runs. Figures whose spread exceeds
:data:`NOISY_SPREAD` (5 %) are listed in the report's ``noisy``.

* core clock: a chain of dependent integer add/xor pairs (2 cycles per pair on every x86 and
  Arm core in use: two 1-cycle ALU operations, nothing for the core to overlap). An estimate.
* load latency: pointer chasing through a random cyclic permutation of 64-byte-spaced slots
  (one pointer per cache line, random order defeats the prefetchers), working sets doubling
  from 8 KiB up to ``max_size``.
* memory bandwidth, STREAM-like: a sum reduction over two arrays (read) and a triad
  ``a = b + s*c``, one thread and all threads (``numba.prange``).
* synaptic accumulate: the event-driven inner loop of the SNN kernels, ``cur[j] += w[row, j]``
  over a row of outputs per input event, fp32 weights resident in L2.
* neuron update: ``v = leak*v + cur; spike = v > thr; v = where(spike, 0, v)``.

No performance counters are used: everything is wall-clock time (``time.perf_counter``).
This module never imports ``simsnn``.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import time
from typing import Any, Callable

import numba
import numpy as np
from numba import njit, prange

from hwmodels.hostinfo import KIB, MIB, PLAUSIBLE_CACHE_MAX, HostInfo, fmt_size, read_host

__all__ = [
    "NOISY_SPREAD", "calibrate", "measure_clock", "measure_latency", "measure_bandwidth",
    "measure_synops", "measure_neuron_update", "measure_stream", "assign_latencies",
    "stream_knee", "fp16_supported",
]

NOISY_SPREAD = 0.05
LINE = 64


# ---------------------------------------------------------------------------------------------
# kernels

@njit(cache=True)
def _clock_chain(n, a, b):
    x = a
    for _ in range(n):
        x = (x + a) ^ b        # add then xor: a 2-cycle dependency per iteration
    return x


@njit(cache=True)
def _chase(nxt, start, steps):
    p = start
    for _ in range(steps):
        p = nxt[p]
    return p


@njit(cache=True, fastmath=True)
def _pages_sum(pages, order, passes):
    acc = np.zeros(pages.shape[1], np.float32)
    for _ in range(passes):
        for p in order:
            row = pages[p]
            for i in range(row.shape[0]):   # vectorized: independent lanes
                acc[i] += row[i]
    return acc[0]


@njit(cache=True, fastmath=True)
def _read_1t(b, c):
    s = 0.0
    for i in range(b.size):
        s += b[i] + c[i]
    return s


@njit(cache=True, fastmath=True, parallel=True)
def _read_mt(b, c):
    s = 0.0
    for i in prange(b.size):
        s += b[i] + c[i]
    return s


@njit(cache=True, fastmath=True)
def _triad_1t(a, b, c, s):
    for i in range(a.size):
        a[i] = b[i] + s * c[i]


@njit(cache=True, fastmath=True, parallel=True)
def _triad_mt(a, b, c, s):
    for i in prange(a.size):
        a[i] = b[i] + s * c[i]


@njit(cache=True)
def _synops(w, events, cur, passes):
    n = w.shape[1]
    for _ in range(passes):
        for e in range(events.size):
            row = w[events[e]]
            for j in range(n):
                cur[j] += row[j]


@njit(cache=True)
def _lif(v, cur, spk, leak, thr, steps):
    zero = np.float32(0.0)
    for _ in range(steps):
        for i in range(v.size):
            x = leak * v[i] + cur[i]
            s = x > thr
            spk[i] = s
            v[i] = zero if s else x


def fp16_supported() -> bool:
    """Whether this numba compiles float16 array loads on the CPU (0.68: it does not)."""
    try:
        @njit(cache=False)
        def _probe(w, cur):
            for j in range(w.size):
                cur[j] += w[j]
        _probe(np.ones(4, np.float16), np.zeros(4, np.float32))
        return True
    except Exception:   # numba raises NotImplementedError / TypingError for float16
        return False


_COMPILED = False


def _compile() -> float:
    """Compile (or load from numba's cache) every kernel on tiny inputs; returns seconds."""
    global _COMPILED
    t0 = time.perf_counter()
    if not _COMPILED:
        f64 = np.ones(16)
        _clock_chain(16, 3, 5)
        _chase(np.zeros(8, np.uint64), np.uint64(0), 4)
        _pages_sum(np.ones((2, 16), np.float32), np.arange(2), 1)
        _read_1t(f64, f64)
        _read_mt(f64, f64)
        _triad_1t(f64.copy(), f64, f64, 0.5)
        _triad_mt(f64.copy(), f64, f64, 0.5)
        _synops(np.ones((2, 8), np.float32), np.zeros(2, np.int64), np.zeros(8, np.float32), 1)
        _lif(np.zeros(8, np.float32), np.ones(8, np.float32), np.zeros(8, np.bool_),
             np.float32(0.9), np.float32(1.0), 1)
        _COMPILED = True
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# timing

def _stats(values: list[float]) -> tuple[float, float]:
    med = float(np.median(values))
    spread = (max(values) - min(values)) / med if med > 0 else math.inf
    return med, float(spread)


def _scaled_runs(run: Callable[[int], Any], unit: int, target_s: float, repeat: int,
                 max_units: int = 1 << 30) -> tuple[int, list[float]]:
    """Time ``run(k * unit)`` ``repeat`` times, ``k`` chosen by a warm-up run of one unit so
    that each timed run lasts about ``target_s``. Returns (work per run, seconds per run)."""
    t0 = time.perf_counter()
    run(unit)
    dt = max(time.perf_counter() - t0, 1e-7)
    k = int(min(max(1, math.ceil(target_s / dt)), max_units))
    work = k * unit
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(work)
        times.append(time.perf_counter() - t0)
    return work, times


def _figure(value: float, spread: float, unit: str, what: str, **extra) -> dict:
    return {"value": float(value), "spread": float(spread), "unit": unit, "what": what, **extra}


def _rates(work: float, times: list[float]) -> tuple[float, float]:
    return _stats([work / t for t in times])


# ---------------------------------------------------------------------------------------------
# benchmarks

def measure_clock(repeat: int = 5, target_s: float = 0.2) -> dict:
    """Estimated core clock (Hz) from a chain of dependent add/xor pairs (2 cycles each)."""
    _compile()
    a, b = 0x9E3779B97F4A7C15 & 0x7FFFFFFF, 0x5BD1E995
    work, times = _scaled_runs(lambda n: _clock_chain(n, a, b), 1 << 22, target_s, repeat)
    hz, spread = _rates(2 * work, times)
    return _figure(hz, spread, "Hz", "core clock estimate: dependent integer add+xor chain, "
                   f"2 cycles per pair, {work} pairs per run")


def _chain(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.uint64]:
    """A random cyclic permutation of the 64-byte slots of a ``size``-byte array: each slot's
    first uint64 holds the index of the next slot's first uint64."""
    slots = max(2, size // LINE)
    per = LINE // 8
    order = rng.permutation(slots).astype(np.uint64) * np.uint64(per)
    nxt = np.zeros(slots * per, np.uint64)   # unsigned: no negative-index fix-up in the chain
    nxt[order] = np.roll(order, -1)
    return nxt, order[0]


def measure_latency(sizes: list[int], repeat: int = 5, target_s: float = 0.15,
                    seed: int = 12345) -> list[dict]:
    """ns per dependent load of a pointer chase over each working-set size (bytes)."""
    _compile()
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        nxt, start = _chain(int(size), rng)
        slots = nxt.size // (LINE // 8)
        _chase(nxt, start, min(slots, 1 << 22))     # bring the set into the caches
        unit = 1 << 18 if size > 4 * MIB else 1 << 20
        work, times = _scaled_runs(lambda n, nxt=nxt, s=start: _chase(nxt, s, n), unit,
                                   target_s, repeat)
        ns, spread = _stats([t / work * 1e9 for t in times])
        out.append({"size": int(size), "ns": ns, "spread": spread, "loads": work})
        del nxt
    return out


PAGE = 4 * KIB


def measure_stream(sizes: list[int], repeat: int = 5, target_s: float = 0.1,
                   seed: int = 12345) -> list[dict]:
    """ns per 64-B line of a streaming read of each working-set size (bytes), read again
    and again: whole 4 KiB pages, sequential within a page (the layer kernel's access to a
    weight row), the pages in a random order (no prefetch across pages). The pointer chase's
    latency can jump well before a cache is full (on the development VM at 4-8 MiB of a
    32 MiB L3 that streams whole pages at its rate up to 12-16 MiB); this curve shows the
    capacity that streamed rows get."""
    _compile()
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        n_pages = max(1, int(size) // PAGE)
        pages = np.ones((n_pages, PAGE // 4), np.float32)
        order = rng.permutation(n_pages).astype(np.int64)
        _pages_sum(pages, order, 1)     # bring the set into the caches
        work, times = _scaled_runs(lambda k, p=pages, o=order: _pages_sum(p, o, k), 1,
                                   target_s, repeat, max_units=1 << 20)
        ns, spread = _stats([t / (work * n_pages * (PAGE // LINE)) * 1e9 for t in times])
        out.append({"size": int(n_pages * PAGE), "ns_per_line": ns, "spread": spread})
        del pages
    return out


def stream_knee(stream: list[dict], above: int, cached: int) -> int | None:
    """The largest working set of a :func:`measure_stream` curve that still streams at the
    cache's rate: the curve beyond twice ``above`` (the level above's size) is read against
    its plateau (its fastest point up to ``cached``, a size the cache surely holds) and its
    largest set (DRAM); the knee is the last size before the first one more than a third of
    the way from the plateau to DRAM. None when the curve cannot tell (fewer than 3 points,
    or DRAM less than 1.3x the plateau: a read limited by the core, not the memory)."""
    pts = sorted((p for p in stream if p["size"] > 2 * above), key=lambda p: p["size"])
    if len(pts) < 3:
        return None
    plateau = min((p["ns_per_line"] for p in pts if p["size"] <= cached),
                  default=pts[0]["ns_per_line"])
    top = pts[-1]["ns_per_line"]
    if top < 1.3 * plateau:
        return None
    limit = plateau + (top - plateau) / 3
    knee = None
    for p in pts:
        if p["ns_per_line"] > limit:
            break
        knee = p["size"]
    return knee


def _threads_available(host: HostInfo | None) -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    if host is not None:
        n = min(n, host.count)
    return max(1, min(n, numba.config.NUMBA_NUM_THREADS))


def measure_bandwidth(total_bytes: int, threads: int, repeat: int = 5,
                      target_s: float = 0.2) -> dict[str, dict]:
    """STREAM-like bandwidth (bytes/s) over three float64 arrays of ``total_bytes`` together:
    read = sum over two arrays (16 B per element), triad a = b + s*c (24 B per element,
    STREAM's count: the write-allocate read of ``a`` is not counted)."""
    _compile()
    n = max(1024, total_bytes // (3 * 8))
    a = np.zeros(n)
    b = np.full(n, 1.5)
    c = np.full(n, 0.25)
    out = {}
    prev = numba.get_num_threads()

    def passes(fn):
        def run(k):
            for _ in range(k):
                fn()
        return run

    try:
        for label, nthreads in (("1t", 1), ("all", threads)):
            numba.set_num_threads(nthreads)
            if nthreads == 1:
                rd, tr = (lambda: _read_1t(b, c)), (lambda: _triad_1t(a, b, c, 3.0))
            else:
                rd, tr = (lambda: _read_mt(b, c)), (lambda: _triad_mt(a, b, c, 3.0))
            work, times = _scaled_runs(passes(rd), 1, target_s, repeat, max_units=10000)
            bw, spread = _rates(16 * n * work, times)
            out[f"read_bw_{label}"] = _figure(
                bw, spread, "B/s", f"streaming read (sum reduction), {nthreads} thread(s), "
                f"2 x {fmt_size(8 * n) if (8 * n) % KIB == 0 else f'{8 * n} B'} arrays")
            work, times = _scaled_runs(passes(tr), 1, target_s, repeat, max_units=10000)
            bw, spread = _rates(24 * n * work, times)
            out[f"triad_bw_{label}"] = _figure(
                bw, spread, "B/s", f"triad a = b + s*c, {nthreads} thread(s), 24 B per element "
                "(write-allocate not counted)")
    finally:
        numba.set_num_threads(prev)
    return out


def measure_synops(l2_bytes: int | None, repeat: int = 5, target_s: float = 0.2,
                   n_out: int = 1024, events: int = 4096, seed: int = 7) -> dict:
    """fp32 synaptic accumulates per second, one thread: for each input event, ``cur[j] +=
    w[row, j]`` over ``n_out`` outputs; the weights take about half of L2 (256 rows at most)."""
    _compile()
    budget = (l2_bytes or 1 * MIB) // 2
    rows = int(max(8, min(256, budget // (n_out * 4))))
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((rows, n_out)) * 0.01).astype(np.float32)
    ev = rng.integers(0, rows, events).astype(np.int64)
    cur = np.zeros(n_out, np.float32)
    work, times = _scaled_runs(lambda k: _synops(w, ev, cur, k), 1, target_s, repeat)
    rate, spread = _rates(float(work) * events * n_out, times)
    return _figure(rate, spread, "1/s", f"fp32 synaptic accumulates, one thread, weights "
                   f"{rows} x {n_out} fp32 = {fmt_size(rows * n_out * 4)}, {events} random "
                   "events per pass", rows=rows, n_out=n_out)


def measure_neuron_update(repeat: int = 5, target_s: float = 0.2, n: int = 4096,
                          seed: int = 11) -> dict:
    """LIF neuron updates per second, one thread, ``n`` fp32 neurons (:func:`calibrate` picks
    the largest of 4096, 2048, 1024 whose state, 9 bytes per neuron, fits in L1d)."""
    _compile()
    rng = np.random.default_rng(seed)
    v = np.zeros(n, np.float32)
    cur = rng.uniform(0.0, 0.2, n).astype(np.float32)
    spk = np.zeros(n, np.bool_)
    leak, thr = np.float32(0.9), np.float32(1.0)
    work, times = _scaled_runs(lambda k: _lif(v, cur, spk, leak, thr, k), 64, target_s,
                               repeat)
    rate, spread = _rates(float(work) * n, times)
    return _figure(rate, spread, "1/s", f"LIF updates (leak, add, compare, reset, spike "
                   f"store), one thread, {n} fp32 neurons", n=n)


# ---------------------------------------------------------------------------------------------
# latency per cache level

def assign_latencies(host: HostInfo, curve: list[dict], stream: list[dict] | None = None
                     ) -> tuple[list[dict], dict, list[str]]:
    """Give each cache level the latency measured at the largest working set not above half its
    capacity, and DRAM the latency of the largest working set. A level that measures more
    than half DRAM's latency at half its capacity gets an ``effective`` size: where the
    latency curve stays below half DRAM's, or, given a :func:`measure_stream` curve that
    streams at the cache's rate further (the chase's jump was not the capacity), the
    :func:`stream_knee` (at most the reported size); its latency in both cases from the
    chase at half the latency knee. Returns (levels, dram, notes)."""
    notes: list[str] = []
    if not curve:
        raise ValueError("empty latency curve")
    largest = curve[-1]
    levels = []
    for c in host.caches:
        half = c.size // 2
        below = [p for p in curve if p["size"] <= half]
        capped = half > largest["size"]
        if capped:
            p = largest
            notes.append(f"{c.name} reports {fmt_size(c.size)}: half of it is beyond the largest "
                         f"measured working set, its latency is capped at the "
                         f"{fmt_size(p['size'])} probe")
        elif below:
            p = below[-1]
        else:
            p = curve[0]
            notes.append(f"{c.name} ({fmt_size(c.size)}) is smaller than twice the smallest "
                         f"probe: latency from the {fmt_size(p['size'])} probe")
        if c.size > PLAUSIBLE_CACHE_MAX:
            notes.append(f"{c.name} reports {fmt_size(c.size)}, more than any real per-die "
                         f"cache ({fmt_size(PLAUSIBLE_CACHE_MAX)} assumed at most): likely a "
                         "hypervisor-made size; its latency is what the probe measured, "
                         "probably DRAM")
        levels.append({"name": c.name, "level": c.level, "size": c.size, "probe": p["size"],
                       "ns": p["ns"], "spread": p["spread"], "capped": capped})
    plausible = [c.size for c in host.caches if c.size <= PLAUSIBLE_CACHE_MAX]
    biggest = max(plausible, default=0)
    if largest["size"] > 2 * biggest:
        bound = "measured"
    else:
        bound = "lower bound"
        notes.append(f"DRAM latency is a lower bound: the largest working set "
                     f"{fmt_size(largest['size'])} is not more than 2x the largest plausible "
                     f"cache ({fmt_size(biggest)}), so part of the loads still hit it")
    dram = {"probe": largest["size"], "ns": largest["ns"], "spread": largest["spread"],
            "bound": bound}
    fast = [p for p in curve if p["ns"] < 0.5 * largest["ns"]]
    for k, lv in enumerate(levels):
        if bound == "measured" and lv["probe"] < largest["size"] and \
                lv["ns"] >= 0.5 * largest["ns"] and fast:
            knee = fast[-1]["size"]
            inner = levels[k - 1]["size"] if k else 0
            s_knee = stream_knee(stream, inner, knee) if stream else None
            by_stream = s_knee is not None and s_knee > knee
            size = min(s_knee, lv["size"]) if by_stream else knee
            if inner < knee < lv["size"]:
                # the capacity this host really gets, its latency probed at half the
                # latency knee (beyond it the chase pays page walks)
                half = [p for p in curve if p["size"] <= knee // 2] or curve[:1]
                lv["effective"] = {"size": size, "probe": half[-1]["size"],
                                   "ns": half[-1]["ns"], "spread": half[-1]["spread"]}
                if by_stream:
                    lv["effective"]["latency_knee"] = knee
            notes.append(f"{lv['name']} at half its reported {fmt_size(lv['size'])} measures "
                         f"{lv['ns']:.3g} ns, more than half of DRAM's {largest['ns']:.3g} ns "
                         f"(the latency curve stays below half the DRAM latency up to "
                         f"{fmt_size(knee)}, e.g. {fast[-1]['ns']:.3g} ns there)"
                         + (f"; whole 4 KiB pages still stream at the cache's rate up to "
                            f"{fmt_size(s_knee)}: the cache holds more than the chase's "
                            f"jump suggests (a random line per load pays more there: page "
                            f"walks, or the replacement of isolated lines)" if by_stream else
                            "; noisy neighbours, cache partitioning or TLB reach")
                         + (f"; the profile models it at {fmt_size(size)}, its latency probed "
                            f"at {fmt_size(half[-1]['size'])}" if "effective" in lv else ""))
    return levels, dram, notes


# ---------------------------------------------------------------------------------------------

def _pow2_sizes(lo: int, hi: int) -> list[int]:
    out, s = [], lo
    while s <= hi:
        out.append(s)
        s *= 2
    return out


def _stream_sizes(lo: int, hi: int) -> list[int]:
    """Powers of two and 1.5x them from ``lo`` to ``hi``."""
    return sorted(set(x for p in _pow2_sizes(lo, hi) for x in (p, p * 3 // 2) if x <= hi))


def calibrate(host: HostInfo | None = None, quick: bool = False, repeat: int | None = None, *,
              max_size: int | None = None, stream_bytes: int | None = None,
              target_s: float | None = None,
              progress: Callable[[str], None] | None = None) -> dict:
    """Run every benchmark and return the calibration report (a plain dict).

    Full: latency up to 256 MiB, 192 MiB of stream arrays, ~0.3-0.4 s per timed run, 5 runs
    (about 45 s on a 2-core VM). Quick: 64 MiB, 64 MiB, ~0.05 s per run, 3 runs (about 10 s).
    ``max_size``, ``stream_bytes`` and ``target_s`` override those (tests use tiny values).
    ``progress``, if given, is called with a short message before each benchmark."""
    say = progress or (lambda msg: None)
    t_start = time.perf_counter()
    load_before, stat_before = _loadavg(), _cpu_times()
    host = host if host is not None else read_host()
    repeat = repeat or (3 if quick else 5)
    max_size = max_size or (64 * MIB if quick else 256 * MIB)
    stream_bytes = stream_bytes or (64 * MIB if quick else 192 * MIB)
    target = target_s if target_s is not None else (0.05 if quick else 0.4)
    notes: list[str] = []
    say("compiling the benchmarks (numba)")
    compile_s = _compile()

    figures: dict[str, dict] = {}
    say("core clock")
    figures["clock_hz"] = measure_clock(repeat, target)
    clock = figures["clock_hz"]["value"]
    nominal = host.nominal_mhz
    if nominal:
        figures["clock_hz"]["nominal_hz"] = nominal * 1e6
        ratio = clock / (nominal * 1e6)
        if abs(ratio - 1) > 0.1:
            notes.append(f"measured clock {clock / 1e9:.3f} GHz is {ratio:.2f}x the nominal "
                         f"{nominal:.0f} MHz (turbo, power saving or a TSC-derived 'cpu MHz')")

    say(f"load latency (pointer chase, 8 KiB to {fmt_size(max_size)})")
    curve = measure_latency(_pow2_sizes(8 * KIB, max_size), repeat, target * 0.75)
    levels, dram, lat_notes = assign_latencies(host, curve)
    stream: list[dict] = []
    flagged = [k for k, lv in enumerate(levels) if "effective" in lv]
    if flagged:  # is the latency knee the cache's capacity for streamed rows?
        above = levels[flagged[0] - 1]["size"] if flagged[0] else 4 * KIB
        say(f"streaming read by working set ({fmt_size(2 * above)} to "
            f"{fmt_size(max_size)})")
        stream = measure_stream(_stream_sizes(2 * above, max_size), repeat, target * 0.25)
        levels, dram, lat_notes = assign_latencies(host, curve, stream)
    notes += lat_notes

    say("memory bandwidth")
    threads = _threads_available(host)
    figures.update(measure_bandwidth(stream_bytes, threads, repeat, target))
    for kind in ("read", "triad"):
        one, every = figures[f"{kind}_bw_1t"]["value"], figures[f"{kind}_bw_all"]["value"]
        if threads > 1 and every < one:
            notes.append(f"{kind} bandwidth with {threads} threads ({every / 1e9:.3g} GB/s) is "
                         f"below one thread's ({one / 1e9:.3g} GB/s): another process held a "
                         "CPU, or the vCPUs share a physical core")
    plausible = max((c.size for c in host.caches if c.size <= PLAUSIBLE_CACHE_MAX), default=0)
    if stream_bytes < 4 * plausible:
        notes.append(f"stream arrays ({fmt_size(stream_bytes)} in all) are less than 4x the "
                     f"largest cache ({fmt_size(plausible)}): the bandwidths may include "
                     "cache hits")

    say("synaptic accumulate")
    l2 = next((c.size for c in host.caches if c.level == 2), None)
    figures["synop_fp32_per_s"] = measure_synops(l2, repeat, target)
    figures["synop_fp32_per_s"]["cycles_per_synop"] = clock / figures["synop_fp32_per_s"][
        "value"]
    if fp16_supported():
        notes.append("numba compiles float16 loads on this CPU, but fp16 synops are not "
                     "calibrated yet")
    else:
        notes.append(f"fp16 synops not calibrated: numba {numba.__version__} has no float16 "
                     "arrays on the CPU")
    say("neuron update")
    l1 = next((c.size for c in host.caches if c.level == 1), None)
    n_neurons = 4096
    while l1 and n_neurons > 1024 and 9 * n_neurons > l1:   # v, cur (fp32) + spikes in L1
        n_neurons //= 2
    figures["neuron_update_per_s"] = measure_neuron_update(repeat, target, n=n_neurons)
    figures["neuron_update_per_s"]["cycles_per_update"] = clock / figures[
        "neuron_update_per_s"]["value"]

    for lv in levels:
        lv["cycles"] = lv["ns"] * 1e-9 * clock
    dram["cycles"] = dram["ns"] * 1e-9 * clock

    noisy = [k for k, v in figures.items() if not v["spread"] <= NOISY_SPREAD]
    noisy += [f"latency@{fmt_size(p['size'])}" for p in curve
              if not p["spread"] <= NOISY_SPREAD]
    bad = [k for k, v in figures.items() if not (math.isfinite(v["value"]) and v["value"] > 0)]
    if bad:
        raise RuntimeError(f"calibration produced non-positive or non-finite figures: {bad}")
    load_after, stat_after = _loadavg(), _cpu_times()
    if load_before is not None and load_after is not None:
        busy = ""
        if stat_before and stat_after and len(stat_before) > 7:
            d = [b - a for a, b in zip(stat_before, stat_after)]
            if sum(d) > 0:
                busy = f", CPU steal {100 * d[7] / sum(d):.1f} % of the time"
        notes.append(f"1-minute load average {load_before:.2f} before, {load_after:.2f} after "
                     f"the run{busy} (a load above the benchmark's own suggests other work "
                     "shared the CPUs)")
    try:
        thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read().strip()
        notes.append(f"transparent huge pages: {thp} (numpy asks for huge pages on large "
                     "arrays; 4 KiB pages would add page walks to the large-set latencies)")
    except OSError:
        pass
    return {
        "date": _dt.date.today().isoformat(),
        "quick": quick,
        "repeat": repeat,
        "threads": threads,
        "numba": numba.__version__,
        "threading_layer": _threading_layer(),
        "max_size": max_size,
        "stream_bytes": stream_bytes,
        "target_s": target,
        "figures": figures,
        "latency_curve": curve,
        "stream_curve": stream,
        "levels": levels,
        "dram": dram,
        "noisy": noisy,
        "notes": notes,
        "compile_s": compile_s,
        "elapsed_s": time.perf_counter() - t_start,
    }


def _loadavg() -> float | None:
    try:
        with open("/proc/loadavg") as fh:
            return float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_times() -> list[int] | None:
    try:
        with open("/proc/stat") as fh:
            first = fh.readline().split()
        return [int(x) for x in first[1:]] if first and first[0] == "cpu" else None
    except (OSError, ValueError):
        return None


def _threading_layer() -> str:
    try:
        return str(numba.threading_layer())
    except ValueError:
        return "unknown"
