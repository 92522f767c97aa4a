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
    calibration tables), the figures that were still noisy, and how stable the detection was
    (``stability``: rounds, the rounds taken while the machine was slowed, the program
    figures that moved in the last round, whether it settled)."""

    hardware: dict
    header: str
    noisy: list[str]
    stability: dict


def detect_profile(*, quick: bool = False, rounds: int = 3, max_rounds: int = 8,
                   name: str = "host",
                   progress: Callable[[str], None] | None = None) -> Detection:
    """Detect this host (hwmodels) and calibrate the measured program's kernels in rounds
    sharing one pool of timings (each figure from its timings' best over the rounds, as
    validation does): at least ``rounds``, then more, up to ``max_rounds``, while a program
    figure still moved in the last round (:func:`~simsnn.host.calibration.unsettled`) or the
    speed probes around it found the machine slowed (simsnn.host.timing.Probes: a detection
    taken under load is repeated until a quiet round confirms it). What did not settle is
    reported noisy, and the stability goes into the file's header and sources."""
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
    from simsnn.host.timing import Probes, pooled_timings
    host = read_host()
    probes = Probes()
    cal = probes.around(lambda: calibrate(host, quick=quick, progress=progress))
    f = round(cal["figures"]["clock_hz"]["value"] / 1e9, 1) * 1e9  # the file's frequency
    if progress:
        progress("calibrating the measured program's kernels")
    data = [c for c in host.caches if c.type != "Instruction"]
    private = [c.size for c in data if not c.shared]
    largest = max((c.size for c in data), default=32 << 20)
    # the profile's cache levels (effective sizes, latencies) for their stall benchmarks
    levels = stall_levels(parse_hardware(build_hardware(host, cal, name=name)))
    progs: list[dict] = []
    moved: list[str] = []
    lo, hi = (1, 1) if quick else (rounds, max(rounds, max_rounds))
    with pooled_timings({}):
        while True:
            progs.append(probes.around(lambda: calibrate_program(
                f, host.simd_lanes, quick=quick, cores=host.count,
                private_bytes=max(private) if private else None,
                dram=(largest, cal["dram"]["ns"] * 1e-9 / default_mlp(host)), levels=levels)))
            moved = unsettled(progs[-2], progs[-1]) if len(progs) > 1 else []
            if progress and len(progs) > 1:
                progress(f"round {len(progs)}: "
                         + (f"still moving: {', '.join(moved)}" if moved else "settled")
                         + (f" (machine slowed {probes.slowdown():.2f}x)"
                            if probes.loaded() else ""))
            if len(progs) >= hi or (len(progs) >= lo and not moved and not probes.loaded()):
                break
    # the host's own figures (caches, latencies, bandwidths) again if the machine ran
    # slowed while they were timed (the program's rounds set the quiet speed)
    host_rounds = [0]
    if not quick and probes.loaded(0):
        if progress:
            progress(f"the host benchmarks ran slowed ({probes.slowdown(0):.2f}x): again")
        again = probes.around(lambda: calibrate(host, quick=quick, progress=progress))
        if probes.slowdown() < probes.slowdown(0):
            cal = again
        host_rounds.append(len(probes.rounds) - 1)
    prog = best_program(progs)
    prog["noisy"] = moved
    program_rounds = [i for i in range(len(probes.rounds)) if i not in host_rounds]
    stability = {"rounds": len(progs),
                 "loaded": [k for k, i in enumerate(program_rounds) if probes.loaded(i)],
                 "slowdown": [round(probes.slowdown(i), 3) for i in program_rounds],
                 "host_benchmarks_slowdown": [round(probes.slowdown(i), 3)
                                              for i in host_rounds],
                 "moved_in_last_round": moved,
                 "settled": bool(len(progs) > 1 and not moved and
                                 not probes.loaded(program_rounds[-1]))}
    overrides, sources, table = program_overrides(prog, cal.get("date", ""))
    sources.append(f"stability of the program figures ({cal.get('date', '')}): "
                   + stability_text(stability))
    hw = build_hardware(host, cal, name=name, core_overrides=overrides,
                        override_sources=sources)
    noisy = cal.get("noisy", []) + [f"program.{k}" for k in moved]
    header = format_report(host, cal) + "\n" + table + "\nstability: " + \
        stability_text(stability)
    return Detection(hw, header, noisy, stability)


def stability_text(st: dict) -> str:
    """One line on how stable a detection's program figures were."""
    loaded = st["loaded"]
    text = (f"{st['rounds']} pooled round(s), " +
            ("settled: no figure moved by more than 5 % in the last round, which ran at "
             "the machine's quiet speed" if st["settled"] else
             "NOT settled: " + (f"still moving in the last round: "
                                f"{', '.join(st['moved_in_last_round'])}"
                                if st["moved_in_last_round"] else "the last round ran slowed")
             + "; rerun when the machine is quiet"))
    if loaded:
        text += (f"; {len(loaded)} round(s) ran slowed (speed probe up to "
                 f"{max(st['slowdown']):.2f}x its best)")
    host = st.get("host_benchmarks_slowdown", [])
    if host:
        text += (f"; host benchmarks at {host[-1]:.2f}x the quiet speed" +
                 (f" (repeated: the first run at {host[0]:.2f}x)" if len(host) > 1 else ""))
    return text


def write_profile(det: Detection, path: str | Path) -> Path:
    """Write a detected profile (validated first, atomically; hwmodels.detect.write_hardware)."""
    from hwmodels.detect import write_hardware
    return write_hardware(det.hardware, path, det.header)
