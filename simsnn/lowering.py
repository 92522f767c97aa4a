"""Lowering: network + memory layout + trace -> hwmodels Workload.

It describes the event-driven program exactly as the measurement backend runs it (see
docs/workload.md): per sample, the input encoder at every step, then per layer (layer-major)
every time step as a phase, in which each core processes all input events against its share
of the open output units (for every event, ascending unit index, and every run of consecutive
open units it reads the weight row piece and updates the current piece; a convolution's event
does so for every valid tap of its window), then updates the membranes of its open units and
lists its spikes; after the layer's last step the driver merges the cores' lists into the
next layer's sorted event lists. Closed (gated-off) units are neither read nor updated. The
phases are built by simsnn.phases from the accesses of simsnn.accesses.
"""
from __future__ import annotations

import numpy as np

from hwmodels.workload import Workload
from simsnn.config.layout import LayoutConfig
from simsnn.errors import NetworkError
from simsnn.layout import NetworkLayout, build_layout
from simsnn.network import AnyNetwork, Ensemble
from simsnn.phases import Lowerer
from simsnn.replay import _pool_any
from simsnn.trace import SpikeTrace
from simsnn.workload_builder import (  # noqa: F401  (the lowering's vocabulary, re-exported)
    BASE_OPS,
    LINE_UNITS,
    TAIL_BLOCKS,
    VECTOR_ALIGN,
    op_kinds,
    segments,
    split,
    unit_shares,
)


def network_layout(net: AnyNetwork, trace: SpikeTrace, cores: int = 1,
                   layout: LayoutConfig | NetworkLayout | None = None) -> NetworkLayout:
    """The memory layout :func:`lower` uses for ``trace`` of ``net`` on ``cores`` cores (build
    it once to lower a trace in chunks of samples)."""
    input_binary = net.coding == "rate" or bool(trace.meta.get("input_binary", False))
    T = trace.timesteps
    lay = layout if isinstance(layout, NetworkLayout) else build_layout(
        net, layout, input_binary, steps=T, cores=cores)
    if lay.steps != T or lay.cores < cores:
        raise NetworkError(f"the layout holds {lay.steps} steps on {lay.cores} cores; the "
                           f"trace has {T} steps, the workload {cores} cores")
    return lay


def lowered_samples(trace: SpikeTrace, lay: NetworkLayout) -> int:
    """How many of the trace's samples :func:`lower` replays (``layout.samples`` caps it)."""
    n = lay.config.samples
    return trace.n_samples if n is None else min(n, trace.n_samples)


def lower(net: AnyNetwork, trace: SpikeTrace, cores: int = 1,
          layout: LayoutConfig | NetworkLayout | None = None) -> Workload:
    """Build the workload of ``net`` replaying ``trace`` on ``cores`` cores. Samples are
    lowered one after the other and independently: lowering the samples in chunks and
    joining the workloads gives the same accesses in the same order."""
    T = trace.timesteps
    lay = network_layout(net, trace, cores, layout)
    cfg = lay.config
    if "input" not in trace.layers:
        raise NetworkError("the trace has no 'input' layer of input events")
    if cfg.schedule == "step_major" and getattr(net, "gate", None) is not None and \
            net.gate.position > 0:
        raise NetworkError("step_major schedule needs the gate at position 0 (it reads the "
                           "whole-inference spike rate of an earlier layer otherwise)")
    lw = Lowerer(net, lay, cores)
    n = lowered_samples(trace, lay)
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
            src = lw.input_source()
            graded = not layers[0].binary_inputs
            groups = trace.gate_groups[b] if (member.gate is not None and
                                              trace.gate_groups is not None) else None
            if member.gate is not None and groups is None:
                raise NetworkError(f"{net.name!r} is gated but the trace holds no gate "
                                   f"decisions")
            for i, ll in enumerate(layers):
                if member.gate is not None and i == member.gate.position:
                    # the features: the input (its values, or with rate coding the pixels
                    # that spiked), or an earlier layer's spike rates
                    phases.append((order, -1, lw.gate_phase, (b, member, src, cur, graded)))
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
                        spikes = trace.layers[ll.key][b].reshape(T, -1)
                    for t in range(T):
                        phases.append((order, t, lw.synaptic_phase,
                                       (b, t, ll, src, cur[t], active, spikes)))
                    order += 1
                    if spikes is not None:
                        cur = spikes.reshape((T,) + tuple(layer.out_shape))
                        src, graded = lw.layer_source(ll), False
                elif ll.kind == "pool":
                    pooled = _pool_any(cur[None], layer)[0]
                    for t in range(T):
                        phases.append((order, t, lw.pool_phase,
                                       (b, t, ll, src, cur[t], pooled[t])))
                    order += 1
                    cur = pooled
                    src, graded = lw.layer_source(ll), True
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
