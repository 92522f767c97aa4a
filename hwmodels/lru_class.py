"""The class form of an LRU level (compiled): sets simulated as classes of equal state.

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
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from hwmodels.lru_plain import (
    add_counts,
)
from hwmodels.lru_plain import emit as _emit
from hwmodels.lru_plain import slot as _slot

NREC = 4  # split records kept per super-set (see class_level)
_NREC = NREC


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
def class_level(start, count, kind, core, task, rs, i0, shared, sets, ways, g, nc, tags, stamps,
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
    add_counts(counters, c_ld, c_st, c_hit, c_miss, c_wbin, c_ev, c_wbout, c_rs)
    return i, m, clock


@njit(cache=True)
def class_dirty_lines(tags, dirty, active, members, nc, g, ways, n_super):  # pragma: no cover
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
