"""Fast cache model: LRU stack (reuse) distances, profiled once, priced for many caches.

:func:`reuse_profile` measures, for every line access of an ordered stream, its LRU stack
distance (distinct lines touched since the previous access to the same line; ``INF`` for a
first touch) in two views: the issuing core's own stream (private levels) and the interleaved
stream of all cores (shared levels); fully associative, and optionally per set for given set
counts (distinct lines *of the same set*). :func:`price` turns the profile into the counters of
:class:`hwmodels.cache.CacheHierarchy` for a list of cache geometries in O(levels x tasks x
log n), without another pass over the accesses.

Model (docs/reuse-distance.md): an access misses a level of S sets and W ways iff its per-set
distance reaches W (set counts that were profiled; exact for one level), else iff its fully
associative distance reaches the capacity. Levels are stack-inclusive: misses of a level are
capped, per task, by those of the level above; an access misses a shared level only if its fully
associative private distance also reaches the largest private capacity.

Coalescing: if every access range starts and ends on a multiple of G lines (and G divides the
profiled set counts), the G lines of a granule share one history. Fully associative: each line
has distance ``G * D + G - 1`` (D: distinct other granules), so it misses C lines iff
``D >= C // G``. Per set: the same-set lines are line j of granules congruent modulo S / G, so
the line distance is D itself. Distances are measured on granules, exactly.

Write-backs: a write at ``i`` leaves one dirty line behind, written back iff the line is evicted
before the next write to it (or the end of the trace), i.e. iff the largest gap after ``i`` up
to that point (the distances of the following accesses to the line, and for the last one the
lines touched until the end) reaches the capacity. That largest gap is kept per write, so
write-backs are priced like misses (exact for one level, but for the trace's end when C is not
a multiple of G). They are attributed to the task that wrote the line, not to the evicting one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from hwmodels.cache import CacheGeometryError, geometry

INF = 1 << 62  #: the distance of a first touch
_INF32 = (1 << 31) - 1  # first touches in the stored (int32) keys
_ALL, _RUN, _WRITE = range(3)  # per-task segments of a profile


# ----------------------------------------------------------------------------- kernels
@njit(cache=True)
def _prefix(tree, b, q):  # pragma: no cover - compiled
    """Sum of positions 0..q of the Fenwick tree stored from ``tree[b + 1]``."""
    s = 0
    i = q + 1
    while i > 0:
        s += tree[b + i]
        i -= i & -i
    return s


@njit(cache=True)
def _add(tree, b, size, p, v):  # pragma: no cover - compiled
    i = p + 1
    while i <= size:
        tree[b + i] += v
        i += i & -i


@njit(cache=True)
def _stack(ids, wr, part, n_parts, n_ids):  # pragma: no cover - compiled
    """Stack distance of every access of ``ids`` (dense line ids) within the substream of its
    partition ``part``, and the largest gap up to the next write of its line in that substream
    (or its end). Partitions are grouped by a counting sort, each with its own Fenwick tree
    (1 at the last access of each line)."""
    n = ids.shape[0]
    start = np.zeros(n_parts + 1, np.int64)
    for p in range(n):
        start[part[p] + 1] += 1
    for k in range(n_parts):
        start[k + 1] += start[k]
    order = np.empty(n, np.int64)
    fill = start.copy()
    for p in range(n):
        order[fill[part[p]]] = p
        fill[part[p]] += 1
    sid, spart = ids[order], part[order]
    tree = np.zeros(n + n_parts + 1, np.int64)
    last = np.full(n_ids, -1, np.int64)  # grouped index of the previous access
    sbd = np.empty(n, np.int64)
    for j in range(n):
        k = spart[j]
        s0, b, size = start[k], start[k] + k, start[k + 1] - start[k]
        q = last[sid[j]]
        if q >= s0:  # lines whose last access lies between q and j
            sbd[j] = _prefix(tree, b, j - 1 - s0) - _prefix(tree, b, q - s0)
            _add(tree, b, size, q - s0, -1)
        else:
            sbd[j] = INF
        _add(tree, b, size, j - s0, 1)
        last[sid[j]] = j
    gap = np.zeros(n_ids, np.int64)
    nxt = np.full(n_ids, -1, np.int64)
    bd, m = np.empty(n, np.int64), np.empty(n, np.int64)
    for j in range(n - 1, -1, -1):
        x, k, p = sid[j], spart[j], order[j]
        s0, e0 = start[k], start[k + 1]
        if nxt[x] < 0 or nxt[x] >= e0:  # last access in its substream: lines touched after
            mm = _prefix(tree, s0 + k, e0 - 1 - s0) - _prefix(tree, s0 + k, j - s0)
        else:
            mm = gap[x]
        bd[p], m[p] = sbd[j], mm
        gap[x] = sbd[j] if wr[p] else max(sbd[j], mm)
        nxt[x] = j
    return bd, m


@njit(cache=True)
def _popcount(x):  # pragma: no cover - compiled
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=True)
def _wavelet(vals, nbits):  # pragma: no cover - compiled
    """Wavelet matrix of ``vals`` (< 2**nbits): bit words, ones before each word, zeros."""
    n = vals.shape[0]
    nw = n // 64 + 1
    words = np.zeros((nbits, nw), np.uint64)
    ones = np.zeros((nbits, nw + 1), np.int64)
    zeros = np.zeros(nbits, np.int64)
    cur = vals.copy()
    nxt = np.empty_like(cur)
    for lv in range(nbits):
        sh = nbits - 1 - lv
        for i in range(n):
            if (cur[i] >> sh) & 1:
                words[lv, i >> 6] |= np.uint64(1) << np.uint64(i & 63)
        for w in range(nw):
            ones[lv, w + 1] = ones[lv, w] + _popcount(words[lv, w])
        zeros[lv] = n - ones[lv, nw]
        a, b = 0, zeros[lv]
        for i in range(n):
            if (cur[i] >> sh) & 1:
                nxt[b] = cur[i]
                b += 1
            else:
                nxt[a] = cur[i]
                a += 1
        cur, nxt = nxt, cur
    return words, ones, zeros


@njit(cache=True)
def _rank1(words, ones, lv, i):  # pragma: no cover - compiled
    w, r = i >> 6, i & 63
    c = ones[lv, w]
    if r:
        c += _popcount(words[lv, w] & ((np.uint64(1) << np.uint64(r)) - np.uint64(1)))
    return c


@njit(cache=True)
def _count_less(words, ones, zeros, lo, hi, b):  # pragma: no cover - compiled
    """How many values in positions [lo, hi) are below ``b``."""
    nbits = zeros.shape[0]
    if b >= (1 << nbits):
        return hi - lo
    res = 0
    for lv in range(nbits):
        if lo >= hi:
            break
        r_lo, r_hi = _rank1(words, ones, lv, lo), _rank1(words, ones, lv, hi)
        if (b >> (nbits - 1 - lv)) & 1:
            res += (hi - r_hi) - (lo - r_lo)
            lo, hi = zeros[lv] + r_lo, zeros[lv] + r_hi
        else:
            lo, hi = lo - r_lo, hi - r_hi
    return res


@njit(cache=True)
def _price_level(off, order, keys, words, ones, zeros, shared, thr_p, thr, rank):
    # pragma: no cover - compiled
    """Per task and segment: entries whose private distance (``keys``) reaches ``thr`` or, for
    a shared level, whose FA private distance (``order``) reaches ``thr_p`` and whose shared
    distance rank (wavelet) reaches ``rank``."""
    n_tasks = (off.shape[0] - 1) // 3
    out = np.zeros((n_tasks, 3), np.int64)
    for t in range(n_tasks):
        for seg in range(3):
            lo, hi = off[3 * t + seg], off[3 * t + seg + 1]
            if shared:
                k = lo + np.searchsorted(order[lo:hi], thr_p)
                c = hi - k
                if c > 0:
                    c -= _count_less(words, ones, zeros, k, hi, rank)
            else:
                c = hi - lo - np.searchsorted(keys[lo:hi], thr)
            out[t, seg] = c
    return out


# ----------------------------------------------------------------------------- profile
@dataclass
class ReuseView:
    """Distances with ``sets`` sets (1: fully associative), in granules for ``sets`` = 1 and
    in lines of the same set otherwise. ``keys``: private distances, sorted inside each
    segment of the profile; the shared distances, as ranks into ``values``, sit in a wavelet
    matrix (``words``, ``ones``, ``zeros``) in the profile's entry order."""

    sets: int
    keys: np.ndarray
    values: np.ndarray
    words: np.ndarray
    ones: np.ndarray
    zeros: np.ndarray


@dataclass
class ReuseProfile:
    """Stack distances of one ordered stream, per task, for one or more set counts.

    Entries are granule accesses (``granule`` lines each); per task three CSR segments
    (``offsets[3 * task + s]``): s=0 every access, s=1 the run-start accesses, s=2 the writes
    (whose "distance" is their write-back gap). Inside a segment entries are ordered by their
    fully associative private distance, ``views[1].keys``."""

    line: int
    granule: int
    n_tasks: int
    n_cores: int
    offsets: np.ndarray
    views: dict[int, ReuseView]
    loads: int  #: lines read
    stores: int  #: lines written
    distinct_private: np.ndarray  #: distinct granules per core
    distinct_shared: int  #: distinct granules in all

    def segment(self, task: int, seg: int = _ALL, sets: int = 1) -> np.ndarray:
        """Sorted private distances of ``task``'s accesses (seg 0), run starts (seg 1) or the
        write-back gaps of its writes (seg 2)."""
        return self.views[sets].keys[self.offsets[3 * task + seg]:
                                     self.offsets[3 * task + seg + 1]]


def _distances(ids, wr, part, n_ids):
    """(distances, write-back gaps) of every access within its partition's substream."""
    return _stack(ids, wr, part, int(part.max()) + 1 if part.shape[0] else 1, n_ids)


def stack_distances(lines, cores=None, writes=None, sets: int = 1):
    """Per-access LRU stack distances of a stream of line ids, counting only lines of the same
    set (``line % sets``), ``INF`` for a first touch: ``(private, shared, private_gap,
    shared_gap)``; the gaps are the write-back gaps (largest distance up to the next write of
    the line or the end of the stream)."""
    lines = np.asarray(lines, np.int64).reshape(-1)
    cr = np.zeros(lines.shape, np.int64) if cores is None else np.asarray(cores, np.int64)
    wr = np.zeros(lines.shape, np.bool_) if writes is None else np.asarray(writes, np.bool_)
    uniq, ids = np.unique(lines, return_inverse=True)
    ids = ids.astype(np.int64).reshape(-1)
    dp, mp = _distances(ids, wr, cr * sets + lines % sets, uniq.shape[0])
    ds, ms = _distances(ids, wr, lines % sets, uniq.shape[0])
    return dp, ds, mp, ms


def reuse_profile(addresses, lengths=None, writes=None, cores=None, tasks=None,
                  n_tasks: int | None = None, n_cores: int = 1, line: int = 64,
                  sets=()) -> ReuseProfile:
    """Profile byte ranges ``[address, address + length)`` read or written (``writes``) by
    ``cores`` for workload ``tasks``, in the order the memory system sees them (arguments as
    :meth:`hwmodels.cache.CacheHierarchy.access`). Fully associative distances are always
    kept; ``sets`` adds set-aware views for these set counts (levels with another set count are
    priced as fully associative)."""
    addr = np.asarray(addresses, np.int64).reshape(-1)
    n = addr.shape[0]
    length = np.ones(n, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    wr = np.zeros(n, np.bool_) if writes is None else np.asarray(writes, np.bool_)
    cr = np.zeros(n, np.int64) if cores is None else np.asarray(cores, np.int64)
    tk = np.zeros(n, np.int64) if tasks is None else np.asarray(tasks, np.int64)
    if length.shape != (n,) or wr.shape != (n,) or cr.shape != (n,) or tk.shape != (n,):
        raise ValueError("lengths, writes, cores and tasks must match addresses")
    if n and (np.any(length < 1) or np.any(addr < 0)):
        raise ValueError("addresses must be non-negative and lengths positive")
    if n and (cr.min() < 0 or cr.max() >= n_cores):
        raise ValueError(f"core ids must be within 0..{n_cores - 1}")
    nt = int(n_tasks if n_tasks is not None else (tk.max() + 1 if n else 1))
    if n and (tk.min() < 0 or tk.max() >= nt):
        raise ValueError("task ids must lie in 0..n_tasks - 1")
    if line <= 0 or line & (line - 1):
        raise CacheGeometryError(f"line size {line} is not a power of two")
    counts = sorted({1, *(int(s) for s in sets)})
    if counts[0] < 1:
        raise CacheGeometryError("set counts must be positive")
    shift = line.bit_length() - 1
    first, end = addr >> shift, ((addr + length - 1) >> shift) + 1
    g = math.gcd(int(np.gcd.reduce(np.concatenate([first, end]))) if n else 1, *counts[1:])
    f, count = first // g, end // g - first // g
    idx = np.repeat(np.arange(n), count)
    offs = np.arange(idx.shape[0]) - np.repeat(np.cumsum(count) - count, count)
    tag, wr, cr, tk, rs = f[idx] + offs, wr[idx], cr[idx], tk[idx], offs == 0
    uniq, ids = np.unique(tag, return_inverse=True)
    ids = ids.astype(np.int64).reshape(-1)
    w_idx, r_idx = np.nonzero(wr)[0], np.nonzero(rs)[0]
    seg = np.repeat(np.array([_ALL, _RUN, _WRITE]), [len(ids), len(r_idx), len(w_idx)])
    bucket = 3 * np.concatenate([tk, tk[r_idx], tk[w_idx]]) + seg
    offsets = np.zeros(3 * nt + 1, np.int64)
    offsets[1:] = np.cumsum(np.bincount(bucket, minlength=3 * nt))
    views, order = {}, None
    for s in counts:
        part = tag % (s // g) if s > 1 else np.zeros_like(tag)
        ds, ms = _distances(ids, wr, part, uniq.shape[0])
        dp, mp = (ds, ms) if n_cores == 1 else _distances(ids, wr, cr * max(s // g, 1) + part,
                                                          uniq.shape[0])
        key = np.minimum(np.concatenate([dp, dp[r_idx], mp[w_idx]]), _INF32).astype(np.int32)
        val = np.concatenate([ds, ds[r_idx], ms[w_idx]])
        if order is None:  # fully associative view: defines the entry order
            order = np.lexsort((key, bucket))
            distinct_p = np.bincount(cr[dp == INF], minlength=n_cores)
            distinct_s = int((ds == INF).sum())
        key = key[order]
        if s > 1:  # sort inside each segment
            key = (np.sort(bucket[order] << 31 | key) & _INF32).astype(np.int32)
        val = np.minimum(val[order], len(val) + 1)  # INF -> a distance no access can have
        present = np.bincount(val, minlength=len(val) + 2) > 0
        values = np.flatnonzero(present)
        if values.shape[0] and values[-1] == len(val) + 1:
            values[-1] = INF
        rank = (np.cumsum(present) - 1)[val]
        nbits = max(int(values.shape[0] - 1).bit_length(), 1)
        views[s] = ReuseView(s, key, values, *_wavelet(rank, nbits))
    return ReuseProfile(line, g, nt, n_cores, offsets, views, int((~wr).sum()) * g,
                        int(wr.sum()) * g, distinct_p, distinct_s)


def profile_workload(workload, line: int = 64, sets=()) -> ReuseProfile:
    """Profile a :class:`hwmodels.Workload` in its replay order."""
    o = workload.replay_order()
    task = workload.access_task()[o]
    return reuse_profile(workload.addr[o], workload.length[o], workload.write[o],
                         workload.task_core[task], task, workload.n_tasks, workload.n_cores, line,
                         sets)


def set_counts(levels) -> list[int]:
    """The set counts of cache ``levels`` (for ``reuse_profile(..., sets=...)``)."""
    return sorted({geometry(lv, i).sets for i, lv in enumerate(levels)})


# ----------------------------------------------------------------------------- pricing
def price(profile: ReuseProfile, levels, cores: int | None = None):
    """Counters of a cache hierarchy ``levels`` (L1 outwards; dicts, ``LevelGeometry`` or
    ``CacheSpec``) for ``cores`` cores (default: the profile's), as
    ``(stats like CacheHierarchy.stats(), tstats (n_tasks, levels, 3), tmem (n_tasks, 2))``.
    Each level's ``fast_model`` says whether its set count was profiled ("per-set") or it was
    priced as fully associative."""
    p = profile
    cores = p.n_cores if cores is None else int(cores)
    if cores < p.n_cores:
        raise CacheGeometryError(f"the profile uses {p.n_cores} cores, the hierarchy {cores}")
    try:
        geoms = [geometry(lv, i) for i, lv in enumerate(levels)]
    except AttributeError:
        raise CacheGeometryError("the fast mode prices cache levels only") from None
    if not geoms:
        raise CacheGeometryError("at least one cache level is needed")
    if any(gm.line != p.line for gm in geoms):
        raise CacheGeometryError(f"all cache levels must use the profile's line size {p.line}")
    if any(a.shared and not b.shared for a, b in zip(geoms, geoms[1:])):
        raise CacheGeometryError("a private level cannot lie below a shared one")
    g, fa = p.granule, p.views[1]
    priv = [gm.size // gm.line for gm in geoms if not gm.shared]
    thr_p = min(max(priv) // g, _INF32) if priv else 0
    ts = np.zeros((p.n_tasks, len(geoms), 3), np.int64)
    wb = np.zeros((p.n_tasks, len(geoms)), np.int64)
    above = (p.offsets[1::3] - p.offsets[0:-1:3]) * g
    above_rs = p.offsets[2::3] - p.offsets[1::3]
    for i, gm in enumerate(geoms):
        v = p.views.get(gm.sets, fa)
        thr = min(gm.size // gm.line // g if v.sets == 1 else gm.ways, _INF32)
        c = _price_level(p.offsets, fa.keys, v.keys, v.words, v.ones, v.zeros, gm.shared,
                         thr_p, thr, int(np.searchsorted(v.values, thr)))
        misses, rs = np.minimum(c[:, 0] * g, above), np.minimum(c[:, 1], above_rs)
        ts[:, i] = np.stack([above - misses, misses, rs], axis=1)
        wb[:, i] = c[:, 2] * g
        above, above_rs = misses, rs
    tmem = np.stack([ts[:, -1, 1], wb[:, -1]], axis=1)
    out, above, wb_in = [], p.loads + p.stores, 0
    for i, gm in enumerate(geoms):
        misses, wbs, cap = int(ts[:, i, 1].sum()), int(wb[:, i].sum()), gm.size // gm.line
        resident = (min(cap, p.distinct_shared * g) if gm.shared else
                    sum(min(cap, int(d) * g) for d in p.distinct_private))
        d = {"name": gm.name, "loads": p.loads if i == 0 else above, "stores": p.stores * (i == 0),
             "hits": above - misses, "misses": misses, "writebacks_in": wb_in,
             "evictions": max(misses - resident, 0), "writebacks": wbs,
             "run_start_misses": int(ts[:, i, 2].sum()),
             "fast_model": "per-set" if gm.sets in p.views else "fully-associative"}
        for k in ("hits", "misses", "writebacks"):
            d[f"{k}_bytes"] = d[k] * p.line
        out.append(d)
        above, wb_in = misses, wbs
    reads, writes = int(tmem[:, 0].sum()), int(tmem[:, 1].sum())
    out.append({"name": "memory", "reads": reads, "writes": writes,
                "read_bytes": reads * p.line, "write_bytes": writes * p.line})
    return out, ts, tmem


def miss_curve(profile: ReuseProfile, sizes, shared: bool = False) -> np.ndarray:
    """Total misses (lines) of one fully associative level for every size in ``sizes``
    (bytes; per core unless ``shared``)."""
    return np.array([price(profile, [{"size": int(s), "line": profile.line,
                                      "ways": int(s) // profile.line, "shared": shared}])[0][0]
                     ["misses"] for s in sizes])


__all__ = ["INF", "ReuseProfile", "ReuseView", "miss_curve", "price", "profile_workload",
           "reuse_profile", "set_counts", "stack_distances"]
