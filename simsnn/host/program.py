"""The measured program: the event-driven program the simulator prices, run on this CPU.

The program is built from the same decisions as the lowering (simsnn/lowering.py): the memory
layout of simsnn/layout.py (one arena, every array at its layout offset, weights in storage
order and dtype), the units each core handles (``unit_shares``) and the loop order (per layer
all time steps; per step the bias, then each input event in ascending unit order against every
open segment, then the neuron updates of the open units, then the step's spikes appended to
the layer's event list). Dense, convolution and average-pool layers, fp32, fp16 and int8
weights, gates at any position (linear or MLP) and task-specialized ensembles run; what does
not is named by :func:`unsupported`. See docs/measure.md for what is timed and how it differs
from what is priced.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from simsnn.config.layout import LayoutConfig
from simsnn.errors import SimsnnError
from simsnn.host import kernels as mk
from simsnn.inference import _check_input, encode
from simsnn.layout import LayerLayout, aligned_arena, build_layout
from simsnn.lowering import segments, unit_shares
from simsnn.network import AnyNetwork, AvgPool2d, Conv2d, Dense, Ensemble, Flatten, Network
from simsnn.quantize import int8_codes, int8_scale

_F32 = np.float32
_STORAGE = {"fp32": np.float32, "fp16": np.uint16, "int8": np.int8}


class MeasureError(SimsnnError):
    """A network or setting the measured program does not support."""


def storage(arr: np.ndarray, dtype: str) -> tuple[np.ndarray, np.float32]:
    """``arr`` (float32 values) as ``dtype`` storage: (the stored array, the int8 scale, 1.0
    for other dtypes). fp16 is held as its 16-bit patterns (numba has no float16 on the CPU)."""
    if dtype == "fp16":
        return np.asarray(arr, np.float16).view(np.uint16), _F32(1.0)
    if dtype == "int8":
        s = int8_scale(arr)
        return int8_codes(arr, s), s
    return np.asarray(arr, np.float32), _F32(1.0)


def unsupported(net: AnyNetwork, layout: LayoutConfig | None = None) -> list[str]:
    """Why the measured program cannot run ``net`` with ``layout`` (empty: it can): each
    reason names the layer or setting."""
    cfg = layout or LayoutConfig()
    why = []
    if cfg.order != "row":
        why.append(f"layout order {cfg.order!r}: the program reads row-major weights only")
    if cfg.schedule != "layer_major":
        why.append(f"layout schedule {cfg.schedule!r}: the program runs layer_major only")
    members = net.members if isinstance(net, Ensemble) else [net]
    for m in members:
        gate = getattr(m, "gate", None)
        if gate is not None and gate.kind == "oracle":
            why.append(f"{m.name}: an oracle gate (it reads the labels) has no program")
        graded = net.coding != "rate"
        for layer in m.layers:
            if isinstance(layer, AvgPool2d) and graded:
                why.append(f"{m.name}.{layer.name}: average pooling of graded (non-spike) "
                           f"inputs")
            if isinstance(layer, (Dense, Conv2d)):
                graded = layer.neuron is None
            elif isinstance(layer, AvgPool2d):
                graded = True
    return why


@dataclass
class _Syn:
    """A dense, readout or convolution layer: arena views and kernel arguments."""

    ll: LayerLayout
    kind: str  # dense | readout | conv
    w: np.ndarray  # (rows, n_out) in storage order and dtype
    wscale: np.float32
    bias: np.ndarray  # (n_out,) storage dtype (empty without bias)
    bscale: np.float32
    cur: np.ndarray
    state: np.ndarray
    in_perm: np.ndarray
    inv_perm: np.ndarray  # storage position -> unit (channel)
    neuron: tuple
    geom: tuple = ()  # conv: (H, W, K, stride, padding, Ho, Wo, O)
    n_pos: int = 1  # output positions per unit (conv: Ho x Wo)
    events: np.ndarray | None = None  # (T, outputs) int32: each step's merged spikes


@dataclass
class _Pool:
    ll: LayerLayout
    geom: tuple  # (H, W, k, Hp, Wp)
    pooled: np.ndarray  # float32 (C x Hp x Wp), arena view
    events: np.ndarray  # (T, C x Hp x Wp) int32 index lists
    values: np.ndarray  # (T, C x Hp x Wp) float32 value lists


def _lap(timer: dict | None, key: str, t0: float) -> float:
    """Instrumented mode: add the seconds since ``t0`` to ``timer[key]``; the new start."""
    if timer is None:
        return t0
    t1 = time.perf_counter()
    timer[key] = timer.get(key, 0.0) + t1 - t0
    return t1


class MeasuredProgram:
    """The arrays and kernels of one network's measured program (``cores`` threads)."""

    def __init__(self, net: AnyNetwork, layout: LayoutConfig | None = None, cores: int = 1,
                 input_binary: bool | None = None, kernels=None, align: int = 4096):
        """``kernels``: the module of compiled kernels to call (default simsnn.host.kernels;
        simsnn.host.counted counts them under valgrind); ``align``: the arena's alignment
        (a page; a cache's set span to map every layout offset onto its simulated set)."""
        self.k = kernels or mk
        if cores < 1:
            raise MeasureError("cores must be at least 1")
        why = unsupported(net, layout)
        if why:
            raise MeasureError(f"the measured program cannot run {net.name}: {why[0]}")
        self.net, self.cores = net, cores
        self.input_binary = net.coding == "rate" if input_binary is None else input_binary
        self.lay = build_layout(net, layout, self.input_binary, cores=cores)
        self.steps = self.lay.steps
        self.dtype = {4: "fp32", 2: "fp16", 1: "int8"}[self.lay.weight_bytes]
        # one arena, page-aligned, every array at its layout offset
        self.arena = aligned_arena(self.lay.total_bytes, max(int(align), 4096))
        self.members: list[tuple[Network, list]] = []
        for _, member, layers in self.lay.members:
            stages: list = []
            for ll in layers:
                if isinstance(ll.layer, Flatten):
                    stages.append(None)
                elif isinstance(ll.layer, AvgPool2d):
                    stages.append(self._pool(ll))
                else:
                    stages.append(self._syn(ll))
            self.members.append((member, stages))
        self.gate = None
        if isinstance(net, Network) and net.gate is not None:
            g = net.gate
            self.gate = g, self._mlp("gate.weights", g.params,
                                     ("w1", "b1") if g.kind == "linear" else
                                     ("w1", "b1", "w2", "b2"))
        self.agg = None
        if isinstance(net, Ensemble):
            self.agg = self._mlp("aggregator", net.aggregator.params, ("w1", "b1", "w2", "b2"))
        self.n_in = int(np.prod(net.input_shape))
        self._seg_cache: dict = {}

    def _view(self, region: str, dtype, shape) -> np.ndarray:
        base, _ = self.lay.regions[region]
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.arena[base:base + n].view(dtype).reshape(shape)

    def _syn(self, ll: LayerLayout) -> _Syn:
        layer = ll.layer
        wdt = _STORAGE[self.dtype]
        if isinstance(layer, Conv2d):
            c_in, h, w_in = layer.in_shape
            o, ho, wo = layer.out_shape
            k = layer.kernel
            rows, n_out = c_in * k * k, o
            # (O, C, K, K) -> rows (c storage, ky, kx) of O channels in storage order
            wt = np.zeros((c_in, k, k, o), np.float32)
            wt[ll.in_perm] = np.transpose(layer.weight, (1, 2, 3, 0))[:, :, :, np.argsort(
                ll.perm)]
            bits, wscale = storage(wt.reshape(rows, o), self.dtype)
            w = self._view(f"{ll.key}.weights", wdt, (rows, n_out))
            w[...] = bits
            geom = (h, w_in, k, layer.stride, layer.padding, ho, wo, o)
            n_pos = ho * wo
        else:
            rows, n_out = layer.in_features, layer.out_features
            bits, wscale = storage(layer.weight, self.dtype)
            w = self._view(f"{ll.key}.weights", wdt, (rows, n_out))
            w[ll.in_perm[:, None], ll.perm[None, :]] = bits
            geom, n_pos = (), 1
        bias, bscale = np.zeros(0, wdt), _F32(1.0)
        if layer.has_bias:
            bbits, bscale = storage(layer.bias, self.dtype)
            bias = self._view(f"{ll.key}.bias", wdt, (n_out,))
            bias[ll.perm] = bbits
        inv = np.empty_like(ll.perm)
        inv[ll.perm] = np.arange(ll.perm.shape[0])
        in_perm = self._view(f"{ll.key}.in_perm", np.int64, (ll.in_perm.shape[0],))
        in_perm[...] = ll.in_perm
        events = None
        if "inv_perm" in ll.regions:
            inv_v = self._view(f"{ll.key}.inv_perm", np.int64, (inv.shape[0],))
            inv_v[...] = inv
            inv = inv_v
            events = self._view(f"{ll.key}.events", np.int32, (self.steps, n_out * n_pos))
        p = layer.neuron
        neuron = (_F32(0), _F32(0), False, _F32(0)) if p is None else \
            (_F32(p.leak), _F32(p.threshold), bool(p.soft_reset), _F32(p.v_reset))
        kind = "conv" if isinstance(layer, Conv2d) else ("readout" if p is None else "dense")
        return _Syn(ll, kind, w, _F32(wscale), bias, _F32(bscale),
                    self._view(f"{ll.key}.current", np.float32, (n_out * n_pos,)),
                    self._view(f"{ll.key}.state", np.float32, (n_out * n_pos,)),
                    in_perm, inv, neuron, tuple(int(v) for v in geom), n_pos, events)

    def _pool(self, ll: LayerLayout) -> _Pool:
        layer = ll.layer
        c, h, w = layer.in_shape
        _, hp, wp = layer.out_shape
        n = c * hp * wp
        both = self._view(f"{ll.key}.events", np.int32, (2, self.steps, n))
        return _Pool(ll, (h, w, layer.kernel, hp, wp),
                     self._view(f"{ll.key}.pooled", np.float32, (n,)), both[0],
                     both[1].view(np.float32))

    def _mlp(self, region: str, params: dict, names: tuple[str, ...]) -> dict:
        """Views of a small MLP's parameters (gate, aggregator) written at ``region``, in
        the weight dtype, and their int8 scales (``scales``: w1, b1, w2, b2)."""
        wdt = _STORAGE[self.dtype]
        views, pos = {}, self.lay.regions[region][0]
        scales = np.ones(4, np.float32)
        for i, k in enumerate(names):
            arr = np.asarray(params[k])
            n = arr.size * np.dtype(wdt).itemsize
            v = self.arena[pos:pos + n].view(wdt).reshape(arr.shape if arr.ndim == 2 else
                                                          (arr.shape[0],))
            v[...], scales[i] = storage(arr, self.dtype)
            views[k] = v
            pos += n
        if "w2" not in views:
            views["w2"], views["b2"] = views["w1"][:0], views["b1"][:0]
        views["scales"] = scales
        return views

    # -- segments of open units per core (cached per gate decision) ------------------------
    def _segments(self, lp: _Syn, groups: np.ndarray | None):
        layer = lp.ll.layer
        key = (lp.ll.key, None if groups is None or layer.groups is None else groups.tobytes())
        hit = self._seg_cache.get(key)
        if hit is not None:
            return hit
        n_units = lp.w.shape[1]
        if layer.groups is not None and groups is not None:
            shared = layer.groups < 0
            active = shared | groups[np.where(shared, 0, layer.groups)]
        else:
            active = np.ones(n_units, bool)
        s0s, sls, ptr = [], [], [0]
        for pos in unit_shares(lp.ll.perm, active, self.cores, self.lay.config.partition):
            s0, sl = segments(pos)
            s0s.append(s0)
            sls.append(sl)
            ptr.append(ptr[-1] + s0.shape[0])
        out = (np.concatenate(s0s).astype(np.int64), np.concatenate(sls).astype(np.int64),
               np.asarray(ptr, np.int64))
        self._seg_cache[key] = out
        return out

    # -- one inference ---------------------------------------------------------------------
    def _decide(self, feat: np.ndarray) -> np.ndarray:
        g, v = self.gate
        scores = self.k.gate_mlp(feat, v["w1"], v["b1"], v["w2"], v["b2"], g.kind == "mlp", False,
                             v["scales"])
        return self.k.select_top(scores, g.class_to_groups, int(g.top_k))

    def _run_syn(self, lp: _Syn, T: int, ev: tuple, groups, buf: dict) -> None:
        s0, sl, ptr = self._segments(lp, groups)
        leak, thr, soft, vr = lp.neuron
        ev_idx, ev_val, ev_n, binary = ev
        args = (T, ev_idx, ev_val, ev_n, binary, lp.in_perm)
        tail = (lp.w, lp.wscale, lp.bias, lp.bscale, lp.bias.shape[0] > 0, lp.cur, lp.state)
        if lp.kind == "conv":
            args += (lp.geom,)
            if self.cores == 1:
                self.k.conv_one_core(*args, *tail, s0, sl, leak, thr, soft, vr, buf["spk"],
                                 buf["spk_n"])
            else:
                self.k.conv_cores(*args, *tail, s0, sl, ptr, leak, thr, soft, vr, buf["spk"],
                              buf["spk_n"])
        elif self.cores == 1:
            self.k.layer_one_core(*args, *tail, s0, sl, lp.kind == "readout", leak, thr, soft, vr,
                              buf["spk"], buf["spk_n"])
        else:
            self.k.layer_cores(*args, *tail, s0, sl, ptr, lp.kind == "readout", leak, thr, soft,
                           vr, buf["spk"], buf["spk_n"])

    def infer(self, x_t: np.ndarray, static_x: np.ndarray, buf: dict,
              timer: dict | None = None) -> np.ndarray:
        """Run one sample: ``x_t`` (T, n_in) float32 input values, ``static_x`` (n_in,)
        the features of a gate at position 0. Returns the class scores. ``timer``
        accumulates seconds per layer (instrumented mode: a clock read around each layer)."""
        T = x_t.shape[0]
        t0 = time.perf_counter() if timer is not None else 0.0
        in_n = self.k.encode_input(x_t, buf["in_idx"], buf["in_val"])
        t0 = _lap(timer, "input", t0)
        gate = self.gate[0] if self.gate is not None else None
        groups = None
        if gate is not None and gate.position == 0:
            groups = self._decide(static_x)
            t0 = _lap(timer, "gate", t0)
        outs = []
        for _, stages in self.members:
            ev = (buf["in_idx"], buf["in_val"], in_n, self.input_binary)
            score = None
            for li, st in enumerate(stages):
                if gate is not None and li == gate.position and li > 0:
                    feat = buf["feat"]
                    self.k.rate_features(ev[0], ev[1], ev[2], ev[3], feat)
                    groups = self._decide(feat)
                    t0 = _lap(timer, "gate", t0)
                if st is None:  # flatten: event indices are already flat (c, y, x)
                    continue
                if isinstance(st, _Pool):
                    n = self.k.pool_layer(ev[0], ev[2], st.geom, st.pooled, st.events, st.values)
                    ev = (st.events, st.values, n, False)
                    t0 = _lap(timer, st.ll.key, t0)
                    continue
                self._run_syn(st, T, ev, groups, buf)
                if st.kind == "readout":
                    score = st.state[st.ll.perm] / _F32(T)
                else:
                    out_idx = st.events
                    if st.kind == "conv":
                        n = self.k.merge_conv_events(buf["spk"], buf["spk_n"], st.inv_perm,
                                                 st.w.shape[1], st.n_pos, out_idx,
                                                 buf["first"])
                    else:
                        n = self.k.merge_events(buf["spk"], buf["spk_n"], st.inv_perm, out_idx)
                    ev = (out_idx, buf["in_val"], n, True)
                    if "record" in buf:  # spikes as a (T, units) bool array, unit order
                        sp = np.zeros((T, st.w.shape[1] * st.n_pos), bool)
                        for t in range(T):
                            sp[t, out_idx[t, :n[t]]] = True
                        buf["record"].setdefault(st.ll.key, []).append(sp)
                t0 = _lap(timer, st.ll.key, t0)
            if score is None:  # a spiking last layer: each unit's spike rate
                score = np.zeros(stages[-1].w.shape[1] * stages[-1].n_pos, np.float32)
                self.k.rate_features(ev[0], ev[1], ev[2], ev[3], score)
            outs.append(score)
        if self.agg is not None:
            v = self.agg
            out = self.k.gate_mlp(np.concatenate(outs), v["w1"], v["b1"], v["w2"], v["b2"], True,
                              self.net.aggregator.activation == "sigmoid", v["scales"])
            _lap(timer, "aggregator", t0)
            return out
        return outs[0]

    def buffers(self, T: int | None = None) -> dict:
        """The driver's arrays, all in the arena at their layout regions: the input values
        and event lists of every step, the cores' spike lists, the conv merge's and the
        gate's scratch."""
        if T is not None and T != self.steps:
            raise MeasureError(f"the program holds {self.steps} time steps, not {T}")
        T, n_in, units = self.steps, self.n_in, self.lay.units
        ev = self._view("input.events", np.int32, (2, T, n_in))
        feat = self._view("gate.features", np.float32, (self.gate[0].num_features,)) \
            if self.gate is not None else np.zeros(1, np.float32)
        return {"input": self._view("input", np.float32, (T, n_in)),
                "in_idx": ev[0], "in_val": ev[1].view(np.float32),
                "spk": self._view("spikes", np.int64, (self.cores, T, units)),
                "spk_n": self._view("spikes.count", np.int64, (self.cores, T)),
                "first": self._view("merge.first", np.int64, (units + 1,)),
                "feat": feat}


def select_groups(scores: np.ndarray, class_to_groups: np.ndarray, top_k: int) -> np.ndarray:
    """The gate's decision: the groups (bool) of its ``top_k`` best-scored classes (compiled,
    ``kernels.select_top``: the numpy version, an argsort and a fancy index, took
    ~5 us a call, as much as a small layer)."""
    return mk.select_top(scores, class_to_groups, int(top_k))


def run_measured(prog: MeasuredProgram, inputs: np.ndarray, seed: int = 0,
                 timer: dict | None = None,
                 record: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Run ``inputs`` (B, *input_shape) one sample after the other; returns (scores (B, C),
    seconds per sample (B,)). ``record``: a dict that receives each spiking layer's spikes
    (B, T, units) bool (a test aid; it slows the run)."""
    net = prog.net
    x = _check_input(net, inputs)
    T = int(net.timesteps)
    ev = encode(x, T, net.coding, seed).reshape(x.shape[0], T, -1)
    static = x.reshape(x.shape[0], -1).astype(np.float32)
    buf = prog.buffers(T)
    if record is not None:
        buf["record"] = {}
    scores, secs = [], np.empty(x.shape[0])
    clock = time.perf_counter
    gate0 = prog.gate is not None and prog.gate[0].position == 0
    for b in range(x.shape[0]):
        buf["input"][...] = ev[b]  # the sample arrives in the program's input region
        if gate0:
            buf["feat"][...] = static[b]
        t0 = clock()
        scores.append(prog.infer(buf["input"], buf["feat"], buf, timer))
        secs[b] = clock() - t0
    if record is not None:
        record.update({k: np.stack(v) for k, v in buf["record"].items()})
    return np.stack(scores), secs
