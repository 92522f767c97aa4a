import numpy as np

import simsnn
from simsnn.footprint import footprint
from tests.conftest import make_cfg


def test_dense_footprint_by_hand():
    # 6 -> 8 -> 8 -> 3, fp16, one bias on the readout
    net = simsnn.load_network(make_cfg(weight_dtype="fp16", layers=[
        {"type": "dense", "units": 8}, {"type": "dense", "units": 8},
        {"type": "dense", "units": 3, "spiking": False, "bias": True}]))
    fp = footprint(net)
    params = 6 * 8 + 8 * 8 + 8 * 3 + 3
    assert fp["params"] == params == 139
    assert fp["weight_bytes"] == 2 * params
    # membranes fp32 for 16 spiking neurons, 1-byte bitmap per 8-neuron layer
    assert fp["state_bytes"] == 16 * 4 + 1 + 1
    assert fp["input_buffer_bytes"] == 6 * 4
    assert fp["total_bytes"] == 278 + 66 + 24
    assert fp["touched_weight_bytes"]["max"] == 278


def test_int8_adds_a_scale_per_layer():
    net = simsnn.load_network(make_cfg(weight_dtype="int8"))
    assert footprint(net)["weight_bytes"] == (48 + 64 + 24) + 3 * 4


def test_gated_touched_weights_by_hand():
    # layer0: 8 units, shared 0.25 -> 2 shared, 3 groups of 2; same for layer1
    cfg = make_cfg("gated", weight_dtype="fp32",
                   gate={"groups": 3, "top_k": 1, "shared": 0.25, "class_groups": [[0], [1], [2]]})
    net = simsnn.load_network(cfg)
    assert net.layers[0].groups.tolist() == [-1, -1, 0, 0, 1, 1, 2, 2]
    fp = footprint(net)
    # one group open: 4 open units per layer; layer0 6*4, layer1 4*4, readout 4*3 (+ gate)
    gate_bytes = (6 * 3 + 3) * 4
    per = (6 * 4 + 4 * 4 + 4 * 3) * 4 + gate_bytes
    assert fp["touched_weight_bytes"]["mean"] == per
    assert fp["touched_weight_bytes"]["max"] == per
    assert fp["weight_bytes"] == (6 * 8 + 8 * 8 + 8 * 3) * 4 + gate_bytes


def test_ensemble_footprint_counts_members_and_aggregator():
    cfg = make_cfg("task_specialized", tasks=[{"classes": [0], "scale": 2},
                                              {"classes": [1, 2], "scale": 4}],
                   aggregator={"hidden": 5}, weight_dtype="fp32")
    net = simsnn.load_network(cfg)
    fp = footprint(net)
    m0 = 6 * 4 + 4 * 4 + 4 * 1
    m1 = 6 * 2 + 2 * 2 + 2 * 2
    agg = (3 + 1) * 5 + (5 + 1) * 3
    assert fp["params"] == m0 + m1 + agg
    assert fp["aggregator_params"] == agg


def test_touched_from_trace_matches_decisions(rng):
    cfg = make_cfg("gated", gate={"groups": 3, "top_k": 2, "shared": 0.25})
    net = simsnn.load_network(cfg)
    _, tr = simsnn.run_network(net, rng.random((16, 6)), record=True)
    fp = footprint(net, tr)
    assert fp["touched_weight_bytes"]["over"] == "trace"
    assert fp["touched_weight_bytes"]["decisions"] == 16
    assert fp["touched_weight_bytes"]["max"] <= fp["weight_bytes"]
    assert np.isfinite(fp["touched_weight_bytes"]["mean"])
