"""Exact set-associative LRU caches (compiled), composed into hierarchies.

Accesses are byte ranges ``[address, address + length)`` (``length`` defaults to 1), each read or
written in ascending line order, like pycachesim's ``load(addr, length)``. Hits and misses are
counted per cache line. For loads the per-level hit and miss counts equal pycachesim's (RRZE-HPC)
on any address stream; stores follow docs/cache-model.md.

Levels are simulated one after the other: each level's kernel consumes the ordered requests of
the level above and emits, in order, a fill for each miss and then a write-back for each dirty
victim, which is exactly the order in which a recursive simulator (pycachesim) reaches the next
level. So results are identical, and any :class:`MemoryLevel` can sit in the chain.

The class form (:mod:`hwmodels.lru_class`: a level's sets grouped into super-sets whose sets
of equal normalised state share one state) simulates aligned runs of lines in one step per
class; see docs/cache-model.md.

That class form pays on runs. A level may also hold its state in the plain form
(:mod:`hwmodels.lru_plain`, line by line) and picks the form per batch of requests;
:meth:`CacheHierarchy.access` finds the runs in any address stream first (:mod:`hwmodels.runs`)
and sends a stream without runs through all levels at once, line by line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from hwmodels.components import (
    STAT_FIELDS,
    WRITEBACK,
    MemoryLevel,
    Requests,
)
from hwmodels.lru_class import NREC as _NREC
from hwmodels.lru_class import class_dirty_lines, class_level
from hwmodels.lru_plain import (
    _HITS,
    _LOADS,
    _STORES,
    from_plain,
    fused_plain,
    plain_dirty_lines,
    plain_level,
    to_plain,
)
from hwmodels.runs import columns, run_shares, runs_of

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
                i, m, self.clock = class_level(
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
            line, inst = class_dirty_lines(self.tags, self.dirty, self.active, self.members,
                                      self.nc, self.g, self.geom.ways,
                                      self.geom.sets // self.g)
        order = np.lexsort((line, inst))
        return line[order], np.ones(order.shape[0], np.int64), inst[order]


# ----------------------------------------------------------------------------- hierarchy
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
        """Turn byte ranges into line-run requests (as given: no runs found)."""
        return self._requests(*columns(addresses, lengths, writes, cores, tasks))

    def _requests(self, addr, cols_in, flags) -> Requests:
        (start, count, kind, core, task, rs), _ = runs_of(addr, cols_in, flags, self.line,
                                                         self.cores, 0, 1)
        return Requests(start, count, kind, core, task, rs.astype(np.bool_), self.line)

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
        addr, cols_in, flags = columns(addresses, lengths, writes, cores, tasks)
        tk = cols_in[3] if flags & 8 else None
        top = int(tk.max()) + 1 if tk is not None and tk.shape[0] else 1
        nt = int(n_tasks if n_tasks is not None else top)
        if top > nt or (tk is not None and tk.shape[0] and tk.min() < 0):
            raise ValueError("task ids must lie in 0..n_tasks - 1")
        if not self.key:
            return self.replay(self._requests(addr, cols_in, flags), nt)
        multi, ext = run_shares(addr, cols_in, flags, self.line, self.cores)
        if multi + ext < _RUNLESS and self._fusable():
            run_shares(addr, cols_in, flags, self.line, self.cores, probe=-1)  # validate all
            return self._replay_fused(addr, cols_in, flags, nt)
        if ext < _RUNLESS:  # ranges as given: finding runs among their few lines costs more
            return self.replay(self._requests(addr, cols_in, flags), nt)
        cols, absorbed = runs_of(addr, cols_in, flags, self.line, self.cores, self.key, nt)
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
