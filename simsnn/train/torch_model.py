"""PyTorch mirrors of the runtime networks, for surrogate-gradient BPTT training.

The forward pass reproduces :mod:`simsnn.inference` operation by operation in float32: the
same layer semantics (dense weights input-major, conv ``(O, C, k, k)``, average pooling without
padding), the same LIF equations as :mod:`simsnn.neurons` (``v = leak * v + I``, spike when
``v > threshold`` strictly, hard or soft reset), the same readout (mean over the time steps of
the last layer's current), the same gate (linear or mlp scores on the static input or on the
mean over time of the previous layer's output; stable top-k; union of the classes' groups) and
the same masks (closed units keep ``v = 0`` and never spike). Only the backward pass differs:
the Heaviside step gets a surrogate derivative (fast sigmoid or arctan) and resets are detached.

Weights cross over in both directions with :func:`from_runtime` and :meth:`export`.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simsnn.network import AnyNetwork, Conv2d, Dense, Ensemble, Gate, Network
from simsnn.neurons import NeuronParams

_F32 = torch.float32
SURROGATES = ("fast_sigmoid", "atan")


class SpikeFn(torch.autograd.Function):
    """Heaviside ``v > thr`` forward; surrogate derivative of ``u = v - thr`` backward."""

    @staticmethod
    def forward(ctx, v, thr, slope, kind):  # type: ignore[override]
        ctx.save_for_backward(v, thr)
        ctx.slope, ctx.kind = slope, kind
        return (v > thr).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        v, thr = ctx.saved_tensors
        u = v - thr
        k = ctx.slope
        if ctx.kind == "atan":  # d/du [atan(pi/2 k u) / pi + 1/2]
            sg = (k / 2.0) / (1.0 + (math.pi / 2.0 * k * u) ** 2)
        else:  # fast sigmoid, peak 1
            sg = 1.0 / (1.0 + k * u.abs()) ** 2
        return grad * sg, None, None, None


class LIF:
    """Float32 constants of one neuron population and the step function over them."""

    def __init__(self, p: NeuronParams, slope: float, kind: str):
        if kind not in SURROGATES:
            raise ValueError(f"surrogate must be one of {SURROGATES}, got {kind!r}")
        self.leak = torch.tensor(p.leak, dtype=_F32)
        self.thr = torch.tensor(p.threshold, dtype=_F32)
        self.v_reset = torch.tensor(p.v_reset, dtype=_F32)
        self.soft = p.soft_reset
        self.slope, self.kind = float(slope), kind

    def step(self, cur: torch.Tensor, v: torch.Tensor,
             mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One step ``(spikes, v)``; ``mask`` (broadcastable, 0/1) closes units."""
        v = self.leak * v + cur
        s = SpikeFn.apply(v, self.thr, self.slope, self.kind)
        if mask is not None:
            s = s * mask
        sd = s.detach()
        if self.soft:
            v = v - self.thr * sd
        else:
            v = v * (1.0 - sd) + self.v_reset * sd
        if mask is not None:
            v = v * mask
        return s, v

    def run(self, cur: torch.Tensor, T: int, static: bool,
            mask: torch.Tensor | None) -> torch.Tensor:
        """Currents (B, T, ...) or, when ``static``, (B, ...) repeated T times -> spikes."""
        shape = cur.shape if static else cur.shape[:1] + cur.shape[2:]
        v = torch.zeros(shape, dtype=_F32)
        out = []
        for t in range(T):
            s, v = self.step(cur if static else cur[:, t], v, mask)
            out.append(s)
        return torch.stack(out, dim=1)


class TLayer(nn.Module):
    """One layer of a runtime network. ``forward(h, T, static, groups)``.

    ``h`` is (B, T, *in_shape), or (B, *in_shape) when ``static`` (the same input every step,
    as with direct coding before the first stateful layer). Returns ``(out, static)``.
    """

    def __init__(self, layer, slope: float, kind: str):
        super().__init__()
        self.kind = type(layer).__name__
        self.spec = layer
        self.lif = LIF(layer.neuron, slope, kind) if getattr(layer, "neuron", None) else None
        if isinstance(layer, (Dense, Conv2d)):
            self.weight = nn.Parameter(torch.tensor(np.asarray(layer.weight, np.float32)))
            self.bias = (nn.Parameter(torch.tensor(np.asarray(layer.bias, np.float32)))
                         if layer.has_bias else None)
        groups = getattr(layer, "groups", None)
        if groups is not None:
            g = torch.as_tensor(np.asarray(groups, np.int64))
            self.register_buffer("shared", g < 0)
            self.register_buffer("spec_idx", torch.clamp(g, min=0))
        else:
            self.shared = None

    def unit_mask(self, groups: torch.Tensor | None) -> torch.Tensor | None:
        """(B, units) float mask from the open groups (B, G); None when ungated."""
        if self.shared is None or groups is None:
            return None
        return (self.shared[None, :] | groups[:, self.spec_idx]).to(_F32)

    def current(self, h: torch.Tensor) -> torch.Tensor:
        lead = h.shape[:-1] if self.kind == "Dense" else h.shape[:-3]
        if self.kind == "Dense":
            out = h.reshape(-1, h.shape[-1]) @ self.weight
        else:
            sp = self.spec
            out = F.conv2d(h.reshape((-1,) + tuple(h.shape[-3:])), self.weight,
                           stride=sp.stride, padding=sp.padding)
        if self.bias is not None:
            b = self.bias if self.kind == "Dense" else self.bias[:, None, None]
            out = out + b
        return out.reshape(lead + tuple(out.shape[1:]))

    def forward(self, h: torch.Tensor, T: int, static: bool,
                groups: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        if self.kind == "Flatten":
            nd = 1 if static else 2
            return h.reshape(tuple(h.shape[:nd]) + (-1,)), static
        if self.kind == "AvgPool2d":
            k, s = self.spec.kernel, self.spec.stride
            flat = h.reshape((-1,) + tuple(h.shape[-3:]))
            win = flat.unfold(2, k, s).unfold(3, k, s)  # same window sums as inference
            out = win.sum(dim=(-1, -2)) / torch.tensor(float(k * k), dtype=_F32)
            return out.reshape(tuple(h.shape[:-3]) + tuple(out.shape[1:])), static
        cur = self.current(h)
        if self.lif is None:  # non-spiking readout: mean over time of the current
            acc = torch.zeros(cur.shape[:1] + cur.shape[(1 if static else 2):], dtype=_F32)
            for t in range(T):  # same summation order as the inference kernel
                acc = acc + (cur if static else cur[:, t])
            return acc / torch.tensor(float(T), dtype=_F32), True
        mask = self.unit_mask(groups)
        if mask is not None and self.kind == "Conv2d":
            mask = mask[:, :, None, None]
        return self.lif.run(cur, T, static, mask), False


class TGate(nn.Module):
    """Gate classifier (linear or mlp) and its decision rule; mirrors ``inference.gate_*``."""

    def __init__(self, gate: Gate):
        super().__init__()
        self.position, self.kind, self.top_k = gate.position, gate.kind, gate.top_k
        self.register_buffer("c2g", torch.as_tensor(np.asarray(gate.class_to_groups, bool)))
        self.params = nn.ParameterDict({k: nn.Parameter(torch.tensor(np.asarray(v, np.float32)))
                                        for k, v in gate.params.items()})

    def scores(self, feats: torch.Tensor) -> torch.Tensor | None:
        if self.kind == "oracle":
            return None
        p = self.params
        h = feats @ p["w1"] + p["b1"]
        if self.kind == "mlp":
            h = torch.relu(h) @ p["w2"] + p["b2"]
        return h

    def decide(self, scores: torch.Tensor | None, labels: torch.Tensor | None,
               include_label: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(top-k classes (B, k), open groups (B, G) bool). ``include_label`` (training) also
        opens the groups of the true class, so the correct path always learns."""
        if scores is None:
            if labels is None:
                raise ValueError("an oracle gate needs labels")
            top = labels[:, None]
        else:
            top = torch.argsort(-scores, dim=1, stable=True)[:, : self.top_k]
        groups = self.c2g[top].any(dim=1)
        if include_label and labels is not None:
            groups = groups | self.c2g[labels]
        return top, groups


class TorchNetwork(nn.Module):
    """A dense or gated :class:`~simsnn.network.Network` as a torch module."""

    def __init__(self, net: Network, slope: float = 10.0, surrogate: str = "fast_sigmoid"):
        super().__init__()
        self.net = net
        self.layers = nn.ModuleList(TLayer(layer, slope, surrogate) for layer in net.layers)
        self.gate = TGate(net.gate) if net.gate is not None else None

    def forward(self, events: torch.Tensor, static_x: torch.Tensor, static: bool,
                labels: torch.Tensor | None = None, include_label: bool = False,
                record: dict | None = None, prefix: str = ""):
        """Return ``(class scores (B, C), gate scores or None, open groups or None)``.

        ``events`` is (B, T, *shape), or (B, *shape) with ``static=True`` (direct coding);
        ``static_x`` (B, *shape) is what a gate at position 0 reads. ``record`` collects the
        spikes of every spiking layer by name, like the inference trace.
        """
        B = static_x.shape[0]
        T = self.net.timesteps if static else events.shape[1]
        h, groups, gscores = events, None, None
        for i, layer in enumerate(self.layers):
            if self.gate is not None and i == self.gate.position:
                if i == 0:
                    feats = static_x.reshape(B, -1)
                else:
                    feats = (h if static else h.mean(dim=1)).reshape(B, -1)
                gscores = self.gate.scores(feats.detach())
                _, groups = self.gate.decide(gscores, labels, include_label)
            h, static = layer(h, T, static, groups)
            if record is not None and layer.lif is not None:
                record[prefix + layer.spec.name] = h.detach().reshape(B, T, -1)
        return h, gscores, groups

    def export(self, net: Network | None = None) -> Network:
        """Copy the trained weights into ``net`` (default: the network this module mirrors)."""
        net = net or self.net
        for layer, tl in zip(net.layers, self.layers):
            if isinstance(layer, (Dense, Conv2d)):
                layer.weight = tl.weight.detach().numpy().astype(np.float32).copy()
                if tl.bias is not None:
                    layer.bias = tl.bias.detach().numpy().astype(np.float32).copy()
        if self.gate is not None and net.gate is not None:
            net.gate.params = {k: v.detach().numpy().astype(np.float32).copy()
                               for k, v in self.gate.params.items()}
        return net


class TorchAggregator(nn.Module):
    def __init__(self, params: dict[str, np.ndarray], activation: str):
        super().__init__()
        self.activation = activation
        self.params = nn.ParameterDict({k: nn.Parameter(torch.tensor(np.asarray(v, np.float32)))
                                        for k, v in params.items()})

    def forward(self, o: torch.Tensor) -> torch.Tensor:
        p = self.params
        h = o @ p["w1"] + p["b1"]
        h = torch.sigmoid(h) if self.activation == "sigmoid" else torch.relu(h)
        return h @ p["w2"] + p["b2"]


class TorchEnsemble(nn.Module):
    """A task-specialized :class:`~simsnn.network.Ensemble`: members, then the aggregator."""

    def __init__(self, net: Ensemble, slope: float = 10.0, surrogate: str = "fast_sigmoid"):
        super().__init__()
        self.net = net
        self.members = nn.ModuleList(TorchNetwork(m, slope, surrogate) for m in net.members)
        self.aggregator = TorchAggregator(net.aggregator.params, net.aggregator.activation)

    def member_outputs(self, events, static_x, static, record=None) -> torch.Tensor:
        parts = [m(events, static_x, static, record=record, prefix=f"m{i}.")[0]
                 for i, m in enumerate(self.members)]
        return torch.cat(parts, dim=1)

    def forward(self, events, static_x, static, labels=None, include_label=False, record=None):
        return self.aggregator(self.member_outputs(events, static_x, static, record)), None, None

    def export(self, net: Ensemble | None = None) -> Ensemble:
        net = net or self.net
        for m, tm in zip(net.members, self.members):
            tm.export(m)
        net.aggregator.params = {k: v.detach().numpy().astype(np.float32).copy()
                                 for k, v in self.aggregator.params.items()}
        return net


def from_runtime(net: AnyNetwork, slope: float = 10.0,
                 surrogate: str = "fast_sigmoid") -> TorchNetwork | TorchEnsemble:
    """Torch mirror of a runtime network that holds weights (trained or initialised)."""
    if not net.has_weights:
        raise ValueError(f"{net.name} has no weights to train from")
    if isinstance(net, Ensemble):
        return TorchEnsemble(net, slope, surrogate)
    return TorchNetwork(net, slope, surrogate)


def encode_batch(net: AnyNetwork, x: np.ndarray, seed: int) -> tuple[torch.Tensor, bool]:
    """Input events of a batch as :func:`simsnn.inference.encode` makes them.

    Direct coding returns the static input itself (``static=True``): every step sees it.
    """
    if net.coding == "direct":
        return torch.as_tensor(np.asarray(x, np.float32)), True
    from simsnn.inference import encode
    return torch.as_tensor(encode(x, net.timesteps, net.coding, seed)), False


__all__ = ["SpikeFn", "LIF", "TorchNetwork", "TorchEnsemble", "from_runtime", "encode_batch",
           "SURROGATES"]
