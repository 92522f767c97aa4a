"""The measured program's stall on weights that stream from DRAM or from a cache level beyond
the first (micro-benchmarks of the layer kernel, simsnn.host.kernels; the pieces are
whole rows and half rows in 1, 2 and 4 pieces: longer than a few hundred bytes, since
shorter ones with gaps as long pull the gaps in through the prefetchers and stream like whole
rows), for ``simsnn hw detect`` and ``simsnn validate``
through :func:`simsnn.host.calibration.calibrate_program`. Nothing here looks at the
validation points."""
from __future__ import annotations

import numpy as np

from simsnn.host.timing import STEPS, layer_arrays, time_layer


def _piece_stall(n_rows: int, n_out: int, n_ev: int, inner: int, run_latency_s: float,
                 repeat: int) -> tuple[float, float, list[dict]]:
    """The layer kernel's loss beyond its compute on ``n_ev`` ascending random rows per step
    (9 steps) of an ``n_rows`` x ``n_out`` fp16 matrix, each row read whole or as 1-4 pieces
    of half of it, against the same events on 8 L1-resident rows (best of ``repeat``,
    interleaved, ``inner`` calls each). The differences, less each piece's first-line
    latency as the model already charges it (``run_latency_s``), fitted as b x lines + a x
    pieces (non-negative least squares, relative error). Returns (b, a, per-shape timings)."""
    from scipy.optimize import nnls
    rng = np.random.default_rng(0)
    w, cur, state = layer_arrays(n_rows, n_out, np.uint16)  # placed as the program's
    w[...] = 0x2C00  # fp16 0.0625: every page written
    ev_idx = np.stack([np.sort(rng.choice(n_rows, n_ev, replace=False))
                       for _ in range(STEPS)]).astype(np.int32)
    base = dict(T=STEPS, ev_idx=ev_idx, ev_val=np.ones((STEPS, n_ev), np.float32),
                ev_n=np.full(STEPS, n_ev, np.int64), w=w, bias=np.zeros(0, np.float32),
                cur=cur, state=state,
                spk=np.zeros((1, STEPS, n_out), np.int64), spk_n=np.zeros((1, STEPS), np.int64))
    rows = STEPS * n_ev
    lines, pieces, extra, detail = [], [], [], []
    for width, runs in ((n_out, 1), (n_out // 2, 1), (n_out // 2, 2), (n_out // 2, 4)):
        seg = dict(base, s0=(np.arange(runs) * (n_out // runs)).astype(np.int64),
                   sl=np.full(runs, width // runs, np.int64))
        real = dict(seg, in_perm=np.arange(n_rows, dtype=np.int64))
        near = dict(seg, in_perm=np.arange(n_rows, dtype=np.int64) % 8)
        times = {"real": [], "near": []}
        for _ in range(repeat + 1):
            for name, a in (("real", real), ("near", near)):
                key = ("piece", n_rows, n_out, width, runs, name)
                times[name].append(time_layer(a, inner, 1, key)[0])
        best = {k: min(v[1:]) for k, v in times.items()}  # the first round warms up
        lines.append(rows * 2 * width / 64)
        pieces.append(rows * runs)
        extra.append(max(best["real"] - best["near"] - rows * runs * run_latency_s, 0.0))
        detail.append({"units": width, "runs": runs, "real_s": best["real"],
                       "near_s": best["near"]})
    x = np.stack([lines, pieces], 1)
    scale = np.array(extra) + 1e-12  # relative error
    per_line, per_run = nnls(x / scale[:, None], np.array(extra) / scale)[0]
    return float(per_line), float(per_run), detail


def dram_stall(clock_hz: float, largest_cache_bytes: int, run_latency_s: float = 0.0,
               repeat: int = 5) -> dict:
    """What the layer kernel loses beyond its compute when its weight rows stream from DRAM
    (:func:`_piece_stall`: 1,024 events per step against rows of 4,096 fp16 weights of a
    matrix at least twice ``largest_cache_bytes`` and 64 MiB; ``run_latency_s``: the DRAM
    latency over the memory-level parallelism): ``dram_line`` (per line) and ``dram_run``
    (per piece: a stream the prefetchers must start again)."""
    n_out = 4096
    n_rows = max(8192, -(-2 * int(largest_cache_bytes) // (2 * n_out)))
    per_line, per_run, detail = _piece_stall(n_rows, n_out, 1024, 1, run_latency_s, repeat)
    return {"dram_line": {"seconds": per_line, "spread": 0.0, "cycles": per_line * clock_hz,
                          "matrix_bytes": n_rows * 2 * n_out, "runs": detail},
            "dram_run": {"seconds": per_run, "spread": 0.0, "cycles": per_run * clock_hz}}


def cache_stalls(clock_hz: float, levels: list[tuple[str, int, int, float]],
                 repeat: int = 5) -> dict:
    """:func:`_piece_stall` for weights a cache level beyond the first serves: per level
    (name, size, the size of the level above it, its latency over the memory-level
    parallelism in seconds) a matrix of half its size, rows of up to 4,096 fp16 weights (at
    least 64 rows), half of them read per step. A level less than 8x the one above it
    cannot hold a matrix that the level above misses on and is left out (``skipped``).
    Returns ``{"level_stall": {name: {"line": .., "run": ..}}, "level_stall_skipped": [..]}``."""
    out: dict = {}
    skipped = []
    for name, size, above, run_latency_s in levels:
        matrix = int(size) // 2
        if matrix < 4 * int(above):
            skipped.append(name)
            continue
        n_out = int(min(4096, 2 ** np.floor(np.log2(matrix / (2 * 64)))))
        n_rows = matrix // (2 * n_out)
        per_line, per_run, detail = _piece_stall(n_rows, n_out, n_rows // 2, 3,
                                                 run_latency_s, repeat)
        out[name] = {"line": {"seconds": per_line, "spread": 0.0, "cycles": per_line * clock_hz,
                              "matrix_bytes": n_rows * 2 * n_out, "runs": detail},
                     "run": {"seconds": per_run, "spread": 0.0, "cycles": per_run * clock_hz}}
    return {"level_stall": out, "level_stall_skipped": skipped}


def stall_levels(hw) -> list[tuple[str, int, int, float]]:
    """The cache levels beyond the first of a hardware profile as :func:`cache_stalls`
    takes them: (name, size, the size of the level above, latency / mlp in seconds)."""
    f, mlp = hw.cores.frequency, hw.cores.mlp
    return [(lv.name, int(lv.size), int(hw.memory[i - 1].size), lv.latency / f / mlp)
            for i, lv in enumerate(hw.memory) if i > 0 and getattr(lv, "type", "") == "cache"]
