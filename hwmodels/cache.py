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
consecutive sets (G a power of two dividing the set count, at most ``max_granule`` <= 32) and
partitions each super-set's sets into *classes*. Set ``j`` holding line ``x + j`` is stored as
holding ``x``; sets whose states are equal in that normalised form form a class and share one
state. Initially every super-set is one class, and while it sees whole aligned granules of G
lines (a weight row, a membrane block) one LRU step per granule simulates all G lines. A
partial access steps only the classes it touches, splitting off the touched sets of a class it
covers partly; sets that leave the same class with the same (normalised) line right after one
another join one copy (consecutive packed rows stay one class). Classes merge again when their
states agree: checked on the first whole granule after partial accesses, and known without a
check once every class has taken ``ways`` whole granules since, each a new line for all of them
with agreeing dirty bits. The result is exact; see docs/cache-model.md.

That class form pays on runs. A level may also hold its state in the plain form
(:mod:`hwmodels.lru_plain`, line by line) and picks the form per batch of requests;
:meth:`CacheHierarchy.access` finds the runs in any address stream first (:mod:`hwmodels.runs`)
and sends a stream without runs through all levels at once, line by line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from hwmodels.components import (
    LOAD,
    STAT_FIELDS,
    STORE,
    WRITEBACK,
    MemoryLevel,
    Requests,
)
from hwmodels.lru_plain import emit as _emit
from hwmodels.lru_plain import from_plain, fused_plain, plain_dirty_lines, plain_level, to_plain
from hwmodels.lru_plain import slot as _slot
from hwmodels.runs import columns, find_runs, run_shares

_LOADS, _STORES, _HITS, _MISSES, _WB_IN, _EVICT, _WB_OUT, _RS_MISS = range(8)
_NREC = 4  # split records kept per super-set (see _lru_level)
_MODES = ("auto", "class", "plain")
_RUNLESS = 0.25  # see CacheHierarchy.access


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
def _find(tags, base, ways, x):  # pragma: no cover - compiled
    """Slot of the set at ``base`` holding ``x``, or -1."""
    if ways & 3 == 0:  # four at a time: the compiler compares them at once
        for w in range(base, base + ways, 4):
            h0 = tags[w] == x
            h1 = tags[w + 1] == x
            h2 = tags[w + 2] == x
            h3 = tags[w + 3] == x
            if h0 | h1 | h2 | h3:
                return w + (0 if h0 else 1 if h1 else 2 if h2 else 3)
        return -1
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
def _merge(cls, members, gidx, g, k1, k2, act):  # pragma: no cover - compiled
    """Move the sets of class ``k2`` into class ``k1``; returns the new active mask."""
    g1 = g + 1
    mm = members[gidx * g1 + k2]
    members[gidx * g1 + k1] |= mm
    members[gidx * g1 + k2] = 0
    while mm:
        cls[gidx * g + trailing_zeros(mm)] = k1
        mm &= mm - 1
    return act & ~(1 << k2)


@njit(cache=True)
def _lru_level(start, count, kind, core, task, rs, i0, shared, sets, ways, g, nc, tags, stamps,
               dirty, cls, members, active, sole, version, last, sync, wstart, clock, counters,
               tstats, o_start, o_count, o_kind, o_core, o_task, o_rs):  # pragma: no cover
    """One LRU level over ordered line runs from request ``i0``; writes the runs for the level
    below into the ``o_*`` buffers and stops before a request that might overflow them.
    Returns (next request, outputs written, clock).

    State per super-set ``gidx`` of ``g`` sets: up to ``g + 1`` classes, class ``k`` with its
    ``ways`` slots at ``_slot(nc, g, gidx, k) * ways`` holding normalised tags (set ``j`` of
    the class holds ``tag + j``). ``cls`` gives each set's class, ``members`` each class's sets
    (bit mask), ``active`` the non-empty classes (bit mask), ``sole`` the slot of the only
    class or -1, ``version`` (per slot) the clock of a class's last change, ``last`` the last
    ``_NREC`` splits (parent, its version, child, its version, line, writes, found, victim
    tag, victim dirty) and the next record to reuse, ``sync``/``wstart`` the count of new
    lines every class took in whole granules and the clock since which they are counted (-1
    after a partial piece: check agreement at the next whole granule, then count afresh).

    The plain LRU step is written out twice (whole granule of one class; a piece that is
    exactly one class): folding them into one code path measured ~7 % slower under numba.
    A request is cut at super-set boundaries into pieces (sets ``j0..j1-1``, one normalised
    line ``xn``). A class inside the piece takes one LRU step for all its sets; a class partly
    inside splits (the touched sets get a copy of its state and step), unless the piece's hit
    is on the class's most recent line and changes nothing, or the sets that last left the
    same class did so with the same line and kind and neither state changed since (then they
    join that copy with the same outcome). Outputs go out in line order, a run per span of
    sets of one class. Invalid slots carry negative stamps in way order, so the least recent
    stamp picks the first free way.
    """
    n = start.shape[0]
    cap = o_start.shape[0]
    m = 0
    n_super = sets // g
    g1 = g + 1
    full = (1 << g) - 1
    pow2 = sets & (sets - 1) == 0
    smask = sets - 1
    gmask = g - 1
    gshift = 0
    while (1 << gshift) < g:
        gshift += 1
    r_miss = np.zeros(g1, np.uint8)  # per class: outcome of the current step
    r_vtag = np.zeros(g1, np.int64)
    r_vd = np.zeros(g1, np.uint8)
    c_ld = c_st = c_hit = c_miss = c_wbin = c_ev = c_wbout = c_rs = 0
    i = i0
    while i < n:
        if m + 2 * count[i] > cap:  # worst case: every line misses and evicts a dirty line
            break
        k_ = kind[i]
        c = core[i]
        t = task[i]
        rsi = rs[i]
        inst = 0 if shared else c
        x0 = start[i]
        end = x0 + count[i]
        x = x0
        t_hit = t_miss = t_rs = 0
        while x < end:
            s = x & smask if pow2 else x % sets
            j0 = s & gmask
            j1 = min(g, j0 + end - x)
            clock += 1
            gidx = inst * n_super + (s >> gshift)  # global super-set index
            xn = x - j0  # the piece's normalised line
            if j0 == 0 and j1 == g:
                sl = sole[gidx]
                if sl < 0 and sync[gidx] < 0:
                    # the first whole granule on several classes after partial pieces:
                    # classes that agree with the first one merge into it
                    act = active[gidx]
                    wstart[gidx] = clock  # (start counting lines common to all classes)
                    sync[gidx] = 0
                    k1 = trailing_zeros(act)
                    b1 = _slot(nc, g, gidx, k1) * ways
                    a2 = act & (act - 1)
                    while a2:
                        k2 = trailing_zeros(a2)
                        a2 &= a2 - 1
                        if _equiv(tags, stamps, dirty, b1, _slot(nc, g, gidx, k2) * ways, ways,
                                  0):
                            act = _merge(cls, members, gidx, g, k1, k2, act)
                    active[gidx] = act
                    if act & (act - 1) == 0:
                        sl = _slot(nc, g, gidx, k1)
                        sole[gidx] = sl
            else:
                sl = -1
            if sl >= 0:
                # ---- the common case: one class, whole granule: one step of width g
                base = sl * ways
                version[sl] = clock
                found = _find(tags, base, ways, x)
                if k_ == 2:
                    c_wbin += g
                elif k_ == 1:
                    c_st += g
                elif k_ == 3:  # its store hits the line its load just brought in
                    c_ld += g
                    c_st += g
                    c_hit += g
                    t_hit += g
                else:
                    c_ld += g
                if found >= 0:
                    stamps[found] = clock
                    if k_ != 0:
                        dirty[found] = 1
                    if k_ != 2:
                        c_hit += g
                        t_hit += g
                else:
                    victim = _victim(stamps, base, ways)
                    if k_ != 2:
                        r = 0
                        if rsi == 2 or (rsi != 0 and x == x0):
                            r = rsi
                            c_rs += g if rsi == 2 else 1
                            t_rs += g if rsi == 2 else 1
                        c_miss += g
                        t_miss += g
                        m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, x, g, 0,
                                  c, t, r)
                    old = tags[victim]
                    if old >= 0:
                        c_ev += g
                        if dirty[victim]:
                            c_wbout += g
                            m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, old,
                                      g, 2, c, t, False)
                    tags[victim] = x
                    stamps[victim] = clock
                    dirty[victim] = 1 if k_ != 0 else 0
                x += g
                continue
            # ---- the general case: sets j0..j1-1 of the super-set, one step per class
            rmask = (full >> (g - j1)) & ~((1 << j0) - 1)
            kk = cls[gidx * g + j0]
            if members[gidx * g1 + kk] == rmask:
                # the piece is exactly one class: one plain step
                sl = _slot(nc, g, gidx, kk)
                base = sl * ways
                width = j1 - j0
                found = _find(tags, base, ways, xn)
                if k_ == 2:
                    c_wbin += width
                elif k_ == 1:
                    c_st += width
                elif k_ == 3:  # its store hits the line its load just brought in
                    c_ld += width
                    c_st += width
                    c_hit += width
                    t_hit += width
                else:
                    c_ld += width
                if found >= 0 and stamps[found] == version[sl] and (k_ == 0 or dirty[found]):
                    # a hit on the most recent line (already dirty if written): no change
                    if k_ != 2:
                        c_hit += width
                        t_hit += width
                    x = xn + j1
                    continue
                sync[gidx] = -1
                version[sl] = clock
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
                        r = 0
                        if rsi == 2 or (rsi != 0 and x == x0):
                            r = rsi
                            c_rs += width if rsi == 2 else 1
                            t_rs += width if rsi == 2 else 1
                        c_miss += width
                        t_miss += width
                        m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, x, width,
                                  0, c, t, r)
                    old = tags[victim]
                    if old >= 0:
                        c_ev += width
                        if dirty[victim]:
                            c_wbout += width
                            m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m,
                                      old + j0, width, 2, c, t, False)
                    tags[victim] = xn
                    stamps[victim] = clock
                    dirty[victim] = 1 if k_ != 0 else 0
                x = xn + j1
                continue
            act = active[gidx]
            lb0 = gidx * (_NREC * 9 + 1)
            n_hit = n_miss = 0
            recent = False  # a class hit a line touched since wstart (see below)
            d_or = 0  # dirty bits of the lines hit, before the access
            d_and = 1
            done = 0  # classes stepped (or joined) for this piece
            j = j0
            while j < j1:
                kk = cls[gidx * g + j]
                j += 1
                if (done >> kk) & 1:
                    continue
                done |= 1 << kk
                ci = gidx * g1 + kk
                mk = members[ci] & rmask
                width = 0
                mm = mk
                while mm:
                    width += 1
                    mm &= mm - 1
                if k_ == 2:
                    c_wbin += width
                elif k_ == 1:
                    c_st += width
                elif k_ == 3:  # its store hits the line its load just brought in
                    c_ld += width
                    c_st += width
                    c_hit += width
                    t_hit += width
                else:
                    c_ld += width
                parent = -1
                lb = 0
                if mk != members[ci]:
                    found = _find(tags, _slot(nc, g, gidx, kk) * ways, ways, xn)
                    if (found >= 0 and stamps[found] == version[_slot(nc, g, gidx, kk)]
                            and (k_ == 0 or dirty[found])):
                        # a hit on the most recent line (already dirty if written) changes
                        # nothing: the sets stay in their class
                        r_miss[kk] = 0
                        if k_ != 2:
                            c_hit += width
                            t_hit += width
                        continue
                    lb = -1
                    for e in range(lb0, lb0 + _NREC * 9, 9):
                        lc = last[e + 2]
                        if (last[e] == kk and last[e + 4] == xn and last[e + 5] == (k_ != 0)
                                and last[e + 1] == version[_slot(nc, g, gidx, kk)]
                                and (act >> lc) & 1 and members[gidx * g1 + lc] & rmask == 0
                                and version[_slot(nc, g, gidx, lc)] == last[e + 3]):
                            lb = e
                            break
                    if lb >= 0:
                        # the same step from the same state as the sets that left this class
                        # last: join their class, with the same outcome
                        members[ci] &= ~mk
                        members[gidx * g1 + lc] |= mk
                        done |= 1 << lc
                        while mk:
                            cls[gidx * g + trailing_zeros(mk)] = lc
                            mk &= mk - 1
                        if last[lb + 6] >= 0:
                            r_miss[lc] = 0
                            if k_ != 2:
                                c_hit += width
                                t_hit += width
                        else:
                            r_miss[lc] = 1
                            r_vtag[lc] = last[lb + 7]
                            r_vd[lc] = last[lb + 8]
                            if k_ != 2:
                                c_miss += width
                                t_miss += width
                            if last[lb + 7] >= 0:
                                c_ev += width
                                if last[lb + 8]:
                                    c_wbout += width
                        continue
                    # the touched sets leave the class for a copy of its state
                    f = trailing_zeros(~act & (full | (1 << g)))
                    src = _slot(nc, g, gidx, kk) * ways
                    dst = _slot(nc, g, gidx, f) * ways
                    for w in range(ways):
                        tags[dst + w] = tags[src + w]
                        stamps[dst + w] = stamps[src + w]
                        dirty[dst + w] = dirty[src + w]
                    members[ci] &= ~mk
                    members[gidx * g1 + f] = mk
                    act |= 1 << f
                    active[gidx] = act
                    sole[gidx] = -1
                    mm = mk
                    while mm:
                        cls[gidx * g + trailing_zeros(mm)] = f
                        mm &= mm - 1
                    done |= 1 << f
                    parent = kk
                    e = last[lb0 + _NREC * 9]  # the oldest record gives way
                    last[lb0 + _NREC * 9] = (e + 1) % _NREC
                    lb = lb0 + e * 9
                    last[lb + 1] = version[_slot(nc, g, gidx, kk)]
                    kk = f
                    ci = gidx * g1 + f
                sl = _slot(nc, g, gidx, kk)
                base = sl * ways
                version[sl] = clock
                found = _find(tags, base, ways, xn)
                if found >= 0:
                    n_hit += 1
                    recent |= stamps[found] >= wstart[gidx]
                    d_or |= dirty[found]
                    d_and &= dirty[found]
                    stamps[found] = clock
                    if k_ != 0:
                        dirty[found] = 1
                    if k_ != 2:
                        c_hit += width
                        t_hit += width
                    r_miss[kk] = 0
                    old = -1
                    vd = 0
                else:
                    n_miss += 1
                    victim = _victim(stamps, base, ways)
                    if k_ != 2:
                        c_miss += width
                        t_miss += width
                    old = tags[victim]
                    vd = dirty[victim]
                    if old >= 0:
                        c_ev += width
                        if vd:
                            c_wbout += width
                    r_miss[kk] = 1
                    r_vtag[kk] = old
                    r_vd[kk] = vd
                    tags[victim] = xn
                    stamps[victim] = clock
                    dirty[victim] = 1 if k_ != 0 else 0
                if parent >= 0:
                    last[lb] = parent
                    last[lb + 2] = kk
                    last[lb + 3] = clock
                    last[lb + 4] = xn
                    last[lb + 5] = k_ != 0
                    last[lb + 6] = found
                    last[lb + 7] = old
                    last[lb + 8] = vd
            # outputs in line order: a span of sets of one class shares its outcome
            j = j0
            while j < j1:
                kk = cls[gidx * g + j]
                jn = j + 1
                while jn < j1 and cls[gidx * g + jn] == kk:
                    jn += 1
                if r_miss[kk]:
                    if k_ != 2:
                        r = 0
                        if rsi == 2 or (rsi != 0 and xn + j == x0):
                            r = rsi
                            c_rs += jn - j if rsi == 2 else 1
                            t_rs += jn - j if rsi == 2 else 1
                        m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m, xn + j,
                                  jn - j, 0, c, t, r)
                    if r_vtag[kk] >= 0 and r_vd[kk]:
                        m = _emit(o_start, o_count, o_kind, o_core, o_task, o_rs, m,
                                  r_vtag[kk] + j, jn - j, 2, c, t, False)
                j = jn
            if rmask != full:
                sync[gidx] = -1  # classes may diverge: merge checks start afresh
            elif sync[gidx] >= 0 and not recent:
                # Since wstart every class took the same whole granules, so the distinct
                # lines touched since then are the most recent ones of every class, in the
                # same order with the same stamps (none is evicted before `ways` of them
                # are), and present in all. Their dirty bits agree too, unless a line first
                # touched by a read was dirty in some classes only. This access touched a new
                # line: count it if its dirty bits agree, else start afresh. Once `ways`
                # lines are counted the classes are equal: merge them.
                if k_ != 0 or n_hit == 0 or (d_or == d_and and (n_miss == 0 or d_or == 0)):
                    sync[gidx] += 1
                    if sync[gidx] >= ways:
                        a2 = act & (act - 1)
                        k1 = trailing_zeros(act)
                        while a2:
                            k2 = trailing_zeros(a2)
                            a2 &= a2 - 1
                            act = _merge(cls, members, gidx, g, k1, k2, act)
                        active[gidx] = act
                        sole[gidx] = _slot(nc, g, gidx, k1)
                        sync[gidx] = -1
                else:
                    wstart[gidx] = clock + 1
                    sync[gidx] = 0
            x = xn + j1
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


@njit(cache=True)
def _dirty_lines(tags, dirty, active, members, nc, g, ways, n_super):  # pragma: no cover
    """(line, instance) of every dirty line; clears the dirty bits."""
    g1 = g + 1
    n = 0
    for rnd in range(2):
        if rnd == 1:
            line = np.empty(n, np.int64)
            inst = np.empty(n, np.int64)
            n = 0
        for gidx in range(nc):
            a = active[gidx]
            while a:
                k = trailing_zeros(a)
                a &= a - 1
                base = _slot(nc, g, gidx, k) * ways
                mm0 = members[gidx * g1 + k]
                for w in range(base, base + ways):
                    if tags[w] < 0 or dirty[w] == 0:
                        continue
                    mm = mm0
                    while mm:
                        j = trailing_zeros(mm)
                        mm &= mm - 1
                        if rnd == 1:
                            line[n] = tags[w] + j
                            inst[n] = gidx // n_super
                        n += 1
                    if rnd == 1:
                        dirty[w] = 0
    return line, inst


def _pow2_divisor(n: int, cap: int) -> int:
    g = 1
    while n % (2 * g) == 0 and 2 * g <= cap:
        g *= 2
    return g


class LRUCache(MemoryLevel):
    """Set-associative, true-LRU, write-back, write-allocate cache level."""

    type_name = "cache"

    def __init__(self, spec, cores: int = 1, max_granule: int = 32, mode: str = "auto"):
        super().__init__(spec, cores)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
        self.geom = geometry(spec)
        sets, ways = self.geom.sets, self.geom.ways
        self.g = _pow2_divisor(sets, min(max_granule, 32))  # class masks hold g + 1 bits
        # the state's form: "class" (runs of lines per step) or "plain" (line by line);
        # "auto" picks per batch of requests (see process)
        self.mode = "plain" if self.g == 1 else mode
        self.form = "plain" if self.mode == "plain" else "class"
        self.capacity = self.instances * sets * ways  # lines
        self.ptags = None  # the plain form's state
        # may the plain form send a request's write-backs after its fills (set by the
        # hierarchy: only where the next cache's set count is a multiple of this one's)
        self.group = False
        self.clock = 0
        if self.form == "plain":
            self._make_plain()
            return  # (the class form is never used)
        g = self.g
        self.nc = self.instances * (sets // g)  # super-sets (one canonical slot-set each)
        n_slots = (self.nc + self.instances * sets) * ways
        # the second region (g class states per super-set) is written whole when a class is
        # made: only the canonical slots are initialised (a large cache costs nothing until
        # its sets are touched)
        self.tags = np.empty(n_slots, dtype=np.int64)
        self.stamps = np.empty(n_slots, dtype=np.int64)
        self.dirty = np.empty(n_slots, dtype=np.uint8)
        k = self.nc * ways
        self.tags[:k] = -1
        # free slots: negative stamps in way order (the first free way is the LRU one)
        self.stamps[:k] = np.tile(np.arange(ways, dtype=np.int64) - ways, self.nc)
        self.dirty[:k] = 0
        self.cls = np.full(self.instances * sets, g, dtype=np.int64)  # every set in class g
        self.members = np.zeros(self.nc * (g + 1), dtype=np.int64)
        self.members[g::g + 1] = (1 << g) - 1
        self.active = np.full(self.nc, 1 << g, dtype=np.int64)
        self.sole = np.arange(self.nc, dtype=np.int64)  # slot of the only class, or -1
        self.version = np.zeros(self.nc * (g + 1), dtype=np.int64)  # per slot set
        # the last splits per super-set: _NREC records of 9 fields, then the next one to reuse
        self.last = np.full((self.nc, _NREC * 9 + 1), -1, dtype=np.int64)
        self.last[:, -1] = 0
        self.last = self.last.ravel()
        self.sync = np.full(self.nc, -1, dtype=np.int64)  # lines common to all classes
        self.wstart = np.zeros(self.nc, dtype=np.int64)  # ... i.e. stamped since this clock

    @property
    def own(self) -> np.ndarray:
        """Per set, 1 where the set is simulated on its own rather than as part of one
        granule: its super-set is split into several classes, or the state is plain."""
        if self.form == "plain":
            return np.ones(self.instances * self.geom.sets, np.uint8)
        act = self.active
        multi = (act & (act - 1)) != 0
        return np.repeat(multi, self.g).astype(np.uint8)

    def _make_plain(self) -> None:
        ways = self.geom.ways
        self.ptags = np.full(self.instances * self.geom.sets * ((ways + 3) & ~3), -2, np.int64)

    def _switch(self, req: Requests) -> None:
        """In "auto" mode, pick the form for this batch. A one-line request among whole
        granules costs the class form about as much as 50-100 plain line steps (it splits a
        class, and the classes stay apart, each stepped on its own, until they agree again),
        a whole granule of 32 lines about two: so the plain form wins once one-line requests
        are over ~1/64 of the lines (mnist-dense lowered for one core: 242 k of 555 k
        requests, 15.3 M lines; L1 in the class form ~200 ms, plain ~120 ms). A switch
        converts the state (O(capacity): 16 ms for a 480 MiB level), so a batch too small to
        repay that (under 1/8 of the capacity in lines) keeps the current form; a level no
        batch has reached is in the class form, which costs nothing until its sets are used."""
        if self.mode != "auto" or not len(req):
            return
        lines = int(req.count.sum())
        ones = int(np.count_nonzero(req.count == 1))
        want = "plain" if 64 * ones > lines else "class"
        if want != self.form and lines >= self.capacity // 8:
            self.to_form(want)

    def to_form(self, want: str) -> None:
        """Convert the state to the "class" or the "plain" form (same contents)."""
        if want == self.form:
            return
        if self.mode != "auto":
            raise ValueError(f"{self.name}: a {self.mode!r} level keeps its form")
        if want == "plain":
            self._make_plain()
            to_plain(self.tags, self.stamps, self.dirty, self.cls, self.nc, self.g,
                     self.geom.ways, self.ptags)
        else:
            self.clock = from_plain(self.ptags, self.nc, self.g, self.geom.ways,
                                    self.clock, self.tags, self.stamps, self.dirty, self.cls,
                                    self.members, self.active, self.sole, self.version,
                                    self.last, self.sync)
            self.ptags = None
        self.form = want

    def process(self, req: Requests, tstats: np.ndarray) -> Requests:
        self._switch(req)
        n = len(req)
        cap = 2 * n + 2 * (int(req.count.max()) if n else 0) + 16
        rs_in = req.run_start
        rs = rs_in if rs_in.dtype == np.int8 else rs_in.astype(np.int8)
        geo = self.geom
        parts = []
        i = 0
        while True:
            buf = (np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int8),
                   np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int8))
            if self.form == "plain":
                i, m = plain_level(req.start, req.count, req.kind, req.core, req.task, rs, i,
                                   self.shared, geo.sets, geo.ways, self.ptags, self.group,
                                   self.counters, tstats, *buf)
            else:
                i, m, self.clock = _lru_level(
                    req.start, req.count, req.kind, req.core, req.task, rs, i,
                    self.shared, geo.sets, geo.ways, self.g, self.nc, self.tags,
                    self.stamps, self.dirty, self.cls, self.members, self.active, self.sole,
                    self.version, self.last, self.sync, self.wstart, self.clock, self.counters,
                    tstats, *buf)
            parts.append([b[:m] for b in buf])
            if i >= n:
                break
        cols = parts[0] if len(parts) == 1 else [np.concatenate(c) for c in zip(*parts)]
        if rs_in.dtype != np.int8:  # hand run starts on in the form they came in
            cols[5] = cols[5].astype(rs_in.dtype)
        return Requests(*cols, line=req.line)

    def dirty_lines(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(line, 1, instance) of every dirty line, in ascending (instance, line) order
        whatever the internal representation; clears the dirty bits."""
        if self.form == "plain":
            line, inst = plain_dirty_lines(self.ptags, self.geom.sets, self.geom.ways)
        else:
            line, inst = _dirty_lines(self.tags, self.dirty, self.active, self.members,
                                      self.nc, self.g, self.geom.ways,
                                      self.geom.sets // self.g)
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

    def __init__(self, levels, cores: int = 1, line: int | None = None, max_granule: int = 32,
                 mode: str = "auto", runs: bool = True):
        if cores < 1:
            raise CacheGeometryError("cores must be at least 1")
        self.cores = cores
        self.levels: list[MemoryLevel] = [
            lv if isinstance(lv, MemoryLevel)
            else LRUCache(geometry(lv, i), cores, max_granule, mode)
            for i, lv in enumerate(levels)]
        # a granule's fills go out before its write-backs; that equals the line-by-line order
        # only if the next cache's set count is a multiple of this one's: otherwise this level
        # runs line by line (exact either way, only slower)
        caches = [i for i, lv in enumerate(self.levels) if isinstance(lv, LRUCache)]
        for a, b in zip(caches, caches[1:]):
            above, below = self.levels[a], self.levels[b]
            if above.g > 1 and below.geom.sets % above.geom.sets:
                self.levels[a] = LRUCache(above.spec, cores, max_granule=1)
        for a, lv in enumerate(self.levels):
            if isinstance(lv, LRUCache):
                below = self.levels[a + 1] if a + 1 < len(self.levels) else None
                lv.group = below is None or (isinstance(below, LRUCache) and
                                             below.geom.sets % lv.geom.sets == 0)
        # accesses whose lines differ modulo every level's set count may be reordered
        # (hwmodels.runs); a user level gets its requests as given
        self.key = 0
        if runs and caches and len(caches) == len(self.levels):
            self.key = math.gcd(*(lv.geom.sets for lv in self.levels))
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

        65,536 accesses sampled in 16 windows decide how (every way gives the same
        counters): where fewer than a quarter cover several lines or continue the line of
        the access before, all levels run at once, line by line (no runs to use); where a
        quarter or more are one-line accesses continuing the one before, the runs are found
        first (:mod:`hwmodels.runs`); otherwise (ranges) the stream goes down as given.

        Returns per-task counters: ``(lines (n_tasks, levels, 3) = hits, misses, run-start
        misses; memory (n_tasks, 2) = lines read, lines written back)``."""
        if tasks is not None:
            tasks = np.ascontiguousarray(tasks, np.int64).reshape(-1)
        top = int(tasks.max()) + 1 if tasks is not None and tasks.shape[0] else 1
        nt = int(n_tasks if n_tasks is not None else top)
        if top > nt or (tasks is not None and tasks.shape[0] and tasks.min() < 0):
            raise ValueError("task ids must lie in 0..n_tasks - 1")
        if not self.key:
            return self.replay(self.requests(addresses, lengths, writes, cores, tasks), nt)
        addr, cols_in, flags = columns(addresses, lengths, writes, cores, tasks)
        multi, ext = run_shares(addr, cols_in, flags, self.line, self.cores)
        if multi + ext < _RUNLESS and self._fusable():
            run_shares(addr, cols_in, flags, self.line, self.cores, probe=-1)  # validate all
            return self._replay_fused(addr, cols_in, flags, nt)
        if ext < _RUNLESS:  # ranges as given: finding runs among their few lines costs more
            return self.replay(self.requests(addresses, lengths, writes, cores, tasks), nt)
        cols, absorbed = find_runs(addr, lengths, writes, cores, tasks, self.line, self.cores,
                                   self.key, nt)
        tstats, tmem = self.replay(Requests(*cols, line=self.line), nt)
        # first-level hits on the most recent line, counted rather than replayed
        c = self.levels[0].counters
        c[_LOADS] += int(absorbed[:, 0].sum())
        c[_STORES] += int(absorbed[:, 1].sum())
        c[_HITS] += int(absorbed.sum())
        tstats[:, 0, 0] += absorbed.sum(axis=1)
        return tstats, tmem

    def _fusable(self) -> bool:
        return len(self.levels) <= 4 and all(lv.mode in ("auto", "plain")
                                             for lv in self.levels)

    def _replay_fused(self, addr, cols_in, flags, nt) -> tuple[np.ndarray, np.ndarray]:
        """A stream without runs: all levels at once, line by line (plain form)."""
        nl = len(self.levels)
        for lv in self.levels:
            lv.to_form("plain")
        pad = [np.full(1, -2, np.int64)] * (4 - nl)
        tags = [lv.ptags for lv in self.levels] + pad
        ways = [lv.geom.ways for lv in self.levels] + [1] * (4 - nl)
        sets = np.array([lv.geom.sets for lv in self.levels] + [1] * (4 - nl), np.int64)
        shared = np.array([lv.shared for lv in self.levels] + [True] * (4 - nl), np.bool_)
        counters = np.zeros((nl, len(STAT_FIELDS)), np.int64)
        tstats = np.zeros((nt, nl, 3), np.int64)
        tmem = np.zeros((nt, 2), np.int64)
        fused_plain(addr, *cols_in, flags, self.line.bit_length() - 1, nl, sets, shared, *tags,
                    *ways, counters, tstats, tmem)
        for lv, c in zip(self.levels, counters):
            lv.counters += c
        self.memory += tmem.sum(axis=0)
        return tstats, tmem

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
