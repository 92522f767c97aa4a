import subprocess
import sys
from pathlib import Path

import pytest

from simsnn.cli import main
from simsnn.config.loader import load_config
from simsnn.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml")) + sorted(
    (ROOT / "simsnn" / "models").glob("*.yaml"))

GOOD = """version: 1
kind: network
name: t
family: dense
num_classes: 3
input: {shape: [4]}
layers:
  - {type: dense, units: 5}
  - {type: dense, units: 3, spiking: false}
"""


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_every_shipped_config_loads(path):
    assert main(["check", str(path)]) == 0


def write(tmp_path, text, name="c.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("mutation,field,problem", [
    (("units: 5", "units: 5, colour: red"), "layers[0].colour", "unknown field"),
    (("units: 5", "units: -5"), "layers[0].units", "greater than 0"),
    (("family: dense", "family: wide"), "family", "'dense'"),
    (("version: 1", "version: 7"), "version", "Input should be 1"),
    (("units: 3, spiking", "units: 4, spiking"), "", "num_classes is 3"),
    (("family: dense", "family: gated"), "", "needs a 'gate' section"),
    (("type: dense, units: 5", "type: dens, units: 5"), "layers[0]", "does not match"),
])
def test_bad_network_configs_name_field(tmp_path, mutation, field, problem):
    p = write(tmp_path, GOOD.replace(*mutation))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert exc.value.field == field
    assert problem in exc.value.problem
    assert str(p) in str(exc.value)


def test_missing_version_kind_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="version"):
        load_config(write(tmp_path, GOOD.replace("version: 1\n", "")))
    with pytest.raises(ConfigError, match="unknown kind"):
        load_config(write(tmp_path, GOOD.replace("kind: network", "kind: toaster")))
    with pytest.raises(ConfigError, match="invalid YAML: line 3"):
        load_config(write(tmp_path, "version: 1\nkind: [network\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    p = write(tmp_path, GOOD.replace("name: t", "name: !!python/object/apply:os.system [echo]"))
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(p)


def test_shape_errors_are_config_errors(tmp_path):
    from simsnn import load_network
    bad = GOOD.replace("input: {shape: [4]}", "input: {shape: [1, 4, 4]}")
    with pytest.raises(ConfigError, match="flatten"):
        load_network(write(tmp_path, bad))
    bad = GOOD.replace("family: dense", "family: gated").replace(
        "layers:", "gate: {groups: 9, shared: 0.5}\nlayers:")
    with pytest.raises(ConfigError, match="specialized units for 9 groups"):
        load_network(write(tmp_path, bad))


def test_missing_weights_file_is_config_error(tmp_path):
    from simsnn import load_network
    with pytest.raises(ConfigError, match="weights file .* not found"):
        load_network(write(tmp_path, GOOD + "weights: missing.npz\n"))


def test_cli_prints_one_line_and_exits_2(tmp_path):
    p = write(tmp_path, GOOD.replace("units: 5", "units: five"))
    r = subprocess.run([sys.executable, "-m", "simsnn.cli", "check", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "layers[0].units" in lines[0] and str(p) in lines[0]
