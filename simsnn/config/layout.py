"""How a network is laid out in memory and scheduled: the program the simulator prices and the
measurement backend runs (see docs/workload.md)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from simsnn.config.base import Strict


class LayoutConfig(Strict):
    """Memory layout and schedule of the event-driven program."""

    weight_dtype: Literal["fp32", "fp16", "int8"] | None = Field(
        None, description="Weight storage dtype; None keeps the network's weight_dtype.")
    order: Literal["row", "col"] = Field("row", description="Dense weights: row = input-major "
                                         "(an input spike reads one contiguous row), col = "
                                         "output-major (it reads one element per output).")
    groups: Literal["contiguous", "interleaved"] = Field(
        "contiguous", description="Gated layers: store each group's units (columns) "
        "contiguously, or keep the units in their natural index order.")
    schedule: Literal["layer_major", "step_major"] = Field(
        "layer_major", description="layer_major: all time steps of a layer, then the next; "
        "step_major: all layers at a time step, then the next (gate position 0 only).")
    partition: Literal["active", "static"] = Field(
        "active", description="Split a layer's work over cores: active = the open units in "
        "nearly equal shares; static = fixed nearly equal blocks of all units; either way "
        "each share ends on a 64-byte line of the current (16 units).")
    align: PositiveInt = Field(4096, description="Byte alignment of arrays of at least this "
                               "size (4096: pages, as an allocator maps large arrays).")
    small_align: PositiveInt = Field(64, description="Byte alignment of smaller arrays (64: "
                                     "packed on cache lines, as a heap allocator places "
                                     "small arrays).")
    samples: PositiveInt | None = Field(None, description="Simulate only the first N samples "
                                        "of the trace.")
