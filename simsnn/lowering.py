"""Lowering: network + memory layout + trace -> hwmodels Workload.

It describes the event-driven program exactly as the measurement backend runs it (see
docs/workload.md): per sample, per layer and time step (a phase), each core processes all input
events against its share of the open output units: for every event (ascending unit index) and
every segment of consecutive open units it reads the weight row segment and updates the current
segment; then it updates the membranes of its open units and appends its spikes to the layer's
event list. Closed (gated-off) units are neither read nor updated.
"""
from __future__ import annotations

import numpy as np

from hwmodels.spec import TAIL_BLOCKS
from hwmodels.workload import Workload
from simsnn.config.layout import LayoutConfig
from simsnn.errors import NetworkError
from simsnn.layout import LayerLayout, NetworkLayout, build_layout
from simsnn.network import AnyNetwork, Ensemble, Network
from simsnn.replay import _pool_any
from simsnn.trace import SpikeTrace

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


class _Builder:
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

    def phase(self, name: str, sample: int, t: int, layer: int) -> int:
        self.phase_names.append(name)
        self.info["sample"].append(sample)
        self.info["timestep"].append(t)
        self.info["layer"].append(layer)
        return len(self.phase_names) - 1

    def task(self, phase: int, core: int, parts: list[tuple], ops: dict[str, float]) -> None:
        """``parts``: (addresses, lengths, write flag(s)) groups in program order."""
        a, n, w = [], [], []
        for p in parts:
            addr = np.asarray(p[0], np.int64)
            a.append(addr.ravel())
            n.append(np.broadcast_to(np.asarray(p[1], np.int64), addr.shape).ravel())
            w.append(np.broadcast_to(np.asarray(p[2], np.bool_), addr.shape).ravel())
        addr = np.concatenate(a) if a else np.zeros(0, np.int64)
        ln = np.concatenate(n) if n else np.zeros(0, np.int64)
        keep = ln > 0
        self.addr.append(addr[keep])
        self.length.append(ln[keep])
        self.write.append((np.concatenate(w) if w else np.zeros(0, np.bool_))[keep])
        self.counts.append(int(keep.sum()))
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
            {k: np.asarray(v, np.int64) for k, v in self.info.items()}, meta)


def _interleave(*parts: tuple) -> list[tuple]:
    """Interleave same-shaped range groups item by item (item i of each group in turn):
    one part whose write flags are an array."""
    if not parts or np.size(parts[0][0]) == 0:
        return []
    shape = np.shape(parts[0][0])
    addr = np.stack([np.broadcast_to(p[0], shape) for p in parts], -1)
    ln = np.stack([np.broadcast_to(p[1], shape) for p in parts], -1)
    wr = np.broadcast_to(np.array([p[2] for p in parts]), addr.shape)
    return [(addr.ravel(), ln.ravel(), wr.ravel())]


class _Lowerer:
    def __init__(self, net: AnyNetwork, layout: NetworkLayout, cores: int):
        self.net, self.lay, self.cores = net, layout, cores
        self.cfg = layout.config
        self.b = _Builder(cores, {4: "fp32", 2: "fp16", 1: "int8"}[layout.weight_bytes])
        self.wb = layout.weight_bytes
        self.layer_names: list[str] = ["input"]
        self.gate_layer = -1

    def _layer_id(self, key: str) -> int:
        if key not in self.layer_names:
            self.layer_names.append(key)
        return self.layer_names.index(key)

    # -- unit shares of each core ------------------------------------------------------
    def shares(self, ll: LayerLayout, active: np.ndarray) -> list[np.ndarray]:
        return unit_shares(ll.perm, active, self.cores, self.cfg.partition)

    # -- phases ----------------------------------------------------------------------------
    def _calls(self, t: int) -> bool:
        """Whether the driver calls compiled code at the phase of time step ``t`` (``call``
        operation, on core 0's task): layer_major runs all steps of a layer in one call (at
        its first step), step_major calls each step's phase."""
        return t == 0 or self.lay.config.schedule == "step_major"

    def input_phase(self, sample: int, t: int, x_t: np.ndarray) -> None:
        ph = self.b.phase("input", sample, t, 0)
        base, _ = self.lay.regions["input"]
        ev_base, _ = self.lay.regions["input.events"]
        flat = x_t.ravel()
        edges = split(flat.shape[0], self.cores)
        offset = 0
        for c in range(self.cores):
            a, z = edges[c], edges[c + 1]
            nz = int(flat[a:z].sum())
            parts = [(np.array([base + 4 * a]), np.array([4 * (z - a)]), False),
                     (np.array([ev_base + 8 * offset]), np.array([8 * nz]), True)]
            offset += nz
            ops = {"input_op": z - a}
            if c == 0 and self._calls(t):
                ops["call"] = 1  # the driver's call of the compiled encoder
            self.b.task(ph, c, parts, ops)

    def _small_mlp(self, region: str, n_in: int, rows_in: np.ndarray, hidden: int,
                   n_out: int, act: str | None) -> tuple[list[tuple], dict[str, float]]:
        """Reads and operations of the compiled small MLP (simsnn.host.kernels.gate_mlp) stored
        at ``region`` (w1 (n_in, hidden), b1, then for a two-layer MLP w2 (hidden, n_out),
        b2): one weight row per non-zero input (``rows_in``, ascending) and the bias row;
        with ``act``, the activation of every hidden unit and a row of w2 for each non-zero
        one. The trace does not hold the hidden values, so every hidden unit counts as
        non-zero (exact for a sigmoid, an upper bound for a relu). Every input is scanned
        (``input_op``: the kernel finds the non-zero ones branch-free, as the encoder
        does)."""
        wbase, _ = self.lay.regions[region]
        wb = self.wb
        w1_row = hidden * wb
        b1 = wbase + n_in * w1_row
        parts = [(wbase + rows_in * w1_row, np.full(rows_in.shape, w1_row), False),
                 (np.array([b1]), np.array([w1_row]), False)]
        ops = {"gate_call": 1, "gate_row": rows_in.shape[0] + 1,
               "gate_op": (rows_in.shape[0] + 1) * hidden,
               "input_op": n_in}  # the branch-free scan for the non-zero inputs
        if act is not None:
            w2 = b1 + w1_row
            parts.append((np.array([w2]), np.array([(hidden + 1) * n_out * wb]), False))
            ops["gate_row"] += hidden + 1
            ops["gate_op"] += (hidden + 1) * n_out
            ops[f"gate_act.{act}"] = hidden
        return parts, ops

    def gate_phase(self, sample: int, net: Network, feature_region: str,
                   nonzero: np.ndarray, n_events: int) -> None:
        """The gate, once per inference: its features (``nonzero`` marks those not zero; a
        gate after layer 0 first sums the ``n_events`` events of every step into them and
        divides by the step count), its small MLP over the non-zero ones, then the top-k
        selection."""
        g = net.gate
        ph = self.b.phase("gate", sample, -1, self._layer_id("gate"))
        fb, _ = self.lay.regions[feature_region]
        parts = [(np.array([fb]), np.array([4 * g.num_features]), False)]
        ops: dict[str, float] = {}
        if g.position > 0:  # measure's kernels.rate_features: zero, add the events, divide
            parts = [(np.array([fb]), np.array([4 * g.num_features]), True)] + parts
            ops = {"pool_op": n_events, "input_op": g.num_features}
        if g.kind != "oracle":
            mlp = g.kind == "mlp"
            more, mlp_ops = self._small_mlp("gate.weights", g.num_features,
                                            np.nonzero(nonzero)[0], g.hidden if mlp else
                                            g.num_classes, g.num_classes,
                                            "relu" if mlp else None)
            parts += more
            for k, v in mlp_ops.items():
                ops[k] = ops.get(k, 0) + v
            ops["gate_select"] = 1
        ops["call"] = 1
        self.b.task(ph, 0, parts, ops)

    def aggregator_phase(self, sample: int, net: Ensemble) -> None:
        """The ensemble's aggregator MLP on the members' scores, once per inference (the
        scores are never exactly zero: every input row is read)."""
        a = net.aggregator
        ph = self.b.phase("aggregator", sample, -1, self._layer_id("aggregator"))
        parts, ops = self._small_mlp("aggregator", a.in_features, np.arange(a.in_features),
                                     a.hidden, a.out_features, a.activation)
        ops["call"] = 1
        self.b.task(ph, 0, parts, ops)

    def synaptic_phase(self, sample: int, t: int, ll: LayerLayout, ev_region: tuple[int, int],
                       ev_bytes: int, x_t: np.ndarray, active: np.ndarray,
                       spikes_t: np.ndarray | None) -> None:
        layer = ll.layer
        ph = self.b.phase(ll.key, sample, t, self._layer_id(ll.key))
        events = np.nonzero(x_t.ravel())[0]
        n_ev = events.shape[0]
        w_base = ll.base("weights")
        cur, state = ll.base("current"), ll.base("state")
        spike_pos = None
        if spikes_t is not None:
            spike_pos = ll.perm[np.nonzero(spikes_t.reshape(ll.perm.shape[0], -1).any(1))[0]] \
                if ll.kind == "conv" else ll.perm[np.nonzero(spikes_t)[0]]
        out_offset = 0
        op_kind = "synop" if ll.binary_inputs else "mac"
        for c, pos in enumerate(self.shares(ll, active)):
            s0, sl = segments(pos)
            parts: list[tuple] = []
            unaligned = 0
            if n_ev:
                parts.append((np.array([ev_region[0]]), np.array([ev_bytes * n_ev]), False))
            if ll.kind == "conv":
                o, ho, wo = layer.out_shape
                npos = ho * wo
                # current = bias (or 0) at every position's open runs (HWO layout)
                p = np.arange(npos)[:, None] * o
                ca = cur + 4 * (p + s0[None, :])
                cl = np.broadcast_to(4 * sl[None, :], ca.shape)
                if layer.has_bias:
                    ba = np.broadcast_to(ll.base("bias") + self.wb * s0[None, :], ca.shape)
                    parts += _interleave((ba, np.broadcast_to(self.wb * sl[None, :], ca.shape),
                                          False), (ca, cl, True))
                else:
                    parts.append((ca, cl, True))
                more, visits, unaligned = self._conv_parts(ll, events, s0, sl)
                parts += more
                syn = visits * pos.shape[0]
                upd = pos.shape[0] * npos
                runs = npos * s0.size  # the init and update loops' runs
                # neuron update: every output position x every open run
                sa = state + 4 * (p + s0[None, :])
                parts += _interleave((ca, cl, False), (sa, cl, False), (sa, cl, True))
            else:
                parts.append((cur + 4 * s0, 4 * sl, True))  # current = bias (or 0)
                if layer.has_bias:
                    parts.insert(-1, (ll.base("bias") + self.wb * s0, self.wb * sl, False))
                if n_ev and s0.size:
                    rows = ll.in_perm[events]
                    if self.cfg.order == "row":
                        w_addr = w_base + (rows[:, None] * layer.out_features + s0[None, :]) \
                            * self.wb
                        w_len = np.broadcast_to(self.wb * sl[None, :], w_addr.shape)
                    else:  # output-major: one element per open unit
                        w_addr = w_base + (pos[None, :] * layer.in_features + rows[:, None]) \
                            * self.wb
                        w_len = np.full(w_addr.shape, self.wb)
                    if self.cfg.order == "row":
                        off = (w_addr % VECTOR_ALIGN != 0) | \
                            ((cur + 4 * s0[None, :]) % VECTOR_ALIGN != 0)
                        unaligned = int((off * sl[None, :]).sum())
                        c_addr = np.broadcast_to(cur + 4 * s0[None, :], w_addr.shape)
                        c_len = np.broadcast_to(4 * sl[None, :], w_addr.shape)
                        parts += _interleave((w_addr, w_len, False), (c_addr, c_len, False),
                                             (c_addr, c_len, True))
                    else:
                        parts.append((w_addr, w_len, False))
                        ca = np.broadcast_to(cur + 4 * s0[None, :], (n_ev, s0.size))
                        cl = np.broadcast_to(4 * sl[None, :], (n_ev, s0.size))
                        parts += _interleave((ca, cl, False), (ca, cl, True))
                syn = n_ev * pos.shape[0]
                upd = pos.shape[0]
                visits, runs = n_ev, s0.size
                if ll.kind == "readout":
                    parts += _interleave((cur + 4 * s0, 4 * sl, False),
                                         (state + 4 * s0, 4 * sl, False),
                                         (state + 4 * s0, 4 * sl, True))
                else:
                    parts += _interleave((cur + 4 * s0, 4 * sl, False),
                                         (state + 4 * s0, 4 * sl, False),
                                         (state + 4 * s0, 4 * sl, True))
            # segment: one visit of a run of open units per row an event reads (a dense
            # layer's event reads one row, a convolution's event one per valid tap: conv_tap)
            ops = {"event" if ll.kind != "conv" else "conv_event": n_ev, op_kind: syn,
                   "segment": visits * s0.size, "unaligned": unaligned,
                   "update_run": 2 * runs}  # the current's init and the update, per run
            if ll.kind == "conv":
                ops["conv_tap"] = visits
            for b in TAIL_BLOCKS:  # elements past each run's last full vector block
                ops[f"tail{b}"] = visits * int((sl % b).sum())
            if c == 0 and self._calls(t):
                ops["call"] = 1  # the driver's call of the layer's compiled kernel
            if c == 0 and spikes_t is not None:
                # the driver's merge of every core's spikes into the next layer's sorted
                # event list, once after the layer (simsnn.host.kernels.merge_events)
                ops["spike" if ll.kind != "conv" else "conv_spike"] = \
                    int(np.count_nonzero(spikes_t))
            ops["readout_op" if ll.kind == "readout" else "neuron_update"] = upd
            if spike_pos is not None and pos.size:
                n_sp = int(np.isin(spike_pos, pos).sum()) if ll.kind != "conv" else \
                    int(spikes_t.reshape(layer.out_shape[0], -1)[
                        np.isin(ll.perm, pos)].sum())
                if n_sp:
                    parts.append((np.array([ll.base("events_out") + 4 * out_offset]),
                                  np.array([4 * n_sp]), True))
                    out_offset += n_sp
            self.b.task(ph, c, parts, ops)

    def _conv_taps(self, ll: LayerLayout, events: np.ndarray):
        layer = ll.layer
        c_in, h, w = layer.in_shape
        _, ho, wo = layer.out_shape
        k, s, p = layer.kernel, layer.stride, layer.padding
        ch, rem = np.divmod(events, h * w)
        y, x = np.divmod(rem, w)
        ky, kx = np.divmod(np.arange(k * k), k)
        ny = y[:, None] + p - ky[None, :]
        nx = x[:, None] + p - kx[None, :]
        valid = (ny >= 0) & (nx >= 0) & (ny % s == 0) & (nx % s == 0) & (ny // s < ho) & \
            (nx // s < wo)
        return valid, ch, ny // s, nx // s, ky, kx

    def _conv_parts(self, ll: LayerLayout, events, s0, sl) -> tuple[list[tuple], int, int]:
        """The accumulates of a convolution's events: per event (ascending flat index) and
        valid tap (ky, kx), per open run, the weight row piece (row (c, ky, kx) of the
        (c_in, k, k, O) weights) and the current piece at the output position it reaches
        (read, written). Returns (parts, valid taps, unaligned elements)."""
        if events.size == 0 or s0.size == 0:
            return [], 0, 0
        layer = ll.layer
        o, _, wo = layer.out_shape
        k = layer.kernel
        valid, ch, oy, ox, ky, kx = self._conv_taps(ll, events)
        e_idx, tap = np.nonzero(valid)  # event-major, then tap (ky, kx) order
        cpos = ll.in_perm[ch[e_idx]]
        w_row = ((cpos * k + ky[tap]) * k + kx[tap]) * o
        w_addr = ll.base("weights") + (w_row[:, None] + s0[None, :]) * self.wb
        w_len = np.broadcast_to(self.wb * sl[None, :], w_addr.shape)
        c_idx = (oy[e_idx, tap] * wo + ox[e_idx, tap]) * o
        c_addr = ll.base("current") + 4 * (c_idx[:, None] + s0[None, :])
        c_len = np.broadcast_to(4 * sl[None, :], c_addr.shape)
        off = (w_addr % VECTOR_ALIGN != 0) | (c_addr % VECTOR_ALIGN != 0)
        unaligned = int((off * sl[None, :]).sum())
        return (_interleave((w_addr, w_len, False), (c_addr, c_len, False),
                            (c_addr, c_len, True)), int(e_idx.shape[0]), unaligned)

    def pool_phase(self, sample: int, t: int, ll: LayerLayout, spikes_t: np.ndarray,
                   pooled_t: np.ndarray) -> None:
        """Average pooling as the driver runs it (simsnn.host.kernels.pool_layer, one core):
        zero the window counts (channel-major), add 1 to each input spike's window, then scan
        the counts branch-free and write the non-zero windows as graded events (an index list
        and a value list in the layer's event region)."""
        ph = self.b.phase(ll.key, sample, t, self._layer_id(ll.key))
        layer = ll.layer
        c, h, w = layer.in_shape
        _, hp, wp = layer.out_shape
        ch, y, x = np.nonzero(spikes_t.reshape(c, h, w))
        k = layer.kernel
        keep = (y // k < hp) & (x // k < wp)
        n = c * hp * wp
        base, ev = ll.base("pooled"), ll.base("events_out")
        ent = base + 4 * ((ch[keep] * hp + y[keep] // k) * wp + x[keep] // k)
        n_out = int(np.count_nonzero(pooled_t))
        parts = [(np.array([base]), np.array([4 * n]), True)]
        parts += _interleave((ent, np.full(ent.shape, 4), False),
                             (ent, np.full(ent.shape, 4), True))
        parts += [(np.array([base]), np.array([4 * n]), False),
                  (np.array([ev]), np.array([4 * n_out]), True),
                  (np.array([ev + 4 * n]), np.array([4 * n_out]), True)]
        ops = {"pool_op": int(ch.shape[0]), "input_op": n}
        if self._calls(t):
            ops["call"] = 1
        self.b.task(ph, 0, parts, ops)


def lower(net: AnyNetwork, trace: SpikeTrace, cores: int = 1,
          layout: LayoutConfig | NetworkLayout | None = None) -> Workload:
    """Build the workload of ``net`` replaying ``trace`` on ``cores`` cores."""
    input_binary = net.coding == "rate" or bool(trace.meta.get("input_binary", False))
    lay = layout if isinstance(layout, NetworkLayout) else build_layout(net, layout,
                                                                         input_binary)
    cfg = lay.config
    if "input" not in trace.layers:
        raise NetworkError("the trace has no 'input' layer of input events")
    if cfg.schedule == "step_major" and getattr(net, "gate", None) is not None and \
            net.gate.position > 0:
        raise NetworkError("step_major schedule needs the gate at position 0 (it reads the "
                           "whole-inference spike rate of an earlier layer otherwise)")
    lw = _Lowerer(net, lay, cores)
    n = trace.n_samples if cfg.samples is None else min(cfg.samples, trace.n_samples)
    T = trace.timesteps
    inputs = trace.layers["input"]
    for b in range(n):
        x = inputs[b].reshape((T,) + tuple(net.input_shape))
        phases: list[tuple] = []  # (layer order, t, callable)
        order = 0
        for t in range(T):
            phases.append((order, t, lw.input_phase, (b, t, x[t])))
        order += 1
        for _, member, layers in lay.members:
            cur = x
            ev_region = lay.regions["input.events"]
            ev_bytes = 4 if layers[0].binary_inputs else 8  # index (+ value when graded)
            groups = trace.gate_groups[b] if (member.gate is not None and
                                              trace.gate_groups is not None) else None
            if member.gate is not None and groups is None:
                raise NetworkError(f"{net.name!r} is gated but the trace holds no gate "
                                   f"decisions")
            for i, ll in enumerate(layers):
                if member.gate is not None and i == member.gate.position:
                    feat = "input" if i == 0 else "gate.features"
                    # the features: the input (its values, or with rate coding the pixels
                    # that spiked), or an earlier layer's spike rates: non-zero where any
                    # step has an event
                    flat = np.asarray(cur).reshape(T, -1)
                    phases.append((order, -1, lw.gate_phase,
                                   (b, member, feat, flat.any(axis=0),
                                    int(np.count_nonzero(flat)))))
                    order += 1
                layer = ll.layer
                if ll.kind in ("dense", "conv", "readout"):
                    n_units = layer.out_features if ll.kind != "conv" else layer.out_channels
                    if layer.groups is not None and groups is not None:
                        shared = layer.groups < 0
                        active = shared | groups[np.where(shared, 0, layer.groups)]
                    else:
                        active = np.ones(n_units, bool)
                    spikes = None
                    if ll.kind != "readout":
                        spikes = trace.layers[ll.key][b]
                    for t in range(T):
                        phases.append((order, t, lw.synaptic_phase,
                                       (b, t, ll, ev_region, ev_bytes, cur[t], active,
                                        None if spikes is None else spikes[t])))
                    order += 1
                    if spikes is not None:
                        cur = spikes.reshape((T,) + tuple(layer.out_shape))
                    ev_region, ev_bytes = ll.regions.get("events_out", (0, 0)), 4
                elif ll.kind == "pool":
                    pooled = _pool_any(cur[None], layer)[0]
                    for t in range(T):
                        phases.append((order, t, lw.pool_phase, (b, t, ll, cur[t], pooled[t])))
                    order += 1
                    cur = pooled
                    ev_region, ev_bytes = ll.regions["events_out"], 8
                else:  # flatten
                    cur = cur.reshape(T, -1)
        if isinstance(net, Ensemble):
            phases.append((order, T - 1, lw.aggregator_phase, (b, net)))
        if cfg.schedule == "step_major":
            phases.sort(key=lambda p: (max(p[1], 0), p[0]))
        for _, _, fn, args in phases:
            fn(*args)
    meta = {"network": net.name, "family": net.family, "samples": n, "timesteps": T,
            "cores": cores, "layout": cfg.model_dump(), "weight_bytes": lay.weight_bytes,
            "footprint_bytes": lay.total_bytes, "layer_names": lw.layer_names,
            "regions": {k: list(v) for k, v in lay.regions.items()}}
    return lw.b.build(meta)
