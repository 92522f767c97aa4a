"""Event-driven inference of dense, gated and task-specialized networks (numpy + numba).

Layers are evaluated layer-major (all time steps of one layer, then the next): the networks are
feed-forward, so this gives exactly the spikes of a step-major evaluation.
"""
from __future__ import annotations

import numpy as np

from simsnn import kernels
from simsnn.errors import NetworkError
from simsnn.network import (
    AnyNetwork,
    AvgPool2d,
    Conv2d,
    Dense,
    Ensemble,
    Flatten,
    Gate,
    Network,
)
from simsnn.trace import SpikeTrace

_F32 = np.float32


def encode(inputs: np.ndarray, timesteps: int, coding: str, seed: int = 0) -> np.ndarray:
    """(B, *shape) -> (B, T, *shape) float32 input events (direct: repeated; rate: Bernoulli)."""
    x = np.asarray(inputs, dtype=_F32)
    if coding == "direct":
        shape = (x.shape[0], timesteps) + x.shape[1:]
        return np.ascontiguousarray(np.broadcast_to(x[:, None], shape))
    rng = np.random.default_rng(seed)
    p = np.clip(x, 0.0, 1.0)
    return (rng.random((x.shape[0], timesteps) + x.shape[1:]) < p[:, None]).astype(_F32)


def gate_scores(gate: Gate, features: np.ndarray) -> np.ndarray:
    """Class scores (B, C) of the gate classifier for flattened features (B, F)."""
    p = gate.params
    h = features @ p["w1"] + p["b1"]
    if gate.kind == "mlp":
        h = np.maximum(h, 0.0) @ p["w2"] + p["b2"]
    return h.astype(_F32)


def gate_decide(gate: Gate, features: np.ndarray,
                labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (top-k classes (B, k), active groups (B, G) bool) for a batch."""
    if gate.kind == "oracle":
        if labels is None:
            raise NetworkError("an oracle gate needs the labels of the inputs")
        top = np.asarray(labels, dtype=np.int64)[:, None]
    else:
        scores = gate_scores(gate, features)
        top = np.argsort(-scores, axis=1, kind="stable")[:, : gate.top_k]
    groups = gate.class_to_groups[top].any(axis=1)
    return top, groups


def _active_units(layer: Dense | Conv2d, groups: np.ndarray | None, batch: int) -> np.ndarray:
    n = layer.out_features if isinstance(layer, Dense) else layer.out_channels
    if layer.groups is None or groups is None:
        return np.ones((batch, n), dtype=np.bool_)
    shared = layer.groups < 0
    spec = np.where(shared, 0, layer.groups)
    return shared[None, :] | groups[:, spec]


def _neuron_args(layer: Dense | Conv2d) -> tuple:
    p = layer.neuron
    return _F32(p.leak), _F32(p.threshold), bool(p.soft_reset), _F32(p.v_reset)


def _bias(layer: Dense | Conv2d, n: int) -> np.ndarray:
    return layer.bias.astype(_F32) if layer.bias is not None else np.zeros(n, _F32)


def apply_layer(layer, x: np.ndarray, active: np.ndarray | None) -> np.ndarray:
    """Run one layer over all time steps. x: (B, T, *in_shape) float32 events."""
    B, T = x.shape[:2]
    if isinstance(layer, Dense):
        xin = np.ascontiguousarray(x.reshape(B, T, -1), dtype=_F32)
        w = np.ascontiguousarray(layer.weight, dtype=_F32)
        bias = _bias(layer, layer.out_features)
        if layer.neuron is None:
            return kernels.dense_readout(xin, w, bias)
        act = active if active is not None else np.ones((B, layer.out_features), np.bool_)
        return kernels.dense_spiking(xin, w, bias, act, *_neuron_args(layer))
    if isinstance(layer, Conv2d):
        _, ho, wo = layer.out_shape
        act = active if active is not None else np.ones((B, layer.out_channels), np.bool_)
        return kernels.conv_spiking(np.ascontiguousarray(x, dtype=_F32),
                                    np.ascontiguousarray(layer.weight, dtype=_F32),
                                    _bias(layer, layer.out_channels), act, layer.stride,
                                    layer.padding, ho, wo, *_neuron_args(layer))
    if isinstance(layer, AvgPool2d):
        k, s = layer.kernel, layer.stride
        c, ho, wo = layer.out_shape
        xf = x.astype(_F32, copy=False)
        win = np.lib.stride_tricks.sliding_window_view(xf, (k, k), axis=(3, 4))[:, :, :, ::s, ::s]
        return (win[:, :, :, :ho, :wo].sum(axis=(-1, -2), dtype=_F32) / _F32(k * k)).astype(_F32)
    if isinstance(layer, Flatten):
        return x.reshape(B, T, -1)
    raise TypeError(f"unknown layer {layer!r}")


def _check_input(net: AnyNetwork, inputs: np.ndarray) -> np.ndarray:
    x = np.asarray(inputs, dtype=_F32)
    shape = tuple(net.input_shape)
    if x.ndim == len(shape) + 2 and x.shape[2:] == shape:
        return x  # already encoded events (B, T, *shape)
    if x.shape[1:] != shape:
        if x.ndim == 2 and int(np.prod(shape)) == x.shape[1]:
            x = x.reshape((x.shape[0],) + shape)
        else:
            dims = ", ".join(map(str, shape))
            raise NetworkError(f"{net.name} expects inputs of shape [B, {dims}], got "
                               f"{list(x.shape)}")
    if not net.has_weights:
        raise NetworkError(f"{net.name} has no weights (init: none); it can be used for "
                           f"footprint and synthetic traces only")
    return x


def _run_single(net: Network, x_events: np.ndarray, static_x: np.ndarray,
                labels: np.ndarray | None, record: dict | None, prefix: str = ""):
    B = x_events.shape[0]
    h = x_events
    groups = top = None
    for i, layer in enumerate(net.layers):
        if net.gate is not None and i == net.gate.position:
            feats = static_x.reshape(B, -1) if i == 0 else h.mean(axis=1).reshape(B, -1)
            top, groups = gate_decide(net.gate, feats.astype(_F32), labels)
        active = None
        if isinstance(layer, (Dense, Conv2d)) and layer.neuron is not None:
            active = _active_units(layer, groups, B)
        out = apply_layer(layer, h, active)
        if layer.neuron is not None and record is not None:
            record[prefix + layer.name] = out.reshape(B, out.shape[1], -1).astype(bool)
        h = out.astype(_F32) if out.dtype == np.uint8 else out
    if h.ndim == 3:  # spiking last layer (e.g. imported from NIR): spike rate per unit
        h = h.mean(axis=1)
    return h, top, groups


def _aggregate(net: Ensemble, member_out: np.ndarray) -> np.ndarray:
    p = net.aggregator.params
    h = member_out @ p["w1"] + p["b1"]
    h = 1.0 / (1.0 + np.exp(-h)) if net.aggregator.activation == "sigmoid" else np.maximum(h, 0)
    return (h @ p["w2"] + p["b2"]).astype(_F32)


def run_network(net: AnyNetwork, inputs: np.ndarray, timesteps: int | None = None,
                record: bool = False, labels: np.ndarray | None = None, seed: int = 0,
                batch_size: int = 512) -> tuple[np.ndarray, SpikeTrace | None]:
    """Run ``net`` on ``inputs`` (B, *input_shape); return (class scores (B, C), trace or None).

    ``inputs`` may also be pre-encoded events (B, T, *input_shape), used as they are (the gate
    then reads their mean over time). ``timesteps`` defaults to the network's own; ``labels``
    are stored in the trace (and needed by an oracle gate); ``seed`` drives rate coding.
    """
    T = int(timesteps or net.timesteps)
    x = _check_input(net, inputs)
    lab = None if labels is None else np.asarray(labels, dtype=np.int64)
    outs, recs, tops, grps = [], [], [], []
    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        lb = None if lab is None else lab[start:start + batch_size]
        if xb.ndim == len(net.input_shape) + 2:
            ev, xb = xb, xb.mean(axis=1)
            T = ev.shape[1]
        else:
            ev = encode(xb, T, net.coding, seed + start)
        rec: dict | None = {} if record else None
        if rec is not None:
            rec["input"] = (ev != 0).reshape(ev.shape[0], T, -1)
        if isinstance(net, Ensemble):
            parts = [_run_single(m, ev, xb, lb, rec, f"m{i}.")[0]
                     for i, m in enumerate(net.members)]
            out = _aggregate(net, np.concatenate(parts, axis=1))
        else:
            out, top, groups = _run_single(net, ev, xb, lb, rec)
            if groups is not None:
                tops.append(top)
                grps.append(groups)
        outs.append(out)
        recs.append(rec)
    scores = np.concatenate(outs, axis=0)
    if not record:
        return scores, None
    layers = {k: np.concatenate([r[k] for r in recs], axis=0) for k in recs[0]}
    trace = SpikeTrace(
        network=net.name, family=net.family, timesteps=T, layers=layers,
        gate_groups=np.concatenate(grps) if grps else None,
        gate_classes=np.concatenate(tops) if tops else None,
        labels=lab, predictions=scores.argmax(axis=1).astype(np.int64),
        meta={"coding": net.coding, "seed": seed, "source": "inference"},
    )
    return scores, trace
