"""Miss-count error and speed of the reuse-distance fast mode against the exact LRU mode.

    python benchmarks/reuse_error.py [--samples 16] [--cores 1 2] [--seed 0]
    python benchmarks/reuse_error.py --synthetic ...

By default the workloads are the shipped MNIST-subset models (dense, per-layer gated,
task-specialized) lowered with their real traces on the first test images, priced on the
zen4-epyc and xeon-vm-2c presets. With ``--synthetic`` they are synthetic, spike-like replays
of a 784-1024-1024-10 dense SNN (fp16 weights, fp32 membranes), layer by layer and time step by
time step, with each layer's columns split among the cores; and a per-layer gated variant that
reads only the shared quarter of the hidden columns plus 1-2 of 8 column groups (unaligned
segments). Any :class:`hwmodels.Workload` can be passed
to :func:`error_report` instead.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from hwmodels.cache import CacheHierarchy, geometry
from hwmodels.reuse import ReuseProfile, price, profile_workload, set_counts
from hwmodels.workload import Workload

ZEN4 = [{"name": "L1d", "size": 32 << 10, "line": 64, "ways": 8},
        {"name": "L2", "size": 1 << 20, "line": 64, "ways": 8},
        {"name": "L3", "size": 32 << 20, "line": 64, "ways": 16, "shared": True}]
ZEN4_L2_2M = [ZEN4[0], {"name": "L2", "size": 2 << 20, "line": 64, "ways": 16}, ZEN4[2]]


def _segments(cols: list[tuple[int, int]], cores: int) -> list[list[tuple[int, int]]]:
    """Split every column segment [a, b) into ``cores`` contiguous parts; one list per core."""
    out: list[list[tuple[int, int]]] = [[] for _ in range(cores)]
    for a, b in cols:
        cuts = np.linspace(a, b, cores + 1).round().astype(int)
        for c in range(cores):
            if cuts[c + 1] > cuts[c]:
                out[c].append((int(cuts[c]), int(cuts[c + 1])))
    return out


def spike_workload(gated: bool = False, samples: int = 16, steps: int = 9, cores: int = 1,
                   seed: int = 0, sizes=(784, 1024, 1024, 10), in_rate: float = 0.15,
                   hidden_rate: float = 0.10, shared_frac: float = 0.25, groups: int = 8,
                   active_groups=(1, 2)) -> Workload:
    """Layer-by-layer replay of a dense (or gated) SNN as a Workload: per layer and step, each
    core reads its slice of the membranes, one row segment per input spike, then writes the
    membranes back. Weights are fp16 (rows of ``2 * fan_out`` bytes), membranes fp32."""
    rng = np.random.default_rng(seed)
    base, w_base, v_base = 0, [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        w_base.append(base)
        base += -(-fan_in * fan_out * 2 // 4096) * 4096
    for fan_out in sizes[1:]:
        v_base.append(base)
        base += -(-fan_out * 4 // 4096) * 4096
    addr, length, write, starts, t_core, t_phase, names = [], [], [], [0], [], [], []
    n_acc = 0
    for s in range(samples):
        active = []  # column segments computed in each layer for this sample
        for li, fan_out in enumerate(sizes[1:]):
            if gated and li < len(sizes) - 2:
                n_sh = int(round(shared_frac * fan_out))
                width = (fan_out - n_sh) // groups
                pick = np.sort(rng.choice(groups, int(rng.choice(active_groups)), replace=False))
                active.append([(0, n_sh)] + [(n_sh + g * width, n_sh + (g + 1) * width)
                                             for g in pick])
            else:
                active.append([(0, fan_out)])
        for t in range(steps):
            spikes = np.nonzero(rng.random(sizes[0]) < in_rate)[0]
            for li, fan_out in enumerate(sizes[1:]):
                phase = len(names)
                names.append(f"s{s}.t{t}.l{li}")
                for c, segs in enumerate(_segments(active[li], cores)):
                    if not segs:
                        continue
                    a = np.array([x for x, _ in segs], np.int64)
                    n = np.array([y - x for x, y in segs], np.int64)
                    rows = (w_base[li] + spikes[:, None] * fan_out * 2 + a[None] * 2).ravel()
                    mem = v_base[li] + a * 4
                    addr += [mem, rows, mem]
                    length += [n * 4, np.tile(n * 2, spikes.shape[0]), n * 4]
                    write += [np.zeros(len(a), bool), np.zeros(rows.shape[0], bool),
                              np.ones(len(a), bool)]
                    n_acc += 2 * len(a) + rows.shape[0]
                    starts.append(n_acc)
                    t_core.append(c)
                    t_phase.append(phase)
                units = np.concatenate([np.arange(x, y) for x, y in active[li]])
                spikes = units[rng.random(units.shape[0]) < hidden_rate]
    n_tasks = len(t_core)
    return Workload(np.concatenate(addr), np.concatenate(length), np.concatenate(write),
                    np.array(starts, np.int64), np.array(t_core, np.int32),
                    np.array(t_phase, np.int32), np.zeros((n_tasks, 0)), (), names, cores,
                    meta={"name": ("gated" if gated else "dense") + f"-{cores}c"})


def _rel(fast: float, exact: float) -> float:
    return (fast - exact) / exact if exact else float(fast != exact)


def error_report(workload: Workload, levels, cores: int | None = None,
                 profile: ReuseProfile | None = None) -> dict:
    """Per-level hit/miss/write-back counts of the exact LRU mode and the fast mode on
    ``workload`` (replay order) as (exact, fast, (fast - exact) / exact); the misses of the
    fully associative fast mode alone (``fa_misses``); the per-task miss error (sum |fast -
    exact| / sum exact); memory reads and writes; wall times in seconds. Pass ``profile`` (of
    this workload, with the levels' set counts) to reuse it; its time is then not counted."""
    cores = workload.n_cores if cores is None else cores
    o = workload.replay_order()
    task = workload.access_task()[o]
    t0 = time.perf_counter()
    h = CacheHierarchy(levels, cores)
    ets, etm = h.access(workload.addr[o], workload.length[o], workload.write[o],
                        workload.task_core[task], task, workload.n_tasks)
    exact = h.stats()
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    prof = profile if profile is not None else profile_workload(
        workload, geometry(levels[0]).line, set_counts(levels))
    t_profile = time.perf_counter() - t0 if profile is None else 0.0
    t0 = time.perf_counter()
    fast, fts, ftm = price(prof, levels, cores)
    t_price = time.perf_counter() - t0
    fa, _, _ = price(dataclasses.replace(prof, views={1: prof.views[1]}), levels, cores)
    rows = []
    for i, (e, f) in enumerate(zip(exact[:-1], fast[:-1])):
        row = {"name": e["name"]}
        for k in ("hits", "misses", "writebacks", "run_start_misses"):
            row[k] = (e[k], f[k], _rel(f[k], e[k]))
        row["fa_misses"] = (e["misses"], fa[i]["misses"], _rel(fa[i]["misses"], e["misses"]))
        row["task_miss_error"] = _rel(float(np.abs(fts[:, i, 1] - ets[:, i, 1]).sum())
                                      + ets[:, i, 1].sum(), ets[:, i, 1].sum())
        rows.append(row)
    mem = {k: (exact[-1][k], fast[-1][k], _rel(fast[-1][k], exact[-1][k]))
           for k in ("reads", "writes")}
    return {"workload": workload.meta.get("name", ""), "lines": int(exact[0]["loads"]
                                                                     + exact[0]["stores"]),
            "granule": prof.granule, "levels": rows, "memory": mem,
            "time": {"exact": t_exact, "profile": t_profile, "price": t_price}}


def _print(rep: dict, label: str) -> None:
    t = rep["time"]
    print(f"\n{rep['workload']} / {label}: {rep['lines']} line accesses, granule "
          f"{rep['granule']}; exact {t['exact']:.2f} s, profile {t['profile']:.2f} s, "
          f"price {t['price'] * 1e3:.2f} ms")
    print(f"  {'level':6s} {'exact misses':>13s} {'fast misses':>12s} {'err':>7s} "
          f"{'task err':>8s} {'FA-only':>8s} {'exact wb':>10s} {'fast wb':>10s} {'wb err':>7s}")
    for r in rep["levels"]:
        e, f, err = r["misses"]
        we, wf, werr = r["writebacks"]
        print(f"  {r['name']:6s} {e:13d} {f:12d} {err:+7.2%} {r['task_miss_error']:8.2%} "
              f"{r['fa_misses'][2]:+8.2%} {we:10d} {wf:10d} {werr:+7.2%}")
    m = rep["memory"]
    print(f"  memory reads {m['reads'][0]} / {m['reads'][1]} ({m['reads'][2]:+.2%}), writes "
          f"{m['writes'][0]} / {m['writes'][1]} ({m['writes'][2]:+.2%})")


def shipped(samples: int, cores_list, presets=("zen4-epyc", "xeon-vm-2c")) -> None:
    """Error report of the shipped models' real workloads on the presets' caches."""
    import simsnn
    from hwmodels.loader import load_hardware
    from simsnn.datasets import load_dataset
    from simsnn.lowering import lower
    x = load_dataset("mnist").x_test[:samples]
    hws = {name: [m for m in load_hardware(name).memory] for name in presets}
    for cores in cores_list:
        for model in ("mnist-dense", "mnist-gated", "mnist-taskspec"):
            net = simsnn.load_network(model)
            _, trace = simsnn.run_network(net, x, record=True)
            wl = lower(net, trace, cores=cores)
            wl.meta["name"] = f"{model}-{cores}c"
            t0 = time.perf_counter()
            prof = profile_workload(wl, sets=set_counts([m for lv in hws.values() for m in lv]))
            t_prof = time.perf_counter() - t0
            for label, levels in hws.items():
                rep = error_report(wl, levels, cores, profile=prof)
                rep["time"]["profile"] = t_prof
                _print(rep, label)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args(argv)
    error_report(spike_workload(True, 1, 1, cores=2), ZEN4)  # compile / load the kernels
    print(f"# python benchmarks/reuse_error.py --samples {args.samples} --cores "
          f"{' '.join(map(str, args.cores))} --seed {args.seed}"
          f"{' --synthetic' if args.synthetic else ''}")
    if not args.synthetic:
        shipped(args.samples, args.cores)
        return
    for cores in args.cores:
        for gated in (False, True):
            wl = spike_workload(gated, args.samples, cores=cores, seed=args.seed)
            t0 = time.perf_counter()
            prof = profile_workload(wl, sets=set_counts(ZEN4 + ZEN4_L2_2M))
            t_prof = time.perf_counter() - t0
            for label, levels in (("zen4", ZEN4), ("zen4 + 2 MiB/16-way L2", ZEN4_L2_2M)):
                rep = error_report(wl, levels, cores, profile=prof)
                rep["time"]["profile"] = t_prof
                _print(rep, label)


if __name__ == "__main__":
    main()
