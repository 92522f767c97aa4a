"""Exact set-associative LRU caches (compiled), composed into hierarchies.

Accesses are byte ranges ``[address, address + length)`` (``length`` defaults to 1), each read or
written in ascending line order, like pycachesim's ``load(addr, length)``. Hits and misses are
counted per cache line. For loads the per-level hit and miss counts equal pycachesim's (RRZE-HPC)
on any address stream; stores follow docs/cache-model.md.

Levels are simulated one after the other: each level's kernel consumes the ordered requests of
the level above and emits, in order, a fill for each miss and then a write-back for each dirty
victim, which is exactly the order in which a recursive simulator (pycachesim) reaches the next
level. So results are identical, and any :class:`MemoryLevel` can sit in the chain.

Speed comes from coalescing: if every access range starts and ends on a multiple of G lines and
G divides every level's set count, the G lines of a granule always share one access history and
sit in consecutive sets at the same way, so their LRU states are identical and a level can be
simulated on granules (sets / G super-sets), counting G lines per event. This is exact; G is the
largest such divisor for the stream so far (1 in the worst case).
"""
from __future__ import annotations

import math
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
def _lru_level(tag, kind, core, task, rs, g, shared, sets, ways, tags, stamps, dirty, clock,
               counters, tstats):  # pragma: no cover - compiled
    """One LRU level over ordered requests; returns the requests for the level below."""
    n = tag.shape[0]
    o_tag = np.empty(2 * n, np.int64)
    o_kind = np.empty(2 * n, np.int8)
    o_core = np.empty(2 * n, np.int64)
    o_task = np.empty(2 * n, np.int64)
    o_rs = np.empty(2 * n, np.bool_)
    m = 0
    inst_size = sets * ways
    for i in range(n):
        t = tag[i]
        k = kind[i]
        c = core[i]
        base = (0 if shared else c * inst_size) + (t % sets) * ways
        clock += 1
        found = -1
        victim = base
        vs = stamps[base]
        for w in range(base, base + ways):
            if tags[w] == t:
                found = w
                break
            if tags[w] < 0:
                if vs >= 0:
                    victim = w
                    vs = -1
            elif vs >= 0 and stamps[w] < vs:
                victim = w
                vs = stamps[w]
        if k == 2:  # write-back from above: no fetch, full line
            counters[4] += g
            if found >= 0:
                dirty[found] = 1
                stamps[found] = clock
                continue
        else:
            counters[1 if k == 1 else 0] += g
            if found >= 0:
                counters[2] += g
                tstats[task[i], 0] += g
                stamps[found] = clock
                if k == 1:
                    dirty[found] = 1
                continue
            counters[3] += g
            tstats[task[i], 1] += g
            if rs[i]:
                counters[7] += g
                tstats[task[i], 2] += g
            o_tag[m] = t  # fill from below
            o_kind[m] = 0
            o_core[m] = c
            o_task[m] = task[i]
            o_rs[m] = rs[i]
            m += 1
        if tags[victim] >= 0:
            counters[5] += g
            if dirty[victim]:
                counters[6] += g
                o_tag[m] = tags[victim]
                o_kind[m] = 2
                o_core[m] = c
                o_task[m] = task[i]
                o_rs[m] = False
                m += 1
        tags[victim] = t
        stamps[victim] = clock
        dirty[victim] = 1 if k != 0 else 0
    return o_tag[:m], o_kind[:m], o_core[:m], o_task[:m], o_rs[:m], clock


class LRUCache(MemoryLevel):
    """Set-associative, true-LRU, write-back, write-allocate cache level."""

    type_name = "cache"

    def __init__(self, spec, cores: int = 1):
        super().__init__(spec, cores)
        self.geom = geometry(spec)
        self.g = 1
        self._alloc()

    def _alloc(self) -> None:
        n = self.instances * (self.geom.sets // self.g) * self.geom.ways
        self.tags = np.full(n, -1, dtype=np.int64)
        self.stamps = np.zeros(n, dtype=np.int64)
        self.dirty = np.zeros(n, dtype=np.uint8)
        self.clock = 0

    def granule_divisor(self) -> int:
        return self.geom.sets

    def set_granule(self, g: int) -> None:
        """Coarsen an empty cache to granules of ``g`` lines (g divides the set count)."""
        if np.any(self.tags >= 0):
            raise RuntimeError("only an empty cache can be coarsened")
        self.g = g
        self._alloc()

    def refine(self, factor: int) -> None:
        if factor == 1:
            return
        s_old, w = self.geom.sets // self.g, self.geom.ways
        t = self.tags.reshape(self.instances, s_old, w)
        j = np.arange(factor)[None, None, :, None]
        nt = np.where(t[:, :, None, :] >= 0, t[:, :, None, :] * factor + j, -1)
        shape = (self.instances, s_old, factor, w)
        self.stamps = np.broadcast_to(self.stamps.reshape(self.instances, s_old, 1, w),
                                      shape).reshape(-1).copy()
        self.dirty = np.broadcast_to(self.dirty.reshape(self.instances, s_old, 1, w),
                                     shape).reshape(-1).copy()
        self.tags = nt.reshape(-1).astype(np.int64)
        self.g //= factor

    def process(self, req: Requests, tstats: np.ndarray) -> Requests:
        if req.g != self.g:
            raise ValueError(f"{self.name}: requests in granules of {req.g} lines, state in "
                             f"{self.g}")
        tag, kind, core, task, rs, self.clock = _lru_level(
            req.tag, req.kind, req.core, req.task, req.run_start, self.g, self.shared,
            self.geom.sets // self.g, self.geom.ways, self.tags, self.stamps, self.dirty,
            self.clock, self.counters, tstats)
        return Requests(tag, kind, core, task, rs, req.g, req.line)

    def dirty_tags(self) -> tuple[np.ndarray, np.ndarray]:
        """(tags, instance) of every dirty line; clears their dirty bits (for flushing)."""
        idx = np.nonzero((self.tags >= 0) & (self.dirty == 1))[0]
        self.dirty[idx] = 0
        per_inst = (self.geom.sets // self.g) * self.geom.ways
        return self.tags[idx], idx // per_inst


# ----------------------------------------------------------------------------- hierarchy
class CacheHierarchy:
    """A chain of memory levels (LRU caches by default) in front of main memory.

    Private levels keep one instance per core; shared levels see the cores' requests in the
    order given. ``levels`` are geometries/specs (made into :class:`LRUCache`) or ready
    :class:`MemoryLevel` objects.
    """

    def __init__(self, levels, cores: int = 1, line: int | None = None):
        if cores < 1:
            raise CacheGeometryError("cores must be at least 1")
        self.cores = cores
        self.levels: list[MemoryLevel] = [
            lv if isinstance(lv, MemoryLevel) else LRUCache(geometry(lv, i), cores)
            for i, lv in enumerate(levels)]
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
        # coarsest granule every level can simulate exactly (levels start empty)
        self.g = math.gcd(*[lv.granule_divisor() for lv in self.levels]) if self.levels else 1
        for lv in self.levels:
            if isinstance(lv, LRUCache):
                lv.set_granule(self.g)
        self.memory = np.zeros(2, dtype=np.int64)  # lines read, lines written

    def _set_granule(self, g: int) -> None:
        if g == self.g:
            return
        for lv in self.levels:
            lv.refine(self.g // g)
        self.g = g

    @property
    def granule_lines(self) -> int:
        """Lines simulated as one unit (1 = line by line)."""
        return self.g

    def requests(self, addresses, lengths=None, writes=None, cores=None, tasks=None):
        """Expand byte ranges into granule requests (refining the state if needed)."""
        addr = np.asarray(addresses, dtype=np.int64).reshape(-1)
        n = addr.shape[0]
        length = np.ones(n, np.int64) if lengths is None else np.asarray(lengths, np.int64)
        wr = np.zeros(n, np.bool_) if writes is None else np.asarray(writes, np.bool_)
        cr = np.zeros(n, np.int64) if cores is None else np.asarray(cores, np.int64)
        tk = np.zeros(n, np.int64) if tasks is None else np.asarray(tasks, np.int64)
        if length.shape != (n,) or wr.shape != (n,) or cr.shape != (n,) or tk.shape != (n,):
            raise ValueError("lengths, writes, cores and tasks must match addresses")
        if n and (np.any(length < 1) or np.any(addr < 0)):
            raise ValueError("addresses must be non-negative and lengths positive")
        if n and (cr.min() < 0 or cr.max() >= self.cores):
            raise ValueError(f"core ids must be within 0..{self.cores - 1}")
        shift = self.line.bit_length() - 1
        first = addr >> shift
        end = ((addr + length - 1) >> shift) + 1
        if n:
            g = math.gcd(self.g, int(np.gcd.reduce(np.concatenate([first, end]))))
            self._set_granule(max(g, 1))
        g = self.g
        f, e = first // g, end // g
        count = e - f
        idx = np.repeat(np.arange(n), count)
        offs = np.arange(idx.shape[0]) - np.repeat(np.cumsum(count) - count, count)
        return Requests(f[idx] + offs, np.where(wr[idx], STORE, LOAD).astype(np.int8), cr[idx],
                        tk[idx], offs == 0, g, self.line)

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
        """Send granule requests down the chain; count what reaches main memory."""
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
            np.add.at(tmem[:, 0], req.task[~wb], req.g)
            np.add.at(tmem[:, 1], req.task[wb], req.g)
            self.memory += [int((~wb).sum()) * req.g, int(wb.sum()) * req.g]
        return tstats, tmem

    def flush(self) -> None:
        """Write every dirty line back towards memory (counted as write-backs)."""
        for i, lv in enumerate(self.levels):
            if not isinstance(lv, LRUCache):
                continue
            tags, inst = lv.dirty_tags()
            if not len(tags):
                continue
            lv.counters[6] += len(tags) * self.g
            req = Requests(tags, np.full(len(tags), WRITEBACK, np.int8), inst,
                           np.zeros(len(tags), np.int64), np.zeros(len(tags), np.bool_),
                           self.g, self.line)
            for below in self.levels[i + 1:]:
                req = below.process(req, np.zeros((1, 3), np.int64))
            self.memory[1] += int((req.kind == WRITEBACK).sum()) * self.g

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
