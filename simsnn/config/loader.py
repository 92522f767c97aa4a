"""Load any simsnn config file: safe YAML, dispatch on ``kind``, one clear error on bad input."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ValidationError

from simsnn.errors import ConfigError

try:  # the C loader is much faster; both are safe loaders
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _Loader = yaml.SafeLoader

# kind -> parser(data, source) returning the validated config (pydantic models import lazily)
_PARSERS: dict[str, Callable[[dict, str], BaseModel]] = {}


def register_kind(kind: str, factory: Callable[[], type[BaseModel]] | None = None, *,
                  parser: Callable[[dict, str], BaseModel] | None = None) -> None:
    """Make ``kind`` loadable by :func:`load_config` and checkable by ``simsnn check``:
    either a pydantic model ``factory`` or a ``parser(data, source)`` that raises a
    one-line error of its own."""
    if (factory is None) == (parser is None):
        raise ValueError("give exactly one of factory and parser")
    _PARSERS[kind] = parser or (lambda data, source: validate(factory(), data, source))


def known_kinds() -> list[str]:
    return sorted(_PARSERS)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader; errors name the file (and line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read file: {exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(str(path), "", f"invalid YAML: {where}{problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a YAML mapping at the top level")
    return data


def format_loc(loc: tuple) -> str:
    """('layers', 2, 'dense', 'units') -> 'layers[2].units' (drops union tags)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("dense", "conv2d", "avgpool2d", "flatten") and out.endswith("]"):
            continue  # discriminated-union tag, not a field
        elif isinstance(part, str) and part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def validate(model: type[BaseModel], data: dict[str, Any], source: str) -> BaseModel:
    """Validate ``data`` against ``model``; the first error becomes a :class:`ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "literal_error" and "input" in err:
            msg = f"{msg}, got {err['input']!r}"
        msg = msg.removeprefix("Value error, ")
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more error{'s' if more > 1 else ''})"
        raise ConfigError(source, format_loc(tuple(err["loc"])), msg) from None


def load_config(path: str | Path, expect: str | None = None) -> BaseModel:
    """Load and validate a config file of any registered kind (or only ``expect``)."""
    data = read_yaml(path)
    source = str(path)
    kind = data.get("kind")
    if "version" not in data:
        raise ConfigError(source, "version", "required field is missing (format version)")
    if kind is None:
        raise ConfigError(source, "kind", f"required field is missing; one of {known_kinds()}")
    if kind not in _PARSERS:
        raise ConfigError(source, "kind", f"unknown kind {kind!r}; expected one of "
                          f"{known_kinds()}")
    if expect is not None and kind != expect:
        raise ConfigError(source, "kind", f"expected a {expect!r} file, got {kind!r}")
    return _PARSERS[kind](data, source)


def _network_model() -> type[BaseModel]:
    from simsnn.config.network import NetworkConfig
    return NetworkConfig


def _experiment_model() -> type[BaseModel]:
    from simsnn.config.experiment import ExperimentConfig
    return ExperimentConfig


def _validation_model() -> type[BaseModel]:
    from simsnn.config.validation import ValidationConfig
    return ValidationConfig


def _sweep_model() -> type[BaseModel]:
    from simsnn.config.sweep import SweepConfig
    return SweepConfig


register_kind("network", _network_model)
register_kind("sweep", _sweep_model)
register_kind("experiment", _experiment_model)
register_kind("validation", _validation_model)


def _parse_hardware(data: dict, source: str) -> BaseModel:
    from hwmodels.loader import build_levels, parse_hardware
    spec = parse_hardware(data, source)
    build_levels(spec)  # geometry the models themselves check
    return spec


register_kind("hardware", parser=_parse_hardware)
