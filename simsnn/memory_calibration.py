"""The measured program's stall on weights that stream from DRAM (a micro-benchmark of the
layer kernel, simsnn/measure_kernels.py), for ``simsnn hw detect`` and ``simsnn validate``
through :func:`simsnn.program_calibration.calibrate_program`. Nothing here looks at the
validation points."""
from __future__ import annotations

import numpy as np

from simsnn.program_calibration import _T, _time_layer

#: (open units per row, runs they are split into) of the DRAM stall benchmark: whole rows and
#: half rows in 1, 2 and 4 pieces (longer pieces than a few hundred bytes: shorter ones with
#: gaps as long pull the gaps in through the prefetchers and stream like whole rows)
DRAM_PIECES = ((4096, 1), (2048, 1), (2048, 2), (2048, 4))


def dram_stall(clock_hz: float, largest_cache_bytes: int, run_latency_s: float = 0.0,
               repeat: int = 5) -> dict:
    """What the layer kernel loses beyond its compute when its weight rows stream from DRAM:
    1,024 events per step (9 steps, ascending random rows) against rows of 4,096 fp16 weights
    of a matrix at least twice ``largest_cache_bytes`` (and 64 MiB), each row read whole or
    as 1-4 pieces of half of it (``DRAM_PIECES``), timed against the same events on 8
    L1-resident rows (best of ``repeat``, interleaved). The differences, less the first-line
    latency of each piece as the model already charges it (``run_latency_s``: the DRAM
    latency over the memory-level parallelism), are fitted as b x lines + a x pieces
    (non-negative least squares): ``dram_line`` (b, per line) and ``dram_run`` (a, per piece:
    a stream the prefetchers must start again)."""
    from scipy.optimize import nnls
    n_out, n_ev = 4096, 1024
    row_bytes = 2 * n_out
    n_rows = max(8192, -(-2 * int(largest_cache_bytes) // row_bytes))
    rng = np.random.default_rng(0)
    w = np.full((n_rows, n_out), 0x2C00, np.uint16)  # fp16 0.0625: every page written
    ev_idx = np.stack([np.sort(rng.choice(n_rows, n_ev, replace=False))
                       for _ in range(_T)]).astype(np.int32)
    base = dict(T=_T, ev_idx=ev_idx, ev_val=np.ones((_T, n_ev), np.float32),
                ev_n=np.full(_T, n_ev, np.int64), w=w, bias=np.zeros(0, np.float32),
                cur=np.zeros(n_out, np.float32), state=np.zeros(n_out, np.float32),
                spk=np.zeros((1, _T, n_out), np.int64), spk_n=np.zeros((1, _T), np.int64))
    rows = _T * n_ev
    lines, pieces, extra, detail = [], [], [], []
    for width, runs in DRAM_PIECES:
        seg = dict(base, s0=(np.arange(runs) * (n_out // runs)).astype(np.int64),
                   sl=np.full(runs, width // runs, np.int64))
        real = dict(seg, in_perm=np.arange(n_rows, dtype=np.int64))
        near = dict(seg, in_perm=np.arange(n_rows, dtype=np.int64) % 8)
        times = {"real": [], "near": []}
        for _ in range(repeat + 1):
            for name, a in (("real", real), ("near", near)):
                times[name].append(_time_layer(a, 1, 1)[0])
        best = {k: min(v[1:]) for k, v in times.items()}  # the first round warms up
        lines.append(rows * 2 * width / 64)
        pieces.append(rows * runs)
        extra.append(max(best["real"] - best["near"] - rows * runs * run_latency_s, 0.0))
        detail.append({"units": width, "runs": runs, "real_s": best["real"],
                       "near_s": best["near"]})
    del w
    x = np.stack([lines, pieces], 1)
    scale = np.array(extra) + 1e-12  # relative error
    per_line, per_run = nnls(x / scale[:, None], np.array(extra) / scale)[0]
    return {"dram_line": {"seconds": float(per_line), "spread": 0.0,
                          "cycles": float(per_line) * clock_hz,
                          "matrix_bytes": n_rows * row_bytes, "runs": detail},
            "dram_run": {"seconds": float(per_run), "spread": 0.0,
                         "cycles": float(per_run) * clock_hz}}
