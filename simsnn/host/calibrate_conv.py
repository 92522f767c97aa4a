"""Calibration of the convolution and pooling kernels beyond what the dense layer's figures
price: a convolution's event (decoding its position, checking every tap of the window) and
its valid tap (the output position and weight row it reaches), the run overhead of the
current's initialisation and the neuron update at every output position, the conv spike
merge, and the average pooling's work per input spike. Data in L1; nothing here looks at a
validation point."""
from __future__ import annotations

import numpy as np

from simsnn.host import kernels as mk
from simsnn.host.timing import ONE, STEPS, best_of

#: the benchmark layer: 3x3 convolution, padding 1, on 8x8 inputs of ``_C`` channels
_H, _K, _C = 8, 3, 4


def _conv_call(n_out: int, events: np.ndarray, runs: int = 0):
    """A call of the one-core convolution kernel: ``n_out`` fp16 output channels, open in
    ``runs`` runs of ``n_out / (2 runs)`` channels with gaps as long between them (one run of
    all channels for ``runs`` = 0), the (flat) input ``events`` at every step (no spikes: the
    threshold is out of reach). The current and state (8 x 8 x n_out float32) stay in L1 up
    to 64 channels."""
    from simsnn.host.timing import layer_arrays
    rows = _C * _K * _K
    w, _, _ = layer_arrays(rows, n_out, np.uint16)
    w[...] = np.float16(0.01).view(np.uint16)
    npos = _H * _H
    cur = np.zeros(npos * n_out, np.float32)
    state = np.zeros(npos * n_out, np.float32)
    n = max(events.shape[0], 1)
    ev_idx = np.zeros((STEPS, n), np.int32)
    ev_idx[:, :events.shape[0]] = events
    ev_val = np.ones((STEPS, n), np.float32)
    ev_n = np.full(STEPS, events.shape[0], np.int64)
    geom = (_H, _H, _K, 1, 1, _H, _H, n_out)
    if runs == 0:
        s0, sl = np.array([0], np.int64), np.array([n_out], np.int64)
    else:
        width = n_out // (2 * runs)
        s0 = np.arange(runs, dtype=np.int64) * 2 * width
        sl = np.full(runs, width, np.int64)
    spk = np.zeros((1, STEPS, npos * n_out), np.int64)
    spk_n = np.zeros((1, STEPS), np.int64)
    bias = np.zeros(0, np.uint16)
    perm = np.arange(_C, dtype=np.int64)

    def call():
        mk.conv_one_core(STEPS, ev_idx, ev_val, ev_n, True, perm, geom, w, ONE, bias, ONE,
                         False, cur, state, s0, sl, np.float32(0.9), np.float32(1e9), False,
                         np.float32(0.0), spk, spk_n)
    return call


def _events_with_taps(taps: int, n: int) -> np.ndarray:
    """``n`` input events over ``_C`` channels of 8 x 8 whose 3x3 window (padding 1) has
    ``taps`` valid taps: 9 inside, 6 on an edge, 4 in a corner (the positions of that kind
    in turn, repeated as needed: the kernel's time does not depend on the order)."""
    y, x = np.divmod(np.arange(_H * _H), _H)
    edge = (y == 0) | (y == _H - 1)
    side = (x == 0) | (x == _H - 1)
    want = {9: ~edge & ~side, 6: edge ^ side, 4: edge & side}[taps]
    pos = np.nonzero(want)[0]
    flat = np.sort((np.arange(_C)[:, None] * _H * _H + pos[None, :]).ravel())
    return np.resize(flat, n).astype(np.int32)


def conv_event_costs(clock_hz: float, repeat: int, inner: int, per_segment_s: float,
                     per_synop_s: float) -> dict:
    """``conv_event`` and ``conv_tap``: the time per event of a convolution with one run of 64
    fp16 channels open, for events with 4, 6 and 9 valid taps (256 per step, so that they
    outweigh the neuron updates; less the same layer with no events), fitted as a line over
    the taps: the intercept is the event's own cost, the slope less one run visit
    (``per_segment_s``) and its 64 accumulates (``per_synop_s`` each; 64 leaves no
    remainder) the tap's."""
    n, units = 256, 64
    base, _ = best_of(_conv_call(units, np.zeros(0, np.int32)), inner, repeat,
                      ("conv", units, 0))
    taps, per, sp_max = (4, 6, 9), [], 0.0
    for k in taps:
        sec, sp = best_of(_conv_call(units, _events_with_taps(k, n)), inner, repeat,
                          ("conv", units, k))
        per.append((sec - base) / (STEPS * n))
        sp_max = max(sp_max, sp)
    slope, icpt = np.polyfit(np.array(taps, float), np.array(per), 1)
    tap = max(float(slope) - per_segment_s - units * per_synop_s, 0.0)
    event = max(float(icpt), 0.0)
    return {"conv_event": {"seconds": event, "spread": sp_max, "cycles": event * clock_hz},
            "conv_tap": {"seconds": tap, "spread": sp_max, "cycles": tap * clock_hz,
                         "per_tap_s": float(slope)}}


def update_run_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """``update_run``: a convolution with no events whose 32 open channels (of 64) form
    k = 1, 2, 4, 8 runs at each of its 64 positions; the time per position and step over k
    is a line of slope (2 + 1 / STEPS) r (the current's init and the neuron update each visit
    every run at every step, the state's init once per call): r."""
    ks, per, sp_max = (1, 2, 4, 8), [], 0.0
    for k in ks:
        sec, sp = best_of(_conv_call(64, np.zeros(0, np.int32), k),
                          inner, repeat, ("conv_runs", k))
        per.append(sec / (STEPS * _H * _H))
        sp_max = max(sp_max, sp)
    slope = float(np.polyfit(np.array(ks, float), np.array(per), 1)[0])
    run = max(slope / (2 + 1 / STEPS), 0.0)
    return {"update_run": {"seconds": run, "spread": sp_max, "cycles": run * clock_hz}}


def conv_merge_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """``conv_spike``: per output spike, the conv merge (kernels.merge_conv_events: a counting
    sort by channel) of m = 64, 256, 512 spikes per step among 64 channels x 64 positions;
    the slope over the spike count (the per-channel part is in the fixed cost)."""
    rng = np.random.default_rng(0)
    n_out, npos = 64, 64
    inv = np.arange(n_out, dtype=np.int64)
    out = np.zeros((STEPS, n_out * npos), np.int32)
    first = np.zeros(n_out + 1, np.int64)
    counts, secs, sp_max = (64, 256, 512), [], 0.0
    for m in counts:
        spk = np.zeros((1, STEPS, n_out * npos), np.int64)
        for t in range(STEPS):
            spk[0, t, :m] = np.sort(rng.choice(n_out * npos, m, replace=False))
        spk_n = np.full((1, STEPS), m, np.int64)
        sec, sp = best_of(lambda s=spk, k=spk_n: mk.merge_conv_events(s, k, inv, n_out, npos,
                                                                       out, first),
                          inner, repeat, ("conv_merge", m))
        secs.append(sec)
        sp_max = max(sp_max, sp)
    slope = max(float(np.polyfit(np.array(counts, float) * STEPS, np.array(secs), 1)[0]), 0.0)
    return {"conv_spike": {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}}


def pool_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """``pool_op``: per input spike, average pooling's decode and count (kernels.pool_layer,
    2x2 windows of 16 channels of 16 x 16): m = 64, 256, 1,024 spikes per step; the slope
    over the spike count (the scan of the windows is priced per window, as the encoder's
    inputs: cycles_per_input)."""
    rng = np.random.default_rng(0)
    c, h, k = 16, 16, 2
    hp = h // k
    geom = (h, h, k, hp, hp)
    pooled = np.zeros(c * hp * hp, np.float32)
    oi = np.zeros((STEPS, c * hp * hp), np.int32)
    ov = np.zeros((STEPS, c * hp * hp), np.float32)
    counts, secs, sp_max = (64, 256, 1024), [], 0.0
    for m in counts:
        ev = np.stack([np.sort(rng.choice(c * h * h, m, replace=False))
                       for _ in range(STEPS)]).astype(np.int32)
        ev_n = np.full(STEPS, m, np.int64)
        sec, sp = best_of(lambda e=ev, n=ev_n: mk.pool_layer(e, n, geom, pooled, oi, ov),
                          inner, repeat, ("pool", m))
        secs.append(sec)
        sp_max = max(sp_max, sp)
    slope = max(float(np.polyfit(np.array(counts, float) * STEPS, np.array(secs), 1)[0]), 0.0)
    return {"pool_op": {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}}
