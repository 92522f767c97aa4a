"""The seed paper's claim on this host: dense vs task-specialized vs per-layer gated.

    python benchmarks/seed_claim.py [--samples 200] [--hardware configs/hardware/host.yaml]
        [--cores 1]

Accuracy of each shipped MNIST-subset model on the 1,000 test images; latency per inference
measured on this CPU (simsnn measure: best of the timed passes, as in validation) and
predicted on the hardware profile (simsnn.simulate, exact mode); speed-ups against the dense
model, measured and predicted, side by side. Results are recorded in docs/results.md.
"""
from __future__ import annotations

import argparse
import json

import simsnn
from hwmodels.loader import load_hardware
from simsnn.datasets import load_dataset
from simsnn.measure import measure


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--hardware", default="configs/hardware/host.yaml")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    ds = load_dataset("mnist")
    hw = load_hardware(args.hardware)
    x, y = ds.x_test[: args.samples], ds.y_test[: args.samples]
    rows = []
    for name in ("mnist-dense", "mnist-taskspec", "mnist-gated"):
        net = simsnn.load_network(name)
        scores, _ = simsnn.run_network(net, ds.x_test)
        acc = float((scores.argmax(1) == ds.y_test).mean())
        _, trace = simsnn.run_network(net, x, record=True, labels=y)
        m = measure(net, x, y, cores=args.cores, repeat=args.repeat)
        p = simsnn.simulate(net, trace, hw, "exact", args.cores).report
        rows.append({"network": name, "family": net.family, "accuracy": acc,
                     "measured_s": m["latency"]["best_of_repeats"],
                     "measured_spread": m["latency"]["spread"],
                     "predicted_s": p["latency_s"], "predicted_energy_j": p["energy_j"]})
    base = rows[0]
    for r in rows:
        r["measured_speedup"] = base["measured_s"] / r["measured_s"]
        r["predicted_speedup"] = base["predicted_s"] / r["predicted_s"]
    print(f"{'network':<16}{'accuracy':>9}{'measured ms':>13}{'predicted ms':>14}"
          f"{'speed-up meas.':>16}{'pred.':>7}")
    for r in rows:
        print(f"{r['network']:<16}{100 * r['accuracy']:>8.1f}%{1e3 * r['measured_s']:>13.3f}"
              f"{1e3 * r['predicted_s']:>14.3f}{r['measured_speedup']:>15.2f}x"
              f"{r['predicted_speedup']:>6.2f}x")
    print(json.dumps({"samples": args.samples, "cores": args.cores, "hardware": hw.name,
                      "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
