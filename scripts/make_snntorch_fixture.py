"""Make the snnTorch NIR fixtures of tests/test_nir.py (needs torch, snntorch, nir, nirtorch).

    python scripts/make_snntorch_fixture.py [--out tests/data]

Builds two small seeded snnTorch networks, exports each with ``snntorch.export_to_nir`` to
``snntorch_<name>.nir``, runs the snnTorch network itself for T steps on (a) static inputs fed
every step and (b) random binary spike inputs per step, and saves the inputs and the spikes of
every ``snn.Leaky`` layer to ``snntorch_<name>_spikes.npz``. Finally it imports each file with
simsnn (dt = 1e-4) and checks that our inference gives the same spikes.

Choices that make the comparison exact (see docs/nir.md):

* ``reset_mechanism="zero"`` (with the default ``reset_delay=True``): snnTorch zeroes the
  membrane at the step after a spike, before integrating, so the spikes equal those of a hard
  reset to 0, which is what NIR's LIF (``v_reset``) expresses. "subtract" cannot be expressed
  in NIR (snnTorch still exports it as a LIF with v_reset = 0).
* ``beta`` and ``threshold`` are given as per-neuron tensors of the layer's shape: with scalars,
  snnTorch writes 0-d LIF parameters whose type does not match the layer and export fails.
* Weights, biases and static inputs are rounded to multiples of 2**-6 / 2**-4, so every input
  current is an exact float32 sum whatever the summation order (torch's GEMM and our event
  loop add in different orders; with arbitrary float weights a current may differ in its last
  bit and a neuron sitting exactly at threshold could flip).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simsnn.inference import run_network  # noqa: E402
from simsnn.io import atomic_path  # noqa: E402
from simsnn.nir_io import import_nir, write_graph  # noqa: E402

DT = 1e-4  # snnTorch's export time step
T = 10
BATCH = 8
BETA, THRESHOLD = 0.9, 0.5
SEED = 0


def leaky(shape: tuple[int, ...], output: bool = False) -> snn.Leaky:
    return snn.Leaky(beta=torch.full(shape, BETA), threshold=torch.full(shape, THRESHOLD),
                     reset_mechanism="zero", init_hidden=True, output=output)


def mlp() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(20, 16), leaky((16,)),
                               torch.nn.Linear(16, 5), leaky((5,), output=True))


def conv() -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), leaky((4, 8, 8)),
                               torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 4 * 4, 3), leaky((3,), output=True))


def quantize_(net: torch.nn.Module, gain: float) -> None:
    """Scale weights by ``gain`` (to get lively spiking) and round them to multiples of 2**-6."""
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.round(p * gain * 64) / 64)


def run_snntorch(net: torch.nn.Sequential, events: np.ndarray) -> list[np.ndarray]:
    """Spikes (B, T, units) of every Leaky layer for input events (B, T, *shape)."""
    leakies = [m for m in net if isinstance(m, snn.Leaky)]
    steps: list[list[np.ndarray]] = [[] for _ in leakies]

    def hook(k: int):
        def record(_module, _inp, out):
            spk = out[0] if isinstance(out, tuple) else out
            steps[k].append(spk.detach().numpy().reshape(spk.shape[0], -1).astype(bool))
        return record

    handles = [m.register_forward_hook(hook(k)) for k, m in enumerate(leakies)]
    for m in leakies:  # fresh membranes of the right batch shape
        m.mem = torch.zeros(0)
    with torch.no_grad():
        for t in range(events.shape[1]):
            net(torch.from_numpy(events[:, t]))
    for h in handles:
        h.remove()
    return [np.stack(s, axis=1) for s in steps]


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def make(name: str, net: torch.nn.Sequential, shape: tuple[int, ...], gain: float,
         out: Path, rng: np.random.Generator) -> None:
    quantize_(net, gain)
    graph = export_to_nir(net, torch.zeros((1,) + shape), ignore_dims=[0])
    write_graph(graph, out / f"snntorch_{name}.nir")
    static = (np.round(rng.random((BATCH,) + shape) * 16) / 16).astype(np.float32)
    events = (rng.random((BATCH, T) + shape) < 0.3).astype(np.float32)
    arrays: dict[str, np.ndarray] = {"static_inputs": static, "spike_inputs": events}
    meta = {"snntorch": snn.__version__, "torch": torch.__version__, "dt": DT, "timesteps": T,
            "beta": BETA, "threshold": THRESHOLD, "reset_mechanism": "zero", "seed": SEED}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    static_events = np.ascontiguousarray(np.broadcast_to(static[:, None], events.shape))
    for case, ev in (("static", static_events), ("spike", events)):
        for k, spikes in enumerate(run_snntorch(net, ev)):
            arrays[f"{case}_spikes_{k}"] = spikes
    save_npz(out / f"snntorch_{name}_spikes.npz", arrays)

    ours = import_nir(out / f"snntorch_{name}.nir", dt=DT)
    for case, x in (("static", static), ("spike", events)):
        _, trace = run_network(ours, x, timesteps=T, record=True)
        for k, layer in enumerate(ours.spiking_layers):
            ref, got = arrays[f"{case}_spikes_{k}"], trace.layers[layer.name]
            status = "match" if np.array_equal(ref, got) else f"MISMATCH {int((ref != got).sum())}"
            print(f"{name} {case:6s} {layer.name:10s} rate {ref.mean():.3f} {status}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    make("mlp", mlp(), (20,), 2.0, args.out, rng)
    make("conv", conv(), (1, 8, 8), 6.0, args.out, rng)


if __name__ == "__main__":
    main()
