"""NIR (Neuromorphic Intermediate Representation) import and export of dense networks.

Import walks a simple chain ``Input -> ... -> Output`` of ``Affine``/``Linear`` (Dense),
``Conv2d``, ``AvgPool2d``, ``Flatten`` and ``LIF``/``IF`` nodes; a neuron node becomes the
neurons of the synaptic node before it, and a synaptic node without one is a non-spiking readout
(last only). NIR neurons are continuous-time: forward Euler with the time step ``dt`` gives

    LIF  tau dv/dt = (v_leak - v) + r I  ->  v[t] = (1 - dt/tau) v[t-1] + (dt r / tau) I[t]
    IF       dv/dt = r I                 ->  v[t] = v[t-1] + (dt r) I[t]

Our neurons take the current with scale 1, so the input scale (``dt r / tau``, IF ``dt r``) is
folded into the weights and bias before the neuron unless it is 1 within ``SCALE_RTOL`` (float32
round-off of exporters: snnTorch's ``r = tau / dt`` gives 0.9999997). ``v_leak`` must be 0;
parameters must be uniform per layer and are rounded to float32, the kernels' precision. NIR
resets are hard resets to ``v_reset``. Details and limits: docs/nir.md.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from simsnn.errors import ConfigError, NetworkError
from simsnn.io import atomic_path
from simsnn.network import (
    AnyNetwork,
    AvgPool2d,
    Conv2d,
    Dense,
    Ensemble,
    Flatten,
    Layer,
    Network,
    is_synaptic,
)
from simsnn.neurons import NeuronParams

DEFAULT_TIMESTEPS = 9
"""Time steps of an imported network (NIR graphs carry none); the NetworkConfig default."""
EXPORT_DT = 1e-4
"""Default time step of :func:`export_nir`, the one snnTorch uses."""
SCALE_RTOL = 1e-5
"""An input scale ``dt r / tau`` within this relative distance of 1 is taken as exactly 1."""

_F32 = np.float32


def _nir(source: str) -> Any:
    try:
        import nir
    except ImportError:
        raise ConfigError(source, "", "NIR support needs the 'nir' package "
                          "(pip install 'simsnn[nir]')") from None
    return nir


# ----------------------------------------------------------------------------- files
def read_graph(path: str | Path) -> Any:
    """Read a NIR file into a ``nir.NIRGraph``; any unreadable file raises ConfigError."""
    path = Path(path)
    nir = _nir(str(path))
    if not path.is_file():
        raise ConfigError(str(path), "", "no such NIR file")
    try:
        graph = nir.read(path, type_check=False)
    except Exception as exc:  # h5py OSError, KeyError, ValueError, AssertionError, ...
        raise ConfigError(str(path), "", f"not a readable NIR file ({type(exc).__name__}: "
                          f"{exc})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(str(path), "node", f"expected a NIRGraph, not {type(graph).__name__}")
    return graph


def write_graph(graph: Any, path: str | Path) -> None:
    """Write a ``nir.NIRGraph`` atomically: a temp file in the same folder, then a rename."""
    path = Path(path)
    nir = _nir(str(path))
    with atomic_path(path) as tmp:
        nir.write(tmp, graph)


# ----------------------------------------------------------------------------- import
def _chain(graph: Any, nir: Any, src: str) -> tuple[str, list[str], str]:
    """(input name, node names strictly between Input and Output in order, output name)."""
    nodes = graph.nodes
    ins = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(ins) != 1 or len(outs) != 1:
        raise ConfigError(src, "nodes", f"expected one Input and one Output, found {ins}, {outs}")

    def node_of(ref: str) -> str:  # edges may name a port of a subgraph: "node.port"
        head = ref if ref in nodes else str(ref).split(".")[0]
        if head not in nodes:
            raise ConfigError(src, "edges", f"edge names unknown node {ref!r}")
        return head

    succ: dict[str, list[str]] = {}
    n_pred: dict[str, int] = {}
    for a, b in graph.edges:
        a, b = node_of(a), node_of(b)
        succ.setdefault(a, []).append(b)
        n_pred[b] = n_pred.get(b, 0) + 1
    chain: list[str] = []
    cur, seen = ins[0], {ins[0]}
    while cur != outs[0]:
        nxt = succ.get(cur, [])
        if len(nxt) != 1:
            raise ConfigError(src, f"nodes.{cur}", f"node has {len(nxt)} outgoing edges; only a "
                              f"simple chain Input -> ... -> Output is supported")
        cur = nxt[0]
        if cur in seen or n_pred.get(cur, 0) != 1:
            raise ConfigError(src, f"nodes.{cur}", f"node has {n_pred.get(cur, 0)} incoming "
                              f"edges (recurrence or merge); only a simple chain is supported")
        seen.add(cur)
        if cur != outs[0]:
            chain.append(cur)
    stray = sorted(set(nodes) - seen)
    if stray:
        raise ConfigError(src, f"nodes.{stray[0]}", "node is not on the Input -> Output chain")
    return ins[0], chain, outs[0]


def _ints(value: Any, src: str, where: str) -> list[int]:
    arr = np.atleast_1d(np.asarray(value)).ravel()
    if arr.dtype.kind not in "iu" and not np.all(arr == np.round(arr)):
        raise ConfigError(src, where, f"expected integers, got {arr.tolist()}")
    return [int(v) for v in arr]


def _square(value: Any, src: str, where: str) -> int:
    vals = _ints(value, src, where)
    if len(set(vals)) != 1:
        raise ConfigError(src, where, f"must be equal along both axes, got {vals}")
    return vals[0]


def _input_shape(node: Any, src: str, where: str) -> tuple[int, ...]:
    shape = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if shape is None:
        raise ConfigError(src, where, "Input node has no shape")
    dims = _ints(shape, src, where + ".shape")
    if len(dims) in (2, 4) and dims[0] == 1:  # a leading batch dimension of 1
        dims = dims[1:]
    if len(dims) not in (1, 3) or min(dims) < 1:
        raise ConfigError(src, where + ".shape", f"expected [N] or [C, H, W], got {dims}")
    return tuple(dims)


def _metadata(node: Any) -> dict:
    meta = getattr(node, "metadata", None)  # nir's default is the class ``dict`` itself
    return meta if isinstance(meta, dict) else {}


def _layer_name(key: str, kind: str, index: int) -> str:
    return f"{kind}{index}" if key.isdigit() else key


def _dense(node: Any, key: str, i: int, shape: tuple[int, ...], bias: bool, src: str) -> Dense:
    where = f"nodes.{key}"
    w = np.asarray(node.weight)
    if w.ndim != 2:
        raise ConfigError(src, where + ".weight", f"expected (out, in), got shape {w.shape}")
    if len(shape) != 1 or shape[0] != w.shape[1]:
        raise ConfigError(src, where + ".weight", f"takes {w.shape[1]} inputs but receives "
                          f"shape {list(shape)} (a Flatten node is needed before it)")
    layer = Dense(_layer_name(key, "dense", i), int(w.shape[1]), int(w.shape[0]),
                  weight=np.ascontiguousarray(w.T, dtype=_F32), has_bias=bias)
    if bias:
        b = np.asarray(node.bias, dtype=_F32).ravel()
        if b.shape != (w.shape[0],):
            raise ConfigError(src, where + ".bias", f"expected {w.shape[0]} values, not {b.size}")
        layer.bias = b
    return layer


def _conv(node: Any, key: str, i: int, shape: tuple[int, ...], src: str) -> Conv2d:
    where = f"nodes.{key}"
    w = np.asarray(node.weight)
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ConfigError(src, where + ".weight", f"expected (O, C, k, k) with a square kernel, "
                          f"got shape {w.shape}")
    if len(shape) != 3 or shape[0] != w.shape[1]:
        raise ConfigError(src, where + ".weight", f"takes {w.shape[1]} input channels but "
                          f"receives shape {list(shape)}")
    k = int(w.shape[2])
    stride = _square(node.stride, src, where + ".stride")
    if isinstance(node.padding, str):
        if node.padding == "valid" or (node.padding == "same" and stride == 1 and k % 2):
            padding = 0 if node.padding == "valid" else (k - 1) // 2
        else:
            raise ConfigError(src, where + ".padding", f"padding {node.padding!r} is not "
                              f"supported with stride {stride} and kernel {k}")
    else:
        padding = _square(node.padding, src, where + ".padding")
    if set(_ints(node.dilation, src, where + ".dilation")) != {1}:
        raise ConfigError(src, where + ".dilation", "only dilation 1 is supported")
    if _ints(node.groups, src, where + ".groups") != [1]:
        raise ConfigError(src, where + ".groups", "only groups = 1 is supported")
    if node.input_shape is not None and tuple(_ints(node.input_shape, src, where)) != shape[1:]:
        raise ConfigError(src, where + ".input_shape", f"{_ints(node.input_shape, src, where)}"
                          f" does not match the incoming shape {list(shape)}")
    bias = np.broadcast_to(np.asarray(node.bias, dtype=_F32).ravel(), (w.shape[0],)).copy()
    # NIR's Conv2d always has a bias: all zeros means none, unless our export said otherwise
    has_bias = bool(_metadata(node).get("has_bias", False)) or bool(np.any(bias != 0))
    layer = Conv2d(_layer_name(key, "conv2d", i), shape, int(w.shape[0]), k,  # type: ignore[arg-type]
                   stride, padding, weight=np.ascontiguousarray(w, dtype=_F32),
                   bias=bias if has_bias else None, has_bias=has_bias)
    if min(layer.out_shape[1:]) < 1:
        raise ConfigError(src, where, f"kernel {k} does not fit input {list(shape)}")
    return layer


def _pool(node: Any, key: str, i: int, shape: tuple[int, ...], src: str) -> AvgPool2d:
    where = f"nodes.{key}"
    if len(shape) != 3:
        raise ConfigError(src, where, f"AvgPool2d needs a [C, H, W] input, got {list(shape)}")
    k = _square(node.kernel_size, src, where + ".kernel_size")
    s = _square(node.stride, src, where + ".stride")
    if any(_ints(node.padding, src, where + ".padding")):
        raise ConfigError(src, where + ".padding", "only padding 0 is supported")
    layer = AvgPool2d(_layer_name(key, "avgpool2d", i), shape, k, s)  # type: ignore[arg-type]
    if k < 1 or s < 1 or min(layer.out_shape[1:]) < 1:
        raise ConfigError(src, where, f"pool kernel {k} / stride {s} do not fit {list(shape)}")
    return layer


def _flatten(node: Any, key: str, i: int, shape: tuple[int, ...], src: str) -> Flatten:
    nd, start, end = len(shape), int(node.start_dim), int(node.end_dim)  # no batch dimension
    if nd > 1 and (start % nd != 0 or end % nd != nd - 1):
        raise ConfigError(src, f"nodes.{key}.start_dim", f"only flattening every dimension of "
                          f"{list(shape)} is supported (start_dim {node.start_dim}, end_dim "
                          f"{node.end_dim})")
    return Flatten(_layer_name(key, "flatten", i), shape)


def _uniform(node: Any, field: str, size: int, src: str, where: str) -> float:
    arr = np.asarray(getattr(node, field), dtype=np.float64).ravel()
    if arr.size not in (1, size):
        raise ConfigError(src, f"{where}.{field}", f"has {arr.size} values for {size} neurons")
    if not np.all(arr == arr[0]) or not math.isfinite(arr[0]):
        raise ConfigError(src, f"{where}.{field}", "per-neuron values differ (or are not "
                          "finite); simsnn neurons share one value per layer")
    return float(arr[0])


def _neuron(node: Any, nir: Any, size: int, dt: float, src: str,
            where: str) -> tuple[NeuronParams, float]:
    """NeuronParams of a LIF/IF node and the input scale to fold into the synaptic layer."""
    thr = _uniform(node, "v_threshold", size, src, where)
    v_reset = _uniform(node, "v_reset", size, src, where)
    r = _uniform(node, "r", size, src, where)
    if isinstance(node, nir.LIF):
        tau = _uniform(node, "tau", size, src, where)
        if _uniform(node, "v_leak", size, src, where) != 0.0:
            raise ConfigError(src, f"{where}.v_leak", "only v_leak = 0 is supported")
        if not tau > 0.0 or dt > tau:
            raise ConfigError(src, f"{where}.tau", f"tau = {tau} must be positive and at least "
                              f"dt = {dt} (forward Euler is unstable otherwise)")
        leak, scale = 1.0 - dt / tau, dt * r / tau
    else:
        leak, scale = 1.0, dt * r
    if abs(scale - 1.0) <= SCALE_RTOL:
        scale = 1.0
    params = NeuronParams(leak=float(_F32(leak)), threshold=float(_F32(thr)),
                          soft_reset=False, v_reset=float(_F32(v_reset)))
    return params, scale


def _fold(layer: Dense | Conv2d, scale: float) -> None:
    layer.weight = (layer.weight.astype(np.float64) * scale).astype(_F32)  # type: ignore[union-attr]
    if layer.bias is not None:
        layer.bias = (layer.bias.astype(np.float64) * scale).astype(_F32)


def import_nir(path_or_graph: Any, dt: float | None, name: str | None = None,
               timesteps: int | None = None) -> Network:
    """Build a dense :class:`Network` (direct coding) from a NIR file or ``nir.NIRGraph``.

    ``dt`` (seconds) discretizes the continuous-time neurons (see the module docstring).
    ``timesteps`` is the network's default number of steps: NIR has no such notion, so it is
    the one recorded by :func:`export_nir` in the graph metadata, else ``DEFAULT_TIMESTEPS``.
    """
    is_path = isinstance(path_or_graph, (str, os.PathLike))
    src = str(path_or_graph) if is_path else "<nir graph>"
    if dt is None:
        raise ConfigError(src, "dt", "NIR neurons are continuous-time: pass the time step dt "
                          "(snnTorch exports with dt=1e-4)")
    if isinstance(dt, bool) or not (isinstance(dt, (int, float)) and math.isfinite(dt)
                                    and dt > 0):
        raise ConfigError(src, "dt", f"must be a positive number of seconds, got {dt!r}")
    nir = _nir(src)
    graph = read_graph(path_or_graph) if is_path else path_or_graph
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(src, "", f"expected a path or a nir.NIRGraph, got "
                          f"{type(graph).__name__}")
    meta = _metadata(graph)
    if timesteps is None:
        simsnn_made = meta.get("producer") == "simsnn" and "timesteps" in meta
        timesteps = int(meta["timesteps"]) if simsnn_made else DEFAULT_TIMESTEPS
    if int(timesteps) < 1:
        raise ConfigError(src, "timesteps", f"must be at least 1, got {timesteps}")
    in_key, chain, out_key = _chain(graph, nir, src)
    input_shape = _input_shape(graph.nodes[in_key], src, f"nodes.{in_key}")
    shape = input_shape
    layers: list[Layer] = []
    prev_key = in_key
    for key in chain:
        node, where = graph.nodes[key], f"nodes.{key}"
        last = layers[-1] if layers else None
        if isinstance(node, (nir.LIF, nir.IF)):
            if last is None or not is_synaptic(last) or last.neuron is not None:
                raise ConfigError(src, where, f"{type(node).__name__} node must follow an "
                                  f"Affine, Linear or Conv2d node")
            params, scale = _neuron(node, nir, int(np.prod(shape)), float(dt), src, where)
            last.neuron = params
            if scale != 1.0:
                _fold(last, scale)
            prev_key = key
            continue
        if not isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d, nir.AvgPool2d,
                                 nir.Flatten)):
            raise ConfigError(src, where, f"unsupported NIR node {type(node).__name__} "
                              f"(supported: Affine, Linear, Conv2d, AvgPool2d, Flatten, LIF, IF)")
        if last is not None and is_synaptic(last) and last.neuron is None:
            raise ConfigError(src, f"nodes.{prev_key}", "a synaptic node without a LIF/IF node "
                              "after it is a non-spiking readout: only allowed last")
        i = len(layers)
        if isinstance(node, (nir.Affine, nir.Linear)):
            layer: Layer = _dense(node, key, i, shape, isinstance(node, nir.Affine), src)
        elif isinstance(node, nir.Conv2d):
            layer = _conv(node, key, i, shape, src)
        elif isinstance(node, nir.AvgPool2d):
            layer = _pool(node, key, i, shape, src)
        else:
            layer = _flatten(node, key, i, shape, src)
        layers.append(layer)
        shape = layer.out_shape
        prev_key = key
    if len(shape) != 1 or not any(is_synaptic(layer) for layer in layers):
        raise ConfigError(src, f"nodes.{out_key}", f"the chain must hold a synaptic node and "
                          f"end with a flat vector, got shape {list(shape)}")
    net_name = name or (Path(src).stem if is_path else "nir_graph")
    return Network(net_name, "dense", input_shape, "direct", int(timesteps), int(shape[0]),
                   layers)


# ----------------------------------------------------------------------------- export
def _neuron_node(layer: Dense | Conv2d, p: NeuronParams, nir: Any, dt: float) -> Any:
    if p.soft_reset:
        raise NetworkError(f"layer {layer.name!r} uses a soft reset (subtract the threshold), "
                           f"which NIR cannot express: NIR LIF/IF nodes reset to v_reset")
    shape = layer.out_shape

    def full(value: float) -> np.ndarray:
        return np.full(shape, value, dtype=np.float64)

    if p.leak == 1.0:
        return nir.IF(r=full(1.0 / dt), v_threshold=full(p.threshold), v_reset=full(p.v_reset))
    if not 0.0 <= p.leak < 1.0:
        raise NetworkError(f"layer {layer.name!r}: leak {p.leak} has no NIR LIF equivalent")
    tau = dt / (1.0 - p.leak)
    return nir.LIF(tau=full(tau), r=full(tau / dt), v_leak=full(0.0),
                   v_threshold=full(p.threshold), v_reset=full(p.v_reset))


def _layer_node(layer: Layer, nir: Any) -> Any:
    if isinstance(layer, Dense):
        w = np.ascontiguousarray(np.asarray(layer.weight, dtype=_F32).T)
        if layer.has_bias and layer.bias is not None:
            return nir.Affine(weight=w, bias=np.asarray(layer.bias, dtype=_F32))
        return nir.Linear(weight=w)
    if isinstance(layer, Conv2d):
        bias = (np.asarray(layer.bias, dtype=_F32) if layer.bias is not None
                else np.zeros(layer.out_channels, dtype=_F32))
        return nir.Conv2d(input_shape=tuple(layer.in_shape[1:]),
                          weight=np.asarray(layer.weight, dtype=_F32),
                          stride=(layer.stride, layer.stride),
                          padding=(layer.padding, layer.padding), dilation=(1, 1), groups=1,
                          bias=bias, metadata={"has_bias": bool(layer.has_bias)})
    if isinstance(layer, AvgPool2d):
        return nir.AvgPool2d(kernel_size=np.array([layer.kernel] * 2),
                             stride=np.array([layer.stride] * 2), padding=np.array([0, 0]))
    if isinstance(layer, Flatten):
        return nir.Flatten(input_type={"input": np.array(layer.in_shape)}, start_dim=0,
                           end_dim=-1)
    raise NetworkError(f"layer {getattr(layer, 'name', layer)!r} has no NIR equivalent")


def _node_key(name: str, taken: dict[str, Any]) -> str:
    """A unique node name usable as an HDF5 group (no "/" or "."), not "input" or "output"."""
    base = name.replace("/", "_").replace(".", "_") or "layer"
    key, n = base, 1
    while key in taken or key in ("input", "output"):
        key, n = f"{base}_{n}", n + 1
    return key


def export_nir(net: AnyNetwork, path: str | Path | None = None, dt: float = EXPORT_DT) -> Any:
    """Export a dense network as a ``nir.NIRGraph``; write it (atomically) when ``path`` is given.

    Neurons become LIF nodes with ``tau = dt / (1 - leak)``, ``r = tau / dt`` (input scale 1)
    and ``v_leak = 0``, or IF nodes with ``r = 1 / dt`` when ``leak == 1``; importing the file
    with the same ``dt`` gives back the same network.
    """
    if isinstance(net, Ensemble) or net.family != "dense" or net.gate is not None:
        raise NetworkError(f"{net.name}: NIR has no gating or ensemble node; only dense "
                           f"networks can be exported (family is {net.family!r})")
    if not (math.isfinite(dt) and dt > 0):
        raise NetworkError(f"export dt must be a positive number of seconds, got {dt!r}")
    if not net.has_weights:
        raise NetworkError(f"{net.name} has no weights to export")
    nir = _nir(str(path) if path is not None else "<python>")
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(net.input_shape)})}
    order = ["input"]
    for i, layer in enumerate(net.layers):
        if getattr(layer, "groups", None) is not None:
            raise NetworkError(f"{net.name}: layer {layer.name!r} is gated; NIR has no gating")
        if is_synaptic(layer) and layer.neuron is None and i != len(net.layers) - 1:
            raise NetworkError(f"{net.name}: non-spiking layer {layer.name!r} is not the last "
                               f"layer")
        key = _node_key(layer.name, nodes)
        nodes[key] = _layer_node(layer, nir)
        order.append(key)
        if is_synaptic(layer) and layer.neuron is not None:
            nkey = _node_key(f"{key}_{'if' if layer.neuron.leak == 1.0 else 'lif'}", nodes)
            nodes[nkey] = _neuron_node(layer, layer.neuron, nir, float(dt))  # type: ignore[arg-type]
            order.append(nkey)
    out_shape = np.array(net.layers[-1].out_shape)
    nodes["output"] = nir.Output(output_type={"output": out_shape})
    order.append("output")
    meta = {"producer": "simsnn", "dt": float(dt), "timesteps": int(net.timesteps)}
    graph = nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata=meta)
    if path is not None:
        write_graph(graph, path)
    return graph
