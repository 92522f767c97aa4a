"""The measured program: same spikes and outputs as the reference inference, timing fields,
graceful fallback without hardware counters, CLI errors."""
import json

import numpy as np
import pytest

import simsnn
from simsnn.cli import main
from simsnn.config.layout import LayoutConfig
from simsnn.datasets import load_dataset
from simsnn.host import measure as M
from simsnn.host.counters import parse_perf_csv
from simsnn.host.program import MeasuredProgram, MeasureError, run_measured, unsupported


@pytest.fixture(scope="module")
def mnist():
    ds = load_dataset("mnist")
    return ds.x_test[:16], ds.y_test[:16]


@pytest.mark.parametrize("name", ["mnist-dense", "mnist-gated", "mnist-taskspec"])
@pytest.mark.parametrize("cores,dtype", [(1, None), (2, None), (1, "fp32")])
def test_measured_program_gives_the_reference_spikes_and_outputs(mnist, name, cores, dtype):
    x, y = mnist
    net = simsnn.load_network(name)
    ref, trace = simsnn.run_network(net, x, record=True, labels=y)
    layout = LayoutConfig(weight_dtype=dtype) if dtype else None
    prog = MeasuredProgram(net, layout, cores=cores)
    rec: dict = {}
    out, secs = run_measured(prog, x, record=rec)
    spiking = [k for k in trace.layers if k != "input"]
    assert sorted(rec) == sorted(spiking)
    for k in spiking:
        assert np.array_equal(rec[k], trace.layers[k]), k
    if name == "mnist-taskspec":
        # the aggregator is compiled (fp16 weights widened, features in ascending order):
        # numpy's BLAS sums in another order
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    else:
        assert np.array_equal(out, ref)
    assert secs.shape == (x.shape[0],) and (secs > 0).all()


def test_fp16_weights_widen_exactly_for_every_bit_pattern():
    """The kernel's accumulate of fp16 rows (bit patterns widened in registers) onto zero gives
    numpy's float16 -> float32 value for all 65,536 patterns: subnormals, inf, NaN (-0.0
    lands as 0.0, as 0.0 + -0.0 does)."""
    from simsnn.host import kernels as mk
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    w = bits.reshape(1, -1)
    cur = np.zeros(bits.size, np.float32)
    spk = np.zeros((1, 1, bits.size), np.int64)
    mk.layer_one_core(1, np.zeros((1, 1), np.int32), np.ones((1, 1), np.float32),
                      np.ones(1, np.int64), True, np.zeros(1, np.int64), w, np.float32(1),
                      np.zeros(0, np.uint16), np.float32(1), False, cur,
                      np.zeros(bits.size, np.float32),
                      np.array([0], np.int64), np.array([bits.size], np.int64), True,
                      np.float32(1.0), np.float32(1e9), False, np.float32(0.0), spk,
                      np.zeros((1, 1), np.int64))
    want = bits.view(np.float16).astype(np.float32)
    finite = np.isfinite(want)
    assert np.array_equal(cur[finite], want[finite])  # exact: no tolerance
    assert np.array_equal(np.isnan(cur), np.isnan(want))
    assert np.array_equal(cur[np.isinf(want)], want[np.isinf(want)])


def test_encoder_and_merge_give_the_event_lists_of_numpy():
    from simsnn.host import kernels as mk
    rng = np.random.default_rng(3)
    x = np.where(rng.random((5, 300)) < 0.3, rng.random((5, 300)), 0.0).astype(np.float32)
    idx, val = np.zeros((5, 300), np.int32), np.zeros((5, 300), np.float32)
    n = mk.encode_input(x, idx, val)
    for t in range(5):
        nz = np.nonzero(x[t])[0]
        assert n[t] == nz.size
        assert np.array_equal(idx[t, :n[t]], nz) and np.array_equal(val[t, :n[t]], x[t, nz])
    # spikes of two cores: in order (kept as they are) or scattered (sorted)
    inv = rng.permutation(64).astype(np.int64)
    spk = np.zeros((2, 3, 64), np.int64)
    spk_n = np.array([[3, 0, 2], [2, 1, 0]], np.int64)
    spk[0, 0, :3], spk[1, 0, :2] = [5, 9, 20], [33, 40]
    spk[1, 1, :1] = [7]
    spk[0, 2, :2] = [50, 1]
    out = np.zeros((3, 64), np.int32)
    counts = mk.merge_events(spk, spk_n, inv, out)
    assert counts.tolist() == [5, 1, 2]
    assert out[0, :5].tolist() == sorted(inv[[5, 9, 20, 33, 40]].tolist())
    assert out[1, :1].tolist() == [inv[7]]
    assert out[2, :2].tolist() == sorted(inv[[50, 1]].tolist())
    ident = np.arange(64, dtype=np.int64)
    mk.merge_events(spk, spk_n, ident, out)
    assert out[0, :5].tolist() == [5, 9, 20, 33, 40] and out[2, :2].tolist() == [1, 50]


def test_interleaved_groups_and_static_partition_run_the_same_arithmetic(mnist):
    x, y = mnist
    net = simsnn.load_network("mnist-gated")
    ref, _ = simsnn.run_network(net, x, labels=y)
    for cfg in (LayoutConfig(groups="interleaved"), LayoutConfig(partition="static")):
        out, _ = run_measured(MeasuredProgram(net, cfg, cores=2), x)
        assert np.array_equal(out, ref)


def test_measure_reports_latency_statistics_and_says_counters_are_missing(mnist, monkeypatch,
                                                                            capsys):
    from simsnn.host import counters
    monkeypatch.setattr(counters, "perf_status", lambda: (False, "no counters in this test"))
    monkeypatch.setattr(counters, "_perf_told", False)
    x, y = mnist
    net = simsnn.load_network("mnist-gated")
    r = M.measure(net, x[:6], y[:6], warmup=0, repeat=2, per_layer=True)
    r2 = M.measure(net, x[:6], y[:6], warmup=0, repeat=1)
    err = capsys.readouterr().err
    assert err.count("no counters in this test") == 1  # said once
    assert r["counters"] == {"available": False, "reason": "no counters in this test"}
    assert r2["counters"]["available"] is False
    lat = r["latency"]
    assert r["measured"] and r["energy_j"] is None
    assert lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert len(lat["per_repeat"]) == 2 and lat["spread"] >= 0
    # each sample at its best over the passes: no worse than the best whole pass
    assert len(lat["per_sample_best_s"]) == 6
    assert lat["min"] <= lat["best_per_sample"] <= lat["best_of_repeats"]
    assert set(lat["per_layer_s"]) == {"input", "gate", "dense0", "dense1", "dense2"}
    assert 0 <= r["accuracy"] <= 1 and r["peak_rss_bytes"] > 0
    assert r["program_bytes"] >= r["weight_bytes"]
    # the parallel runtime is recorded; workers spin unless the environment says otherwise
    assert set(r["threads"]) >= {"threads", "affinity", "layer", "omp_wait_policy",
                                 "gomp_spincount"}
    import os
    assert r["threads"]["omp_wait_policy"] == os.environ["OMP_WAIT_POLICY"]
    assert r["threads"]["gomp_spincount"] == os.environ["GOMP_SPINCOUNT"]


def test_kernels_default_to_bounded_spinning_workers_unless_the_environment_chooses():
    import os
    import subprocess
    import sys
    code = ("import os, simsnn.host.kernels; "
            "print(os.environ['OMP_WAIT_POLICY'], os.environ['GOMP_SPINCOUNT'])")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY",
                                                            "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["ACTIVE", "300000"]
    env.update(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT="7")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["PASSIVE", "7"]


def test_perf_csv_parsing_keeps_counted_events_only():
    text = ("123456,,cycles,1000,100.00,,\n<not supported>,,instructions,0,100.00,,\n"
            "789,,LLC-load-misses,1000,100.00,,\n")
    assert parse_perf_csv(text) == {"cycles": 123456.0, "LLC-load-misses": 789.0}


def test_unsupported_programs_are_clear_errors():
    net = simsnn.load_network("mnist-dense")
    with pytest.raises(MeasureError, match="row-major"):
        MeasuredProgram(net, LayoutConfig(order="col"))
    with pytest.raises(MeasureError, match="layer_major"):
        MeasuredProgram(net, LayoutConfig(schedule="step_major"))
    oracle = _net("oracle", "gated", [{"type": "dense", "units": 32},
                                      {"type": "dense", "units": 10, "spiking": False}],
                  gate={"position": 0, "kind": "oracle", "groups": 2, "top_k": 1,
                        "shared": 0.5})
    with pytest.raises(MeasureError, match="oracle"):
        MeasuredProgram(oracle)
    pooled = _net("pool-on-pixels", "dense", [{"type": "avgpool2d", "kernel": 2},
                                              {"type": "flatten"},
                                              {"type": "dense", "units": 10, "spiking": False}],
                  shape=[1, 8, 8])
    assert unsupported(pooled) == ["pool-on-pixels.avgpool2d0: average pooling of graded "
                                   "(non-spike) inputs"]


def _net(name, family, layers, shape=(784,), coding="direct", dtype="fp16", **extra):
    """An inline network config with random weights, built."""
    from simsnn.build import build_network
    from simsnn.config.network import NetworkConfig
    cfg = {"version": 1, "kind": "network", "name": name, "family": family,
           "num_classes": 10, "timesteps": 5, "input": {"shape": list(shape), "coding": coding},
           "neuron": {"leak": 0.9, "threshold": 0.5}, "init": "random", "seed": 3,
           "weight_dtype": dtype, "layers": layers, **extra}
    return build_network(NetworkConfig.model_validate(cfg))


_CONV = [{"type": "conv2d", "channels": 6, "kernel": 3, "padding": 1},
         {"type": "conv2d", "channels": 8, "kernel": 3, "stride": 2, "padding": 1},
         {"type": "avgpool2d", "kernel": 2},
         {"type": "conv2d", "channels": 12, "kernel": 3},
         {"type": "flatten"},
         {"type": "dense", "units": 24},
         {"type": "dense", "units": 10, "spiking": False}]


def _same_as_reference(net, x, cores, y=None):
    ref, trace = simsnn.run_network(net, x, record=True, labels=y)
    rec: dict = {}
    out, _ = run_measured(MeasuredProgram(net, cores=cores), x, record=rec)
    spiking = [k for k in trace.layers if k != "input"]
    assert sorted(rec) == sorted(spiking)
    for k in spiking:
        assert np.array_equal(rec[k], trace.layers[k]), k
        assert trace.layers[k].any(), k  # the comparison is not of silent layers
    return out, ref


@pytest.mark.parametrize("cores", [1, 2])
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("coding", ["direct", "rate"])
def test_conv_pool_networks_give_the_reference_spikes(mnist, cores, dtype, coding):
    """Event-driven convolutions (stride 1 and 2, padding), average pooling and a dense head
    on 28x28 digits: the program's spikes and scores are the reference inference's."""
    x, _ = mnist
    net = _net(f"conv-{dtype}", "dense", _CONV, shape=(1, 28, 28), coding=coding,
               dtype=dtype)
    out, ref = _same_as_reference(net, x[:6], cores)
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("cores", [1, 2])
def test_gated_conv_net_with_a_gate_after_layer_one(mnist, cores):
    """Per-layer gated conv net whose MLP gate reads the first layer's spike rates: the same
    group decisions and spikes as the reference."""
    x, y = mnist
    net = _net("gated-conv-g1", "gated", _CONV, shape=(1, 28, 28),
               gate={"position": 1, "kind": "mlp", "hidden": 16, "groups": 2, "top_k": 1,
                     "shared": 0.5})
    out, ref = _same_as_reference(net, x[:6], cores)
    assert np.array_equal(out, ref)


@pytest.mark.parametrize("dtype", ["fp16", "int8"])
def test_task_specialized_ensemble_with_conv_members(mnist, dtype):
    x, _ = mnist
    net = _net("ts-conv", "task_specialized", _CONV, shape=(1, 28, 28), dtype=dtype,
               tasks=[{"classes": [0, 1, 2, 3, 4], "scale": 2},
                      {"classes": [5, 6, 7, 8, 9], "scale": 2}],
               aggregator={"hidden": 16, "activation": "sigmoid"})
    out, ref = _same_as_reference(net, x[:4], 1)
    # the aggregator is compiled (widened weights, features in ascending order): numpy's
    # BLAS sums in another order
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cores", [1, 2])
def test_int8_dense_and_gated_networks_give_the_reference_spikes(mnist, cores):
    x, _ = mnist
    dense = _net("dense-int8", "dense", [{"type": "dense", "units": 64, "bias": True},
                                         {"type": "dense", "units": 10, "spiking": False}],
                 dtype="int8")
    gated = _net("gated-int8", "gated", [{"type": "dense", "units": 64},
                                         {"type": "dense", "units": 48},
                                         {"type": "dense", "units": 10, "spiking": False}],
                 dtype="int8", gate={"position": 1, "kind": "linear", "groups": 4,
                                     "top_k": 1, "shared": 0.25})
    for net in (dense, gated):
        out, ref = _same_as_reference(net, x[:8], cores)
        assert np.array_equal(out, ref)


def test_int8_storage_is_exact_and_idempotent():
    from simsnn.host.program import storage
    from simsnn.quantize import int8_scale, stored_value
    rng = np.random.default_rng(0)
    for scale in (1e-3, 0.07, 3.0, 1000.0):
        w = (rng.standard_normal((40, 30)) * scale).astype(np.float32)
        v = stored_value(w, "int8")
        s = int8_scale(v)
        assert s == int8_scale(w) and np.log2(s) == np.round(np.log2(s))  # a power of two
        q, s2 = storage(v, "int8")
        assert q.dtype == np.int8 and np.abs(q).max() <= 127 and s2 == s
        assert np.array_equal(q.astype(np.float32) * s, v)  # exact
        assert np.array_equal(stored_value(v, "int8"), v)  # idempotent
        assert np.abs(v - w).max() <= s / 2 * (1 + 1e-6)
    assert int8_scale(np.zeros(3, np.float32)) == 1.0


def test_a_spiking_last_layer_scores_by_spike_rate(mnist):
    x, _ = mnist
    net = _net("spiking-out", "dense", [{"type": "dense", "units": 32},
                                        {"type": "dense", "units": 10, "spiking": False}])
    net.layers[-1].neuron = net.layers[0].neuron  # as NIR imports may end (configs may not)
    out, ref = _same_as_reference(net, x[:6], 1)
    assert np.array_equal(out, ref)


def test_cli_measure_writes_a_measurement_json(tmp_path, capsys):
    out = tmp_path / "m.json"
    rc = main(["measure", "mnist-gated", "--samples", "4", "--repeat", "1", "--warmup", "0",
               "--json", str(out)])
    assert rc == 0
    d = json.loads(out.read_text())
    assert d["schema"] == "simsnn-result" and d["kind"] == "measurement" and d["measured"]
    assert d["results"][0]["network"] == "mnist-gated"
    assert d["results"][0]["latency_s"] > 0
    assert main(["measure", "mnist-gated", "--samples", "4", "--pin", "x"]) == 2
    assert main(["measure", "mnist-gated", "--samples", "4", "--cores", "99"]) == 2
    assert "error" in capsys.readouterr().err


def test_program_calibration_gives_positive_costs_for_the_hardware_file():
    from simsnn.host.calibration import calibrate_program, program_overrides
    prog = calibrate_program(3e9, 8, repeat=2, quick=True, cores=2, private_bytes=256 << 10,
                             dram=(1 << 20, 0.0),
                             levels=[("L2", 512 << 10, 32 << 10, 0.0), ("L3", 1 << 20, 512 << 10,
                                                                         0.0)])
    for k in ("synop.fp32", "synop.fp16", "neuron_update", "event", "segment.fp32",
              "segment.fp16", "gate_op", "gate_row", "gate_call", "gate_act.relu",
              "gate_act.sigmoid", "gate_select", "task", "sync"):
        assert prog[k]["seconds"] >= 0 and np.isfinite(prog[k]["seconds"]), k
    assert prog["synop.fp32"]["seconds"] > 0 and prog["task"]["seconds"] > 0
    # a row of 1024 gate weights costs more than one of 10; a call and a selection cost time
    rows = prog["gate_op"]["per_row_by_width_s"]
    assert rows[1024] > rows[10] > 0
    assert prog["gate_call"]["seconds"] > 0 and prog["gate_select"]["seconds"] > 0
    over, sources, table = program_overrides(prog, "today")
    assert set(over["cycles_per_synop_dtype"]) == {"fp32", "fp16", "int8"}
    assert set(over["cycles_per_segment_dtype"]) == {"fp32", "fp16", "int8"}
    # the convolution's and pooling's own costs
    for k in ("conv_event", "conv_tap", "update_run", "conv_spike", "pool_op"):
        assert prog[k]["seconds"] >= 0 and over[f"cycles_per_{k}"] >= 0, k
    assert prog["conv_spike"]["seconds"] > 0 and prog["pool_op"]["seconds"] > 0
    assert set(over["cycles_per_gate_act"]) == {"relu", "sigmoid"}
    assert set(over["cycles_per_tail"]) == {8, 16, 32, 64}
    # a cold driver call and selection: differences of medians, never negative
    assert set(over["cycles_cold"]) == {"call", "gate_select"}
    assert all(v >= 0 for v in over["cycles_cold"].values())
    assert prog["cold.call"]["warm_s"] > 0
    assert prog["spike"]["seconds"] > 0 and over["cycles_per_spike"] > 0
    assert prog["input"]["seconds"] > 0 and over["cycles_per_input"] > 0
    assert set(over["cycles_per_unaligned"]) == {"fp32", "fp16", "int8"}
    assert all(v >= 0 for v in over["cycles_per_unaligned"].values())
    # the event less a run's setup, timed apart
    assert prog["run_setup"]["seconds"] >= 0
    assert prog["event"]["with_one_run_s"] >= prog["event"]["seconds"] >= 0
    # the DRAM stall: measured on a matrix of at least 64 MiB, never negative
    assert prog["dram_line"]["matrix_bytes"] >= 64 << 20
    assert over["cycles_per_dram_line"] >= 0 and over["cycles_per_dram_run"] >= 0
    assert [(r["units"], r["runs"]) for r in prog["dram_line"]["runs"]] == [
        (4096, 1), (2048, 1), (2048, 2), (2048, 4)]
    assert all(r["near_s"] > 0 for r in prog["dram_line"]["runs"])
    # the cache-level stalls: on a matrix of half the level, the level above 8x smaller;
    # an L3 only 2x the L2 cannot be told from it and is left out
    assert prog["level_stall"]["L2"]["line"]["matrix_bytes"] == 256 << 10
    assert prog["level_stall_skipped"] == ["L3"]
    assert set(over["cycles_per_level_line"]) == set(over["cycles_per_level_run"]) == {"L2"}
    assert over["cycles_per_level_line"]["L2"] >= 0 and over["cycles_per_level_run"]["L2"] >= 0
    assert "stall.L3" in table and "not timed" in table
    assert over["cycles_per_task"] > 0 and "measured program" in table
    from hwmodels.spec import CoreSpec
    CoreSpec(count=2, frequency=3e9, **over)  # the fields exist and validate
    # a figure that moved between two pooled rounds is unsettled; tiny moves are not
    import copy

    from simsnn.host.calibration import unsettled
    assert unsettled(prog, prog) == []
    moved = copy.deepcopy(prog)
    moved["event"]["cycles"] = prog["event"]["cycles"] * 1.5 + 5
    moved["tail.fp32"]["cycles"][8] += 0.1  # under the 0.5-cycle floor
    assert unsettled(prog, moved) == ["cycles_per_event"]


def test_run_fit_recovers_the_remainder_costs():
    from simsnn.host.calibrate_layer import RUN_WIDTHS, fit_runs
    w = np.array(RUN_WIDTHS, float)
    # 12 ns per run, 0.25 ns per unit, 1.5 ns per unit past a block of 8, 0.3 past one of 32
    true = 12e-9 + 0.25e-9 * w + 1.5e-9 * (w % 8) + 0.3e-9 * (w % 32)
    runs = {"widths": list(RUN_WIDTHS), "spread": 0.0, "fp32": true.tolist(),
            "fp16": (2 * true).tolist()}
    fit = fit_runs(runs, 2e-9, 1e9, 8)
    assert fit["synop.fp32"]["seconds"] == pytest.approx(0.25e-9, rel=1e-6)
    assert fit["segment.fp32"]["seconds"] == pytest.approx(10e-9, rel=1e-6)
    tail = fit["tail.fp32"]["seconds"]
    assert tail[8] == pytest.approx(1.5e-9, rel=1e-6) and tail[32] == pytest.approx(0.3e-9)
    assert tail[16] == pytest.approx(0, abs=1e-15) and tail[64] == pytest.approx(0, abs=1e-15)
    assert fit["tail.fp16"]["cycles"][8] == pytest.approx(3.0, rel=1e-6)  # 3 ns at 1 GHz
    # a width whose difference of timings noise clipped to zero is left out of the fit
    hit = dict(runs, fp32=[0.0 if wd == 128 else v for wd, v in zip(RUN_WIDTHS, true)])
    fit = fit_runs(hit, 2e-9, 1e9, 8)
    assert fit["synop.fp32"]["dropped"] == [128] and fit["synop.fp16"]["dropped"] == []
    assert fit["synop.fp32"]["seconds"] == pytest.approx(0.25e-9, rel=1e-6)


def test_pooled_timings_keep_each_timing_at_its_best_over_rounds(monkeypatch):
    from types import SimpleNamespace

    from simsnn.host import timing as pc
    clock = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0, 30.0, 32.0])
    monkeypatch.setattr(pc, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    calls = []
    pool: dict = {}
    with pc.pooled_timings(pool):
        assert pc.best_of(lambda: calls.append(1), 1, 2, "k") == (1.0, 2.0)
        # a slower round: the pool's best stands; this round's own spread is reported
        assert pc.best_of(lambda: calls.append(1), 1, 2, "k") == (1.0, 0.0)
    assert pool == {"k": 1.0} and pc._POOL is None and len(calls) == 6


def test_best_program_is_the_last_pooled_round_with_cold_figures_at_their_median():
    from simsnn.host.calibration import best_program

    def prog(ev, cold, noisy):
        return {"event": {"seconds": ev}, "cold.call": {"seconds": cold}, "noisy": noisy}
    best = best_program([prog(3.0, 5.0, ["a"]), prog(2.0, 1.0, []), prog(2.5, 3.0, ["b"])])
    assert best["event"]["seconds"] == 2.5  # the last round: every timing pooled
    assert best["cold.call"]["seconds"] == 3.0  # paired timings, not pooled: the median
    assert best["noisy"] == ["a", "b"]


def test_cli_hw_detect_writes_a_loadable_profile(tmp_path):
    from hwmodels.loader import load_hardware
    out = tmp_path / "host.yaml"
    assert main(["hw", "detect", "--quick", "-q", "-o", str(out)]) == 0
    hw = load_hardware(out)
    assert hw.cores.cycles_per_task > 0 and "fp16" in hw.cores.cycles_per_synop_dtype
    assert out.read_text().startswith("# simsnn hw detect")


def test_compiled_gate_selection_is_numpys_stable_top_k():
    from simsnn.host.program import select_groups
    rng = np.random.default_rng(5)
    for _ in range(200):
        n, g = int(rng.integers(2, 12)), int(rng.integers(1, 6))
        scores = rng.integers(0, 4, n).astype(np.float32)  # many ties
        c2g = rng.random((n, g)) < 0.4
        k = int(rng.integers(1, n + 1))
        top = np.argsort(-scores, kind="stable")[:k]
        assert np.array_equal(select_groups(scores, c2g, k), c2g[top].any(axis=0))
