"""A software-managed scratchpad: first-touch allocation of lines until it is full.

A line is placed the first time it is touched while free capacity remains; it then stays for
the rest of the run (no eviction). Accesses to placed lines hit; all others go to the next
level. This models an SRAM-only neuromorphic core or a microcontroller whose working set is
pinned in on-chip memory, and shows how a non-cache level plugs into a hierarchy.
"""
from __future__ import annotations

import numpy as np

from hwmodels.components import LOAD, STORE, WRITEBACK, MemoryLevel, Requests


class Scratchpad(MemoryLevel):
    type_name = "scratchpad"

    def __init__(self, spec, cores: int = 1):
        super().__init__(spec, cores)
        self.placed = [np.zeros(0, np.int64) for _ in range(self.instances)]

    def process(self, req: Requests, tstats: np.ndarray) -> Requests:
        cap = int(self.spec.size // (req.line * req.g))
        inst = np.zeros(len(req), np.int64) if self.shared else req.core
        hit = np.zeros(len(req), dtype=bool)
        for k in np.unique(inst):
            sel = np.nonzero(inst == k)[0]
            tags = req.tag[sel]
            placed = self.placed[k]
            uniq, first = np.unique(tags, return_index=True)
            new = uniq[~np.isin(uniq, placed)]
            new = new[np.argsort(first[~np.isin(uniq, placed)], kind="stable")]
            placed = np.union1d(placed, new[: max(cap - placed.shape[0], 0)])
            self.placed[k] = placed
            hit[sel] = np.isin(tags, placed)
        wb = req.kind == WRITEBACK
        g, c = req.g, self.counters
        c[0] += int((req.kind == LOAD).sum()) * g
        c[1] += int((req.kind == STORE).sum()) * g
        c[4] += int(wb.sum()) * g
        demand_hit, demand_miss = hit & ~wb, ~hit & ~wb
        c[2] += int(demand_hit.sum()) * g
        c[3] += int(demand_miss.sum()) * g
        c[7] += int((demand_miss & req.run_start).sum()) * g
        np.add.at(tstats[:, 0], req.task[demand_hit], g)
        np.add.at(tstats[:, 1], req.task[demand_miss], g)
        np.add.at(tstats[:, 2], req.task[demand_miss & req.run_start], g)
        keep = ~hit  # overflow: loads are read from below, stores written through
        kind = np.where(req.kind == STORE, WRITEBACK, req.kind).astype(np.int8)
        return Requests(req.tag[keep], kind[keep], req.core[keep], req.task[keep],
                        req.run_start[keep], req.g, req.line)
