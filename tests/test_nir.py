"""NIR import/export: exact spikes against snnTorch's own recording, round trips, errors.

The fixtures in tests/data were made by ``python scripts/make_snntorch_fixture.py``; these tests
need only ``nir`` (not torch or snntorch).
"""
import json
from pathlib import Path

import numpy as np
import pytest

import simsnn
from simsnn.errors import ConfigError, NetworkError
from simsnn.network import is_synaptic
from simsnn.neurons import NeuronParams
from tests.conftest import make_cfg

nir = pytest.importorskip("nir")
from simsnn.nir_io import export_nir, import_nir  # noqa: E402

DATA = Path(__file__).parent / "data"
DT = 1e-4


def fixture(name: str) -> tuple[Path, dict[str, np.ndarray], dict]:
    with np.load(DATA / f"snntorch_{name}_spikes.npz") as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(bytes(arrays.pop("meta")).decode())
    return DATA / f"snntorch_{name}.nir", arrays, meta


# ----------------------------------------------------------------------------- snnTorch
@pytest.mark.parametrize("name", ["mlp", "conv"])
@pytest.mark.parametrize("case", ["static", "spike"])
def test_snntorch_spikes_reproduced_exactly(name, case):
    path, arrays, meta = fixture(name)
    net = import_nir(path, dt=meta["dt"])
    x = arrays[f"{case}_inputs"]
    _, trace = simsnn.run_network(net, x, timesteps=meta["timesteps"], record=True)
    spiking = net.spiking_layers
    assert len(spiking) == sum(k.startswith(f"{case}_spikes_") for k in arrays)
    for k, layer in enumerate(spiking):
        ref = arrays[f"{case}_spikes_{k}"]
        assert 0.0 < ref.mean() < 1.0  # the fixture exercises both outcomes
        np.testing.assert_array_equal(trace.layers[layer.name], ref, err_msg=layer.name)


def test_snntorch_import_structure():
    net = import_nir(DATA / "snntorch_conv.nir", dt=DT)
    assert net.family == "dense" and net.coding == "direct" and net.timesteps == 9
    assert net.input_shape == (1, 8, 8) and net.num_classes == 3
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Conv2d", "AvgPool2d", "Flatten", "Dense"]
    conv = net.layers[0]
    assert (conv.kernel, conv.stride, conv.padding, conv.has_bias) == (3, 1, 1, True)
    assert conv.neuron == NeuronParams(float(np.float32(0.9)), 0.5, False, 0.0)
    dense = net.layers[-1]
    assert dense.weight.shape == (64, 3) and dense.weight.dtype == np.float32


def test_load_network_dispatches_nir_and_needs_dt():
    path, _, _ = fixture("mlp")
    net = simsnn.load_network(path, dt=DT)
    assert net.input_shape == (20,) and net.num_classes == 5 and net.name == "snntorch_mlp"
    with pytest.raises(ConfigError) as err:
        simsnn.load_network(path)
    assert err.value.field == "dt" and str(path) in str(err.value)
    assert "continuous-time" in str(err.value)


def test_import_from_graph_object_with_batch_input_dim():
    graph = nir.read(DATA / "snntorch_mlp.nir")
    graph.nodes["input"] = nir.Input(input_type=np.array([1, 20]))
    net = import_nir(graph, dt=DT, name="g", timesteps=4)
    assert net.name == "g" and net.input_shape == (20,) and net.timesteps == 4


# ----------------------------------------------------------------------------- round trip
def _conv_cfg(**kw):
    return make_cfg(layers=[{"type": "conv2d", "channels": 4, "kernel": 3, "padding": 1,
                             "bias": True},
                            {"type": "avgpool2d", "kernel": 2},
                            {"type": "conv2d", "channels": 3, "kernel": 3, "stride": 2,
                             "padding": 0},
                            {"type": "flatten"},
                            {"type": "dense", "units": 8, "bias": True},
                            {"type": "dense", "units": 3, "spiking": False, "bias": True}],
                    input={"shape": [2, 10, 10]}, timesteps=6, **kw)


@pytest.mark.parametrize("neuron", [
    {"model": "lif", "leak": 0.9, "threshold": 0.3},
    {"model": "lif", "leak": 0.75, "threshold": 0.25, "v_reset": -0.1},
    {"model": "if", "threshold": 0.4},
])
def test_export_import_round_trip(tmp_path, rng, neuron):
    net = simsnn.load_network(_conv_cfg(neuron=neuron, seed=3))
    path = tmp_path / "net.nir"
    graph = export_nir(net, path)
    assert isinstance(graph, nir.NIRGraph) and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.nir"]  # no temp file left
    back = import_nir(path, dt=DT)
    assert back.input_shape == net.input_shape and back.num_classes == net.num_classes
    assert back.timesteps == net.timesteps == 6  # recorded in the graph metadata
    assert [layer.name for layer in back.layers] == [layer.name for layer in net.layers]
    for a, b in zip(net.layers, back.layers):
        assert type(a) is type(b)
        if a.neuron is None:
            assert b.neuron is None
        else:
            f32 = np.float32
            assert (f32(a.neuron.leak), f32(a.neuron.threshold), f32(a.neuron.v_reset)) == \
                   (f32(b.neuron.leak), f32(b.neuron.threshold), f32(b.neuron.v_reset))
            assert not b.neuron.soft_reset
        if is_synaptic(a):
            np.testing.assert_array_equal(a.weight, b.weight)
            assert a.has_bias == b.has_bias
            if a.has_bias:
                np.testing.assert_array_equal(a.bias, b.bias)
    x = rng.random((5, 2, 10, 10)).astype(np.float32)
    out_a, tr_a = simsnn.run_network(net, x, record=True)
    out_b, tr_b = simsnn.run_network(back, x, timesteps=net.timesteps, record=True)
    np.testing.assert_array_equal(out_a, out_b)
    assert tr_a.layers.keys() == tr_b.layers.keys()
    for key in tr_a.layers:
        np.testing.assert_array_equal(tr_a.layers[key], tr_b.layers[key], err_msg=key)
    assert any(tr_a.layers[k].any() for k in tr_a.layers if k != "input")


def test_export_dense_without_bias_uses_linear():
    net = simsnn.load_network(make_cfg())
    graph = export_nir(net)
    kinds = [type(graph.nodes[k]).__name__ for k in ("dense0", "dense0_lif", "dense2")]
    assert kinds == ["Linear", "LIF", "Linear"]
    assert ("dense2", "output") in graph.edges
    np.testing.assert_array_equal(graph.nodes["dense0"].weight, net.layers[0].weight.T)


def test_export_refuses_what_nir_cannot_express():
    gated = simsnn.load_network(make_cfg("gated", gate={"groups": 2, "top_k": 1,
                                                        "class_groups": [[0], [1, 2]]}))
    with pytest.raises(NetworkError, match="gating"):
        export_nir(gated)
    ens = simsnn.load_network(make_cfg("task_specialized", tasks=[
        {"classes": [0, 1], "scale": 2.0}, {"classes": [2], "scale": 2.0}]))
    with pytest.raises(NetworkError, match="ensemble"):
        export_nir(ens)
    soft = simsnn.load_network(make_cfg(neuron={"reset": "soft"}))
    with pytest.raises(NetworkError, match="soft reset"):
        export_nir(soft)


# ----------------------------------------------------------------------------- discretization
def _chain(*nodes, shape=(4,)):
    names = ["input"] + [f"n{i}" for i in range(len(nodes))] + ["output"]
    all_nodes = {"input": nir.Input(input_type=np.array(shape)), "output": nir.Output(
        output_type=np.array([2]))}
    all_nodes.update({f"n{i}": n for i, n in enumerate(nodes)})
    return nir.NIRGraph(nodes=all_nodes, edges=list(zip(names[:-1], names[1:])),
                        type_check=False)


def _lif(n=2, tau=1e-3, r=1.0, v_leak=0.0, thr=0.5, v_reset=0.0):
    def full(v):
        return np.full(n, v, dtype=np.float64)
    return nir.LIF(tau=full(tau), r=full(r), v_leak=full(v_leak), v_threshold=full(thr),
                   v_reset=full(v_reset))


def test_forward_euler_folds_input_scale_into_weights():
    w = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    b = np.array([0.5, -0.25], np.float32)
    # Norse-style LIF: r = 1, so the input scale is dt / tau = 0.1
    net = import_nir(_chain(nir.Affine(weight=w, bias=b), _lif(tau=1e-3, r=1.0)), dt=DT)
    layer = net.layers[0]
    assert layer.neuron.leak == pytest.approx(0.9)
    np.testing.assert_allclose(layer.weight, w.T * 0.1, rtol=1e-6)
    np.testing.assert_allclose(layer.bias, b * 0.1, rtol=1e-6)
    # IF: v += dt * r * I; r = 2 / dt gives scale 2
    net = import_nir(_chain(nir.Linear(weight=w), nir.IF(r=np.full(2, 2 / DT),
                                                          v_threshold=np.full(2, 1.0))), dt=DT)
    assert net.layers[0].neuron.leak == 1.0 and not net.layers[0].has_bias
    np.testing.assert_allclose(net.layers[0].weight, w.T * 2, rtol=1e-6)


# ----------------------------------------------------------------------------- errors
def _field(graph) -> str:
    with pytest.raises(ConfigError) as err:
        import_nir(graph, dt=DT)
    return err.value.field


def test_import_errors_name_node_and_field():
    w = np.ones((2, 4), np.float32)
    assert _field(_chain(nir.Linear(weight=w), nir.CubaLIF(
        tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2), v_leak=np.zeros(2),
        v_threshold=np.ones(2)))) == "nodes.n1"
    assert _field(_chain(_lif(n=4), nir.Linear(weight=w), shape=(4,))) == "nodes.n0"
    assert _field(_chain(nir.Linear(weight=w), _lif(v_leak=0.1))) == "nodes.n1.v_leak"
    uneven = _lif()
    uneven.v_threshold = np.array([0.5, 0.6])
    assert _field(_chain(nir.Linear(weight=w), uneven)) == "nodes.n1.v_threshold"
    assert _field(_chain(nir.Linear(weight=w), nir.Linear(weight=np.ones((2, 2))))) == "nodes.n0"
    conv = nir.Conv2d(input_shape=None, weight=np.ones((2, 1, 3, 3)), stride=1, padding=1,
                      dilation=2, groups=1, bias=np.zeros(2))
    assert _field(_chain(conv, shape=(1, 6, 6))) == "nodes.n0.dilation"
    graph = _chain(nir.Linear(weight=w), _lif())
    graph.edges.append(("input", "n1"))
    assert _field(graph).startswith("nodes.")
    with pytest.raises(ConfigError, match="dt"):
        import_nir(graph, dt=-1.0)


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_corrupt_nir_file_is_a_config_error(tmp_path, content):
    path = tmp_path / "bad.nir"
    good = (DATA / "snntorch_mlp.nir").read_bytes()
    path.write_bytes(b"not an hdf5 file" * 10 if content == "garbage" else good[:len(good) // 2])
    with pytest.raises(ConfigError) as err:
        import_nir(path, dt=DT)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="no such"):
        import_nir(tmp_path / "missing.nir", dt=DT)


def test_imported_network_trace_saves_and_loads(tmp_path):
    path, arrays, meta = fixture("mlp")
    net = import_nir(path, dt=meta["dt"])
    _, trace = simsnn.run_network(net, arrays["spike_inputs"], record=True)
    trace.save(tmp_path / "mlp.h5")
    back = simsnn.load_trace(tmp_path / "mlp.h5")
    assert back.network == "snntorch_mlp" and back.timesteps == meta["timesteps"]
    np.testing.assert_array_equal(back.layers["dense0"], arrays["spike_spikes_0"])
