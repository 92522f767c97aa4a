"""Lowering, timing, energy and the plug-in contract of the simulator."""
import sys
from pathlib import Path

import numpy as np
import pytest

import simsnn
from hwmodels.loader import load_hardware, parse_hardware
from hwmodels.registry import memory_level_kinds
from hwmodels.simulate import simulate_workload
from hwmodels.workload import Workload
from simsnn.lowering import lower
from simsnn.metrics import synaptic_ops
from simsnn.synth import SynthParams, synthesize_trace
from tests.conftest import make_cfg

ROOT = Path(__file__).resolve().parents[1]


def priced(e, src="test"):
    return {"energy": e, "source": src}


def tiny_hw(**over):
    hw = {
        "version": 1, "kind": "hardware", "name": "tiny",
        "cores": {"count": 4, "frequency": "1 GHz", "simd_width": 1, "cycles_per_synop": 1,
                  "cycles_per_neuron_update": 2, "cycles_per_event": 0, "mlp": 2,
                  "static_power": {"power": "1 W", "source": "test"}},
        "memory": [{"name": "L1", "size": "128 B", "line": 64, "ways": 2, "latency": 4,
                    "bandwidth": 64, "read": priced("10 pJ"), "write": priced("12 pJ")}],
        "dram": {"bandwidth": "12.8 GB/s", "latency": "100 ns",
                 "energy_per_byte": priced("20 pJ")},
        "energy": {"synop": {k: priced("0.9 pJ") for k in ("fp32", "fp16", "int8")},
                   "mac": {k: priced("4.6 pJ") for k in ("fp32", "fp16", "int8")},
                   "neuron_update": priced("5 pJ"), "gate_op": priced("4.6 pJ")},
    }
    hw.update(over)
    return parse_hardware(hw, "test")


def two_level_hw(l1_size: str):
    """tiny_hw with a private 2-way L1 of ``l1_size`` and a shared 4 KiB, 4-way L2."""
    return tiny_hw(memory=[
        {"name": "L1", "size": l1_size, "ways": 2, "latency": 4, "bandwidth": 64,
         "read": priced("10 pJ"), "write": priced("12 pJ")},
        {"name": "L2", "size": "4 KiB", "ways": 4, "latency": 12, "bandwidth": 32,
         "shared": True, "read": priced("20 pJ"), "write": priced("22 pJ")}])


def one_task_workload(n_tasks=1, lines_per_task=2, synops=100.0, run_lines=1):
    """``n_tasks`` parallel tasks (one per core), each reading its own lines in runs."""
    runs = lines_per_task // run_lines
    addr = np.concatenate([np.arange(runs) * 64 * run_lines + t * (1 << 20)
                           for t in range(n_tasks)])
    return Workload(addr.astype(np.int64), np.full(addr.shape, 64 * run_lines, np.int64),
                    np.zeros(addr.shape, bool),
                    np.arange(n_tasks + 1, dtype=np.int64) * runs,
                    np.arange(n_tasks, dtype=np.int32), np.zeros(n_tasks, np.int32),
                    np.full((n_tasks, 1), synops), ("synop.fp32",), ["p"], max(n_tasks, 1))


def test_latency_and_energy_by_hand():
    hw = tiny_hw()
    r = simulate_workload(one_task_workload(), hw, "exact", cores=1)
    # compute 100 synops x 1 cycle at 1 GHz = 100 ns; transfers: L1 2 lines x 64 B / 64 B/cycle
    # = 2 ns, DRAM 128 B / 12.8 GB/s = 10 ns; latency: 2 run starts served by DRAM x 100 ns / mlp 2
    assert r.compute_s[0] == pytest.approx(100e-9)
    assert r.transfer_s[0] == pytest.approx(12e-9)
    assert r.latency_s[0] == pytest.approx(100e-9)
    assert r.total_s == pytest.approx(200e-9)
    e = r.energy_totals()
    assert e["compute.synop"] == pytest.approx(100 * 0.9e-12)
    assert e["memory.L1"] == pytest.approx(2 * 10e-12 + 2 * 12e-12)
    assert e["memory.dram"] == pytest.approx(128 * 20e-12)
    assert e["static.cores"] == pytest.approx(1.0 / 4 * 200e-9)  # 1 of 4 cores powered
    assert "test" in r.sources["memory.dram"]


def test_dram_lines_stall_the_core_by_their_calibrated_cycles():
    hw = tiny_hw()
    stalled = hw.model_copy(update={"cores": hw.cores.model_copy(
        update={"cycles_per_dram_line": 30.0})})
    a = simulate_workload(one_task_workload(), hw, "exact", cores=1)
    b = simulate_workload(one_task_workload(), stalled, "exact", cores=1)
    # the two lines read from DRAM: 2 x 30 cycles at 1 GHz of compute-side stall
    assert b.compute_s[0] - a.compute_s[0] == pytest.approx(60e-9)
    assert b.total_s - a.total_s == pytest.approx(60e-9)  # compute-bound: it adds
    # and per run that starts in DRAM (two single-line runs here)
    runs = hw.model_copy(update={"cores": hw.cores.model_copy(
        update={"cycles_per_dram_run": 100.0})})
    c = simulate_workload(one_task_workload(), runs, "exact", cores=1)
    assert c.compute_s[0] - a.compute_s[0] == pytest.approx(200e-9)
    # memory-bound (a slow channel): the transfers hide the stall
    slow = {"bandwidth": "0.1 GB/s", "latency": "100 ns",
            "energy_per_byte": {"energy": "20 pJ", "source": "test"}}
    c = simulate_workload(one_task_workload(), tiny_hw(dram=slow), "exact", cores=1)
    d = simulate_workload(one_task_workload(), tiny_hw(dram=slow, cores=dict(
        tiny_hw().cores.model_dump(mode="json"), cycles_per_dram_line=30.0)), "exact", cores=1)
    assert d.total_s == pytest.approx(c.total_s)


def test_lines_and_runs_a_cache_level_serves_stall_the_core_by_its_cycles():
    # one task reading 4 runs of 2 lines twice: the second pass finds them in the 4 KiB L2
    # (the 128 B L1 holds 2 lines)
    addr = np.tile(np.arange(4) * 128, 2).astype(np.int64)
    wl = Workload(addr, np.full(8, 128, np.int64), np.zeros(8, bool), np.array([0, 8]),
                  np.zeros(1, np.int32), np.zeros(1, np.int32), np.full((1, 1), 1000.0),
                  ("synop.fp32",), ["p"], 1)
    hw = two_level_hw("128 B")
    a = simulate_workload(wl, hw, "exact", cores=1)
    b = simulate_workload(wl, hw.model_copy(update={"cores": hw.cores.model_copy(update={
        "cycles_per_level_line": {"L2": 10.0}, "cycles_per_level_run": {"L2": 100.0}})}),
        "exact", cores=1)
    hits = a.task_lines[0, 1, 0]  # lines L2 served
    runs = a.task_lines[0, 0, 2] - a.task_lines[0, 1, 2]  # runs that started in L2
    assert hits == 8 and runs == 4
    # 10 cycles per line and 100 per run at 1 GHz, on the compute side
    assert b.compute_s[0] - a.compute_s[0] == pytest.approx((10 * 8 + 100 * 4) * 1e-9)


def test_level_stalls_must_name_a_cache_level_beyond_the_first():
    from hwmodels.errors import HardwareConfigError
    data = two_level_hw("1 KiB").model_dump(mode="json")
    data["cores"]["cycles_per_level_run"] = {"L1": 5.0}
    with pytest.raises(HardwareConfigError, match="cycles_per_level_run"):
        parse_hardware(data, "t.yaml")


def test_overlapped_transfers_take_the_slowest_level_not_the_sum():
    slow = {"bandwidth": "0.1 GB/s", "latency": "100 ns",
            "energy_per_byte": {"energy": "20 pJ", "source": "test"}}
    for n in (1, 2):  # one task: direct path; two tasks on one channel: simpy path
        wl = one_task_workload(n, 64, synops=1.0, run_lines=64)
        serial = simulate_workload(wl, two_level_hw("1 KiB"), "exact", cores=n)
        both = simulate_workload(wl, two_level_hw("1 KiB").model_copy(
            update={"transfers": "overlapped"}), "exact", cores=n)
        # per task: L1 64 lines x 64 B / 64 B/cycle = 64 ns, shared L2 64 x 64 B / 32 B/cycle
        # = 128 ns, DRAM 4096 B / 12.8 GB/s = 320 ns: serial 512 ns, overlapped 320 ns
        assert serial.transfer_s[0] == pytest.approx(512e-9)
        assert both.transfer_s[0] == pytest.approx(320e-9)
        if n == 1:  # memory-bound: the whole difference shows
            assert serial.total_s - both.total_s == pytest.approx(192e-9)
        assert both.total_s < serial.total_s
        one = simulate_workload(wl, tiny_hw(dram=slow, transfers="overlapped"), "exact",
                                cores=n)
        # DRAM-bound: both tasks' 4 KiB queue on the 0.1 GB/s channel either way
        assert one.total_s >= n * 4096 / 0.1e9


def test_dram_contention_grows_with_cores():
    hw = tiny_hw()
    per_task = []
    for n in (1, 2, 4):
        # n tasks in one phase, each streaming one run of 512 lines from DRAM
        r = simulate_workload(one_task_workload(n, 512, synops=10.0, run_lines=512), hw,
                              "exact", cores=n)
        assert r.total_s >= n * 512 * 64 / 12.8e9  # never faster than the shared bandwidth
        per_task.append(r.total_s)
    assert per_task[0] < per_task[1] < per_task[2]
    assert per_task[2] / per_task[0] > 3.0  # bandwidth-bound: 4x the data, ~4x the time


NETS = {
    "dense": make_cfg(),
    "gated": make_cfg("gated", gate={"groups": 3, "top_k": 2, "shared": 0.25}),
    "conv": make_cfg(input={"shape": [2, 6, 6]}, layers=[
        {"type": "conv2d", "channels": 4, "padding": 1}, {"type": "avgpool2d", "kernel": 2},
        {"type": "conv2d", "channels": 4, "padding": 1, "stride": 2}, {"type": "flatten"},
        {"type": "dense", "units": 3, "spiking": False}]),
    "ensemble": make_cfg("task_specialized", tasks=[{"classes": [0], "scale": 2},
                                                    {"classes": [1, 2], "scale": 4}]),
}


@pytest.mark.parametrize("name", NETS)
@pytest.mark.parametrize("cores", [1, 3])
def test_lowered_operations_equal_neurobench_counts(name, cores):
    net = simsnn.load_network(NETS[name])
    tr = synthesize_trace(net, SynthParams(samples=4, rate=0.3, input_rate=0.4, seed=1))
    ops = lower(net, tr, cores=cores).op_totals()
    ref = synaptic_ops(net, tr)
    syn = sum(v for k, v in ops.items() if k.startswith(("synop", "mac"))) / 4
    assert syn == pytest.approx(ref["effective_acs"] + ref["effective_macs"])
    assert ops["neuron_update"] / 4 == pytest.approx(ref["membrane_updates"])


def test_the_ensemble_aggregator_is_priced_once_per_inference():
    net = simsnn.load_network(NETS["ensemble"])
    tr = synthesize_trace(net, SynthParams(samples=3, rate=0.3, input_rate=0.4, seed=1))
    wl = lower(net, tr, cores=2)
    agg = [i for i, n in enumerate(wl.phase_names) if n == "aggregator"]
    assert len(agg) == 3
    tasks = np.isin(wl.task_phase, agg)
    gate_op = wl.ops[:, wl.op_kinds.index("gate_op")]
    assert gate_op[tasks].sum() == 3 * net.aggregator.n_params
    assert gate_op[~tasks].sum() == 0


@pytest.mark.parametrize("kind", ["mlp", "linear"])
def test_the_gate_reads_the_rows_of_its_nonzero_features_only(kind):
    cfg = make_cfg("gated", input={"shape": [40]}, init="random",
                   gate={"groups": 3, "top_k": 1, "shared": 0.25, "kind": kind, "hidden": 7})
    net = simsnn.load_network(cfg)
    x = np.zeros((2, 40), np.float32)
    x[0, [3, 9, 20]] = 0.5  # three non-zero features, then five
    x[1, [0, 1, 2, 30, 39]] = 1.0
    _, tr = simsnn.run_network(net, x, record=True)
    wl = lower(net, tr, cores=2)
    gate = [i for i, n in enumerate(wl.phase_names) if n == "gate"]
    tasks = np.nonzero(np.isin(wl.task_phase, gate))[0]
    ops = {k: wl.ops[tasks, j] for j, k in enumerate(wl.op_kinds)}
    C = net.num_classes
    hidden = 7 if kind == "mlp" else C
    nnz = np.array([3, 5])
    second = (hidden + 1) * C if kind == "mlp" else 0
    assert ops["gate_op"].tolist() == ((nnz + 1) * hidden + second).tolist()
    rows = nnz + 1 + (hidden + 1 if kind == "mlp" else 0)
    assert ops["gate_row"].tolist() == rows.tolist()
    assert ops["gate_call"].tolist() == [1, 1] and ops["gate_select"].tolist() == [1, 1]
    assert ops["gate_act.relu"].tolist() == ([hidden] * 2 if kind == "mlp" else [0, 0])
    # the weight rows read: the non-zero features' rows of w1 (and the rest of the MLP)
    wbase, _ = wl.meta["regions"]["gate.weights"]
    row_bytes = hidden * (2 if net.weight_dtype == "fp16" else 4)
    for t, first in zip(tasks, ([3, 9, 20], [0, 1, 2, 30, 39])):
        a = wl.addr[wl.task_start[t]:wl.task_start[t + 1]]
        w1 = a[(a >= wbase) & (a < wbase + 40 * row_bytes)]
        assert ((w1 - wbase) // row_bytes).tolist() == first


def test_small_mlp_operations_cost_their_calibrated_cycles():
    from hwmodels.core import ThroughputCore
    hw = tiny_hw()
    cores = hw.cores.model_copy(update={"cycles_per_gate_row": 3.0, "cycles_per_gate_call": 50,
                                        "cycles_per_gate_select": 70,
                                        "cycles_per_gate_act": {"sigmoid": 9.0}})
    core = ThroughputCore(cores)
    assert core.cycles_per_op("gate_row") == 3.0 and core.cycles_per_op("gate_call") == 50
    assert core.cycles_per_op("gate_select") == 70
    assert core.cycles_per_op("gate_act.sigmoid") == 9.0
    assert core.cycles_per_op("gate_act.relu") == 0.0  # not listed: free


def test_each_run_counts_its_elements_past_the_last_full_block():
    # a 70-unit hidden layer and a 10-unit readout on one core: per input event one run of
    # 70 (70 mod 8 = 6, mod 16 = 6, mod 32 = 6, mod 64 = 6) and per hidden spike one of 10
    cfg = make_cfg("dense", num_classes=10, layers=[{"type": "dense", "units": 70},
                                    {"type": "dense", "units": 10, "spiking": False}])
    net = simsnn.load_network(cfg)
    tr = synthesize_trace(net, SynthParams(samples=2, rate=0.3, input_rate=0.4, seed=4))
    wl = lower(net, tr, cores=1)
    ops = wl.op_totals()
    d = net.weight_dtype
    hidden = [i for i, n in enumerate(wl.phase_names) if n == net.layers[0].name]
    tasks = np.isin(wl.task_phase, hidden)
    ev = wl.ops[:, wl.op_kinds.index("event")]
    n_in, n_hid = ev[tasks].sum(), ev[~tasks].sum()
    assert n_in > 0 and n_hid > 0
    for b, rem10 in ((8, 2), (16, 10), (32, 10), (64, 10)):
        assert ops[f"tail{b}.{d}"] == n_in * (70 % b) + n_hid * rem10


def test_run_remainders_cost_the_listed_blocks_only():
    from hwmodels.core import ThroughputCore
    hw = tiny_hw()
    cores = hw.cores.model_copy(update={"cycles_per_tail": {8: 2.0, 32: 0.5},
                                        "cycles_per_tail_dtype": {"fp16": {8: 3.0}}})
    core = ThroughputCore(cores)
    assert core.cycles_per_op("tail8.fp32") == 2.0 and core.cycles_per_op("tail32") == 0.5
    assert core.cycles_per_op("tail16.fp32") == 0.0  # not listed: free
    assert core.cycles_per_op("tail8.fp16") == 3.0 and core.cycles_per_op("tail32.fp16") == 0


@pytest.mark.parametrize("schedule", ["layer_major", "step_major"])
def test_the_driver_calls_compiled_code_once_per_layer_call(schedule):
    from simsnn.config.layout import LayoutConfig
    net = simsnn.load_network(NETS["gated"])
    tr = synthesize_trace(net, SynthParams(samples=2, rate=0.3, input_rate=0.4, seed=1))
    wl = lower(net, tr, cores=2, layout=LayoutConfig(schedule=schedule))
    calls = wl.ops[:, wl.op_kinds.index("call")]
    assert set(wl.task_core[calls > 0].tolist()) == {0}  # the driver runs on core 0
    T, n_layers = net.timesteps, len(net.layers)
    # per sample: the encoder and every layer (per call: all steps, or one step), the gate
    per_call = 1 if schedule == "layer_major" else T
    assert calls.sum() == 2 * ((1 + n_layers) * per_call + 1)


def test_every_output_spike_is_merged_once_by_the_driver():
    net = simsnn.load_network(NETS["gated"])
    tr = synthesize_trace(net, SynthParams(samples=3, rate=0.3, input_rate=0.4, seed=2))
    wl = lower(net, tr, cores=2)
    spikes = wl.ops[:, wl.op_kinds.index("spike")]
    assert set(wl.task_core[spikes > 0].tolist()) == {0}  # one merge, on the driver's core
    hidden = sum(int(v.sum()) for k, v in tr.layers.items() if k != "input")
    assert spikes.sum() == hidden > 0  # every spiking layer's spikes, not the readout's


def test_cold_driver_calls_pay_for_the_private_cache_refilled_since_the_last():
    from hwmodels.simulate import cold_calls
    hw = tiny_hw(cores={"count": 1, "frequency": "1 GHz", "cycles_cold": {"call": 1000.0}})
    kinds = ("call", "synop.fp32")
    # tasks on one core: a call, 1 line refilled, a call, 4 lines (two L1s' worth), a call
    # that itself misses 9 lines, then a call
    ops = np.array([[1, 0], [0, 5], [1, 0], [0, 5], [1, 0], [1, 0]], float)
    misses = np.array([0, 1, 0, 4, 9, 0], float)
    n = ops.shape[0]
    wl = Workload(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool),
                  np.zeros(n + 1, np.int64), np.zeros(n, np.int32), np.arange(n, dtype=np.int32),
                  ops, kinds, [f"p{i}" for i in range(n)], 1)
    lines = np.zeros((n, 1, 3))
    lines[:, 0, 1] = misses
    cold = cold_calls(wl, hw, lines) * 1e9  # ns at 1 GHz = cycles
    # L1 of 128 B = 2 lines: 0 before the first call, 1 of 2 lines, 4 (capped), then the
    # 9 lines of the third call's own task do not count, nothing since: warm
    assert cold.tolist() == [0.0, 0.0, 500.0, 0.0, 1000.0, 0.0]
    assert not cold_calls(wl, tiny_hw(), lines).any()  # no cycles_cold: every call warm


def test_gated_layout_decides_lines_touched():
    cfg = make_cfg("gated", gate={"groups": 4, "top_k": 1, "shared": 0.25,
                                  "assignment": "interleaved"},
                   layers=[{"type": "dense", "units": 256}, {"type": "dense", "units": 256},
                           {"type": "dense", "units": 3, "spiking": False}])
    net = simsnn.load_network(cfg)
    tr = synthesize_trace(net, SynthParams(samples=3, rate=0.2, input_rate=0.5, seed=2))
    from simsnn.config.layout import LayoutConfig
    from simsnn.simulate import working_set
    packed = lower(net, tr, 1, LayoutConfig(groups="contiguous"))
    scattered = lower(net, tr, 1, LayoutConfig(groups="interleaved"))
    a, b = packed.op_totals(), scattered.op_totals()
    seg_a, seg_b = a.pop("segment.fp32"), b.pop("segment.fp32")
    # every run is visited by the current's init and the neuron update at every step
    assert a.pop("update_run") < b.pop("update_run")
    # the scattered runs (1-2 units each) start off a vector boundary far more often
    assert a.pop("unaligned.fp32") < b.pop("unaligned.fp32")
    tails = [k for k in a if k.startswith("tail")]
    tail_a, tail_b = [a.pop(k) for k in tails], [b.pop(k) for k in tails]
    assert a == b  # same arithmetic, other addresses
    assert seg_a < seg_b  # contiguous groups: fewer runs of open units per event
    # ... and fewer units past a run's last full block (runs of 1-2 units here: all a tail)
    assert all(x <= y for x, y in zip(tail_a, tail_b)) and tail_a[0] < tail_b[0]
    assert working_set(packed, 64)["bytes_per_inference"] < \
        working_set(scattered, 64)["bytes_per_inference"]
    assert packed.n_accesses < scattered.n_accesses  # contiguous groups: fewer, longer runs


def test_simulate_reports_everything():
    net = simsnn.load_network(NETS["gated"])
    tr = synthesize_trace(net, SynthParams(samples=5, rate=0.2, seed=3))
    hw = two_level_hw("1 KiB")
    rep = simsnn.simulate(net, tr, hw, cores=2).report
    assert rep["latency_s"] > 0 and rep["energy_j"] > 0
    assert rep["latency"]["p50"] <= rep["latency"]["p99"] <= rep["latency"]["max"]
    assert sum(rep["latency"]["per_layer_s"].values()) == pytest.approx(rep["latency_s"])
    assert sum(rep["energy"]["per_layer_j"].values()) == pytest.approx(rep["energy_j"])
    assert 0 < rep["latency"]["compute_share"] < 1
    assert 0 <= rep["dram"]["bandwidth_utilisation"] <= 1
    assert [c["name"] for c in rep["cache"]] == ["L1", "L2", "memory"]
    assert rep["footprint"]["working_set"]["bytes_per_inference"] > 0
    assert set(rep["energy"]["sources"]) >= set(rep["energy"]["dynamic_j"])


def test_fast_mode_agrees_with_exact_through_simulate():
    net = simsnn.load_network(NETS["dense"])
    tr = synthesize_trace(net, SynthParams(samples=6, rate=0.2, seed=4))
    hw = two_level_hw("512 B")
    exact = simsnn.simulate(net, tr, hw, mode="exact", cores=2).report
    fast = simsnn.simulate(net, tr, hw, mode="fast", cores=2).report
    assert fast["memory_mode"] == "fast"
    for e, f in zip(exact["cache"][:-1], fast["cache"][:-1]):
        assert f["fast_model"] == "per-set"
        assert f["misses"] == pytest.approx(e["misses"], rel=0.02, abs=2), e["name"]
    assert fast["latency_s"] == pytest.approx(exact["latency_s"], rel=0.05)
    scratch = tiny_hw(memory=[{"type": "scratchpad", "name": "SP", "size": "1 KiB",
                               "latency": 1, "bandwidth": 64, "read": priced("1 pJ"),
                               "write": priced("1 pJ")}])
    with pytest.raises(Exception, match="LRU caches only"):
        simsnn.simulate(net, tr, scratch, mode="fast")


def test_plugin_found_through_entry_points(tmp_path, monkeypatch):
    # a fake installed distribution that declares the docs example as a component
    dist = tmp_path / "neuro_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: neuro-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[hwmodels.components]\nneuro_sram = neuro_sram:NeuroSRAM\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(ROOT / "docs" / "examples"))
    memory_level_kinds.cache_clear()
    try:
        assert "neuro_sram" in memory_level_kinds()
        hw = load_hardware(ROOT / "docs" / "examples" / "neuromorphic.yaml")
        net = simsnn.load_network(NETS["dense"])
        tr = synthesize_trace(net, SynthParams(samples=3, seed=4))
        rep = simsnn.simulate(net, tr, hw).report
        assert rep["cache"][-1]["reads"] == 0  # nothing reaches DRAM
        assert rep["cache"][0]["hits"] > 0 and rep["energy"]["dynamic_j"]["memory.SRAM"] > 0
        small = tiny_hw(memory=[{"type": "neuro_sram", "name": "SRAM", "size": "256 B",
                                 "read": priced("1 pJ"), "write": priced("1 pJ")}])
        from hwmodels.errors import HardwareError
        with pytest.raises(HardwareError, match="more than"):
            simsnn.simulate(net, tr, small)
    finally:
        memory_level_kinds.cache_clear()
        sys.modules.pop("neuro_sram", None)


def test_working_set_is_the_same_whatever_the_sample_chunks():
    from simsnn.simulate import working_set
    net = simsnn.load_network("mnist-gated")
    from simsnn.datasets import load_dataset
    x = load_dataset("mnist").x_test[:5]
    _, tr = simsnn.run_network(net, x, record=True)
    wl = lower(net, tr, cores=2)
    one = working_set(wl, 64, chunk_samples=1)
    all_ = working_set(wl, 64, chunk_samples=1000)
    assert one["bytes_per_inference"] == pytest.approx(all_["bytes_per_inference"])
    assert one["per_layer_bytes"] == pytest.approx(all_["per_layer_bytes"])
    assert one["bytes_per_inference"] > 0


def test_core_shares_end_on_cache_lines_of_the_current():
    from simsnn.lowering import LINE_UNITS, unit_shares
    rng = np.random.default_rng(0)
    perm = np.arange(1024)
    for partition in ("active", "static"):
        for cores in (2, 3, 4):
            active = rng.random(1024) < 0.4
            shares = unit_shares(perm, active, cores, partition)
            assert np.array_equal(np.concatenate(shares), np.nonzero(active)[0])
            lines = [set(s // LINE_UNITS) for s in shares]
            for a in range(cores):  # no line written by two cores
                for b in range(a + 1, cores):
                    assert not lines[a] & lines[b]
            if partition == "active":  # still balanced to within a line or so
                sizes = [len(s) for s in shares]
                assert max(sizes) - min(sizes) <= 2 * LINE_UNITS
    # a readout smaller than a line: one core takes it all
    sizes = [len(s) for s in unit_shares(np.arange(10), np.ones(10, bool), 2, "active")]
    assert sizes == [10, 0]


def test_runs_off_a_vector_boundary_are_counted_and_priced():
    from hwmodels.core import ThroughputCore
    from simsnn.datasets import load_dataset
    from simsnn.lowering import VECTOR_ALIGN
    net = simsnn.load_network("mnist-gated")
    x = load_dataset("mnist", seed=0).x_test[:4]
    _, tr = simsnn.run_network(net, x, record=True, seed=0)
    wl = simsnn.simulate(net, tr, load_hardware("xeon-vm-2c"), "exact", 1).workload
    un = wl.ops[:, wl.op_kinds.index("unaligned.fp16")]
    syn = wl.ops[:, wl.op_kinds.index("synop.fp16")] + wl.ops[:, wl.op_kinds.index("mac.fp16")]
    # groups start anywhere in a row: some of a gated layer's runs are off the boundary, and
    # the count is elements, so never more than the accumulates
    assert 0 < un.sum() < syn.sum() and np.all(un <= syn)
    assert VECTOR_ALIGN == 32
    # the dense model's 1,024-unit rows start aligned: only its 10-unit readout rows are off
    dense = simsnn.load_network("mnist-dense")
    _, trd = simsnn.run_network(dense, x, record=True, seed=0)
    wld = simsnn.simulate(dense, trd, load_hardware("xeon-vm-2c"), "exact", 1).workload
    lay = wld.phase_info["layer"][wld.task_phase]
    names = wld.meta["layer_names"]
    und = wld.ops[:, wld.op_kinds.index("unaligned.fp16")]
    hidden = np.isin(lay, [names.index("dense0"), names.index("dense1")])
    assert und[hidden].sum() == 0 and und.sum() > 0
    # priced per element where the hardware file says so, free where it does not
    spec = load_hardware("xeon-vm-2c")
    assert ThroughputCore(spec.cores).cycles_per_op("unaligned.fp16") == 0.0
    cores = spec.cores.model_copy(update={"cycles_per_unaligned": {"fp16": 0.5}})
    assert ThroughputCore(cores).cycles_per_op("unaligned.fp16") == 0.5
    assert ThroughputCore(cores).cycles_per_op("unaligned.fp32") == 0.0


@pytest.mark.parametrize("name", ["dense", "gated"])
def test_streamed_simulation_equals_one_replay(name):
    """Samples lowered and replayed a few at a time through one hierarchy give the results
    of one replay of the whole workload (the cache state carries across chunks)."""
    net = simsnn.load_network(NETS[name])
    tr = synthesize_trace(net, SynthParams(samples=7, rate=0.2, seed=5))
    hw = two_level_hw("1 KiB")
    whole = simsnn.simulate(net, tr, hw, cores=2, chunk_samples=100)
    done = []
    parts = simsnn.simulate(net, tr, hw, cores=2, chunk_samples=3, progress=done.append)
    assert done == [3, 3, 1]
    assert parts.workload.meta["accesses"] == "not kept"
    assert "accesses" not in whole.workload.meta
    a, b = whole.report, parts.report
    ws_a, ws_b = a["footprint"].pop("working_set"), b["footprint"].pop("working_set")
    assert ws_b["bytes_per_inference"] == pytest.approx(ws_a["bytes_per_inference"])
    assert ws_b["per_layer_bytes"] == pytest.approx(ws_a["per_layer_bytes"])
    assert a == b
    assert np.array_equal(whole.hw.task_lines, parts.hw.task_lines)
    assert np.array_equal(whole.workload.phase_info["sample"], parts.workload.phase_info["sample"])


def test_replay_order_interleaves_the_cores_rank_by_rank():
    rng = np.random.default_rng(0)
    for _ in range(50):
        nt = int(rng.integers(1, 30))
        counts = rng.integers(0, 8, nt)
        phase = np.sort(rng.integers(0, 4, nt)).astype(np.int32)
        core = rng.integers(0, 3, nt).astype(np.int32)
        n = int(counts.sum())
        wl = Workload(np.arange(n) * 64, np.ones(n, np.int64), np.zeros(n, bool),
                      np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), core, phase,
                      np.zeros((nt, 1)), ("synop.fp32",), ["p"] * 4, 3)
        task = wl.access_task()
        rank = np.arange(n) - wl.task_start[task]
        assert np.array_equal(wl.replay_order(), np.lexsort((core[task], rank, phase[task])))
