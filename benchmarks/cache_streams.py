"""The exact cache model against pycachesim on three kinds of address stream.

    python benchmarks/cache_streams.py [--hardware configs/hardware/host.yaml] [--repeat 7]

Every contender gets the stream the way a trace tool hands it over, through its public entry
point, and the contenders alternate in one process (best of ``--repeat`` each):

- ``spike-lines``: one address per line, the spike-trace stream of an event-driven dense layer
  of 4096 x 4096 fp32 weights at a 10 % input spike rate: per time step, the weight row of
  every spiking input, line after line, then every membrane line read and written. 20 steps.
- ``random``: 2,000,000 uniformly random addresses over 256 MiB.
- ``lowered``: the range stream of the shipped ``mnist-dense`` model lowered for one core
  (20 MNIST test images; one ``(address, length)`` per access).

pycachesim 0.3.1 (the C backend) takes the fastest call it has for each: one bulk
``CacheSimulator.load(list)`` of every line, and for ranges also a ``load(addr, length)`` per
range; the faster counts. As pycachesim's store semantics differ from ours, the race is on
loads (stores replayed as loads): hits and misses of every level must be identical. The same
streams with their stores are then replayed through ``simulate_cache`` and through our
line-by-line path (no run finding, the plain form), whose counters must be identical too.
Hierarchy: the three cache levels of the hardware file (default: this machine's detected
profile). Results: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
from cache_throughput import (  # (benchmarks/ is the script's folder)
    pycachesim_hierarchy,
    pycachesim_ranges,
)
from numba import njit

from hwmodels.cache import CacheHierarchy, geometry, simulate_cache
from hwmodels.loader import load_hardware


@njit(cache=True)
def plain_lru(lines, sets, ways, misses):  # pragma: no cover - compiled
    """The reference for streams without runs: a minimal compiled LRU hierarchy (loads only,
    per set its lines most recent first, each level in turn while it misses)."""
    tags = [np.full(sets[i] * ways[i], -1, np.int64) for i in range(sets.shape[0])]
    for x in lines:
        for lv in range(sets.shape[0]):
            t = tags[lv]
            w = ways[lv]
            base = (x % sets[lv]) * w
            found = -1
            for k in range(w):
                if t[base + k] == x:
                    found = k
                    break
            last = w - 1 if found < 0 else found
            for k in range(last, 0, -1):
                t[base + k] = t[base + k - 1]
            t[base] = x
            if found >= 0:
                break
            misses[lv] += 1


def spike_lines(seed=0, n=4096, rate=0.1, steps=20, line=64):
    """(addresses, writes): one access per line, loads of the spiking inputs' rows, then each
    membrane line loaded and stored."""
    rng = np.random.default_rng(seed)
    row_lines = n * 4 // line
    w_base, v_base = 0, 1 << 28
    rows = np.arange(row_lines) * line
    mem = v_base + rows
    addr, wr = [], []
    for _ in range(steps):
        spikes = np.flatnonzero(rng.random(n) < rate)
        a = (w_base + spikes[:, None] * (n * 4) + rows[None, :]).ravel()
        addr += [a, np.repeat(mem, 2)]
        wr += [np.zeros(a.shape[0], bool), np.tile([False, True], row_lines)]
    return np.concatenate(addr), np.concatenate(wr)


def random_lines(seed=1, n=2_000_000, span=256 << 20, store_share=0.3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, span, n, dtype=np.int64), rng.random(n) < store_share


def lowered(samples=20):
    import simsnn
    from simsnn.datasets import load_dataset
    from simsnn.lowering import lower
    net = simsnn.load_network("mnist-dense")
    x = load_dataset("mnist").x_test[:samples]
    _, trace = simsnn.run_network(net, x, record=True)
    wl = lower(net, trace, cores=1)
    o = wl.replay_order()
    return wl.addr[o], wl.length[o], wl.write[o]


def per_line(addr, length, line=64):
    first = addr // line
    cnt = (addr + length - 1) // line + 1 - first
    idx = np.repeat(np.arange(first.shape[0]), cnt)
    return ((first[idx] + np.arange(idx.shape[0]) - np.repeat(np.cumsum(cnt) - cnt, cnt))
            * line)


def race(name, geo, addr, writes, length, repeat):
    levels = [{"size": g.size, "line": g.line, "ways": g.ways} for g in geo]
    lines_list = (addr if length is None else per_line(addr, length)).tolist()

    def ours():
        return simulate_cache(levels, addr, lengths=length)

    def pcs_lines():
        cs = pycachesim_hierarchy(geo)
        cs.load(lines_list)
        return list(cs.stats())

    def pcs_ranges():
        return pycachesim_ranges(geo, addr, length)

    line_ids = (addr if length is None else per_line(addr, length)) // geo[0].line
    sets = np.array([g.sets for g in geo], np.int64)
    ways = np.array([g.ways for g in geo], np.int64)

    def plain():
        misses = np.zeros(len(geo), np.int64)
        plain_lru(line_ids, sets, ways, misses)
        return misses

    contenders = {"ours": ours, "pycachesim_lines": pcs_lines, "plain_lru": plain}
    if length is not None:
        contenders["pycachesim_ranges"] = pcs_ranges
    ours()  # compile
    plain_lru(line_ids[:10], sets, ways, np.zeros(len(geo), np.int64))
    best = {k: float("inf") for k in contenders}
    out = {}
    for _ in range(repeat):
        for k, fn in contenders.items():
            t = time.perf_counter()
            out[k] = fn()
            best[k] = min(best[k], time.perf_counter() - t)
    assert list(out["plain_lru"]) == [o["misses"] for o in out["ours"][: len(geo)]]
    for k in ("pycachesim_lines", "pycachesim_ranges"):
        if k not in contenders:
            continue
        for r, o in zip(out[k][: len(geo)], out["ours"]):
            assert (r["HIT_count"], r["MISS_count"]) == (o["hits"], o["misses"]), (k, r, o)
    t_pcs = min(v for k, v in best.items() if k.startswith("pycachesim"))

    # with their stores: the public entry point against our line-by-line path
    def line_by_line():
        h = CacheHierarchy(levels, mode="plain", runs=False)
        h.access(addr, length, writes)
        return h.stats()

    def ours_rw():
        return simulate_cache(levels, addr, writes=writes, lengths=length)

    line_by_line()
    t_ref = t_rw = float("inf")
    for _ in range(max(2, repeat // 2)):
        t = time.perf_counter()
        s_ref = line_by_line()
        t_ref = min(t_ref, time.perf_counter() - t)
        t = time.perf_counter()
        s_rw = ours_rw()
        t_rw = min(t_rw, time.perf_counter() - t)
    assert s_ref == s_rw, (s_ref, s_rw)
    n_lines = len(lines_list)
    return {
        "stream": name, "accesses": int(addr.shape[0]), "lines": n_lines,
        "counts_identical": True,
        **{f"{k}_s": v for k, v in best.items()},
        "speedup_vs_pycachesim": t_pcs / best["ours"],
        "vs_plain_compiled_lru": best["plain_lru"] / best["ours"],
        "plain_lru_mlines_per_s": n_lines / best["plain_lru"] / 1e6,
        "ours_mlines_per_s": n_lines / best["ours"] / 1e6,
        "pycachesim_mlines_per_s": n_lines / t_pcs / 1e6,
        "with_stores_s": t_rw, "line_by_line_with_stores_s": t_ref,
        "with_stores_mlines_per_s": n_lines / t_rw / 1e6,
        "line_by_line_mlines_per_s": n_lines / t_ref / 1e6,
        "misses": [o["misses"] for o in out["ours"][: len(geo)]],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hardware", default="configs/hardware/host.yaml")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--streams", nargs="+", default=["spike-lines", "random", "lowered"])
    ap.add_argument("--json")
    args = ap.parse_args()
    hw = load_hardware(args.hardware)
    geo = [geometry(m) for m in hw.memory if getattr(m, "type", "cache") == "cache"]
    res = {"hardware": args.hardware,
           "levels": [f"{g.size // 1024} KiB/{g.ways}w" for g in geo], "streams": []}
    for name in args.streams:
        if name == "spike-lines":
            a, w = spike_lines()
            r = race(name, geo, a, w, None, args.repeat)
        elif name == "random":
            a, w = random_lines()
            r = race(name, geo, a, w, None, args.repeat)
        else:
            a, n, w = lowered()
            r = race(name, geo, a, w, n, args.repeat)
        print(json.dumps(r), flush=True)
        res["streams"].append(r)
    if args.json:
        from simsnn.io import write_json_atomic
        write_json_atomic(args.json, res)


if __name__ == "__main__":
    main()
