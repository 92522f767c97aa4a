"""Parse human-readable quantities ("32 KiB", "3.6 GHz", "1.3 nJ", "25.6 GB/s") into SI floats.

Units are parsed only at the edge (config loading); inside the code every quantity is a plain
SI float or int (bytes, hertz, joules, seconds, bytes per second, watts).
"""
from __future__ import annotations

import re

_PREFIX = {
    "": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "m": 1e-3, "u": 1e-6, "µ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15,
}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
# base unit -> (dimension, factor to SI)
_BASE = {
    "B": ("bytes", 1.0), "b": ("bytes", 1 / 8), "bit": ("bytes", 1 / 8),
    "Hz": ("hertz", 1.0), "J": ("joules", 1.0), "s": ("seconds", 1.0),
    "W": ("watts", 1.0), "B/s": ("bytes_per_second", 1.0),
}
_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-zµ/]*)\s*$")


class UnitError(ValueError):
    """A quantity string could not be parsed or has the wrong dimension."""


def parse_quantity(value: object, dimension: str) -> float:
    """Return ``value`` in SI units of ``dimension`` (bytes, hertz, joules, seconds, watts,
    bytes_per_second). Plain numbers are taken as already in SI units."""
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {dimension}, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise UnitError(f"expected a quantity in {dimension}, got {value!r}")
    m = _RE.match(value)
    if not m:
        raise UnitError(f"cannot parse quantity {value!r}")
    number, unit = float(m.group(1)), m.group(2)
    if unit == "":
        return number
    for base, (dim, factor) in sorted(_BASE.items(), key=lambda kv: -len(kv[0])):
        if unit.endswith(base):
            prefix = unit[: -len(base)]
            if prefix in _BINARY:
                scale = float(_BINARY[prefix])
            elif prefix in _PREFIX:
                scale = _PREFIX[prefix]
            else:
                continue
            if dim != dimension:
                raise UnitError(f"{value!r} is in {dim}, expected {dimension}")
            return number * scale * factor
    raise UnitError(f"unknown unit {unit!r} in {value!r}")
