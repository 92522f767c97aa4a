"""What a parallel layer call of the measured program costs on N threads, back to back and
after a serial gap (the driver's work between layers), for the second-CPU check.

    python scripts/parallel_probe.py [--threads 1 2 4 8 16] [--gaps 0 20 100 500]

Prints, per thread count and gap, the median and minimum time of one `layer_cores` call on a
tiny layer (16 units per thread, 4 events, 9 steps: its arithmetic is negligible), and numba's
threading layer. The model charges `cycles_per_sync` per multi-core task, timed back to back
(docs/hw-detect.md); if the calls after a gap cost much more, the workers park between
layers and waking them is what the many-core points pay (docs/validation.md, second CPU).
"""
from __future__ import annotations

import argparse
import os
import time

import numba
import numpy as np
from numba import njit

from simsnn.host.calibrate_driver import parallel_layer_call


@njit(cache=True)
def _spin(n):  # pragma: no cover - compiled
    s = 0.0
    for i in range(n):
        s += np.sqrt(i + 1.0)
    return s


def probe(threads: int, gaps_us: list[float], calls: int = 200) -> list[tuple[float, float, float]]:
    """(gap in us, median us, min us) of one parallel call on ``threads`` threads."""
    t0 = time.perf_counter()
    _spin(10_000_000)
    per_iter = (time.perf_counter() - t0) / 1e7
    numba.set_num_threads(threads)
    call = parallel_layer_call(threads, 16, 4)
    call()
    out = []
    for gap in gaps_us:
        n = int(gap * 1e-6 / per_iter)
        ts = []
        for _ in range(calls):
            _spin(n)
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
        ts = np.array(ts) * 1e6
        out.append((gap, float(np.median(ts)), float(ts.min())))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    avail = len(os.sched_getaffinity(0))
    ap.add_argument("--threads", type=int, nargs="+",
                    default=[t for t in (1, 2, 4, 8, 16) if t <= avail])
    ap.add_argument("--gaps", type=float, nargs="+", default=[0, 20, 100, 500])
    args = ap.parse_args()
    for t in args.threads:
        for gap, med, mn in probe(t, args.gaps):
            print(f"threads {t:2d}  gap {gap:6.0f} us  call median {med:8.1f} us  min {mn:8.1f} us",
                  flush=True)
    print(f"numba threading layer: {numba.threading_layer()}")


if __name__ == "__main__":
    main()
