"""Sweep throughput: hardware points per minute for a fixed trace in the fast memory mode.

    python benchmarks/sweep_throughput.py [--workers 1 2] [--samples 20]

One network (the shipped per-layer gated MNIST model, a recorded trace of 64 test images, the
first ``--samples`` replayed) on one core count; 1,000 hardware points: L2 size (8 powers of
two) x L3 size (5) x DRAM bandwidth (5) x core clock (5) on the zen4-epyc preset. The
hardware-independent pieces (trace, lowering, reuse-distance profile with the set counts of
every point) are prepared once into a shared cache and timed apart; then the same sweep runs
with each worker count into a fresh folder, and the points phase (pricing, timeline, energy,
durable result lines) is timed. Results are recorded in docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from simsnn.sweep import load_sweep, run_sweep

EXP = """version: 1
kind: experiment
name: bench-base
networks: [mnist-gated]
trace: {{source: dataset, dataset: mnist, split: test, samples: 64, seed: 0}}
hardware: zen4-epyc
cores: 1
memory_mode: fast
layout: {{samples: {samples}}}
"""
SWEEP = """version: 1
kind: sweep
name: throughput
base: exp.yaml
axes:
  - {path: hardware.memory.L2.size, range: [128 KiB, 16 MiB], scale: pow2}
  - {path: hardware.memory.L3.size, values: [8 MiB, 16 MiB, 32 MiB, 64 MiB, 128 MiB]}
  - {path: hardware.dram.bandwidth, values: [5 GB/s, 10 GB/s, 20 GB/s, 40 GB/s, 80 GB/s]}
  - {path: hardware.cores.frequency, values: [1.5 GHz, 2 GHz, 2.5 GHz, 3 GHz, 3.5 GHz]}
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--samples", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        (root / "exp.yaml").write_text(EXP.format(samples=args.samples))
        (root / "sweep.yaml").write_text(SWEEP)
        base = load_sweep(root / "sweep.yaml")
        cache = root / "cache"
        first = run_sweep(base, root / "prep", workers=max(args.workers), progress=False,
                          cache_dir=cache)
        out = {"points": first["evaluated"], "prepare_seconds": first["prepare_seconds"],
               "runs": []}
        for w in args.workers:
            s = run_sweep(load_sweep(root / "sweep.yaml"), root / f"w{w}", workers=w,
                          progress=False, cache_dir=cache)
            rate = 60 * s["evaluated"] / s["points_seconds"]
            out["runs"].append({"workers": w, "points": s["evaluated"],
                                "points_seconds": round(s["points_seconds"], 2),
                                "total_seconds": round(s["seconds"], 2),
                                "points_per_minute": round(rate)})
            print(f"{w} worker(s): {s['evaluated']} points in {s['points_seconds']:.1f} s "
                  f"= {rate:,.0f} points/min (whole command {s['seconds']:.1f} s)")
        r = out["runs"]
        if len(r) > 1:
            out["scaling"] = round(r[-1]["points_per_minute"] / r[0]["points_per_minute"], 2)
            print(f"scaling {r[0]['workers']} -> {r[-1]['workers']} workers: "
                  f"{out['scaling']:.2f}x")
        print(f"prepared once (trace, lowering, reuse profile): "
              f"{first['prepare_seconds']:.1f} s")
        print(json.dumps(out))


if __name__ == "__main__":
    main()
