"""Exact set-associative LRU cache hierarchy, compiled, whole arrays per call.

Accesses are byte ranges ``[address, address + length)`` (``length`` defaults to 1), each read or
written in ascending line order, like pycachesim's ``load(addr, length)``. Hits, misses and
evictions are counted per cache line. For loads the per-level hit and miss counts equal
pycachesim's (RRZE-HPC) on any address stream; stores follow the documented semantics of
docs/cache-model.md.

Speed comes from coalescing: if every access range starts and ends on a multiple of G lines and
G divides every level's set count, the G lines of a granule always share one access history and
sit in consecutive sets at the same way, so their LRU states are identical and the hierarchy can
be simulated on granules (G-line super-lines, sets / G super-sets), counting G lines per event.
The result is exact; G is the largest such divisor for the stream (1 in the worst case).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

STAT_FIELDS = ("loads", "stores", "hits", "misses", "writebacks_in", "evictions", "writebacks",
               "run_start_misses")
_LOADS, _STORES, _HITS, _MISSES, _WB_IN, _EVICT, _WB_OUT, _RS_MISS = range(8)


class CacheGeometryError(ValueError):
    """An impossible cache geometry (size not a multiple of line x ways, line not a power of
    two, mixed line sizes, a private level below a shared one)."""


@dataclass(frozen=True)
class LevelGeometry:
    size: int
    line: int
    ways: int
    shared: bool = False
    name: str = ""

    @property
    def sets(self) -> int:
        return self.size // (self.line * self.ways)


def geometry(levels) -> list[LevelGeometry]:
    """Normalise levels given as dicts ``{"size", "line", "ways"[, "shared", "name"]}``,
    :class:`LevelGeometry` or hwmodels ``CacheSpec`` objects; validate them."""
    out = []
    for i, lv in enumerate(levels):
        if isinstance(lv, LevelGeometry):
            g = lv
        elif isinstance(lv, dict):
            g = LevelGeometry(int(lv["size"]), int(lv.get("line", 64)), int(lv["ways"]),
                              bool(lv.get("shared", False)), str(lv.get("name", f"L{i + 1}")))
        else:  # a CacheSpec-like object
            g = LevelGeometry(int(lv.size), int(lv.line), int(lv.ways), bool(lv.shared),
                              str(lv.name))
        name = g.name or f"L{i + 1}"
        if g.line <= 0 or g.line & (g.line - 1):
            raise CacheGeometryError(f"{name}: line size {g.line} is not a power of two")
        if g.ways <= 0 or g.size <= 0 or g.size % (g.line * g.ways):
            raise CacheGeometryError(f"{name}: size {g.size} B is not a positive multiple of "
                                     f"line x ways = {g.line * g.ways} B")
        out.append(LevelGeometry(g.size, g.line, g.ways, g.shared, name))
    if not out:
        raise CacheGeometryError("at least one cache level is needed")
    if len({g.line for g in out}) != 1:
        raise CacheGeometryError("all levels must use the same line size")
    seen_shared = False
    for g in out:
        if seen_shared and not g.shared:
            raise CacheGeometryError(f"{g.name}: a private level cannot lie below a shared one")
        seen_shared |= g.shared
    return out


# ----------------------------------------------------------------------------- kernel
@njit(cache=True)
def _insert(tags, stamps, dirty, base, ways, tag, now, make_dirty):  # pragma: no cover
    """Put ``tag`` at MRU in the set starting at ``base``; return the evicted slot's
    (tag, was_dirty), tag -1 when the slot was empty."""
    victim = base
    vs = stamps[base]
    for w in range(base, base + ways):
        if tags[w] < 0:
            victim = w
            break
        if stamps[w] < vs:
            vs = stamps[w]
            victim = w
    old, old_dirty = tags[victim], dirty[victim]
    tags[victim] = tag
    stamps[victim] = now
    dirty[victim] = make_dirty
    return old, old_dirty


@njit(cache=True)
def _find(tags, base, ways, tag):  # pragma: no cover
    for w in range(base, base + ways):
        if tags[w] == tag:
            return w
    return -1


@njit(cache=True)
def _writeback(lvl, tag, n_levels, sets, ways, offs, inst_size, inst, tags, stamps, dirty,
               stats, dram, g, clock):  # pragma: no cover
    """A dirty granule leaves level ``lvl - 1``: write it into ``lvl`` (or DRAM), cascading."""
    while True:
        if lvl >= n_levels:
            dram[1] += g
            return clock
        base = offs[lvl] + inst[lvl] * inst_size[lvl] + (tag % sets[lvl]) * ways[lvl]
        stats[lvl, _WB_IN] += g
        clock += 1
        w = _find(tags, base, ways[lvl], tag)
        if w >= 0:
            dirty[w] = 1
            stamps[w] = clock
            return clock
        old, old_dirty = _insert(tags, stamps, dirty, base, ways[lvl], tag, clock, 1)
        if old < 0:
            return clock
        stats[lvl, _EVICT] += g
        if not old_dirty:
            return clock
        stats[lvl, _WB_OUT] += g
        tag = old
        lvl += 1


@njit(cache=True)
def _simulate(first, last, write, core, g, sets, ways, shared, offs, inst_size, tags, stamps,
              dirty, stats, dram, clock):  # pragma: no cover
    """Replay runs of granules [first[i], last[i]] through the hierarchy."""
    n_levels = sets.shape[0]
    inst = np.zeros(n_levels, dtype=np.int64)
    missed = np.zeros(n_levels, dtype=np.int64)
    for i in range(first.shape[0]):
        c = core[i]
        for lv in range(n_levels):
            inst[lv] = 0 if shared[lv] else c
        is_store = write[i]
        for tag in range(first[i], last[i] + 1):
            # descend until a hit (or DRAM)
            depth = 0
            hit_level = n_levels
            for lv in range(n_levels):
                base = offs[lv] + inst[lv] * inst_size[lv] + (tag % sets[lv]) * ways[lv]
                clock += 1
                if lv == 0 and is_store:
                    stats[lv, _STORES] += g
                else:
                    stats[lv, _LOADS] += g
                w = _find(tags, base, ways[lv], tag)
                if w >= 0:
                    stats[lv, _HITS] += g
                    stamps[w] = clock
                    if lv == 0 and is_store:
                        dirty[w] = 1
                    hit_level = lv
                    break
                stats[lv, _MISSES] += g
                if tag == first[i]:
                    stats[lv, _RS_MISS] += g
                missed[depth] = base
                depth += 1
            if hit_level == n_levels:
                dram[0] += g
            # fill bottom-up: the deepest missed level first (pycachesim's order)
            for d in range(depth - 1, -1, -1):
                lv = d
                clock += 1
                mk = 1 if (lv == 0 and is_store) else 0
                old, old_dirty = _insert(tags, stamps, dirty, missed[d], ways[lv], tag, clock, mk)
                if old >= 0:
                    stats[lv, _EVICT] += g
                    if old_dirty:
                        stats[lv, _WB_OUT] += g
                        clock = _writeback(lv + 1, old, n_levels, sets, ways, offs, inst_size,
                                           inst, tags, stamps, dirty, stats, dram, g, clock)
    return clock


@njit(cache=True)
def _flush(n_levels, sets, ways, offs, inst_size, n_inst, tags, stamps, dirty, stats, dram, g,
           clock):  # pragma: no cover
    """Write every dirty granule back, level by level from the top."""
    inst = np.zeros(n_levels, dtype=np.int64)
    for lv in range(n_levels):
        for k in range(n_inst[lv]):
            start = offs[lv] + k * inst_size[lv]
            for w in range(start, start + inst_size[lv]):
                if tags[w] >= 0 and dirty[w]:
                    dirty[w] = 0
                    stats[lv, _WB_OUT] += g
                    for m in range(n_levels):
                        inst[m] = k if not (m > lv and n_inst[m] == 1) else 0
                    clock = _writeback(lv + 1, tags[w], n_levels, sets, ways, offs, inst_size,
                                       inst, tags, stamps, dirty, stats, dram, g, clock)
    return clock


# ----------------------------------------------------------------------------- API
class CacheHierarchy:
    """Stateful multi-level, multi-core LRU hierarchy. Private levels have one instance per
    core; shared levels see the cores' requests in the order given."""

    def __init__(self, levels, cores: int = 1):
        self.levels = geometry(levels)
        if cores < 1:
            raise CacheGeometryError("cores must be at least 1")
        self.cores = cores
        self.line = self.levels[0].line
        self._g = math.gcd(*[lv.sets for lv in self.levels])
        self._alloc(self._g)
        self.reset_stats()

    def _alloc(self, g: int) -> None:
        lv = self.levels
        self._sets = np.array([x.sets // g for x in lv], dtype=np.int64)
        self._ways = np.array([x.ways for x in lv], dtype=np.int64)
        self._shared = np.array([x.shared for x in lv], dtype=np.bool_)
        self._n_inst = np.array([1 if x.shared else self.cores for x in lv], dtype=np.int64)
        self._inst_size = self._sets * self._ways
        sizes = self._inst_size * self._n_inst
        self._offs = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total = int(sizes.sum())
        self._tags = np.full(total, -1, dtype=np.int64)
        self._stamps = np.zeros(total, dtype=np.int64)
        self._dirty = np.zeros(total, dtype=np.uint8)
        self._clock = 0

    def _refine(self, g_new: int) -> None:
        """Re-express the state at a finer granule (g_new divides the current one)."""
        r = self._g // g_new
        old = (self._tags, self._stamps, self._dirty, self._offs, self._inst_size, self._sets)
        clock = self._clock
        self._alloc(g_new)
        self._clock = clock
        for lv in range(len(self.levels)):
            w = int(self._ways[lv])
            s_old = int(old[5][lv])
            for k in range(int(self._n_inst[lv])):
                a = int(old[3][lv] + k * old[4][lv])
                t = old[0][a:a + s_old * w].reshape(s_old, w)
                st = old[1][a:a + s_old * w].reshape(s_old, w)
                d = old[2][a:a + s_old * w].reshape(s_old, w)
                j = np.arange(r)[None, :, None]
                nt = np.where(t[:, None, :] >= 0, t[:, None, :] * r + j, -1)
                b = int(self._offs[lv] + k * self._inst_size[lv])
                n = s_old * r * w
                self._tags[b:b + n] = nt.reshape(-1)
                self._stamps[b:b + n] = np.broadcast_to(st[:, None, :], (s_old, r, w)).reshape(-1)
                self._dirty[b:b + n] = np.broadcast_to(d[:, None, :], (s_old, r, w)).reshape(-1)
        self._g = g_new

    def access(self, addresses, lengths=None, writes=None, cores=None) -> None:
        """Replay accesses: byte ``addresses`` with optional byte ``lengths`` (default 1),
        ``writes`` (bool) and issuing ``cores`` (default 0), in the order given."""
        addr = np.asarray(addresses, dtype=np.int64).reshape(-1)
        n = addr.shape[0]
        if n == 0:
            return
        length = np.ones(n, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        if length.shape != (n,) or np.any(length < 1):
            raise ValueError("lengths must be positive and match addresses")
        if np.any(addr < 0):
            raise ValueError("addresses must be non-negative")
        wr = np.zeros(n, np.bool_) if writes is None else np.asarray(writes, np.bool_)
        cr = np.zeros(n, np.int64) if cores is None else np.asarray(cores, np.int64)
        if wr.shape != (n,) or cr.shape != (n,):
            raise ValueError("writes and cores must match addresses")
        if n and (cr.min() < 0 or cr.max() >= self.cores):
            raise ValueError(f"core ids must be within 0..{self.cores - 1}")
        shift = self.line.bit_length() - 1
        first = addr >> shift
        end = ((addr + length - 1) >> shift) + 1
        g = int(np.gcd.reduce(np.concatenate([[self._g], first, end])))
        g = max(g, 1)
        if g != self._g:
            self._refine(math.gcd(g, self._g))
        g = self._g
        self._clock = _simulate(first // g, end // g - 1, wr, cr, g, self._sets, self._ways,
                                self._shared, self._offs, self._inst_size, self._tags,
                                self._stamps, self._dirty, self._stats, self._dram, self._clock)

    def flush(self) -> None:
        """Write every dirty line back to memory (counted as writebacks)."""
        self._clock = _flush(len(self.levels), self._sets, self._ways, self._offs,
                             self._inst_size, self._n_inst, self._tags, self._stamps, self._dirty,
                             self._stats, self._dram, self._g, self._clock)

    def reset_stats(self) -> None:
        """Zero the counters, keeping the cache contents (for warm-up)."""
        self._stats = np.zeros((len(self.levels), len(STAT_FIELDS)), dtype=np.int64)
        self._dram = np.zeros(2, dtype=np.int64)

    @property
    def granule_lines(self) -> int:
        """Lines simulated as one unit so far (1 = line by line)."""
        return self._g

    def stats(self) -> list[dict]:
        """Per level: the counters of STAT_FIELDS in lines plus ``*_bytes``; then memory."""
        out = []
        for lv, row in zip(self.levels, self._stats):
            d = {"name": lv.name}
            d.update({k: int(v) for k, v in zip(STAT_FIELDS, row)})
            d["hit_bytes"] = d["hits"] * self.line
            d["miss_bytes"] = d["misses"] * self.line
            d["writeback_bytes"] = d["writebacks"] * self.line
            out.append(d)
        out.append({"name": "memory", "reads": int(self._dram[0]), "writes": int(self._dram[1]),
                    "read_bytes": int(self._dram[0]) * self.line,
                    "write_bytes": int(self._dram[1]) * self.line})
        return out


def simulate_cache(levels, addresses, writes=None, lengths=None) -> list[dict]:
    """Simulate one stream through a fresh single-core hierarchy.

    ``levels``: list from L1 outwards of ``{"size": bytes, "line": bytes, "ways": int}`` (or
    ``CacheSpec`` objects); ``addresses``: byte addresses; ``writes``: optional bool array;
    ``lengths``: optional byte lengths (ranges). Returns one dict per level with ``hits``,
    ``misses``, ``evictions`` (and the other STAT_FIELDS), then one for memory.
    """
    h = CacheHierarchy(levels, cores=1)
    h.access(addresses, lengths=lengths, writes=writes)
    return h.stats()
