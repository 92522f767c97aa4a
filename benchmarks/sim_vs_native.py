"""One simulated inference against the native inference of the same network.

    python benchmarks/sim_vs_native.py [--hardware xeon-vm-2c] [--repeat 5]

For the shipped dense, gated and task-specialized MNIST-subset models (and with ``--vgg9`` the
VGG9 shapes with random weights: `init: random` in place of the config's `none`, a random
image; such weights fire ~40 % of the units at every step, so one native inference takes
~40 s and its simulation many minutes: not a representative load), both sides in one
process, best of ``--repeat``: the native side is
`simsnn.run_network(net, x, record=True)` on one input (the numba inference, trace recorded),
the simulated side `simsnn.simulate(net, trace, hw, cores=1)` on that trace (lowering, exact
cache model, simpy timing, energy). Prints the ratio per model (target of issue 16: at most
5x). Results: docs/performance.md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

import simsnn
from hwmodels.loader import load_hardware
from simsnn.datasets import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def vgg9(tmp: Path):
    cfg = yaml.safe_load((ROOT / "configs/networks/vgg9-dense.yaml").read_text())
    cfg["init"] = "random"
    path = tmp / "vgg9-dense-random.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return simsnn.load_network(str(path))


def best(fn, repeat):
    t_best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        t_best = min(t_best, time.perf_counter() - t)
    return t_best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hardware", default="xeon-vm-2c")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--vgg9", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()
    import tempfile
    hw = load_hardware(args.hardware)
    mnist = load_dataset("mnist").x_test[:1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        nets = [simsnn.load_network(n) for n in ("mnist-dense", "mnist-gated", "mnist-taskspec")]
        if args.vgg9:
            nets.append(vgg9(Path(tmp)))
        for net in nets:
            x = mnist if net.name.startswith("mnist") else \
                np.random.default_rng(0).random((1,) + tuple(net.input_shape)).astype(np.float32)
            simsnn.run_network(net, x, record=True)  # compile
            t_nat, (_, trace) = best(lambda n=net, x=x: simsnn.run_network(n, x, record=True),
                                     args.repeat)
            simsnn.simulate(net, trace, hw, cores=1)  # compile
            t_sim, _ = best(lambda n=net, t=trace: simsnn.simulate(n, t, hw, cores=1),
                            args.repeat)
            row = {"network": net.name, "native_s": t_nat, "simulated_s": t_sim,
                   "ratio": t_sim / t_nat}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.json:
        from simsnn.io import write_json_atomic
        write_json_atomic(args.json, {"hardware": args.hardware, "rows": rows})


if __name__ == "__main__":
    main()
