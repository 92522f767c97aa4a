"""Pydantic schema of experiment files (``kind: experiment``): networks + where traces come from.

An experiment compares several networks on the same inputs (or the same synthetic statistics).
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from simsnn.config.base import FORMAT_VERSION, Strict
from simsnn.config.layout import LayoutConfig


class DatasetTraceConfig(Strict):
    """Record traces by running each network on samples of an offline dataset."""

    source: Literal["dataset"]
    dataset: str = Field("mnist", description="digits | mnist | mnist1d | path to an .npz file "
                         "(relative to the experiment file).")
    split: Literal["train", "test"] = "test"
    samples: PositiveInt | None = Field(None, description="First N samples of the split; "
                                        "None = all.")
    seed: int = Field(0, description="Seed of the train/test split and of rate coding.")


class SyntheticTraceConfig(Strict):
    """Generate traces from firing statistics (no weights needed); see simsnn.synth."""

    source: Literal["synthetic"]
    samples: PositiveInt = 100
    input_rate: float = Field(0.2, ge=0.0, le=1.0)
    rate: float = Field(0.1, ge=0.0, le=1.0, description="Default firing probability per "
                        "neuron and step.")
    layer_rates: dict[str, float] = Field(default_factory=dict, description="Per-layer rates "
                                          "by trace layer name.")
    burstiness: float = Field(0.0, ge=0.0, lt=1.0)
    heterogeneity: float = Field(0.0, ge=0.0)
    class_probs: list[float] | None = None
    gate_accuracy: float = Field(1.0, ge=0.0, le=1.0)
    seed: int = 0


class FileTraceConfig(Strict):
    """Read recorded traces from files, one per network name."""

    source: Literal["file"]
    paths: dict[str, str] = Field(description="Network name -> trace file (relative to the "
                                  "experiment file).")


TraceSourceConfig = Annotated[
    Union[DatasetTraceConfig, SyntheticTraceConfig, FileTraceConfig],
    Field(discriminator="source"),
]


class ExperimentConfig(Strict):
    """Compare networks on the same trace source."""

    version: Literal[FORMAT_VERSION]  # type: ignore[valid-type]
    kind: Literal["experiment"]
    name: str = Field(min_length=1)
    networks: list[str] = Field(min_length=1, description="Shipped model names or network "
                                "config paths (relative to this file).")
    baseline: NonNegativeInt = Field(0, description="Index in networks of the reference for "
                                     "ratios.")
    trace: TraceSourceConfig
    save_traces: str | None = Field(None, description="Folder (relative to this file) where "
                                    "the traces are written.")
    hardware: str | None = Field(None, description="Hardware preset name or hardware file "
                                 "(relative to this file); None: no hardware simulation.")
    memory_mode: Literal["exact", "fast"] = Field("exact", description="exact: LRU replay; "
                                                  "fast: reuse-distance pricing.")
    cores: PositiveInt | None = Field(None, description="Cores used (default: all of the "
                                      "hardware's).")
    layout: LayoutConfig = Field(default_factory=LayoutConfig, description="Memory layout "
                                 "and schedule of the simulated program.")
    description: str | None = None

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: int, info) -> int:
        nets = info.data.get("networks")
        if nets is not None and v >= len(nets):
            raise ValueError(f"baseline {v} is not an index of networks (0..{len(nets) - 1})")
        return v
