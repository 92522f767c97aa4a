"""Hardware files: every shipped preset loads, and bad files name the file and the field."""
import copy
from pathlib import Path

import pytest
import yaml

from hwmodels import HardwareConfigError, build_levels, load_hardware, parse_hardware, presets
from hwmodels.docgen import format_bytes, hardware_schema_markdown
from hwmodels.loader import PRESETS_DIR
from hwmodels.spec import CacheSpec, HardwareSpec, ScratchpadSpec

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(PRESETS_DIR.glob("*.yaml"))
KiB, MiB = 2**10, 2**20


# ----------------------------------------------------------------------------- presets
def test_the_four_presets_are_shipped():
    assert {"zen4-epyc", "xeon-16c", "cortex-a72", "mcu-sram"} <= set(presets())
    assert len(SHIPPED) == len(presets())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_preset_loads(path):
    by_path = load_hardware(path)
    by_name = load_hardware(path.stem)
    assert by_path == by_name
    assert isinstance(by_path, HardwareSpec)
    assert by_path.name == path.stem
    assert by_path.version == 1 and by_path.kind == "hardware"
    assert by_path.sources and by_path.description
    text = path.read_text(encoding="utf-8")
    assert "Horowitz" in text
    # every energy and power figure carries a provenance
    for priced in _priced(by_path):
        assert priced.source.strip()
    # every level's geometry is consistent, and the cache model accepts it
    for m in by_path.memory:
        assert isinstance(m, (CacheSpec, ScratchpadSpec))
        if isinstance(m, CacheSpec):
            assert m.sets * m.line * m.ways == m.size
    assert [lv.name for lv in build_levels(by_path, 1)] == [m.name for m in by_path.memory]


def _priced(hw: HardwareSpec):
    e = hw.energy
    out = [*e.synop.values(), *e.mac.values(), e.neuron_update, e.gate_op,
           hw.dram.energy_per_byte]
    out += [p for p in (hw.cores.static_power, hw.dram.background) if p is not None]
    for m in hw.memory:
        out += [m.read, m.write] + ([m.leakage] if m.leakage is not None else [])
    return out


def _levels(name):
    return {m.name: m for m in load_hardware(name).memory}


def test_zen4_figures():
    hw = load_hardware("zen4-epyc")
    lv = _levels("zen4-epyc")
    assert hw.cores.count == 2 and hw.cores.frequency == 3.7e9 and hw.cores.simd_width == 16
    assert (lv["L1d"].size, lv["L1d"].ways, lv["L1d"].sets) == (32 * KiB, 8, 64)
    assert (lv["L2"].size, lv["L2"].ways, lv["L2"].sets) == (1 * MiB, 8, 2048)
    assert (lv["L3"].size, lv["L3"].ways, lv["L3"].sets) == (32 * MiB, 16, 32768)
    assert lv["L3"].shared and not lv["L2"].shared
    assert hw.dram.latency == pytest.approx(110e-9)


def test_xeon_l3_has_a_non_power_of_two_set_count():
    lv = _levels("xeon-16c")
    assert (lv["L1d"].size, lv["L1d"].ways, lv["L1d"].sets) == (48 * KiB, 12, 64)
    assert (lv["L2"].size, lv["L2"].ways, lv["L2"].sets) == (2 * MiB, 16, 2048)
    l3 = lv["L3"]
    assert (l3.size, l3.ways, l3.sets) == (300 * MiB, 20, 245760)
    assert l3.sets & (l3.sets - 1) != 0  # indexed by modulo, which is fine


def test_cortex_a72_and_mcu_figures():
    a72 = load_hardware("cortex-a72")
    lv = _levels("cortex-a72")
    assert a72.cores.count == 4 and a72.cores.frequency == 1.5e9 and a72.cores.simd_width == 4
    assert (lv["L1d"].sets, lv["L2"].sets, lv["L2"].shared) == (256, 1024, True)
    assert a72.dram.bandwidth < 12.8e9  # sustained below the LPDDR4-3200 x32 peak
    mcu = load_hardware("mcu-sram")
    assert [m.type for m in mcu.memory] == ["scratchpad"]
    assert mcu.cores.count == 1 and mcu.cores.frequency == 480e6
    assert 512 * KiB <= mcu.memory[0].size <= 1 * MiB


@pytest.mark.parametrize("name", ["zen4-epyc", "xeon-16c", "cortex-a72", "mcu-sram"])
def test_operation_energies_follow_horowitz(name):
    e = load_hardware(name).energy
    pj = 1e-12
    assert e.synop["fp32"].energy == pytest.approx(0.9 * pj)
    assert e.synop["fp16"].energy == pytest.approx(0.4 * pj)
    assert e.synop["int8"].energy == pytest.approx(0.03 * pj)
    assert e.mac["fp32"].energy == pytest.approx((3.7 + 0.9) * pj)
    assert e.mac["fp16"].energy == pytest.approx((1.1 + 0.4) * pj)
    assert e.mac["int8"].energy == pytest.approx((0.2 + 0.03) * pj)
    assert e.neuron_update.energy == pytest.approx((3.7 + 0.9 + 0.9) * pj)
    assert e.gate_op.energy == e.mac["fp32"].energy


# ----------------------------------------------------------------------------- bad files
BASE = {
    "version": 1, "kind": "hardware", "name": "tiny",
    "cores": {"count": 2, "frequency": "2 GHz"},
    "memory": [
        {"type": "cache", "name": "L1", "size": "32 KiB", "line": "64 B", "ways": 8,
         "latency": 4, "bandwidth": 64, "read": {"energy": "160 pJ", "source": "t"},
         "write": {"energy": "160 pJ", "source": "t"}},
        {"name": "L2", "size": "1 MiB", "ways": 16, "latency": 14, "bandwidth": 32,
         "shared": True, "read": {"energy": "800 pJ", "source": "t"},
         "write": {"energy": "800 pJ", "source": "t"}},
    ],
    "dram": {"bandwidth": "25.6 GB/s", "latency": "90 ns",
             "energy_per_byte": {"energy": "162.5 pJ", "source": "t"}},
    "energy": {
        "synop": {d: {"energy": "0.9 pJ", "source": "t"} for d in ("fp32", "fp16", "int8")},
        "mac": {d: {"energy": "4.6 pJ", "source": "t"} for d in ("fp32", "fp16", "int8")},
        "neuron_update": {"energy": "5.5 pJ", "source": "t"},
        "gate_op": {"energy": "4.6 pJ", "source": "t"},
    },
}


def _write(tmp_path, data) -> Path:
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _error(tmp_path, mutate) -> HardwareConfigError:
    data = copy.deepcopy(BASE)
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(HardwareConfigError) as info:
        load_hardware(path)
    err = info.value
    assert err.source == str(path)
    assert str(err).startswith(f"{path}: ")
    return err


def test_the_base_file_is_valid(tmp_path):
    hw = load_hardware(_write(tmp_path, BASE))
    assert hw.memory[0].sets == 64 and hw.memory[1].sets == 1024
    assert hw.cores.frequency == 2e9 and hw.dram.bandwidth == 25.6e9
    assert parse_hardware(copy.deepcopy(BASE)) == hw


def _set(*path_and_value):
    *path, key, value = path_and_value

    def mutate(d):
        for p in path:
            d = d[p]
        d[key] = value
    return mutate


def _drop(*path_and_key):
    *path, key = path_and_key

    def mutate(d):
        for p in path:
            d = d[p]
        del d[key]
    return mutate


@pytest.mark.parametrize("mutate, field, problem", [
    # impossible geometry
    (_set("memory", 0, "size", "32000 B"), "memory[0]", "not a multiple of line x ways"),
    (_set("memory", 0, "ways", 0), "memory[0].ways", "greater than 0"),
    (_set("memory", 1, "line", "128 B"), "memory", "one line size"),
    (_set("memory", 1, "name", "L1"), "memory", "unique"),
    # bandwidths and latencies
    (_set("memory", 0, "bandwidth", 0), "memory[0].bandwidth", "greater than 0"),
    (_set("memory", 1, "bandwidth", -8), "memory[1].bandwidth", "greater than 0"),
    (_set("dram", "bandwidth", "0 GB/s"), "dram.bandwidth", "greater than 0"),
    (_set("dram", "bandwidth", "-25.6 GB/s"), "dram.bandwidth", "greater than 0"),
    (_set("dram", "latency", "0 ns"), "dram.latency", "greater than 0"),
    # unknown fields and types
    (_set("frobnicate", 1), "frobnicate", "unknown field"),
    (_set("memory", 0, "assoc", 8), "memory[0].assoc", "unknown field"),
    (_set("cores", "threads", 2), "cores.threads", "unknown field"),
    (_set("memory", 1, "type", "tape"), "memory[1].type", "unknown memory level type"),
    (_set("memory", 0, "type", "scratchpad"), "memory[0].line", "unknown field"),
    # hierarchy order
    (lambda d: (d["memory"].append({**copy.deepcopy(d["memory"][0]), "name": "L3"})),
     "memory[2].shared", "below a shared level"),
    # wrong units
    (_set("cores", "frequency", "32 KiB"), "cores.frequency", "in bytes, expected hertz"),
    (_set("dram", "latency", "90 GHz"), "dram.latency", "in hertz, expected seconds"),
    (_set("memory", 0, "size", "32 KHz"), "memory[0].size", "expected bytes"),
    (_set("dram", "bandwidth", "25.6 GHz"), "dram.bandwidth", "expected bytes_per_second"),
    (_set("energy", "gate_op", "energy", "4.6 pW"), "energy.gate_op.energy",
     "expected joules"),
    (_set("cores", "frequency", "3.6 GHZ"), "cores.frequency", "unknown unit"),
    (_set("cores", "frequency", "fast"), "cores.frequency", "cannot parse"),
    # provenance and required fields
    (_drop("energy", "gate_op", "source"), "energy.gate_op.source", "required"),
    (_set("energy", "neuron_update", "source", ""), "energy.neuron_update.source",
     "at least 1"),
    (_drop("dram"), "dram", "required"),
    (_drop("memory", 0, "ways"), "memory[0].ways", "required"),
    (_set("version", 2), "version", "1"),
    (_set("kind", "network"), "kind", "hardware"),
    (_set("memory", {"L1": {}}), "memory", "expected a list"),
    (_set("cores", "cycles_per_tail", {7: 1.0}), "cores.cycles_per_tail",
     "must be among [8, 16, 32, 64]"),
    (_set("cores", "cycles_per_tail_dtype", {"fp16": {8: 1.0, 12: 2.0}}),
     "cores.cycles_per_tail_dtype", "got [12]"),
])
def test_bad_hardware_names_file_and_field(tmp_path, mutate, field, problem):
    err = _error(tmp_path, mutate)
    assert err.field == field
    assert problem in err.problem
    assert f": {field}: " in str(err)


def test_line_not_a_power_of_two(tmp_path):
    err = _error(tmp_path, _set("memory", 0, "line", "48 B"))
    assert err.field in ("memory[0]", "memory[0].line")
    assert "line size 48 B is not a power of two" in err.problem


def test_missing_energy_dtype(tmp_path):
    err = _error(tmp_path, _drop("energy", "synop", "int8"))
    assert err.field.startswith("energy")
    assert "synop" in str(err) and "int8" in str(err)


def test_unknown_energy_dtype(tmp_path):
    err = _error(tmp_path, _set("energy", "mac", "fp64", {"energy": "1 pJ", "source": "t"}))
    assert err.field.startswith("energy.mac.fp64")
    assert "'fp32', 'fp16' or 'int8'" in err.problem


def test_invalid_yaml_and_missing_files(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("cores: [1, 2\n", encoding="utf-8")
    with pytest.raises(HardwareConfigError, match="invalid YAML") as info:
        load_hardware(path)
    assert info.value.source == str(path)
    with pytest.raises(HardwareConfigError, match="zen4-epyc"):
        load_hardware("no-such-machine")


def test_parse_hardware_names_its_source():
    data = copy.deepcopy(BASE)
    data["cores"]["frequency"] = "1 MiB"
    with pytest.raises(HardwareConfigError) as info:
        parse_hardware(data, "inline")
    assert (info.value.source, info.value.field) == ("inline", "cores.frequency")


# ----------------------------------------------------------------------------- docs
def test_hardware_reference_is_current():
    current = (ROOT / "docs" / "hardware-schema.md").read_text(encoding="utf-8")
    assert current == hardware_schema_markdown(), \
        "regenerate: python -m hwmodels.docgen > docs/hardware-schema.md"


def test_hardware_reference_lists_models_and_presets():
    text = hardware_schema_markdown()
    for model in ("HardwareSpec", "CoreSpec", "CacheSpec", "ScratchpadSpec", "DramSpec",
                  "OperationEnergies", "Priced", "PricedPower"):
        assert f"### {model}\n" in text
    for name in presets():
        assert f"| `{name}` |" in text


def test_every_preset_is_described_in_the_guide():
    guide = (ROOT / "docs" / "hardware.md").read_text(encoding="utf-8")
    for name in presets():
        assert f"`{name}`" in guide


@pytest.mark.parametrize("n, text", [(32768, "32 KiB"), (300 * MiB, "300 MiB"),
                                     (2**30, "1 GiB"), (1000, "1000 B")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


def test_simsnn_check_validates_hardware_files(tmp_path, capsys):
    from simsnn.cli import main
    good = _write(tmp_path, BASE)
    assert main(["check", str(good), *map(str, SHIPPED)]) == 0
    assert f"{good}: ok (hardware)" in capsys.readouterr().out
    data = copy.deepcopy(BASE)
    data["memory"][0]["size"] = "32000 B"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: memory[0]: " in err and "not a multiple of line x ways" in err
    assert "Traceback" not in err


def test_parallel_figures_per_core_count():
    from hwmodels.spec import CoreSpec
    c = CoreSpec(count=16, frequency=3e9, parallel_efficiency=0.9, cycles_per_sync=100,
                 parallel_efficiency_cores={2: 0.8, 8: 0.6}, cycles_per_sync_cores={4: 500})
    assert [c.parallel_efficiency_at(n) for n in (2, 3, 4, 8, 16)] == [0.8, 0.8, 0.8, 0.6, 0.6]
    assert [c.cycles_per_sync_at(n) for n in (2, 4, 16)] == [500, 500, 500]
    assert CoreSpec(count=2, frequency=3e9).parallel_efficiency_at(2) == 1.0
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        CoreSpec(count=2, frequency=3e9, parallel_efficiency_cores={1: 0.5})
