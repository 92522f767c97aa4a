import numpy as np

import simsnn
from simsnn.metrics import (
    activation_sparsity,
    connection_sparsity,
    neurobench_metrics,
    synaptic_ops,
)
from simsnn.trace import SpikeTrace
from tests.conftest import make_cfg


def test_synaptic_ops_by_hand():
    net = simsnn.load_network(make_cfg(timesteps=2))  # 6 -> 8 -> 8 -> 3
    B, T = 1, 2
    inp = np.zeros((B, T, 6), bool)
    inp[0, 0, :3] = True   # 3 events at t0, 1 at t1
    inp[0, 1, 0] = True
    l0 = np.zeros((B, T, 8), bool)
    l0[0, 0, :2] = True    # 2 spikes
    l1 = np.zeros((B, T, 8), bool)
    l1[0, 1, :5] = True    # 5 spikes
    tr = SpikeTrace("tiny-dense", "dense", T, {"input": inp, "dense0": l0, "dense1": l1})
    ops = synaptic_ops(net, tr)
    # direct coding: input events are graded -> MACs; spikes -> ACs
    assert ops["effective_macs"] == 4 * 8
    assert ops["effective_acs"] == 2 * 8 + 5 * 3
    assert ops["dense"] == (6 * 8 + 8 * 8 + 8 * 3) * T
    assert ops["membrane_updates"] == (8 + 8) * T
    assert activation_sparsity(tr) == 1 - 7 / 32


def test_gated_ops_count_only_open_units(rng):
    cfg = make_cfg("gated", timesteps=1,
                   gate={"groups": 3, "top_k": 1, "shared": 0.25, "class_groups": [[0], [1], [2]]})
    net = simsnn.load_network(cfg)
    inp = np.ones((1, 1, 6), bool)
    tr = SpikeTrace("g", "gated", 1, {"input": inp, "dense0": np.zeros((1, 1, 8), bool),
                                      "dense1": np.zeros((1, 1, 8), bool)},
                    gate_groups=np.array([[True, False, False]]))
    ops = synaptic_ops(net, tr)
    assert ops["effective_macs"] == 6 * 4  # 2 shared + 2 of the open group
    assert ops["membrane_updates"] == 4 + 4


def test_connection_sparsity_and_metrics(rng):
    net = simsnn.load_network(make_cfg())
    net.layers[0].weight[:, :4] = 0.0
    assert connection_sparsity(net) == 24 / (48 + 64 + 24)
    _, tr = simsnn.run_network(net, rng.random((5, 6)), labels=[0, 1, 2, 0, 1], record=True)
    m = neurobench_metrics(net, tr)
    assert m["parameter_count"] == 136
    assert 0 <= m["activation_sparsity"] <= 1
    assert m["classification_accuracy"] == tr.accuracy()


def test_conv_reach_counts_border_positions():
    from simsnn.metrics import _conv_reach
    net = simsnn.load_network(make_cfg(
        input={"shape": [1, 4, 4]},
        layers=[{"type": "conv2d", "channels": 2, "kernel": 3, "padding": 1},
                {"type": "flatten"}, {"type": "dense", "units": 3, "spiking": False}]))
    reach = _conv_reach(net.layers[0])
    # corner feeds a 2x2 output patch, edge 2x3, centre 3x3
    assert reach[0, 0] == 4 and reach[0, 1] == 6 and reach[1, 1] == 9
    # total reach equals the number of (input, output, tap) triples
    assert reach.sum() == sum(1 for oy in range(4) for ox in range(4) for ky in range(3)
                              for kx in range(3) if 0 <= oy + ky - 1 < 4 and 0 <= ox + kx - 1 < 4)
