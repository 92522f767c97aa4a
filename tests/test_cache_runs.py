"""The public entry points on streams as trace tools give them (one address per access):
run finding (hwmodels.runs), the plain form and the fused line-by-line path give the same
counters as plain line-by-line replay, as pycachesim (loads) and as the reference model."""
import numpy as np
import pytest

from hwmodels.cache import CacheHierarchy, simulate_cache
from hwmodels.runs import find_runs
from tests.cache_refs import ReferenceLRU, pycachesim

LINES = {"mode": "plain", "runs": False}  # line by line, the stream as given

GEOMETRIES = [
    # three levels of a desktop class, sets all powers of two
    [{"size": 4096, "line": 64, "ways": 8}, {"size": 32768, "line": 64, "ways": 8},
     {"size": 1 << 18, "line": 64, "ways": 16}],
    # set counts 6, 24, 96 (not powers of two; the run key is their gcd, 6)
    [{"size": 6 * 4 * 64, "line": 64, "ways": 4}, {"size": 24 * 12 * 64, "line": 64, "ways": 12},
     {"size": 96 * 5 * 64, "line": 64, "ways": 5}],
    # an L2 whose set count is not a multiple of the L1's (gcd 1: nothing is reordered)
    [{"size": 16 * 2 * 32, "line": 32, "ways": 2}, {"size": 7 * 3 * 32, "line": 32, "ways": 3}],
    # one level
    [{"size": 2048, "line": 64, "ways": 2}],
    # five levels: too deep for the fused path
    [{"size": 8 * 2 ** i * 64 * (2 + i), "line": 64, "ways": 2 + i} for i in range(5)],
]


def stream(kind, rng, n=6000, line=64):
    """(addresses, lengths, writes) of one kind of stream."""
    if kind == "random":
        return rng.integers(0, 4000 * line, n), None, rng.random(n) < 0.3
    if kind == "rows":  # weight rows line by line, then membranes read and written per line
        addr, wr = [], []
        while len(addr) < n:
            r = int(rng.integers(0, 64))
            addr += list(range(r * 40 * line, (r + 1) * 40 * line, line))
            wr += [False] * 40
            for v in range(8):
                addr += [(5000 + v) * line, (5000 + v) * line]
                wr += [False, True]
        return np.array(addr), None, np.array(wr)
    if kind == "elements":  # v[i] += w[r, i] element by element (4-byte elements)
        addr, wr = [], []
        while len(addr) < n:
            r = int(rng.integers(0, 50))
            for e in range(0, 32 * line, 4):
                addr += [r * 32 * line + e, (7000 * line) + e, (7000 * line) + e]
                wr += [False, False, True]
        return np.array(addr), None, np.array(wr)
    if kind == "interleaved":  # two sequential streams, one line each in turn
        a = np.arange(n // 2) * line
        b = (9000 + np.arange(n // 2)) * line + 8
        return np.ravel(np.column_stack([a, b])), None, np.tile([False, True], n // 2)
    # ranges and single lines mixed
    addr = rng.integers(0, 2000 * line, n)
    lengths = np.where(rng.random(n) < 0.3, rng.integers(1, 12 * line, n), 1)
    return addr, lengths, rng.random(n) < 0.4


KINDS = ["random", "rows", "elements", "interleaved", "mixed"]


def replay(levels, batches, cores=1, **kw):
    h = CacheHierarchy(levels, cores=cores, **kw)
    per_call = [h.access(a, n, w, c, t, n_tasks=3) for a, n, w, c, t in batches]
    h.flush()
    return [(s.tolist(), m.tolist()) for s, m in per_call], h.stats()


@pytest.mark.parametrize("g", range(len(GEOMETRIES)))
@pytest.mark.parametrize("kind", KINDS)
def test_found_runs_equal_line_by_line(g, kind):
    levels = GEOMETRIES[g]
    rng = np.random.default_rng(g * 10 + KINDS.index(kind))
    a, n, w = stream(kind, rng, line=levels[0]["line"])
    t = rng.integers(0, 3, a.shape[0]) if kind == "mixed" else None
    batches = [(a, n, w, None, t)]
    ref = replay(levels, batches, **LINES)
    assert replay(levels, batches) == ref  # the default: runs found, form per batch
    assert replay(levels, batches, mode="class") == ref


@pytest.mark.parametrize("cores", [1, 2])
def test_batches_of_every_kind_switch_forms_and_stay_exact(cores):
    """One hierarchy fed batches of different kinds (forms convert between them), with
    several cores and tasks, against line-by-line replay."""
    rng = np.random.default_rng(7 + cores)
    levels = [dict(lv) for lv in GEOMETRIES[0]]
    levels[2]["shared"] = True
    batches = []
    for kind in ["rows", "random", "elements", "mixed", "rows", "interleaved", "random"]:
        a, n, w = stream(kind, rng, n=20000)
        c = rng.integers(0, cores, a.shape[0]) if kind in ("random", "mixed") else None
        t = np.full(a.shape[0], len(batches) % 3)
        batches.append((a, n, w, c, t))
    ref = replay(levels, batches, cores=cores, **LINES)
    assert replay(levels, batches, cores=cores) == ref
    h = CacheHierarchy(levels, cores=cores)
    forms = set()
    for a, n, w, c, t in batches:
        h.access(a, n, w, c, t)
        forms.add(tuple(lv.form for lv in h.levels))
    assert len(forms) > 1  # both forms were used


@pytest.mark.parametrize("kind", ["random", "rows", "interleaved"])
def test_line_streams_match_pycachesim_and_the_reference_model(kind):
    rng = np.random.default_rng(3)
    levels = GEOMETRIES[0]
    a, _, w = stream(kind, rng)
    ours = simulate_cache(levels, a)
    ref = pycachesim(levels)
    ref.load(a.tolist())
    for r, o in zip(list(ref.stats())[: len(levels)], ours):
        assert (o["hits"], o["misses"]) == (r["HIT_count"], r["MISS_count"])
    model = ReferenceLRU(levels)
    for x, wr in zip(a.tolist(), w.tolist()):
        model.access(x, wr)
    ours = simulate_cache(levels, a, writes=w)
    for r, o in zip(model.stats, ours):
        assert {k: o[k] for k in r} == r
    assert (ours[-1]["reads"], ours[-1]["writes"]) == tuple(model.dram)


def test_runs_are_found_in_line_streams():
    """What the finder makes of the streams: rows become runs, v += w element by element
    becomes read-modify-write runs with the repeated accesses counted as hits."""
    rng = np.random.default_rng(0)
    a, _, w = stream("rows", rng)
    (start, count, kind, _, _, rs), absorbed = find_runs(a, None, w, None, None, 64, 1, 64, 1)
    assert (count * np.where(kind == 3, 2, 1)).sum() + absorbed.sum() == a.shape[0]
    assert start.shape[0] < a.shape[0] // 10
    assert set(np.unique(rs)) == {2}  # one-line accesses: every line starts a run
    a, _, w = stream("elements", np.random.default_rng(0))
    (start, count, kind, _, _, _), absorbed = find_runs(a, None, w, None, None, 64, 1, 64, 1)
    assert (kind == 3).any() and absorbed.sum() > a.shape[0] // 2
    # lines on the same set as a pending run are not moved past it: key 1 keeps the order
    (start1, *_), _ = find_runs(a, None, w, None, None, 64, 1, 1, 1)
    assert start1.shape[0] >= start.shape[0]


def test_bad_accesses_are_refused_before_any_state_changes():
    h = CacheHierarchy(GEOMETRIES[0])
    for bad in ([0, -64, 128], [0, 64, 2 ** 40 * -1]):
        with pytest.raises(ValueError, match="non-negative"):
            h.access(np.array(bad))
    with pytest.raises(ValueError, match="core ids"):
        h.access(np.arange(0, 64 * 100000, 64), cores=np.r_[np.zeros(99999, int), 1])
    with pytest.raises(ValueError, match="must match"):
        h.access(np.arange(10), writes=np.zeros(9, bool))
    for tasks in ([0, -1, 0], [0, 3, 0]):
        with pytest.raises(ValueError, match="task ids"):
            h.access(np.arange(3) * 64, tasks=np.array(tasks), n_tasks=3)
    assert all(s.get("loads", 0) == 0 for s in h.stats()[:-1])


def test_the_plain_form_passes_runs_down_not_one_row_per_line():
    """Rows written and then streamed past: a level in the plain form sends each request's
    fills and write-backs down as runs (where the next level's sets allow), not a row per
    line, and the counters stay those of the class form."""
    levels = [{"size": 4096, "line": 64, "ways": 2}, {"size": 65536, "line": 64, "ways": 8}]
    addr = np.arange(200) * 64 * 64  # 200 requests of 64 lines, each row written
    lengths = np.full(200, 64 * 64)
    writes = np.ones(200, bool)
    out = {}
    for mode in ("plain", "class"):
        h = CacheHierarchy(levels, mode=mode, runs=False)
        req = h.requests(addr, lengths, writes)
        down = h.levels[0].process(req, np.zeros((1, 3), np.int64))
        out[mode] = (len(down), h.levels[0].stats())
    assert out["plain"][1] == out["class"][1]
    assert out["plain"][0] <= 2 * len(addr) * 2  # a fill run and a write-back run per 32 sets
