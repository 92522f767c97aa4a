"""Generate docs/config-schema.md from the pydantic models, so the reference never drifts.

Run ``python -m simsnn.config.docgen > docs/config-schema.md``; a test checks it is current.
"""
from __future__ import annotations

import typing

from pydantic import BaseModel
from pydantic_core import PydanticUndefined


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is list:
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        return f"dict[{_type_name(args[0])}, {_type_name(args[1])}]"
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


def model_markdown(model: type[BaseModel], seen: set) -> list[str]:
    if model in seen:
        return []
    seen.add(model)
    doc = (model.__doc__ or "").strip().splitlines()
    lines = [f"### {model.__name__}", "", doc[0] if doc else "", "",
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
        lines.append(f"| `{name}` | {_type_name(f.annotation)} | {default} | {desc} |")
        nested += _nested(f.annotation)
    lines.append("")
    for m in nested:
        lines += model_markdown(m, seen)
    return lines


def schema_markdown() -> str:
    from simsnn.config.experiment import ExperimentConfig
    from simsnn.config.network import NetworkConfig

    out = ["# Config file reference", "",
           "Generated from the pydantic models by `python -m simsnn.config.docgen`; do not edit.",
           "Every file has `version` (the format version, now 1) and `kind`. Unknown fields are "
           "errors. `simsnn check FILE` validates any of them.", ""]
    seen: set = set()
    for title, model in (("kind: network", NetworkConfig), ("kind: experiment",
                                                             ExperimentConfig)):
        out += [f"## {title}", ""] + model_markdown(model, seen)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(schema_markdown(), end="")
