"""Compiled event-driven inference kernels (numba). Whole arrays cross in once per layer.

The arithmetic is float32 and follows :mod:`simsnn.neurons` exactly: per time step the input
current of every neuron is accumulated from the non-zero input events in ascending input index
order, then ``v = leak * v + I``, spike when ``v > threshold``, then reset. Units whose gate is
closed (``active == False``) keep ``v = 0`` and never spike.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def dense_spiking(x, w, bias, active, leak, thr, soft, v_reset):  # pragma: no cover - compiled
    """x (B,T,Nin) f32 events; w (Nin,Nout) f32; bias (Nout,) f32; active (B,Nout) bool."""
    B, T, n_in = x.shape
    n_out = w.shape[1]
    spikes = np.zeros((B, T, n_out), dtype=np.uint8)
    cur = np.empty(n_out, dtype=np.float32)
    v = np.empty(n_out, dtype=np.float32)
    for b in range(B):
        v[:] = 0.0
        for t in range(T):
            cur[:] = bias
            for i in range(n_in):
                a = x[b, t, i]
                if a != 0.0:
                    for j in range(n_out):
                        cur[j] += a * w[i, j]
            for j in range(n_out):
                if active[b, j]:
                    vj = leak * v[j] + cur[j]
                    if vj > thr:
                        spikes[b, t, j] = 1
                        vj = vj - thr if soft else v_reset
                    v[j] = vj
    return spikes


@njit(cache=True)
def dense_readout(x, w, bias):  # pragma: no cover - compiled
    """Non-spiking readout: mean over time of the input current, (B, Nout) f32."""
    B, T, n_in = x.shape
    n_out = w.shape[1]
    out = np.zeros((B, n_out), dtype=np.float32)
    cur = np.empty(n_out, dtype=np.float32)
    for b in range(B):
        for t in range(T):
            cur[:] = bias
            for i in range(n_in):
                a = x[b, t, i]
                if a != 0.0:
                    for j in range(n_out):
                        cur[j] += a * w[i, j]
            for j in range(n_out):
                out[b, j] += cur[j]
    return out / np.float32(T)


@njit(cache=True)
def conv_spiking(x, w, bias, active, stride, pad, ho, wo,
                 leak, thr, soft, v_reset):  # pragma: no cover - compiled
    """Event-driven convolution + LIF. x (B,T,C,H,W) f32; w (O,C,K,K); active (B,O) bool.

    Each non-zero input (c, y, x) scatters its kernel slice w[:, c, :, :] onto the output
    positions it reaches, in ascending (c, y, x) order.
    """
    B, T, C, H, W = x.shape
    n_oc, _, K, _ = w.shape
    spikes = np.zeros((B, T, n_oc, ho, wo), dtype=np.uint8)
    cur = np.empty((n_oc, ho, wo), dtype=np.float32)
    v = np.empty((n_oc, ho, wo), dtype=np.float32)
    for b in range(B):
        v[:] = 0.0
        for t in range(T):
            for o in range(n_oc):
                cur[o] = bias[o]
            for c in range(C):
                for y in range(H):
                    for xx in range(W):
                        a = x[b, t, c, y, xx]
                        if a == 0.0:
                            continue
                        for ky in range(K):
                            ny = y + pad - ky
                            if ny < 0 or ny % stride != 0:
                                continue
                            oy = ny // stride
                            if oy >= ho:
                                continue
                            for kx in range(K):
                                nx = xx + pad - kx
                                if nx < 0 or nx % stride != 0:
                                    continue
                                ox = nx // stride
                                if ox >= wo:
                                    continue
                                for o in range(n_oc):
                                    cur[o, oy, ox] += a * w[o, c, ky, kx]
            for o in range(n_oc):
                if not active[b, o]:
                    continue
                for oy in range(ho):
                    for ox in range(wo):
                        vj = leak * v[o, oy, ox] + cur[o, oy, ox]
                        if vj > thr:
                            spikes[b, t, o, oy, ox] = 1
                            vj = vj - thr if soft else v_reset
                        v[o, oy, ox] = vj
    return spikes
