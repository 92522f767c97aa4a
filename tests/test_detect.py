"""Host detection: the /sys + /proc parser on fake trees, the hardware file it builds, and a tiny
calibration on the real host (sanity only: the figures of a noisy VM are not asserted)."""
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import hwmodels.calibrate as calibrate_mod
from hwmodels import HardwareConfigError, load_hardware, parse_hardware
from hwmodels.calibrate import (
    assign_latencies,
    calibrate,
    measure_latency,
    measure_stream,
    stream_knee,
)
from hwmodels.detect import (
    DetectError,
    build_hardware,
    detect_hardware,
    line_energy_pj,
    parse_cpu_list,
    parse_size,
    read_host,
    simd_lanes_fp32,
    write_hardware,
)

KiB, MiB = 2**10, 2**20

INTEL_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 2600.000
flags\t\t: fpu sse sse2 avx avx2 avx512f avx512_fp16 amx_tile
bogomips\t: 5200.00

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
cpu MHz\t\t: 2600.000
flags\t\t: fpu sse sse2

"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _cache(root: Path, index: int, level: int, ctype: str, size: str, ways: int, sets: int,
           shared: str, line: int = 64) -> None:
    d = root / f"sys/devices/system/cpu/cpu0/cache/index{index}"
    for name, value in (("level", level), ("type", ctype), ("size", size),
                        ("ways_of_associativity", ways), ("coherency_line_size", line),
                        ("number_of_sets", sets), ("shared_cpu_list", shared)):
        _write(d / name, f"{value}\n")


def intel_tree(root: Path) -> Path:
    """4 logical CPUs (2 cores x SMT), L1d/L1i/L2 per core, a 480 MiB L3 as a VM reports it."""
    _write(root / "sys/devices/system/cpu/online", "0-3\n")
    _write(root / "proc/cpuinfo", INTEL_CPUINFO)
    _write(root / "sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "3800000\n")
    _cache(root, 0, 1, "Data", "48K", 12, 64, "0,2")
    _cache(root, 1, 1, "Instruction", "32K", 8, 64, "0,2")
    _cache(root, 2, 2, "Unified", "2048K", 16, 2048, "0,2")
    _cache(root, 3, 3, "Unified", "491520K", 16, 491520, "0-3")
    return root


def arm_tree(root: Path) -> Path:
    _write(root / "sys/devices/system/cpu/online", "0-3\n")
    _write(root / "proc/cpuinfo", ARM_CPUINFO)
    _cache(root, 0, 1, "Data", "32K", 2, 256, "0")
    _cache(root, 1, 1, "Instruction", "48K", 3, 256, "0")
    _cache(root, 2, 2, "Unified", "1024K", 16, 1024, "0-3")
    return root


def cacheless_tree(root: Path) -> Path:
    _write(root / "sys/devices/system/cpu/online", "0\n")
    _write(root / "proc/cpuinfo", "processor\t: 0\nmodel name\t: Tiny MCU\n\n")
    return root


# ----------------------------------------------------------------------------- parsing
def test_cpu_lists_and_sizes():
    assert parse_cpu_list("0-1,4") == [0, 1, 4]
    assert parse_cpu_list("0,2-3\n") == [0, 2, 3]
    assert parse_cpu_list("") == []
    assert parse_size("48K") == 48 * KiB
    assert parse_size("2048K\n") == 2 * MiB
    assert parse_size("491520K") == 480 * MiB
    assert parse_size("32M") == 32 * MiB
    assert parse_size("512") == 512
    with pytest.raises(DetectError, match="bad part"):
        parse_cpu_list("0-x", "online")
    with pytest.raises(DetectError, match="backwards"):
        parse_cpu_list("3-1", "online")


def test_intel_like_tree(tmp_path):
    host = read_host(intel_tree(tmp_path))
    assert host.cpus == [0, 1, 2, 3] and host.count == 4
    assert host.vendor == "GenuineIntel"
    assert host.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert host.machine == "x86_64"
    assert "avx512f" in host.flags and "amx_tile" in host.flags    # the first block's flags
    assert host.cpuinfo_mhz == 2600.0 and host.max_freq_mhz == 3800.0
    assert host.nominal_mhz == 3800.0
    assert host.simd_lanes == 16
    assert [c.name for c in host.caches] == ["L1d", "L2", "L3"]      # no L1i
    l1, l2, l3 = host.caches
    assert (l1.size, l1.ways, l1.line, l1.sets) == (48 * KiB, 12, 64, 64)
    assert (l2.size, l2.ways) == (2 * MiB, 16)
    assert (l3.size, l3.ways, l3.sets) == (480 * MiB, 16, 491520)
    assert l1.shared_cpus == 2 and l1.shared        # SMT siblings
    assert l3.shared and l3.shared_cpus == 4 and l3.shared_cpu_list == "0-3"


def test_arm_like_tree(tmp_path):
    host = read_host(arm_tree(tmp_path))
    assert host.model == "ARM Cortex-A72"
    assert host.vendor == "ARM"
    assert host.machine == "aarch64"
    assert {"fp", "asimd"} <= host.flags
    assert host.simd_lanes == 4
    assert host.nominal_mhz is None
    assert [(c.name, c.size, c.shared) for c in host.caches] == [
        ("L1d", 32 * KiB, False), ("L2", 1 * MiB, True)]


def test_cacheless_tree(tmp_path):
    host = read_host(cacheless_tree(tmp_path))
    assert host.cpus == [0]
    assert host.caches == []
    assert host.model == "Tiny MCU"
    assert host.simd_lanes == 1
    assert any("no data or unified caches" in n for n in host.notes)


def test_missing_files_are_tolerated(tmp_path):
    (tmp_path / "sys/devices/system/cpu/cpu0").mkdir(parents=True)
    (tmp_path / "sys/devices/system/cpu/cpu1").mkdir()
    host = read_host(tmp_path)
    assert host.cpus == [0, 1] and host.caches == [] and host.model == "unknown CPU"
    assert host.notes


@pytest.mark.parametrize("rel, text, problem", [
    ("sys/devices/system/cpu/online", "0-x\n", "cannot parse CPU list"),
    ("sys/devices/system/cpu/cpu0/cache/index3/size", "lots\n", "cannot parse cache size"),
    ("sys/devices/system/cpu/cpu0/cache/index0/ways_of_associativity", "twelve\n",
     "expected an integer"),
    ("sys/devices/system/cpu/cpu0/cache/index2/level", "two\n", "expected an integer"),
    ("sys/devices/system/cpu/cpu0/cache/index2/type", "Victim\n", "unknown cache type"),
    ("sys/devices/system/cpu/cpu0/cache/index3/shared_cpu_list", "all\n", "CPU list"),
    ("sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "fast\n", "expected an integer"),
    ("proc/cpuinfo", "processor\t: 0\ncpu MHz\t\t: fast\n", "'cpu MHz' is not a number"),
    ("proc/cpuinfo", "processor\t: 0\nthis line has no colon\n", "is not 'key : value'"),
])
def test_garbled_file_raises_detect_error_naming_it(tmp_path, rel, text, problem):
    intel_tree(tmp_path)
    _write(tmp_path / rel, text)
    with pytest.raises(DetectError, match=problem) as exc:
        read_host(tmp_path)
    assert isinstance(exc.value, ValueError)
    assert exc.value.path == str(tmp_path / rel)
    assert str(tmp_path / rel) in str(exc.value)


def test_simd_lanes():
    assert simd_lanes_fp32({"sse2", "avx2", "avx512f"}, "x86_64") == 16
    assert simd_lanes_fp32({"sse2", "avx2"}, "x86_64") == 8
    assert simd_lanes_fp32({"sse", "avx"}, "x86_64") == 8
    assert simd_lanes_fp32({"sse", "sse2"}, "x86_64") == 4
    assert simd_lanes_fp32({"fp", "asimd"}, "aarch64") == 4
    assert simd_lanes_fp32({"neon"}, "armv7l") == 4
    assert simd_lanes_fp32(set(), "aarch64") == 4       # Advanced SIMD is architectural
    assert simd_lanes_fp32(set(), "riscv64") == 1


@pytest.mark.parametrize("size, pj", [
    (32 * KiB, 160), (48 * KiB, 193), (512 * KiB, 580), (1 * MiB, 800), (2 * MiB, 1103),
    (4 * MiB, 1520), (5 * MiB, 1690), (8 * KiB, 80)])
def test_line_energies_match_the_presets(size, pj):
    e, how = line_energy_pj(size)
    assert e == pytest.approx(pj, rel=0.005)
    assert "x 8 words per 64-B line" in how


# ----------------------------------------------------------------------------- building
def fake_cal(host, clock=3.0e9, date="2026-11-28", curve_max=256 * MiB) -> dict:
    """A calibration report as calibrate() returns it, with made-up but plausible figures."""
    sizes, s = [], 8 * KiB
    while s <= curve_max:
        sizes.append(s)
        s *= 2
    ns = {8 * KiB: 1.5, 16 * KiB: 1.5, 32 * KiB: 4.0}
    curve = [{"size": sz, "ns": ns.get(sz, 5.0 if sz <= MiB else 30.0 if sz <= 64 * MiB
                                        else 110.0), "spread": 0.02, "loads": 1000}
             for sz in sizes]
    levels, dram, notes = assign_latencies(host, curve)

    def fig(v, unit, spread=0.01):
        return {"value": v, "unit": unit, "spread": spread, "what": "test"}
    return {
        "date": date, "quick": True, "repeat": 3, "threads": host.count,
        "figures": {
            "clock_hz": fig(clock, "Hz"),
            "read_bw_1t": fig(12e9, "B/s"), "triad_bw_1t": fig(11e9, "B/s"),
            "read_bw_all": fig(20e9, "B/s", 0.08), "triad_bw_all": fig(18e9, "B/s"),
            "synop_fp32_per_s": fig(24e9, "1/s"), "neuron_update_per_s": fig(6e9, "1/s"),
        },
        "latency_curve": curve, "levels": levels, "dram": dram,
        "noisy": ["read_bw_all"], "notes": notes, "elapsed_s": 1.0,
    }


def test_assign_latencies_caps_the_hypervisor_l3(tmp_path):
    host = read_host(intel_tree(tmp_path))
    cal = fake_cal(host, curve_max=64 * MiB)
    by = {lv["name"]: lv for lv in cal["levels"]}
    assert by["L1d"]["probe"] == 16 * KiB and not by["L1d"]["capped"]
    assert by["L2"]["probe"] == 1 * MiB
    assert by["L3"]["probe"] == 64 * MiB and by["L3"]["capped"]
    assert any("capped" in n and "L3" in n for n in cal["notes"])
    assert any("hypervisor" in n for n in cal["notes"])
    # the implausible 480 MiB L3 is ignored when judging DRAM: 64 MiB > 2 x 2 MiB
    assert cal["dram"]["bound"] == "measured" and cal["dram"]["probe"] == 64 * MiB


def test_dram_is_a_lower_bound_when_the_sets_do_not_outgrow_the_caches(tmp_path):
    host = read_host(arm_tree(tmp_path))
    cal = fake_cal(host, curve_max=2 * MiB)     # L2 is 1 MiB: 2 MiB is not more than 2x
    assert cal["dram"]["bound"] == "lower bound"
    assert any("lower bound" in n for n in cal["notes"])


@pytest.mark.parametrize("tree", [intel_tree, arm_tree, cacheless_tree])
def test_build_hardware_validates(tmp_path, tree):
    host = read_host(tree(tmp_path))
    cal = fake_cal(host)
    hw = build_hardware(host, cal, name="test-host")
    spec = parse_hardware(hw)
    assert spec.name == "test-host"
    assert spec.cores.count == host.count
    assert spec.cores.frequency == pytest.approx(3.0e9)
    lanes = host.simd_lanes
    assert spec.cores.simd_width == lanes
    # cycles per SIMD instruction = clock x lanes / synops per second
    assert spec.cores.cycles_per_synop == pytest.approx(3.0e9 * lanes / 24e9, rel=1e-3)
    assert spec.cores.cycles_per_neuron_update == pytest.approx(3.0e9 * lanes / 6e9, rel=1e-3)
    assert [m.name for m in spec.memory] == [c.name for c in host.caches]
    assert spec.dram.bandwidth == pytest.approx(20e9, rel=0.01)
    assert spec.dram.latency == pytest.approx(110e-9, rel=0.01)
    assert spec.dram.energy_per_byte.energy == pytest.approx(162.5e-12)
    assert all(s.strip() for s in hw["sources"])
    assert any(s.startswith("measured by simsnn hw detect (2026-11-28)") for s in hw["sources"])
    assert "Horowitz" in " ".join(hw["sources"])
    assert "8 KiB 1.5" in hw["description"]          # the latency curve is kept
    for m in spec.memory:
        assert m.read.source and m.write.source and m.read.energy == m.write.energy


def test_build_hardware_levels_on_the_intel_tree(tmp_path):
    host = read_host(intel_tree(tmp_path))
    spec = parse_hardware(build_hardware(host, fake_cal(host)))
    l1, l2, l3 = spec.memory
    assert spec.cores.mlp == 16                      # x86 with AVX-512
    assert (l1.size, l1.ways, l1.line) == (48 * KiB, 12, 64)
    assert l1.latency == pytest.approx(1.5e-9 * 3e9)  # the 16 KiB probe, in cycles
    assert l1.bandwidth == 128 and l2.bandwidth == 64  # documented defaults for 16 lanes
    assert not l1.shared and not l2.shared            # SMT pairs: modelled as private
    # the hypervisor's 480 MiB L3: at half of it the curve reads DRAM (110 ns), and it stays
    # below half of that up to 64 MiB: the L3 is modelled at that effective size, its latency
    # probed at half of it (32 MiB: 30 ns)
    assert l3.shared and l3.size == 64 * MiB and l3.latency == pytest.approx(30e-9 * 3e9)
    assert l3.bandwidth == pytest.approx(20e9 / 3e9, rel=0.01)   # measured, all threads
    assert l1.read.energy == pytest.approx(193e-12, rel=0.01)
    assert l3.read.energy == pytest.approx(1.69e-9, rel=0.01)   # one 5 MiB slice


def test_an_l3_whose_curve_says_less_gets_its_effective_size(tmp_path):
    host = read_host(intel_tree(tmp_path))
    cal = fake_cal(host)
    by = {lv["name"]: lv for lv in cal["levels"]}
    assert by["L3"]["effective"] == {"size": 64 * MiB, "probe": 32 * MiB, "ns": 30.0,
                                     "spread": 0.02}
    assert "L1d" not in [n for n, lv in by.items() if "effective" in lv]
    assert "L2" not in [n for n, lv in by.items() if "effective" in lv]
    hw = build_hardware(host, cal)
    assert any("effective size 64 MiB of the 480 MiB" in s for s in hw["sources"])
    # a curve that reaches DRAM only beyond half the L3: the /sys size stands
    for p in cal["latency_curve"]:
        p["ns"] = p["ns"] if p["size"] <= 64 * MiB else 30.0
    cal["latency_curve"].append({"size": 1024 * MiB, "ns": 110.0, "spread": 0.02, "loads": 1})
    levels, _, _ = assign_latencies(host, cal["latency_curve"])
    assert not any("effective" in lv for lv in levels)


def _stream(knee: int, top: int = 256 * MiB) -> list[dict]:
    """A streaming-read curve: 1.5 ns per line up to ``knee``, DRAM's 6 ns beyond."""
    sizes, s = [], 1 * MiB
    while s <= top:
        sizes += [s, s * 3 // 2]
        s *= 2
    return [{"size": sz, "ns_per_line": 1.5 if sz <= knee else 6.0, "spread": 0.02}
            for sz in sizes if sz <= top]


def test_stream_knee_reads_the_capacity_off_a_streaming_curve():
    assert stream_knee(_stream(16 * MiB), 512 * KiB, 4 * MiB) == 16 * MiB
    assert stream_knee(_stream(24 * MiB), 512 * KiB, 4 * MiB) == 24 * MiB
    # a third of the way to DRAM still counts as the cache; half of it does not
    curve = _stream(8 * MiB)
    for p in curve:
        if p["size"] == 12 * MiB:
            p["ns_per_line"] = 2.9
    assert stream_knee(curve, 512 * KiB, 4 * MiB) == 12 * MiB
    curve[[p["size"] for p in curve].index(12 * MiB)]["ns_per_line"] = 3.9
    assert stream_knee(curve, 512 * KiB, 4 * MiB) == 8 * MiB
    # a flat curve (the read limited by the core) or too few points: no answer
    flat = [dict(p, ns_per_line=2.0) for p in _stream(8 * MiB)]
    assert stream_knee(flat, 512 * KiB, 4 * MiB) is None
    assert stream_knee(_stream(8 * MiB)[:2], 256 * KiB, 4 * MiB) is None


def test_a_latency_knee_below_the_streamed_capacity_keeps_the_streamed_one(tmp_path):
    host = read_host(intel_tree(tmp_path))          # L3 480 MiB as /sys reports
    cal = fake_cal(host)                             # latency knee at 64 MiB
    # whole pages stream at the cache's rate up to 96 MiB: the L3 is modelled at that
    levels, _, notes = assign_latencies(host, cal["latency_curve"], _stream(96 * MiB, 1024 * MiB))
    l3 = {lv["name"]: lv for lv in levels}["L3"]
    assert l3["effective"] == {"size": 96 * MiB, "probe": 32 * MiB, "ns": 30.0,
                               "spread": 0.02, "latency_knee": 64 * MiB}
    assert any("stream at the cache's rate up to 96 MiB" in n for n in notes)
    cal["levels"] = levels
    spec = parse_hardware(build_hardware(host, cal))
    assert spec.memory[2].size == 96 * MiB and spec.memory[2].latency == pytest.approx(90.0)
    # a stream whose knee is below the latency knee changes nothing
    levels, _, _ = assign_latencies(host, cal["latency_curve"], _stream(16 * MiB))
    assert {lv["name"]: lv for lv in levels}["L3"]["effective"]["size"] == 64 * MiB
    # nor does one that cannot tell
    flat = [dict(p, ns_per_line=2.0) for p in _stream(16 * MiB)]
    levels, _, _ = assign_latencies(host, cal["latency_curve"], flat)
    assert "latency_knee" not in {lv["name"]: lv for lv in levels}["L3"]["effective"]


def test_measure_stream_is_per_line_and_page_rounded():
    out = measure_stream([64 * KiB, 256 * KiB + 100], repeat=2, target_s=0.005)
    assert [p["size"] for p in out] == [64 * KiB, 256 * KiB]
    assert all(0 < p["ns_per_line"] < 1000 and p["spread"] >= 0 for p in out)


def test_arm_defaults(tmp_path):
    host = read_host(arm_tree(tmp_path))
    spec = parse_hardware(build_hardware(host, fake_cal(host)))
    assert spec.cores.mlp == 8 and spec.cores.simd_width == 4
    assert spec.memory[1].shared


def test_core_overrides_from_elsewhere(tmp_path):
    host = read_host(intel_tree(tmp_path))
    hw = build_hardware(host, fake_cal(host), core_overrides={
        "cycles_per_event": 7.5, "mlp": 12},
        override_sources=["measured by the caller: event cost and memory-level parallelism"])
    spec = parse_hardware(hw)
    assert spec.cores.cycles_per_event == 7.5 and spec.cores.mlp == 12
    default = next(x for x in hw["sources"] if x.startswith("default (not measured)"))
    assert "cycles_per_event" not in default and "mlp" not in default
    assert "cycles_per_gate_op 1" in default
    assert "measured by the caller: event cost and memory-level parallelism" in hw["sources"]
    out = write_hardware(hw, tmp_path / "sub" / "h.yaml", "line one\nline two")
    assert out.read_text().startswith("# line one\n# line two\n")
    assert load_hardware(out) == spec
    bad = dict(hw, cores=dict(hw["cores"], bogus=1))
    with pytest.raises(HardwareConfigError, match="bogus"):
        write_hardware(bad, tmp_path / "bad.yaml")
    assert not (tmp_path / "bad.yaml").exists()


def test_yaml_round_trip_and_atomic_write(tmp_path, monkeypatch):
    root = intel_tree(tmp_path / "root")
    monkeypatch.setattr(calibrate_mod, "calibrate",
                        lambda host, quick=False, repeat=None, progress=None: fake_cal(host))
    out = tmp_path / "configs" / "hardware" / "host.yaml"
    hw, cal = detect_hardware(out, quick=True, root=root)
    assert out.exists() and sorted(p.name for p in out.parent.iterdir()) == ["host.yaml"]
    text = out.read_text()
    assert text.startswith("# simsnn hw detect, 2026-11-28")
    assert re.search(r"^#\s+256 MiB\s+110\.000", text, re.M)   # the latency table, in the header
    assert yaml.safe_load(text) == hw
    spec = load_hardware(out)
    assert spec == parse_hardware(hw)
    assert cal["dram"]["bound"] == "measured"
    # rewriting replaces the file in place
    detect_hardware(out, quick=True, root=root, name="again")
    assert load_hardware(out).name == "again"


# ----------------------------------------------------------------------------- the real host
def test_pointer_chase_sees_the_memory_hierarchy():
    small, large = measure_latency([16 * KiB, 64 * MiB], repeat=2, target_s=0.01)
    for p in (small, large):
        assert math.isfinite(p["ns"]) and p["ns"] > 0 and p["spread"] >= 0
    assert small["ns"] < large["ns"]


def test_tiny_calibration_of_the_real_host():
    host = read_host()
    said = []
    cal = calibrate(host, quick=True, repeat=2, max_size=1 * MiB, stream_bytes=3 * MiB,
                    target_s=0.003, progress=said.append)
    assert len(said) == 6 and "8 KiB to 1 MiB" in said[2]
    for name, f in cal["figures"].items():
        assert math.isfinite(f["value"]) and f["value"] > 0, name
        assert math.isfinite(f["spread"]) and f["spread"] >= 0, name
    assert [p["size"] for p in cal["latency_curve"]][0] == 8 * KiB
    assert all(math.isfinite(p["ns"]) and p["ns"] > 0 for p in cal["latency_curve"])
    assert {lv["name"] for lv in cal["levels"]} == {c.name for c in host.caches}
    assert set(cal["noisy"]) <= set(cal["figures"]) | {
        f"latency@{s}" for s in ("8 KiB", "16 KiB", "32 KiB", "64 KiB", "128 KiB", "256 KiB",
                                 "512 KiB", "1 MiB")}
    assert any("fp16" in n for n in cal["notes"])
    spec = parse_hardware(build_hardware(host, cal))
    assert spec.cores.frequency > 0


def test_hwmodels_detect_does_not_import_simsnn():
    code = ("import sys, hwmodels.detect, hwmodels.calibrate; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'simsnn']")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_quick_detect_of_the_real_host(tmp_path):
    out = tmp_path / "host.yaml"
    hw, cal = detect_hardware(out, quick=True)
    assert load_hardware(out).name == "host"
    assert cal["elapsed_s"] < 60
