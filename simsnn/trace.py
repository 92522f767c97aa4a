"""Spike traces: which neurons spiked, per sample, time step and layer, plus gate decisions.

On disk a trace is an HDF5 file in the documented, versioned and checksummed layout of
docs/trace-format.md. Spikes are bit-packed along the unit axis; every dataset carries a SHA-256
checksum verified on load, so a truncated or corrupted file fails with a clear error.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simsnn.errors import TraceFormatError
from simsnn.io import atomic_path

TRACE_FORMAT = "simsnn-trace"
TRACE_VERSION = 1


@dataclass
class SpikeTrace:
    """Spikes of one run over a batch of samples.

    ``layers`` maps a layer name to a bool array (samples, time steps, units), in network order;
    the entry ``"input"`` holds the non-zero input events. ``gate_groups`` (samples, groups) is
    True where the gate opened a group; ``gate_classes`` (samples, k) are the classes it chose.
    """

    network: str
    family: str
    timesteps: int
    layers: dict[str, np.ndarray]
    gate_groups: np.ndarray | None = None
    gate_classes: np.ndarray | None = None
    labels: np.ndarray | None = None
    predictions: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = None
        for name, arr in self.layers.items():
            if arr.ndim != 3 or arr.shape[1] != self.timesteps:
                raise ValueError(f"layer {name!r}: expected (samples, {self.timesteps}, units), "
                                 f"got {arr.shape}")
            if n is not None and arr.shape[0] != n:
                raise ValueError(f"layer {name!r} has {arr.shape[0]} samples, expected {n}")
            n = arr.shape[0]
            self.layers[name] = arr.astype(bool, copy=False)

    @property
    def n_samples(self) -> int:
        return next(iter(self.layers.values())).shape[0] if self.layers else 0

    def rates(self) -> dict[str, float]:
        """Mean firing probability per unit and step of every layer."""
        return {k: float(v.mean()) if v.size else 0.0 for k, v in self.layers.items()}

    def accuracy(self) -> float | None:
        if self.labels is None or self.predictions is None:
            return None
        return float(np.mean(self.labels == self.predictions))

    def subset(self, idx: np.ndarray | slice) -> "SpikeTrace":
        """The trace of a subset of samples."""
        def pick(a):
            return None if a is None else a[idx]
        return SpikeTrace(self.network, self.family, self.timesteps,
                          {k: v[idx] for k, v in self.layers.items()}, pick(self.gate_groups),
                          pick(self.gate_classes), pick(self.labels), pick(self.predictions),
                          dict(self.meta))

    def save(self, path: str | Path) -> None:
        save_trace(self, path)


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def save_trace(trace: SpikeTrace, path: str | Path) -> None:
    """Write ``trace`` to ``path`` atomically (temp file in the same folder, then rename)."""
    import h5py

    path = Path(path)
    datasets: dict[str, tuple[np.ndarray, dict]] = {}
    for i, (name, arr) in enumerate(trace.layers.items()):
        datasets[f"spikes/{i:04d}"] = (np.packbits(arr, axis=2, bitorder="little"),
                                       {"name": name, "n_units": arr.shape[2]})
    if trace.gate_groups is not None:
        g = np.asarray(trace.gate_groups, dtype=bool)
        datasets["gate/groups"] = (np.packbits(g, axis=1, bitorder="little"),
                                   {"n_groups": g.shape[1]})
    if trace.gate_classes is not None:
        datasets["gate/classes"] = (np.asarray(trace.gate_classes, dtype=np.int32), {})
    for key in ("labels", "predictions"):
        value = getattr(trace, key)
        if value is not None:
            datasets[f"samples/{key}"] = (np.asarray(value, dtype=np.int64), {})
    checksums = {k: _digest(a) for k, (a, _) in datasets.items()}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["format"] = TRACE_FORMAT
        f.attrs["version"] = TRACE_VERSION
        f.attrs["network"] = trace.network
        f.attrs["family"] = trace.family
        f.attrs["timesteps"] = trace.timesteps
        f.attrs["n_samples"] = trace.n_samples
        f.attrs["n_layers"] = len(trace.layers)
        f.attrs["meta"] = json.dumps(trace.meta, sort_keys=True)
        f.attrs["checksums"] = json.dumps(checksums, sort_keys=True)
        for key, (arr, attrs) in datasets.items():
            ds = f.create_dataset(key, data=arr, compression="gzip", compression_opts=4,
                                  shuffle=True)
            for k, v in attrs.items():
                ds.attrs[k] = v


def load_trace(path: str | Path) -> SpikeTrace:
    """Read a trace file; any missing, truncated, corrupt or foreign file raises
    :class:`TraceFormatError` naming the file and the problem."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise TraceFormatError(str(path), "file not found")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise TraceFormatError(str(path), f"not a readable HDF5 trace file (truncated or "
                               f"corrupt?): {exc}") from None
    try:
        with f:
            return _read(f, str(path))
    except TraceFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise TraceFormatError(str(path), f"corrupt trace file: {exc}") from None


def _read(f, where: str) -> SpikeTrace:
    fmt = f.attrs.get("format")
    if fmt != TRACE_FORMAT:
        raise TraceFormatError(where, f"not a simsnn trace (format attribute {fmt!r})")
    version = int(f.attrs.get("version", -1))
    if version != TRACE_VERSION:
        raise TraceFormatError(where, f"trace format version {version} is not supported "
                               f"(this simsnn reads version {TRACE_VERSION})")
    checksums = json.loads(f.attrs["checksums"])
    T = int(f.attrs["timesteps"])
    n_layers = int(f.attrs["n_layers"])

    def read(key: str) -> np.ndarray:
        arr = f[key][()]
        if checksums.get(key) != _digest(arr):
            raise TraceFormatError(where, f"checksum mismatch in dataset {key!r} (file corrupt)")
        return arr

    missing = [k for k in checksums if k not in f]
    if missing:
        raise TraceFormatError(where, f"datasets missing: {missing[:3]}")
    layers = {}
    for i in range(n_layers):
        key = f"spikes/{i:04d}"
        if key not in f:
            raise TraceFormatError(where, f"dataset {key!r} missing")
        ds = f[key]
        n_units = int(ds.attrs["n_units"])
        packed = read(key)
        layers[str(ds.attrs["name"])] = np.unpackbits(packed, axis=2, count=n_units,
                                                      bitorder="little").astype(bool)
    gate_groups = gate_classes = labels = predictions = None
    if "gate/groups" in f:
        n_groups = int(f["gate/groups"].attrs["n_groups"])
        gate_groups = np.unpackbits(read("gate/groups"), axis=1, count=n_groups,
                                    bitorder="little").astype(bool)
    if "gate/classes" in f:
        gate_classes = read("gate/classes").astype(np.int64)
    if "samples/labels" in f:
        labels = read("samples/labels")
    if "samples/predictions" in f:
        predictions = read("samples/predictions")
    return SpikeTrace(str(f.attrs["network"]), str(f.attrs["family"]), T, layers, gate_groups,
                      gate_classes, labels, predictions, json.loads(f.attrs["meta"]))
