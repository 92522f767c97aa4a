"""The exact cache model against pycachesim (loads) and a slow reference model (stores)."""
import numpy as np
import pytest

from hwmodels.cache import CacheGeometryError, CacheHierarchy, simulate_cache
from tests.cache_refs import ReferenceLRU, pycachesim, random_levels

# the class form as given (no run finding, no switch to the plain form), and line by line
CLASS = {"mode": "class", "runs": False}
LINES = {"mode": "plain", "runs": False}


@pytest.mark.parametrize("seed", range(12))
def test_loads_match_pycachesim_on_random_streams(seed):
    rng = np.random.default_rng(seed)
    levels = random_levels(rng)
    line = levels[0]["line"]
    addrs = rng.integers(0, 300 * line, 4000)
    lengths = rng.integers(1, 5 * line, 4000) if seed % 2 else None
    ref = pycachesim(levels)
    if lengths is None:
        ref.load(addrs.tolist())
    else:
        for a, n in zip(addrs.tolist(), lengths.tolist()):
            ref.load(a, length=n)
    ours = simulate_cache(levels, addrs, lengths=lengths)
    for r, o in zip(list(ref.stats())[: len(levels)], ours):
        assert (o["hits"], o["misses"]) == (r["HIT_count"], r["MISS_count"])


def spike_stream(rng, n_rows=900, row_bytes=2048, events=4000):
    """Weight rows read by spikes, membranes read and written: a spike-trace-like stream."""
    rows = rng.integers(0, n_rows, events)
    addrs = rows * row_bytes
    return addrs, np.full(events, row_bytes)


def test_loads_match_pycachesim_on_spike_trace_streams(rng):
    levels = [{"size": 32768, "line": 64, "ways": 8}, {"size": 1 << 20, "line": 64, "ways": 8},
              {"size": 8 << 20, "line": 64, "ways": 16}]
    addrs, lengths = spike_stream(rng)
    # unaligned variant too (segments of gated rows): shift by 3 lines, cut 5 lines
    addrs = np.concatenate([addrs, addrs[:1000] + 192])
    lengths = np.concatenate([lengths, lengths[:1000] - 320])
    ref = pycachesim(levels)
    for a, n in zip(addrs.tolist(), lengths.tolist()):
        ref.load(a, length=n)
    ours = simulate_cache(levels, addrs, lengths=lengths)
    for r, o in zip(list(ref.stats())[:3], ours):
        assert (o["hits"], o["misses"]) == (r["HIT_count"], r["MISS_count"])


def test_coarse_super_sets_are_exact(rng):
    levels = [{"size": 32768, "line": 64, "ways": 8}, {"size": 1 << 20, "line": 64, "ways": 8}]
    addrs, lengths = spike_stream(rng)
    writes = rng.random(len(addrs)) < 0.3
    coarse = CacheHierarchy(levels, max_granule=16, **CLASS)
    fine = CacheHierarchy(levels, max_granule=1, **LINES)  # line by line
    for h in (coarse, fine):
        h.access(addrs, lengths, writes)
    assert coarse.levels[1].own.sum() == 0  # aligned rows never give a set its own state
    assert coarse.stats() == fine.stats()
    # partial accesses split only the super-sets they touch, and stay exact
    for h in (coarse, fine):
        h.access(addrs[:50] + 192, lengths[:50] - 320, writes[:50])
        h.flush()
    assert 0 < coarse.levels[1].own.mean() < 1.0  # only the touched sets
    assert coarse.stats() == fine.stats()


@pytest.mark.parametrize("seed", range(6))
def test_stores_follow_the_documented_semantics(seed):
    rng = np.random.default_rng(100 + seed)
    levels = random_levels(rng)
    line = levels[0]["line"]
    addrs = rng.integers(0, 200 * line, 3000)
    writes = rng.random(3000) < 0.4
    ref = ReferenceLRU(levels)
    for a, w in zip(addrs.tolist(), writes.tolist()):
        ref.access(a, w)
    ours = simulate_cache(levels, addrs, writes=writes)
    for r, o in zip(ref.stats, ours):
        assert {k: o[k] for k in r} == r
    assert (ours[-1]["reads"], ours[-1]["writes"]) == tuple(ref.dram)


def test_flush_writes_back_every_dirty_line():
    levels = [{"size": 256, "line": 64, "ways": 2}, {"size": 1024, "line": 64, "ways": 4}]
    h = CacheHierarchy(levels)
    h.access(np.arange(0, 64 * 4, 64), writes=np.ones(4, bool))
    assert h.stats()[-1]["writes"] == 0
    h.flush()
    assert h.stats()[-1]["writes"] == 4


def test_private_levels_per_core_and_shared_contention():
    levels = [{"size": 1024, "line": 64, "ways": 2},
              {"size": 4096, "line": 64, "ways": 4, "shared": True}]
    h = CacheHierarchy(levels, cores=2)
    a = np.arange(0, 64 * 8, 64)
    h.access(np.concatenate([a, a]), cores=np.repeat([0, 1], 8))
    s = h.stats()
    assert s[0]["misses"] == 16  # each core's private L1 misses on its own
    assert s[1]["hits"] == 8 and s[1]["misses"] == 8  # the shared L2 serves core 1


@pytest.mark.parametrize("level,match", [
    ({"size": 1000, "line": 64, "ways": 2}, "multiple"),
    ({"size": 1024, "line": 48, "ways": 2}, "power of two"),
    ({"size": 0, "line": 64, "ways": 2}, "multiple"),
])
def test_impossible_geometry(level, match):
    with pytest.raises(CacheGeometryError, match=match):
        simulate_cache([level], [0])


@pytest.mark.parametrize("seed", range(8))
def test_refining_and_recoarsening_stay_exact(seed):
    """Mixed aligned and partial runs, loads and stores, private and shared levels: the
    coarse simulation must equal the line-by-line one in every counter."""
    rng = np.random.default_rng(seed)
    levels = [{"size": 64 * 16 * 4, "line": 64, "ways": 4},
              {"size": 64 * 64 * 8, "line": 64, "ways": 8, "shared": True}]
    n = 3000
    granule_runs = rng.random(n) < 0.8
    start = np.where(granule_runs, rng.integers(0, 400, n) * 16, rng.integers(0, 6400, n))
    lines = np.where(granule_runs, 16 * rng.integers(1, 3, n), rng.integers(1, 20, n))
    writes = rng.random(n) < 0.3
    cores = rng.integers(0, 2, n)
    results = []
    coarse_seen = 0
    for g in (16, 1):
        h = CacheHierarchy(levels, cores=2, max_granule=g, **(CLASS if g > 1 else LINES))
        for part in np.array_split(np.arange(n), 5):  # several calls keep the state
            h.access(start[part] * 64, lines[part] * 64, writes[part], cores[part])
            if g == 16:
                own = h.levels[0].own
                coarse_seen += int(0 < own.sum() < own.size)
        h.flush()
        results.append(h.stats())
    assert coarse_seen  # partial runs split some sets off while others followed
    assert results[0] == results[1]


@pytest.mark.parametrize("seed", range(6))
def test_repeated_ranges_match_the_reference(seed):
    """Read-modify-write streams (each range asked again at once, as load then store), with
    ranges longer than a set's ways and partial, unaligned ones: the coarse and the
    line-by-line simulations agree with the slow reference in every counter."""
    rng = np.random.default_rng(200 + seed)
    levels = [{"size": 64 * 8 * 4, "line": 64, "ways": 4},
              {"size": 64 * 32 * 8, "line": 64, "ways": 8}]
    n = 600
    start = np.where(rng.random(n) < 0.6, rng.integers(0, 60, n) * 8 * 64,
                     rng.integers(0, 30000, n))
    length = np.where(rng.random(n) < 0.9, rng.integers(1, 40 * 64, n),
                      rng.integers(40 * 64, 300 * 64, n))
    reps = rng.integers(1, 4, n)
    addrs = np.repeat(start, reps)
    lengths = np.repeat(length, reps)
    writes = rng.random(addrs.shape[0]) < 0.5
    ref = ReferenceLRU(levels)
    for a, ln, w in zip(addrs.tolist(), lengths.tolist(), writes.tolist()):
        for line in range(a // 64, (a + ln - 1) // 64 + 1):
            ref.access(line * 64, w)
    for g in (8, 1):
        h = CacheHierarchy(levels, max_granule=g, **(CLASS if g > 1 else LINES))
        h.access(addrs, lengths, writes)
        ours = h.stats()
        for r, o in zip(ref.stats, ours):
            assert {k: o[k] for k in r} == r, g
        assert (ours[-1]["reads"], ours[-1]["writes"]) == tuple(ref.dram)


@pytest.mark.parametrize("dirty_one", [False, True])
def test_a_super_set_whose_own_sets_agree_becomes_canonical_again(dirty_one):
    """Every set of a super-set touched once by a partial access (same pattern, shifted):
    the sets agree, so the next whole granule makes them follow one canonical set again.
    A dirty line in one set breaks the agreement; both cases stay exact."""
    levels = [{"size": 64 * 8 * 4, "line": 64, "ways": 4}]  # 8 sets, one super-set of 8
    lines = np.arange(8)
    writes = lines == 3 if dirty_one else np.zeros(8, bool)
    addrs = np.concatenate([lines * 64, [8 * 64, 16 * 64, 0]])
    lengths = np.concatenate([np.full(8, 64), [512, 512, 512]])
    wr = np.concatenate([writes, [False, False, False]])
    fine = CacheHierarchy(levels, max_granule=1, **LINES)
    fine.access(addrs, lengths, wr)
    coarse = CacheHierarchy(levels, max_granule=8, **CLASS)
    coarse.access(addrs[:9], lengths[:9], wr[:9])
    assert coarse.levels[0].own.sum() == (8 if dirty_one else 0)
    coarse.access(addrs[9:], lengths[9:], wr[9:])
    fine.flush()
    coarse.flush()
    assert coarse.stats() == fine.stats()


def test_set_counts_that_do_not_divide_stay_exact():
    """An L2 whose set count is not a multiple of the L1's (48 vs 32 sets): dirty victims of
    coarse granules must reach it in line order, so the L1 runs line by line there."""
    rng = np.random.default_rng(7)
    levels = [{"size": 64 * 32 * 2, "line": 64, "ways": 2},
              {"size": 64 * 48 * 2, "line": 64, "ways": 2}]
    start = rng.integers(0, 200, 2000) * 32 * 64
    lengths = np.full(2000, 32 * 64)
    writes = rng.random(2000) < 0.5
    coarse = CacheHierarchy(levels)
    assert coarse.levels[0].g == 1
    fine = CacheHierarchy(levels, max_granule=1, **LINES)
    ref = ReferenceLRU(levels)
    for a, w in zip(start.tolist(), writes.tolist()):
        for line in range(a // 64, a // 64 + 32):
            ref.access(line * 64, w)
    for h in (coarse, fine):
        h.access(start, lengths, writes)
    assert coarse.stats() == fine.stats()
    for r, o in zip(ref.stats, coarse.stats()):
        assert {k: o[k] for k in r} == r


def test_packed_rows_share_a_class_and_whole_granules_merge_classes_again():
    """One-line reads of consecutive packed rows (each row read twice, a read-modify-write of
    one other line in between) keep the touched sets in few classes; whole granules afterwards
    make the super-set one class again once every class has taken `ways` new lines. Exact
    against the line-by-line simulation throughout, with dirty lines in play."""
    levels = [{"size": 64 * 32 * 4, "line": 64, "ways": 4}]  # 32 sets: one super-set of 32
    addr, wr = [], []
    for line in range(3203, 3223):  # rows on sets 3..22
        for _ in range(2):
            addr += [line * 64, 3250 * 64, 3250 * 64]  # row read, rmw of a line on set 18
            wr += [False, False, True]
    addr, wr = np.array(addr), np.array(wr)
    granules = np.arange(100, 106) * 32 * 64
    coarse = CacheHierarchy(levels, max_granule=32, **CLASS)
    fine = CacheHierarchy(levels, max_granule=1, **LINES)
    for h in (coarse, fine):
        h.access(addr, writes=wr)
    lv = coarse.levels[0]
    n_classes = bin(int(lv.active[0])).count("1")
    assert 2 <= n_classes <= 6, n_classes
    for h in (coarse, fine):
        h.access(granules, np.full(len(granules), 32 * 64))
    assert lv.own.sum() == 0  # one class again
    assert coarse.stats() == fine.stats()
    for h in (coarse, fine):
        h.flush()
    assert coarse.stats() == fine.stats()
