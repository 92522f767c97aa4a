"""Sweep plans: sample the axes (grid, random, Latin hypercube), apply a point's values to the
base experiment, its networks and its hardware by dotted path, and name the result by a hash
of its resolved config (the stable ``point_id``)."""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simsnn.config.sweep import Axis, SweepConfig
from simsnn.errors import ConfigError

_DIMENSIONS = ("bytes", "bytes_per_second", "hertz", "seconds", "joules", "watts")


def quantity(value: Any, where: str) -> float:
    """A number, or a quantity string in any unit hwmodels knows (``256 KiB``, ``2 GB/s``),
    in SI units."""
    from hwmodels.units import UnitError, parse_quantity
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    for dim in _DIMENSIONS:
        try:
            return parse_quantity(value, dim)
        except UnitError:
            continue
    raise ConfigError(where, "", f"{value!r} is not a number or a quantity with a unit")


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def _range_values(axis: Axis, u: np.ndarray, where: str) -> list:
    """Map ``u`` in [0, 1] onto the axis range."""
    lo, hi = (quantity(v, where) for v in axis.range)  # type: ignore[union-attr]
    if hi < lo:
        raise ConfigError(where, "range", f"low {lo} is above high {hi}")
    if axis.scale == "pow2":
        if lo <= 0:
            raise ConfigError(where, "range", "pow2 needs a positive range")
        k0, k1 = math.ceil(math.log2(lo) - 1e-9), math.floor(math.log2(hi) + 1e-9)
        if k1 < k0:
            raise ConfigError(where, "range", f"no power of two between {lo:g} and {hi:g}")
        k = np.minimum(np.floor(u * (k1 - k0 + 1)), k1 - k0).astype(int) + k0
        return [int(2 ** int(x)) for x in k]
    if axis.scale == "log":
        if lo <= 0:
            raise ConfigError(where, "range", "a log scale needs a positive range")
        v = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo)))
    else:
        v = lo + u * (hi - lo)
    return [int(round(x)) if axis.integer else float(x) for x in v]


def _grid_values(axis: Axis, where: str) -> list:
    if axis.values is not None:
        return list(axis.values)
    if axis.scale == "pow2" and axis.steps is None:
        lo, hi = (quantity(v, where) for v in axis.range)  # type: ignore[union-attr]
        k0, k1 = math.ceil(math.log2(lo) - 1e-9), math.floor(math.log2(hi) + 1e-9)
        return [int(2 ** k) for k in range(k0, k1 + 1)]
    if axis.steps is None:
        raise ConfigError(where, "steps", "grid sampling over a range needs steps")
    vals = _range_values(axis, np.linspace(0.0, 1.0, axis.steps), where)
    return list(dict.fromkeys(vals))  # pow2/integer rounding may repeat values


def sample_points(cfg: SweepConfig, source: str = "<sweep>") -> list[dict[str, Any]]:
    """The points of the plan: one ``{path: value}`` dict per point, deterministic for a
    seed."""
    s = cfg.sampling
    wheres = [f"{source}: axes[{i}] ({a.path})" for i, a in enumerate(cfg.axes)]
    if s.method == "grid":
        grids = [_grid_values(a, w) for a, w in zip(cfg.axes, wheres)]
        return [{a.path: _plain(v) for a, v in zip(cfg.axes, combo)}
                for combo in itertools.product(*grids)]
    n = int(s.samples)  # type: ignore[arg-type]
    if s.method == "lhs":
        from scipy.stats import qmc
        u = qmc.LatinHypercube(d=len(cfg.axes), seed=s.seed).random(n)
    else:
        u = np.random.default_rng(s.seed).random((n, len(cfg.axes)))
    cols = []
    for j, (a, w) in enumerate(zip(cfg.axes, wheres)):
        if a.values is not None:
            idx = np.minimum((u[:, j] * len(a.values)).astype(int), len(a.values) - 1)
            cols.append([a.values[i] for i in idx])
        else:
            cols.append(_range_values(a, u[:, j], w))
    return [{a.path: _plain(cols[j][i]) for j, a in enumerate(cfg.axes)} for i in range(n)]


# ----------------------------------------------------------------------------- dotted paths
def set_path(root: Any, parts: list[str], value: Any, where: str) -> None:
    """Set ``value`` at ``parts`` inside nested dicts and lists (list items by index or by
    their ``name``); missing dict keys on the way are created."""
    cur = root
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(cur, list):
            if part.lstrip("-").isdigit():
                k = int(part)
                if not -len(cur) <= k < len(cur):
                    raise ConfigError(where, ".".join(parts[:i + 1]), "no such list item")
            else:
                hits = [j for j, it in enumerate(cur) if isinstance(it, dict)
                        and it.get("name") == part]
                if not hits:
                    names = [it.get("name") for it in cur if isinstance(it, dict)]
                    raise ConfigError(where, ".".join(parts[:i + 1]), f"no item named "
                                      f"{part!r} (items: {names})")
                k = hits[0]
            if last:
                cur[k] = value
            else:
                cur = cur[k]
        elif isinstance(cur, dict):
            if last:
                cur[part] = value
            else:
                if cur.get(part) is None:
                    cur[part] = {}
                cur = cur[part]
        else:
            raise ConfigError(where, ".".join(parts[:i]), "is a value, not a mapping or list")


def has_path(root: Any, parts: list[str]) -> bool:
    cur = root
    for part in parts:
        if isinstance(cur, dict) and part in cur and cur[part] is not None:
            cur = cur[part]
        else:
            return False
    return True


# ----------------------------------------------------------------------------- the base
@dataclass
class Base:
    """The base experiment of a sweep, as plain dicts."""

    sweep: SweepConfig
    source: str
    base_dir: Path  #: folder of the experiment file (its relative paths start there)
    experiment: dict
    networks: dict[str, tuple[dict, str]] = field(default_factory=dict)  # ref -> (dict, dir)
    hardware: dict[str, dict] = field(default_factory=dict)  # ref -> dict


def load_sweep(path: str | Path) -> Base:
    """Read a sweep file and its base experiment; one ConfigError for any problem."""
    from simsnn.config.loader import load_config, read_yaml
    cfg = load_config(path, expect="sweep")
    assert isinstance(cfg, SweepConfig)
    exp_path = Path(path).parent / cfg.base
    exp = read_yaml(exp_path)
    if exp.get("kind") != "experiment":
        raise ConfigError(str(path), "base", f"{cfg.base} is not an experiment file")
    load_config(exp_path, expect="experiment")  # the base itself must be valid
    return Base(cfg, str(path), exp_path.parent.resolve(), exp)


def _network_dict(base: Base, ref: str) -> tuple[dict, str]:
    if ref not in base.networks:
        from simsnn.config.loader import read_yaml
        from simsnn.loading import resolve
        cand = base.base_dir / ref
        p = cand if cand.exists() else resolve(ref)
        if p.suffix.lower() not in (".yaml", ".yml"):
            raise ConfigError(str(p), "", "sweeps take network YAML files (or shipped names)")
        base.networks[ref] = (read_yaml(p), str(p.parent.resolve()))
    return base.networks[ref]


def _hardware_dict(base: Base, ref: str) -> dict:
    if ref not in base.hardware:
        import yaml

        from hwmodels.loader import PRESETS_DIR
        cand = base.base_dir / ref
        p = cand if cand.exists() else PRESETS_DIR / f"{ref}.yaml"
        if not p.exists():
            from hwmodels.loader import presets
            raise ConfigError(ref, "", f"no such hardware file or preset (presets: "
                              f"{', '.join(presets())})")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(p), "", f"cannot read hardware file: "
                              f"{str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(str(p), "", "expected a YAML mapping at the top level")
        base.hardware[ref] = data
    return base.hardware[ref]


def config_hash(obj: Any) -> str:
    """Content hash of a JSON-able object (sorted keys): 16 hex digits."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_point(base: Base, values: dict[str, Any]) -> dict:
    """The full config of one point: ``{"experiment", "networks": [(dict, dir)],
    "hardware", "values", "point_id"}``; a ConfigError names a value that cannot apply."""
    where = f"{base.source}: point {values}"
    exp = copy.deepcopy(base.experiment)
    for path, v in values.items():  # whole-object axes first
        if path == "hardware":
            exp["hardware"] = v
        elif path == "networks":
            exp["networks"] = list(v) if isinstance(v, (list, tuple)) else [v]
    if exp.get("hardware") is None:
        raise ConfigError(base.source, "base", "the base experiment names no hardware")
    hw = copy.deepcopy(_hardware_dict(base, str(exp["hardware"])))
    nets = [copy.deepcopy(_network_dict(base, str(r))) for r in exp["networks"]]
    for path, v in values.items():
        if path in ("hardware", "networks"):
            continue
        parts = path.split(".")
        if parts[0] == "hardware":
            set_path(hw, parts[1:], v, where)
        elif parts[0] == "network":
            hit = [n for n, _ in nets if has_path(n, parts[1:-1])]
            if not hit:
                raise ConfigError(where, path, "no network of the point has this field")
            for n in hit:
                set_path(n, parts[1:], v, where)
        elif parts[0] == "networks":
            name = parts[1] if len(parts) > 2 else ""
            hit = [n for n, _ in nets if n.get("name") == name]
            if not hit:
                raise ConfigError(where, path, f"no network named {name!r} in the point")
            set_path(hit[0], parts[2:], v, where)
        else:
            set_path(exp, parts, v, where)
    if base.sweep.samples_simulated is not None:
        exp.setdefault("layout", {})
        exp["layout"] = dict(exp["layout"] or {}, samples=base.sweep.samples_simulated)
    exp["hardware"] = None  # the hardware travels as a dict
    point = {"experiment": exp, "networks": nets, "hardware": hw}
    return {**point, "values": values,
            "point_id": config_hash({"experiment": exp, "hardware": hw,
                                     "networks": [n for n, _ in nets]})}
