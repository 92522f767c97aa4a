"""What this host is, from ``/sys`` and ``/proc`` (no timing): online CPUs, the CPU model,
vendor and feature flags, the nominal clock, and the data/unified cache levels of cpu0
(:func:`read_host`). hwmodels.calibrate times the host; hwmodels.detect writes both as a
hardware file."""
from __future__ import annotations

import math
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KIB = 1024
MIB = 1024 * KIB

# A cache level larger than this is not believed as a cache of one core's path to DRAM (the
# largest per-die/per-CCX L3s shipping are 96-160 MiB); hypervisors report made-up sizes such as
# a 480 MiB L3. Such a level is kept in the file (it is what the host reports) but the DRAM
# latency is judged against the largest plausible level only.
PLAUSIBLE_CACHE_MAX = 192 * MIB



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


def fmt_size(b: float) -> str:
    b = int(b)
    for unit, scale in (("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", KIB)):
        if b >= scale and b % scale == 0:
            return f"{b // scale} {unit}"
    return f"{b} B"

