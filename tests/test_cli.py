import json

import numpy as np
import pytest

from simsnn.cli import main
from simsnn.trace import load_trace

NET = """version: 1
kind: network
name: tiny
family: gated
num_classes: 10
input: {shape: [64]}
gate: {groups: 5, top_k: 2}
layers:
  - {type: dense, units: 40}
  - {type: dense, units: 40}
  - {type: dense, units: 10, spiking: false}
"""


@pytest.fixture
def net_file(tmp_path):
    p = tmp_path / "net.yaml"
    p.write_text(NET)
    return p


def test_run_experiment_writes_json(tmp_path, net_file, capsys):
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""version: 1
kind: experiment
name: e
networks: [net.yaml, {net_file}]
trace: {{source: dataset, dataset: digits, samples: 50}}
save_traces: traces
""")
    assert main(["run", str(exp), "--json", str(tmp_path / "out.json"), "-q"]) == 0
    table = capsys.readouterr().out
    assert "tiny" in table and "baseline: tiny" in table
    res = json.loads((tmp_path / "out.json").read_text())
    assert res["schema"] == "simsnn-result" and len(res["results"]) == 2
    r = res["results"][0]
    assert 0 <= r["accuracy"] <= 1 and r["samples"] == 50
    assert r["vs_baseline"]["effective_ops_ratio"] == 1.0
    assert r["touched_weight_bytes"]["max"] <= r["weight_bytes"]
    assert load_trace(tmp_path / "traces" / "tiny.h5").n_samples == 50


def test_trace_commands(tmp_path, net_file, capsys):
    out = tmp_path / "t.h5"
    assert main(["trace", "record", str(net_file), "--data", "digits", "--samples", "20",
                 "-o", str(out)]) == 0
    assert load_trace(out).gate_groups.shape == (20, 5)
    assert main(["trace", "info", str(out), "--network", str(net_file)]) == 0
    assert "activation_sparsity" in capsys.readouterr().out
    syn = tmp_path / "s.h5"
    assert main(["trace", "synth", str(net_file), "--samples", "7", "--rate", "0.3",
                 "-o", str(syn)]) == 0
    assert load_trace(syn).n_samples == 7
    arrays = {"dense0": np.zeros((9, 3, 40)), "dense1": np.ones((9, 3, 40))}
    np.savez(tmp_path / "a.npz", **arrays)
    assert main(["trace", "import", str(tmp_path / "a.npz"), "--network", str(net_file),
                 "-o", str(tmp_path / "i.h5")]) == 0
    assert load_trace(tmp_path / "i.h5").layers["dense1"].all()


def test_footprint_and_evaluate(net_file, capsys):
    assert main(["footprint", str(net_file), "--json"]) == 0
    fp = json.loads(capsys.readouterr().out)
    assert fp["params"] == 64 * 40 + 40 * 40 + 40 * 10 + fp["gate_params"]
    assert main(["evaluate", str(net_file), "--data", "digits", "--samples", "30"]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["trace", "info", "{tmp}/missing.h5"], "missing.h5: file not found"),
    (["evaluate", "{net}", "--data", "cifar100"], "unknown dataset 'cifar100'"),
    (["trace", "synth", "{net}", "--rate", "2", "-o", "{tmp}/x.h5"], "rate must be within"),
    (["run", "{net}"], "expected a 'experiment' file"),
    (["footprint", "no-such-model"], "no such file or shipped model"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, net_file, capsys, argv, needle):
    argv = [a.format(tmp=tmp_path, net=net_file) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simsnn: error:") and needle in err[0]


def test_failed_run_keeps_previous_output(tmp_path, net_file):
    out = tmp_path / "out.json"
    out.write_text('{"previous": true}')
    exp = tmp_path / "exp.yaml"
    exp.write_text("""version: 1
kind: experiment
name: e
networks: [net.yaml]
trace: {source: file, paths: {tiny: broken.h5}}
""")
    (tmp_path / "broken.h5").write_bytes(b"\\x89HDF\\r\\n" + b"0" * 100)
    assert main(["run", str(exp), "--json", str(out)]) == 2
    assert out.read_text() == '{"previous": true}'
