"""Surrogate-gradient BPTT training of the three network families (PyTorch, CPU).

``train_network(cfg, dataset, epochs, seed)`` returns the runtime network with numpy weights
(ready for :func:`simsnn.run_network` and :func:`simsnn.build.save_weights`) and a history.
Recipes (docs/specialization.md):

- dense: cross-entropy on the readout (mean over time of the last layer's current).
- gated: classes grouped from a trained dense reference (confusion or activity), then ONE
  end-to-end run: cross-entropy of the network with masks = groups of (gate top-k classes and
  the true class), plus cross-entropy of the gate classifier on the class labels (the gate
  reads detached features). At evaluation the gate's top-k alone decides.
- task_specialized: every sub-SNN alone with one-vs-rest binary cross-entropy, then the
  aggregator with cross-entropy on the frozen sub-SNN outputs.

Deterministic for a seed and a thread count: seeded torch and numpy generators, deterministic
torch algorithms, a fixed number of threads. A validation split carved out of the training set
(``val_fraction``) is used for monitoring and for the class grouping; the test split is never
looked at.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from simsnn.build import build_network, init_weights
from simsnn.config.network import NetworkConfig
from simsnn.datasets import Dataset
from simsnn.errors import DatasetError
from simsnn.network import AnyNetwork, Conv2d, Dense, Ensemble, Network
from simsnn.train import grouping
from simsnn.train.torch_model import TorchAggregator, TorchEnsemble, TorchNetwork, encode_batch

Log = Callable[[str], None]


@contextmanager
def deterministic(seed: int, threads: int):
    """Seed torch, fix its thread count and force deterministic algorithms; restore after."""
    old = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    torch.set_num_threads(max(1, int(threads)))
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1])


def split_train_val(cfg: NetworkConfig, dataset: Dataset, val_fraction: float, seed: int):
    """(x_train, y_train, x_val, y_val): inputs reshaped to the config's input shape."""
    shape = tuple(cfg.input.shape)
    if int(np.prod(dataset.input_shape)) != int(np.prod(shape)):
        raise DatasetError(f"dataset {dataset.name!r} has inputs of shape "
                           f"{list(dataset.input_shape)}, the network expects {list(shape)}")
    if dataset.num_classes > cfg.num_classes:
        raise DatasetError(f"dataset {dataset.name!r} has {dataset.num_classes} classes, the "
                           f"network only {cfg.num_classes}")
    x = np.ascontiguousarray(dataset.x_train.reshape((-1,) + shape), dtype=np.float32)
    y = np.asarray(dataset.y_train, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(val_fraction * len(x)))
    va, tr = order[:n_val], order[n_val:]
    return x[tr], y[tr], x[va], y[va]


def predict(module, net: AnyNetwork, x: np.ndarray, labels: np.ndarray | None = None,
            record: bool = False, seed: int = 0, batch_size: int = 512):
    """Scores (B, C) of the torch mirror in evaluation mode (gate top-k only), as inference.

    Returns ``(scores, gate_scores or None, open groups or None, record dict or None)``.
    """
    outs, gsc, grp, recs = [], [], [], []
    module.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start:start + batch_size]
            ev, static = encode_batch(net, xb, seed + start)
            lab = None if labels is None else torch.as_tensor(labels[start:start + batch_size])
            rec: dict | None = {} if record else None
            out, gs, groups = module(ev, torch.as_tensor(xb), static, labels=lab, record=rec)
            outs.append(out.numpy())
            if gs is not None:
                gsc.append(gs.numpy())
            if groups is not None:
                grp.append(groups.numpy())
            recs.append(rec)
    def cat(parts):
        return np.concatenate(parts) if parts else None

    rec_out = ({k: torch.cat([r[k] for r in recs]).numpy() for k in recs[0]} if record else None)
    return cat(outs), cat(gsc), cat(grp), rec_out


def _accuracy(scores: np.ndarray | None, y: np.ndarray) -> float | None:
    if scores is None or len(y) == 0:
        return None
    return float((scores.argmax(axis=1) == y).mean())


def _fit(params, loss_fn, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
         lr: float, seed: int, evaluate: Callable[[], dict], log: Log, tag: str,
         log_every: int = 1) -> dict:
    """Adam with a cosine learning-rate decay; seeded shuffling; history of loss and metrics."""
    params = [p for p in params if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    steps = max(1, epochs * math.ceil(len(x) / batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1.0 + math.cos(math.pi * min(s, steps) / steps)))
    rng = np.random.default_rng(seed)
    hist: dict = {"loss": [], "metrics": []}
    for ep in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        total, n = 0.0, 0
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            loss = loss_fn(x[idx], y[idx], int(rng.integers(2**31)))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            n += len(idx)
        metrics = evaluate()
        hist["loss"].append(total / max(n, 1))
        hist["metrics"].append(metrics)
        shown = " ".join(f"{k} {v:.4f}" for k, v in metrics.items() if v is not None)
        if (ep + 1) % log_every == 0 or ep + 1 == epochs:
            log(f"[{tag}] epoch {ep + 1}/{epochs} loss {total / max(n, 1):.4f} {shown} "
                f"({time.perf_counter() - t0:.1f} s)")
    return hist


def _net_loss(module: TorchNetwork, net: Network):
    def loss_fn(xb, yb, enc_seed):
        module.train()
        ev, static = encode_batch(net, xb, enc_seed)
        yt = torch.as_tensor(yb)
        out, gs, _ = module(ev, torch.as_tensor(xb), static, labels=yt, include_label=True)
        loss = F.cross_entropy(out, yt)
        return loss + F.cross_entropy(gs, yt) if gs is not None else loss
    return loss_fn


def _gate_metrics(net: Network, gscores, groups, y) -> dict:
    if net.gate is None or net.gate.kind == "oracle" or gscores is None or len(y) == 0:
        return {}
    top = np.argsort(-gscores, axis=1, kind="stable")[:, : net.gate.top_k]
    c2g = net.gate.class_to_groups
    return {"gate_top1": float((top[:, 0] == y).mean()),
            "gate_topk": float((top == y[:, None]).any(axis=1).mean()),
            "true_groups_open": float((groups | ~c2g[y]).all(axis=1).mean()),
            "open_groups": float(groups.mean())}


def _copy_weights(src: Network, dst: Network) -> None:
    """Initialise ``dst``'s layers from ``src`` (same architecture); the gate stays fresh."""
    if len(src.layers) != len(dst.layers):
        raise ValueError(f"cannot initialise {dst.name} from {src.name}: different layers")
    for a, b in zip(src.layers, dst.layers):
        if isinstance(b, (Dense, Conv2d)):
            if not isinstance(a, type(b)) or np.shape(a.weight) != np.shape(b.weight):
                raise ValueError(f"cannot initialise layer {b.name} from {a.name}: shapes differ")
            b.weight = np.array(a.weight, dtype=np.float32)
            if b.has_bias and a.has_bias:
                b.bias = np.array(a.bias, dtype=np.float32)


def _fresh(cfg: NetworkConfig, seed: int) -> AnyNetwork:
    """The runtime network of ``cfg`` with seeded He-normal weights (ignores its weights file)."""
    net = build_network(cfg.model_copy(update={"weights": None, "init": "none"}))
    init_weights(net, seed)
    return net


def as_dense(cfg: NetworkConfig) -> NetworkConfig:
    """The dense counterpart of a gated config (same layers, no gate)."""
    data = cfg.model_dump()
    data.update(family="dense", gate=None, name=cfg.name + "-dense-reference", weights=None)
    return NetworkConfig.model_validate(data)


def class_similarity(cfg: NetworkConfig, reference: Network, x: np.ndarray, y: np.ndarray,
                     rule: str, seed: int = 0) -> np.ndarray:
    """Class similarity (C, C) of the reference dense model on (x, y), by ``rule``."""
    mod = TorchNetwork(reference)
    scores, _, _, rec = predict(mod, reference, x, record=rule == "activity", seed=seed)
    if rule == "confusion":
        e = np.exp(scores - scores.max(axis=1, keepdims=True))
        return grouping.confusion_similarity(grouping.soft_confusion(y, e / e.sum(axis=1,
                                                                                  keepdims=True)))
    rates = np.concatenate([v.mean(axis=1) for v in rec.values()], axis=1)
    return grouping.activity_similarity(rates, y, cfg.num_classes)


def _train_single(cfg: NetworkConfig, net: Network, data, epochs: int, seed: int, opts: dict,
                  log: Log) -> dict:
    x_tr, y_tr, x_va, y_va = data
    module = TorchNetwork(net, opts["slope"], opts["surrogate"])

    def evaluate() -> dict:
        if len(y_va) == 0:
            return {}
        scores, gs, groups, _ = predict(module, net, x_va, labels=y_va)
        return {"val_acc": _accuracy(scores, y_va), **_gate_metrics(net, gs, groups, y_va)}

    hist = _fit(module.parameters(), _net_loss(module, net), x_tr, y_tr, epochs=epochs,
                batch_size=opts["batch_size"], lr=opts["lr"], seed=seed, evaluate=evaluate,
                log=log, tag=cfg.name)
    module.export(net)
    return hist


def _train_ensemble(cfg: NetworkConfig, net: Ensemble, data, epochs: int, seed: int, opts: dict,
                    log: Log) -> dict:
    x_tr, y_tr, x_va, y_va = data
    tmod = TorchEnsemble(net, opts["slope"], opts["surrogate"])
    hist: dict = {"members": []}
    for m, (member, mod) in enumerate(zip(net.members, tmod.members)):
        classes = torch.as_tensor(net.member_classes[m])

        def loss_fn(xb, yb, enc_seed, member=member, mod=mod, classes=classes):
            mod.train()
            ev, static = encode_batch(member, xb, enc_seed)
            out = mod(ev, torch.as_tensor(xb), static)[0]
            target = (torch.as_tensor(yb)[:, None] == classes[None, :]).to(torch.float32)
            return F.binary_cross_entropy_with_logits(out, target)

        def evaluate(member=member, mod=mod, m=m) -> dict:
            if len(y_va) == 0:
                return {}
            out = predict(mod, member, x_va)[0]
            target = y_va[:, None] == np.asarray(net.member_classes[m])[None, :]
            pos = target.any(axis=1)
            hit = (out > 0) == target
            return {"val_ovr_acc": float(hit.mean()),
                    "val_recall": float(hit[pos].mean()) if pos.any() else None}

        hist["members"].append(_fit(mod.parameters(), loss_fn, x_tr, y_tr, epochs=epochs,
                                    batch_size=opts["batch_size"], lr=opts["lr"],
                                    seed=seed + 1 + m, evaluate=evaluate, log=log,
                                    tag=f"{cfg.name}.m{m}"))
    # aggregator on the frozen sub-SNN outputs, computed once
    feats = {}
    for name, xs in (("train", x_tr), ("val", x_va)):
        feats[name] = np.concatenate([predict(mod, member, xs)[0] for member, mod
                                      in zip(net.members, tmod.members)], axis=1)
    agg: TorchAggregator = tmod.aggregator

    def agg_loss(fb, yb, _seed):
        return F.cross_entropy(agg(torch.as_tensor(fb)), torch.as_tensor(yb))

    def agg_eval() -> dict:
        if len(y_va) == 0:
            return {}
        with torch.no_grad():
            return {"val_acc": _accuracy(agg(torch.as_tensor(feats["val"])).numpy(), y_va)}

    hist["aggregator"] = _fit(agg.parameters(), agg_loss, feats["train"], y_tr,
                              epochs=opts["aggregator_epochs"], batch_size=opts["batch_size"],
                              lr=opts["lr"], seed=seed, evaluate=agg_eval, log=log,
                              tag=f"{cfg.name}.aggregator", log_every=10)
    tmod.export(net)
    return hist


def resolve_groups(cfg: NetworkConfig, reference: Network, x_val: np.ndarray,
                   y_val: np.ndarray, seed: int = 0) -> tuple[NetworkConfig, np.ndarray | None]:
    """The gated config with explicit ``class_groups`` derived from ``reference``.

    Configs that already name ``class_groups`` or use round robin come back unchanged.
    """
    g = cfg.gate
    if g is None or g.class_groups is not None or g.grouping not in ("confusion", "activity"):
        return cfg, None
    sim = class_similarity(cfg, reference, x_val, y_val, g.grouping, seed)
    groups = grouping.group_classes(sim, g.groups, g.groups_per_class)
    data = cfg.model_dump()
    data["gate"]["class_groups"] = groups
    return NetworkConfig.model_validate(data), sim


def train_network(cfg: NetworkConfig, dataset: Dataset, epochs: int = 10, seed: int = 0, *,
                  threads: int = 2, batch_size: int = 128, lr: float = 1e-3,
                  val_fraction: float = 0.1, surrogate: str = "fast_sigmoid",
                  slope: float = 10.0, init: Network | None = None,
                  reference: Network | None = None, aggregator_epochs: int = 30,
                  log: Log | None = None) -> tuple[AnyNetwork, dict]:
    """Train ``cfg`` on ``dataset``; return (runtime network with numpy weights, history).

    ``init``: a trained network of the same layers to start from (gated: the dense model; its
    gate starts fresh). ``reference``: the trained dense model whose confusion or activity
    groups the classes of a gated config without explicit ``class_groups``; when it is needed
    and missing, a dense model of the same layers is trained first with the same settings.
    ``history["config"]`` is the config actually trained (class groups made explicit); write
    it with :func:`simsnn.train.shipped.save_model`. A ``weights`` file named by ``cfg`` is
    ignored: training starts from He-normal weights drawn from ``seed`` (or from ``init``).
    """
    log = log or (lambda msg: None)
    opts = dict(batch_size=batch_size, lr=lr, slope=slope, surrogate=surrogate,
                aggregator_epochs=aggregator_epochs)
    t0 = time.perf_counter()
    data = split_train_val(cfg, dataset, val_fraction, seed)
    history: dict = {"family": cfg.family, "epochs": epochs, "seed": seed, "threads": threads,
                     "val_fraction": val_fraction, "n_train": len(data[1]),
                     "n_val": len(data[3]), **opts}
    g = cfg.gate
    if g is not None and g.class_groups is None and g.grouping in ("confusion", "activity"):
        if reference is None:
            log(f"[{cfg.name}] training the dense reference for grouping {g.grouping!r}")
            reference, history["reference"] = train_network(
                as_dense(cfg), dataset, epochs, seed, threads=threads, batch_size=batch_size,
                lr=lr, val_fraction=val_fraction, surrogate=surrogate, slope=slope, log=log)
        x_g, y_g = (data[2], data[3]) if len(data[3]) else (data[0], data[1])
        cfg, sim = resolve_groups(cfg, reference, x_g, y_g, seed)
        history["similarity"] = sim.round(5).tolist()
        log(f"[{cfg.name}] class groups ({g.grouping}): {cfg.gate.class_groups}")
    history["config"] = cfg
    with deterministic(seed, threads):
        net = _fresh(cfg, seed)
        if init is not None:
            if isinstance(net, Ensemble):
                raise ValueError("init is not supported for task-specialized networks")
            _copy_weights(init, net)
        if isinstance(net, Ensemble):
            history.update(_train_ensemble(cfg, net, data, epochs, seed, opts, log))
        else:
            history.update(_train_single(cfg, net, data, epochs, seed, opts, log))
    history["seconds"] = time.perf_counter() - t0
    return net, history


__all__ = ["train_network", "predict", "resolve_groups", "class_similarity", "as_dense",
           "split_train_val", "deterministic"]
