"""The line-by-line form of an LRU level, and conversion to and from the class form.

:class:`hwmodels.cache.LRUCache` keeps its state in one of two forms. The class form
(``hwmodels.cache``) simulates aligned runs of lines in one step per class of sets; it pays on
streams of long runs (weight rows, membrane blocks). On streams without runs (one address per
line in no order, uniformly random addresses) every access is a partial piece of a super-set
and the class bookkeeping costs more than it saves. The plain form of this module is the
textbook simulator: per set its ``ways`` lines in recency order (most recent first), each
stored as ``2 * line + dirty``, one step per line. Both forms give identical counters, and
their outputs differ at most in the order of fills and write-backs that share no set below;
the level switches form between two batches of requests (``LRUCache.process``), converting
the state.

Request kinds: LOAD (0), STORE (1), WRITEBACK (2) and READ_MODIFY_WRITE (3: each line is
loaded, then stored, as a load immediately followed by a store of the same line; produced by
:mod:`hwmodels.runs`). ``rs`` (run start) per request: 0 none, 1 the request's first line, 2
every line (a run made of one-line accesses).
"""
from __future__ import annotations

import numpy as np
from numba import njit

_LOADS, _STORES, _HITS, _MISSES, _WB_IN, _EVICT, _WB_OUT, _RS_MISS = range(8)


@njit(cache=True, inline="always")
def emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, x, width, kind, c, t,
         rs):  # pragma: no cover - compiled
    """Append a run to the outputs, extending the previous fill (or write-back) when
    contiguous and of the same run-start kind (none, or every line)."""
    if (kind != 1 and m > 0 and o_kind[m - 1] == kind and o_core[m - 1] == c
            and o_task[m - 1] == t and o_start[m - 1] + o_count[m - 1] == x
            and ((rs == 0 and o_rs[m - 1] != 2) or (rs == 2 and o_rs[m - 1] == 2))):
        o_count[m - 1] += width
        return m
    o_start[m] = x
    o_count[m] = width
    o_kind[m] = kind
    o_core[m] = c
    o_task[m] = t
    o_rs[m] = rs
    return m + 1


@njit(cache=True, inline="always")
def add_counts(counters, ld, st, hit, miss, wbin, ev, wbout, rs):  # pragma: no cover
    """Add a level kernel's totals to the level's counters (STAT_FIELDS order)."""
    counters[_LOADS] += ld
    counters[_STORES] += st
    counters[_HITS] += hit
    counters[_MISSES] += miss
    counters[_WB_IN] += wbin
    counters[_EVICT] += ev
    counters[_WB_OUT] += wbout
    counters[_RS_MISS] += rs


@njit(cache=True)
def slot(nc, g, gidx, k):  # pragma: no cover - compiled
    """First storage slot of class ``k`` of super-set ``gidx`` (class form): class ``g``
    lives in the canonical region, classes ``0..g-1`` in the super-set's block of the second
    region."""
    return gidx if k == g else nc + gidx * g + k


_HIT = -3  # _step's result for a hit (else the evicted entry, -2 for none)


@njit(cache=True, inline="always")
def _step(tags, base, x, W, wr):  # pragma: no cover - compiled
    """One access to line ``x`` in the set at ``base`` (``W`` ways, most recent first, the
    entries up to the stride never used): ``wr`` 1 marks it dirty. Returns _HIT, or the entry
    it evicted (-2: a free way)."""
    key = 2 * x + 1
    found = -1
    for w0 in range(0, W, 4):  # four at a time: the compiler compares them at once
        b = base + w0
        h0 = tags[b] | 1 == key
        h1 = tags[b + 1] | 1 == key
        h2 = tags[b + 2] | 1 == key
        h3 = tags[b + 3] | 1 == key
        if h0 | h1 | h2 | h3:
            found = w0 + (0 if h0 else 1 if h1 else 2 if h2 else 3)
            break
    if found >= 0:
        v = tags[base + found] | wr
        for w in range(found, 0, -1):
            tags[base + w] = tags[base + w - 1]
        tags[base] = v
        return _HIT
    old = tags[base + W - 1]
    for w in range(W - 1, 0, -1):
        tags[base + w] = tags[base + w - 1]
    tags[base] = 2 * x + wr
    return old


def _step_for(W):
    """``_step`` for a compile-time number of ways (the loops unroll: ~1.5x faster)."""
    @njit(inline="always")
    def step(tags, base, x, wr):  # pragma: no cover - compiled
        key = 2 * x + 1
        found = -1
        for w in range(W):
            if tags[base + w] | 1 == key:
                found = w
        if found >= 0:
            v = tags[base + found] | wr
            for w in range(found, 0, -1):
                tags[base + w] = tags[base + w - 1]
            tags[base] = v
            return _HIT
        old = tags[base + W - 1]
        for w in range(W - 1, 0, -1):
            tags[base + w] = tags[base + w - 1]
        tags[base] = 2 * x + wr
        return old
    return step


_step4, _step8, _step12, _step16 = (_step_for(w) for w in (4, 8, 12, 16))


@njit(cache=True, inline="always")
def _stepw(tags, base, x, W, wr):  # pragma: no cover - compiled
    """``_step``, unrolled for the common way counts."""
    if W == 8:
        return _step8(tags, base, x, wr)
    if W == 16:
        return _step16(tags, base, x, wr)
    if W == 12:
        return _step12(tags, base, x, wr)
    if W == 4:
        return _step4(tags, base, x, wr)
    return _step(tags, base, x, W, wr)


@njit(cache=True, inline="always")
def _base(x, sets, inst, P):  # pragma: no cover - compiled
    s = x & (sets - 1) if sets & (sets - 1) == 0 else x % sets
    return (inst * sets + s) * P


@njit(cache=True, inline="always")
def stride(ways):  # pragma: no cover - compiled
    """Entries per set in the plain form: the ways rounded up to a multiple of 4."""
    return (ways + 3) & ~3


@njit(cache=True)
def plain_level(start, count, kind, core, task, rs, i0, shared, sets, ways, tags, group,
                counters, tstats, o_start, o_count, o_kind, o_core, o_task,
                o_rs):  # pragma: no cover - compiled
    """One LRU level, line by line, from request ``i0``; ``tags`` holds per set (of every
    instance, ``stride(ways)`` entries each) its lines most recent first as
    ``2 * line + dirty`` (-2: empty). Same contract as ``hwmodels.lru_class.class_level``:
    returns (next request, outputs written).

    ``group`` (allowed where the next level's set count is a multiple of this one's, or
    nothing but memory lies below): the write-backs of a request's lines go out after the
    fills of each ``sets`` of its lines, as the class form's granules do. Those lines lie in
    distinct sets of this level, so their fills and the victims' write-backs meet no common
    set below and the order between them changes nothing; the fills then leave as one run
    instead of a row each (a 512 M-line VGG9 stream otherwise needs ~10 GB of rows between
    levels)."""
    n = start.shape[0]
    cap = o_start.shape[0]
    m = 0
    P = stride(ways)
    wbuf = np.empty(sets if group else 1, np.int64)
    nb = 0
    c_ld = c_st = c_hit = c_miss = c_wbin = c_ev = c_wbout = c_rs = 0
    t_prev = task[i0] if i0 < n else 0
    t_hit = t_miss = t_rs = 0
    i = i0
    while i < n:
        cnt = count[i]
        if m + 2 * cnt > cap:  # worst case: every line misses and evicts a dirty line
            break
        k_ = kind[i]
        c = core[i]
        t = task[i]
        if t != t_prev:
            tstats[t_prev, 0] += t_hit
            tstats[t_prev, 1] += t_miss
            tstats[t_prev, 2] += t_rs
            t_hit = t_miss = t_rs = 0
            t_prev = t
        rsi = rs[i]
        inst = 0 if shared else c
        x0 = start[i]
        wr = 0 if k_ == 0 else 1
        if k_ == 2:
            c_wbin += cnt
        elif k_ == 1:
            c_st += cnt
        elif k_ == 3:  # the store of each line hits the line its load just brought in
            c_ld += cnt
            c_st += cnt
            c_hit += cnt
            t_hit += cnt
        else:
            c_ld += cnt
        for x in range(x0, x0 + cnt):
            old = _stepw(tags, _base(x, sets, inst, P), x, ways, wr)
            if old == _HIT:
                if k_ != 2:
                    c_hit += 1
                    t_hit += 1
            elif k_ != 2:
                c_miss += 1
                t_miss += 1
                r = 0
                if rsi == 2 or (rsi != 0 and x == x0):
                    r = rsi
                    c_rs += 1
                    t_rs += 1
                m = emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, x, 1, 0, c, t, r)
            if old != _HIT and old >= 0:
                c_ev += 1
                if old & 1:
                    c_wbout += 1
                    if group:
                        wbuf[nb] = old >> 1
                        nb += 1
                    else:
                        m = emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, old >> 1,
                                 1, 2, c, t, 0)
            if nb and ((x - x0 + 1) % sets == 0 or x == x0 + cnt - 1):
                for q in range(nb):
                    m = emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, wbuf[q], 1,
                             2, c, t, 0)
                nb = 0
        i += 1
    tstats[t_prev, 0] += t_hit
    tstats[t_prev, 1] += t_miss
    tstats[t_prev, 2] += t_rs
    add_counts(counters, c_ld, c_st, c_hit, c_miss, c_wbin, c_ev, c_wbout, c_rs)
    return i, m


@njit(cache=True)
def to_plain(tags, stamps, dirty, cls, nc, g, ways, ptags):  # pragma: no cover
    """Class form -> plain form: every set's lines (class tag + its offset), most recent
    first, with their dirty bits."""
    order = np.empty(ways, np.int64)
    P = stride(ways)
    for gidx in range(nc):
        for j in range(g):
            gs = gidx * g + j
            base = slot(nc, g, gidx, cls[gs]) * ways
            v = 0
            for w in range(base, base + ways):
                if tags[w] < 0:
                    continue
                p = v  # insertion by stamp, most recent first
                while p > 0 and stamps[order[p - 1]] < stamps[w]:
                    order[p] = order[p - 1]
                    p -= 1
                order[p] = w
                v += 1
            pb = gs * P
            for r in range(P):
                if r < v:
                    ptags[pb + r] = 2 * (tags[order[r]] + j) + (dirty[order[r]] != 0)
                else:
                    ptags[pb + r] = -2


@njit(cache=True)
def from_plain(ptags, nc, g, ways, clock, tags, stamps, dirty, cls, members, active, sole,
               version, last, sync):  # pragma: no cover - compiled
    """Plain form -> class form: every set of a touched super-set becomes its own class (the
    next whole granule merges the ones that agree); untouched super-sets get the initial
    single empty class. Returns the new clock."""
    g1 = g + 1
    full = (1 << g) - 1
    P = stride(ways)
    top = clock + ways + 1  # every stamp written below is under it
    rec = last.shape[0] // nc  # split records per super-set
    for gidx in range(nc):
        touched = False
        for w in range(gidx * g * P, (gidx + 1) * g * P):
            if ptags[w] >= 0:
                touched = True
                break
        sync[gidx] = -1
        for e in range(rec * gidx, rec * (gidx + 1) - 1):
            last[e] = -1
        last[rec * (gidx + 1) - 1] = 0
        if not touched:
            base = gidx * ways
            for w in range(ways):
                tags[base + w] = -1
                stamps[base + w] = w - ways
                dirty[base + w] = 0
            for k in range(g):
                members[gidx * g1 + k] = 0
                cls[gidx * g + k] = g
            members[gidx * g1 + g] = full
            active[gidx] = 1 << g
            sole[gidx] = gidx
            version[gidx] = clock
            continue
        members[gidx * g1 + g] = 0
        for j in range(g):
            gs = gidx * g + j
            sl = slot(nc, g, gidx, j)
            base = sl * ways
            pb = gs * P
            v = 0
            for r in range(ways):
                if ptags[pb + r] >= 0:
                    v += 1
            for r in range(ways):
                if r < v:
                    tags[base + r] = (ptags[pb + r] >> 1) - j
                    stamps[base + r] = clock + v - r
                    dirty[base + r] = ptags[pb + r] & 1
                else:
                    tags[base + r] = -1
                    stamps[base + r] = r - ways
                    dirty[base + r] = 0
            version[sl] = clock + v
            cls[gs] = j
            members[gidx * g1 + j] = 1 << j
        active[gidx] = full
        sole[gidx] = slot(nc, g, gidx, 0) if g == 1 else -1
    return top


@njit(cache=True)
def plain_dirty_lines(ptags, sets, ways):  # pragma: no cover - compiled
    """(line, instance) of every dirty line of the plain form; clears the dirty bits."""
    P = stride(ways)
    n = 0
    for w in range(ptags.shape[0]):
        n += ptags[w] >= 0 and ptags[w] & 1
    line = np.empty(n, np.int64)
    inst = np.empty(n, np.int64)
    n = 0
    for w in range(ptags.shape[0]):
        if ptags[w] >= 0 and ptags[w] & 1:
            line[n] = ptags[w] >> 1
            inst[n] = w // P // sets
            ptags[w] -= 1
            n += 1
    return line, inst


@njit(cache=True)
def fused_plain(addr, length, write, core, task, flags, shift, nl, sets, shared, t0, t1, t2,
                t3, w0, w1, w2, w3, counters, tstats, tmem):  # pragma: no cover - compiled
    """Byte accesses (``flags`` as in :func:`hwmodels.runs._find_runs`) through up to four
    LRU levels in the plain form at once, line by line, with no requests in between: the
    path for streams without runs. ``t0..t3``/``w0..w3``/``sets``/``shared`` per level
    (unused ones: 1 way, 1 set); adds to ``counters`` (levels, 8, STAT_FIELDS order) and per
    task to ``tstats`` (tasks, levels, 3) and ``tmem`` (tasks, 2).

    A line's fill goes down while it misses; then each level's dirty victim is written back
    to the level below, the deepest first: a recursive simulator's order, which is also the
    order in which level-by-level replay reaches each level. The depth a fill reaches decides
    every level's hit or miss, so the kernel counts depths (per task, with and without a run
    start) and derives the counters at the end. The four levels' steps are written out, not
    looped over: a loop that picks the level's arrays at run time measured 1.6x slower on
    random addresses (155 ms against 94 ms for 2 M lines)."""
    n = addr.shape[0]
    nt = tstats.shape[0]
    has_len = flags & 1
    has_wr = flags & 2
    has_core = flags & 4
    has_task = flags & 8
    s0, s1, s2, s3 = sets[0], sets[1], sets[2], sets[3]
    P0, P1, P2, P3 = stride(w0), stride(w1), stride(w2), stride(w3)
    sh0, sh1, sh2, sh3 = shared[0], shared[1], shared[2], shared[3]
    depth = np.zeros((nt, 5, 2), np.int64)  # per task, levels missed, run start or not
    ev = np.zeros(5, np.int64)  # per level: evictions
    wbo = np.zeros(5, np.int64)  # per level: dirty evictions (written back below)
    mem_w = np.zeros(nt, np.int64)
    n_ld = n_st = 0
    for i in range(n):
        a = addr[i]
        ln = length[i] if has_len else 1
        c = core[i] if has_core else 0
        t = task[i] if has_task else 0
        wr = 1 if has_wr and write[i] else 0
        f = a >> shift
        e = ((a + ln - 1) >> shift) + 1
        if wr:
            n_st += e - f
        else:
            n_ld += e - f
        for x in range(f, e):
            v0 = v1 = v2 = v3 = -1
            d = 0
            r = _stepw(t0, _base(x, s0, 0 if sh0 else c, P0), x, w0, wr)
            if r != _HIT:
                d = 1
                if r >= 0:
                    ev[0] += 1
                    if r & 1:
                        v0 = r >> 1
                if nl > 1:
                    r = _stepw(t1, _base(x, s1, 0 if sh1 else c, P1), x, w1, 0)
                    if r != _HIT:
                        d = 2
                        if r >= 0:
                            ev[1] += 1
                            if r & 1:
                                v1 = r >> 1
                        if nl > 2:
                            r = _stepw(t2, _base(x, s2, 0 if sh2 else c, P2), x, w2, 0)
                            if r != _HIT:
                                d = 3
                                if r >= 0:
                                    ev[2] += 1
                                    if r & 1:
                                        v2 = r >> 1
                                if nl > 3:
                                    r = _stepw(t3, _base(x, s3, 0 if sh3 else c, P3), x, w3, 0)
                                    if r != _HIT:
                                        d = 4
                                        if r >= 0:
                                            ev[3] += 1
                                            if r & 1:
                                                v3 = r >> 1
            depth[t, d, 1 if x == f else 0] += 1
            if v0 < 0 and v1 < 0 and v2 < 0 and v3 < 0:
                continue
            # write-backs, the deepest level's victim first
            for lv in range(d - 1, -1, -1):
                y = v0 if lv == 0 else v1 if lv == 1 else v2 if lv == 2 else v3
                if y < 0:
                    continue
                wbo[lv] += 1
                j = lv + 1
                while y >= 0:
                    if j >= nl:
                        mem_w[t] += 1
                        break
                    if j == 1:
                        r = _stepw(t1, _base(y, s1, 0 if sh1 else c, P1), y, w1, 1)
                    elif j == 2:
                        r = _stepw(t2, _base(y, s2, 0 if sh2 else c, P2), y, w2, 1)
                    else:
                        r = _stepw(t3, _base(y, s3, 0 if sh3 else c, P3), y, w3, 1)
                    y = -1
                    if r != _HIT and r >= 0:
                        ev[j] += 1
                        if r & 1:
                            wbo[j] += 1
                            y = r >> 1
                    j += 1
    # counters from the depths: level l hits at depth l, misses at any depth beyond it
    counters[0, _LOADS] += n_ld
    counters[0, _STORES] += n_st
    for t in range(nt):
        for lv in range(nl):
            hit = depth[t, lv, 0] + depth[t, lv, 1]
            miss = 0
            rsm = 0
            for dd in range(lv + 1, nl + 1):
                miss += depth[t, dd, 0] + depth[t, dd, 1]
                rsm += depth[t, dd, 1]
            tstats[t, lv, 0] += hit
            tstats[t, lv, 1] += miss
            tstats[t, lv, 2] += rsm
            counters[lv, _HITS] += hit
            counters[lv, _MISSES] += miss
            counters[lv, _RS_MISS] += rsm
            if lv + 1 < nl:
                counters[lv + 1, _LOADS] += miss
        tmem[t, 0] += depth[t, nl, 0] + depth[t, nl, 1]
        tmem[t, 1] += mem_w[t]
    for lv in range(nl):
        counters[lv, _EVICT] += ev[lv]
        counters[lv, _WB_OUT] += wbo[lv]
        if lv + 1 < nl:
            counters[lv + 1, _WB_IN] += wbo[lv]
