"""The built-in core model: operation throughput in cycles (a roofline-style compute term)."""
from __future__ import annotations

import numpy as np

from hwmodels.components import CoreModel
from hwmodels.errors import HardwareError


def op_base(kind: str) -> str:
    """'synop.fp16' -> 'synop'."""
    return kind.split(".", 1)[0]


def op_qualifier(kind: str, default: str) -> str:
    """'synop.fp16' -> 'fp16'; ``default`` for an unqualified kind."""
    return kind.split(".", 1)[1] if "." in kind else default


class ThroughputCore(CoreModel):
    """cycles = sum over operation kinds of count x cycles per instruction / lanes.

    synaptic accumulates and MACs cost ``cycles_per_synop / simd_width`` (or the weight dtype's
    ``cycles_per_synop_dtype``), the small element-wise operations (readout, input, pool)
    ``cycles_per_synop / simd_width``; neuron updates ``cycles_per_neuron_update / simd_width``;
    the encoder's inputs ``cycles_per_input`` each where it is set;
    gate MACs ``cycles_per_gate_op / simd_width`` (the small non-spiking MLPs: also
    ``cycles_per_gate_row`` per visited row, ``cycles_per_gate_call`` per run,
    ``cycles_per_gate_select`` per top-k selection, ``cycles_per_gate_act[act]`` per hidden
    unit); every input event ``cycles_per_event`` (a convolution's ``cycles_per_conv_event``,
    and ``cycles_per_conv_tap`` per valid tap of its kernel window); every run of open units a
    layer's current initialisation or neuron update visits ``cycles_per_update_run``; every
    visit of a run of open units by an event (``segment``) ``cycles_per_segment`` (or the weight
    dtype's ``cycles_per_segment_dtype``), and each of its units past its last full block of B
    (``tail{B}`` counts W mod B per run) ``cycles_per_tail[B]`` (or the dtype's
    ``cycles_per_tail_dtype``) more, and each of its units ``cycles_per_unaligned[dtype]``
    more where the run's weight piece or current does not start on a vector boundary
    (``unaligned``); every output spike ``cycles_per_spike`` (the merge into
    the next layer's sorted event list; a convolution's ``cycles_per_conv_spike``); every
    input spike of an average pooling ``cycles_per_pool_op``; and every task
    ``cycles_per_task``. Driver calls (``call``) cost nothing here: warm, they are in
    ``cycles_per_task``; cold, see ``hwmodels.simulate.cold_calls``.
    """

    type_name = "throughput"

    def cycles_per_op(self, kind: str) -> float:
        s = self.spec
        base = op_base(kind)
        if base in ("synop", "mac"):
            return s.cycles_per_synop_dtype.get(op_qualifier(kind, "fp32"),
                                                s.cycles_per_synop) / s.simd_width
        if base == "input_op" and s.cycles_per_input is not None:
            return s.cycles_per_input
        if base == "pool_op" and s.cycles_per_pool_op is not None:
            return s.cycles_per_pool_op
        if base in ("readout_op", "input_op", "pool_op"):
            return s.cycles_per_synop / s.simd_width
        if base == "neuron_update":
            return s.cycles_per_neuron_update / s.simd_width
        if base == "gate_op":
            return s.cycles_per_gate_op / s.simd_width
        if base == "gate_row":
            return s.cycles_per_gate_row
        if base == "gate_call":
            return s.cycles_per_gate_call
        if base == "gate_select":
            return s.cycles_per_gate_select
        if base == "gate_act":
            return s.cycles_per_gate_act.get(op_qualifier(kind, ""), 0.0)
        if base == "event":
            return s.cycles_per_event
        if base == "conv_event":
            return s.cycles_per_event if s.cycles_per_conv_event is None else \
                s.cycles_per_conv_event
        if base == "conv_tap":
            return s.cycles_per_conv_tap
        if base == "update_run":
            return s.cycles_per_update_run
        if base == "call":  # warm: in cycles_per_task; cold: hwmodels.simulate.cold_calls
            return 0.0
        if base == "spike":
            return s.cycles_per_spike
        if base == "conv_spike":
            return s.cycles_per_spike if s.cycles_per_conv_spike is None else \
                s.cycles_per_conv_spike
        if base == "segment":
            return s.cycles_per_segment_dtype.get(op_qualifier(kind, "fp32"),
                                                  s.cycles_per_segment)
        if base == "unaligned":
            return s.cycles_per_unaligned.get(op_qualifier(kind, "fp32"), 0.0)
        if base.startswith("tail") and base[4:].isdigit():
            table = s.cycles_per_tail_dtype.get(op_qualifier(kind, "fp32"), s.cycles_per_tail)
            return table.get(int(base[4:]), 0.0)
        raise HardwareError(f"the core model has no cost for operation kind {kind!r}")

    def compute_cycles(self, ops: np.ndarray, op_kinds: tuple[str, ...]) -> np.ndarray:
        """Cycles of each task (row of ``ops``), its fixed ``cycles_per_task`` included."""
        per = np.array([self.cycles_per_op(k) for k in op_kinds], dtype=np.float64)
        return ops @ per + self.spec.cycles_per_task
