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
        cap = int(self.spec.size // req.line)
        lines, idx = req.expand()
        kind, task = req.kind[idx], req.task[idx]
        inst = np.zeros(lines.shape[0], np.int64) if self.shared else req.core[idx]
        first = np.zeros(lines.shape[0], dtype=bool)  # first line of its request
        first[np.cumsum(req.count) - req.count] = True
        hit = np.zeros(lines.shape[0], dtype=bool)
        for k in np.unique(inst):
            sel = np.nonzero(inst == k)[0]
            placed = self.placed[k]
            uniq, first_seen = np.unique(lines[sel], return_index=True)
            fresh = ~np.isin(uniq, placed)
            new = uniq[fresh][np.argsort(first_seen[fresh], kind="stable")]
            placed = np.union1d(placed, new[: max(cap - placed.shape[0], 0)])
            self.placed[k] = placed
            hit[sel] = np.isin(lines[sel], placed)
        wb = kind == WRITEBACK
        c = self.counters
        c[0] += int((kind == LOAD).sum())
        c[1] += int((kind == STORE).sum())
        c[4] += int(wb.sum())
        demand_hit, demand_miss = hit & ~wb, ~hit & ~wb
        c[2] += int(demand_hit.sum())
        c[3] += int(demand_miss.sum())
        rs = demand_miss & first & req.run_start[idx]
        c[7] += int(rs.sum())
        np.add.at(tstats[:, 0], task[demand_hit], 1)
        np.add.at(tstats[:, 1], task[demand_miss], 1)
        np.add.at(tstats[:, 2], task[rs], 1)
        keep = ~hit  # overflow: loads are read from below, stores written through
        out_kind = np.where(kind == STORE, WRITEBACK, kind).astype(np.int8)
        return Requests(lines[keep], np.ones(int(keep.sum()), np.int64), out_kind[keep],
                        req.core[idx][keep], task[keep], (first & req.run_start[idx])[keep],
                        req.line)
