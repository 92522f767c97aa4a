"""Static and per-inference memory footprint of a network, in bytes.

Conventions (docs/footprint.md): weights and biases are stored in the network's
``weight_dtype`` (int8 adds one fp32 scale per layer); membrane potentials are fp32 (4 bytes per
neuron); the spike buffer of a layer is a bitmap of one time step (ceil(N / 8) bytes); the input
buffer holds one input sample in fp32.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from simsnn.network import AnyNetwork, Conv2d, Dense, Ensemble, Gate, Network, is_synaptic

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def _units(layer) -> int:
    return int(np.prod(layer.out_shape))


def _weight_bytes(n_weights: int, dtype: str) -> int:
    return n_weights * DTYPE_BYTES[dtype] + (4 if dtype == "int8" and n_weights else 0)


def _layer_rows(net: Network, dtype: str, prefix: str = "") -> list[dict]:
    rows = []
    for layer in net.layers:
        neurons = _units(layer) if (is_synaptic(layer) and layer.neuron is not None) else 0
        rows.append({
            "name": prefix + layer.name, "type": type(layer).__name__.lower(),
            "params": layer.n_params,
            "weight_bytes": _weight_bytes(layer.n_params, dtype),
            "neurons": neurons,
            "membrane_bytes": 4 * neurons,
            "spike_buffer_bytes": (neurons + 7) // 8,
        })
    return rows


def _gate_decisions(gate: Gate) -> np.ndarray:
    """Every possible set of open groups (one row per top-k class combination)."""
    combos = list(combinations(range(gate.num_classes), gate.top_k if gate.kind != "oracle" else 1))
    return np.array([gate.class_to_groups[list(c)].any(axis=0) for c in combos], dtype=bool)


def active_mask(layer, groups: np.ndarray) -> np.ndarray:
    """(D, units) bool: which output units/channels of ``layer`` run under each decision."""
    n = layer.out_features if isinstance(layer, Dense) else layer.out_channels
    if layer.groups is None:
        return np.ones((groups.shape[0], n), dtype=bool)
    shared = layer.groups < 0
    return shared[None, :] | groups[:, np.where(shared, 0, layer.groups)]


def touched_weights(net: Network, groups: np.ndarray) -> np.ndarray:
    """Number of weights that can be read under each gate decision (rows of ``groups``):
    the weights connecting open (or shared) inputs to open (or shared) outputs."""
    d = groups.shape[0]
    total = np.zeros(d, dtype=np.int64)
    in_active: np.ndarray | None = None  # (D, in units) of the previous synaptic layer's outputs
    in_shape_units = None
    for layer in net.layers:
        if isinstance(layer, (Dense, Conv2d)):
            out_act = active_mask(layer, groups)
            if isinstance(layer, Dense):
                n_in = layer.in_features
                if in_active is not None and in_shape_units is not None:
                    # expand per-channel activity over spatial positions after a flatten
                    rep = n_in // in_active.shape[1]
                    ins = np.repeat(in_active, rep, axis=1).sum(axis=1)
                else:
                    ins = np.full(d, n_in)
                total += ins * out_act.sum(axis=1) + (out_act.sum(axis=1) if layer.has_bias else 0)
            else:
                cin = layer.in_shape[0]
                ins = in_active.sum(axis=1) if in_active is not None else np.full(d, cin)
                total += ins * out_act.sum(axis=1) * layer.kernel**2 + (
                    out_act.sum(axis=1) if layer.has_bias else 0)
            in_active = out_act
            in_shape_units = True
    return total


def footprint(net: AnyNetwork, trace=None) -> dict:
    """Static footprint per layer and in total, plus the weights touched per inference.

    For gated networks ``touched`` gives the mean and max over gate decisions: those recorded in
    ``trace`` if given, else every top-k class combination (equally likely).
    """
    dtype = net.weight_dtype
    if isinstance(net, Ensemble):
        rows = [r for i, m in enumerate(net.members) for r in _layer_rows(m, dtype, f"m{i}.")]
        extra = net.aggregator.n_params
        extra_name = "aggregator"
    else:
        rows = _layer_rows(net, dtype)
        extra = net.gate.n_params if net.gate is not None else 0
        extra_name = "gate"
    weights = sum(r["weight_bytes"] for r in rows)
    extra_bytes = _weight_bytes(extra, dtype) if extra else 0
    state = sum(r["membrane_bytes"] + r["spike_buffer_bytes"] for r in rows)
    input_bytes = 4 * int(np.prod(net.input_shape))
    params = sum(r["params"] for r in rows)
    out = {
        "network": net.name, "family": net.family, "weight_dtype": dtype,
        "bytes_per_weight": DTYPE_BYTES[dtype],
        "layers": rows,
        f"{extra_name}_params": extra, f"{extra_name}_bytes": extra_bytes,
        "params": params + extra,
        "weight_bytes": weights + extra_bytes,
        "state_bytes": state, "input_buffer_bytes": input_bytes,
        "total_bytes": weights + extra_bytes + state + input_bytes,
    }
    per_weight = DTYPE_BYTES[dtype]
    if isinstance(net, Network) and net.gate is not None:
        if trace is not None and trace.gate_groups is not None:
            decisions, source = np.asarray(trace.gate_groups, bool), "trace"
        else:
            decisions, source = _gate_decisions(net.gate), "all top-k class combinations"
        touched = touched_weights(net, decisions) * per_weight + extra_bytes
        out["touched_weight_bytes"] = {"mean": float(touched.mean()), "max": int(touched.max()),
                                       "min": int(touched.min()), "over": source,
                                       "decisions": int(len(decisions))}
    else:
        out["touched_weight_bytes"] = {"mean": float(weights + extra_bytes),
                                       "max": weights + extra_bytes, "min": weights + extra_bytes,
                                       "over": "no gate: every weight", "decisions": 1}
    return out
