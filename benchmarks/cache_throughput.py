"""Exact cache model vs pycachesim on the address streams of real spike traces.

    python benchmarks/cache_throughput.py [--samples 20] [--network mnist-dense]

Records the trace of a shipped MNIST-subset model on the test images, lowers it onto the
Zen 4 preset (one core), and replays the same stream (all accesses as loads, since pycachesim's
store semantics differ from ours) through (a) pycachesim's fastest bulk call for these streams
and (b) hwmodels' exact LRU hierarchy. Counts must be identical; prints the throughput ratio.
Also times one simulated inference end to end and the native (numba) inference of the same
network. Results are recorded in docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import simsnn
from hwmodels.cache import CacheHierarchy
from hwmodels.loader import load_hardware
from simsnn.datasets import load_dataset
from simsnn.lowering import lower


def pycachesim_hierarchy(levels):
    import cachesim
    mem = cachesim.MainMemory()
    prev = None
    for lv in reversed(levels):
        c = cachesim.Cache(lv.name, lv.sets, lv.ways, lv.line, "LRU", store_to=prev,
                           load_from=prev)
        if prev is None:
            mem.load_to(c)
            mem.store_from(c)
        prev = c
    return cachesim.CacheSimulator(prev, mem)


def pycachesim_ranges(geo, addr, length) -> list:
    """pycachesim's per-level stats after a ``load(addr, length)`` per range."""
    cs = pycachesim_hierarchy(geo)
    load = cs.first_level.load
    for a, n in zip(addr.tolist(), length.tolist()):
        load(a, length=n)
    return list(cs.stats())


def best_of(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--network", default="mnist-dense")
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--hardware", default="zen4-epyc")
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--json")
    args = ap.parse_args()

    net = simsnn.load_network(args.network)
    hw = load_hardware(args.hardware)
    ds = load_dataset("mnist")
    x = ds.x_test[: args.samples]
    simsnn.run_network(net, x[:2])  # compile
    t_native, (_, trace) = best_of(lambda: simsnn.run_network(net, x, record=True), 3)
    wl = lower(net, trace, cores=1)
    order = wl.replay_order()
    addr, length = wl.addr[order], wl.length[order]
    from hwmodels.cache import geometry
    geo = [geometry(m) for m in hw.memory]
    lines = int(((addr + length - 1) // 64 + 1 - addr // 64).sum())

    def ours():
        h = CacheHierarchy(geo)
        h.access(addr, length)
        return h.stats()

    def pcs_ranges():
        return pycachesim_ranges(geo, addr, length)

    first = addr // 64
    cnt = (addr + length - 1) // 64 + 1 - first
    idx = np.repeat(np.arange(first.shape[0]), cnt)
    per_line = ((first[idx] + np.arange(idx.shape[0]) - np.repeat(np.cumsum(cnt) - cnt, cnt))
                * 64).tolist()

    def pcs_lines():
        cs = pycachesim_hierarchy(geo)
        cs.load(per_line)
        return list(cs.stats())

    # alternate the contenders, keep each one's best: the machine is shared and noisy
    ours()  # compile
    t_ours = t_ranges = t_lines = float("inf")
    for _ in range(args.repeat):
        t, s_ours = best_of(ours, 1)
        t_ours = min(t_ours, t)
        t, s_ranges = best_of(pcs_ranges, 1)
        t_ranges = min(t_ranges, t)
        t, s_lines = best_of(pcs_lines, 1)
        t_lines = min(t_lines, t)
    for ref in (s_ranges, s_lines):
        for r, o in zip(ref[: len(geo)], s_ours):
            assert (r["HIT_count"], r["MISS_count"]) == (o["hits"], o["misses"]), (r, o)
    t_pcs = min(t_ranges, t_lines)

    one = trace.subset(slice(0, 1))
    simsnn.simulate(net, one, hw, cores=1)  # compile
    t_sim, _ = best_of(lambda: simsnn.simulate(net, one, hw, cores=1), args.repeat)
    res = {
        "network": args.network, "samples": args.samples, "hardware": args.hardware,
        "ranges": int(addr.shape[0]), "lines": lines,
        "counts_identical": True,
        "ours_s": t_ours, "pycachesim_ranges_s": t_ranges, "pycachesim_lines_s": t_lines,
        "ours_mlines_per_s": lines / t_ours / 1e6,
        "pycachesim_mlines_per_s": lines / t_pcs / 1e6,
        "speedup_vs_best_pycachesim": t_pcs / t_ours,
        "one_inference_simulated_s": t_sim,
        "native_inference_s_per_sample": t_native / args.samples,
        "simulator_slowdown": t_sim / (t_native / args.samples),
        "per_level": [{k: s[k] for k in ("name", "hits", "misses")} for s in s_ours[:-1]],
    }
    print(json.dumps(res, indent=2))
    if args.json:
        from simsnn.io import write_json_atomic
        write_json_atomic(args.json, res)


if __name__ == "__main__":
    main()
