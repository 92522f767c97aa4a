"""Exact set-associative LRU caches (compiled), composed into hierarchies.

Accesses are byte ranges ``[address, address + length)`` (``length`` defaults to 1), each read or
written in ascending line order, like pycachesim's ``load(addr, length)``. Hits and misses are
counted per cache line. For loads the per-level hit and miss counts equal pycachesim's (RRZE-HPC)
on any address stream; stores follow docs/cache-model.md.

Levels are simulated one after the other: each level's kernel consumes the ordered requests of
the level above and emits, in order, a fill for each miss and then a write-back for each dirty
victim, which is exactly the order in which a recursive simulator (pycachesim) reaches the next
level. So results are identical, and any :class:`MemoryLevel` can sit in the chain.

Speed comes from coalescing aligned runs: a level groups its sets into super-sets of G
consecutive sets (G a power of two dividing the set count, at most ``max_granule``). While every
access to a super-set covers whole aligned granules of G lines, the G lines of each granule share
one access history and sit at the same way of consecutive sets, so the G sets are identical up to
a shift and one step per granule simulates them all (the *canonical* set). A partial access gives
the set it touches its own state, simulated line by line; an own set rejoins the canonical one
when it again holds the same lines in the same recency order with the same dirty bits (from then
on LRU decides alike), and a super-set whose sets all have their own, mutually agreeing states
becomes canonical again. The result is exact; spike traces, whose weight rows and membrane
blocks are long aligned runs, mostly stay coarse. See docs/cache-model.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from hwmodels.components import (
    LOAD,
    STAT_FIELDS,
    STORE,
    WRITEBACK,
    MemoryLevel,
    Requests,
)

_LOADS, _STORES, _HITS, _MISSES, _WB_IN, _EVICT, _WB_OUT, _RS_MISS = range(8)


class CacheGeometryError(ValueError):
    """An impossible cache geometry (size not a multiple of line x ways, line not a power of
    two, mixed line sizes, a private level below a shared one)."""


@dataclass(frozen=True)
class LevelGeometry:
    """Size, line and ways of an LRU cache level (a minimal stand-in for ``CacheSpec``)."""

    size: int
    line: int
    ways: int
    shared: bool = False
    name: str = ""

    @property
    def sets(self) -> int:
        return self.size // (self.line * self.ways)


def geometry(lv, index: int = 0) -> LevelGeometry:
    """Normalise a dict ``{"size", "line", "ways"[, "shared", "name"]}``, a LevelGeometry or a
    ``CacheSpec``; validate it."""
    if isinstance(lv, LevelGeometry):
        g = lv
    elif isinstance(lv, dict):
        g = LevelGeometry(int(lv["size"]), int(lv.get("line", 64)), int(lv["ways"]),
                          bool(lv.get("shared", False)), str(lv.get("name", "")))
    else:
        g = LevelGeometry(int(lv.size), int(lv.line), int(lv.ways), bool(lv.shared), lv.name)
    name = g.name or f"L{index + 1}"
    if g.line <= 0 or g.line & (g.line - 1):
        raise CacheGeometryError(f"{name}: line size {g.line} is not a power of two")
    if g.ways <= 0 or g.size <= 0 or g.size % (g.line * g.ways):
        raise CacheGeometryError(f"{name}: size {g.size} B is not a positive multiple of "
                                 f"line x ways = {g.line * g.ways} B")
    return LevelGeometry(g.size, g.line, g.ways, g.shared, name)


# ----------------------------------------------------------------------------- kernel
@njit(cache=True)
def _equiv(tags, stamps, dirty, abase, base, ways, k):  # pragma: no cover - compiled
    """Does the set at ``base`` behave as the set at ``abase`` shifted by ``k`` lines from now
    on: the same valid lines (``tag + k``), dirty bits and recency order? Future stamps
    exceed every stamp held, so LRU decisions depend on nothing else."""
    n_a = 0
    n_b = 0
    for w in range(ways):
        n_a += tags[abase + w] >= 0
    for w in range(base, base + ways):
        t = tags[w]
        if t < 0:
            continue
        n_b += 1
        match = -1
        for v in range(abase, abase + ways):
            if tags[v] >= 0 and tags[v] + k == t:
                match = v
                break
        if match < 0 or dirty[match] != dirty[w]:
            return False
        # same rank among the valid lines of each set
        for u in range(base, base + ways):
            if u == w or tags[u] < 0:
                continue
            for v in range(abase, abase + ways):
                if tags[v] >= 0 and tags[v] + k == tags[u]:
                    if (stamps[u] < stamps[w]) != (stamps[v] < stamps[match]):
                        return False
                    break
    return n_a == n_b


@njit(cache=True)
def _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, x, width, kind, c, t, rs):
    """Append a run to the outputs, extending the previous fill when contiguous."""
    if (kind == 0 and m > 0 and not rs and o_kind[m - 1] == 0 and o_core[m - 1] == c
            and o_task[m - 1] == t and o_start[m - 1] + o_count[m - 1] == x):
        o_count[m - 1] += width
        return m
    o_start[m] = x
    o_count[m] = width
    o_kind[m] = kind
    o_core[m] = c
    o_task[m] = t
    o_rs[m] = rs
    return m + 1


@njit(cache=True)
def _find(tags, base, ways, x):  # pragma: no cover - compiled
    """Slot of the set at ``base`` holding ``x``, or -1."""
    for w in range(base, base + ways):
        if tags[w] == x:
            return w
    return -1


@njit(cache=True)
def _victim(stamps, base, ways):  # pragma: no cover - compiled
    """Least recently used slot of the set at ``base`` (free slots first, in way order)."""
    victim = base
    vs = stamps[base]
    for w in range(base + 1, base + ways):
        sw = stamps[w]
        if sw < vs:
            vs = sw
            victim = w
    return victim


@njit(cache=True)
def _lru_level(start, count, kind, core, task, rs, i0, shared, sets, ways, g, nc, tags, stamps,
               dirty, own, n_own, streak, retry, clock, counters, tstats, o_start, o_count,
               o_kind, o_core, o_task, o_rs):  # pragma: no cover - compiled
    """One LRU level over ordered line runs from request ``i0``; writes the runs for the level
    below into the ``o_*`` buffers and stops before a request that might overflow them.
    Returns (next request, outputs written, clock).

    ``tags``/``stamps``/``dirty`` hold ``ways`` slots per set: first the ``nc`` canonical sets
    (one per super-set of ``g`` consecutive sets and instance), then one own set per cache set
    (valid where ``own`` is 1). A set that has seen only whole aligned granules holds exactly
    what every such set of its super-set holds, shifted by its offset, so the canonical set
    stands for all of them and a granule access is one step of width ``g``. A partial access
    gives the set it touches its own state, simulated line by line (width 1); when an own set
    again holds what the canonical set holds it rejoins it. Invalid slots carry negative
    stamps in way order, so the least recent stamp picks the first free way, then true LRU.
    """
    n = start.shape[0]
    cap = o_start.shape[0]
    m = 0
    n_super = sets // g
    pow2 = sets & (sets - 1) == 0
    smask = sets - 1
    gmask = g - 1
    gshift = 0
    while (1 << gshift) < g:
        gshift += 1
    c_ld = c_st = c_hit = c_miss = c_wbin = c_ev = c_wbout = c_rs = 0
    i = i0
    while i < n:
        if m + 2 * count[i] > cap:  # worst case: every line misses and evicts a dirty line
            break
        k_ = kind[i]
        c = core[i]
        t = task[i]
        inst = 0 if shared else c
        x0 = start[i]
        end = x0 + count[i]
        x = x0
        t_hit = t_miss = t_rs = 0
        while x < end:
            s = x & smask if pow2 else x % sets
            ss = s >> gshift
            off = s & gmask
            clock += 1
            sidx = inst * sets + s  # global set index
            gidx = inst * n_super + ss  # global super-set index
            if off == 0 and x + g <= end:
                base = gidx * ways
                width = g
                if n_own[gidx] == g and retry[gidx] <= 0:
                    # every set has its own state: if they all agree (up to their shift),
                    # the first becomes the canonical set again
                    ob0 = (nc + sidx) * ways
                    agree = True
                    for j in range(1, g):
                        if not _equiv(tags, stamps, dirty, ob0, ob0 + j * ways, ways, j):
                            agree = False
                            break
                    if agree:
                        for w in range(ways):
                            tags[base + w] = tags[ob0 + w]
                            stamps[base + w] = stamps[ob0 + w]
                            dirty[base + w] = dirty[ob0 + w]
                        for j in range(g):
                            own[sidx + j] = 0
                            streak[sidx + j] = 0
                        n_own[gidx] = 0
                    else:
                        retry[gidx] = ways  # try again after as many granules
                if n_own[gidx] != 0:
                    # ---- a whole granule on a super-set where some sets have their own
                    # state: the canonical set takes it for the followers, then each own set
                    # takes its line.
                    retry[gidx] -= 1
                    followers = g - n_own[gidx]
                    found = _find(tags, base, ways, x)
                    if k_ == 2:
                        c_wbin += followers
                    elif k_ == 1:
                        c_st += followers
                    else:
                        c_ld += followers
                    chit = found >= 0
                    vtag = -1
                    vdirty = 0
                    if chit:
                        stamps[found] = clock
                        if k_ != 0:
                            dirty[found] = 1
                        if k_ != 2:
                            c_hit += followers
                            t_hit += followers
                    else:
                        victim = _victim(stamps, base, ways)
                        if k_ != 2:
                            c_miss += followers
                            t_miss += followers
                        vtag = tags[victim]
                        vdirty = dirty[victim]
                        if vtag >= 0:
                            c_ev += followers
                            if vdirty:
                                c_wbout += followers
                        tags[victim] = x
                        stamps[victim] = clock
                        dirty[victim] = 1 if k_ != 0 else 0
                    j = 0
                    while j < g:
                        sj = sidx + j
                        if own[sj] == 0:
                            # a span of followers: they share the canonical result, so
                            # their fills (and write-backs) go out as runs
                            jn = j + 1
                            while jn < g and own[sidx + jn] == 0:
                                jn += 1
                            if not chit:
                                is_rs = rs[i] and x + j == x0
                                if k_ != 2:
                                    if is_rs:
                                        c_rs += 1
                                        t_rs += 1
                                    m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs,
                                              m, x + j, jn - j, 0, c, t, is_rs)
                                if vtag >= 0 and vdirty:
                                    m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs,
                                              m, vtag + j, jn - j, 2, c, t, False)
                            j = jn
                            continue
                        # one line on an own set
                        xx = x + j
                        ob = (nc + sj) * ways
                        found = _find(tags, ob, ways, xx)
                        if k_ == 2:
                            c_wbin += 1
                        elif k_ == 1:
                            c_st += 1
                        else:
                            c_ld += 1
                        if found >= 0:
                            stamps[found] = clock
                            if k_ != 0:
                                dirty[found] = 1
                            if k_ != 2:
                                c_hit += 1
                                t_hit += 1
                        else:
                            victim = _victim(stamps, ob, ways)
                            is_rs = rs[i] and xx == x0
                            if k_ != 2:
                                c_miss += 1
                                t_miss += 1
                                if is_rs:
                                    c_rs += 1
                                    t_rs += 1
                                m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m,
                                          xx, 1, 0, c, t, is_rs)
                            old = tags[victim]
                            if old >= 0:
                                c_ev += 1
                                if dirty[victim]:
                                    c_wbout += 1
                                    m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs,
                                              m, old, 1, 2, c, t, False)
                            tags[victim] = xx
                            stamps[victim] = clock
                            dirty[victim] = 1 if k_ != 0 else 0
                            if k_ != 2 and not chit:
                                # both the canonical and this set missed: the same granule
                                # went in at MRU; after `ways` such events since the last
                                # partial access they may agree again
                                streak[sj] += 1
                                if streak[sj] >= ways:
                                    streak[sj] = 0
                                    if _equiv(tags, stamps, dirty, base, ob, ways, j):
                                        own[sj] = 0
                                        n_own[gidx] -= 1
                        j += 1
                    x += g
                    continue
            else:
                # ---- a partial access: this set gets (or keeps) its own state
                base = (nc + sidx) * ways
                width = 1
                streak[sidx] = 0
                if own[sidx] == 0:
                    own[sidx] = 1
                    n_own[gidx] += 1
                    cb = gidx * ways
                    for w in range(ways):
                        tg = tags[cb + w]
                        tags[base + w] = tg + off if tg >= 0 else -1
                        stamps[base + w] = stamps[cb + w]
                        dirty[base + w] = dirty[cb + w]
            # ---- one LRU step of `width` lines (a pure granule or one own line)
            found = _find(tags, base, ways, x)
            if k_ == 2:
                c_wbin += width
            elif k_ == 1:
                c_st += width
            else:
                c_ld += width
            if found >= 0:
                stamps[found] = clock
                if k_ != 0:
                    dirty[found] = 1
                if k_ != 2:
                    c_hit += width
                    t_hit += width
            else:
                victim = _victim(stamps, base, ways)
                if k_ != 2:
                    is_rs = rs[i] and x == x0
                    c_miss += width
                    t_miss += width
                    if is_rs:
                        c_rs += 1
                        t_rs += 1
                    m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, x, width, 0,
                              c, t, is_rs)
                old = tags[victim]
                if old >= 0:
                    c_ev += width
                    if dirty[victim]:
                        c_wbout += width
                        m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, old,
                                  width, 2, c, t, False)
                tags[victim] = x
                stamps[victim] = clock
                dirty[victim] = 1 if k_ != 0 else 0
            x += width
        tstats[t, 0] += t_hit
        tstats[t, 1] += t_miss
        tstats[t, 2] += t_rs
        i += 1
    counters[_LOADS] += c_ld
    counters[_STORES] += c_st
    counters[_HITS] += c_hit
    counters[_MISSES] += c_miss
    counters[_WB_IN] += c_wbin
    counters[_EVICT] += c_ev
    counters[_WB_OUT] += c_wbout
    counters[_RS_MISS] += c_rs
    return i, m, clock


def _pow2_divisor(n: int, cap: int) -> int:
    g = 1
    while n % (2 * g) == 0 and 2 * g <= cap:
        g *= 2
    return g


class LRUCache(MemoryLevel):
    """Set-associative, true-LRU, write-back, write-allocate cache level."""

    type_name = "cache"

    def __init__(self, spec, cores: int = 1, max_granule: int = 32):
        super().__init__(spec, cores)
        self.geom = geometry(spec)
        sets, ways = self.geom.sets, self.geom.ways
        self.g = _pow2_divisor(sets, max_granule)
        self.nc = self.instances * (sets // self.g)  # canonical sets, then one own set per set
        n_slots = (self.nc + self.instances * sets) * ways
        # own slots are written whole when a set gets its own state: only the canonical ones
        # are initialised (untouched pages of a large cache cost nothing)
        self.tags = np.empty(n_slots, dtype=np.int64)
        self.stamps = np.empty(n_slots, dtype=np.int64)
        self.dirty = np.empty(n_slots, dtype=np.uint8)
        k = self.nc * ways
        self.tags[:k] = -1
        # free slots: negative stamps in way order (the first free way is the LRU one)
        self.stamps[:k] = np.tile(np.arange(ways, dtype=np.int64) - ways, self.nc)
        self.dirty[:k] = 0
        self.own = np.zeros(self.instances * sets, dtype=np.uint8)
        self.n_own = np.zeros(self.nc, dtype=np.int64)
        self.streak = np.zeros(self.instances * sets, dtype=np.int64)
        self.retry = np.zeros(self.nc, dtype=np.int64)
        self.clock = 0

    def process(self, req: Requests, tstats: np.ndarray) -> Requests:
        n = len(req)
        cap = 2 * n + 2 * (int(req.count.max()) if n else 0) + 16
        parts = []
        i = 0
        while True:
            buf = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int8),
                   np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.bool_))
            i, m, self.clock = _lru_level(
                req.start, req.count, req.kind, req.core, req.task, req.run_start, i,
                self.shared, self.geom.sets, self.geom.ways, self.g, self.nc, self.tags,
                self.stamps, self.dirty, self.own, self.n_own, self.streak, self.retry, self.clock,
                self.counters, tstats, *buf)
            parts.append([b[:m] for b in buf])
            if i >= n:
                break
        cols = parts[0] if len(parts) == 1 else [np.concatenate(c) for c in zip(*parts)]
        return Requests(*cols, line=req.line)

    def dirty_lines(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(line, 1, instance) of every dirty line, in ascending (instance, line) order
        whatever the internal representation; clears the dirty bits."""
        sets, ways, g, nc = self.geom.sets, self.geom.ways, self.g, self.nc
        n_super = sets // g
        split = nc * ways
        # own sets
        slot = (split + np.nonzero(self.own)[0][:, None] * ways + np.arange(ways)).ravel()
        slot = slot[(self.tags[slot] >= 0) & (self.dirty[slot] == 1)]
        lines = [self.tags[slot]]
        insts = [(slot - split) // (sets * ways)]
        self.dirty[slot] = 0
        # canonical sets: one line per following set
        cs = np.nonzero((self.tags[:split] >= 0) & (self.dirty[:split] == 1))[0]
        gidx = cs // ways
        inst = gidx // n_super
        first_set = inst * sets + (gidx % n_super) * g
        follow = self.own[first_set[:, None] + np.arange(g)[None, :]] == 0
        lines.append((self.tags[cs][:, None] + np.arange(g)[None, :])[follow])
        insts.append(np.broadcast_to(inst[:, None], follow.shape)[follow])
        self.dirty[cs] = 0
        line = np.concatenate(lines)
        inst = np.concatenate(insts)
        order = np.lexsort((line, inst))
        return line[order], np.ones(order.shape[0], np.int64), inst[order]


# ----------------------------------------------------------------------------- hierarchy
@njit(cache=True)
def _line_runs(addr, length, wr, cr, cores, shift, first, count, kind):  # pragma: no cover
    """Byte ranges -> (first line, line count, kind); 1 on a bad range, 2 on a bad core."""
    for i in range(addr.shape[0]):
        a = addr[i]
        n = length[i]
        if a < 0 or n < 1:
            return 1
        if cr[i] < 0 or cr[i] >= cores:
            return 2
        f = a >> shift
        first[i] = f
        count[i] = ((a + n - 1) >> shift) + 1 - f
        kind[i] = STORE if wr[i] else LOAD
    return 0


class CacheHierarchy:
    """A chain of memory levels (LRU caches by default) in front of main memory.

    Private levels keep one instance per core; shared levels see the cores' requests in the
    order given. ``levels`` are geometries/specs (made into :class:`LRUCache`) or ready
    :class:`MemoryLevel` objects. ``max_granule`` bounds the coalescing of aligned runs (lines).
    """

    def __init__(self, levels, cores: int = 1, line: int | None = None, max_granule: int = 32):
        if cores < 1:
            raise CacheGeometryError("cores must be at least 1")
        self.cores = cores
        self.levels: list[MemoryLevel] = [
            lv if isinstance(lv, MemoryLevel) else LRUCache(geometry(lv, i), cores, max_granule)
            for i, lv in enumerate(levels)]
        # a granule's fills go out before its write-backs; that equals the line-by-line order
        # only if the next cache's set count is a multiple of this one's: otherwise this level
        # runs line by line (exact either way, only slower)
        caches = [i for i, lv in enumerate(self.levels) if isinstance(lv, LRUCache)]
        for a, b in zip(caches, caches[1:]):
            above, below = self.levels[a], self.levels[b]
            if above.g > 1 and below.geom.sets % above.geom.sets:
                self.levels[a] = LRUCache(above.spec, cores, max_granule=1)
        lines = {lv.geom.line for lv in self.levels if isinstance(lv, LRUCache)}
        if len(lines) > 1:
            raise CacheGeometryError("all cache levels must use the same line size")
        self.line = lines.pop() if lines else (line or 64)
        seen_shared = False
        for lv in self.levels:
            if seen_shared and not lv.shared:
                raise CacheGeometryError(f"{lv.name}: a private level cannot lie below a "
                                         f"shared one")
            seen_shared |= lv.shared
        self.memory = np.zeros(2, dtype=np.int64)  # lines read, lines written

    def requests(self, addresses, lengths=None, writes=None, cores=None, tasks=None) -> Requests:
        """Turn byte ranges into line-run requests."""
        addr = np.ascontiguousarray(addresses, dtype=np.int64).reshape(-1)
        n = addr.shape[0]
        length = np.ones(n, np.int64) if lengths is None else \
            np.ascontiguousarray(lengths, np.int64)
        wr = np.zeros(n, np.bool_) if writes is None else np.ascontiguousarray(writes, np.bool_)
        cr = np.zeros(n, np.int64) if cores is None else np.ascontiguousarray(cores, np.int64)
        tk = np.zeros(n, np.int64) if tasks is None else np.ascontiguousarray(tasks, np.int64)
        if length.shape != (n,) or wr.shape != (n,) or cr.shape != (n,) or tk.shape != (n,):
            raise ValueError("lengths, writes, cores and tasks must match addresses")
        first = np.empty(n, np.int64)
        count = np.empty(n, np.int64)
        kind = np.empty(n, np.int8)
        bad = _line_runs(addr, length, wr, cr, self.cores, self.line.bit_length() - 1, first,
                         count, kind)
        if bad == 1:
            raise ValueError("addresses must be non-negative and lengths positive")
        if bad == 2:
            raise ValueError(f"core ids must be within 0..{self.cores - 1}")
        return Requests(first, count, kind, cr, tk, np.ones(n, np.bool_), self.line)

    def access(self, addresses, lengths=None, writes=None, cores=None, tasks=None,
               n_tasks: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Replay accesses: byte ``addresses`` with optional byte ``lengths`` (default 1),
        ``writes`` (bool), issuing ``cores`` and workload ``tasks``, in the order given.

        Returns per-task counters: ``(lines (n_tasks, levels, 3) = hits, misses, run-start
        misses; memory (n_tasks, 2) = lines read, lines written back)``."""
        req = self.requests(addresses, lengths, writes, cores, tasks)
        nt = int(n_tasks if n_tasks is not None else (req.task.max() + 1 if len(req) else 1))
        if len(req) and req.task.max() >= nt:
            raise ValueError("task ids must be below n_tasks")
        return self.replay(req, nt)

    def replay(self, req: Requests, n_tasks: int) -> tuple[np.ndarray, np.ndarray]:
        """Send requests down the chain; count what reaches main memory."""
        tstats = np.zeros((n_tasks, len(self.levels), 3), dtype=np.int64)
        tmem = np.zeros((n_tasks, 2), dtype=np.int64)
        for i, lv in enumerate(self.levels):
            if len(req) == 0:
                break
            per = np.zeros((n_tasks, 3), dtype=np.int64)
            req = lv.process(req, per)
            tstats[:, i] += per
        if len(req):
            wb = req.kind == WRITEBACK
            np.add.at(tmem[:, 0], req.task[~wb], req.count[~wb])
            np.add.at(tmem[:, 1], req.task[wb], req.count[wb])
            self.memory += [int(req.count[~wb].sum()), int(req.count[wb].sum())]
        return tstats, tmem

    def flush(self) -> None:
        """Write every dirty line back towards memory (counted as write-backs)."""
        for i, lv in enumerate(self.levels):
            if not isinstance(lv, LRUCache):
                continue
            first, count, inst = lv.dirty_lines()
            if not len(first):
                continue
            lv.counters[6] += int(count.sum())
            n = len(first)
            req = Requests(first, count, np.full(n, WRITEBACK, np.int8), inst,
                           np.zeros(n, np.int64), np.zeros(n, np.bool_), self.line)
            for below in self.levels[i + 1:]:
                req = below.process(req, np.zeros((1, 3), np.int64))
            self.memory[1] += int(req.count[req.kind == WRITEBACK].sum())

    def reset_stats(self) -> None:
        """Zero the counters, keeping the cache contents (for warm-up)."""
        for lv in self.levels:
            lv.reset_stats()
        self.memory[:] = 0

    def stats(self) -> list[dict]:
        """Per level the counters of STAT_FIELDS (lines) and ``*_bytes``; then memory."""
        out = []
        for lv in self.levels:
            d = lv.stats()
            for k in ("hits", "misses", "writebacks"):
                d[f"{k}_bytes"] = d[k] * self.line
            out.append(d)
        out.append({"name": "memory", "reads": int(self.memory[0]),
                    "writes": int(self.memory[1]), "read_bytes": int(self.memory[0]) * self.line,
                    "write_bytes": int(self.memory[1]) * self.line})
        return out


def simulate_cache(levels, addresses, writes=None, lengths=None) -> list[dict]:
    """Simulate one stream through a fresh single-core LRU hierarchy.

    ``levels``: list from L1 outwards of ``{"size": bytes, "line": bytes, "ways": int}`` (or
    ``CacheSpec`` objects); ``addresses``: byte addresses; ``writes``: optional bool array;
    ``lengths``: optional byte lengths (ranges). Returns one dict per level with ``hits``,
    ``misses``, ``evictions`` (and the other STAT_FIELDS), then one for memory.
    """
    if not levels:
        raise CacheGeometryError("at least one cache level is needed")
    h = CacheHierarchy(levels, cores=1)
    h.access(addresses, lengths=lengths, writes=writes)
    return h.stats()


__all__ = ["CacheGeometryError", "CacheHierarchy", "LRUCache", "LevelGeometry", "STAT_FIELDS",
           "geometry", "simulate_cache"]
