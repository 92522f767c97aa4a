"""Memory traffic against a deterministic reference: valgrind's cache simulator.

Timing on a shared VM is noisy and it exposes no hardware counters, but valgrind simulates a
first-level data cache (D1) and a last-level cache (LL) on the real instruction stream of
the real program. ``simsnn validate`` with ``reference: cachegrind`` runs every point's
samples through the measured program with its kernels bracketed by callgrind client requests
(simsnn.host.counted: only the kernels' accesses are counted), one valgrind process per point
(each starting with empty caches), and replays the same samples on the simulator's exact LRU
caches with the same geometry and valgrind's policy (write-allocate; LL sees D1's misses, not
its write-backs). Valgrind simulates the Python driver between two kernels too, only without
counting it; so that what a kernel finds in the caches does not depend on the interpreter,
each kernel first writes a flush buffer the size of D1 (or of LL, ``flush: LL``), uncounted,
and the simulator replays the same flush before each kernel call of the lowering
(``meta["kernel_calls"]``) and the driver's copy of each sample into the input region. A
mismatch is a difference between the program and its lowering, not noise.

Run ``python -m simsnn.host.cachegrind SPEC.json`` under valgrind (what :func:`run_points`
does); it is not meant to be called by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from simsnn.errors import SimsnnError

#: callgrind's event names (its ``events:`` line) for the counts compared
EVENTS = ("Ir", "Dr", "Dw", "I1mr", "D1mr", "D1mw", "ILmr", "DLmr", "DLmw")

#: where the simulator places the flush buffer: far above the arena, on a boundary of every
#: cache's span (so its lines fall in the same sets as the real buffer's, which the program
#: aligns likewise)
FLUSH_BASE = 1 << 44


class ReferenceError(SimsnnError):
    """The cachegrind reference cannot run on this machine (no valgrind, not x86-64, valgrind
    failed)."""


def check_available(valgrind: str) -> str:
    """The valgrind executable's path; a clear error where it is missing or the machine is
    not x86-64 (the client requests are x86-64 code)."""
    from simsnn.host.counted import SUPPORTED
    if not SUPPORTED:
        raise ReferenceError("the cachegrind reference needs an x86-64 machine")
    exe = shutil.which(valgrind)
    if exe is None:
        raise ReferenceError(f"{valgrind!r} not found: install valgrind (Debian: apt-get "
                             f"install valgrind) to use reference: cachegrind")
    return exe


def span(level) -> int:
    """Bytes one way of a cache level spans (size / ways): addresses this far apart map to
    the same set."""
    return int(level.size) // int(level.ways)


def parse_callgrind(path: str | Path) -> dict[str, int]:
    """The whole-run counts of a callgrind output file (its ``summary:`` line, else
    ``totals:``) by event name."""
    names, values = None, None
    for line in Path(path).read_text().splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("summary:") or (line.startswith("totals:") and values is None):
            values = [int(v) for v in line.split()[1:]]
    if names is None or values is None:
        raise ReferenceError(f"{path}: not a callgrind output file (no events or summary)")
    out = dict(zip(names, values + [0] * (len(names) - len(values))))
    missing = [e for e in EVENTS if e not in out]
    if missing:
        raise ReferenceError(f"{path}: no {', '.join(missing)} counts (was --cache-sim=yes "
                             f"given?)")
    return out


def flush_bytes(cfg) -> int:
    """Bytes of the flush buffer: the size of the level ``cfg.flush`` names."""
    return int(getattr(cfg, cfg.flush).size)


def _program(point: dict, counted: bool):
    """The measured program of a point (spec entry) and its inputs; counted: with the
    kernels of simsnn.host.counted and a flush buffer of ``point["flush"]`` bytes aligned
    like the arena."""
    from simsnn.config.layout import LayoutConfig
    from simsnn.config.validation import ValidationPoint
    from simsnn.host import counted as ck
    from simsnn.host.program import MeasuredProgram
    from simsnn.host.validate import _network
    from simsnn.layout import aligned_arena
    vp = ValidationPoint.model_validate(point["point"])
    net = _network(vp, Path(point["base"]))
    layout = LayoutConfig.model_validate(point["layout"]) if point["layout"] else None
    kernels = None
    if counted:
        flush = aligned_arena(int(point["flush"]), int(point["align"])).view(np.int64)
        kernels = ck.bind(flush)
    prog = MeasuredProgram(net, layout, cores=1, kernels=kernels, align=point["align"])
    return prog, np.load(point["inputs"])


def child(spec_path: str) -> None:
    """Inside valgrind: one point's samples through the counted program."""
    from simsnn.host.program import run_measured
    spec = json.loads(Path(spec_path).read_text())
    prog, xs = _program(spec["point"], counted=True)
    run_measured(prog, xs, seed=spec["seed"])


def run_points(points: list[dict], cfg, seed: int, work: Path,
               log=print) -> list[dict[str, int]]:
    """Run ``points`` (dicts: ``point`` the validation point, ``base`` its file's folder,
    ``layout``, ``inputs`` a .npy of its samples, ``align``, ``flush`` the flush buffer's
    bytes) under valgrind with the geometry of ``cfg`` (CachegrindConfig), one valgrind
    process per point (each starts with empty caches, as the simulator does), as many at
    once as there are CPUs; the counts of each, in order."""
    exe = check_available(cfg.valgrind)
    # compile every kernel the points use (counted wrappers included) into numba's on-disk
    # cache first: under valgrind a compilation would take minutes
    from simsnn.host.program import run_measured
    for point in points:
        prog, xs = _program(point, counted=True)
        run_measured(prog, xs[:1], seed=seed)
    def geo(lv) -> str:
        return f"{int(lv.size)},{int(lv.ways)},{int(lv.line)}"
    def one(i: int) -> dict[str, int]:
        point = points[i]
        spec = work / f"spec-{i}.json"
        spec.write_text(json.dumps({"point": point, "seed": seed}))
        out = work / f"callgrind.out.{i}"
        out.unlink(missing_ok=True)
        cmd = [exe, "--tool=callgrind", "--cache-sim=yes", "--collect-atstart=no",
               f"--D1={geo(cfg.D1)}", f"--LL={geo(cfg.LL)}", f"--I1={geo(cfg.I1)}",
               f"--callgrind-out-file={out}", sys.executable, "-m",
               "simsnn.host.cachegrind", str(spec)]
        log(f"{point['point']['name']}: under valgrind (callgrind's cache simulator; a "
            f"minute or more to start Python)")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0 or not out.exists():
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise ReferenceError(f"valgrind failed (exit {r.returncode}): {' | '.join(tail)}")
        return parse_callgrind(out)
    # valgrind's counts do not depend on the machine's load: one process per CPU at once
    with ThreadPoolExecutor(max(1, min(len(points), os.cpu_count() or 1))) as pool:
        return list(pool.map(one, range(len(points))))


def simulate_misses(net, trace, layout, cfg) -> dict[str, int]:
    """The simulator's side: the workload of ``trace`` on one core, replayed on D1 then (its
    fills only, as valgrind's LL sees them) LL, both true LRU and write-allocate; before each
    kernel call the flush the counted kernels do, and before each sample the driver's copy
    of it into the input region (both uncounted, as in valgrind). Returns line accesses
    (loads, stores) and misses per level."""
    from hwmodels.cache import CacheHierarchy, LevelGeometry, LRUCache
    from hwmodels.components import STAT_FIELDS, WRITEBACK, Requests
    from simsnn.lowering import lower
    wl = lower(net, trace, 1, layout)
    order = wl.replay_order()
    pos = np.empty_like(order)
    pos[order] = np.arange(order.shape[0])
    starts = np.unique(np.concatenate([[0], pos[wl.meta["kernel_calls"]]]))
    addr, ln, wr = wl.addr[order], wl.length[order], wl.write[order]
    # the sample each call belongs to: a new sample begins at the encoder's call
    phase = wl.task_phase[wl.access_task()[order[np.minimum(starts, order.shape[0] - 1)]]]
    first = (np.asarray(wl.phase_names)[phase] == "input") & \
        (wl.phase_info["timestep"][phase] == 0)
    in_base, in_bytes = wl.meta["regions"]["input"]
    f = {k: i for i, k in enumerate(STAT_FIELDS)}
    d1 = LRUCache(LevelGeometry(int(cfg.D1.size), int(cfg.D1.line), int(cfg.D1.ways),
                                False, "D1"))
    ll = LRUCache(LevelGeometry(int(cfg.LL.size), int(cfg.LL.line), int(cfg.LL.ways),
                                False, "LL"))
    top = CacheHierarchy([d1.geom], 1)
    line = int(cfg.D1.line)
    n_flush = flush_bytes(cfg) // line  # counted.py's flush: one word of every line
    flush = top.requests(FLUSH_BASE + line * np.arange(n_flush), np.full(n_flush, 8),
                         np.zeros(n_flush, bool))
    copy = top.requests(np.array([in_base]), np.array([in_bytes]), np.array([True]))
    per, per_ll = np.zeros((1, 3), np.int64), np.zeros((1, 3), np.int64)
    scratch = np.zeros((1, 3), np.int64)
    loads = stores = 0

    def replay(req, d1_stats, ll_stats):
        fills = d1.process(req, d1_stats)
        keep = fills.kind != WRITEBACK
        ll.process(Requests(fills.start[keep], fills.count[keep], fills.kind[keep],
                            fills.core[keep], fills.task[keep], fills.run_start[keep],
                            fills.line), ll_stats)

    ends = np.append(starts[1:], order.shape[0])
    for a, b, new_sample in zip(starts, ends, first):
        if new_sample:
            replay(copy, scratch, scratch)
        replay(flush, scratch, scratch)
        before = d1.counters.copy()
        replay(top.requests(addr[a:b], ln[a:b], wr[a:b]), per, per_ll)
        loads += int(d1.counters[f["loads"]] - before[f["loads"]])
        stores += int(d1.counters[f["stores"]] - before[f["stores"]])
    return {"loads": loads, "stores": stores, "D1_misses": int(per[0, 1]),
            "LL_accesses": int(per_ll[0, :2].sum()), "LL_misses": int(per_ll[0, 1])}


if __name__ == "__main__":  # pragma: no cover - runs inside valgrind
    child(sys.argv[1])


def _error(pred: float, ref: float) -> float:
    return (pred - ref) / ref * 100.0 if ref else (0.0 if pred == 0 else float("inf"))


#: valgrind's counts of each level's misses, by kind
REF_MISSES = {"D1": {"read": "D1mr", "write": "D1mw"}, "LL": {"read": "DLmr", "write": "DLmw"}}


def traffic_row(name: str, net, scale: float, samples: int, ref: dict[str, int],
                sim: dict[str, int]) -> dict:
    """One point's row: valgrind's misses per level (and by reads and writes) against the
    simulator's, with what else each side counts."""
    from simsnn.host.validate import network_kind
    row = {"point": name, "network": net.name, "family": net.family,
           "kind": network_kind(net), "weight_dtype": net.weight_dtype,
           "input_scale": scale, "samples": samples}
    for lv, keys in REF_MISSES.items():
        total = ref[keys["read"]] + ref[keys["write"]]
        row.update({f"{lv}_misses": total, f"{lv}_misses_predicted": sim[f"{lv}_misses"],
                    f"{lv}_error_pct": _error(sim[f"{lv}_misses"], total)})
        # valgrind's misses of reads and of writes (the simulator's are one count: a write
        # miss allocates the line as a read miss does)
        row.update({f"{lv}_{kind}_misses": ref[key] for kind, key in keys.items()})
    # what else each side counts: valgrind's data reads and writes (instructions), the
    # simulator's line accesses
    row.update({"reads": ref["Dr"], "writes": ref["Dw"], "LL_accesses_predicted":
                sim["LL_accesses"], "line_loads_predicted": sim["loads"],
                "line_stores_predicted": sim["stores"], "instructions": ref["Ir"],
                "I1_misses": ref["I1mr"], "LL_instruction_misses": ref["ILmr"]})
    return row


def miss_stats(rows: list[dict], level: str) -> dict:
    """MAPE, max and signed mean of the simulator's ``level`` misses against valgrind's."""
    err = np.array([r[f"{level}_error_pct"] for r in rows], float)
    return {"n_points": int(err.size), "miss_mape_pct": float(np.abs(err).mean()),
            "max_error_pct": float(np.abs(err).max()), "bias_pct": float(err.mean())}


def validate_traffic(cfg, source: str | Path, out_dir: str | Path, log=print) -> dict:
    """``simsnn validate`` with ``reference: cachegrind``: each point (and input scale) on one
    core, ``cfg.samples`` samples, valgrind's D1 and LL misses against the simulator's.
    Writes points.json, points.csv and summary.json (``miss_mape_pct`` per level, the same
    per family, network kind and dtype; the reads and writes both sides count)."""
    import time

    import simsnn
    from simsnn.datasets import load_dataset
    from simsnn.errors import ConfigError
    from simsnn.host.measure import host_summary
    from simsnn.host.program import unsupported
    from simsnn.host.validate import _inputs, _network
    from simsnn.host.validation_report import write_csv
    from simsnn.io import write_json_atomic
    cg = cfg.cachegrind
    check_available(cg.valgrind)
    base = Path(source).parent
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / "cachegrind"
    work.mkdir(exist_ok=True)
    nets = {p.name: _network(p, base) for p in cfg.points}
    ds = load_dataset(cfg.dataset, seed=cfg.seed)
    x, y = ds.x_test[: cfg.samples], ds.y_test[: cfg.samples]
    started = time.perf_counter()
    align = max(span(cg.D1), span(cg.LL))
    jobs, unmeasured = [], []
    for point in cfg.points:
        net = nets[point.name]
        why = unsupported(net, point.layout)
        for scale in point.input_scale:
            if why:
                unmeasured.append({"point": point.name, "input_scale": scale,
                                   "reason": "; ".join(why)})
                log(f"{point.name:<24} scale {scale:<4g} not measured: {why[0]}")
                continue
            xs = _inputs(x, scale, net.coding)
            path = work / f"inputs-{len(jobs)}.npy"
            np.save(path, xs)
            jobs.append(({"point": point.model_dump(mode="json"), "base": str(base),
                          "layout": point.layout.model_dump() if point.layout else None,
                          "inputs": str(path), "align": align,
                          "flush": flush_bytes(cg)}, point, net, xs, scale))
    if not jobs:
        raise ConfigError(str(source), "points", "the measured program can run none of the "
                          "points")
    counts = run_points([j[0] for j in jobs], cg, cfg.seed, work, log)
    rows = []
    for (_, point, net, xs, scale), ref in zip(jobs, counts):
        _, trace = simsnn.run_network(net, xs, record=True, labels=y, seed=cfg.seed)
        sim = simulate_misses(net, trace, point.layout, cg)
        rows.append(traffic_row(point.name, net, scale, int(xs.shape[0]), ref, sim))
        r = rows[-1]
        log(f"{r['point']:<24} scale {scale:<4g} D1 misses {r['D1_misses']:>10,} predicted "
            f"{r['D1_misses_predicted']:>10,} ({r['D1_error_pct']:+5.1f}%)  LL "
            f"{r['LL_misses']:>9,} "
            f"predicted {r['LL_misses_predicted']:>9,} ({r['LL_error_pct']:+5.1f}%)")

    def split(key) -> dict:
        return {str(v): {lv: miss_stats([r for r in rows if r[key] == v], lv)
                         for lv in ("D1", "LL")} for v in sorted({r[key] for r in rows})}
    summary = {"schema": "simsnn-validation", "schema_version": 2, "name": cfg.name,
               "reference": "cachegrind", "host": host_summary(),
               "geometry": cg.model_dump(mode="json"), "samples": cfg.samples,
               "n_points": len(rows),
               "miss_mape_pct": {lv: miss_stats(rows, lv)["miss_mape_pct"]
                                 for lv in ("D1", "LL")},
               "per_level": {lv: miss_stats(rows, lv) for lv in ("D1", "LL")},
               # what each side counts besides: valgrind's data reads and writes and its
               # misses of each, the simulator's line loads and stores
               "reads_writes": {k: int(sum(r[k] for r in rows)) for k in (
                   "reads", "writes", "D1_read_misses", "D1_write_misses", "LL_read_misses",
                   "LL_write_misses", "line_loads_predicted", "line_stores_predicted")},
               "per_family": split("family"), "per_network_kind": split("kind"),
               "per_dtype": split("weight_dtype"), "unmeasured": unmeasured,
               "seconds": time.perf_counter() - started}
    write_json_atomic(out / "points.json", {"points": rows})
    write_csv(out / "points.csv", rows)
    write_json_atomic(out / "summary.json", summary)
    return summary


def traffic_text(s: dict) -> str:
    """The summary line of a cachegrind validation."""
    lv = s["per_level"]
    lines = [f"{s['n_points']} points against valgrind's cache simulator: D1 misses MAPE "
             f"{lv['D1']['miss_mape_pct']:.2f} % (max {lv['D1']['max_error_pct']:.2f} %), LL "
             f"misses MAPE {lv['LL']['miss_mape_pct']:.2f} % (max "
             f"{lv['LL']['max_error_pct']:.2f} %)"]
    for key, what in (("per_family", "family"), ("per_network_kind", "network"),
                      ("per_dtype", "dtype")):
        lines.append(f"  by {what}: " + ", ".join(
            f"{k} D1 {v['D1']['miss_mape_pct']:.1f} % / LL {v['LL']['miss_mape_pct']:.1f} %"
            for k, v in s[key].items()))
    for u in s.get("unmeasured", []):
        lines.append(f"  not measured: {u['point']}: {u['reason']}")
    return "\n".join(lines)
