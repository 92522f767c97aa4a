"""The phases of one inference as the measured program runs them, lowered to tasks: the input
encoder, the gate, each layer's time steps (per core: the events against its open runs, the
neuron updates, its spike list; the driver's merge of the lists after the layer's last step),
the average pooling and the aggregator. Memory accesses come from simsnn.accesses, in each
kernel's order; operations are counted per task (docs/workload.md)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from hwmodels.spec import TAIL_BLOCKS
from simsnn import accesses as acc
from simsnn.layout import LayerLayout, NetworkLayout
from simsnn.network import AnyNetwork, Ensemble, Network
from simsnn.workload_builder import (
    VECTOR_ALIGN,
    Builder,
    expand,
    interleave,
    segments,
    unit_shares,
)


class Lowerer:
    """Collects the phases of a workload (one :class:`Builder`) for ``net`` laid out as
    ``layout`` on ``cores`` cores."""

    def __init__(self, net: AnyNetwork, layout: NetworkLayout, cores: int):
        self.net, self.lay, self.cores = net, layout, cores
        self.cfg = layout.config
        self.b = Builder(cores, {4: "fp32", 2: "fp16", 1: "int8"}[layout.weight_bytes])
        self.wb = layout.weight_bytes
        self.T = layout.steps
        self.layer_names: list[str] = ["input"]
        r = layout.regions
        self.spikes, self.count = r["spikes"][0], r["spikes.count"][0]
        self.first = r["merge.first"][0]
        self._memo: dict = {}  # per layer (and open set): see _cores_of

    def _layer_id(self, key: str) -> int:
        if key not in self.layer_names:
            self.layer_names.append(key)
        return self.layer_names.index(key)

    def shares(self, ll: LayerLayout, active: np.ndarray) -> list[np.ndarray]:
        return [c.pos for c in self._cores_of(ll, active)]

    def _cores_of(self, ll: LayerLayout, active: np.ndarray) -> list[SimpleNamespace]:
        """Per core what its share of ``ll`` with ``active`` open units fixes for every step
        and sample (its storage positions, their runs, the current, state and bias pieces
        and the step's fixed parts), computed once per layer and open set: the same arrays,
        read-only, at every step."""
        key = (ll.key, active.tobytes())
        got = self._memo.get(key)
        if got is not None:
            return got
        layer = ll.layer
        n_pos = int(np.prod(layer.out_shape[1:])) if ll.kind == "conv" else 1
        n_units = ll.perm.shape[0]
        cur, state = ll.base("current"), ll.base("state")
        p = np.arange(n_pos)[:, None] * n_units
        out = []
        for pos in unit_shares(ll.perm, active, self.cores, self.cfg.partition):
            s0, sl = segments(pos)
            ca = cur + 4 * (p + s0[None, :])  # (positions, runs)
            cl = expand(4 * sl[None, :], ca.shape)
            sa = state + 4 * (p + s0[None, :])
            if layer.has_bias:  # current = bias (widened) at every position's open runs
                ba = expand(ll.base("bias") + self.wb * s0[None, :], ca.shape)
                init = interleave((ba, expand(self.wb * sl[None, :], ca.shape), False),
                                  (ca, cl, True))
            else:
                init = [(ca, cl, True)]
            update = interleave((ca, cl, False), (sa, cl, False), (sa, cl, True))
            c = SimpleNamespace(pos=pos, s0=s0, sl=sl, zero=[(sa, cl, True)], init=init,
                                update=update)
            for arr in (pos, s0, sl, ca, cl, sa):
                arr.flags.writeable = False
            out.append(c)
        self._memo[key] = out
        return out

    def _inverse(self, ll: LayerLayout) -> np.ndarray:
        """Storage position -> unit of ``ll`` (computed once)."""
        key = ("inv", ll.key)
        if key not in self._memo:
            self._memo[key] = np.argsort(ll.perm)
        return self._memo[key]

    def _calls(self, t: int) -> bool:
        """Whether the driver calls compiled code at the phase of time step ``t`` (``call``
        operation, on core 0's task): layer_major runs all steps of a layer in one call (at
        its first step), step_major calls each step's phase."""
        return t == 0 or self.cfg.schedule == "step_major"

    def input_source(self) -> tuple[int, int, int]:
        """(index lists, value lists, list length) of the input events."""
        base, _ = self.lay.regions["input.events"]
        n = int(np.prod(self.net.input_shape))
        return base, base + 4 * self.T * n, n

    def layer_source(self, ll: LayerLayout) -> tuple[int, int, int]:
        """The event lists a layer writes: a spiking layer's unit indices, a pool's indices
        then values."""
        base, _ = ll.regions["events_out"]
        n = int(np.prod(ll.layer.out_shape))
        return base, base + 4 * self.T * n, n

    # -- the input and the small MLPs --------------------------------------------------------
    def input_phase(self, sample: int, t: int, x_t: np.ndarray) -> None:
        """The encoder (kernels.encode_input, the driver's core) at step ``t``."""
        ph = self.b.phase("input", sample, t, 0)
        idx, val, n = self.input_source()
        base, _ = self.lay.regions["input"]
        parts = acc.encoder(base + 4 * t * n, idx + 4 * t * n, val + 4 * t * n, n,
                            int(np.count_nonzero(x_t)))
        ops = {"input_op": n}
        calls: tuple[int, ...] = ()
        if self._calls(t):
            ops["call"] = 1  # the driver's call of the compiled encoder
            calls = (0,)
        self.b.task(ph, 0, parts, ops, calls)

    def _small_mlp(self, region: str, n_in: int, rows_in: np.ndarray, hidden: int,
                   n_out: int, act: str | None) -> tuple[list[tuple], dict[str, float]]:
        """Reads and operations of the compiled small MLP (simsnn.host.kernels.gate_mlp)
        stored at ``region`` (w1 (n_in, hidden), b1, then for a two-layer MLP w2 (hidden,
        n_out), b2): one weight row per non-zero input (``rows_in``, ascending) and the bias
        row; with ``act``, the activation of every hidden unit and a row of w2 for each
        non-zero one. The trace does not hold the hidden values, so every hidden unit counts
        as non-zero (exact for a sigmoid, an upper bound for a relu). Every input is scanned
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

    def gate_phase(self, sample: int, net: Network, src: tuple | None, cur: np.ndarray,
                   graded: bool) -> None:
        """The gate, once per inference: its features (at position 0 the input's, copied to
        the features region by the driver; later, kernels.rate_features over the events of
        every step, ``cur`` (T, ...), from ``src``), its small MLP over the non-zero ones,
        then the top-k selection."""
        g = net.gate
        ph = self.b.phase("gate", sample, -1, self._layer_id("gate"))
        fb, _ = self.lay.regions["gate.features"]
        flat = np.asarray(cur).reshape(cur.shape[0], -1)
        ops: dict[str, float] = {}
        calls = [0]  # kernels.rate_features (after layer 0) or the small MLP
        if g.position > 0:
            per_step = [np.nonzero(flat[t])[0] for t in range(flat.shape[0])]
            parts = acc.rate_features(src, per_step, graded, fb, g.num_features)
            ops = {"pool_op": int(sum(e.shape[0] for e in per_step)),
                   "input_op": g.num_features}
            calls.append(len(parts))  # the small MLP reads the features first
            parts.append((np.array([fb]), np.array([4 * g.num_features]), False))
        else:
            parts = [(np.array([fb]), np.array([4 * g.num_features]), False)]
        if g.kind != "oracle":
            mlp = g.kind == "mlp"
            more, mlp_ops = self._small_mlp("gate.weights", g.num_features,
                                            np.nonzero(flat.any(axis=0))[0],
                                            g.hidden if mlp else g.num_classes,
                                            g.num_classes, "relu" if mlp else None)
            parts += more
            for k, v in mlp_ops.items():
                ops[k] = ops.get(k, 0) + v
            ops["gate_select"] = 1
        ops["call"] = 1
        self.b.task(ph, 0, parts, ops, tuple(calls))

    def aggregator_phase(self, sample: int, net: Ensemble) -> None:
        """The ensemble's aggregator MLP on the members' scores, once per inference (the
        scores are never exactly zero: every input row is read)."""
        a = net.aggregator
        ph = self.b.phase("aggregator", sample, -1, self._layer_id("aggregator"))
        parts, ops = self._small_mlp("aggregator", a.in_features, np.arange(a.in_features),
                                     a.hidden, a.out_features, a.activation)
        ops["call"] = 1
        self.b.task(ph, 0, parts, ops, (0,))

    # -- a dense or convolution layer at one step ---------------------------------------------
    def synaptic_phase(self, sample: int, t: int, ll: LayerLayout, src: tuple,
                       x_t: np.ndarray, active: np.ndarray, spikes: np.ndarray | None) -> None:
        """Every core's share of layer ``ll`` at step ``t`` (kernels.layer_cores,
        conv_cores): ``x_t`` the step's input events (in unit order) from ``src``, ``active``
        the open units, ``spikes`` the layer's spikes of every step (None for a readout).
        After the last step core 0 also merges the cores' spike lists (the driver's call
        after the layer's kernel returns)."""
        layer = ll.layer
        ph = self.b.phase(ll.key, sample, t, self._layer_id(ll.key))
        events = np.nonzero(x_t.ravel())[0]
        n_ev = events.shape[0]
        graded = not ll.binary_inputs
        conv = ll.kind == "conv"
        n_pos = int(np.prod(layer.out_shape[1:])) if conv else 1
        n_units = ll.perm.shape[0]
        spk_t = None
        if spikes is not None:
            spk_t = spikes[t].reshape(n_units, n_pos)
        inv = self._inverse(ll)  # storage position -> unit
        for c, share in enumerate(self._cores_of(ll, active)):
            pos, s0, sl = share.pos, share.s0, share.sl
            # the kernel's first loop, once per inference: every open unit's state set to 0,
            # then the current set to the bias (or 0) at every position's open runs
            parts = (share.zero if t == 0 else []) + share.init
            if conv:
                more, visits, unaligned = self._conv_events(ll, src, t, events, s0, sl,
                                                            graded)
            else:
                more, visits, unaligned = self._dense_events(ll, src, t, events, s0, sl,
                                                             graded)
            parts += more
            parts += share.update
            n_upd = pos.shape[0] * n_pos
            if spk_t is not None:
                # the update's order: position-major, then the core's runs in storage order
                pp, _ = np.nonzero(spk_t[inv[pos]].T)  # (share units, positions)
                parts += acc.spike_slots(self.spikes, self.count, c, t, self.T,
                                         self.lay.units, int(pp.shape[0]), n_upd)
            ops = {"conv_event" if conv else "event": n_ev,
                   "synop" if not graded else "mac": visits * pos.shape[0],
                   "segment": visits * s0.size, "unaligned": unaligned,
                   # the current's init and the update visit every run at every position
                   # (and at the first step the state's init)
                   "update_run": (3 if t == 0 else 2) * n_pos * s0.size,
                   "readout_op" if ll.kind == "readout" else "neuron_update": n_upd}
            if conv:
                ops["conv_tap"] = visits
            for b in TAIL_BLOCKS:  # elements past each run's last full vector block
                ops[f"tail{b}"] = visits * int((sl % b).sum())
            calls = []
            if c == 0 and self._calls(t):
                ops["call"] = 1  # the driver's call of the layer's compiled kernel
                calls.append(0)
            if c == 0 and spikes is not None and t == self.T - 1:
                calls.append(len(parts))  # the merge: the driver's next call
                parts += self._merge(ll, spikes, active)
                ops["conv_spike" if conv else "spike"] = int(np.count_nonzero(spikes))
            self.b.task(ph, c, parts, ops, tuple(calls))

    def _dense_events(self, ll: LayerLayout, src: tuple, t: int, events: np.ndarray, s0, sl,
                      graded: bool) -> tuple[list[tuple], int, int]:
        """A dense layer's events on one core's runs: per event its index, value, row, then
        per run the weight row piece and the current piece (read, written)."""
        layer = ll.layer
        n_ev = events.shape[0]
        if n_ev == 0 or s0.size == 0:
            return [], 0, 0
        rows = ll.in_perm[events]
        heads = acc.event_heads(src, t, np.arange(n_ev), events, ll.base("in_perm"), graded)
        w_base = ll.base("weights")
        cur = ll.base("current")
        if self.cfg.order == "row":
            w_addr = w_base + (rows[:, None] * layer.out_features + s0[None, :]) * self.wb
            c_run = cur + 4 * s0
            off = (w_addr % VECTOR_ALIGN != 0) | (c_run[None, :] % VECTOR_ALIGN != 0)
            unaligned = int((off * sl[None, :]).sum())
            # per event: its heads, then per run the weight piece and the current piece (read,
            # written); written straight into the (events, accesses) matrices
            nh = len(heads)
            k = nh + 3 * s0.size
            a = np.empty((n_ev, k), np.int64)
            ln = np.empty((n_ev, k), np.int64)
            wr = np.zeros(k, np.bool_)
            for j, (ha, hl, hw) in enumerate(heads):
                a[:, j] = ha
                ln[:, j] = hl
                wr[j] = hw
            a[:, nh::3] = w_addr
            a[:, nh + 1::3] = c_run
            a[:, nh + 2::3] = c_run
            ln[:, nh::3] = self.wb * sl
            ln[:, nh + 1::3] = 4 * sl
            ln[:, nh + 2::3] = 4 * sl
            wr[nh + 2::3] = True
            return [(a.ravel(), ln.ravel(), np.tile(wr, n_ev))], n_ev, unaligned
        else:  # output-major: one element per open unit (the simulator only)
            pos = np.concatenate([np.arange(a, a + n) for a, n in zip(s0, sl)])
            w_addr = w_base + (pos[None, :] * layer.in_features + rows[:, None]) * self.wb
            ca = expand(cur + 4 * s0[None, :], (n_ev, s0.size))
            cl = expand(4 * sl[None, :], (n_ev, s0.size))
            body = acc.rows((w_addr, self.wb, False), (ca, cl, False), (ca, cl, True))[0]
            unaligned = 0
        k = body[0].shape[0] // n_ev
        return acc.rows(*heads, (body[0].reshape(n_ev, k), body[1].reshape(n_ev, k),
                                 body[2].reshape(n_ev, k))), n_ev, unaligned

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

    def _conv_events(self, ll: LayerLayout, src: tuple, t: int, events: np.ndarray, s0, sl,
                     graded: bool) -> tuple[list[tuple], int, int]:
        """A convolution's events on one core's runs: per event (ascending flat index) its
        index, value and channel's row block, then per valid tap (ky, kx) and open run the
        weight row piece (row (c, ky, kx) of the (c_in, k, k, O) weights) and the current
        piece at the output position it reaches (read, written). Returns (parts, valid
        taps, unaligned elements)."""
        n_ev = events.shape[0]
        if n_ev == 0 or s0.size == 0:
            return [], 0, 0
        layer = ll.layer
        o, _, wo = layer.out_shape
        k = layer.kernel
        valid, ch, oy, ox, ky, kx = self._conv_taps(ll, events)
        e_idx, tap = np.nonzero(valid)  # event-major, then tap (ky, kx) order
        cpos = ll.in_perm[ch[e_idx]]
        w_row = ((cpos * k + ky[tap]) * k + kx[tap]) * o
        w_addr = ll.base("weights") + (w_row[:, None] + s0[None, :]) * self.wb
        w_len = expand(self.wb * sl[None, :], w_addr.shape)
        c_idx = (oy[e_idx, tap] * wo + ox[e_idx, tap]) * o
        c_addr = ll.base("current") + 4 * (c_idx[:, None] + s0[None, :])
        c_len = expand(4 * sl[None, :], c_addr.shape)
        off = (w_addr % VECTOR_ALIGN != 0) | (c_addr % VECTOR_ALIGN != 0)
        unaligned = int((off * sl[None, :]).sum())
        body = interleave((w_addr, w_len, False), (c_addr, c_len, False),
                          (c_addr, c_len, True))[0]
        per = 3 * s0.size  # accesses per valid tap
        heads = acc.event_heads(src, t, np.arange(n_ev), ch, ll.base("in_perm"), graded)
        groups = [(np.arange(n_ev), r, np.asarray(a, np.int64).ravel(), ln, wr)
                  for r, (a, ln, wr) in enumerate(heads)]
        rank = len(heads) + np.arange(e_idx.shape[0] * per)  # taps in order after the heads
        groups.append((np.repeat(e_idx, per), rank, body[0], body[1], body[2]))
        return acc.ordered(groups), int(e_idx.shape[0]), unaligned

    def _merge(self, ll: LayerLayout, spikes: np.ndarray, active: np.ndarray) -> list[tuple]:
        """The driver's merge of the cores' spike lists of every step into the layer's
        sorted event lists (kernels.merge_events; merge_conv_events)."""
        idx, _, stride = self.layer_source(ll)
        n_units = ll.perm.shape[0]
        n_pos = stride // n_units
        shares = self.shares(ll, active)
        inv = np.argsort(ll.perm)
        per_step = []
        for t in range(spikes.shape[0]):
            on = spikes[t].reshape(n_units, n_pos)
            lists = []
            for pos in shares:
                pp, uu = np.nonzero(on[inv[pos]].T)
                lists.append((pos[uu], pp))
            per_step.append(lists)
        if ll.kind == "conv":
            return acc.conv_merge(self.spikes, self.count, ll.base("inv_perm"), self.first,
                                  idx, stride, self.T, self.lay.units, n_units, n_pos,
                                  per_step, inv)
        return acc.merge(self.spikes, self.count, ll.base("inv_perm"), idx, stride, self.T,
                         self.lay.units, [[s for s, _ in lists] for lists in per_step])

    # -- average pooling -------------------------------------------------------------------
    def pool_phase(self, sample: int, t: int, ll: LayerLayout, src: tuple,
                   spikes_t: np.ndarray, pooled_t: np.ndarray) -> None:
        """Average pooling as the driver runs it (kernels.pool_layer, one core): zero the
        window counts (channel-major), add 1 to each input spike's window, then scan the
        counts branch-free and write the non-zero windows as graded events."""
        ph = self.b.phase(ll.key, sample, t, self._layer_id(ll.key))
        layer = ll.layer
        c, h, w = layer.in_shape
        _, hp, wp = layer.out_shape
        ev = np.nonzero(spikes_t.ravel())[0]
        ch, rem = np.divmod(ev, h * w)
        y, x = np.divmod(rem, w)
        k = layer.kernel
        inside = (y // k < hp) & (x // k < wp)
        win = np.where(inside, (ch * hp + y // k) * wp + x // k, -1)
        n = c * hp * wp
        parts = acc.pool(src, t, ev.shape[0], win, ll.base("pooled"), n,
                         self.layer_source(ll), int(np.count_nonzero(pooled_t)))
        ops = {"pool_op": int(ev.shape[0]), "input_op": n}
        calls: tuple[int, ...] = ()
        if self._calls(t):
            ops["call"] = 1
            calls = (0,)
        self.b.task(ph, 0, parts, ops, calls)
