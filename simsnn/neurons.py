"""Neuron dynamics as pure step functions with explicit state.

``step(current, v, params) -> (spikes, v)``: no hidden state, no classes. The compiled inference
kernels in :mod:`simsnn.kernels` inline exactly these equations (in the same float32 order), and
the tests check them against hand-computed values.

Discrete-time LIF, per step t (defaults follow the task-specialization public code):

    v[t]  = leak * v[t-1] + I[t]
    s[t]  = v[t] > threshold
    v[t]  = v_reset            where s[t]  (hard reset)
    v[t]  = v[t] - threshold   where s[t]  (soft reset)

IF is the same with ``leak = 1``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NeuronParams:
    """Parameters of a population of LIF/IF neurons (IF has ``leak == 1``)."""

    leak: float = 0.9
    threshold: float = 0.2
    soft_reset: bool = False
    v_reset: float = 0.0

    @property
    def model(self) -> str:
        return "if" if self.leak == 1.0 else "lif"


def lif_step(current: np.ndarray, v: np.ndarray, p: NeuronParams) -> tuple[np.ndarray, np.ndarray]:
    """One LIF step. Returns ``(spikes, new_v)``; inputs are not modified."""
    dtype = v.dtype
    v = (dtype.type(p.leak) * v + current).astype(dtype, copy=False)
    spikes = v > dtype.type(p.threshold)
    if p.soft_reset:
        v = np.where(spikes, v - dtype.type(p.threshold), v)
    else:
        v = np.where(spikes, dtype.type(p.v_reset), v)
    return spikes, v


def if_step(current: np.ndarray, v: np.ndarray, p: NeuronParams) -> tuple[np.ndarray, np.ndarray]:
    """One IF (non-leaky integrate-and-fire) step: :func:`lif_step` with ``leak = 1``."""
    return lif_step(current, v, NeuronParams(1.0, p.threshold, p.soft_reset, p.v_reset))


def run_neurons(currents: np.ndarray, p: NeuronParams) -> np.ndarray:
    """Apply :func:`lif_step` over the leading time axis of ``currents`` (T, ...) from v = 0."""
    v = np.zeros(currents.shape[1:], dtype=np.float32)
    out = np.zeros(currents.shape, dtype=bool)
    for t in range(currents.shape[0]):
        out[t], v = lif_step(currents[t].astype(np.float32), v, p)
    return out
