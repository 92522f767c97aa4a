"""Measurement backend: run the event-driven program the simulator prices on this CPU.

The program is built from the same decisions as the lowering (simsnn/lowering.py): the memory
layout of simsnn/layout.py (one arena, every array at its layout offset, weights in storage
order and dtype), the units each core handles (``unit_shares``) and the loop order (per layer
all time steps; per step the bias, then each input event in ascending unit order against every
open segment, then the neuron updates of the open units, then the step's spikes appended to
the layer's event list). See docs/measure.md for what is timed and how it differs from what
is priced.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass

import numpy as np

from simsnn import measure_kernels as mk
from simsnn.config.layout import LayoutConfig
from simsnn.errors import SimsnnError
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
    ``measure_kernels.select_top``: the numpy version, an argsort and a fancy index, took
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


# ----------------------------------------------------------------------------- measure
def measure(net: AnyNetwork, inputs: np.ndarray, labels: np.ndarray | None = None, *,
            cores: int = 1, layout: LayoutConfig | None = None, warmup: int = 1,
            repeat: int = 5, per_layer: bool = False, pin: list[int] | None = None,
            seed: int = 0, counters: bool = True) -> dict:
    """Measure ``net`` on ``inputs`` on this CPU: ``warmup`` untimed passes, then ``repeat``
    timed passes over all samples (one sample after the other, each timed). Returns one
    result entry (docs/result-format.md, measured fields in docs/measure.md)."""
    if repeat < 1 or warmup < 0:
        raise MeasureError("repeat must be at least 1 and warmup at least 0")
    threads = set_threads(cores, pin)
    prog = MeasuredProgram(net, layout, cores)
    x = np.asarray(inputs)
    for _ in range(warmup):
        run_measured(prog, x, seed)
    perf = _PerfSession() if counters else None
    reps = []
    scores = None
    if perf is not None:
        perf.start()
    for _ in range(repeat):
        scores, secs = run_measured(prog, x, seed)
        reps.append(secs)
    count = perf.stop() if perf is not None else {"available": False, "reason": "not asked"}
    per_inf = np.array([r.mean() for r in reps])
    med = float(np.median(per_inf))
    allv = np.concatenate(reps)
    # each sample at its best over the passes (noise comes in bursts shorter than a pass)
    per_sample = np.min(np.stack(reps), axis=0)
    n = x.shape[0]
    entry = {
        "network": net.name, "family": net.family, "measured": True,
        "samples": n, "timesteps": int(net.timesteps), "cores": cores,
        "threads": threads, "layout": prog.lay.config.model_dump(),
        "weight_dtype": prog.dtype, "program_bytes": int(prog.lay.total_bytes),
        "latency_s": med,
        "latency": {"median_of_repeats": med, "best_of_repeats": float(per_inf.min()),
                    "mean": float(allv.mean()),
                    "p50": float(np.percentile(allv, 50)), "p99": float(np.percentile(allv, 99)),
                    "min": float(allv.min()), "max": float(allv.max()), "repeats": repeat,
                    "per_repeat": per_inf.tolist(),
                    "best_per_sample": float(per_sample.mean()),
                    "per_sample_best_s": per_sample.tolist(),
                    "spread": float((per_inf.max() - per_inf.min()) / med) if med else 0.0},
        "energy_j": None,
        "counters": count,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    # the parallel runtime the passes ran on (its wait policy decides what a layer call on
    # several threads costs: simsnn/measure_kernels.py)
    entry["threads"].update(layer=_threading_layer(),
                            omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"),
                            gomp_spincount=os.environ.get("GOMP_SPINCOUNT"))
    if labels is not None and scores is not None:
        entry["accuracy"] = float((scores.argmax(axis=1) == np.asarray(labels)[:n]).mean())
    else:
        entry["accuracy"] = None
    from simsnn.footprint import footprint
    fp = footprint(net)
    entry["footprint_bytes"] = fp["total_bytes"]
    entry["weight_bytes"] = fp["weight_bytes"]
    if per_layer:
        timer: dict = {}
        run_measured(prog, x, seed, timer=timer)
        entry["latency"]["per_layer_s"] = {k: v / n for k, v in timer.items()}
        entry["latency"]["per_layer_note"] = ("one extra instrumented pass, a clock read "
                                              "around each layer")
    return entry


# ----------------------------------------------------------------------------- counters
_PERF_EVENTS = ("cycles", "instructions", "cache-references", "cache-misses",
                "L1-dcache-load-misses", "LLC-load-misses")
_perf_told = False


def parse_perf_csv(text: str) -> dict[str, float]:
    """``perf stat -x,`` output -> {event: count}; events perf could not count are left out."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 3 or not f[2].strip():
            continue
        try:
            out[f[2].strip()] = float(f[0])
        except ValueError:
            continue  # <not supported>, <not counted>
    return out


class _PerfSession:
    """``perf stat`` attached to this process around the timed passes, where the kernel
    exposes hardware counters; otherwise says why, once per process."""

    def __init__(self):
        global _perf_told
        self.ok, self.reason = perf_status()
        self.proc = None
        if not self.ok and not _perf_told:
            import sys
            print(f"simsnn measure: no hardware counters ({self.reason}); timing with the "
                  f"wall clock only", file=sys.stderr)
            _perf_told = True

    def start(self) -> None:
        if not self.ok:
            return
        self.proc = subprocess.Popen(
            [shutil.which("perf") or "perf", "stat", "-x,", "-e", ",".join(_PERF_EVENTS),
             "-p", str(os.getpid())], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True)
        time.sleep(0.2)  # let perf attach

    def stop(self) -> dict:
        if not self.ok or self.proc is None:
            return {"available": False, "reason": self.reason}
        import signal
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {"available": False, "reason": "perf stat did not stop"}
        counts = parse_perf_csv(err)
        if not counts:
            return {"available": False, "reason": "perf stat counted nothing"}
        return {"available": True, "scope": "whole process during the timed passes",
                "events": counts}


def perf_status() -> tuple[bool, str]:
    """Can ``perf stat`` count hardware events here? (available, reason)."""
    exe = shutil.which("perf")
    if exe is None:
        return False, "perf is not installed"
    try:
        r = subprocess.run([exe, "stat", "-x,", "-e", "cycles,instructions", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"perf stat failed: {exc}"
    text = r.stderr + r.stdout
    if r.returncode != 0:
        last = text.strip().splitlines()[-1] if text.strip() else str(r.returncode)
        return False, f"perf stat failed: {last}"
    if "cycles" not in parse_perf_csv(text):
        why = "not supported" if "not supported" in text else "not counted"
        return False, f"the kernel exposes no hardware counters here (perf: cycles {why})"
    return True, "perf stat counts cycles and instructions"


def host_summary() -> dict:
    """CPU model and logical CPUs of this host (for measured results)."""
    from hwmodels.detect import DetectError, read_host
    try:
        model = read_host().model
    except DetectError:
        model = ""
    return {"cpu": model, "logical_cpus": os.cpu_count(), "numba_threads":
            __import__("numba").config.NUMBA_NUM_THREADS}


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _threading_layer() -> str:
    import numba
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel call in this process yet (one-core runs)
        return "none loaded"


def set_threads(cores: int, pin: list[int] | None) -> dict:
    """Use ``cores`` numba threads; pin the process (and so its threads) to ``pin`` CPUs."""
    import numba
    if cores > numba.config.NUMBA_NUM_THREADS:
        raise MeasureError(f"{cores} cores asked, numba has {numba.config.NUMBA_NUM_THREADS} "
                           f"threads on this machine")
    numba.set_num_threads(cores)
    if pin:
        try:
            os.sched_setaffinity(0, set(pin))
        except (OSError, ValueError) as exc:
            raise MeasureError(f"cannot pin to CPUs {pin}: {exc}") from None
    return {"threads": cores, "affinity": sorted(os.sched_getaffinity(0))}
