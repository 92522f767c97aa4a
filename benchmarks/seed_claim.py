"""The seed paper's claim on this host: dense vs task-specialized vs per-layer gated.

    python benchmarks/seed_claim.py [--samples 200] [--hardware configs/hardware/host.yaml]
        [--cores 1] [--rounds 3] [--max-rounds 8] [--models mnist-dense mnist-taskspec ...]

Accuracy of each model on the 1,000 test images; latency per inference measured on this CPU
(simsnn measure) and predicted on the hardware profile (simsnn.simulate, exact mode), with
the method of `simsnn validate` (docs/validation.md): ``--rounds`` to ``--max-rounds`` rounds
(until nothing improves by more than 2 %), each re-timing
the program's own costs (micro-benchmarks only) and then timing ``--repeat`` passes of every
model, the models interleaved; measured = each sample's best over every pass of every round
(averaged over the samples), the re-timed figures from each timing's best over the rounds
(a shared pool, simsnn.host.timing.pooled_timings). Speed-ups
against the first model, measured and predicted, side by side. ``--models`` takes shipped
names or network YAML paths, e.g. the wide variants of docs/results.md
(``python -m simsnn.train.shipped --width 3072 --out out/wide``, then
``--models out/wide/mnist-dense-w3072.yaml ...``). Results are recorded in docs/results.md.
"""
from __future__ import annotations

import argparse
import json

import simsnn
from hwmodels.loader import load_hardware
from simsnn.datasets import load_dataset
from simsnn.host.validate import measured_latency, timed_rounds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--hardware", default="configs/hardware/host.yaml")
    ap.add_argument("--cores", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-rounds", type=int, default=8)
    ap.add_argument("--models", nargs="+",
                    default=["mnist-dense", "mnist-taskspec", "mnist-gated"])
    args = ap.parse_args()
    ds = load_dataset("mnist")
    hw = load_hardware(args.hardware)
    x, y = ds.x_test[: args.samples], ds.y_test[: args.samples]
    nets, traces, accs = [], [], []
    for name in args.models:
        net = simsnn.load_network(name)
        scores, _ = simsnn.run_network(net, ds.x_test)
        accs.append(float((scores.argmax(1) == ds.y_test).mean()))
        traces.append(simsnn.run_network(net, x, record=True, labels=y)[1])
        nets.append(net)
    # the models measured interleaved, round by round: drift reaches them alike
    runs_all, hw_now = timed_rounds([(net, x, y, None) for net in nets], hw, args.cores,
                                    rounds=args.rounds,
                                    max_rounds=max(args.rounds, args.max_rounds),
                                    settle=0.02, repeat=args.repeat)
    rows = []
    for net, trace, acc, runs in zip(nets, traces, accs, runs_all):
        m = runs[0]
        p = simsnn.simulate(net, trace, hw_now, "exact", args.cores).report
        rows.append({"network": net.name, "family": net.family, "accuracy": acc,
                     "weight_bytes": m["weight_bytes"],
                     "measured_s": measured_latency(runs),
                     "measured_best_pass_s": min(r["latency"]["best_of_repeats"]
                                                 for r in runs),
                     "measured_spread": max(r["latency"]["spread"] for r in runs),
                     "predicted_s": p["latency_s"], "predicted_energy_j": p["energy_j"]})
    base = rows[0]
    for r in rows:
        r["measured_speedup"] = base["measured_s"] / r["measured_s"]
        r["predicted_speedup"] = base["predicted_s"] / r["predicted_s"]
    print(f"{'network':<22}{'accuracy':>9}{'weights MiB':>12}{'measured ms':>13}"
          f"{'predicted ms':>14}{'speed-up meas.':>16}{'pred.':>7}")
    for r in rows:
        print(f"{r['network']:<22}{100 * r['accuracy']:>8.1f}%{r['weight_bytes'] / 2**20:>12.2f}"
              f"{1e3 * r['measured_s']:>13.3f}{1e3 * r['predicted_s']:>14.3f}"
              f"{r['measured_speedup']:>15.2f}x{r['predicted_speedup']:>6.2f}x")
    print(json.dumps({"samples": args.samples, "cores": args.cores, "hardware": hw.name,
                      "rounds": len(runs_all[0]), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
