"""Turn a validated :class:`NetworkConfig` into a runtime network, and save/load weights (NPZ)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from simsnn.config.network import (
    AggregatorConfig,
    AvgPool2dLayerConfig,
    Conv2dLayerConfig,
    DenseLayerConfig,
    FlattenLayerConfig,
    GateConfig,
    NetworkConfig,
)
from simsnn.errors import ConfigError
from simsnn.io import atomic_path
from simsnn.network import (
    Aggregator,
    AnyNetwork,
    AvgPool2d,
    Conv2d,
    Dense,
    Ensemble,
    Flatten,
    Gate,
    Layer,
    Network,
    is_synaptic,
)
from simsnn.neurons import NeuronParams
from simsnn.quantize import round_to_storage

WEIGHTS_FORMAT = "simsnn-weights"
WEIGHTS_VERSION = 1


def neuron_params(cfg: NetworkConfig) -> NeuronParams:
    n = cfg.neuron
    return NeuronParams(leak=1.0 if n.model == "if" else n.leak, threshold=n.threshold,
                        soft_reset=n.reset == "soft", v_reset=n.v_reset)


def unit_groups(n_units: int, shared: float, groups: int, assignment: str) -> np.ndarray:
    """Per unit: -1 for shared units (the first ``round(shared * n)``), else its group index."""
    n_shared = int(round(shared * n_units))
    n_spec = n_units - n_shared
    out = np.full(n_units, -1, dtype=np.int32)
    if n_spec == 0:
        return out
    if n_spec < groups:
        raise ValueError(f"{n_units} units with shared fraction {shared} leave {n_spec} "
                         f"specialized units for {groups} groups")
    idx = np.arange(n_spec)
    if assignment == "interleaved":
        out[n_shared:] = idx % groups
    else:  # contiguous, as even as possible
        out[n_shared:] = (idx * groups) // n_spec
    return out


def class_to_groups(g: GateConfig, num_classes: int) -> np.ndarray:
    """(C, G) bool matrix from explicit class_groups or a round-robin default."""
    c2g = np.zeros((num_classes, g.groups), dtype=bool)
    if g.class_groups is not None:
        for gi, classes in enumerate(g.class_groups):
            c2g[classes, gi] = True
        return c2g
    for c in range(num_classes):
        for j in range(g.groups_per_class):
            c2g[c, (c * g.groups_per_class + j) % g.groups] = True
    return c2g


def _build_layers(cfg: NetworkConfig, prefix: str, scale: float, n_out: int,
                  gate: GateConfig | None, source: str) -> list[Layer]:
    shape: tuple[int, ...] = tuple(cfg.input.shape)
    params = neuron_params(cfg)
    layers: list[Layer] = []
    n = len(cfg.layers)
    for i, lc in enumerate(cfg.layers):
        name = lc.name or f"{prefix}{lc.type}{i}"
        last = i == n - 1
        gated = gate is not None and i >= gate.position and not last
        where = f"layers[{i}]"
        if isinstance(lc, DenseLayerConfig):
            if len(shape) != 1:
                raise ConfigError(source, where, f"dense layer needs a flat input, got shape "
                                  f"{list(shape)} (add a flatten layer)")
            units = n_out if last else max(1, int(round(lc.units / scale)))
            layer: Layer = Dense(name, shape[0], units, neuron=params if lc.spiking else None,
                                 has_bias=lc.bias)
            if last and lc.spiking:
                raise ConfigError(source, where + ".spiking", "the readout layer must be "
                                  "non-spiking (spiking: false)")
            if not last and not lc.spiking:
                raise ConfigError(source, where + ".spiking", "only the last layer may be "
                                  "non-spiking")
        elif isinstance(lc, Conv2dLayerConfig):
            if len(shape) != 3:
                raise ConfigError(source, where, f"conv2d needs a [C, H, W] input, got "
                                  f"{list(shape)}")
            ch = max(1, int(round(lc.channels / scale)))
            layer = Conv2d(name, shape, ch, lc.kernel, lc.stride, lc.padding,  # type: ignore[arg-type]
                           neuron=params if lc.spiking else None, has_bias=lc.bias)
            if not lc.spiking:
                raise ConfigError(source, where + ".spiking", "conv layers must spike")
            if min(layer.out_shape[1:]) < 1:
                raise ConfigError(source, where, f"kernel {lc.kernel} does not fit input "
                                  f"{list(shape)}")
        elif isinstance(lc, AvgPool2dLayerConfig):
            if len(shape) != 3:
                raise ConfigError(source, where, "avgpool2d needs a [C, H, W] input")
            layer = AvgPool2d(name, shape, lc.kernel, lc.stride or lc.kernel)  # type: ignore[arg-type]
            if min(layer.out_shape[1:]) < 1:
                raise ConfigError(source, where, f"pool kernel {lc.kernel} larger than input "
                                  f"{list(shape)}")
        elif isinstance(lc, FlattenLayerConfig):
            layer = Flatten(name, shape)
        else:  # pragma: no cover
            raise AssertionError(lc)
        if gated and is_synaptic(layer):
            frac = lc.shared if lc.shared is not None else gate.shared  # type: ignore[union-attr]
            n_units = layer.out_features if isinstance(layer, Dense) else layer.out_channels
            try:
                layer.groups = unit_groups(n_units, frac, gate.groups, gate.assignment)  # type: ignore[union-attr]
            except ValueError as exc:
                raise ConfigError(source, where, str(exc)) from None
        layers.append(layer)
        shape = layer.out_shape
    return layers


def _feature_size(layers: list[Layer], input_shape: tuple[int, ...], position: int) -> int:
    shape = input_shape if position == 0 else layers[position - 1].out_shape
    return int(np.prod(shape))


def build_network(cfg: NetworkConfig, source: str = "<python>",
                  base_dir: str | Path | None = None) -> AnyNetwork:
    """Build the runtime network of ``cfg``; load its weights file or initialise weights."""
    common = dict(input_shape=tuple(cfg.input.shape), coding=cfg.input.coding,
                  timesteps=cfg.timesteps, num_classes=cfg.num_classes)
    net: AnyNetwork
    if cfg.family == "task_specialized":
        members, classes, scales = [], [], []
        for m, task in enumerate(cfg.tasks or []):
            layers = _build_layers(cfg, "", task.scale, len(task.classes), None, source)
            members.append(Network(f"{cfg.name}.m{m}", "dense", common["input_shape"],
                                   cfg.input.coding, cfg.timesteps, len(task.classes), layers,
                                   weight_dtype=cfg.weight_dtype, seed=cfg.seed + m))
            classes.append(list(task.classes))
            scales.append(task.scale)
        agg_cfg = cfg.aggregator or AggregatorConfig()
        agg = Aggregator(sum(len(c) for c in classes), agg_cfg.hidden, cfg.num_classes,
                         agg_cfg.activation)
        net = Ensemble(cfg.name, members=members, member_classes=classes, scales=scales,
                       aggregator=agg, weight_dtype=cfg.weight_dtype, seed=cfg.seed, **common)
    else:
        layers = _build_layers(cfg, "", 1.0, cfg.num_classes, cfg.gate, source)
        gate = None
        if cfg.gate is not None:
            g = cfg.gate
            gate = Gate(g.position, g.kind, _feature_size(layers, common["input_shape"],
                                                          g.position),
                        cfg.num_classes, g.groups, g.top_k, class_to_groups(g, cfg.num_classes),
                        hidden=g.hidden if g.kind == "mlp" else 0)
        net = Network(cfg.name, cfg.family, layers=layers, gate=gate,
                      weight_dtype=cfg.weight_dtype, seed=cfg.seed, **common)
    if cfg.weights is not None:
        path = Path(cfg.weights)
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        load_weights(net, path, source)
    elif cfg.init == "random":
        init_weights(net, cfg.seed)
    if cfg.weights is not None or cfg.init == "random":
        round_to_storage(net)  # the reference computes with the stored values
    return net


# ----------------------------------------------------------------------------- weights
def _param_slots(net: AnyNetwork) -> dict[str, tuple[object, str, tuple[int, ...]]]:
    """Every weight array of ``net``: key -> (owner, attribute or params key, shape)."""
    slots: dict[str, tuple[object, str, tuple[int, ...]]] = {}

    def layer_slots(prefix: str, layers: list[Layer]) -> None:
        for i, layer in enumerate(layers):
            if isinstance(layer, Dense):
                slots[f"{prefix}layers.{i}.weight"] = (layer, "weight",
                                                       (layer.in_features, layer.out_features))
                if layer.has_bias:
                    slots[f"{prefix}layers.{i}.bias"] = (layer, "bias", (layer.out_features,))
            elif isinstance(layer, Conv2d):
                slots[f"{prefix}layers.{i}.weight"] = (
                    layer, "weight",
                    (layer.out_channels, layer.in_shape[0], layer.kernel, layer.kernel))
                if layer.has_bias:
                    slots[f"{prefix}layers.{i}.bias"] = (layer, "bias", (layer.out_channels,))

    if isinstance(net, Ensemble):
        for m, member in enumerate(net.members):
            layer_slots(f"members.{m}.", member.layers)
        a = net.aggregator
        for k, shape in (("w1", (a.in_features, a.hidden)), ("b1", (a.hidden,)),
                         ("w2", (a.hidden, a.out_features)), ("b2", (a.out_features,))):
            slots[f"aggregator.{k}"] = (a.params, k, shape)
    else:
        layer_slots("", net.layers)
        g = net.gate
        if g is not None and g.kind != "oracle":
            if g.kind == "linear":
                shapes = {"w1": (g.num_features, g.num_classes), "b1": (g.num_classes,)}
            else:
                shapes = {"w1": (g.num_features, g.hidden), "b1": (g.hidden,),
                          "w2": (g.hidden, g.num_classes), "b2": (g.num_classes,)}
            for k, shape in shapes.items():
                slots[f"gate.{k}"] = (g.params, k, shape)
    return slots


def _set(owner: object, attr: str, value: np.ndarray) -> None:
    if isinstance(owner, dict):
        owner[attr] = value
    else:
        setattr(owner, attr, value)


def init_weights(net: AnyNetwork, seed: int) -> None:
    """Seeded He-normal weights (zero biases) for every slot; used for untrained networks."""
    rng = np.random.default_rng(seed)
    for key, (owner, attr, shape) in _param_slots(net).items():
        if ".b" in key or key.endswith("bias"):
            arr = np.zeros(shape, dtype=np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            arr = rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        _set(owner, attr, arr)


def load_weights(net: AnyNetwork, path: str | Path, source: str = "<python>") -> None:
    """Fill ``net`` from an NPZ weights file; shapes and names must match exactly."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ConfigError(source, "weights", f"weights file {path} not found") from None
    except Exception as exc:  # zipfile.BadZipFile, ValueError, OSError ...
        raise ConfigError(source, "weights", f"cannot read weights file {path}: {exc}") from None
    meta = json.loads(bytes(arrays.pop("__meta__", np.zeros(0, np.uint8))).decode() or "{}")
    if meta.get("format") != WEIGHTS_FORMAT or meta.get("version") != WEIGHTS_VERSION:
        raise ConfigError(source, "weights", f"{path} is not a simsnn weights file of version "
                          f"{WEIGHTS_VERSION}")
    for key, (owner, attr, shape) in _param_slots(net).items():
        if key not in arrays:
            raise ConfigError(source, "weights", f"{path} lacks array {key!r}")
        arr = arrays.pop(key)
        if tuple(arr.shape) != shape:
            raise ConfigError(source, "weights", f"{path}: {key} has shape {list(arr.shape)}, "
                              f"the config needs {list(shape)}")
        _set(owner, attr, arr.astype(np.float32))
    if arrays:
        raise ConfigError(source, "weights", f"{path} has arrays the config does not use: "
                          f"{sorted(arrays)[:3]}")


def save_weights(net: AnyNetwork, path: str | Path, dtype: str = "float16") -> None:
    """Write every weight of ``net`` to an NPZ file atomically (``dtype`` storage)."""
    arrays = {}
    for key, (owner, attr, _) in _param_slots(net).items():
        value = owner[attr] if isinstance(owner, dict) else getattr(owner, attr)
        arrays[key] = np.asarray(value).astype(dtype)
    meta = {"format": WEIGHTS_FORMAT, "version": WEIGHTS_VERSION, "network": net.name}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
