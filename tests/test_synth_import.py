import numpy as np
import pytest

import simsnn
from simsnn.errors import TraceFormatError
from simsnn.spike_import import import_spikes, import_spikes_file
from simsnn.synth import SynthParams, markov_spikes, synthesize_trace
from tests.conftest import make_cfg


def test_markov_rate_and_burstiness(rng):
    rates = np.full(2000, 0.1)
    calm = markov_spikes(rng, rates, 50, 0.0, 4)
    bursty = markov_spikes(rng, rates, 50, 0.8, 4)
    assert abs(calm.mean() - 0.1) < 0.005 and abs(bursty.mean() - 0.1) < 0.01

    def persistence(s):  # P(spike | spike at previous step)
        prev, nxt = s[:, :-1], s[:, 1:]
        return (prev & nxt).sum() / prev.sum()
    assert abs(persistence(calm) - 0.1) < 0.01
    assert abs(persistence(bursty) - (0.1 + 0.8 * 0.9)) < 0.02


def test_synthetic_trace_is_deterministic_and_respects_gate():
    net = simsnn.load_network(make_cfg("gated", init="none",
                                       gate={"groups": 3, "top_k": 1, "shared": 0.25}))
    p = SynthParams(samples=50, rate=0.5, seed=3)
    a, b = synthesize_trace(net, p), synthesize_trace(net, p)
    for k in a.layers:
        np.testing.assert_array_equal(a.layers[k], b.layers[k])
    groups = net.layers[0].groups
    for i in range(50):
        closed = (groups >= 0) & ~a.gate_groups[i][np.where(groups >= 0, groups, 0)]
        assert not a.layers["dense0"][i][:, closed].any()
        # gate_accuracy 1: the gate's first class is the label
        assert a.gate_classes[i, 0] == a.labels[i]
    c = synthesize_trace(net, SynthParams(samples=50, rate=0.5, seed=4))
    assert not np.array_equal(a.layers["dense0"], c.layers["dense0"])


def test_synth_rejects_bad_parameters():
    with pytest.raises(ValueError, match="burstiness"):
        SynthParams(burstiness=1.0)
    with pytest.raises(ValueError, match="rate"):
        SynthParams(rate=1.5)


def test_synthetic_ensemble_has_every_member():
    cfg = make_cfg("task_specialized", init="none", tasks=[{"classes": [0], "scale": 2},
                                                           {"classes": [1, 2], "scale": 2}])
    tr = synthesize_trace(simsnn.load_network(cfg), SynthParams(samples=5))
    assert {"input", "m0.dense0", "m1.dense1"} <= set(tr.layers)


def test_import_time_first_arrays(tmp_path, rng):
    net = simsnn.load_network(make_cfg())
    T, B = 9, 4
    arrays = {"input": rng.random((T, B, 6)) < 0.3,
              "dense0": (rng.random((T, B, 8)) < 0.2).astype(np.float32),
              "dense1": rng.random((T, B, 8)) < 0.2}
    tr = import_spikes(arrays, net)
    assert tr.layers["dense0"].shape == (B, T, 8)
    np.testing.assert_array_equal(tr.layers["dense0"][2, 5], arrays["dense0"][5, 2] != 0)
    np.savez(tmp_path / "s.npz", labels=np.arange(B), **arrays)
    tr2 = import_spikes_file(tmp_path / "s.npz", net)
    assert tr2.labels.tolist() == [0, 1, 2, 3]
    single = import_spikes({"dense0": arrays["dense0"][:, 0], "dense1": arrays["dense1"][:, 0]},
                           net)
    assert single.layers["dense0"].shape == (1, T, 8)


def test_import_errors(tmp_path, rng):
    net = simsnn.load_network(make_cfg())
    with pytest.raises(TraceFormatError, match="not layers"):
        import_spikes({"bogus": np.zeros((9, 8))}, net)
    with pytest.raises(TraceFormatError, match="has 7 units"):
        import_spikes({"dense0": np.zeros((9, 2, 7)), "dense1": np.zeros((9, 2, 8))}, net)
    with pytest.raises(TraceFormatError, match="no spikes for layers"):
        import_spikes({"dense0": np.zeros((9, 2, 8))}, net)
    with pytest.raises(TraceFormatError, match="disagree"):
        import_spikes({"dense0": np.zeros((9, 2, 8)), "dense1": np.zeros((8, 2, 8))}, net)
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(TraceFormatError, match="bad.npz"):
        import_spikes_file(tmp_path / "bad.npz", net)
