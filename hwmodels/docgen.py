"""Generate Markdown references from pydantic models, and docs/hardware-schema.md.

Run ``python -m hwmodels.docgen > docs/hardware-schema.md``; a test checks it is current.
:func:`model_markdown` is generic (``simsnn.config.docgen`` uses it for the config reference);
hwmodels never imports simsnn, so the generic part lives here.
"""
from __future__ import annotations

import re
import types
import typing
from collections.abc import Callable

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def type_name(annotation) -> str:
    """A Markdown rendering of a field annotation; models link to their own section."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in args)
    if origin is list:
        return f"list[{type_name(args[0])}]" if args else "list"
    if origin is dict:
        return f"dict[{type_name(args[0])}, {type_name(args[1])}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _nested(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _nested(a)]


_CONSTRAINT = {"Gt": ("gt", "> {}"), "Ge": ("ge", ">= {}"), "Lt": ("lt", "< {}"),
               "Le": ("le", "<= {}"), "MinLen": ("min_length", "at least {} items"),
               "MaxLen": ("max_length", "at most {} items")}


def _constraint(meta) -> str:
    kind = _CONSTRAINT.get(type(meta).__name__)
    return kind[1].format(getattr(meta, kind[0])) if kind else ""


def first_line(model: type[BaseModel]) -> str:
    """The first docstring line of ``model`` (the default summary)."""
    doc = (model.__doc__ or "").strip().splitlines()
    return doc[0] if doc else ""


def field_type(field) -> str:
    """The type column of a field (the default: its annotation)."""
    return type_name(field.annotation)


def model_markdown(model: type[BaseModel], seen: set,
                   summary: Callable[[type[BaseModel]], str] = first_line,
                   ftype: Callable[..., str] = field_type) -> list[str]:
    """A ``### Model`` section with one table row per field, then the sections of the models
    its fields refer to (each model once per ``seen``)."""
    if model in seen:
        return []
    seen.add(model)
    lines = [f"### {model.__name__}", "", summary(model), "",
             "| field | type | default | meaning |", "|---|---|---|---|"]
    nested: list[type[BaseModel]] = []
    for name, f in model.model_fields.items():
        if f.is_required():
            default = "**required**"
        elif f.default_factory is not None:
            default = "`" + repr(f.default_factory()) + "`"
        elif f.default is PydanticUndefined:
            default = ""
        else:
            default = f"`{f.default!r}`" if not isinstance(f.default, BaseModel) else "defaults"
        desc = (f.description or "").replace("\n", " ")
        constraints = ", ".join(c for c in map(_constraint, f.metadata) if c)
        if constraints:
            desc = f"{desc} ({constraints})" if desc else f"({constraints})"
        lines.append(f"| `{name}` | {ftype(f)} | {default} | {desc} |")
        nested += _nested(f.annotation)
    lines.append("")
    for m in nested:
        lines += model_markdown(m, seen, summary, ftype)
    return lines


# ----------------------------------------------------------------------------- hardware
_UNIT_EXAMPLE = {"bytes": "'64 B', '32 KiB'", "hertz": "'3.7 GHz'", "joules": "'0.9 pJ'",
                 "seconds": "'90 ns'", "watts": "'0.5 W'", "bytes_per_second": "'25.6 GB/s'"}


def _dimension(meta) -> str | None:
    """The physical dimension of a quantity validator from ``hwmodels.spec`` (None if not)."""
    func = getattr(meta, "func", None)
    if func is None:
        return None
    dim = getattr(func, "dimension", None)
    if dim is None and getattr(func, "__closure__", None):
        cells = dict(zip(func.__code__.co_freevars, func.__closure__))
        cell = cells.get("dimension")
        dim = cell.cell_contents if cell is not None else None
    return dim if isinstance(dim, str) else None


def _hardware_field_type(field) -> str:
    for meta in field.metadata:
        dim = _dimension(meta)
        if dim:
            return f"quantity: {dim.replace('_', ' ')} (e.g. {_UNIT_EXAMPLE.get(dim, '')})"
    return field_type(field)


def _paragraph(model: type[BaseModel]) -> str:
    """The first docstring paragraph, with reST markup turned into Markdown."""
    doc = (model.__doc__ or "").strip().split("\n\n")[0]
    text = " ".join(line.strip() for line in doc.splitlines())
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def format_bytes(n: float) -> str:
    """32768 -> '32 KiB' (the largest binary unit that keeps an integer, else bytes)."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale and n % scale == 0:
            return f"{int(n // scale)} {unit}"
    return f"{n:g} B"


def _si(value: float, unit: str) -> str:
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0),
                          ("m", 1e-3), ("u", 1e-6), ("n", 1e-9), ("p", 1e-12)):
        if abs(value) >= scale:
            return f"{value / scale:.4g} {prefix}{unit}"
    return f"{value:g} {unit}"


def _level_summary(m) -> str:
    text = f"{m.name} {format_bytes(m.size)}"
    if getattr(m, "type", "cache") == "cache":
        text += f" {m.ways}-way, {m.latency:g} cy"
    else:
        text += f" {m.type}, {m.latency:g} cy"
    return text + (", shared" if m.shared else "")


def presets_markdown() -> list[str]:
    """A table of the shipped presets (name, cores, on-chip memory, DRAM)."""
    from hwmodels.loader import load_hardware, presets

    out = ["## Shipped presets", "",
           "Load one with `load_hardware(\"NAME\")`; docs/hardware.md gives their sources.", "",
           "| preset | cores | on-chip memory (latency in core cycles) | DRAM |",
           "|---|---|---|---|"]
    for name in presets():
        hw = load_hardware(name)
        c = hw.cores
        cores = f"{c.count} x {_si(c.frequency, 'Hz')}, SIMD {c.simd_width}"
        levels = "; ".join(_level_summary(m) for m in hw.memory) or "none"
        dram = f"{_si(hw.dram.bandwidth, 'B/s')}, {_si(hw.dram.latency, 's')}"
        out.append(f"| `{name}` | {cores} | {levels} | {dram} |")
    return out + [""]


def hardware_schema_markdown() -> str:
    """The text of docs/hardware-schema.md."""
    from hwmodels.spec import CacheSpec, HardwareSpec, ScratchpadSpec

    out = ["# Hardware file reference", "",
           "Generated from the pydantic models by `python -m hwmodels.docgen`; do not edit.",
           "A hardware file has `version` (the format version, now 1) and `kind: hardware`. "
           "Unknown fields are errors. Quantities take human units (`'32 KiB'`, `'3.7 GHz'`, "
           "`'0.9 pJ'`, `'90 ns'`, `'25.6 GB/s'`, `'0.5 W'`) or plain numbers in SI units "
           "(bytes, hertz, joules, seconds, bytes per second, watts); see docs/hardware.md.", ""]
    seen: set = set()
    out += ["## kind: hardware", ""]
    out += model_markdown(HardwareSpec, seen, _paragraph, _hardware_field_type)
    out += ["## Memory levels (`memory` entries, chosen by `type`)", ""]
    for model in (CacheSpec, ScratchpadSpec):
        out += model_markdown(model, seen, _paragraph, _hardware_field_type)
    out += presets_markdown()
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(hardware_schema_markdown(), end="")
