"""Describe the host this runs on as a hardware file (``kind: hardware``).

Two halves:

* :func:`read_host` parses ``/sys`` and ``/proc`` (no timing): online CPUs, the CPU model,
  vendor and feature flags, the nominal clock, and the data/unified cache levels of cpu0.
* :func:`build_hardware` turns a :class:`HostInfo` plus the calibration report of
  :func:`hwmodels.calibrate.calibrate` into a YAML-ready dict in the schema of
  :mod:`hwmodels.spec`; :func:`detect_hardware` does both and writes the file atomically.

Every number in the output carries its provenance: "measured by simsnn hw detect (date)" for
calibrated figures, "default" for the documented defaults that are not measured, or the
literature reference (Horowitz, ISSCC 2014) for energies. See docs/hw-detect.md.
"""
from __future__ import annotations

import math
import os
import platform
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

__all__ = [
    "DetectError", "CacheInfo", "HostInfo", "read_host", "parse_cpu_list", "parse_size",
    "simd_lanes_fp32", "line_energy_pj", "build_hardware", "detect_hardware", "format_report",
    "write_hardware", "to_yaml",
]

KIB = 1024
MIB = 1024 * KIB

# A cache level larger than this is not believed as a cache of one core's path to DRAM (the
# largest per-die/per-CCX L3s shipping are 96-160 MiB); hypervisors report made-up sizes such as
# a 480 MiB L3. Such a level is kept in the file (it is what the host reports) but the DRAM
# latency is judged against the largest plausible level only.
PLAUSIBLE_CACHE_MAX = 192 * MIB

# Per-core LLC slice cap for the energy of shared levels (see line_energy_pj's callers): the
# largest per-core slice among the presets (xeon-16c: 300 MiB / 60 slices = 5 MiB).
LLC_SLICE_MAX = 5 * MIB


class DetectError(ValueError):
    """A /sys or /proc file exists but its content cannot be understood."""

    def __init__(self, path: str | Path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class CacheInfo:
    """One data or unified cache level of cpu0, as /sys reports it (sizes in bytes)."""

    level: int
    type: str                 # "Data" or "Unified"
    size: int
    ways: int | None
    line: int | None
    sets: int | None
    shared_cpu_list: str
    shared_cpus: int          # logical CPUs listed in shared_cpu_list
    index: str = ""           # the index* directory it was read from

    @property
    def shared(self) -> bool:
        """Listed as shared by more than one logical CPU."""
        return self.shared_cpus > 1

    @property
    def name(self) -> str:
        return f"L{self.level}d" if self.type == "Data" else f"L{self.level}"


@dataclass
class HostInfo:
    """What /sys and /proc say about the host."""

    cpus: list[int]                       # online logical CPUs
    model: str
    vendor: str
    machine: str                          # x86_64, aarch64, ...
    flags: frozenset[str] = frozenset()
    cpuinfo_mhz: float | None = None      # /proc/cpuinfo "cpu MHz" (first processor)
    max_freq_mhz: float | None = None     # cpufreq/cpuinfo_max_freq (kHz in the file)
    caches: list[CacheInfo] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.cpus)

    @property
    def nominal_mhz(self) -> float | None:
        """The cpufreq maximum if the host exposes it, else cpuinfo's "cpu MHz"."""
        return self.max_freq_mhz if self.max_freq_mhz else self.cpuinfo_mhz

    @property
    def simd_lanes(self) -> int:
        return simd_lanes_fp32(self.flags, self.machine)


# ---------------------------------------------------------------------------------------------
# parsing helpers

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGkmg]?)(?:i?B)?\s*$")
_SCALE = {"": 1, "K": KIB, "M": MIB, "G": 1024 * MIB}


def parse_size(text: str, path: str | Path = "<size>") -> int:
    """Bytes of a /sys cache size such as "48K", "2048K", "491520K", "32M" or "512"."""
    m = _SIZE_RE.match(text)
    if not m:
        raise DetectError(path, f"cannot parse cache size {text.strip()!r}")
    return int(m.group(1)) * _SCALE[m.group(2).upper()]


def parse_cpu_list(text: str, path: str | Path = "<cpu list>") -> list[int]:
    """CPUs of a range list such as "0-1,4" or "0,2-3" (empty text: no CPUs)."""
    text = text.strip()
    if not text:
        return []
    cpus: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise DetectError(path, f"cannot parse CPU list {text!r} (bad part {part!r})")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise DetectError(path, f"cannot parse CPU list {text!r} (range {part!r} runs "
                              f"backwards)")
        cpus.update(range(lo, hi + 1))
    return sorted(cpus)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise DetectError(path, "not UTF-8 text") from None
    except OSError as exc:
        if exc.errno in (2, 20, 21):  # ENOENT, ENOTDIR, EISDIR
            return None
        raise DetectError(path, f"cannot read: {exc.strerror or exc}") from None


def _int(path: Path, text: str, what: str, minimum: int = 0) -> int:
    try:
        v = int(text.strip())
    except ValueError:
        raise DetectError(path, f"expected an integer ({what}), got {text.strip()!r}") from None
    if v < minimum:
        raise DetectError(path, f"{what} {v} is below {minimum}")
    return v


def _cpuinfo_blocks(text: str, path: Path) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        if ":" not in line:
            raise DetectError(path, f"line {lineno} is not 'key : value': {line.strip()!r}")
        key, _, value = line.partition(":")
        cur[key.strip()] = value.strip()
    if cur:
        blocks.append(cur)
    return blocks


# A few ARM implementers and parts, for hosts whose cpuinfo has no "model name".
_ARM_IMPLEMENTERS = {"0x41": "ARM", "0x42": "Broadcom", "0x43": "Cavium", "0x46": "Fujitsu",
                     "0x48": "HiSilicon", "0x4e": "NVIDIA", "0x51": "Qualcomm",
                     "0x61": "Apple", "0xc0": "Ampere"}
_ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
              "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
              "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76", "0xd0c": "Neoverse-N1",
              "0xd0d": "Cortex-A77", "0xd40": "Neoverse-V1", "0xd41": "Cortex-A78",
              "0xd44": "Cortex-X1", "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2"}


def _parse_cpuinfo(text: str, path: Path) -> dict[str, Any]:
    blocks = _cpuinfo_blocks(text, path)
    first = next((b for b in blocks if "processor" in b), blocks[0] if blocks else {})
    trailer: dict[str, str] = {}
    for b in blocks:
        if "processor" not in b:
            trailer.update(b)
    out: dict[str, Any] = {}
    flags = first.get("flags", first.get("Features", ""))
    out["flags"] = frozenset(flags.split())
    vendor = first.get("vendor_id") or first.get("vendor") or ""
    impl = first.get("CPU implementer", "").lower()
    if not vendor and impl:
        vendor = _ARM_IMPLEMENTERS.get(impl, f"implementer {impl}")
    out["vendor"] = vendor
    model = first.get("model name") or first.get("cpu model") or first.get("Processor") or ""
    if not model and "CPU part" in first:
        part = first["CPU part"].lower()
        name = _ARM_PARTS.get(part)
        model = (f"{vendor} {name}" if name else f"{vendor or 'ARM'} CPU part {part}").strip()
    if not model:
        model = trailer.get("Model") or trailer.get("Hardware") or ""
    out["model"] = model or "unknown CPU"
    if "cpu MHz" in first:
        try:
            out["mhz"] = float(first["cpu MHz"])
        except ValueError:
            raise DetectError(path, f"'cpu MHz' is not a number: {first['cpu MHz']!r}") from None
        if not out["mhz"] > 0 or not math.isfinite(out["mhz"]):
            raise DetectError(path, f"'cpu MHz' must be positive, got {first['cpu MHz']!r}")
    if "vendor_id" in first or "flags" in first:
        out["machine"] = "x86_64"
    elif "CPU implementer" in first or "Features" in first:
        arch = first.get("CPU architecture", "8")
        out["machine"] = "aarch64" if arch.strip() in ("8", "AArch64") else "armv7l"
    return out


def read_host(root: str | Path = "/") -> HostInfo:
    """Parse the online CPUs, /proc/cpuinfo (first processor block), cpufreq and cpu0's
    data/unified caches under ``root`` (a fake tree in tests, "/" for the host).

    Missing files are tolerated (a cache-less board gives no caches); files whose content
    cannot be parsed raise :class:`DetectError` naming the file."""
    root = Path(root)
    cpu_dir = root / "sys/devices/system/cpu"
    notes: list[str] = []

    online_path = cpu_dir / "online"
    text = _read(online_path)
    if text is not None:
        cpus = parse_cpu_list(text, online_path)
        if not cpus:
            raise DetectError(online_path, "lists no online CPU")
    else:
        found = sorted(int(p.name[3:]) for p in cpu_dir.glob("cpu[0-9]*")
                       if p.name[3:].isdigit()) if cpu_dir.is_dir() else []
        cpus = found or [0]
        notes.append(f"{online_path} missing: {len(cpus)} CPU(s) from the cpuN directories"
                     if found else f"{online_path} missing and no cpuN directories: 1 CPU "
                     "assumed")

    cpuinfo_path = root / "proc/cpuinfo"
    text = _read(cpuinfo_path)
    info: dict[str, Any] = _parse_cpuinfo(text, cpuinfo_path) if text is not None else {}
    if text is None:
        notes.append(f"{cpuinfo_path} missing: CPU model and flags unknown")
    machine = info.get("machine")
    if machine is None:
        machine = platform.machine() if root == Path("/") else "unknown"

    max_mhz = None
    freq_path = cpu_dir / "cpu0/cpufreq/cpuinfo_max_freq"
    text = _read(freq_path)
    if text is not None:
        max_mhz = _int(freq_path, text, "maximum frequency in kHz", 1) / 1000.0

    caches: list[CacheInfo] = []
    cache_dir = cpu_dir / "cpu0/cache"
    index_dirs = sorted(cache_dir.glob("index[0-9]*"),
                        key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0
                        ) if cache_dir.is_dir() else []
    for d in index_dirs:
        ctype = _read(d / "type")
        ctype = ctype.strip() if ctype is not None else "Unified"
        if ctype not in ("Data", "Instruction", "Unified"):
            raise DetectError(d / "type", f"unknown cache type {ctype!r}")
        if ctype == "Instruction":
            continue
        level_text, size_text = _read(d / "level"), _read(d / "size")
        if level_text is None or size_text is None:
            notes.append(f"{d}: no level or size file, skipped")
            continue
        level = _int(d / "level", level_text, "cache level", 1)
        size = parse_size(size_text, d / "size")
        if size <= 0:
            raise DetectError(d / "size", "cache size is zero")
        vals: dict[str, int | None] = {}
        for key, fname in (("ways", "ways_of_associativity"), ("line", "coherency_line_size"),
                           ("sets", "number_of_sets")):
            t = _read(d / fname)
            vals[key] = _int(d / fname, t, fname.replace("_", " "), 0) if t is not None else None
            if vals[key] == 0:
                vals[key] = None   # some boards write 0 for "unknown" / fully associative
        shared_text = _read(d / "shared_cpu_list")
        shared_list = shared_text.strip() if shared_text is not None else ""
        shared_cpus = len(parse_cpu_list(shared_list, d / "shared_cpu_list")) or 1
        caches.append(CacheInfo(level=level, type=ctype, size=size, ways=vals["ways"],
                                line=vals["line"], sets=vals["sets"],
                                shared_cpu_list=shared_list, shared_cpus=shared_cpus,
                                index=d.name))
    caches.sort(key=lambda c: (c.level, c.type != "Data"))
    names = [c.name for c in caches]
    if len(set(names)) != len(names):
        raise DetectError(cache_dir, f"duplicate data/unified cache levels {names}")
    if not caches:
        notes.append(f"{cache_dir}: no data or unified caches reported")

    return HostInfo(cpus=cpus, model=info.get("model", "unknown CPU"),
                    vendor=info.get("vendor", ""), machine=machine,
                    flags=info.get("flags", frozenset()), cpuinfo_mhz=info.get("mhz"),
                    max_freq_mhz=max_mhz, caches=caches, notes=notes)


def simd_lanes_fp32(flags, machine: str = "") -> int:
    """fp32 lanes of the widest vector unit the flags advertise: 16 with avx512f, 8 with
    avx2/avx, 4 with sse/neon/asimd, else 1."""
    flags = {f.lower() for f in flags}
    machine = (machine or "").lower()
    if "avx512f" in flags:
        return 16
    if "avx2" in flags or "avx" in flags:
        return 8
    if flags & {"sse", "sse2", "neon", "asimd"}:
        return 4
    if machine in ("aarch64", "arm64"):   # Advanced SIMD is mandatory on AArch64
        return 4
    return 1


# ---------------------------------------------------------------------------------------------
# energies (Horowitz, ISSCC 2014, 45 nm): 64-bit SRAM read 10 pJ at 8 KB, 20 pJ at 32 KB,
# 100 pJ at 1 MB; log-log interpolation between the points, extrapolation beyond them.

_HOROWITZ = ((8 * KIB, 10.0), (32 * KIB, 20.0), (1 * MIB, 100.0))


def _word_energy_pj(size: float) -> tuple[float, str]:
    (s0, e0), (s1, e1), (s2, e2) = _HOROWITZ
    if size <= s1:
        lo, hi = (s0, e0), (s1, e1)
    else:
        lo, hi = (s1, e1), (s2, e2)
    alpha = math.log(hi[1] / lo[1]) / math.log(hi[0] / lo[0])
    ref = hi if size >= hi[0] else lo
    e = ref[1] * (size / ref[0]) ** alpha
    if size in (s0, s1, s2):
        how = f"{_fmt_size(size)} {e:.3g} pJ per 64-bit read"
    else:
        verb = "interpolated" if s0 <= size <= s2 else "extrapolated"
        how = (f"{_fmt_size(size)} {verb} {ref[1]:g} pJ x {size / ref[0]:.3g}^{alpha:.3f} = "
               f"{e:.3g} pJ per 64-bit read")
    return e, how


def line_energy_pj(size: float, line: int = 64) -> tuple[float, str]:
    """Energy of one line access of a ``size``-byte SRAM (Horowitz's 64-bit read energy x
    line/8 words) and the explanation string."""
    e, how = _word_energy_pj(size)
    words = max(1, line // 8)
    return e * words, f"{how} x {words} words per {line}-B line"


# ---------------------------------------------------------------------------------------------
# formatting

def _fmt_size(b: float) -> str:
    b = int(b)
    for unit, scale in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if b >= scale and b % scale == 0:
            return f"{b // scale} {unit}"
    return f"{b} B"


def _fmt_energy(pj: float) -> str:
    return f"{pj / 1000:.3g} nJ" if pj >= 1000 else f"{pj:.3g} pJ"


def _fmt_bw(bps: float) -> str:
    return f"{bps / 1e9:.3g} GB/s"


def _fmt_pct(x: float) -> str:
    return f"{100 * x:.1f} %"


# Energy section: the Horowitz ISSCC 2014 figures of the presets (xeon-vm-2c.yaml).
_H = "Horowitz ISSCC 2014, 45 nm"
ENERGY = {
    "synop": {
        "fp32": {"energy": "0.9 pJ", "source": f"{_H}: fp32 add"},
        "fp16": {"energy": "0.4 pJ", "source": f"{_H}: fp16 add"},
        "int8": {"energy": "0.03 pJ", "source": f"{_H}: int8 add"},
    },
    "mac": {
        "fp32": {"energy": "4.6 pJ", "source": f"{_H}: fp32 mult 3.7 pJ + fp32 add 0.9 pJ"},
        "fp16": {"energy": "1.5 pJ", "source": f"{_H}: fp16 mult 1.1 pJ + fp16 add 0.4 pJ"},
        "int8": {"energy": "0.23 pJ", "source": f"{_H}: int8 mult 0.2 pJ + int8 add 0.03 pJ"},
    },
    "neuron_update": {"energy": "5.5 pJ", "source": f"{_H}: fp32 mult 3.7 pJ (leak) + fp32 add "
                      "0.9 pJ (input) + fp32 compare priced as an add 0.9 pJ (threshold)"},
    "gate_op": {"energy": "4.6 pJ", "source": f"{_H}: one fp32 MAC = fp32 mult 3.7 pJ + fp32 "
                "add 0.9 pJ"},
}

SOURCES_REF = [
    "M. Horowitz, Computing's energy problem (and what we can do about it), ISSCC 2014, "
    "pp. 10-14 (45 nm, 0.9 V): int8 add 0.03 pJ, int32 add 0.1 pJ, fp16 add 0.4 pJ, fp32 add "
    "0.9 pJ, int8 mult 0.2 pJ, fp16 mult 1.1 pJ, fp32 mult 3.7 pJ; 64-bit SRAM read 8 KB "
    "10 pJ, 32 KB 20 pJ, 1 MB 100 pJ; DRAM 1.3-2.6 nJ per 64-bit access.",
    "Cache line energies: 8 x Horowitz's 64-bit read (a 64-byte line is eight 64-bit words), "
    "sizes between his points interpolated log-log (E ~ size^0.464 between 32 KB and 1 MB, "
    "^0.5 between 8 and 32 KB), extrapolated beyond them; shared levels priced per LLC slice "
    "(size / sharing CPUs, at most 5 MiB as in xeon-16c); writes priced as reads.",
    "Micron TN-40-07, Calculating Memory Power for DDR4 SDRAM (method for background vs. "
    "per-access power); DDR5 RDIMM background taken as ~2.5 W per DIMM (estimate).",
]


def default_mlp(host: HostInfo) -> int:
    x86 = host.machine in ("x86_64", "amd64", "i686", "i386") or "sse2" in host.flags
    return 16 if x86 and "avx512f" in host.flags else 8


def build_hardware(host: HostInfo, cal: dict, name: str = "host", *,
                   core_overrides: dict | None = None,
                   override_sources: list[str] | None = None) -> dict:
    """The YAML-ready hardware dict of ``host`` with the figures of ``cal`` (the report of
    :func:`hwmodels.calibrate.calibrate`). It validates with
    :func:`hwmodels.loader.parse_hardware`; unknown keys are never added (the schema forbids
    them): the calibration curve and notes go into ``description`` and the file's header.

    ``core_overrides`` replaces or adds ``cores`` fields measured elsewhere (e.g. a caller's
    calibration of its own kernels: ``cycles_per_event``, ``cycles_per_task``,
    ``cycles_per_synop_dtype``); ``override_sources`` are appended to ``sources`` to say where
    they come from, and the "default (not measured)" entry no longer lists them."""
    overrides = dict(core_overrides or {})
    date = cal.get("date", "unknown date")
    meas = f"measured by simsnn hw detect ({date})"
    fig = cal["figures"]
    clock_hz = fig["clock_hz"]["value"]
    freq_ghz = round(clock_hz / 1e9, 1)
    if freq_ghz <= 0:
        freq_ghz = round(clock_hz / 1e9, 3)
    f = freq_ghz * 1e9            # the file's frequency: every cycle figure uses it
    lanes = host.simd_lanes
    syn = fig["synop_fp32_per_s"]["value"]
    upd = fig["neuron_update_per_s"]["value"]
    cps = f * lanes / syn
    cpn = f * lanes / upd
    mlp = default_mlp(host)

    cores = {
        "count": host.count,
        "frequency": f"{freq_ghz:g} GHz",
        "simd_width": lanes,
        "cycles_per_synop": round(cps, 3),
        "cycles_per_neuron_update": round(cpn, 3),
        "cycles_per_event": 4.0,
        "cycles_per_gate_op": 1.0,
        "mlp": mlp,
    }

    levels_cal = {lv["name"]: lv for lv in cal.get("levels", [])}
    bw = {k: fig[k]["value"] for k in ("read_bw_1t", "read_bw_all", "triad_bw_all")}
    dram_bw = max(bw["read_bw_all"], bw["read_bw_1t"])
    memory: list[dict] = []
    line_sizes = {c.line for c in host.caches if c.line}
    line_default = 64 if not line_sizes else max(line_sizes)
    n = host.count
    last = len(host.caches) - 1
    seen_shared = False
    level_src: list[str] = []
    for i, c in enumerate(host.caches):
        line = line_default
        ways = c.ways
        if not ways and c.sets:
            ways = max(1, c.size // (line * c.sets))
        ways = ways or 1
        geometry_note = ""
        if c.size % (line * ways):
            geometry_note = (f"; /sys geometry ({c.ways} ways x {line} B) does not divide "
                             f"{c.size} B, ways set to 1")
            ways = 1
        shared = c.shared and (c.shared_cpus >= n or i == last)
        if seen_shared:
            shared = True
        seen_shared |= shared
        lv = levels_cal.get(c.name)
        if lv is None:
            raise ValueError(f"calibration report has no latency for cache level {c.name}")
        size, eff = c.size, lv.get("effective")
        if eff:  # the capacity this host really gets (a VM's share, noisy neighbours)
            size, lv = eff["size"], dict(lv, probe=eff["probe"], ns=eff["ns"])
            geometry_note += (
                f"; effective size {_fmt_size(size)} of the {_fmt_size(c.size)} /sys reports: "
                + (f"whole pages stream at the cache's rate up to {_fmt_size(size)} (the "
                   f"pointer chase jumps at {_fmt_size(eff['latency_knee'])}; latency from "
                   f"the {_fmt_size(eff['probe'])} probe)"
                   if "latency_knee" in eff else
                   f"the latency curve stays below half the DRAM latency up to "
                   f"{_fmt_size(size)} only"))
            if size % (line * ways):
                ways = 1
        latency = round(lv["ns"] * 1e-9 * f, 1)
        if i == last:
            bytes_s = dram_bw if shared else bw["read_bw_1t"]
            bandwidth = round(bytes_s / f, 2)
            bw_src = (f"bandwidth measured: {'all-thread' if shared else 'single-thread'} "
                      f"streaming read {_fmt_bw(bytes_s)} / {freq_ghz:g} GHz = {bandwidth:g} "
                      "B/cycle (a lower bound for this level: the stream comes from DRAM)")
        elif c.level == 1:
            bandwidth = float(2 * lanes * 4)
            bw_src = (f"bandwidth default (not measured): two {lanes * 32}-bit vector loads per "
                      f"cycle = {bandwidth:g} B/cycle")
        else:
            bandwidth = float(min(line, lanes * 4))
            bw_src = (f"bandwidth default (not measured): one {bandwidth:g}-B fill per cycle "
                      "into the level above")
        if shared and i != last:
            bandwidth *= n
            bw_src += f", x {n} cores (shared level: total)"
        lat_src = (f"latency measured: pointer chase at {_fmt_size(lv['probe'])} "
                   f"{lv['ns']:.3g} ns x {freq_ghz:g} GHz = {latency:g} cycles")
        if lv.get("capped"):
            lat_src += " (probe capped at the largest measured size)"
        if shared and c.size > LLC_SLICE_MAX:
            priced = min(c.size / max(1, c.shared_cpus), LLC_SLICE_MAX)
            what = f"one {_fmt_size(priced) if priced % KIB == 0 else f'{priced:.0f} B'} slice"
        else:
            priced, what = c.size, None
        e_pj, how = line_energy_pj(priced, line)
        if what:
            how = f"{what}: {how}; interconnect transport not included"
        memory.append({
            "type": "cache",
            "name": c.name,
            "size": _fmt_size(size),
            "line": f"{line} B",
            "ways": ways,
            "latency": latency,
            "bandwidth": bandwidth,
            "shared": shared,
            "read": {"energy": _fmt_energy(e_pj), "source": f"{_H}: {how}"},
            "write": {"energy": _fmt_energy(e_pj), "source": f"{_H}: as read ({how})"},
        })
        level_src.append(f"{c.name} ({_fmt_size(c.size)}, {c.ways} ways, shared_cpu_list "
                         f"{c.shared_cpu_list or '?'}): {lat_src}; {bw_src}{geometry_note}")

    dram_cal = cal["dram"]
    dram_ns = dram_cal["ns"]
    bound = "" if dram_cal.get("bound") == "measured" else " (a lower bound: the probe does "\
        "not exceed 2x the largest plausible cache)"
    dram = {
        "bandwidth": _fmt_bw(dram_bw),
        "latency": f"{dram_ns:.3g} ns",
        "energy_per_byte": {"energy": "162.5 pJ", "source": "Horowitz ISSCC 2014: DRAM 1.3 nJ "
                            "per 64-bit access (low end of 1.3-2.6 nJ, as for DDR4/DDR5) / 8 B"},
        "background": {"power": "2.5 W", "source": "estimate (not measured): about one DDR5 "
                       "RDIMM's ~2.5 W background (refresh + standby, Micron TN-40-07 method)"},
    }

    clock = fig["clock_hz"]
    nominal = host.nominal_mhz
    sources = [
        f"{meas}: core clock {clock['value'] / 1e9:.3f} GHz (estimate from a dependent "
        f"add/xor chain, spread {_fmt_pct(clock['spread'])}"
        + (f"; nominal {nominal:.0f} MHz" if nominal else "") + f"), written as {freq_ghz:g} "
        "GHz; every cycle figure below uses that frequency.",
        f"{meas}: cycles_per_synop = {freq_ghz:g} GHz x {lanes} lanes / "
        f"{syn / 1e9:.3g} G fp32 synops/s (event-driven accumulate, weights in L2, one thread, "
        f"spread {_fmt_pct(fig['synop_fp32_per_s']['spread'])}); fp16 "
        + ("not calibrated (no float16 on CPU in this numba)" if "synop_fp16_per_s" not in fig
           else f"{fig['synop_fp16_per_s']['value'] / 1e9:.3g} G synops/s") + ".",
        f"{meas}: cycles_per_neuron_update = {freq_ghz:g} GHz x {lanes} lanes / "
        f"{upd / 1e9:.3g} G LIF updates/s (one thread, spread "
        f"{_fmt_pct(fig['neuron_update_per_s']['spread'])}).",
        *(f"{meas}: {s}" for s in level_src),
        f"{meas}: DRAM latency {dram_ns:.3g} ns = pointer chase at "
        f"{_fmt_size(dram_cal['probe'])}{bound}; bandwidth {_fmt_bw(dram_bw)} = the higher of "
        f"the all-thread ({cal.get('threads', n)}) streaming read {_fmt_bw(bw['read_bw_all'])} "
        f"and the single-thread one {_fmt_bw(bw['read_bw_1t'])} (all-thread triad "
        f"{_fmt_bw(bw['triad_bw_all'])}).",
        f"/proc/cpuinfo and /sys/devices/system/cpu of this host ({date}): {host.vendor} "
        f"{host.model}, {host.count} online logical CPU(s), {host.machine}, {lanes} fp32 "
        "SIMD lanes from the flags.",
        "default (not measured): " + "; ".join(d for k, d in (
            ("cycles_per_event", "cycles_per_event 4 (schema default)"),
            ("cycles_per_gate_op", "cycles_per_gate_op 1 (schema default)"),
            ("mlp", f"mlp {mlp} (16 for x86 with AVX-512, else 8: L1D fill buffers, not "
                    "calibrated)"),
            ("static_power", "no core static power")) if k not in overrides)
        + "; DRAM background 2.5 W estimate.",
        *(override_sources or []),
        *SOURCES_REF,
    ]
    cores.update(overrides)

    noisy = cal.get("noisy", [])
    lat_cells = ", ".join(f"{_fmt_size(p['size'])} {p['ns']:.3g}" for p in
                          cal.get("latency_curve", []))
    description = (
        f"This host as measured by simsnn hw detect on {date}: {host.vendor} {host.model} "
        f"({host.machine}), {host.count} online logical CPU(s), "
        f"{' / '.join(f'{c.name} {_fmt_size(c.size)}' for c in host.caches) or 'no caches'}. "
        f"Clock {clock['value'] / 1e9:.3f} GHz (estimate), fp32 synops "
        f"{syn / 1e9:.3g} G/s, LIF updates {upd / 1e9:.3g} G/s, read bandwidth "
        f"{_fmt_bw(bw['read_bw_1t'])} one thread / {_fmt_bw(bw['read_bw_all'])} all threads, "
        f"DRAM latency {dram_ns:.3g} ns{' (lower bound)' if bound else ''}. "
        f"Pointer-chase latency (ns per load by working set): {lat_cells}. "
        f"Noisy figures (spread > 5 %): {', '.join(noisy) or 'none'}."
        + (f" Notes: {'; '.join(cal['notes'])}." if cal.get("notes") else "")
    )
    return {
        "version": 1,
        "kind": "hardware",
        "name": name,
        "description": description,
        "sources": sources,
        "cores": cores,
        "memory": memory,
        "dram": dram,
        # the bandwidths above are end-to-end streaming rates (a DRAM stream's rate already
        # includes its passage through the caches), so a task's levels overlap
        "transfers": "overlapped",
        "energy": ENERGY,
    }


def format_report(host: HostInfo, cal: dict) -> str:
    """The calibration report as plain text lines (the YAML header comment, the CLI's
    summary)."""
    fig = cal["figures"]
    out = [f"simsnn hw detect, {cal.get('date')}: {host.vendor} {host.model}, "
           f"{host.count} logical CPU(s), {'quick' if cal.get('quick') else 'full'} calibration, "
           f"median of {cal.get('repeat')} runs, {cal.get('elapsed_s', 0):.1f} s",
           f"nominal clock: {host.nominal_mhz or 0:.0f} MHz (/proc, /sys)", "",
           f"{'figure':<24} {'value':>16} {'spread':>8}"]
    for key, v in fig.items():
        val = v["value"]
        unit = v.get("unit", "")
        if unit == "Hz":
            s = f"{val / 1e9:.3f} GHz"
        elif unit == "B/s":
            s = _fmt_bw(val)
        elif unit == "1/s":
            s = f"{val / 1e9:.3f} G/s"
        else:
            s = f"{val:.4g} {unit}"
        flag = "  noisy" if key in cal.get("noisy", []) else ""
        out.append(f"{key:<24} {s:>16} {_fmt_pct(v['spread']):>8}{flag}")
    out += ["", f"{'working set':>12} {'ns/load':>9} {'spread':>8}"]
    for p in cal.get("latency_curve", []):
        flag = "  noisy" if f"latency@{_fmt_size(p['size'])}" in cal.get("noisy", []) else ""
        out.append(f"{_fmt_size(p['size']):>12} {p['ns']:>9.3f} {_fmt_pct(p['spread']):>8}"
                   f"{flag}")
    if cal.get("stream_curve"):
        out += ["", f"{'working set':>12} {'ns/line':>9} {'spread':>8}  (streaming read, "
                "whole pages in a random order)"]
        for p in cal["stream_curve"]:
            out.append(f"{_fmt_size(p['size']):>12} {p['ns_per_line']:>9.3f} "
                       f"{_fmt_pct(p['spread']):>8}")
    out += ["", "cache levels (latency from the probe at about half the capacity):"]
    for lv in cal.get("levels", []):
        out.append(f"  {lv['name']:<4} {_fmt_size(lv['size']):>10}: probe "
                   f"{_fmt_size(lv['probe'])}, {lv['ns']:.3g} ns"
                   + (" (capped)" if lv.get("capped") else ""))
    d = cal["dram"]
    out.append(f"  DRAM: probe {_fmt_size(d['probe'])}, {d['ns']:.3g} ns ({d['bound']})")
    out.append(f"noisy (spread > 5 %): {', '.join(cal.get('noisy', [])) or 'none'}")
    for note in list(host.notes) + list(cal.get("notes", [])):
        out.append(f"note: {note}")
    return "\n".join(out)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def to_yaml(hw: dict, header: str = "") -> str:
    """The hardware dict as YAML text, ``header`` lines as a leading comment block."""
    body = yaml.safe_dump(hw, sort_keys=False, width=100, allow_unicode=True)
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comment + body


def detect_hardware(out_path: str | Path | None = None, quick: bool = False,
                    root: str | Path = "/", *, name: str = "host",
                    repeat: int | None = None,
                    progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """Read the host, calibrate it, and return (hardware dict, calibration report); with
    ``out_path``, also write the YAML (atomically: a temp file in the same directory, then
    ``os.replace``) with the calibration table as a header comment. ``progress`` is passed
    to :func:`~hwmodels.calibrate.calibrate` (a callable taking one message)."""
    from hwmodels.calibrate import calibrate

    host = read_host(root)
    cal = calibrate(host, quick=quick, repeat=repeat, progress=progress)
    hw = build_hardware(host, cal, name=name)
    if out_path is not None:
        write_hardware(hw, out_path, format_report(host, cal))
    return hw, cal


def write_hardware(hw: dict, out_path: str | Path, header: str = "") -> Path:
    """Validate ``hw`` (:func:`hwmodels.loader.parse_hardware`) and write it as YAML with
    ``header`` as a leading comment, atomically (a temp file in the same directory, then
    ``os.replace``; parent directories are created). Returns the path."""
    from hwmodels.loader import parse_hardware
    path = Path(out_path)
    parse_hardware(hw, str(path))    # never write a file that does not load
    _write_atomic(path, to_yaml(hw, header))
    return path
