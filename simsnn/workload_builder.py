"""The pieces the lowering builds a workload from: operation kinds, runs of open units, the
cores' shares of a layer, and the columnar builder of tasks and phases (simsnn.lowering)."""
from __future__ import annotations

import numpy as np

from hwmodels.spec import TAIL_BLOCKS
from hwmodels.workload import Workload

#: blocks (elements per iteration of a compiled loop's vector body or epilogue) whose
#: remainders the lowering counts: the elements of a run of W open units past its last full
#: block of B take a slower path (a shorter vector epilogue, the scalar remainder); ``tail{B}``
#: counts W mod B per visited run and the core model prices the blocks its hardware file
#: lists (``cycles_per_tail``), so one workload serves every hardware file
#: ``unaligned`` counts the elements of visited runs whose weight piece or current does not
#: start on a ``VECTOR_ALIGN``-byte boundary (their vector loads and stores split)
BASE_OPS = ("event", "synop", "mac", "neuron_update", "readout_op", "input_op", "pool_op",
            "gate_op", "segment", "gate_row", "gate_call", "gate_select", "gate_act.relu",
            "gate_act.sigmoid", "call", "spike", "unaligned", "conv_event", "conv_tap",
            "update_run", "conv_spike") + tuple(f"tail{b}" for b in TAIL_BLOCKS)
_DTYPED = ("synop", "mac", "segment", "unaligned") + tuple(f"tail{b}" for b in TAIL_BLOCKS)
VECTOR_ALIGN = 32


def op_kinds(dtype: str) -> tuple[str, ...]:
    """Operation kinds of a workload with ``dtype`` weights (synop, mac, segment and the
    remainder counts qualified by dtype: a run's loop setup and tail depend on the weights'
    width)."""
    return tuple(f"{k}.{dtype}" if k in _DTYPED else k for k in BASE_OPS)


def expand(x, shape: tuple, dtype=None) -> np.ndarray:
    """``x`` broadcast to ``shape`` as a new array (or ``x`` itself when it has the shape and
    dtype already): ``np.broadcast_to`` costs ~5 us a call in Python overhead, and the
    lowering makes millions of these calls on small arrays."""
    if isinstance(x, np.ndarray) and x.shape == shape and (dtype is None or x.dtype == dtype):
        return x
    out = np.empty(shape, dtype if dtype is not None else np.asarray(x).dtype)
    out[...] = x
    return out


def segments(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive storage positions in sorted ``pos``: (starts, lengths)."""
    if pos.shape[0] == 0:
        return pos[:0], pos[:0]
    brk = np.nonzero(np.diff(pos) != 1)[0] + 1
    starts = np.concatenate([[0], brk])
    ends = np.concatenate([brk, [pos.shape[0]]])
    return pos[starts], ends - starts


def split(n: int, parts: int) -> np.ndarray:
    """Boundaries of ``parts`` nearly equal contiguous shares of ``n`` items."""
    return (np.arange(parts + 1) * n) // parts


#: fp32 currents (and states) per 64-byte cache line: the cores' shares of a layer's units
#: begin and end on these boundaries
LINE_UNITS = 16


def unit_shares(perm: np.ndarray, active: np.ndarray, cores: int,
                partition: str) -> list[np.ndarray]:
    """Sorted storage positions of the open units each core handles (``perm``: unit ->
    storage position). Shared by the lowering and the measured program. Each share is
    nearly equal (by open units, or by storage positions with ``static``) but ends on a
    cache-line boundary of the layer's current and state (``LINE_UNITS`` storage
    positions): two cores that wrote the same line would move it between their caches at
    every event (a 10-unit readout split 5/5 took 2x its one-core time on 2 cores). A layer
    smaller than a line runs on one core; the others get empty shares."""
    pos = np.sort(perm[np.nonzero(active)[0]])
    if partition == "static":
        n = perm.shape[0]
        edges = np.minimum(-(-split(n, cores) // LINE_UNITS) * LINE_UNITS, n)
        edges[-1] = n
        return [pos[(pos >= edges[c]) & (pos < edges[c + 1])] for c in range(cores)]
    n = pos.shape[0]
    line = pos // LINE_UNITS
    # the indices where a new line starts (0 and n included): the only places to cut
    cuts = np.concatenate([[0], np.nonzero(np.diff(line))[0] + 1, [n]])
    edges = split(n, cores)
    for c in range(1, cores):
        near = cuts[np.argmin(np.abs(cuts - edges[c]) * 2 - (cuts > edges[c]))]
        edges[c] = max(int(near), int(edges[c - 1]))
    return [pos[edges[c]:edges[c + 1]] for c in range(cores)]


class Builder:
    """Collects tasks (ranges + ops) and phases into columnar arrays."""

    def __init__(self, cores: int, dtype: str):
        self.cores = cores
        self.kinds = op_kinds(dtype)
        self._op = {base: i for i, base in enumerate(BASE_OPS)}
        self.addr: list[np.ndarray] = []
        self.length: list[np.ndarray] = []
        self.write: list[np.ndarray] = []
        self.counts: list[int] = []
        self.task_core: list[int] = []
        self.task_phase: list[int] = []
        self.ops: list[np.ndarray] = []
        self.phase_names: list[str] = []
        self.info: dict[str, list[int]] = {"sample": [], "timestep": [], "layer": []}
        self.n_accesses = 0
        self.calls: list[int] = []  # access index (build order) where a kernel call begins

    def phase(self, name: str, sample: int, t: int, layer: int) -> int:
        self.phase_names.append(name)
        self.info["sample"].append(sample)
        self.info["timestep"].append(t)
        self.info["layer"].append(layer)
        return len(self.phase_names) - 1

    def task(self, phase: int, core: int, parts: list[tuple], ops: dict[str, float],
             calls: tuple[int, ...] = ()) -> None:
        """``parts``: (addresses, lengths, write flag(s)) groups in program order;
        ``calls``: the indices of the parts at which the driver's call of a compiled kernel
        begins (recorded as ``meta["kernel_calls"]``: the windows the cachegrind reference
        counts)."""
        a, n, w = [], [], []
        for p in parts:
            addr = np.asarray(p[0], np.int64)
            a.append(addr.ravel())
            n.append(expand(p[1], addr.shape, np.int64).ravel())
            w.append(expand(p[2], addr.shape, np.bool_).ravel())
        addr = np.concatenate(a) if a else np.zeros(0, np.int64)
        ln = np.concatenate(n) if n else np.zeros(0, np.int64)
        wr = np.concatenate(w) if w else np.zeros(0, np.bool_)
        if ln.size and ln.min() < 1:  # empty ranges are dropped
            keep = ln > 0
            addr, ln, wr = addr[keep], ln[keep], wr[keep]
            kept = np.concatenate([[0], np.cumsum(keep)])
        else:
            kept = np.arange(ln.size + 1)
        if calls:
            edges = np.concatenate([[0], np.cumsum([x.shape[0] for x in a])]).astype(np.int64)
            self.calls += [self.n_accesses + int(kept[edges[i]]) for i in calls]
        self.n_accesses += int(ln.size)
        self.addr.append(addr)
        self.length.append(ln)
        self.write.append(wr)
        self.counts.append(int(ln.size))
        self.task_core.append(core)
        self.task_phase.append(phase)
        row = np.zeros(len(BASE_OPS))
        for k, v in ops.items():
            row[self._op[k]] += v
        self.ops.append(row)

    def build(self, meta: dict) -> Workload:
        z = np.zeros(0, np.int64)
        return Workload(
            np.concatenate(self.addr) if self.addr else z,
            np.concatenate(self.length) if self.length else z,
            np.concatenate(self.write) if self.write else np.zeros(0, np.bool_),
            np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64),
            np.asarray(self.task_core, np.int32), np.asarray(self.task_phase, np.int32),
            np.asarray(self.ops, np.float64).reshape(-1, len(BASE_OPS)), self.kinds,
            self.phase_names, self.cores,
            {k: np.asarray(v, np.int64) for k, v in self.info.items()},
            dict(meta, kernel_calls=np.asarray(self.calls, np.int64)))


def interleave(*parts: tuple) -> list[tuple]:
    """Interleave same-shaped range groups item by item (item i of each group in turn):
    one part whose write flags are an array."""
    if not parts or np.size(parts[0][0]) == 0:
        return []
    shape = np.shape(parts[0][0])
    addr = np.stack([expand(p[0], shape) for p in parts], -1)
    ln = np.stack([expand(p[1], shape) for p in parts], -1)
    wr = expand(np.array([p[2] for p in parts]), addr.shape)
    return [(addr.ravel(), ln.ravel(), wr.ravel())]
