"""The reuse-distance fast mode against hand-made streams and the exact LRU mode."""
import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from hwmodels.cache import CacheGeometryError, CacheHierarchy
from hwmodels.reuse import (
    INF,
    miss_curve,
    price,
    profile_workload,
    reuse_profile,
    set_counts,
    stack_distances,
)
from hwmodels.workload import Workload

KEYS = ("loads", "stores", "hits", "misses", "writebacks_in", "evictions", "writebacks",
        "run_start_misses")
REALISTIC = [{"size": 32 << 10, "line": 64, "ways": 8}, {"size": 1 << 20, "line": 64, "ways": 8},
             {"size": 32 << 20, "line": 64, "ways": 16, "shared": True}]


def exact(levels, n_cores=1, **kw):
    h = CacheHierarchy(levels, n_cores)
    ts, tm = h.access(**kw)
    return h.stats(), ts, tm


def spike_stream(rng, steps=12, rows=600, row=2048, rate=0.12, segments=None, cores=1):
    """Rows of weights read by random spikes, membranes read then written every step; with
    ``segments`` only those (byte offset, bytes) pieces of each row (gated); columns split
    among ``cores``. Returns access columns (address, length, write, core, task)."""
    segments = segments or [(0, row)]
    base_v = rows * row
    cols = []
    task = 0
    for _ in range(steps):
        spikes = np.nonzero(rng.random(rows) < rate)[0]
        for c in range(cores):
            parts = [(o + c * n // cores, n // cores) for o, n in segments]
            a = np.array([o for o, _ in parts])
            n = np.array([k for _, k in parts])
            addr = np.concatenate([base_v + 2 * a, (spikes[:, None] * row + a).ravel(),
                                   base_v + 2 * a])
            length = np.concatenate([2 * n, np.tile(n, len(spikes)), 2 * n])
            write = np.repeat([False, False, True], [len(a), len(a) * len(spikes), len(a)])
            cols.append((addr, length, write, np.full(len(addr), c), np.full(len(addr), task)))
            task += 1
    addr, length, write, core, tasks = (np.concatenate(x) for x in zip(*cols))
    # interleave the cores of one step one access at a time (as Workload.replay_order does)
    step = tasks // cores
    rank = np.concatenate([np.arange(len(c[0])) for c in cols])
    o = np.lexsort((core, rank, step))
    return dict(addresses=addr[o], lengths=length[o], writes=write[o], cores=core[o],
                tasks=tasks[o])


# ----------------------------------------------------------------------------- distances
def test_stack_distances_of_a_hand_made_stream():
    dp, ds, _, _ = stack_distances([1, 2, 3, 1, 2, 2, 4, 1])
    assert dp.tolist() == [INF, INF, INF, 2, 2, 0, INF, 2]
    assert ds.tolist() == dp.tolist()
    # per set (2 sets): only lines of the same parity count
    dp, _, _, _ = stack_distances([0, 2, 1, 0, 3, 1], sets=2)
    assert dp.tolist() == [INF, INF, INF, 1, INF, 1]


def test_write_back_gaps():
    # line 1 written at 0, then re-read after 1 and 2 other lines, then 0 lines until the end
    _, _, gap, _ = stack_distances([1, 2, 1, 3, 4, 1], writes=[1, 0, 0, 0, 0, 0])
    assert gap[0] == 2
    # a second write cuts the chain: the first write's gap ends at it
    _, _, gap, _ = stack_distances([1, 2, 3, 1, 1, 5, 6, 7], writes=[1, 0, 0, 1, 0, 0, 0, 0])
    assert gap[0] == 2 and gap[3] == 3  # last access of line 1: 5, 6, 7 touched after it


def test_private_and_shared_views():
    lines, cores = [10, 20, 11, 21, 10], [0, 1, 0, 1, 0]
    dp, ds, _, _ = stack_distances(lines, cores)
    assert dp[4] == 1 and ds[4] == 3  # own stream: 11; all cores: 20, 11, 21
    dp, ds, _, _ = stack_distances([5, 5], [0, 1])
    assert dp[1] == INF and ds[1] == 0  # core 1's first touch of a line core 0 just used


# ----------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("seed", range(4))
def test_one_level_is_exact(seed):
    """Fully associative (one set) and profiled set counts: every counter equals the exact
    mode's, per task too, for private and shared levels of several cores."""
    rng = np.random.default_rng(seed)
    g = int(rng.choice([1, 2, 4, 8]))
    n = 2000
    kw = dict(addresses=rng.integers(0, 120, n) * g * 64, lengths=rng.integers(1, 4, n) * g * 64,
              writes=rng.random(n) < 0.3, cores=rng.integers(0, 3, n),
              tasks=rng.integers(0, 7, n))
    geoms = [(g * 4, g * 4), (g * 16, g * 16), (g * 16, 4), (64 * g, 8 * g), (64, 2)]
    prof = reuse_profile(**kw, n_tasks=7, n_cores=3, sets=set_counts(
        [{"size": c * 64, "ways": w} for c, w in geoms]))
    assert prof.granule == g
    for cap, ways in geoms:
        for shared in (False, True):
            lv = [{"size": cap * 64, "line": 64, "ways": ways, "shared": shared}]
            ref, rts, rtm = exact(lv, 3, n_tasks=7, **kw)
            ours, ts, tm = price(prof, lv)
            assert {k: ours[0][k] for k in KEYS} == {k: ref[0][k] for k in KEYS}
            assert np.array_equal(ts, rts) and np.array_equal(tm[:, 0], rtm[:, 0])
            assert ours[1] == ref[1]


def test_granule_misses_exact_for_any_capacity(rng):
    """Runs aligned to 8 lines: distances on granules give the exact misses even for
    capacities that are not a multiple of 8; only end-of-trace write-backs may differ."""
    n = 3000
    kw = dict(addresses=rng.integers(0, 90, n) * 512, lengths=rng.integers(1, 3, n) * 512,
              writes=rng.random(n) < 0.4)
    prof = reuse_profile(**kw)
    assert prof.granule == 8
    for cap in (8, 21, 63, 100, 257):
        lv = [{"size": cap * 64, "line": 64, "ways": cap}]
        ref, _, _ = exact(lv, **kw)
        ours, _, _ = price(prof, lv)
        assert (ours[0]["hits"], ours[0]["misses"]) == (ref[0]["hits"], ref[0]["misses"])
        assert abs(ours[0]["writebacks"] - ref[0]["writebacks"]) <= 7 * 90


def test_pricing_is_monotone_in_size(rng):
    kw = spike_stream(rng)
    prof = reuse_profile(**kw)
    sizes = [1 << k for k in range(12, 24)]
    curve = miss_curve(prof, sizes)
    assert np.all(np.diff(curve) <= 0) and curve[0] > curve[-1]
    ours, ts, tm = price(prof, REALISTIC)
    misses = [lv["misses"] for lv in ours[:-1]]
    assert misses == sorted(misses, reverse=True)
    assert np.all(np.diff(ts[:, :, 1], axis=1) <= 0)
    assert ours[-1]["reads"] == misses[-1] == tm[:, 0].sum()


# ----------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("gated,cores", [(False, 1), (True, 1), (False, 4), (True, 2)])
def test_agrees_with_exact_mode_on_spike_streams(gated, cores):
    rng = np.random.default_rng(7)
    segs = [(0, 512), (704, 192), (1280, 384)] if gated else None
    kw = spike_stream(rng, segments=segs, cores=cores)
    ref, rts, _ = exact(REALISTIC, cores, **kw)
    prof = reuse_profile(**kw, n_cores=cores, sets=set_counts(REALISTIC))
    ours, ts, _ = price(prof, REALISTIC)
    for r, o in zip(ref[:-1], ours[:-1]):
        assert o["misses"] == pytest.approx(r["misses"], rel=0.02)
        assert o["hits"] == pytest.approx(r["hits"], rel=0.02, abs=50)
    # fully associative only: the column slices of several cores or gated rows use a
    # fraction of the sets, so it misses conflict misses; one core reading whole rows is fine
    fa = dataclasses.replace(prof, views={1: prof.views[1]})
    ours, _, _ = price(fa, REALISTIC)
    if not gated and cores == 1:
        for r, o in zip(ref[:-1], ours[:-1]):
            assert o["misses"] == pytest.approx(r["misses"], rel=0.02)


def test_multicore_hierarchy_with_l1_reuse_is_close(rng):
    """Hot private lines hit in L1 and never refresh the shared level, dirty lines refresh it
    late: the stack model over-counts shared misses and write-backs (docs/reuse-distance.md)."""
    levels = [{"size": 4096, "line": 64, "ways": 4}, {"size": 32768, "line": 64, "ways": 8},
              {"size": 262144, "line": 64, "ways": 16, "shared": True}]
    n = 60000
    cr = rng.integers(0, 2, n)
    u = rng.random(n)
    lines = np.where(u < 0.4, rng.integers(0, 40, n) + 100 * cr,
                     np.where(u < 0.8, 1000 + rng.integers(0, 600, n),
                              10000 + rng.integers(0, 6000, n)))
    kw = dict(addresses=lines * 64, writes=rng.random(n) < 0.3, cores=cr)
    ref, _, _ = exact(levels, 2, **kw)
    ours, _, _ = price(reuse_profile(**kw, n_cores=2, sets=set_counts(levels)), levels)
    for r, o in zip(ref, ours):
        for k, tol in (("misses", 0.03), ("reads", 0.03), ("writebacks", 0.15), ("writes", 0.15)):
            if k in r:
                assert o[k] == pytest.approx(r[k], rel=tol)


def test_profile_of_a_workload_follows_its_replay_order(rng):
    # two cores, two phases; core 1 re-reads what core 0 wrote in the previous phase
    addr = np.array([0, 4096, 8192, 0, 4096, 64])
    wl = Workload(addr, np.full(6, 2048), np.array([1, 1, 0, 0, 0, 1], bool),
                  np.array([0, 2, 3, 5, 6]), np.array([0, 1, 0, 1], np.int32),
                  np.array([0, 0, 1, 1], np.int32), np.zeros((4, 0)), (), ["a", "b"], 2)
    levels = [{"size": 4096, "line": 64, "ways": 64},
              {"size": 16384, "line": 64, "ways": 256, "shared": True}]
    o = wl.replay_order()
    task = wl.access_task()[o]
    ref, rts, _ = exact(levels, 2, addresses=wl.addr[o], lengths=wl.length[o],
                        writes=wl.write[o], cores=wl.task_core[task], tasks=task, n_tasks=4)
    ours, ts, _ = price(profile_workload(wl), levels)
    assert np.array_equal(ts[:, 0], rts[:, 0]) and ours[0]["misses"] == ref[0]["misses"]


def test_bad_geometries():
    prof = reuse_profile([0, 64])
    with pytest.raises(CacheGeometryError, match="line size"):
        price(prof, [{"size": 4096, "line": 128, "ways": 4}])
    with pytest.raises(CacheGeometryError, match="private level"):
        price(prof, [{"size": 4096, "ways": 4, "shared": True}, {"size": 8192, "ways": 4}])
    with pytest.raises(ValueError, match="core ids"):
        reuse_profile([0], cores=[1])


def test_benchmark_error_report_runs():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reuse_error.py"
    spec = importlib.util.spec_from_file_location("reuse_error", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    wl = mod.spike_workload(gated=True, samples=1, steps=2, cores=2)
    rep = mod.error_report(wl, mod.ZEN4)
    assert [r["name"] for r in rep["levels"]] == ["L1d", "L2", "L3"]
    assert all(abs(r["misses"][2]) < 0.02 for r in rep["levels"])
