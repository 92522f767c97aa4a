"""Weights as stored: a network's weights are the values its storage dtype can hold.

``weight_dtype`` decides the bytes every weight costs (footprint, lowering) and what the
measured program reads; the reference inference must compute with the same values, or the
program and the reference disagree on spikes. So :func:`round_to_storage` replaces every weight
array of a built network by its stored value, once, after weights are loaded or initialised:

- ``fp32``: unchanged;
- ``fp16``: rounded to the nearest IEEE half (``float16``), held as float32;
- ``int8``: symmetric, one power-of-two scale per tensor (a layer's weights and its bias are
  two tensors): ``s = 2**ceil(log2(max|w| / 127))``, ``q = rint(w / s)`` in [-127, 127],
  value ``q * s``. A power of two makes ``q * s`` exact in float32 (the program widens ``q``
  and multiplies by ``s`` in a register and gets the reference's value bit for bit) and the
  rounding idempotent (:func:`int8_scale` of the rounded tensor is ``s`` again), so the
  program derives ``(q, s)`` from the network's float32 weights without a second copy.

Every step is deterministic and applied in place; rounding an already rounded network
changes nothing.
"""
from __future__ import annotations

import math

import numpy as np

from simsnn.network import AnyNetwork, Conv2d, Dense, Ensemble

INT8_MAX = 127


def int8_scale(w: np.ndarray) -> np.float32:
    """The power-of-two scale of ``w``'s int8 storage: the smallest ``2**e`` with
    ``max|w| / 2**e <= 127`` (1.0 for an all-zero tensor)."""
    m = float(np.max(np.abs(w))) if np.size(w) else 0.0
    if not m > 0 or not math.isfinite(m):
        return np.float32(1.0)
    e = math.ceil(math.log2(m / INT8_MAX))
    while m / 2.0 ** e > INT8_MAX:  # log2's rounding at exact powers of two
        e += 1
    return np.float32(2.0 ** e)


def int8_codes(w: np.ndarray, scale: np.float32 | None = None) -> np.ndarray:
    """``w``'s int8 codes ``rint(w / s)`` clipped to [-127, 127] (``s``: :func:`int8_scale`)."""
    s = int8_scale(w) if scale is None else scale
    return np.clip(np.rint(np.asarray(w, np.float64) / float(s)), -INT8_MAX,
                   INT8_MAX).astype(np.int8)


def stored_value(w: np.ndarray, dtype: str) -> np.ndarray:
    """``w`` (float32) as ``dtype`` storage holds it, as float32."""
    w = np.asarray(w, np.float32)
    if dtype == "fp32":
        return w
    if dtype == "fp16":
        return w.astype(np.float16).astype(np.float32)
    if dtype == "int8":
        s = int8_scale(w)
        return int8_codes(w, s).astype(np.float32) * s
    raise ValueError(f"unknown weight dtype {dtype!r}")


def round_to_storage(net: AnyNetwork) -> None:
    """Replace every weight array of ``net`` (layers, gate, aggregator, ensemble members) by
    its stored value in ``net.weight_dtype``. Networks without weights are left alone."""
    dtype = net.weight_dtype
    if dtype == "fp32":
        return
    members = net.members if isinstance(net, Ensemble) else [net]
    for m in members:
        for layer in m.layers:
            if isinstance(layer, (Dense, Conv2d)):
                if layer.weight is not None:
                    layer.weight = stored_value(layer.weight, dtype)
                if layer.bias is not None:
                    layer.bias = stored_value(layer.bias, dtype)
        gate = getattr(m, "gate", None)
        if gate is not None:
            gate.params.update({k: stored_value(v, dtype) for k, v in gate.params.items()})
    if isinstance(net, Ensemble):
        p = net.aggregator.params
        p.update({k: stored_value(v, dtype) for k, v in p.items()})
