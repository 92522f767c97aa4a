"""Pydantic schema of network config files (``kind: network``).

One model per YAML node, ``extra="forbid"``, a discriminated ``type`` for layer kinds. The same
schema describes the three families: ``dense``, ``task_specialized`` and ``gated``.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from simsnn.config.base import FORMAT_VERSION, Strict


class NeuronConfig(Strict):
    """Spiking neuron dynamics shared by every spiking layer of a network."""

    model: Literal["lif", "if"] = Field("lif", description="LIF (leaky) or IF (no leak).")
    leak: float = Field(0.9, gt=0.0, le=1.0, description="Multiplicative membrane leak per step "
                        "(LIF only; IF uses 1).")
    threshold: float = Field(0.2, gt=0.0, description="Firing threshold; a neuron spikes when "
                             "its membrane is strictly above it.")
    reset: Literal["hard", "soft"] = Field("hard", description="hard: set to v_reset after a "
                                           "spike; soft: subtract the threshold.")
    v_reset: float = Field(0.0, description="Membrane value after a hard reset.")


class DenseLayerConfig(Strict):
    """Fully connected (affine) layer, followed by spiking neurons unless ``spiking: false``."""

    type: Literal["dense"]
    units: PositiveInt = Field(description="Number of output neurons.")
    bias: bool = Field(False, description="Add a learned bias to the input current every step.")
    spiking: bool = Field(True, description="false makes this a non-spiking readout that "
                          "averages its input current over the time steps.")
    shared: float | None = Field(None, ge=0.0, le=1.0, description="Gated networks: fraction "
                                 "of units that are always active; None uses gate.shared.")
    name: str | None = None


class Conv2dLayerConfig(Strict):
    """2-D convolution followed by spiking neurons."""

    type: Literal["conv2d"]
    channels: PositiveInt = Field(description="Output channels.")
    kernel: PositiveInt = 3
    stride: PositiveInt = 1
    padding: NonNegativeInt = 1
    bias: bool = False
    spiking: bool = True
    shared: float | None = Field(None, ge=0.0, le=1.0, description="Gated networks: fraction "
                                 "of output channels that are always active.")
    name: str | None = None


class AvgPool2dLayerConfig(Strict):
    """Average pooling over spike maps (stateless)."""

    type: Literal["avgpool2d"]
    kernel: PositiveInt = 2
    stride: PositiveInt | None = Field(None, description="Defaults to the kernel size.")
    name: str | None = None


class FlattenLayerConfig(Strict):
    """Flatten a (C, H, W) map into a vector (stateless)."""

    type: Literal["flatten"]
    name: str | None = None


LayerConfig = Annotated[
    Union[DenseLayerConfig, Conv2dLayerConfig, AvgPool2dLayerConfig, FlattenLayerConfig],
    Field(discriminator="type"),
]


class InputConfig(Strict):
    """Shape of one input sample and how it becomes spikes."""

    shape: list[PositiveInt] = Field(min_length=1, max_length=3, description="[N] or [C, H, W].")
    coding: Literal["direct", "rate"] = Field("direct", description="direct: the static input "
                                              "is the current every step; rate: Bernoulli spikes "
                                              "with probability clip(x, 0, 1).")


class GateConfig(Strict):
    """The per-input gate of a per-layer specialized network (see docs/specialization.md)."""

    position: NonNegativeInt = Field(0, description="Number of layers before the gate: 0 reads "
                                     "the input, k reads the spike rates of layer k. Only layers "
                                     "after the gate are gated.")
    kind: Literal["linear", "mlp", "oracle"] = Field("linear", description="Gate classifier; "
                                                     "oracle uses the true label (analysis only).")
    hidden: PositiveInt = Field(64, description="Hidden units of the mlp gate.")
    groups: PositiveInt = Field(description="Number of specialized unit groups per gated layer.")
    top_k: PositiveInt = Field(1, description="The gate activates the groups of its k most "
                               "likely classes.")
    shared: float = Field(0.25, ge=0.0, le=1.0, description="Default fraction of always-active "
                          "units in each gated layer.")
    groups_per_class: PositiveInt = Field(1, description="Reuse rule: each class is served by "
                                          "this many groups (overlapping class groups).")
    grouping: Literal["confusion", "activity", "round_robin", "explicit"] = Field(
        "confusion", description="How classes are grouped: from the dense model's confusion or "
        "class-conditional activity (at training time), round robin, or class_groups.")
    class_groups: list[list[NonNegativeInt]] | None = Field(None, description="For each group, "
                                                            "the classes it serves.")
    assignment: Literal["contiguous", "interleaved"] = Field("contiguous", description="Which "
                                                             "unit indices belong to a group.")


class TaskConfig(Strict):
    """One narrow sub-SNN of a task-specialized ensemble."""

    classes: list[NonNegativeInt] = Field(min_length=1, description="Classes this sub-SNN "
                                          "detects (one output per class, one-vs-rest).")
    scale: float = Field(gt=0.0, description="Hidden widths are divided by this factor.")


class AggregatorConfig(Strict):
    """Small non-spiking network combining the sub-SNN outputs into class scores."""

    hidden: PositiveInt = 1000
    activation: Literal["sigmoid", "relu"] = "sigmoid"


class NetworkConfig(Strict):
    """A network file: one of the three families, its layers, and where its weights are."""

    version: Literal[FORMAT_VERSION] = Field(description="Config format version.")  # type: ignore[valid-type]
    kind: Literal["network"]
    name: str = Field(min_length=1)
    family: Literal["dense", "task_specialized", "gated"]
    num_classes: PositiveInt
    timesteps: PositiveInt = Field(9, description="Time steps per inference.")
    input: InputConfig
    neuron: NeuronConfig = NeuronConfig()
    layers: list[LayerConfig] = Field(min_length=1, description="For task_specialized: the "
                                      "architecture of one sub-SNN before width scaling.")
    gate: GateConfig | None = None
    tasks: list[TaskConfig] | None = None
    aggregator: AggregatorConfig | None = None
    weights: str | None = Field(None, description="NPZ file of trained weights, relative to "
                                "this config file.")
    init: Literal["random", "none"] = Field("random", description="Without weights: random "
                                            "(seeded) weights, or none (structure only: footprint "
                                            "and synthetic traces, no inference).")
    seed: int = 0
    weight_dtype: Literal["fp32", "fp16", "int8"] = Field("fp32", description="Storage dtype "
                                                          "of weights for footprint and hardware.")
    description: str | None = None

    @model_validator(mode="after")
    def _family_fields(self) -> "NetworkConfig":
        fam = self.family
        if fam == "gated" and self.gate is None:
            raise ValueError("family 'gated' needs a 'gate' section")
        if fam != "gated" and self.gate is not None:
            raise ValueError(f"'gate' is only allowed for family 'gated', not {fam!r}")
        if fam == "task_specialized" and not self.tasks:
            raise ValueError("family 'task_specialized' needs a non-empty 'tasks' list")
        if fam != "task_specialized" and (self.tasks or self.aggregator):
            raise ValueError("'tasks' and 'aggregator' are only allowed for 'task_specialized'")
        last = self.layers[-1]
        if not isinstance(last, DenseLayerConfig):
            raise ValueError("the last layer must be a dense readout layer")
        if fam != "task_specialized" and last.units != self.num_classes:
            raise ValueError(f"the last layer has {last.units} units but num_classes is "
                             f"{self.num_classes}")
        if fam == "task_specialized":
            for i, task in enumerate(self.tasks or []):
                bad = [c for c in task.classes if c >= self.num_classes]
                if bad:
                    raise ValueError(f"tasks[{i}].classes {bad} out of range for "
                                     f"num_classes={self.num_classes}")
        if self.gate is not None:
            g = self.gate
            if g.position >= len(self.layers) - 1:
                raise ValueError(f"gate.position {g.position} leaves no layer to gate")
            if g.top_k > self.num_classes:
                raise ValueError(f"gate.top_k {g.top_k} exceeds num_classes {self.num_classes}")
            if g.groups_per_class > g.groups:
                raise ValueError("gate.groups_per_class exceeds gate.groups")
            if g.grouping == "explicit":
                if g.class_groups is None or len(g.class_groups) != g.groups:
                    raise ValueError("grouping 'explicit' needs class_groups with one list "
                                     "per group")
            if g.class_groups is not None:
                if len(g.class_groups) != g.groups:
                    raise ValueError(f"class_groups has {len(g.class_groups)} lists, expected "
                                     f"gate.groups = {g.groups}")
                seen = {c for grp in g.class_groups for c in grp}
                if any(c >= self.num_classes for c in seen):
                    raise ValueError("class_groups names a class >= num_classes")
                if seen != set(range(self.num_classes)):
                    raise ValueError("class_groups must serve every class at least once")
        return self
