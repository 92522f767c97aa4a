"""The measured program's kernels, each bracketed by callgrind client requests that switch
event collection on and off (valgrind's cache simulator then sees exactly the kernels'
accesses: the Python driver between them is neither counted nor simulated). Same names and
arguments as simsnn.host.kernels; ``MeasuredProgram(..., kernels=simsnn.host.counted)`` runs
them. Outside valgrind a client request is a handful of no-op instructions.

The request is valgrind's magic sequence (valgrind.h, amd64): ``rol`` of rdi by 3, 13, 61
and 51 bits (a no-op), then ``xchg rbx, rbx``, with rax pointing at the request's six words
and the result in rdx; emitted as LLVM inline assembly, so no C compiler is needed.

Before it switches collection on, each kernel writes one word of every line of a flush buffer
(uncounted): the caches the kernel starts from then hold the flush lines, whatever the Python
driver touched since the last kernel (valgrind simulates the driver's accesses too, it only
does not count them). The simulator's side replays the same flush (simsnn.host.cachegrind).
Each wrapper takes the flush buffer first; :func:`bind` gives the kernels with it bound, under
the names and arguments of simsnn.host.kernels.
"""
from __future__ import annotations

import platform
from functools import partial
from types import SimpleNamespace

import llvmlite.binding as llb
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from simsnn.host import kernels as mk

llb.initialize_native_asmparser()  # LLVM parses the inline assembly below

_BASE = (ord("C") << 24) | (ord("T") << 16)  # VG_USERREQ_TOOL_BASE('C', 'T')
TOGGLE_COLLECT = _BASE + 2
SUPPORTED = platform.machine().lower() in ("x86_64", "amd64")


@intrinsic
def _request(typingctx, code):
    """Valgrind client request ``code`` (no arguments); returns its result (0 outside)."""
    sig = types.uint64(types.int64)

    def codegen(context, builder, signature, args):
        i64, i32 = ir.IntType(64), ir.IntType(32)
        words = builder.alloca(ir.ArrayType(i64, 6))
        for k in range(6):
            slot = builder.gep(words, [ir.Constant(i32, 0), ir.Constant(i32, k)])
            builder.store(args[0] if k == 0 else ir.Constant(i64, 0), slot)
        asm = ir.InlineAsm(ir.FunctionType(i64, [i64, i64]),
                           "rolq $$3, %rdi\n\trolq $$13, %rdi\n\trolq $$61, %rdi\n\t"
                           "rolq $$51, %rdi\n\txchgq %rbx, %rbx",
                           "={dx},{ax},0,~{cc},~{memory}", side_effect=True)
        return builder.call(asm, [builder.ptrtoint(words, i64), ir.Constant(i64, 0)])
    return sig, codegen


@njit(cache=True)
def _flush(buf):  # pragma: no cover - compiled
    """Write one word of every 64-byte line of ``buf`` (int64), in address order."""
    for i in range(0, buf.shape[0], 8):
        buf[i] += 1


@njit(cache=True)
def encode_input(flush, x, ev_idx, ev_val):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    r = mk.encode_input(x, ev_idx, ev_val)
    _request(TOGGLE_COLLECT)
    return r


@njit(cache=True)
def layer_one_core(flush, T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias,
                   bscale, has_bias, cur, state, seg_s0, seg_sl, readout, leak, thr, soft, v_reset,
                   spk, spk_n):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    mk.layer_one_core(T, ev_idx, ev_val, ev_n, binary, in_perm, w, wscale, bias, bscale,
                      has_bias, cur, state, seg_s0, seg_sl, readout, leak, thr, soft, v_reset,
                      spk, spk_n)
    _request(TOGGLE_COLLECT)


@njit(cache=True)
def conv_one_core(flush, T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias,
                  bscale, has_bias, cur, state, seg_s0, seg_sl, leak, thr, soft, v_reset, spk,
                  spk_n):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    mk.conv_one_core(T, ev_idx, ev_val, ev_n, binary, in_perm, geom, w, wscale, bias, bscale,
                     has_bias, cur, state, seg_s0, seg_sl, leak, thr, soft, v_reset, spk,
                     spk_n)
    _request(TOGGLE_COLLECT)


@njit(cache=True)
def merge_events(flush, spk, spk_n, inv_perm, out_idx):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    r = mk.merge_events(spk, spk_n, inv_perm, out_idx)
    _request(TOGGLE_COLLECT)
    return r


@njit(cache=True)
def merge_conv_events(flush, spk, spk_n, inv_perm, n_out, n_pos, out_idx,
                      first):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    r = mk.merge_conv_events(spk, spk_n, inv_perm, n_out, n_pos, out_idx, first)
    _request(TOGGLE_COLLECT)
    return r


@njit(cache=True)
def pool_layer(flush, ev_idx, ev_n, geom, pooled, out_idx,
               out_val):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    r = mk.pool_layer(ev_idx, ev_n, geom, pooled, out_idx, out_val)
    _request(TOGGLE_COLLECT)
    return r


@njit(cache=True)
def rate_features(flush, ev_idx, ev_val, ev_n, binary,
                  feat):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    mk.rate_features(ev_idx, ev_val, ev_n, binary, feat)
    _request(TOGGLE_COLLECT)


@njit(cache=True)
def gate_mlp(flush, feat, w1, b1, w2, b2, mlp, sigmoid,
             scales):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    r = mk.gate_mlp(feat, w1, b1, w2, b2, mlp, sigmoid, scales)
    _request(TOGGLE_COLLECT)
    return r


@njit(cache=True)
def select_top(flush, scores, class_to_groups,
               top_k):  # pragma: no cover - compiled
    _flush(flush)
    _request(TOGGLE_COLLECT)
    r = mk.select_top(scores, class_to_groups, top_k)
    _request(TOGGLE_COLLECT)
    return r


#: the kernels with a counted wrapper (the one-core program's)
KERNELS = ("encode_input", "layer_one_core", "conv_one_core", "merge_events",
           "merge_conv_events", "pool_layer", "rate_features", "gate_mlp", "select_top")


def bind(flush: np.ndarray) -> SimpleNamespace:
    """The counted kernels with ``flush`` (int64, at least one cache's size; its lines are
    written before each kernel) bound: ``MeasuredProgram(..., kernels=bind(buf))``."""
    if flush.dtype != np.int64 or flush.ndim != 1:
        raise ValueError("the flush buffer must be a 1-d int64 array")
    return SimpleNamespace(**{k: partial(globals()[k], flush) for k in KERNELS})
