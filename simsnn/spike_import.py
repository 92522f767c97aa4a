"""Import spike arrays recorded by other frameworks (snnTorch, Norse, Lava, ...) as a trace.

Each array is one layer's spikes with time first: [T, N] for one sample or [T, B, N] for a batch
(trailing dimensions beyond N, e.g. [T, B, C, H, W], are flattened). Any non-zero value counts
as a spike. Given the network, names and unit counts are checked against its spiking layers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from simsnn.errors import TraceFormatError
from simsnn.network import AnyNetwork, Ensemble, is_spiking
from simsnn.trace import SpikeTrace


def spiking_layer_units(net: AnyNetwork) -> dict[str, int]:
    """Trace layer name -> number of units, for every spiking layer (ensemble members prefixed)."""
    members = ([(f"m{i}.", m) for i, m in enumerate(net.members)] if isinstance(net, Ensemble)
               else [("", net)])
    return {prefix + layer.name: int(np.prod(layer.out_shape))
            for prefix, m in members for layer in m.layers if is_spiking(layer)}


def _to_btn(name: str, arr: np.ndarray, units: int | None, where: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim < 2:
        raise TraceFormatError(where, f"array {name!r} has shape {list(a.shape)}; expected "
                               f"[T, N] or [T, B, N]")
    if a.ndim == 2 and (units is None or a.shape[1] == units):
        a = a[:, None, :]
    elif a.ndim > 3:
        a = a.reshape(a.shape[0], a.shape[1], -1)
    if units is not None and a.shape[2] != units:
        raise TraceFormatError(where, f"array {name!r} has {a.shape[2]} units per step, the "
                               f"network layer has {units}")
    return np.transpose(a != 0, (1, 0, 2))


def import_spikes(arrays: Mapping[str, np.ndarray], net: AnyNetwork | None = None,
                  source: str = "<arrays>", labels: np.ndarray | None = None) -> SpikeTrace:
    """Build a :class:`SpikeTrace` from per-layer time-first spike arrays."""
    expected = spiking_layer_units(net) if net is not None else None
    if net is not None:
        expected = {"input": int(np.prod(net.input_shape)), **expected}
        unknown = [k for k in arrays if k not in expected]
        if unknown:
            raise TraceFormatError(source, f"arrays {unknown[:3]} are not layers of "
                                   f"{net.name!r} (its spiking layers: {list(expected)[1:6]})")
        missing = [k for k in expected if k not in arrays and k != "input"]
        if missing:
            raise TraceFormatError(source, f"no spikes for layers {missing[:3]}")
        order = [k for k in expected if k in arrays]
    else:
        order = list(arrays)
    layers = {k: _to_btn(k, arrays[k], expected[k] if expected else None, source) for k in order}
    T = {v.shape[1] for v in layers.values()}
    B = {v.shape[0] for v in layers.values()}
    if len(T) != 1 or len(B) != 1:
        raise TraceFormatError(source, f"arrays disagree on time steps {sorted(T)} or batch "
                               f"size {sorted(B)}")
    name = net.name if net is not None else Path(str(source)).stem
    family = net.family if net is not None else "unknown"
    return SpikeTrace(name, family, T.pop(), layers, labels=labels,
                      meta={"source": f"imported from {source}", "input_binary": True})


def import_spikes_file(path: str | Path, net: AnyNetwork | None = None) -> SpikeTrace:
    """Read an NPZ file of per-layer arrays (an optional ``labels`` array is kept)."""
    path = Path(path)
    if not path.exists():
        raise TraceFormatError(str(path), "file not found")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as exc:  # BadZipFile, ValueError, OSError
        raise TraceFormatError(str(path), f"cannot read spike arrays: {exc}") from None
    labels = arrays.pop("labels", None)
    return import_spikes(arrays, net, str(path), labels)
