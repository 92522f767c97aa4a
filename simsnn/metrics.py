"""NeuroBench-compatible static and workload metrics of a network on a trace.

Definitions follow NeuroBench (Yik et al., 2023/2025): footprint (bytes of parameters and
buffers), parameter count, connection sparsity (fraction of zero weights), activation sparsity
(1 - spikes / neuron-steps), synaptic operations split into Dense (every connection every step),
Effective MACs (graded inputs) and Effective ACs (binary spike inputs), counting only open
(gated-in) outputs, and membrane updates (open neurons x time steps). Numbers are per sample
(mean over the trace's samples).
"""
from __future__ import annotations

import numpy as np

from simsnn.footprint import footprint
from simsnn.network import AnyNetwork, Conv2d, Dense, Ensemble, is_synaptic
from simsnn.replay import replay
from simsnn.trace import SpikeTrace


def _all_layers(net: AnyNetwork):
    if isinstance(net, Ensemble):
        return [layer for m in net.members for layer in m.layers]
    return net.layers


def connection_sparsity(net: AnyNetwork) -> float | None:
    """Fraction of synaptic weights that are exactly zero (None without weights)."""
    zeros = total = 0
    for layer in _all_layers(net):
        if is_synaptic(layer):
            if layer.weight is None:
                return None
            zeros += int(np.count_nonzero(layer.weight == 0))
            total += layer.weight.size
    return zeros / total if total else 0.0


def _conv_reach(layer: Conv2d) -> np.ndarray:
    """(H, W) number of output positions each input position feeds."""
    _, h, w = layer.in_shape
    _, ho, wo = layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.padding

    def axis(n, no):
        r = np.zeros(n, dtype=np.int64)
        for y in range(n):
            r[y] = sum(1 for ky in range(k) if (y + p - ky) >= 0 and (y + p - ky) % s == 0
                       and (y + p - ky) // s < no)
        return r

    return np.outer(axis(h, ho), axis(w, wo))


def synaptic_ops(net: AnyNetwork, trace: SpikeTrace) -> dict[str, float]:
    """Dense, effective MAC and AC synaptic operations and membrane updates, per sample."""
    B = trace.n_samples
    dense = macs = acs = updates = 0.0
    per_layer = {}
    for act in replay(net, trace):
        layer = act.layer
        T = act.inputs.shape[1]
        n_open = act.active.sum(axis=1)  # (B,)
        if isinstance(layer, Dense):
            d = float(layer.in_features * layer.out_features * T)
            events = act.inputs.reshape(B, T, -1).sum(axis=(1, 2))
            eff = float((events * n_open).sum()) / B
            neurons = n_open
        else:
            o, ho, wo = layer.out_shape
            d = float(layer.in_shape[0] * layer.kernel**2 * o * ho * wo * T)
            reach = _conv_reach(layer)
            fan = (act.inputs * reach[None, None, None]).sum(axis=(1, 2, 3, 4))
            eff = float((fan * n_open).sum()) / B
            neurons = n_open * ho * wo
        if act.binary_inputs:
            acs += eff
        else:
            macs += eff
        dense += d
        upd = float(neurons.sum()) * T / B if layer.neuron is not None else 0.0
        updates += upd
        per_layer[act.name] = {"dense_ops": d, "effective_ops": eff, "membrane_updates": upd,
                               "binary_inputs": act.binary_inputs}
    return {"dense": dense, "effective_macs": macs, "effective_acs": acs,
            "membrane_updates": updates, "layers": per_layer}


def activation_sparsity(trace: SpikeTrace) -> float:
    """1 - (spikes / neuron-steps) over every spiking layer of the trace (input excluded)."""
    spikes = steps = 0
    for name, arr in trace.layers.items():
        if name != "input":
            spikes += int(arr.sum())
            steps += arr.size
    return 1.0 - spikes / steps if steps else 1.0


def neurobench_metrics(net: AnyNetwork, trace: SpikeTrace | None = None) -> dict:
    """The NeuroBench static metrics, plus the workload metrics when a trace is given."""
    fp = footprint(net, trace)
    out = {
        "footprint_bytes": fp["total_bytes"],
        "parameter_count": fp["params"],
        "connection_sparsity": connection_sparsity(net),
    }
    if trace is not None:
        ops = synaptic_ops(net, trace)
        out.update({
            "activation_sparsity": activation_sparsity(trace),
            "synaptic_operations": {k: ops[k] for k in ("dense", "effective_macs",
                                                         "effective_acs")},
            "membrane_updates": ops["membrane_updates"],
            "classification_accuracy": trace.accuracy(),
        })
    return out
