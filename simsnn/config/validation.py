"""Pydantic schema of validation files (``kind: validation``): workloads measured on this CPU
and predicted on a hardware profile (see docs/validation.md)."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from hwmodels.spec import Bytes
from simsnn.config.base import FORMAT_VERSION, Strict
from simsnn.config.layout import LayoutConfig


class ValidationPoint(Strict):
    """One workload, measured and predicted at every listed core count and input scale."""

    name: str = Field(min_length=1)
    group: str | None = Field(None, description="Points of one group (same cores and input "
                              "scale) are ranked against each other: the family ranking "
                              "check.")
    network: str | dict[str, Any] = Field(description="Shipped model name, network YAML "
                                          "(relative to this file) or an inline network "
                                          "config (init: random for shapes without weights).")
    cores: list[PositiveInt] = Field(default_factory=lambda: [1])
    input_scale: list[float] = Field(default_factory=lambda: [1.0], description="Multiply "
                                     "the input intensities (direct coding: pixel values, "
                                     "rate coding: spike probabilities) to vary spike rates.")
    layout: LayoutConfig | None = None

    @field_validator("input_scale")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if not v or any(s <= 0 for s in v):
            raise ValueError("input scales must be positive")
        return v


class CacheLevelConfig(Strict):
    """One simulated cache level of the cachegrind reference (valgrind's cache simulator
    and the simulator's: true LRU, write-allocate)."""

    size: Bytes = Field(gt=0, description="Capacity, e.g. '32 KiB'.")
    ways: PositiveInt = Field(description="Associativity.")
    line: Bytes = Field(64, gt=0, description="Line size (a power of two).")

    @model_validator(mode="after")
    def _geometry(self) -> "CacheLevelConfig":
        line, size = int(self.line), int(self.size)
        if line & (line - 1):
            raise ValueError(f"line size {line} B is not a power of two")
        sets = size // (line * self.ways)
        if size % (line * self.ways) or sets & (sets - 1):
            raise ValueError(f"size {size} B over {self.ways} ways of {line} B lines is not a "
                             f"power-of-two number of sets (valgrind needs one)")
        return self


class CachegrindConfig(Strict):
    """The deterministic reference for memory traffic: the measured program's kernels run
    under valgrind's cache simulator (callgrind --cache-sim=yes), the simulator replays the
    same samples on the same two levels, and their misses are compared."""

    D1: CacheLevelConfig = Field(default_factory=lambda: CacheLevelConfig(size=32768, ways=8),
                                 description="The first-level data cache.")
    LL: CacheLevelConfig = Field(default_factory=lambda: CacheLevelConfig(size=1 << 20,
                                                                          ways=16),
                                 description="The last-level cache (valgrind's LL: it sees "
                                 "the first level's misses, no write-backs).")
    I1: CacheLevelConfig = Field(default_factory=lambda: CacheLevelConfig(size=32768, ways=8),
                                 description="The instruction cache valgrind also simulates "
                                 "(its misses reach LL).")
    flush: Literal["D1", "LL"] = Field(
        "LL", description="The level whose size of flush buffer every kernel writes, "
        "uncounted, before it runs (and the simulator replays): LL makes every call start "
        "from caches the interpreter between calls cannot have touched; D1 leaves LL warm "
        "across calls, with the interpreter's lines in it.")
    valgrind: str = Field("valgrind", description="The valgrind executable.")


class ValidationConfig(Strict):
    """Measure and predict a set of workloads; report the prediction error."""

    version: Literal[1] = FORMAT_VERSION
    kind: Literal["validation"]
    name: str = Field(min_length=1)
    description: str = ""
    hardware: str = Field(description="Hardware file (relative to this file) or preset name: "
                          "the profile `simsnn hw detect` wrote for this host.")
    dataset: str = "mnist"
    samples: PositiveInt = Field(64, description="Test samples per point.")
    seed: int = 0
    warmup: NonNegativeInt = 1
    repeat: PositiveInt = Field(5, description="Timed passes over the samples per round.")
    rounds: PositiveInt = Field(3, description="Rounds per point (at least), each "
                                "re-timing the program's costs (with `recalibrate`) and "
                                "then measuring `repeat` passes: the measured latency is "
                                "each sample's best over every pass of every round, and "
                                "each re-timed figure is made from its timings at their "
                                "best over the rounds (one pool of timings: both sides see "
                                "the machine at its quietest).")
    max_rounds: PositiveInt = Field(8, description="More rounds are run, up to this many, "
                                    "while the last one still improved a best-of figure "
                                    "(a point's measured latency or a pooled timing of the "
                                    "costs) by more than `settle`: on a noisy machine the "
                                    "minima take longer to settle.")
    settle: float = Field(0.02, ge=0.0, description="Relative improvement below which a "
                          "round counts as settled.")
    memory_mode: Literal["exact", "fast"] = "exact"
    recalibrate: bool = Field(False, description="Re-time the measured program's kernels "
                              "(micro-benchmarks, as `simsnn hw detect` does) right before "
                              "each point and predict with those core figures instead of the "
                              "profile's. Off (the default), the profile predicts every point "
                              "as detected, as a user predicts networks from one detection; "
                              "on, the host's drift between the detection and a point is "
                              "taken out (a second figure, reported beside the first).")
    reference: Literal["timing", "cachegrind"] = Field(
        "timing", description="timing: measure latency on this CPU and compare it with the "
        "predicted latency; cachegrind: count the program's cache misses under valgrind's "
        "cache simulator and compare them with the simulator's (one core, `samples` "
        "samples per point, `cachegrind` geometry).")
    cachegrind: CachegrindConfig = Field(default_factory=CachegrindConfig)
    points: list[ValidationPoint] = Field(min_length=1)
