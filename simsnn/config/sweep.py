"""Pydantic schema of sweep files (``kind: sweep``): a base experiment, axes over its fields,
a sampling plan, constraints and objectives (see docs/sweeps.md)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from simsnn.config.base import FORMAT_VERSION, Strict

#: Metrics of one network at one point, usable in constraints and objectives.
METRICS = {
    "latency_s": "mean latency per inference (s)",
    "latency_p99_s": "99th percentile latency per inference (s)",
    "energy_j": "energy per inference (J)",
    "footprint_bytes": "static memory footprint (weights, state, buffers; bytes)",
    "weight_bytes": "weight bytes",
    "touched_weight_bytes": "weight bytes touched per inference (mean)",
    "program_bytes": "bytes of the simulated program's memory layout",
    "params": "parameters (gate and aggregator included)",
    "accuracy": "accuracy of the trace (dataset traces; none for synthetic ones)",
    "synaptic_operations": "effective synaptic operations per inference (ACs + MACs)",
    "dram_bytes": "DRAM traffic per inference (bytes)",
    "compute_share": "share of busy time spent computing (the rest is memory stalls)",
    "speedup": "baseline latency / latency",
    "energy_gain": "baseline energy / energy",
    "params_ratio": "parameters / baseline parameters",
}


class Axis(Strict):
    """One swept field: ``path`` and either ``values`` or a numeric ``range``."""

    path: str = Field(min_length=1, description="Dotted path: `hardware.<field>` (memory "
                      "levels by name, e.g. hardware.memory.L2.size), `network.<field>` (every "
                      "network of the base experiment that has the field), "
                      "`networks.<name>.<field>` (one network), anything else a field of the "
                      "base experiment (trace.rate, layout.weight_dtype, cores).")
    values: list[Any] | None = Field(None, min_length=1, description="The values to take "
                                     "(grid) or draw from (random, lhs).")
    range: tuple[Any, Any] | None = Field(None, description="[low, high], numbers or "
                                          "quantities with units (`256 KiB`, `2 GB/s`).")
    steps: PositiveInt | None = Field(None, description="Grid points over the range (grid "
                                      "sampling only).")
    scale: Literal["linear", "log", "pow2"] = Field("linear", description="How the range is "
                                                    "spread: evenly, evenly in log, or powers "
                                                    "of two (cache sizes).")
    integer: bool = Field(False, description="Round range values to integers.")

    @model_validator(mode="after")
    def _one_source(self) -> "Axis":
        if (self.values is None) == (self.range is None):
            raise ValueError(f"axis {self.path!r}: give exactly one of values and range")
        return self


class Sampling(Strict):
    """How points are drawn from the axes."""

    method: Literal["grid", "random", "lhs"] = "grid"
    samples: PositiveInt | None = Field(None, description="Points to draw (random, lhs).")
    seed: int = 0

    @model_validator(mode="after")
    def _samples(self) -> "Sampling":
        if self.method != "grid" and self.samples is None:
            raise ValueError(f"{self.method} sampling needs samples")
        return self


_METRIC_HELP = "One of: " + ", ".join(f"`{k}` ({v})" for k, v in METRICS.items()) + "."


class Constraint(Strict):
    """A bound on a metric; a network at a point outside it is infeasible (kept, marked)."""

    metric: str = Field(description=_METRIC_HELP)
    max: Any = Field(None, description="Upper bound (number or quantity, `4 MiB`).")
    min: Any = Field(None, description="Lower bound.")

    @model_validator(mode="after")
    def _bound(self) -> "Constraint":
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {sorted(METRICS)}")
        if self.max is None and self.min is None:
            raise ValueError(f"constraint on {self.metric}: give max or min")
        return self


class Objective(Strict):
    """A metric to minimize or maximize; the Pareto front is taken over all objectives."""

    metric: str = Field(description="A metric name, as for constraints.")
    goal: Literal["minimize", "maximize"] = "minimize"

    @model_validator(mode="after")
    def _known(self) -> "Objective":
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {sorted(METRICS)}")
        return self


class SweepConfig(Strict):
    """A design-space study over one base experiment."""

    version: Literal[FORMAT_VERSION]  # type: ignore[valid-type]
    kind: Literal["sweep"]
    name: str = Field(min_length=1)
    description: str | None = None
    base: str = Field(description="Experiment file (relative to this file) every point "
                      "starts from.")
    axes: list[Axis] = Field(min_length=1)
    sampling: Sampling = Field(default_factory=Sampling)
    constraints: list[Constraint] = Field(default_factory=list, description="Bounds every "
                                          "candidate (network at a point) must meet to count "
                                          "as feasible.")
    objectives: list[Objective] = Field(default_factory=lambda: [
        Objective(metric="latency_s"), Objective(metric="energy_j")], min_length=1,
        description="The Pareto front is taken over these (default: latency and energy).")
    samples_simulated: NonNegativeInt | None = Field(None, description="Replay only the "
                                                     "first N samples of each trace "
                                                     "(overrides layout.samples).")

    @model_validator(mode="after")
    def _distinct(self) -> "SweepConfig":
        paths = [a.path for a in self.axes]
        if len(set(paths)) != len(paths):
            raise ValueError(f"axis paths must be distinct, got {paths}")
        return self
