"""Reference cache models for the tests: pycachesim (loads) and a slow, obvious model of the
documented semantics (stores, write-backs)."""
from collections import OrderedDict

import pytest


def pycachesim(levels):
    """pycachesim's LRU hierarchy of these levels (the test skips where it is missing)."""
    cachesim = pytest.importorskip("cachesim")
    mem = cachesim.MainMemory()
    prev = None
    for i, lv in reversed(list(enumerate(levels))):
        sets = lv["size"] // (lv["line"] * lv["ways"])
        c = cachesim.Cache(f"L{i + 1}", sets, lv["ways"], lv["line"], "LRU",
                           store_to=prev, load_from=prev)
        if prev is None:
            mem.load_to(c)
            mem.store_from(c)
        prev = c
    return cachesim.CacheSimulator(prev, mem)


def random_levels(rng):
    line = int(2 ** rng.integers(4, 7))
    levels = []
    for lv in range(int(rng.integers(1, 4))):
        ways = int(rng.integers(1, 9))
        sets = int(rng.integers(1, 40)) * (lv + 1)  # not always a power of two
        levels.append({"size": sets * ways * line, "line": line, "ways": ways})
    return levels



class ReferenceLRU:
    """Slow, obvious model of the documented semantics (docs/cache-model.md)."""

    def __init__(self, levels):
        self.levels = [(lv["size"] // (lv["line"] * lv["ways"]), lv["ways"]) for lv in levels]
        self.line = levels[0]["line"]
        self.sets = [[OrderedDict() for _ in range(s)] for s, _ in self.levels]
        self.stats = [dict(hits=0, misses=0, writebacks=0, writebacks_in=0)
                      for _ in self.levels]
        self.dram = [0, 0]

    def _wb(self, lv, tag):
        if lv == len(self.levels):
            self.dram[1] += 1
            return
        self.stats[lv]["writebacks_in"] += 1
        st = self.sets[lv][tag % self.levels[lv][0]]
        if tag in st:
            st[tag] = True
            st.move_to_end(tag)
            return
        st[tag] = True
        if len(st) > self.levels[lv][1]:
            old, dirty = st.popitem(last=False)
            if dirty:
                self.stats[lv]["writebacks"] += 1
                self._wb(lv + 1, old)

    def access(self, addr, write):
        tag = addr // self.line
        missed = []
        for lv in range(len(self.levels)):
            st = self.sets[lv][tag % self.levels[lv][0]]
            if tag in st:
                self.stats[lv]["hits"] += 1
                st.move_to_end(tag)
                if lv == 0 and write:
                    st[tag] = True
                break
            self.stats[lv]["misses"] += 1
            missed.append(lv)
        else:
            self.dram[0] += 1
        for lv in reversed(missed):
            st = self.sets[lv][tag % self.levels[lv][0]]
            st[tag] = bool(lv == 0 and write)
            if len(st) > self.levels[lv][1]:
                old, dirty = st.popitem(last=False)
                if dirty:
                    self.stats[lv]["writebacks"] += 1
                    self._wb(lv + 1, old)
