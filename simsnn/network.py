"""Runtime networks: plain dataclasses holding shapes, weights and gating structure.

Configs (``simsnn.config``) describe networks; :mod:`simsnn.build` turns a config into these
objects; :mod:`simsnn.inference` runs them. Weight conventions: a dense layer's ``weight`` is
input-major, shape ``(in_features, out_features)``, so an input spike reads one contiguous row;
a convolution's ``weight`` is ``(out_channels, in_channels, k, k)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from simsnn.neurons import NeuronParams


@dataclass
class Dense:
    name: str
    in_features: int
    out_features: int
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    neuron: NeuronParams | None = None  # None: non-spiking readout
    groups: np.ndarray | None = None  # per output unit: -1 shared, g >= 0 specialized group

    @property
    def in_shape(self) -> tuple[int, ...]:
        return (self.in_features,)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.out_features,)

    @property
    def n_params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.has_bias else 0)

    has_bias: bool = False


@dataclass
class Conv2d:
    name: str
    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    neuron: NeuronParams | None = None
    groups: np.ndarray | None = None  # per output channel
    has_bias: bool = False

    @property
    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        ho = (h + 2 * self.padding - self.kernel) // self.stride + 1
        wo = (w + 2 * self.padding - self.kernel) // self.stride + 1
        return (self.out_channels, ho, wo)

    @property
    def n_params(self) -> int:
        c = self.in_shape[0]
        return self.out_channels * c * self.kernel**2 + (self.out_channels if self.has_bias else 0)


@dataclass
class AvgPool2d:
    name: str
    in_shape: tuple[int, int, int]
    kernel: int
    stride: int

    @property
    def out_shape(self) -> tuple[int, int, int]:
        c, h, w = self.in_shape
        return (c, (h - self.kernel) // self.stride + 1, (w - self.kernel) // self.stride + 1)

    n_params = 0
    neuron = None
    groups = None


@dataclass
class Flatten:
    name: str
    in_shape: tuple[int, ...]

    @property
    def out_shape(self) -> tuple[int]:
        return (int(np.prod(self.in_shape)),)

    n_params = 0
    neuron = None
    groups = None


Layer = Union[Dense, Conv2d, AvgPool2d, Flatten]


def is_synaptic(layer: Layer) -> bool:
    """Dense and Conv2d layers hold weights and neurons; pool and flatten are stateless."""
    return isinstance(layer, (Dense, Conv2d))


def is_spiking(layer: Layer) -> bool:
    return is_synaptic(layer) and layer.neuron is not None


@dataclass
class Gate:
    """Decides per input which specialized unit groups run.

    ``class_to_groups[c, g]`` is True when group g serves class c. The gate scores the classes
    from its input features, takes the ``top_k`` best, and activates the union of their groups.
    """

    position: int
    kind: str  # linear | mlp | oracle
    num_features: int
    num_classes: int
    num_groups: int
    top_k: int
    class_to_groups: np.ndarray  # (C, G) bool
    hidden: int = 0
    params: dict[str, np.ndarray] = field(default_factory=dict)  # w1, b1[, w2, b2]

    @property
    def n_params(self) -> int:
        if self.kind == "oracle":
            return 0
        if self.kind == "linear":
            return self.num_features * self.num_classes + self.num_classes
        return (self.num_features * self.hidden + self.hidden
                + self.hidden * self.num_classes + self.num_classes)


@dataclass
class Network:
    """A dense or per-layer gated SNN (also one member of a task-specialized ensemble)."""

    name: str
    family: str  # dense | gated
    input_shape: tuple[int, ...]
    coding: str
    timesteps: int
    num_classes: int
    layers: list[Layer]
    gate: Gate | None = None
    weight_dtype: str = "fp32"
    seed: int = 0

    @property
    def has_weights(self) -> bool:
        return all(layer.weight is not None for layer in self.layers if is_synaptic(layer))

    @property
    def spiking_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if is_spiking(layer)]

    @property
    def n_params(self) -> int:
        return sum(layer.n_params for layer in self.layers)


@dataclass
class Aggregator:
    """Non-spiking combiner of a task-specialized ensemble: Linear-act-Linear."""

    in_features: int
    hidden: int
    out_features: int
    activation: str = "sigmoid"
    params: dict[str, np.ndarray] = field(default_factory=dict)  # w1 (in,h), b1, w2 (h,out), b2

    @property
    def n_params(self) -> int:
        return (self.in_features + 1) * self.hidden + (self.hidden + 1) * self.out_features


@dataclass
class Ensemble:
    """Task-specialized SNN: narrow sub-SNNs, all run on every input, plus an aggregator."""

    name: str
    input_shape: tuple[int, ...]
    coding: str
    timesteps: int
    num_classes: int
    members: list[Network]
    member_classes: list[list[int]]
    scales: list[float]
    aggregator: Aggregator
    weight_dtype: str = "fp32"
    seed: int = 0
    family: str = "task_specialized"
    gate = None

    @property
    def has_weights(self) -> bool:
        return all(m.has_weights for m in self.members) and bool(self.aggregator.params)

    @property
    def n_params(self) -> int:
        return sum(m.n_params for m in self.members) + self.aggregator.n_params


AnyNetwork = Union[Network, Ensemble]
