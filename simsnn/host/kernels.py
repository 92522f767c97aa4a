"""Compiled kernels of the measured program (numba): the event-driven program the lowering
prices (simsnn/lowering.py), run on this CPU over one memory arena laid out by
simsnn/layout.py.

Weights are read in their storage dtype: fp32 as is; fp16 as its 16-bit patterns (numba has
no float16 on the CPU), each widened to float32 in a register by LLVM's half-to-float
conversion (F16C's vcvtph2ps on x86: exact for every value, subnormals included); int8 as its
codes, each widened and multiplied by its tensor's power-of-two scale (exact: simsnn.quantize).
The arithmetic is the reference inference's (simsnn/kernels.py): per time step the current of
each open unit is the bias plus the events' contributions in ascending input index order;
``v = leak * v + I``; a spike when ``v > threshold``, then reset.
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic, overload

# The measured program keeps its worker threads spinning between parallel layer calls
# (OpenMP's ACTIVE wait policy) unless the environment chooses otherwise: with passive
# waiting every multi-core layer call pays a thread wake-up (~0.1 ms on the development VM:
# shipped models 60-70 % slower on 2 cores), which is the runtime's choice, not the network's,
# and which the back-to-back sync calibration would not see. libgomp reads the variables
# when numba loads its OpenMP threading layer, at the first parallel call, after this import.
os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")
# ... but not for ever (ACTIVE alone spins ~30 billion times, minutes): a worker left spinning
# after the last parallel call held a vCPU at 100 % and the serial work that followed in the
# same process (one-core measurements and calibrations after a multi-core one) ran 1.7-2.8x
# slower in stretches of minutes here. 300,000 spins (a few milliseconds) cover the gaps
# between an inference's layer calls (microseconds), then the worker sleeps.
os.environ.setdefault("GOMP_SPINCOUNT", "300000")


@intrinsic
def _half_to_float32(typingctx, h):
    """The float32 value of the IEEE half-precision number whose bits are the uint16 ``h``
    (LLVM's ``fpext half``: one vcvtph2ps per vector on x86 with F16C; exact for every value,
    subnormals included, with no subnormal arithmetic on the way)."""
    if h != types.uint16:
        return None

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())
    return types.float32(types.uint16), codegen


def widen(x, s):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(widen, inline="always")
def _widen_impl(x, s):
    """A stored weight as float32: fp32 as is, fp16 bits widened (:func:`_half_to_float32`),
    an int8 code times its tensor's power-of-two scale ``s`` (exact: simsnn.quantize)."""
    if x == types.uint16:
        return lambda x, s: _half_to_float32(x)
    if x == types.int8:
        return lambda x, s: np.float32(x) * s
    return lambda x, s: x


def accum(cur, coff, w, row, s0, n, a, s):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(accum, inline="always")
def _accum_impl(cur, coff, w, row, s0, n, a, s):
    """``cur[coff+s0 : coff+s0+n] += a * w[row, s0:s0+n]`` for stored weights (each widened in
    a register: :func:`widen`, ``s`` the int8 scale)."""
    # 1-D views of the row and the current: LLVM vectorizes these loops (2-D indexing
    # inside the loop defeats it, ~6x slower)
    def impl(cur, coff, w, row, s0, n, a, s):
        ww = w[row, s0:s0 + n]
        cc = cur[coff + s0:coff + s0 + n]
        for k in range(n):
            cc[k] += a * widen(ww[k], s)
    return impl


@njit(cache=True)
def encode_input(x, ev_idx, ev_val):  # pragma: no cover - compiled
    """Input phase of every time step: read the inputs ``x`` (T, N) and write each step's
    event list (index, value) of the non-zero inputs; returns the event counts (T,).
    Branch-free (every input is written to the next free slot, which advances only past a
    non-zero one; ``ev_idx``/``ev_val`` hold N per step): its time does not depend on the
    pattern of zeros, which a branch would mispredict (random 20 % non-zero inputs took 3x
    longer than MNIST digits), so one cost per input prices it."""
    T, n = x.shape
    counts = np.zeros(T, np.int64)
    for t in range(T):
        m = 0
        for i in range(n):
            v = x[t, i]
            ev_idx[t, m] = i
            ev_val[t, m] = v
            m += v != 0.0
        counts[t] = m
    return counts


@njit(cache=True)
def _lif_update(state, cur, j, code, t, m, leak, thr, soft, v_reset,
                spk):  # pragma: no cover
    """One unit's LIF step at storage index ``j``; ``code`` (the unit's name in the spike
    list) goes to ``spk[t, m]`` and the new count (``m`` + 1 on a spike) is returned.
    Branch-free: the slot is written every time and kept only for a spike, so the update
    costs the same whichever units spike (a branch on the spike mispredicts at the rate of
    the data's irregularity)."""
    v = leak * state[j] + cur[j]
    s = v > thr
    spk[t, m] = code
    r = v - thr if soft else v_reset
    state[j] = r if s else v
    return m + s


@njit(cache=True)
def _layer_share(T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias, bscale, has_bias,
                 cur, state, s0, sl, readout, leak, thr, soft, v_reset, spk,
                 spk_n):  # pragma: no cover - compiled
    """All time steps of one dense layer for one core's open segments (storage positions
    ``s0[k] .. s0[k] + sl[k]``); spiking storage positions of step t go to ``spk[t]``."""
    for k in range(s0.shape[0]):
        for j in range(s0[k], s0[k] + sl[k]):
            state[j] = 0.0
    for t in range(T):
        for k in range(s0.shape[0]):  # current = bias (or 0)
            for j in range(s0[k], s0[k] + sl[k]):
                cur[j] = widen(bias[j], bscale) if has_bias else np.float32(0.0)
        for e in range(ev_n[t]):
            a = np.float32(1.0) if binary else ev_val[t, e]
            row = in_perm[ev_idx[t, e]]
            for k in range(s0.shape[0]):
                accum(cur, 0, w, row, s0[k], sl[k], a, wscale)
        m = 0
        for k in range(s0.shape[0]):
            for j in range(s0[k], s0[k] + sl[k]):
                if readout:
                    state[j] += cur[j]
                else:
                    m = _lif_update(state, cur, j, j, t, m, leak, thr, soft, v_reset, spk)
        spk_n[t] = m


@njit(cache=True, parallel=True)
def layer_cores(T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias, bscale, has_bias,
                cur, state, seg_s0, seg_sl, seg_ptr, readout, leak, thr, soft, v_reset, spk,
                spk_n):  # pragma: no cover - compiled
    """One dense layer, all time steps, its open units split over cores (``seg_ptr[c]`` ..
    ``seg_ptr[c + 1]`` are core c's segments), one thread per core; the cores are
    independent within a layer (each owns its units), so the only barrier is the layer's
    end. ``spk``/``spk_n`` (cores, T, ...) get each core's spiking storage positions."""
    n_cores = seg_ptr.shape[0] - 1
    for c in prange(n_cores):
        a, b = seg_ptr[c], seg_ptr[c + 1]
        _layer_share(T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias, bscale,
                     has_bias, cur, state, seg_s0[a:b], seg_sl[a:b], readout, leak, thr, soft,
                     v_reset, spk[c], spk_n[c])


@njit(cache=True)
def layer_one_core(T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias, bscale,
                   has_bias, cur, state, seg_s0, seg_sl, readout, leak, thr, soft, v_reset,
                   spk, spk_n):  # pragma: no cover - compiled
    """:func:`layer_cores` for one core, without a parallel region."""
    _layer_share(T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias, bscale, has_bias,
                 cur, state, seg_s0, seg_sl, readout, leak, thr, soft, v_reset, spk[0],
                 spk_n[0])


@njit(cache=True)
def _conv_share(T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias, bscale,
                has_bias, cur, state, s0, sl, leak, thr, soft, v_reset, spk,
                spk_n):  # pragma: no cover - compiled
    """All time steps of one event-driven convolution + LIF for one core's open channel
    segments. ``geom`` = (H, W, K, stride, padding, Ho, Wo, n_out) of the layer; weights are
    stored ``(c_in storage, ky, kx, n_out)`` (one row of n_out output channels per input
    channel and tap), current and state ``(Ho, Wo, n_out)``. Per step: current = bias at every
    position; each input event (c, y, x), in ascending flat index, visits its valid taps
    (ky, kx) in order and adds row ``(c, ky, kx)``'s open segments to the current at the
    output position it reaches; then the LIF update of every position's open units
    (position-major). A spike of storage channel j at position p is listed as
    ``j << 32 | p`` (decoded by shifts in :func:`merge_conv_events`). The valid taps are
    walked without divisions: along each axis the first valid tap is ``(y + pad) mod
    stride`` and the next one ``stride`` further, one output row (column) lower."""
    H, W, K, stride, pad, Ho, Wo, n_out = geom
    HW = H * W
    for p in range(Ho * Wo):
        for k in range(s0.shape[0]):
            for j in range(s0[k], s0[k] + sl[k]):
                state[p * n_out + j] = 0.0
    for t in range(T):
        for p in range(Ho * Wo):
            for k in range(s0.shape[0]):
                for j in range(s0[k], s0[k] + sl[k]):
                    cur[p * n_out + j] = widen(bias[j], bscale) if has_bias else \
                        np.float32(0.0)
        for e in range(ev_n[t]):
            a = np.float32(1.0) if binary else ev_val[t, e]
            idx = ev_idx[t, e]
            c = idx // HW
            r = idx - c * HW
            y = r // W
            x = r - y * W
            base = in_perm[c] * K * K
            if stride == 1:
                ky0, oy0, kx0, ox0 = 0, y + pad, 0, x + pad
            else:
                ky0, oy0 = (y + pad) % stride, (y + pad) // stride
                kx0, ox0 = (x + pad) % stride, (x + pad) // stride
            ky, oy = ky0, oy0
            while ky < K:
                if oy >= 0 and oy < Ho:
                    kx, ox = kx0, ox0
                    while kx < K:
                        if ox >= 0 and ox < Wo:
                            coff = (oy * Wo + ox) * n_out
                            row = base + ky * K + kx
                            for k in range(s0.shape[0]):
                                accum(cur, coff, w, row, s0[k], sl[k], a, wscale)
                        kx += stride
                        ox -= 1
                ky += stride
                oy -= 1
        m = 0
        for p in range(Ho * Wo):
            for k in range(s0.shape[0]):
                for j in range(s0[k], s0[k] + sl[k]):
                    m = _lif_update(state, cur, p * n_out + j, (j << 32) | p, t, m, leak,
                                    thr, soft, v_reset, spk)
        spk_n[t] = m


@njit(cache=True, parallel=True)
def conv_cores(T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias, bscale,
               has_bias, cur, state, seg_s0, seg_sl, seg_ptr, leak, thr, soft, v_reset, spk,
               spk_n):  # pragma: no cover - compiled
    """One convolution, all time steps, its open channels split over cores (as
    :func:`layer_cores`)."""
    n_cores = seg_ptr.shape[0] - 1
    for c in prange(n_cores):
        a, b = seg_ptr[c], seg_ptr[c + 1]
        _conv_share(T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias, bscale,
                    has_bias, cur, state, seg_s0[a:b], seg_sl[a:b], leak, thr, soft, v_reset,
                    spk[c], spk_n[c])


@njit(cache=True)
def conv_one_core(T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias, bscale,
                  has_bias, cur, state, seg_s0, seg_sl, leak, thr, soft, v_reset, spk,
                  spk_n):  # pragma: no cover - compiled
    """:func:`conv_cores` for one core, without a parallel region."""
    _conv_share(T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias, bscale,
                has_bias, cur, state, seg_s0, seg_sl, leak, thr, soft, v_reset, spk[0],
                spk_n[0])


@njit(cache=True)
def merge_conv_events(spk, spk_n, inv_perm, n_out, n_pos, out_idx,
                      first):  # pragma: no cover - compiled
    """The cores' spikes of a convolution (``j << 32 | p``: storage channel j, position p)
    -> each step's event list of unit indices (channel x ``n_pos`` + position) in ascending
    order: a counting sort by channel (``first``: ``n_out`` + 1 scratch slots). Within a
    channel its spikes arrive in ascending position (one core owns a channel and walks the
    positions in order), so the sort is stable and exact. Returns counts (T,)."""
    n_cores, T = spk_n.shape
    counts = np.zeros(T, np.int64)
    low = (1 << 32) - 1
    for t in range(T):
        for c in range(n_out + 1):
            first[c] = 0
        m = 0
        for core in range(n_cores):
            for e in range(spk_n[core, t]):
                first[inv_perm[spk[core, t, e] >> 32] + 1] += 1
                m += 1
        for c in range(n_out):
            first[c + 1] += first[c]
        for core in range(n_cores):
            for e in range(spk_n[core, t]):
                s = spk[core, t, e]
                ch = inv_perm[s >> 32]
                out_idx[t, first[ch]] = ch * n_pos + (s & low)
                first[ch] += 1
        counts[t] = m
    return counts


@njit(cache=True)
def pool_layer(ev_idx, ev_n, geom, pooled, out_idx, out_val):  # pragma: no cover - compiled
    """Average pooling (stride = kernel) of each step's input spikes: ``geom`` = (H, W, k,
    Hp, Wp); ``pooled`` (C x Hp x Wp, channel-major) counts the spikes of each window (every
    input event adds 1 to its window's entry), then a branch-free scan (as the encoder's)
    writes the non-zero windows as graded events (index c x Hp x Wp + window, value count /
    k^2, in ascending index) to ``out_idx``/``out_val``. Returns counts (T,)."""
    H, W, k, Hp, Wp = geom
    HW = H * W
    T = ev_n.shape[0]
    n = pooled.shape[0]
    div = np.float32(k * k)
    counts = np.zeros(T, np.int64)
    for t in range(T):
        for i in range(n):
            pooled[i] = 0.0
        for e in range(ev_n[t]):
            idx = ev_idx[t, e]
            c = idx // HW
            r = idx - c * HW
            y = r // W
            x = r - y * W
            if k == 2:  # the common window: shifts, not divisions
                yp, xp = y >> 1, x >> 1
            else:
                yp, xp = y // k, x // k
            if yp < Hp and xp < Wp:
                pooled[(c * Hp + yp) * Wp + xp] += np.float32(1.0)
        m = 0
        for i in range(n):
            v = pooled[i] / div
            out_idx[t, m] = i
            out_val[t, m] = v
            m += v != 0.0
        counts[t] = m
    return counts


@njit(cache=True)
def rate_features(ev_idx, ev_val, ev_n, binary, feat):  # pragma: no cover - compiled
    """A gate's features after layer 0: each unit's mean event value over the steps (its
    spike rate), summed in step order and divided by the step count, as the reference's
    ``mean`` over time."""
    T = ev_n.shape[0]
    for i in range(feat.shape[0]):
        feat[i] = 0.0
    for t in range(T):
        for e in range(ev_n[t]):
            feat[ev_idx[t, e]] += np.float32(1.0) if binary else ev_val[t, e]
    for i in range(feat.shape[0]):
        feat[i] = feat[i] / np.float32(T)


@njit(cache=True)
def merge_events(spk, spk_n, inv_perm, out_idx):  # pragma: no cover - compiled
    """The cores' spiking storage positions of each step -> one event list of unit indices in
    ascending order (the order the next layer accumulates them in); returns counts (T,).
    A step's list is sorted (in place) only when it did not arrive in order: dense layers
    and contiguous groups store units in unit order and each core's share follows the
    previous one's, so their lists arrive sorted; a sort costs ~0.2 us even for a few
    spikes."""
    n_cores, T = spk_n.shape
    counts = np.zeros(T, np.int64)
    for t in range(T):
        m = 0
        ordered = True
        last = -1
        for c in range(n_cores):
            for e in range(spk_n[c, t]):
                u = inv_perm[spk[c, t, e]]
                ordered &= u > last
                last = u
                out_idx[t, m] = u
                m += 1
        if not ordered:
            out_idx[t, :m].sort()
        counts[t] = m
    return counts


@njit(cache=True)
def select_top(scores, class_to_groups, top_k):  # pragma: no cover - compiled
    """The gate's decision: the groups (bool) of its ``top_k`` best-scored classes, ties to
    the lower class index (numpy's stable ``argsort(-scores)``)."""
    n = scores.shape[0]
    taken = np.zeros(n, np.bool_)
    groups = np.zeros(class_to_groups.shape[1], np.bool_)
    for _ in range(min(top_k, n)):
        best = -1
        for i in range(n):
            if not taken[i] and (best < 0 or scores[i] > scores[best]):
                best = i
        taken[best] = True
        for j in range(class_to_groups.shape[1]):
            groups[j] |= class_to_groups[best, j]
    return groups


@njit(cache=True)
def gate_mlp(feat, w1, b1, w2, b2, mlp, sigmoid, scales):  # pragma: no cover - compiled
    """Scores of a small non-spiking MLP (a gate, or an ensemble's aggregator):
    ``act(feat @ w1 + b1) @ w2 + b2`` with act relu, or the logistic function with
    ``sigmoid`` (just ``feat @ w1 + b1`` without ``mlp``), accumulated over the non-zero
    features in ascending order. ``scales``: the int8 scales of w1, b1, w2, b2 (ignored for
    other dtypes)."""
    hidden = b1.shape[0]
    h = np.empty(hidden, np.float32)
    for j in range(hidden):
        h[j] = np.float32(0.0)
    # the non-zero features, found branch-free as the encoder does (a branch per feature
    # would cost what its pattern makes it), then their rows
    nz = np.empty(feat.shape[0], np.int64)
    m = 0
    for i in range(feat.shape[0]):
        nz[m] = i
        m += feat[i] != 0.0
    for k in range(m):
        accum(h, 0, w1, nz[k], 0, hidden, feat[nz[k]], scales[0])
    one = np.ones(1, np.float32)
    accum(h, 0, b1.reshape(1, hidden), 0, 0, hidden, one[0], scales[1])
    if not mlp:
        return h
    n_out = b2.shape[0]
    out = np.empty(n_out, np.float32)
    for j in range(n_out):
        out[j] = np.float32(0.0)
    for i in range(hidden):
        if sigmoid:
            a = np.float32(1.0) / (np.float32(1.0) + np.exp(-h[i]))
        else:
            a = h[i] if h[i] > 0.0 else np.float32(0.0)
        if a != 0.0:
            accum(out, 0, w2, i, 0, n_out, a, scales[2])
    accum(out, 0, b2.reshape(1, n_out), 0, 0, n_out, one[0], scales[3])
    return out
