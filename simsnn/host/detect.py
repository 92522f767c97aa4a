"""``simsnn hw detect``: this host's hardware profile. hwmodels detects what any program sees
(caches from /sys, latencies, bandwidths, the clock: hwmodels.detect and hwmodels.calibrate);
this module adds the measured program's own costs (simsnn.host.calibration) in pooled rounds
and writes one hardware file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass
class Detection:
    """A detected profile: the hardware dict, the header comment of its file (the
    calibration tables), and the figures that were still noisy."""

    hardware: dict
    header: str
    noisy: list[str]


def detect_profile(*, quick: bool = False, rounds: int = 3, name: str = "host",
                   progress: Callable[[str], None] | None = None) -> Detection:
    """Detect this host (hwmodels) and calibrate the measured program's kernels in
    ``rounds`` rounds sharing one pool of timings (each figure from its timings' best over
    the rounds, as validation does); the program figures still moving in the last round are
    reported noisy."""
    from hwmodels.calibrate import calibrate
    from hwmodels.detect import build_hardware, default_mlp, format_report
    from hwmodels.hostinfo import read_host
    from hwmodels.loader import parse_hardware
    from simsnn.host.calibrate_memory import stall_levels
    from simsnn.host.calibration import (
        best_program,
        calibrate_program,
        program_overrides,
        unsettled,
    )
    from simsnn.host.timing import pooled_timings
    host = read_host()
    cal = calibrate(host, quick=quick, progress=progress)
    f = round(cal["figures"]["clock_hz"]["value"] / 1e9, 1) * 1e9  # the file's frequency
    if progress:
        progress("calibrating the measured program's kernels")
    data = [c for c in host.caches if c.type != "Instruction"]
    private = [c.size for c in data if not c.shared]
    largest = max((c.size for c in data), default=32 << 20)
    # the profile's cache levels (effective sizes, latencies) for their stall benchmarks
    levels = stall_levels(parse_hardware(build_hardware(host, cal, name=name)))
    progs: list[dict] = []
    with pooled_timings({}):
        for _ in range(1 if quick else rounds):
            progs.append(calibrate_program(
                f, host.simd_lanes, quick=quick, cores=host.count,
                private_bytes=max(private) if private else None,
                dram=(largest, cal["dram"]["ns"] * 1e-9 / default_mlp(host)), levels=levels))
    prog = best_program(progs)
    if len(progs) > 1:
        prog["noisy"] = unsettled(progs[-2], progs[-1])
    overrides, sources, table = program_overrides(prog, cal.get("date", ""))
    hw = build_hardware(host, cal, name=name, core_overrides=overrides,
                        override_sources=sources)
    noisy = cal.get("noisy", []) + [f"program.{k}" for k in prog["noisy"]]
    return Detection(hw, format_report(host, cal) + "\n" + table, noisy)


def write_profile(det: Detection, path: str | Path) -> Path:
    """Write a detected profile (validated first, atomically; hwmodels.detect.write_hardware)."""
    from hwmodels.detect import write_hardware
    return write_hardware(det.hardware, path, det.header)
