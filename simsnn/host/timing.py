"""Timing the measured program's kernels: best-of timings pooled over rounds, and the arrays
of a layer placed as the program places them. The base of every calibration in this
package (simsnn.host.calibrate_*)."""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np

from simsnn.host import kernels as mk

#: the int8 scale argument of the kernels (and the scale of the benchmarks' int8 weights)
ONE = np.float32(1.0)
#: weight dtypes of the program and their storage (fp16 as its bit patterns)
DTYPES = ("fp32", "fp16", "int8")
STORAGE = {"fp32": np.float32, "fp16": np.uint16, "int8": np.int8}

STEPS = 9


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


def layer_args(n_rows: int, n_out: int, dtype: str, n_events: int, T: int = STEPS):
    rng = np.random.default_rng(0)
    w32 = (rng.standard_normal((n_rows, n_out)) * 0.01).astype(np.float32)
    w, cur, state = layer_arrays(n_rows, n_out, STORAGE[dtype])
    if dtype == "fp16":
        w[...] = w32.astype(np.float16).view(np.uint16)
    elif dtype == "int8":
        w[...] = np.clip(np.rint(w32 * 1e4), -127, 127).astype(np.int8)
    else:
        w[...] = w32
    n_ev = max(n_events, 1)
    ev_idx = np.tile(np.arange(n_ev, dtype=np.int32) % n_rows, (T, 1))
    ev_val = np.ones((T, n_ev), np.float32)
    ev_n = np.full(T, n_events, np.int64)
    return dict(T=T, ev_idx=ev_idx, ev_val=ev_val, ev_n=ev_n, in_perm=np.arange(n_rows,
                dtype=np.int64), w=w, bias=np.zeros(0, w.dtype),
                cur=cur, state=state,
                s0=np.array([0], np.int64), sl=np.array([n_out], np.int64),
                spk=np.zeros((1, T, n_out), np.int64), spk_n=np.zeros((1, T), np.int64))


#: the pool of :func:`pooled_timings` in use (None: none)
_POOL: dict | None = None


@contextmanager
def pooled_timings(pool: dict):
    """Inside the block, every timing that names itself (``key`` of :func:`best_of`) is its
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


def best_of(call, inner: int, repeat: int, key=None) -> tuple[float, float]:
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


def time_layer(a: dict, inner: int, repeat: int, key=None) -> tuple[float, float]:
    """:func:`best_of` one layer kernel call with the arguments ``a``."""
    def call():
        mk.layer_one_core(a["T"], a["ev_idx"], a["ev_val"], a["ev_n"], True, a["in_perm"],
                          a["w"], ONE, a["bias"], ONE, False, a["cur"], a["state"], a["s0"],
                          a["sl"],
                          False, np.float32(0.9), np.float32(1e9), False, np.float32(0.0),
                          a["spk"], a["spk_n"])
    return best_of(call, inner, repeat, key)


def per_event(n_out: int, dtype: str, inner: int, repeat: int, n_ev: int = 64,
               s0=(0,), sl=None) -> tuple[float, float]:
    """Seconds per event of a layer of ``n_out`` units whose open runs start at ``s0`` and
    are ``sl`` long (default: one run of all units), ``n_ev`` events per step on 8
    L1-resident rows, less the same layer with no events; and the spread."""
    out, spread = [], 0.0
    for k in (n_ev, 0):
        a = layer_args(8, n_out, dtype, k)
        a["s0"] = np.asarray(s0, np.int64)
        a["sl"] = np.asarray([n_out] if sl is None else sl, np.int64)
        key = ("layer", n_out, dtype, k, tuple(a["s0"].tolist()), tuple(a["sl"].tolist()))
        sec, sp = time_layer(a, inner, repeat, key)
        out.append(sec)
        spread = max(spread, sp)
    return (out[0] - out[1]) / (STEPS * n_ev), spread


@contextmanager
def threads(n: int):
    """Run the block with ``n`` numba threads, then restore the previous count."""
    import numba
    before = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(before)



def speed_probe(repeat: int = 3, n: int = 1 << 21) -> float:
    """Seconds of a fixed chain of ``n`` dependent integer add/xor pairs (hwmodels'
    clock benchmark, about a millisecond), the best of ``repeat``: how fast this core runs
    scalar code right now. Against its best in a session it tells a round taken while the
    machine was slowed (another tenant on the core, a lower clock) from a quiet one."""
    from hwmodels.calibrate import _clock_chain
    a, b = 0x9E3779B97F4A7C15 & 0x7FFFFFFF, 0x5BD1E995
    _clock_chain(16, a, b)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        _clock_chain(n, a, b)
        best = min(best, time.perf_counter() - t0)
    return best


#: a round whose speed probe ran this much slower than the session's best probe was taken
#: while the machine was slowed: it does not count as settled
LOADED = 1.08


class Probes:
    """The speed probes of a session's rounds: each round is probed before and after its
    work; :meth:`loaded` says whether either probe ran :data:`LOADED` times slower than the
    best probe of the session."""

    def __init__(self):
        self.rounds: list[tuple[float, float]] = []

    def around(self, work):
        """Run ``work()`` between two probes; return its result."""
        before = speed_probe()
        out = work()
        self.rounds.append((before, speed_probe()))
        return out

    @property
    def best(self) -> float:
        return min(min(r) for r in self.rounds)

    def slowdown(self, i: int = -1) -> float:
        """Round ``i``'s slower probe over the session's best."""
        return max(self.rounds[i]) / self.best

    def loaded(self, i: int = -1) -> bool:
        return self.slowdown(i) > LOADED

    def summary(self) -> dict:
        return {"rounds": len(self.rounds),
                "loaded": [i for i in range(len(self.rounds)) if self.loaded(i)],
                "slowdown": [round(self.slowdown(i), 3) for i in range(len(self.rounds))]}
