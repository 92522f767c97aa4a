"""Hardware counters around the measured passes: ``perf stat`` attached to this process where
the kernel exposes them (this VM does not: the result then says why)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time

_PERF_EVENTS = ("cycles", "instructions", "cache-references", "cache-misses",
                "L1-dcache-load-misses", "LLC-load-misses")
_perf_told = False


def parse_perf_csv(text: str) -> dict[str, float]:
    """``perf stat -x,`` output -> {event: count}; events perf could not count are left out."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 3 or not f[2].strip():
            continue
        try:
            out[f[2].strip()] = float(f[0])
        except ValueError:
            continue  # <not supported>, <not counted>
    return out


class PerfSession:
    """``perf stat`` attached to this process around the timed passes, where the kernel
    exposes hardware counters; otherwise says why, once per process."""

    def __init__(self):
        global _perf_told
        self.ok, self.reason = perf_status()
        self.proc = None
        if not self.ok and not _perf_told:
            import sys
            print(f"simsnn measure: no hardware counters ({self.reason}); timing with the "
                  f"wall clock only", file=sys.stderr)
            _perf_told = True

    def start(self) -> None:
        if not self.ok:
            return
        self.proc = subprocess.Popen(
            [shutil.which("perf") or "perf", "stat", "-x,", "-e", ",".join(_PERF_EVENTS),
             "-p", str(os.getpid())], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
            text=True)
        time.sleep(0.2)  # let perf attach

    def stop(self) -> dict:
        if not self.ok or self.proc is None:
            return {"available": False, "reason": self.reason}
        import signal
        self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return {"available": False, "reason": "perf stat did not stop"}
        counts = parse_perf_csv(err)
        if not counts:
            return {"available": False, "reason": "perf stat counted nothing"}
        return {"available": True, "scope": "whole process during the timed passes",
                "events": counts}


def perf_status() -> tuple[bool, str]:
    """Can ``perf stat`` count hardware events here? (available, reason)."""
    exe = shutil.which("perf")
    if exe is None:
        return False, "perf is not installed"
    try:
        r = subprocess.run([exe, "stat", "-x,", "-e", "cycles,instructions", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"perf stat failed: {exc}"
    text = r.stderr + r.stdout
    if r.returncode != 0:
        last = text.strip().splitlines()[-1] if text.strip() else str(r.returncode)
        return False, f"perf stat failed: {last}"
    if "cycles" not in parse_perf_csv(text):
        why = "not supported" if "not supported" in text else "not counted"
        return False, f"the kernel exposes no hardware counters here (perf: cycles {why})"
    return True, "perf stat counts cycles and instructions"

