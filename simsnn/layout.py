"""Memory layout of a network for the event-driven program: one address region per array.

Regions are allocated one after the other from address 0: arrays of at least ``align`` bytes on
``align`` boundaries (pages), smaller ones packed on ``small_align`` (cache lines). Unit
storage order: gated layers with ``groups: contiguous`` store shared units first, then group 0,
group 1, ...; otherwise units keep their index order. Every array the measured program's
kernels touch has a region, its scratch included: the input values and event lists of every
time step (layer-major keeps all T lists of a layer), each layer's input-to-row and
storage-to-unit maps, the cores' spike lists. See docs/workload.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simsnn.config.layout import LayoutConfig
from simsnn.errors import NetworkError
from simsnn.footprint import DTYPE_BYTES
from simsnn.network import AnyNetwork, AvgPool2d, Conv2d, Dense, Ensemble, Flatten, Network


@dataclass
class LayerLayout:
    """Addresses and storage order of one layer (trace name ``key``)."""

    key: str
    layer: object
    kind: str  # dense | readout | conv | pool | flatten
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (base, bytes)
    perm: np.ndarray | None = None  # unit (channel) index -> storage position
    groups_storage: np.ndarray | None = None  # group of each storage position (-1 shared)
    in_perm: np.ndarray | None = None  # input unit index -> storage row (dense after dense)
    binary_inputs: bool = True

    def base(self, name: str) -> int:
        return self.regions[name][0]


@dataclass
class NetworkLayout:
    """Layouts of every layer (ensemble members one after the other) plus shared buffers.
    ``steps``: the time steps the event lists hold; ``cores``: the spike lists'; ``units``:
    the length of the spike lists (the most outputs of any layer)."""

    config: LayoutConfig
    weight_bytes: int  # bytes per weight
    members: list[tuple[str, Network, list[LayerLayout]]]
    regions: dict[str, tuple[int, int]]
    total_bytes: int
    steps: int = 1
    cores: int = 1
    units: int = 1


class _Allocator:
    def __init__(self, align: int, small_align: int):
        self.align, self.small_align, self.top = align, small_align, 0
        self.regions: dict[str, tuple[int, int]] = {}

    def __call__(self, name: str, nbytes: int) -> tuple[int, int]:
        align = self.align if nbytes >= self.align else self.small_align
        base = -(-self.top // align) * align
        self.top = base + max(int(nbytes), 1)
        self.regions[name] = (base, int(nbytes))
        return base, int(nbytes)


def aligned_arena(nbytes: int, align: int) -> np.ndarray:
    """``nbytes`` zero bytes that start on an ``align``-byte boundary (a view into a buffer
    ``align`` bytes larger, which the view keeps alive): the memory the layout's offsets
    are placed in, for the measured program and its calibration alike."""
    raw = np.zeros(int(nbytes) + align, np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off:off + int(nbytes)]


def storage_perm(groups: np.ndarray | None, n: int, mode: str) -> np.ndarray:
    """Unit index -> storage position (stable sort by group, shared first, if contiguous)."""
    if groups is None or mode == "interleaved":
        return np.arange(n)
    order = np.argsort(groups, kind="stable")  # -1 (shared) first
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.arange(n)
    return perm


def _member_layout(net: Network, prefix: str, cfg: LayoutConfig, wb: int, alloc: _Allocator,
                   input_binary: bool, steps: int) -> list[LayerLayout]:
    out: list[LayerLayout] = []
    prev_perm: np.ndarray | None = None  # storage order of the previous layer's units
    prev_shape: tuple[int, ...] = tuple(net.input_shape)
    binary = input_binary
    for layer in net.layers:
        key = prefix + layer.name
        if isinstance(layer, Dense):
            kind = "readout" if layer.neuron is None else "dense"
            n_in, n_out = layer.in_features, layer.out_features
            perm = storage_perm(layer.groups, n_out, cfg.groups)
            ll = LayerLayout(key, layer, kind, perm=perm, binary_inputs=binary,
                             in_perm=prev_perm if prev_perm is not None and
                             prev_perm.shape[0] == n_in else np.arange(n_in))
            ll.regions["weights"] = alloc(f"{key}.weights", n_in * n_out * wb)
            if layer.has_bias:
                ll.regions["bias"] = alloc(f"{key}.bias", n_out * wb)
            ll.regions["current"] = alloc(f"{key}.current", n_out * 4)
            ll.regions["state"] = alloc(f"{key}.state", n_out * 4)
            ll.regions["in_perm"] = alloc(f"{key}.in_perm", n_in * 8)
            if kind == "dense":  # the merged spikes of every step (unit indices)
                ll.regions["inv_perm"] = alloc(f"{key}.inv_perm", n_out * 8)
                ll.regions["events_out"] = alloc(f"{key}.events", steps * n_out * 4)
            binary = True
        elif isinstance(layer, Conv2d):
            c, _, _ = layer.in_shape
            o, ho, wo = layer.out_shape
            perm = storage_perm(layer.groups, o, cfg.groups)
            ll = LayerLayout(key, layer, "conv", perm=perm, binary_inputs=binary,
                             in_perm=prev_perm if prev_perm is not None and
                             prev_perm.shape[0] == c else np.arange(c))
            ll.regions["weights"] = alloc(f"{key}.weights", c * layer.kernel**2 * o * wb)
            if layer.has_bias:
                ll.regions["bias"] = alloc(f"{key}.bias", o * wb)
            ll.regions["current"] = alloc(f"{key}.current", o * ho * wo * 4)
            ll.regions["state"] = alloc(f"{key}.state", o * ho * wo * 4)
            ll.regions["in_perm"] = alloc(f"{key}.in_perm", c * 8)
            ll.regions["inv_perm"] = alloc(f"{key}.inv_perm", o * 8)
            ll.regions["events_out"] = alloc(f"{key}.events", steps * o * ho * wo * 4)
            binary = True
        elif isinstance(layer, AvgPool2d):
            if layer.stride != layer.kernel:
                raise NetworkError(f"{key}: the lowering supports pooling with stride == kernel")
            c, hp, wp = layer.out_shape
            ll = LayerLayout(key, layer, "pool", perm=prev_perm, binary_inputs=binary)
            ll.regions["pooled"] = alloc(f"{key}.pooled", c * hp * wp * 4)
            # every step's graded events: the index lists, then the value lists
            ll.regions["events_out"] = alloc(f"{key}.events", steps * c * hp * wp * 8)
            binary = False
        elif isinstance(layer, Flatten):
            ll = LayerLayout(key, layer, "flatten", perm=prev_perm)
            if prev_perm is not None and len(prev_shape) == 3:
                c, h, w = prev_shape  # channel permutation carried into flattened rows
                pos = (prev_perm[:, None] * h * w + np.arange(h * w)[None, :]).reshape(-1)
                prev_perm = pos
                ll.perm = pos
            out.append(ll)
            prev_shape = layer.out_shape
            continue
        else:  # pragma: no cover
            raise TypeError(layer)
        if ll.perm is not None and layer.groups is not None and isinstance(layer, (Dense, Conv2d)):
            inv = np.empty_like(ll.perm)
            inv[ll.perm] = np.arange(ll.perm.shape[0])
            ll.groups_storage = layer.groups[inv]
        prev_perm = ll.perm if kind_has_units(ll) else prev_perm
        prev_shape = layer.out_shape
        out.append(ll)
    return out


def kind_has_units(ll: LayerLayout) -> bool:
    return ll.kind in ("dense", "conv", "readout")


def build_layout(net: AnyNetwork, cfg: LayoutConfig | None = None,
                 input_binary: bool | None = None, steps: int | None = None,
                 cores: int = 1) -> NetworkLayout:
    """Allocate every array of ``net`` for the event-driven program on ``cores`` cores over
    ``steps`` time steps (default: the network's). ``input_binary``: the input events are
    0/1 spikes (default: only with rate coding)."""
    cfg = cfg or LayoutConfig()
    dtype = cfg.weight_dtype or net.weight_dtype
    wb = DTYPE_BYTES[dtype]
    T = int(steps or net.timesteps)
    alloc = _Allocator(cfg.align, cfg.small_align)
    n_in = int(np.prod(net.input_shape))
    alloc("input", T * n_in * 4)  # every step's input values
    alloc("input.events", T * n_in * 8)  # every step's index lists, then value lists
    binary = net.coding == "rate" if input_binary is None else input_binary
    members: list[tuple[str, Network, list[LayerLayout]]] = []
    if isinstance(net, Ensemble):
        for i, m in enumerate(net.members):
            members.append((f"m{i}.", m, _member_layout(m, f"m{i}.", cfg, wb, alloc, binary,
                                                        T)))
        a = net.aggregator
        alloc("aggregator", ((a.in_features + 1) * a.hidden + (a.hidden + 1) *
                             a.out_features) * wb)
    else:
        members.append(("", net, _member_layout(net, "", cfg, wb, alloc, binary, T)))
        if net.gate is not None:
            alloc("gate.weights", net.gate.n_params * wb)
            alloc("gate.features", net.gate.num_features * 4)
    # the cores' spike lists (a storage index per update, kept per spike) and their counts,
    # and the conv merge's counts per channel: one scratch for every layer
    units = max([n_in] + [_outputs(ll) for _, _, lls in members for ll in lls])
    alloc("spikes", cores * T * units * 8)
    alloc("spikes.count", cores * T * 8)
    alloc("merge.first", (units + 1) * 8)
    return NetworkLayout(cfg, wb, members, dict(alloc.regions), alloc.top, T, cores, units)


def _outputs(ll: LayerLayout) -> int:
    """The outputs of a layer per step (units x positions; a pool's windows)."""
    return int(np.prod(ll.layer.out_shape))
