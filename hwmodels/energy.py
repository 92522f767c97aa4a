"""Energy: counted actions x priced actions, plus static power x time (Accelergy's habit).

Every figure in the breakdown keeps the ``source`` of its price.
"""
from __future__ import annotations

import numpy as np

from hwmodels.core import op_base, op_qualifier
from hwmodels.spec import HardwareSpec, Priced

#: operation kinds priced as one fp32 add (element-wise bookkeeping of the program; a relu
#: is one compare)
FP32_ADD_KINDS = ("readout_op", "input_op", "pool_op", "gate_act.relu")


def op_price(spec: HardwareSpec, kind: str) -> Priced | None:
    """The price of one operation of ``kind`` (None: not priced: control work such as event
    decoding, loop setup, the gate's selection, and the sigmoid, whose energy the static power
    over its time covers)."""
    e = spec.energy
    base = op_base(kind)
    dtype = op_qualifier(kind, "fp32")
    if base == "synop":
        return e.synop[dtype]
    if base == "mac":
        return e.mac[dtype]
    if base == "neuron_update":
        return e.neuron_update
    if base == "gate_op":
        return e.gate_op
    if base in FP32_ADD_KINDS or kind in FP32_ADD_KINDS:
        return e.synop["fp32"]
    return None


def dynamic_energy(spec: HardwareSpec, ops: np.ndarray, op_kinds: tuple[str, ...],
                   level_lines: np.ndarray, mem_lines: np.ndarray, line: int,
                   level_instances: list[int], writebacks_in: np.ndarray) -> dict:
    """Per-task dynamic energy (J) split into components, with the sources of the prices.

    ``level_lines`` (n_tasks, levels, 3) = hits, misses, run-start misses; ``mem_lines``
    (n_tasks, 2) = lines read, written. Each demand access to a level costs one read; each miss
    also one write (the fill); write-backs received cost one write each (level totals,
    ``writebacks_in`` per level, spread over tasks in proportion to their misses).
    """
    comps: dict[str, np.ndarray] = {}
    sources: dict[str, str] = {}
    for j, kind in enumerate(op_kinds):
        price = op_price(spec, kind)
        if price is None or not ops[:, j].any():
            continue
        name = f"compute.{op_base(kind)}"
        comps[name] = comps.get(name, 0) + ops[:, j] * price.energy
        sources[name] = price.source
    for i, lv in enumerate(spec.memory):
        hits, misses = level_lines[:, i, 0], level_lines[:, i, 1]
        e = (hits + misses) * lv.read.energy + misses * lv.write.energy
        total_miss = misses.sum()
        if writebacks_in[i] and total_miss:
            e = e + writebacks_in[i] * lv.write.energy * misses / total_miss
        comps[f"memory.{lv.name}"] = e
        sources[f"memory.{lv.name}"] = f"read: {lv.read.source}; write: {lv.write.source}"
    dram = spec.dram.energy_per_byte
    comps["memory.dram"] = (mem_lines[:, 0] + mem_lines[:, 1]) * line * dram.energy
    sources["memory.dram"] = dram.source
    return {"per_task": comps, "sources": sources}


def static_power(spec: HardwareSpec, cores: int) -> dict[str, tuple[float, str]]:
    """Static power (W) of each component with its source, for ``cores`` active cores."""
    out: dict[str, tuple[float, str]] = {}
    if spec.cores.static_power is not None:
        p = spec.cores.static_power
        out["static.cores"] = (p.power * cores / spec.cores.count, p.source)
    for lv in spec.memory:
        if lv.leakage is not None:
            n = 1 if lv.shared else cores
            out[f"static.{lv.name}"] = (lv.leakage.power * n, lv.leakage.source)
    if spec.dram.background is not None:
        out["static.dram"] = (spec.dram.background.power, spec.dram.background.source)
    return out
