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
import tempfile
from pathlib import Path
from typing import Callable

import yaml

from hwmodels.hostinfo import (
    KIB,
    MIB,
    CacheInfo,
    DetectError,
    HostInfo,
    fmt_size,
    parse_cpu_list,
    parse_size,
    read_host,
    simd_lanes_fp32,
)

# Per-core LLC slice cap for the energy of shared levels (see line_energy_pj's callers): the
# largest per-core slice among the presets (xeon-16c: 300 MiB / 60 slices = 5 MiB).
LLC_SLICE_MAX = 5 * MIB

__all__ = [
    "DetectError", "CacheInfo", "HostInfo", "read_host", "parse_cpu_list", "parse_size",
    "simd_lanes_fp32", "line_energy_pj", "build_hardware", "detect_hardware", "format_report",
    "write_hardware", "to_yaml",
]

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
        how = f"{fmt_size(size)} {e:.3g} pJ per 64-bit read"
    else:
        verb = "interpolated" if s0 <= size <= s2 else "extrapolated"
        how = (f"{fmt_size(size)} {verb} {ref[1]:g} pJ x {size / ref[0]:.3g}^{alpha:.3f} = "
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
                f"; effective size {fmt_size(size)} of the {fmt_size(c.size)} /sys reports: "
                + (f"whole pages stream at the cache's rate up to {fmt_size(size)} (the "
                   f"pointer chase jumps at {fmt_size(eff['latency_knee'])}; latency from "
                   f"the {fmt_size(eff['probe'])} probe)"
                   if "latency_knee" in eff else
                   f"the latency curve stays below half the DRAM latency up to "
                   f"{fmt_size(size)} only"))
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
        lat_src = (f"latency measured: pointer chase at {fmt_size(lv['probe'])} "
                   f"{lv['ns']:.3g} ns x {freq_ghz:g} GHz = {latency:g} cycles")
        if lv.get("capped"):
            lat_src += " (probe capped at the largest measured size)"
        if shared and c.size > LLC_SLICE_MAX:
            priced = min(c.size / max(1, c.shared_cpus), LLC_SLICE_MAX)
            what = f"one {fmt_size(priced) if priced % KIB == 0 else f'{priced:.0f} B'} slice"
        else:
            priced, what = c.size, None
        e_pj, how = line_energy_pj(priced, line)
        if what:
            how = f"{what}: {how}; interconnect transport not included"
        memory.append({
            "type": "cache",
            "name": c.name,
            "size": fmt_size(size),
            "line": f"{line} B",
            "ways": ways,
            "latency": latency,
            "bandwidth": bandwidth,
            "shared": shared,
            "read": {"energy": _fmt_energy(e_pj), "source": f"{_H}: {how}"},
            "write": {"energy": _fmt_energy(e_pj), "source": f"{_H}: as read ({how})"},
        })
        level_src.append(f"{c.name} ({fmt_size(c.size)}, {c.ways} ways, shared_cpu_list "
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
        f"{fmt_size(dram_cal['probe'])}{bound}; bandwidth {_fmt_bw(dram_bw)} = the higher of "
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
    lat_cells = ", ".join(f"{fmt_size(p['size'])} {p['ns']:.3g}" for p in
                          cal.get("latency_curve", []))
    description = (
        f"This host as measured by simsnn hw detect on {date}: {host.vendor} {host.model} "
        f"({host.machine}), {host.count} online logical CPU(s), "
        f"{' / '.join(f'{c.name} {fmt_size(c.size)}' for c in host.caches) or 'no caches'}. "
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
        flag = "  noisy" if f"latency@{fmt_size(p['size'])}" in cal.get("noisy", []) else ""
        out.append(f"{fmt_size(p['size']):>12} {p['ns']:>9.3f} {_fmt_pct(p['spread']):>8}"
                   f"{flag}")
    if cal.get("stream_curve"):
        out += ["", f"{'working set':>12} {'ns/line':>9} {'spread':>8}  (streaming read, "
                "whole pages in a random order)"]
        for p in cal["stream_curve"]:
            out.append(f"{fmt_size(p['size']):>12} {p['ns_per_line']:>9.3f} "
                       f"{_fmt_pct(p['spread']):>8}")
    out += ["", "cache levels (latency from the probe at about half the capacity):"]
    for lv in cal.get("levels", []):
        out.append(f"  {lv['name']:<4} {fmt_size(lv['size']):>10}: probe "
                   f"{fmt_size(lv['probe'])}, {lv['ns']:.3g} ns"
                   + (" (capped)" if lv.get("capped") else ""))
    d = cal["dram"]
    out.append(f"  DRAM: probe {fmt_size(d['probe'])}, {d['ns']:.3g} ns ({d['bound']})")
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

