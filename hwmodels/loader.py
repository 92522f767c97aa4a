"""Load hardware files (``kind: hardware``) or shipped presets, and build their models."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from hwmodels.errors import HardwareConfigError
from hwmodels.registry import memory_level_kinds
from hwmodels.spec import HardwareSpec

PRESETS_DIR = Path(__file__).parent / "presets"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def presets() -> list[str]:
    """Names of the shipped hardware presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and (part.startswith("function-") or part == "[key]" or
                                        part in memory_level_kinds()):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _validate(model: type[BaseModel], data: Any, source: str, prefix: str = "") -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = {"extra_forbidden": "unknown field", "missing": "required field is missing"}.get(
            err["type"], err["msg"].removeprefix("Value error, "))
        field = ".".join(p for p in (prefix, _loc(tuple(err["loc"]))) if p)
        raise HardwareConfigError(source, field, msg) from None


def parse_hardware(data: dict, source: str = "<python>") -> HardwareSpec:
    """Validate a hardware mapping; memory levels are dispatched on ``type`` through the
    component registry (built-ins and entry points)."""
    if not isinstance(data, dict):
        raise HardwareConfigError(source, "", "expected a mapping at the top level")
    data = dict(data)
    levels = data.pop("memory", [])
    if not isinstance(levels, list):
        raise HardwareConfigError(source, "memory", "expected a list of memory levels")
    kinds = memory_level_kinds()
    specs = []
    for i, lv in enumerate(levels):
        where = f"memory[{i}]"
        if not isinstance(lv, dict):
            raise HardwareConfigError(source, where, "expected a mapping")
        kind = lv.get("type", "cache")
        if kind not in kinds:
            raise HardwareConfigError(source, f"{where}.type", f"unknown memory level type "
                                      f"{kind!r}; known: {sorted(kinds)}")
        specs.append(_validate(kinds[kind].Spec, {"type": kind, **lv}, source, where))
    spec = _validate(HardwareSpec, data, source)
    spec.memory = specs
    names = [m.name for m in specs]
    if len(set(names)) != len(names):
        raise HardwareConfigError(source, "memory", f"level names must be unique, got {names}")
    for field in ("cycles_per_level_line", "cycles_per_level_run"):
        unknown = sorted(set(getattr(spec.cores, field)) - set(names[1:]))
        if unknown:
            raise HardwareConfigError(source, f"cores.{field}", f"{unknown} name no cache "
                                      f"level beyond the first; levels: {names}")
    seen_shared = False
    for i, m in enumerate(specs):
        if seen_shared and not m.shared:
            raise HardwareConfigError(source, f"memory[{i}].shared", f"private level "
                                      f"{m.name!r} lies below a shared level")
        seen_shared |= m.shared
    lines = {int(m.line) for m in specs if hasattr(m, "line")}
    if len(lines) > 1:
        raise HardwareConfigError(source, "memory", f"all caches must use one line size, got "
                                  f"{sorted(lines)}")
    return spec


def load_hardware(path_or_preset: str | Path) -> HardwareSpec:
    """Load a hardware YAML file or a shipped preset by name (see :func:`presets`)."""
    p = Path(path_or_preset)
    if not p.exists():
        preset = PRESETS_DIR / f"{path_or_preset}.yaml"
        if not preset.exists():
            raise HardwareConfigError(str(path_or_preset), "", f"no such file or preset "
                                      f"(presets: {', '.join(presets()) or 'none'})")
        p = preset
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise HardwareConfigError(str(p), "", f"invalid YAML: {where}"
                                  f"{getattr(exc, 'problem', None) or exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareConfigError(str(p), "", f"cannot read file: {exc}") from None
    return parse_hardware(data, str(p))


def build_levels(spec: HardwareSpec, cores: int | None = None) -> list:
    """MemoryLevel objects of ``spec`` for ``cores`` cores (default: all of them)."""
    n = cores or spec.cores.count
    kinds = memory_level_kinds()
    return [kinds[m.type](m, n) for m in spec.memory]
