"""The measured program: the event-driven program the simulator prices, run on this CPU.

The program is built from the same decisions as the lowering (simsnn/lowering.py): the memory
layout of simsnn/layout.py (one arena, every array at its layout offset, weights in storage
order and dtype), the units each core handles (``unit_shares``) and the loop order (per layer
all time steps; per step the bias, then each input event in ascending unit order against every
open segment, then the neuron updates of the open units, then the step's spikes appended to
the layer's event list). See docs/measure.md for what is timed and how it differs from what
is priced.
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
from simsnn.network import AnyNetwork, Dense, Ensemble, Flatten, Network

_F32 = np.float32


class MeasureError(SimsnnError):
    """A network or setting the measured program does not support."""


def _storage_bits(w: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "fp16":
        return np.asarray(w, np.float16).view(np.uint16)
    return np.asarray(w, np.float32)


@dataclass
class _Layer:
    ll: LayerLayout
    readout: bool
    w: np.ndarray  # (n_in, n_out) storage order, uint16 (fp16 bits) or float32, arena view
    bias: np.ndarray  # float32 (n_out,) in storage order (empty without bias)
    cur: np.ndarray  # float32 arena view
    state: np.ndarray  # float32 arena view
    in_perm: np.ndarray
    inv_perm: np.ndarray  # storage position -> unit
    neuron: tuple


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
                 input_binary: bool | None = None):
        if cores < 1:
            raise MeasureError("cores must be at least 1")
        self.net, self.cores = net, cores
        self.input_binary = net.coding == "rate" if input_binary is None else input_binary
        self.lay = build_layout(net, layout, self.input_binary)
        cfg = self.lay.config
        if cfg.order != "row":
            raise MeasureError("measure runs row-major weights only (layout order: row)")
        if cfg.schedule != "layer_major":
            raise MeasureError("measure runs the layer_major schedule only")
        self.dtype = {4: "fp32", 2: "fp16"}.get(self.lay.weight_bytes)
        if self.dtype is None:
            raise MeasureError("measure runs fp32 and fp16 weights (int8 needs a quantized "
                               "kernel, not written yet)")
        # one arena, page-aligned, every array at its layout offset
        self.arena = aligned_arena(self.lay.total_bytes, 4096)
        self.members: list[tuple[Network, list[_Layer]]] = []
        for _, member, layers in self.lay.members:
            progs = []
            for ll in layers:
                if isinstance(ll.layer, Flatten):
                    continue
                if not isinstance(ll.layer, Dense):
                    raise MeasureError(f"{ll.key}: measure runs dense layers only "
                                       f"({type(ll.layer).__name__} not written yet)")
                progs.append(self._dense(ll))
            self.members.append((member, progs))
        self.gate = None
        if isinstance(net, Network) and net.gate is not None:
            if net.gate.position != 0 or net.gate.kind == "oracle":
                raise MeasureError("measure runs gates on the input (position 0, linear or "
                                   "mlp)")
            self.gate = self._gate(net)
        self.agg = None
        if isinstance(net, Ensemble):
            self.agg = self._mlp("aggregator", net.aggregator.params, ("w1", "b1", "w2", "b2"))
        self.n_in = int(np.prod(net.input_shape))
        self.max_units = max((p.w.shape[1] for _, ps in self.members for p in ps), default=1)
        self._seg_cache: dict = {}

    def _view(self, region: str, dtype, shape) -> np.ndarray:
        base, nbytes = self.lay.regions[region]
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return self.arena[base:base + n].view(dtype).reshape(shape)

    def _dense(self, ll: LayerLayout) -> _Layer:
        layer = ll.layer
        n_in, n_out = layer.in_features, layer.out_features
        wdt = np.uint16 if self.dtype == "fp16" else np.float32
        w = self._view(f"{ll.key}.weights", wdt, (n_in, n_out))
        w[ll.in_perm[:, None], ll.perm[None, :]] = _storage_bits(layer.weight, self.dtype)
        bias = np.zeros(0, np.float32)
        if layer.has_bias:  # stored in the layout's dtype; the kernel reads it as float32
            b = self._view(f"{ll.key}.bias", wdt, (n_out,))
            b[ll.perm] = _storage_bits(layer.bias, self.dtype)
            bias = np.empty(n_out, np.float32)
            bias[ll.perm] = np.asarray(layer.bias, np.float32)
        inv = np.empty_like(ll.perm)
        inv[ll.perm] = np.arange(ll.perm.shape[0])
        p = layer.neuron
        neuron = (_F32(0), _F32(0), False, _F32(0)) if p is None else \
            (_F32(p.leak), _F32(p.threshold), bool(p.soft_reset), _F32(p.v_reset))
        return _Layer(ll, p is None, w, bias, self._view(f"{ll.key}.current", np.float32,
                                                          (n_out,)),
                      self._view(f"{ll.key}.state", np.float32, (n_out,)),
                      np.ascontiguousarray(ll.in_perm, np.int64), inv.astype(np.int64),
                      neuron)

    def _mlp(self, region: str, params: dict, names: tuple[str, ...]) -> dict:
        """Views of a small MLP's parameters (gate, aggregator) written at ``region``, in
        the weight dtype."""
        wdt = np.uint16 if self.dtype == "fp16" else np.float32
        views, pos = {}, self.lay.regions[region][0]
        for k in names:
            arr = np.asarray(params[k])
            n = arr.size * np.dtype(wdt).itemsize
            v = self.arena[pos:pos + n].view(wdt).reshape(arr.shape if arr.ndim == 2 else
                                                          (arr.shape[0],))
            v[...] = _storage_bits(arr, self.dtype)
            views[k] = v
            pos += n
        if "w2" not in views:
            views["w2"], views["b2"] = views["w1"][:0], views["b1"][:0]
        return views

    def _gate(self, net: Network):
        g = net.gate
        names = ("w1", "b1") if g.kind == "linear" else ("w1", "b1", "w2", "b2")
        return g, self._mlp("gate.weights", g.params, names)

    # -- segments of open units per core (cached per gate decision) ------------------------
    def _segments(self, lp: _Layer, groups: np.ndarray | None):
        layer = lp.ll.layer
        key = (lp.ll.key, None if groups is None or layer.groups is None else groups.tobytes())
        hit = self._seg_cache.get(key)
        if hit is not None:
            return hit
        if layer.groups is not None and groups is not None:
            shared = layer.groups < 0
            active = shared | groups[np.where(shared, 0, layer.groups)]
        else:
            active = np.ones(layer.out_features, bool)
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
    def infer(self, x_t: np.ndarray, static_x: np.ndarray, buf: dict,
              timer: dict | None = None) -> np.ndarray:
        """Run one sample: ``x_t`` (T, n_in) float32 input values, ``static_x`` (n_in,)
        the gate's features. Returns the class scores. ``timer`` accumulates seconds per
        layer (instrumented mode: a clock read around each layer)."""
        T = x_t.shape[0]
        t0 = time.perf_counter() if timer is not None else 0.0
        in_n = mk.encode_input(x_t, buf["in_idx"], buf["in_val"])
        t0 = _lap(timer, "input", t0)
        groups = None
        if self.gate is not None:
            g, v = self.gate
            scores = mk.gate_mlp(static_x, v["w1"], v["b1"], v["w2"], v["b2"], g.kind == "mlp",
                                 False)
            groups = select_groups(scores, g.class_to_groups, g.top_k)
            t0 = _lap(timer, "gate", t0)
        outs = []
        for _, progs in self.members:
            ev_idx, ev_val, ev_n = buf["in_idx"], buf["in_val"], in_n
            score = None
            for li, lp in enumerate(progs):
                s0, sl, ptr = self._segments(lp, groups)
                leak, thr, soft, vr = lp.neuron
                binary = lp.ll.binary_inputs
                args = (T, ev_idx, ev_val, ev_n, binary, lp.in_perm, lp.w, lp.bias,
                        lp.bias.shape[0] > 0, lp.cur, lp.state)
                if self.cores == 1:
                    mk.layer_one_core(*args, s0, sl, lp.readout, leak, thr, soft, vr,
                                      buf["spk"], buf["spk_n"])
                else:
                    mk.layer_cores(*args, s0, sl, ptr, lp.readout, leak, thr, soft, vr,
                                   buf["spk"], buf["spk_n"])
                if lp.readout:
                    score = lp.state[lp.ll.perm] / _F32(T)
                else:
                    out_idx = buf["ev"][li % 2]
                    ev_n = mk.merge_events(buf["spk"], buf["spk_n"], lp.inv_perm, out_idx)
                    ev_idx, ev_val = out_idx, buf["in_val"]
                    if "record" in buf:  # spikes as a (T, units) bool array, unit order
                        sp = np.zeros((T, lp.w.shape[1]), bool)
                        for t in range(T):
                            sp[t, out_idx[t, :ev_n[t]]] = True
                        buf["record"].setdefault(lp.ll.key, []).append(sp)
                t0 = _lap(timer, lp.ll.key, t0)
            outs.append(score)
        if self.agg is not None:
            v = self.agg
            out = mk.gate_mlp(np.concatenate(outs), v["w1"], v["b1"], v["w2"], v["b2"], True,
                              self.net.aggregator.activation == "sigmoid")
            _lap(timer, "aggregator", t0)
            return out
        return outs[0]

    def buffers(self, T: int) -> dict:
        """Scratch arrays of the driver: per-step event lists (the simulator prices one event
        buffer per layer; layer-major needs one per step), spike lists per core."""
        n = max(self.n_in, self.max_units)
        return {"in_idx": np.zeros((T, self.n_in), np.int32),
                "in_val": np.zeros((T, n), np.float32),
                "ev": [np.zeros((T, self.max_units), np.int32) for _ in range(2)],
                "spk": np.zeros((self.cores, T, self.max_units), np.int64),
                "spk_n": np.zeros((self.cores, T), np.int64)}


def select_groups(scores: np.ndarray, class_to_groups: np.ndarray, top_k: int) -> np.ndarray:
    """The gate's decision: the groups (bool) of its ``top_k`` best-scored classes (compiled,
    ``kernels.select_top``: the numpy version, an argsort and a fancy index, took
    ~5 us a call here, as much as a small layer)."""
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
    for b in range(x.shape[0]):
        xb = np.ascontiguousarray(ev[b])
        t0 = clock()
        scores.append(prog.infer(xb, static[b], buf, timer))
        secs[b] = clock() - t0
    if record is not None:
        record.update({k: np.stack(v) for k, v in buf["record"].items()})
    return np.stack(scores), secs

