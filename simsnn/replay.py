"""Walk a network along a recorded trace: what each synaptic layer received and which of its
units were open. Shared by the NeuroBench counts, synthetic traces and (later) the lowering onto
the hardware workload, so they all read a trace the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from simsnn.errors import NetworkError
from simsnn.footprint import active_mask
from simsnn.network import AnyNetwork, AvgPool2d, Conv2d, Dense, Ensemble, Flatten, Network
from simsnn.trace import SpikeTrace


@dataclass
class LayerActivity:
    """One synaptic layer during a trace.

    ``inputs``: (B, T, *in_shape) bool, the non-zero input events; ``active``: (B, units) bool,
    the open output units (channels for conv); ``spikes``: (B, T, out units) bool or None for a
    non-spiking readout; ``binary_inputs``: whether input events are 0/1 spikes (else graded
    values, e.g. direct-coded pixels or pooled spikes).
    """

    name: str
    layer: Dense | Conv2d
    inputs: np.ndarray
    active: np.ndarray
    spikes: np.ndarray | None
    binary_inputs: bool


def _pool_any(x: np.ndarray, layer: AvgPool2d) -> np.ndarray:
    k, s = layer.kernel, layer.stride
    _, ho, wo = layer.out_shape
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(3, 4))[:, :, :, ::s, ::s]
    return win[:, :, :, :ho, :wo].any(axis=(-1, -2))


def _walk(net: Network, trace: SpikeTrace, inputs: np.ndarray, binary: bool,
          groups: np.ndarray | None, prefix: str) -> Iterator[LayerActivity]:
    B, T = inputs.shape[:2]
    cur = inputs.reshape((B, T) + tuple(net.input_shape))
    for layer in net.layers:
        if isinstance(layer, (Dense, Conv2d)):
            key = prefix + layer.name
            if groups is not None and layer.groups is not None:
                active = active_mask(layer, groups)
            else:
                n = layer.out_features if isinstance(layer, Dense) else layer.out_channels
                active = np.ones((B, n), dtype=bool)
            spikes = None
            if layer.neuron is not None:
                if key not in trace.layers:
                    raise NetworkError(f"trace of {trace.network!r} has no layer {key!r} "
                                       f"(has {list(trace.layers)[:6]})")
                spikes = trace.layers[key]
                if spikes.shape[2] != int(np.prod(layer.out_shape)):
                    raise NetworkError(f"trace layer {key!r} has {spikes.shape[2]} units, the "
                                       f"network has {int(np.prod(layer.out_shape))}")
            yield LayerActivity(key, layer, cur.reshape((B, T) + tuple(layer.in_shape)), active,
                                spikes, binary)
            if spikes is None:
                return
            cur = spikes.reshape((B, T) + tuple(layer.out_shape))
            binary = True
        elif isinstance(layer, AvgPool2d):
            cur = _pool_any(cur, layer)
            binary = binary and layer.kernel == 1
        elif isinstance(layer, Flatten):
            cur = cur.reshape(B, T, -1)


def replay(net: AnyNetwork, trace: SpikeTrace) -> Iterator[LayerActivity]:
    """Yield the activity of every synaptic layer of ``net`` (all members of an ensemble)."""
    if "input" not in trace.layers:
        raise NetworkError("trace has no 'input' layer of input events")
    inputs = trace.layers["input"]
    if inputs.shape[2] != int(np.prod(net.input_shape)):
        raise NetworkError(f"trace input has {inputs.shape[2]} units, network {net.name!r} "
                           f"expects {int(np.prod(net.input_shape))}")
    binary = net.coding == "rate" or trace.meta.get("input_binary", False)
    if isinstance(net, Ensemble):
        for i, member in enumerate(net.members):
            yield from _walk(member, trace, inputs, binary, None, f"m{i}.")
    else:
        groups = trace.gate_groups if net.gate is not None else None
        if net.gate is not None and groups is None:
            raise NetworkError(f"{net.name!r} is gated but the trace holds no gate decisions")
        yield from _walk(net, trace, inputs, binary, groups, "")
