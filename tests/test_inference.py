import numpy as np
import pytest

import simsnn
from simsnn.errors import NetworkError
from simsnn.inference import encode
from tests.conftest import make_cfg


def test_dense_network_by_hand():
    cfg = make_cfg(layers=[{"type": "dense", "units": 2},
                           {"type": "dense", "units": 3, "spiking": False}], input={"shape": [2]},
                   timesteps=3)
    net = simsnn.load_network(cfg)
    net.layers[0].weight = np.array([[0.3, 0.1], [0.0, 0.05]], np.float32)
    net.layers[1].weight = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 2.0]], np.float32)
    out, tr = simsnn.run_network(net, np.array([[1.0, 1.0]], np.float32), record=True)
    # unit 0: I = 0.3 -> spikes every step; unit 1: I = 0.15: v .15, .285 spike, .15
    assert tr.layers["dense0"][0].tolist() == [[True, False], [True, True], [True, False]]
    np.testing.assert_allclose(out[0], [1.0, 1 / 3, 2 / 3], rtol=1e-6)
    assert tr.predictions[0] == 0


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, 0), (2, 2)])
def test_conv_event_driven_equals_dense_convolution(rng, stride, padding):
    from scipy.signal import correlate

    from simsnn.inference import apply_layer
    from simsnn.neurons import NeuronParams
    cfg = make_cfg(layers=[{"type": "conv2d", "channels": 3, "kernel": 3, "padding": padding,
                            "stride": stride},
                           {"type": "flatten"}, {"type": "dense", "units": 3, "spiking": False}],
                   input={"shape": [2, 7, 7]}, timesteps=1)
    net = simsnn.load_network(cfg)
    conv = net.layers[0]
    conv.neuron = NeuronParams(leak=1.0, threshold=0.0)  # spike iff current > 0
    x = (rng.random((1, 1, 2, 7, 7)) < 0.5) * rng.random((1, 1, 2, 7, 7))
    spikes = apply_layer(conv, x.astype(np.float32), None)[0, 0]
    xp = np.pad(x[0, 0], ((0, 0), (padding, padding), (padding, padding)))
    ref = np.stack([correlate(xp, conv.weight[o], mode="valid")[0] for o in range(3)])
    ref = ref[:, ::stride, ::stride]
    assert spikes.shape == ref.shape == conv.out_shape
    np.testing.assert_array_equal(spikes.astype(bool), ref > 1e-6)


def test_gated_closed_units_never_spike(rng):
    cfg = make_cfg("gated", gate={"groups": 2, "top_k": 1, "shared": 0.25,
                                  "class_groups": [[0], [1, 2]]}, layers=[
        {"type": "dense", "units": 8}, {"type": "dense", "units": 8},
        {"type": "dense", "units": 3, "spiking": False}])
    net = simsnn.load_network(cfg)
    x = rng.random((32, 6)).astype(np.float32)
    _, tr = simsnn.run_network(net, x, record=True)
    groups = net.layers[0].groups
    for b in range(32):
        open_g = tr.gate_groups[b]
        assert open_g.sum() == 1
        closed = (groups >= 0) & ~open_g[np.where(groups >= 0, groups, 0)]
        assert not tr.layers["dense0"][b][:, closed].any()
        assert not tr.layers["dense1"][b][:, closed].any()


def test_oracle_gate_uses_labels(rng):
    cfg = make_cfg("gated", gate={"groups": 3, "kind": "oracle"})
    net = simsnn.load_network(cfg)
    with pytest.raises(NetworkError):
        simsnn.run_network(net, rng.random((2, 6)))
    _, tr = simsnn.run_network(net, rng.random((3, 6)), labels=[0, 1, 2], record=True)
    assert tr.gate_groups.tolist() == np.eye(3, dtype=bool).tolist()


def test_ensemble_runs_every_member(rng):
    cfg = make_cfg("task_specialized", tasks=[{"classes": [0], "scale": 2},
                                              {"classes": [1, 2], "scale": 4}],
                   aggregator={"hidden": 5})
    net = simsnn.load_network(cfg)
    out, tr = simsnn.run_network(net, rng.random((4, 6)), record=True)
    assert out.shape == (4, 3)
    assert set(tr.layers) == {"input", "m0.dense0", "m0.dense1", "m1.dense0", "m1.dense1"}
    assert tr.layers["m0.dense0"].shape == (4, 9, 4)
    assert tr.layers["m1.dense1"].shape == (4, 9, 2)


def test_rate_coding_is_seeded(rng):
    x = rng.random((3, 4))
    a, b = encode(x, 5, "rate", seed=7), encode(x, 5, "rate", seed=7)
    assert (a == b).all() and set(np.unique(a)) <= {0.0, 1.0}


def test_no_weights_and_bad_shape_are_clear_errors():
    net = simsnn.load_network(make_cfg(init="none"))
    with pytest.raises(NetworkError, match="no weights"):
        simsnn.run_network(net, np.zeros((1, 6)))
    net = simsnn.load_network(make_cfg())
    with pytest.raises(NetworkError, match="expects inputs"):
        simsnn.run_network(net, np.zeros((1, 5)))


def test_batching_does_not_change_results(rng):
    net = simsnn.load_network(make_cfg(input={"shape": [6], "coding": "direct"}))
    x = rng.random((10, 6))
    a, _ = simsnn.run_network(net, x, batch_size=3)
    b, _ = simsnn.run_network(net, x, batch_size=100)
    np.testing.assert_array_equal(a, b)
