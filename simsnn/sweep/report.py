"""Sweep results as a table: one candidate per (point, network), constraint checks, the Pareto
front over the objectives, CSV export and PNG plots."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from simsnn.config.sweep import Constraint, Objective
from simsnn.sweep.plan import quantity


def candidates(records: list[dict], unique: bool = True) -> list[dict]:
    """Flat rows: ``point_id``, ``network``, the point's values (by axis path) and the
    network's metrics, for every finished (status ok) point. ``unique``: a network that is
    the same design at several points (e.g. the dense network across values of
    ``network.gate.groups``, which it does not have) counts once, at its first point."""
    rows, seen = [], set()
    for r in records:
        if r.get("status") != "ok":
            continue
        for name, m in r["metrics"].items():
            d = m.get("design_id")
            if unique and d is not None:
                if d in seen:
                    continue
                seen.add(d)
            rows.append({"point_id": r["point_id"], "network": name, **r["values"], **m})
    return rows


def feasible(row: dict, constraints: list[Constraint]) -> bool:
    """Whether ``row`` meets every constraint (a missing metric fails a bound on it)."""
    for c in constraints:
        v = row.get(c.metric)
        if v is None:
            return False
        if c.max is not None and v > quantity(c.max, f"constraint on {c.metric}"):
            return False
        if c.min is not None and v < quantity(c.min, f"constraint on {c.metric}"):
            return False
    return True


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` (n, k), all objectives to minimize, that no other row dominates
    (no worse in every objective and better in one). Duplicates all stay on the front."""
    v = np.asarray(values, float)
    n = v.shape[0]
    keep = np.ones(n, bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        if dominated.any():
            keep[i] = False
            continue
        worse = np.all(v[i] <= v, axis=1) & np.any(v[i] < v, axis=1)
        keep &= ~worse
    return keep


def pareto_front(rows: list[dict], objectives: list[Objective],
                 constraints: list[Constraint] = ()) -> list[dict]:
    """The feasible rows on the Pareto front of ``objectives`` (rows lacking an objective
    metric are left out)."""
    ok = [r for r in rows if feasible(r, list(constraints))
          and all(r.get(o.metric) is not None for o in objectives)]
    if not ok:
        return []
    v = np.array([[r[o.metric] * (1 if o.goal == "minimize" else -1) for o in objectives]
                  for r in ok], float)
    return [r for r, k in zip(ok, pareto_mask(v)) if k]


def write_csv(path: Path, rows: list[dict]) -> None:
    """All rows, columns in first-seen order; written atomically."""
    cols: dict[str, None] = {}
    for r in rows:
        cols.update(dict.fromkeys(r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(cols), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(path)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def plot_front(path: Path, rows: list[dict], front: list[dict], objectives: list[Objective],
               title: str) -> bool:
    """Scatter of the first two objectives, one colour per family, the front highlighted."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if len(objectives) < 2 or not rows:
        return False
    a, b = objectives[0].metric, objectives[1].metric
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for fam in sorted({str(r.get("family")) for r in rows}):
        rs = [r for r in rows if str(r.get("family")) == fam and r.get(a) is not None
              and r.get(b) is not None]
        ax.scatter([r[a] for r in rs], [r[b] for r in rs], s=12, alpha=0.5, label=fam)
    fr = sorted((r for r in front), key=lambda r: r[a])
    if fr:
        ax.plot([r[a] for r in fr], [r[b] for r in fr], "k.-" if len(objectives) == 2 else "k.",
                lw=1, ms=8, label="Pareto front" + (" (all objectives)" if len(objectives) > 2
                                                    else ""))
    for ax_set, m in ((ax.set_xlabel, a), (ax.set_ylabel, b)):
        ax_set(m)
    if all(r.get(a, 0) and r[a] > 0 for r in rows):
        ax.set_xscale("log")
    if all(r.get(b, 0) and r[b] > 0 for r in rows):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return True


def sensitivity(rows: list[dict], axes: list[str], metric: str) -> dict:
    """Per axis and value: the mean of ``metric`` per network family (over all other axes)."""
    out: dict = {}
    for ax in axes:
        by: dict = {}
        for r in rows:
            if r.get(metric) is None or ax not in r:
                continue
            key = (str(r[ax]), str(r.get("family")))
            by.setdefault(key, []).append(r[metric])
        out[ax] = {f"{v} | {fam}": float(np.mean(x)) for (v, fam), x in sorted(by.items())}
    return out


def as_number(v) -> float | None:
    """A number or a quantity string in SI units; None for anything else."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return quantity(v, "axis value")
    except Exception:  # noqa: BLE001 - a category, not a quantity
        return None


def plot_sensitivity(path: Path, rows: list[dict], axes: list[str], metric: str,
                     title: str) -> bool:
    """One panel per axis: ``metric`` against the axis value, a line per family (mean over
    the other axes)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not rows:
        return False
    n = len(axes)
    fig, axs = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    for ax, name in zip(axs[0], axes):
        vals = [r[name] for r in rows if name in r]
        nums = {str(v): as_number(v) for v in vals}
        numeric = all(x is not None for x in nums.values())
        levels = sorted(set(vals), key=lambda v: (nums[str(v)] if numeric else 0.0, str(v)))
        for fam in sorted({str(r.get("family")) for r in rows}):
            ys = []
            for lv in levels:
                x = [r[metric] for r in rows if r.get(name) == lv and
                     str(r.get("family")) == fam and r.get(metric) is not None]
                ys.append(np.mean(x) if x else np.nan)
            xs = [nums[str(v)] for v in levels] if numeric else list(range(len(levels)))
            ax.plot(xs, ys, "o-", ms=3, label=fam)
        if numeric and levels:
            lo, hi = min(nums.values()), max(nums.values())
            if lo > 0 and hi / lo > 20:
                ax.set_xscale("log")
            if any(isinstance(v, str) for v in levels):
                ax.set_xticks([nums[str(v)] for v in levels])
                ax.set_xticklabels([str(v) for v in levels], rotation=30, fontsize=7)
        else:
            ax.set_xticks(range(len(levels)))
            ax.set_xticklabels([str(v) for v in levels], rotation=30, fontsize=7)
        ax.set_xlabel(name, fontsize=8)
        ax.set_ylabel(metric, fontsize=8)
    axs[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return True


def write_reports(base, out: Path, records: list[dict]) -> dict:
    """``results.csv`` (every candidate, with ``feasible`` and ``pareto`` columns),
    ``pareto.csv``, ``front.png`` and ``sensitivity.png``; returns the summary fields."""
    cfg = base.sweep
    rows = candidates(records)
    every = candidates(records, unique=False)
    front = pareto_front(rows, cfg.objectives, cfg.constraints)
    on_front = {(r["point_id"], r["network"]) for r in front}
    for r in rows:
        r["feasible"] = feasible(r, cfg.constraints)
        r["pareto"] = (r["point_id"], r["network"]) in on_front
    if rows:
        write_csv(out / "results.csv", rows)
        write_csv(out / "pareto.csv", [r for r in rows if r["pareto"]])
    objs = ", ".join(f"{o.goal} {o.metric}" for o in cfg.objectives)
    plots = []
    if plot_front(out / "front.png", [r for r in rows if r["feasible"]], front,
                  cfg.objectives, f"{cfg.name}: {objs}"):
        plots.append("front.png")
    axes = [a.path for a in cfg.axes]
    if plot_sensitivity(out / "sensitivity.png", every, axes, cfg.objectives[0].metric,
                        f"{cfg.name}: mean {cfg.objectives[0].metric} per axis value"):
        plots.append("sensitivity.png")
    status = [r.get("status") for r in records]
    # a resumed sweep may hold points evaluated by other code (an upgrade in between)
    codes = sorted({str(r["code"]) for r in records if r.get("status") == "ok" and "code" in r})
    return {"schema": "simsnn-sweep", "schema_version": 1, "name": cfg.name,
            "points_ok": status.count("ok"), "points_invalid": status.count("invalid"),
            "candidates": len(rows), "feasible": sum(r["feasible"] for r in rows),
            "pareto": [{k: r.get(k) for k in ("point_id", "network", "family",
                                              *axes, *(o.metric for o in cfg.objectives))}
                       for r in front],
            "objectives": [o.model_dump() for o in cfg.objectives],
            "constraints": [c.model_dump() for c in cfg.constraints], "plots": plots,
            "code_versions": codes}
