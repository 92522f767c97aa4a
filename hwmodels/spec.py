"""Pydantic schema of hardware description files (``kind: hardware``).

Human units ("32 KiB", "3.6 GHz", "1.3 nJ", "25.6 GB/s", "90 ns") are parsed here, at the edge;
the validated models hold SI floats (bytes, hertz, joules, seconds, watts, bytes per second).
Every energy figure is a :class:`Priced` value carrying its provenance.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hwmodels.units import UnitError, parse_quantity

FORMAT_VERSION = 1


def _quantity(dimension: str):
    def parse(v: Any) -> float:
        try:
            return parse_quantity(v, dimension)
        except UnitError as exc:
            raise ValueError(str(exc)) from None
    return BeforeValidator(parse)


Bytes = Annotated[float, _quantity("bytes")]
Hertz = Annotated[float, _quantity("hertz")]
Joules = Annotated[float, _quantity("joules")]
Seconds = Annotated[float, _quantity("seconds")]
Watts = Annotated[float, _quantity("watts")]
BytesPerSecond = Annotated[float, _quantity("bytes_per_second")]


#: the remainder blocks a workload counts (``tail{B}`` operation kinds, simsnn's lowering)
TAIL_BLOCKS = (8, 16, 32, 64)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Priced(Strict):
    """An energy per action with the source it comes from."""

    energy: Joules = Field(ge=0.0, description="Energy per action, e.g. '0.9 pJ'.")
    source: str = Field(min_length=1, description="Where the number comes from (paper, "
                        "technology node, per-bit or per-access).")


class PricedPower(Strict):
    """A static power with the source it comes from."""

    power: Watts = Field(ge=0.0, description="Static (leakage or background) power, e.g. '0.5 W'.")
    source: str = Field(min_length=1)


class CoreSpec(Strict):
    """The compute cores: how many, how fast, and the cost of each operation in cycles."""

    count: PositiveInt = Field(description="Cores available to the workload.")
    frequency: Hertz = Field(gt=0.0, description="Clock frequency, e.g. '3.6 GHz'.")
    simd_width: PositiveInt = Field(1, description="Synaptic accumulates / neuron updates done "
                                    "per instruction (vector lanes for the weight dtype).")
    cycles_per_synop: float = Field(1.0, gt=0.0, description="Cycles per synaptic-accumulate "
                                    "instruction (a SIMD instruction covers simd_width synops).")
    cycles_per_neuron_update: float = Field(2.0, gt=0.0, description="Cycles per neuron-update "
                                            "instruction (leak, add, compare, reset).")
    cycles_per_event: float = Field(4.0, ge=0.0, description="Fixed cycles per input event "
                                    "(decode the spike, compute the row address).")
    cycles_per_input: float | None = Field(None, ge=0.0, description="Cycles per input "
                                           "value the encoder reads (test, write of its "
                                           "event slot) each time step; unset: an element-"
                                           "wise operation, cycles_per_synop / simd_width.")
    cycles_per_gate_op: float = Field(1.0, gt=0.0, description="Cycles per MAC "
                                      "instruction of the small non-spiking MLPs: the gate "
                                      "and a task-specialized ensemble's aggregator.")
    cycles_per_gate_row: float = Field(0.0, ge=0.0, description="Fixed cycles per row a "
                                       "small non-spiking MLP visits (one per non-zero input "
                                       "of each of its layers, and the bias row): the short "
                                       "accumulate loop's setup and tail.")
    cycles_per_gate_call: float = Field(0.0, ge=0.0, description="Fixed cycles per run of a "
                                        "small non-spiking MLP (the gate, the aggregator): "
                                        "the call and the zeroing of its accumulators.")
    cycles_per_gate_select: float = Field(0.0, ge=0.0, description="Fixed cycles of the "
                                          "gate's top-k selection and group lookup, once per "
                                          "inference.")
    cycles_per_gate_act: dict[Literal["relu", "sigmoid"], Annotated[float, Field(
        ge=0.0)]] = Field(default_factory=dict, description="Per activation, cycles per hidden "
                          "unit of a small non-spiking MLP (the activation and the test that "
                          "skips a zero); activations not listed cost nothing.")
    cycles_per_synop_dtype: dict[Literal["fp32", "fp16", "int8"], Annotated[float, Field(
        gt=0.0)]] = Field(default_factory=dict, description="Per weight dtype, cycles per "
                          "synaptic-accumulate instruction where it differs from "
                          "cycles_per_synop (e.g. fp16 weights widened in registers); "
                          "calibrated by `simsnn hw detect`.")
    cycles_per_segment: float = Field(0.0, ge=0.0, description="Fixed cycles per visit of a "
                                      "run of consecutive open units by an input event (loop "
                                      "setup of each weight-row piece).")
    cycles_per_segment_dtype: dict[Literal["fp32", "fp16", "int8"], Annotated[float, Field(
        ge=0.0)]] = Field(default_factory=dict, description="Per weight dtype, fixed cycles per "
                          "visit of a run of open units by an event (the vector loop's setup "
                          "and tail for that weight width); dtypes not listed use "
                          "cycles_per_segment.")
    cycles_per_tail: dict[int, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="Per block B (8, 16, 32 or 64 elements), extra "
        "cycles per element of a run of open units past its last full block of B (W mod B "
        "elements per visited run of W): the compiled accumulate loop's remainder paths (a "
        "vector body of B, a shorter vector epilogue, a scalar remainder); blocks not listed "
        "cost nothing.")
    cycles_per_tail_dtype: dict[Literal["fp32", "fp16", "int8"], dict[int, Annotated[
        float, Field(ge=0.0)]]] = Field(default_factory=dict, description="Per weight dtype, "
                                        "cycles_per_tail where it differs; dtypes not "
                                        "listed use cycles_per_tail.")
    cycles_per_unaligned: dict[Literal["fp32", "fp16", "int8"], Annotated[float, Field(
        ge=0.0)]] = Field(default_factory=dict, description="Per weight dtype, extra cycles "
                          "per element of a run of open units whose weight piece or current "
                          "does not start on a 32-byte boundary (the accumulate loop's "
                          "vector loads and stores split); dtypes not listed cost nothing.")
    cycles_per_conv_event: float | None = Field(None, ge=0.0, description="Fixed cycles per "
                                                "input event of a convolution (decoding its "
                                                "position, checking every tap of the kernel "
                                                "window); unset: cycles_per_event.")
    cycles_per_conv_tap: float = Field(0.0, ge=0.0, description="Fixed cycles per valid tap "
                                       "of a convolution's input event (the output position "
                                       "and weight row it reads), beyond the visits of its "
                                       "runs (cycles_per_segment).")
    cycles_per_conv_spike: float | None = Field(None, ge=0.0, description="Cycles per output "
                                                "spike of a convolution for its merge into "
                                                "the next layer's sorted event list (a "
                                                "counting sort by channel); unset: "
                                                "cycles_per_spike.")
    cycles_per_pool_op: float | None = Field(None, ge=0.0, description="Cycles per input "
                                             "spike of an average pooling (decode its "
                                             "position, count it in its window); unset: "
                                             "cycles_per_synop / simd_width.")
    cycles_per_update_run: float = Field(0.0, ge=0.0, description="Fixed cycles per run of "
                                         "open units that a layer's current initialisation "
                                         "or neuron update visits (per step; a "
                                         "convolution's at every output position).")
    cycles_per_task: float = Field(0.0, ge=0.0, description="Fixed cycles per task (one "
                                   "core's share of a phase): dispatch, loop setup.")
    parallel_efficiency: float = Field(1.0, gt=0.0, le=1.0, description="Share of its "
                                       "one-core compute speed each core keeps while all "
                                       "cores compute at once (shared execution units, SMT "
                                       "siblings, power limits, a hypervisor); divides the "
                                       "operation cycles (not cycles_per_task) of phases "
                                       "that run on several cores.")
    cycles_per_spike: float = Field(0.0, ge=0.0, description="Cycles per output spike of a "
                                    "layer for turning the cores' spikes into the next "
                                    "layer's sorted event list (gather, index lookup, "
                                    "order check), on one core.")
    cycles_per_dram_line: float = Field(0.0, ge=0.0, description="Cycles a core stalls per "
                                        "line it reads from DRAM beyond what its compute "
                                        "hides (its own stream's bandwidth, the part of the "
                                        "transfer that does not overlap the compute); added "
                                        "to the task's compute time, which the transfers "
                                        "overlap. 0: DRAM transfers overlap the compute (the "
                                        "roofline's max).")
    cycles_per_dram_run: float = Field(0.0, ge=0.0, description="Cycles a core stalls per "
                                       "sequential run (a row piece) that starts in DRAM, "
                                       "beyond the latency over mlp: the prefetchers start "
                                       "each stream again; on the compute side like "
                                       "cycles_per_dram_line.")
    cycles_per_level_line: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="Per cache level beyond the first (by its `name`), "
        "cycles a core stalls per line that level serves beyond what its compute hides; on "
        "the compute side like cycles_per_dram_line. Missing: 0.")
    cycles_per_level_run: dict[str, Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="Per cache level beyond the first (by its `name`), "
        "cycles a core stalls per sequential run (a row piece) that starts at that level, "
        "beyond its latency over mlp; like cycles_per_dram_run. Missing: 0.")
    cycles_cold: dict[Literal["call", "gate_select"], Annotated[float, Field(ge=0.0)]] = Field(
        default_factory=dict, description="Per driver operation (call: the host program's "
        "call into a compiled kernel; gate_select: the gate's top-k selection), the extra "
        "cycles it costs when its code and state were evicted, times the share of the last "
        "private cache level the core refilled since the operation's previous occurrence "
        "(at most 1; not energy-priced). Empty: every call warm.")
    cycles_per_sync: float = Field(0.0, ge=0.0, description="Extra cycles per task of a phase "
                                   "that runs on several cores: starting and joining them "
                                   "(thread wake-up, barrier).")
    parallel_efficiency_cores: dict[Annotated[int, Field(ge=2)], Annotated[float, Field(
        gt=0.0, le=1.0)]] = Field(default_factory=dict, description="parallel_efficiency "
                                  "measured at these core counts; a phase on n cores takes "
                                  "the figure of the largest listed count not above n (the "
                                  "smallest listed one below them; parallel_efficiency "
                                  "where none is listed).")
    cycles_per_sync_cores: dict[Annotated[int, Field(ge=2)], Annotated[float, Field(
        ge=0.0)]] = Field(default_factory=dict, description="cycles_per_sync measured at "
                          "these core counts, chosen as parallel_efficiency_cores.")
    mlp: float = Field(8.0, ge=1.0, description="Memory-level parallelism: misses a core keeps "
                       "in flight, overlapping their latencies.")
    static_power: PricedPower | None = Field(None, description="Core static power while the "
                                             "workload runs (all cores).")


    def parallel_efficiency_at(self, n: int) -> float:
        """The parallel efficiency of a phase on ``n`` cores (parallel_efficiency_cores)."""
        return _by_cores(self.parallel_efficiency_cores, n, self.parallel_efficiency)

    def cycles_per_sync_at(self, n: int) -> float:
        """The sync cost per task of a phase on ``n`` cores (cycles_per_sync_cores)."""
        return _by_cores(self.cycles_per_sync_cores, n, self.cycles_per_sync)

    @field_validator("cycles_per_tail", "cycles_per_tail_dtype")
    @classmethod
    def _tail_blocks(cls, v: dict, info: ValidationInfo) -> dict:
        tables = v.values() if info.field_name == "cycles_per_tail_dtype" else [v]
        for t in tables:
            bad = sorted(set(t) - set(TAIL_BLOCKS))
            if bad:
                raise ValueError(f"remainder blocks must be among {list(TAIL_BLOCKS)}, got "
                                 f"{bad}")
        return v


def _by_cores(table: dict[int, float], n: int, default: float) -> float:
    """The entry of the largest core count not above ``n`` (the smallest one if all are),
    ``default`` for an empty table."""
    if not table:
        return default
    below = [k for k in table if k <= n]
    return table[max(below)] if below else table[min(table)]


class CacheSpec(Strict):
    """A set-associative LRU cache level, write-back and write-allocate."""

    type: Literal["cache"] = "cache"
    name: str = Field(min_length=1)
    size: Bytes = Field(gt=0, description="Capacity, e.g. '32 KiB'.")
    line: Bytes = Field(64, gt=0, description="Line size in bytes (power of two).")
    ways: PositiveInt = Field(description="Associativity.")
    latency: float = Field(ge=0.0, description="Hit latency in core cycles.")
    bandwidth: float = Field(gt=0.0, description="Bytes per core cycle this level delivers to "
                             "the level above it (per core for private levels, in total for "
                             "shared ones).")
    shared: bool = Field(False, description="Shared by all cores (else one private copy per "
                         "core).")
    read: Priced = Field(description="Energy per read access (line fill or load hit).")
    write: Priced = Field(description="Energy per write access (store or line fill).")
    leakage: PricedPower | None = Field(None, description="Leakage of one instance.")

    @property
    def sets(self) -> int:
        return int(self.size // (self.line * self.ways))

    @field_validator("line")
    @classmethod
    def _line_pow2(cls, v: float) -> float:
        if int(v) != v or int(v) & (int(v) - 1):
            raise ValueError(f"line size {v:g} B is not a power of two")
        return v

    @model_validator(mode="after")
    def _geometry(self) -> "CacheSpec":
        if self.size % (self.line * self.ways) != 0:
            raise ValueError(f"size {self.size:g} B is not a multiple of line x ways = "
                             f"{self.line * self.ways:g} B")
        return self


class ScratchpadSpec(Strict):
    """Software-managed on-chip memory: every access is a hit, nothing is evicted; the
    workload's working set must fit (else accesses beyond the capacity go to DRAM)."""

    type: Literal["scratchpad"]
    name: str = Field(min_length=1)
    size: Bytes = Field(gt=0)
    latency: float = Field(ge=0.0, description="Access latency in core cycles.")
    bandwidth: float = Field(gt=0.0, description="Bytes per core cycle delivered to the core.")
    shared: bool = False
    read: Priced
    write: Priced
    leakage: PricedPower | None = None


class DramSpec(Strict):
    """Main memory: bandwidth shared by all cores, a fixed latency, energy per byte."""

    bandwidth: BytesPerSecond = Field(gt=0.0, description="Sustained bandwidth, e.g. "
                                      "'25.6 GB/s'.")
    latency: Seconds = Field(gt=0.0, description="Load-to-use latency of a miss, e.g. '90 ns'.")
    energy_per_byte: Priced = Field(description="Energy per byte transferred.")
    background: PricedPower | None = Field(None, description="Background (refresh, standby) "
                                           "power.")


class OperationEnergies(Strict):
    """Energy of the arithmetic: accumulate by weight dtype, multiply-accumulate for graded
    inputs, neuron update, gate MAC."""

    synop: dict[Literal["fp32", "fp16", "int8"], Priced] = Field(description="Synaptic "
                                                                  "accumulate (add) by dtype.")
    mac: dict[Literal["fp32", "fp16", "int8"], Priced] = Field(description="Multiply-"
                                                                "accumulate (graded inputs).")
    neuron_update: Priced = Field(description="One membrane update (leak multiply, add, "
                                  "compare).")
    gate_op: Priced = Field(description="One MAC of a small non-spiking MLP (the gate "
                            "classifier, an ensemble's aggregator).")

    @field_validator("synop", "mac")
    @classmethod
    def _dtypes(cls, v: dict) -> dict:
        missing = {"fp32", "fp16", "int8"} - set(v)
        if missing:
            raise ValueError(f"lacks dtypes {sorted(missing)}")
        return v


class HardwareSpec(Strict):
    """A hardware file. ``memory`` entries are validated by :func:`hwmodels.parse_hardware`
    against the spec class of their ``type`` (``cache``, ``scratchpad`` or a plug-in)."""

    version: Literal[1] = Field(description="Hardware file format version.")
    kind: Literal["hardware"]
    name: str = Field(min_length=1)
    description: str | None = None
    sources: list[str] = Field(default_factory=list, description="Citations for the numbers.")
    cores: CoreSpec
    memory: list[Any] = Field(default_factory=list, description="On-chip memory levels from "
                              "the core outwards ([CacheSpec](#cachespec), "
                              "[ScratchpadSpec](#scratchpadspec) or a plug-in); empty: none.")
    dram: DramSpec
    transfers: Literal["serial", "overlapped"] = Field(
        "serial", description="How a task's transfers through the memory levels combine: "
        "`serial` sums each level's time (the ECM model's non-overlapping transfers; right "
        "when each level's `bandwidth` is the link to the level above, as in a datasheet), "
        "`overlapped` takes the slowest level (right when the bandwidths are end-to-end "
        "streaming rates, as `simsnn hw detect` measures them: the rate of a stream from DRAM "
        "already includes its passage through the caches).")
    energy: OperationEnergies
