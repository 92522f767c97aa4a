import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from simsnn.cli import main
from simsnn.config.sweep import SweepConfig
from simsnn.errors import ConfigError
from simsnn.sweep import (
    ResultStore,
    load_sweep,
    pareto_front,
    pareto_mask,
    plan,
    read_results,
    run_sweep,
    sample_points,
)
from simsnn.sweep.plan import set_path
from simsnn.sweep.report import feasible

NETS = {
    "dense": """version: 1
kind: network
name: small-dense
family: dense
num_classes: 10
input: {shape: [64]}
init: none
layers:
  - {type: dense, units: 48}
  - {type: dense, units: 48}
  - {type: dense, units: 10, spiking: false}
""",
    "gated": """version: 1
kind: network
name: small-gated
family: gated
num_classes: 10
input: {shape: [64]}
init: none
gate: {groups: 4, top_k: 1, shared: 0.25}
layers:
  - {type: dense, units: 48}
  - {type: dense, units: 48}
  - {type: dense, units: 10, spiking: false}
""",
}
EXP = """version: 1
kind: experiment
name: base
networks: [dense.yaml, gated.yaml]
trace: {source: synthetic, samples: 6, rate: 0.2, input_rate: 0.3, seed: 0}
hardware: zen4-epyc
memory_mode: fast
"""


def _sweep(tmp_path, body: str):
    for k, v in NETS.items():
        (tmp_path / f"{k}.yaml").write_text(v)
    (tmp_path / "exp.yaml").write_text(EXP)
    p = tmp_path / "sweep.yaml"
    p.write_text("version: 1\nkind: sweep\nname: t\nbase: exp.yaml\n" + body)
    return p


GRID = """axes:
  - {path: hardware.memory.L2.size, range: [128 KiB, 1 MiB], scale: pow2}
  - {path: hardware.dram.bandwidth, values: [4 GB/s, 16 GB/s]}
  - {path: network.gate.groups, values: [2, 4]}
constraints:
  - {metric: footprint_bytes, max: 1 MiB}
"""


def test_grid_plan_is_the_product_and_applies_every_path(tmp_path):
    base = load_sweep(_sweep(tmp_path, GRID))
    vals = sample_points(base.sweep)
    assert len(vals) == 4 * 2 * 2
    assert {v["hardware.memory.L2.size"] for v in vals} == {2**17, 2**18, 2**19, 2**20}
    points, bad = plan(base)
    assert not bad and len(points) == 16 and len({p["point_id"] for p in points}) == 16
    p = points[-1]
    l2 = [m for m in p["hardware"]["memory"] if m["name"] == "L2"][0]
    assert l2["size"] == 2**20 and p["hardware"]["dram"]["bandwidth"] == "16 GB/s"
    dense, gated = (n for n, _ in p["networks"])
    assert gated["gate"]["groups"] == 4 and "gate" not in dense  # only where the field is


@pytest.mark.parametrize("method", ["random", "lhs"])
def test_random_and_lhs_plans_are_deterministic_for_a_seed(tmp_path, method):
    body = f"""sampling: {{method: {method}, samples: 12, seed: 3}}
axes:
  - {{path: hardware.dram.bandwidth, range: [1 GB/s, 100 GB/s], scale: log}}
  - {{path: hardware.cores.frequency, range: [1e9, 3e9]}}
  - {{path: cores, values: [1, 2]}}
"""
    cfg = load_sweep(_sweep(tmp_path, body)).sweep
    a, b = sample_points(cfg), sample_points(cfg)
    assert a == b and len(a) == 12
    other = sample_points(cfg.model_copy(update={"sampling": cfg.sampling.model_copy(
        update={"seed": 4})}))
    assert other != a
    bw = np.array([v["hardware.dram.bandwidth"] for v in a])
    assert bw.min() >= 1e9 and bw.max() <= 100e9
    if method == "lhs":  # one point per stratum on each range axis
        f = np.array([v["hardware.cores.frequency"] for v in a])
        assert sorted(((f - 1e9) / 2e9 * 12).astype(int)) == list(range(12))
        assert sorted((np.log(bw / 1e9) / np.log(100) * 12).astype(int)) == list(range(12))


def test_set_path_finds_list_items_by_name_and_says_what_is_missing():
    d = {"memory": [{"name": "L1d", "size": 1}, {"name": "L2", "size": 2}]}
    set_path(d, ["memory", "L2", "size"], 5, "here")
    set_path(d, ["memory", "0", "ways"], 4, "here")
    assert d["memory"][1]["size"] == 5 and d["memory"][0]["ways"] == 4
    with pytest.raises(ConfigError, match="no item named 'L9'"):
        set_path(d, ["memory", "L9", "size"], 5, "here")


def test_bad_sweep_fields_are_one_clear_error(tmp_path, capsys):
    p = _sweep(tmp_path, "axes:\n  - {path: cores, values: [1], range: [1, 2]}\n")
    assert main(["sweep", str(p), "--dry-run"]) == 2
    assert "exactly one of values and range" in capsys.readouterr().err
    p = _sweep(tmp_path, "axes:\n  - {path: cores, values: [1]}\n"
                         "objectives: [{metric: speed}]\n")
    assert main(["sweep", str(p), "--dry-run"]) == 2
    assert "unknown metric 'speed'" in capsys.readouterr().err


def test_pareto_front_of_a_hand_made_set():
    v = np.array([[1, 5], [2, 2], [3, 1], [2, 3], [4, 4], [1, 5], [3, 3]])
    assert pareto_mask(v).tolist() == [True, True, True, False, False, True, False]
    from simsnn.config.sweep import Constraint, Objective
    rows = [{"point_id": str(i), "network": "n", "latency_s": a, "accuracy": b,
             "footprint_bytes": 10 * i} for i, (a, b) in enumerate(
                 [(1.0, 0.90), (2.0, 0.95), (3.0, 0.99), (2.5, 0.94), (0.5, 0.5)])]
    obj = [Objective(metric="latency_s"), Objective(metric="accuracy", goal="maximize")]
    front = pareto_front(rows, obj)
    assert [r["point_id"] for r in front] == ["0", "1", "2", "4"]
    cons = [Constraint(metric="accuracy", min=0.9), Constraint(metric="footprint_bytes",
                                                               max=15)]
    assert [r["point_id"] for r in pareto_front(rows, obj, cons)] == ["0", "1"]
    assert not feasible({"latency_s": 1.0}, cons)  # a missing metric fails its bound


def test_run_reports_invalid_points_and_is_deterministic(tmp_path):
    body = """axes:
  - {path: hardware.memory.L2.size, values: [256 KiB, 1000 B]}
  - {path: cores, values: [1, 2, 9]}
"""
    base = load_sweep(_sweep(tmp_path, body))
    s = run_sweep(base, tmp_path / "a", workers=1, progress=False)
    recs = read_results(tmp_path / "a" / "results.jsonl")
    assert len(recs) == 6 and s["points_ok"] == 2 and s["points_invalid"] == 4
    bad = [r for r in recs if r["status"] == "invalid"]
    assert any("is not a multiple of line x ways" in r["error"] for r in bad)
    assert any("9 cores" in r["error"] for r in bad)
    ok = [r for r in recs if r["status"] == "ok"]
    m = ok[0]["metrics"]["small-gated"]
    assert m["latency_s"] > 0 and m["energy_j"] > 0 and m["family"] == "gated"
    assert ok[0]["metrics"]["small-dense"]["speedup"] == 1.0
    run_sweep(load_sweep(tmp_path / "sweep.yaml"), tmp_path / "b", workers=2, progress=False)
    again = {r["point_id"]: r for r in read_results(tmp_path / "b" / "results.jsonl")}
    for r in ok:  # same metrics whatever the worker count and order
        assert again[r["point_id"]]["metrics"] == r["metrics"]
    for f in ("results.csv", "pareto.csv", "summary.json", "front.png", "sensitivity.png"):
        assert (tmp_path / "a" / f).exists(), f


def test_a_network_an_axis_does_not_touch_is_one_candidate(tmp_path):
    from simsnn.sweep import candidates
    p = _sweep(tmp_path, "axes:\n  - {path: network.gate.groups, values: [2, 4, 8]}\n")
    run_sweep(load_sweep(p), tmp_path / "o", workers=1, progress=False)
    recs = read_results(tmp_path / "o" / "results.jsonl")
    rows = candidates(recs)
    assert sorted(r["network"] for r in rows) == ["small-dense"] + ["small-gated"] * 3
    assert len(candidates(recs, unique=False)) == 6
    lat = {r["network.gate.groups"]: r["latency_s"] for r in rows
           if r["network"] == "small-gated"}
    assert lat[8] < lat[2]  # one group of eight open instead of one of two


def test_store_drops_a_torn_tail_and_never_duplicates(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultStore(path) as st:
        st.append({"point_id": "a", "status": "ok"})
        st.append({"point_id": "b", "status": "ok", "x": float("nan")})
    with open(path, "ab") as f:
        f.write(b'{"point_id": "c", "sta')  # killed mid-line
    with pytest.raises(Exception, match="--resume"):
        ResultStore(path)
    with ResultStore(path, resume=True) as st:
        assert st.done == {"a", "b"}
        st.append({"point_id": "b", "status": "ok"})
        st.append({"point_id": "c", "status": "ok"})
    lines = path.read_bytes().splitlines()
    assert [json.loads(x)["point_id"] for x in lines] == ["a", "b", "c"]
    assert json.loads(lines[1])["x"] is None


KILL = """axes:
  - {path: hardware.memory.L2.size, range: [64 KiB, 8 MiB], scale: pow2}
  - {path: hardware.dram.bandwidth, values: [2 GB/s, 4 GB/s, 8 GB/s, 16 GB/s, 32 GB/s]}
  - {path: hardware.cores.frequency, values: [1.5 GHz, 2.5 GHz, 3.5 GHz]}
"""


def test_kill_9_mid_sweep_then_resume_finishes_without_loss_or_duplicates(tmp_path):
    p = _sweep(tmp_path, KILL)
    out = tmp_path / "out"
    res = out / "results.jsonl"
    cmd = [sys.executable, "-m", "simsnn.cli", "sweep", str(p), "-o", str(out), "-q",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and (not res.exists() or
                                      res.read_bytes().count(b"\n") < 10):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    data = res.read_bytes()
    n_before = data.count(b"\n")
    assert 10 <= n_before < 120, n_before
    assert data.endswith(b"\n")  # whole lines only
    ids = [json.loads(x)["point_id"] for x in data.splitlines()]
    assert len(ids) == len(set(ids))
    assert main(["sweep", str(p), "-o", str(out), "-q", "--resume"]) == 0
    recs = read_results(res)
    ids = [r["point_id"] for r in recs]
    assert len(ids) == 120 and len(set(ids)) == 120
    assert ids[:n_before] == [json.loads(x)["point_id"] for x in data.splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped_resumed"] == n_before and summary["points_ok"] == 120
    assert len(summary["code_versions"]) == 1 and all("code" in r for r in recs)


def test_dask_local_cluster_runs_the_points(tmp_path):
    pytest.importorskip("distributed")
    body = """axes:
  - {path: hardware.memory.L2.size, values: [256 KiB, 1 MiB]}
  - {path: cores, values: [1, 2]}
"""
    p = _sweep(tmp_path, body)
    assert main(["sweep", str(p), "-o", str(tmp_path / "d"), "-q", "--dask-local", "2"]) == 0
    assert main(["sweep", str(p), "-o", str(tmp_path / "l"), "-q", "--workers", "1"]) == 0
    d = {r["point_id"]: r["metrics"] for r in read_results(tmp_path / "d" / "results.jsonl")}
    loc = {r["point_id"]: r["metrics"] for r in read_results(tmp_path / "l" / "results.jsonl")}
    assert len(d) == 4 and d == loc
    assert json.loads((tmp_path / "d" / "summary.json").read_text())["scheduler"] == \
        "LocalCluster(2)"
    # an existing cluster, reached through its scheduler address
    from distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, host="127.0.0.1") as cluster:
        assert main(["sweep", str(p), "-o", str(tmp_path / "s"), "-q", "--scheduler",
                     cluster.scheduler_address]) == 0
    s = {r["point_id"]: r["metrics"] for r in read_results(tmp_path / "s" / "results.jsonl")}
    assert s == loc
    assert main(["sweep", str(p), "-o", str(tmp_path / "x"), "-q", "--scheduler",
                 "tcp://127.0.0.1:9"]) == 2  # nothing listens there: one clear error
    assert main(["sweep", str(p), "-o", str(tmp_path / "x"), "-q", "--workers", "1"]) == 0


def test_dry_run_lists_points_and_a_fresh_run_refuses_an_old_folder(tmp_path, capsys):
    p = _sweep(tmp_path, "axes:\n  - {path: cores, values: [1, 2]}\n")
    assert main(["sweep", str(p), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "cores=1" in out and "2 points, 0 invalid" in out
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "-q", "--workers", "1"]) == 0
    before = (tmp_path / "o" / "results.jsonl").read_bytes()
    assert main(["sweep", str(p), "-o", str(tmp_path / "o"), "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (tmp_path / "o" / "results.jsonl").read_bytes() == before


def test_a_corrupt_hardware_file_makes_its_points_invalid_not_the_sweep(tmp_path):
    (tmp_path / "bad.yaml").write_text("cores: [unclosed\n")
    p = _sweep(tmp_path, "axes:\n  - {path: hardware, values: [zen4-epyc, bad.yaml]}\n")
    points, bad = plan(load_sweep(p))
    assert len(points) == 1 and len(bad) == 1
    assert "cannot read hardware file" in bad[0]["error"]


def test_cached_pieces_are_keyed_by_the_code_that_makes_them(tmp_path, monkeypatch):
    from hwmodels.loader import parse_hardware
    from simsnn.config.experiment import ExperimentConfig
    from simsnn.sweep import evaluate as E
    p = _sweep(tmp_path, "axes:\n  - {path: cores, values: [1]}\n")
    point = plan(load_sweep(p))[0][0]
    exp = ExperimentConfig.model_validate(point["experiment"])
    spec = parse_hardware(point["hardware"])
    before = E.keys(point, exp, spec)
    monkeypatch.setattr(E, "code_key", lambda: "other code")
    after = E.keys(point, exp, spec)
    assert all(a[k] != b[k] for a, b in zip(before, after) for k in ("trace", "workload"))


def test_sweep_schema_needs_samples_for_random():
    with pytest.raises(Exception, match="needs samples"):
        SweepConfig.model_validate({"version": 1, "kind": "sweep", "name": "x", "base": "e",
                                    "axes": [{"path": "cores", "values": [1]}],
                                    "sampling": {"method": "random"}})


def test_the_disk_cache_evicts_the_least_recently_used_and_never_serves_a_torn_file(tmp_path):
    from simsnn.sweep import diskcache
    cache = tmp_path / "cache"
    blob = np.zeros(100_000, np.uint8)  # ~100 kB pickled
    diskcache.set_limit(cache, 350_000)  # room for three
    made = []

    def make(tag):
        return lambda: made.append(tag) or (tag, blob)

    for i, tag in enumerate("abc"):
        diskcache.cached(str(cache), f"x-{tag}.pkl", make(tag))
        os.utime(cache / f"x-{tag}.pkl", (1000 + i, 1000 + i))  # distinct ages
    assert diskcache.cached(str(cache), "x-a.pkl", make("a"))[0] == "a"  # read: a is recent
    assert made == ["a", "b", "c"]
    diskcache.cached(str(cache), "x-d.pkl", make("d"))  # over the limit: b (oldest) goes
    names = sorted(p.name for p in cache.glob("*.pkl"))
    assert names == ["x-a.pkl", "x-c.pkl", "x-d.pkl"]
    use = diskcache.usage(cache)
    assert use["files"] == 3 and use["bytes"] <= 350_000 and use["limit_bytes"] == 350_000
    # a damaged entry (a writer that did not write atomically) is recomputed, not served
    (cache / "x-c.pkl").write_bytes((cache / "x-c.pkl").read_bytes()[:1000])
    assert diskcache.cached(str(cache), "x-c.pkl", make("c"))[0] == "c"
    assert made[-1] == "c"
    # a stray temporary file is never read as an entry
    (cache / "x-e.pkl.123.tmp").write_bytes(b"partial")
    assert diskcache.cached(str(cache), "x-e.pkl", make("e"))[0] == "e"
    # an entry larger than the whole limit stays in memory only
    diskcache.set_limit(cache, 50_000)
    assert diskcache.usage(cache)["bytes"] <= 50_000
    assert diskcache.cached(str(cache), "x-f.pkl", make("f"))[0] == "f"
    assert not (cache / "x-f.pkl").exists()


def test_a_sweep_keeps_its_cache_within_the_limit_and_reports_it(tmp_path, capsys):
    p = _sweep(tmp_path, GRID)
    assert main(["sweep", str(p), "-o", str(tmp_path / "bad"), "--cache-limit", "lots"]) == 2
    assert "--cache-limit" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    s = run_sweep(load_sweep(p), tmp_path / "a", workers=1, progress=False,
                  cache_limit=None)
    full = s["cache"]["bytes"]
    assert full > 0 and s["cache"]["limit_bytes"] is None
    limit = full // 2
    assert main(["sweep", str(p), "-o", str(tmp_path / "b"), "-q", "--workers", "1",
                 "--cache-limit", f"{limit} B"]) == 0
    out = capsys.readouterr().out
    assert "cache:" in out
    s2 = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert 0 < s2["cache"]["bytes"] <= limit
    a = {r["point_id"]: r["metrics"] for r in read_results(tmp_path / "a" / "results.jsonl")}
    b = {r["point_id"]: r["metrics"] for r in read_results(tmp_path / "b" / "results.jsonl")}
    assert a == b  # evicted pieces are recomputed, with the same results
