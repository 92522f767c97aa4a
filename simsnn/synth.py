"""Synthetic spike traces for networks without trained weights (e.g. the VGG9/CIFAR-10 shapes).

Each neuron's spike train is a two-state Markov chain whose stationary firing probability is
the neuron's rate and whose persistence ``burstiness`` (0 = independent Bernoulli steps,
towards 1 = long bursts and silences) keeps the mean rate unchanged:

    P(s_t = 1 | s_{t-1} = 1) = r + b (1 - r),     P(s_t = 1 | s_{t-1} = 0) = r (1 - b).

Per-neuron rates are the layer rate times a log-normal factor of spread ``heterogeneity``
(mean-preserving, clipped to [0, 1]). Gated networks: every sample gets a class from
``class_probs``; the gate picks that class first with probability ``gate_accuracy`` (else a
random other class), then ``top_k - 1`` further distinct classes at random; closed units never
spike. Everything is drawn from one seeded generator.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simsnn.footprint import active_mask
from simsnn.network import AnyNetwork, Ensemble, Network, is_spiking
from simsnn.trace import SpikeTrace


@dataclass
class SynthParams:
    """Knobs of the synthetic trace generator (see the module docstring)."""

    samples: int = 100
    timesteps: int | None = None
    input_rate: float = 0.2
    rate: float = 0.1
    layer_rates: dict[str, float] = field(default_factory=dict)
    burstiness: float = 0.0
    heterogeneity: float = 0.0
    class_probs: list[float] | None = None
    gate_accuracy: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, r in [("input_rate", self.input_rate), ("rate", self.rate),
                        *[(f"layer_rates.{k}", v) for k, v in self.layer_rates.items()]]:
            if not 0.0 <= r <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {r}")
        if not 0.0 <= self.burstiness < 1.0:
            raise ValueError(f"burstiness must be within [0, 1), got {self.burstiness}")
        if not 0.0 <= self.gate_accuracy <= 1.0:
            raise ValueError(f"gate_accuracy must be within [0, 1], got {self.gate_accuracy}")
        if self.samples < 1:
            raise ValueError("samples must be at least 1")


def markov_spikes(rng: np.random.Generator, rates: np.ndarray, timesteps: int,
                  burstiness: float, batch: int) -> np.ndarray:
    """(batch, T, N) bool spike trains with per-neuron stationary ``rates`` (N,)."""
    n = rates.shape[0]
    p11 = rates + burstiness * (1.0 - rates)
    p01 = rates * (1.0 - burstiness)
    out = np.empty((batch, timesteps, n), dtype=bool)
    state = rng.random((batch, n)) < rates
    out[:, 0] = state
    for t in range(1, timesteps):
        u = rng.random((batch, n))
        state = np.where(state, u < p11, u < p01)
        out[:, t] = state
    return out


def _rates(rng: np.random.Generator, n: int, rate: float, heterogeneity: float) -> np.ndarray:
    if heterogeneity <= 0:
        return np.full(n, rate)
    factor = rng.lognormal(-0.5 * heterogeneity**2, heterogeneity, size=n)
    return np.clip(rate * factor, 0.0, 1.0)


def _gate(rng: np.random.Generator, net: Network, p: SynthParams) -> tuple:
    gate = net.gate
    C = net.num_classes
    probs = np.full(C, 1.0 / C) if p.class_probs is None else np.asarray(p.class_probs, float)
    if probs.shape != (C,) or np.any(probs < 0) or not np.isclose(probs.sum(), 1.0):
        raise ValueError(f"class_probs must be {C} non-negative numbers summing to 1")
    labels = rng.choice(C, size=p.samples, p=probs)
    k = 1 if gate.kind == "oracle" else gate.top_k
    chosen = np.empty((p.samples, k), dtype=np.int64)
    for b in range(p.samples):
        first = labels[b]
        if rng.random() >= p.gate_accuracy and C > 1:
            first = rng.choice([c for c in range(C) if c != labels[b]])
        rest = rng.permutation([c for c in range(C) if c != first])[: k - 1]
        chosen[b] = [first, *rest]
    groups = gate.class_to_groups[chosen].any(axis=1)
    return labels, chosen, groups


def _member_layers(net: Network, rng, p: SynthParams, T: int, groups, prefix: str) -> dict:
    out = {}
    for layer in net.layers:
        if not is_spiking(layer):
            continue
        n = int(np.prod(layer.out_shape))
        rate = p.layer_rates.get(prefix + layer.name, p.rate)
        spikes = markov_spikes(rng, _rates(rng, n, rate, p.heterogeneity), T, p.burstiness,
                               p.samples)
        if groups is not None and layer.groups is not None:
            open_units = active_mask(layer, groups)  # (B, units or channels)
            per_pos = n // open_units.shape[1]
            spikes &= np.repeat(open_units, per_pos, axis=1)[:, None, :]
        out[prefix + layer.name] = spikes
    return out


def synthesize_trace(net: AnyNetwork, params: SynthParams | None = None) -> SpikeTrace:
    """Generate a trace for ``net`` (weights not needed) from the given statistics."""
    p = params or SynthParams()
    rng = np.random.default_rng(p.seed)
    T = p.timesteps or net.timesteps
    n_in = int(np.prod(net.input_shape))
    layers = {"input": markov_spikes(rng, _rates(rng, n_in, p.input_rate, p.heterogeneity), T,
                                     p.burstiness, p.samples)}
    labels = chosen = groups = None
    if isinstance(net, Ensemble):
        for i, m in enumerate(net.members):
            layers.update(_member_layers(m, rng, p, T, None, f"m{i}."))
    else:
        if net.gate is not None:
            labels, chosen, groups = _gate(rng, net, p)
        layers.update(_member_layers(net, rng, p, T, groups, ""))
    meta = {"source": "synthetic", "input_binary": True, "seed": p.seed,
            "rate": p.rate, "input_rate": p.input_rate, "burstiness": p.burstiness,
            "heterogeneity": p.heterogeneity, "gate_accuracy": p.gate_accuracy}
    return SpikeTrace(net.name, net.family, T, layers, groups, chosen, labels, None, meta)
