"""Validation statistics and reports: the error of predicted against measured latencies
(MAPE, max, bias, Spearman), the family ranking check, the CSV table, the plot and the
summary line."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from scipy.stats import rankdata


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); nan for fewer than 2 points."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape[0] < 2:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def error_stats(predicted, measured) -> dict:
    """Absolute percentage errors of ``predicted`` against ``measured``: mean (MAPE), max,
    signed mean (bias) and the Spearman rank correlation."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    if p.shape != m.shape or p.size == 0:
        raise ValueError("predicted and measured must be non-empty and of the same length")
    if (m <= 0).any():
        raise ValueError("measured values must be positive")
    err = (p - m) / m * 100.0
    return {"n_points": int(p.size), "latency_mape_pct": float(np.abs(err).mean()),
            "max_error_pct": float(np.abs(err).max()), "bias_pct": float(err.mean()),
            "spearman": spearman(p, m)}


def breakdowns(rows: list[dict]) -> dict:
    """The error statistics of the points split by core count, family, network kind (mlp,
    conv) and weight dtype (``per_cores``, ``per_family``, ``per_network_kind``,
    ``per_dtype``), and ``per_layer_kind``: per part of the per-layer breakdowns (input,
    gate, dense, readout, conv, pool, aggregator), each point's measured and predicted time
    in parts of that kind summed, then the statistics over the points that have one."""
    def split(key) -> dict:
        out = {}
        for v in sorted({r[key] for r in rows}, key=str):
            sel = [r for r in rows if r[key] == v]
            out[str(v)] = error_stats([r["predicted_s"] for r in sel],
                                      [r["measured_s"] for r in sel])
        return out
    per_kind: dict[str, tuple[list, list]] = {}
    for r in rows:
        sums: dict[str, list[float]] = {}
        for part, kind in r.get("layer_kinds", {}).items():
            m = r.get("measured_per_layer_s", {}).get(part)
            p = r.get("predicted_per_layer_s", {}).get(part)
            if m is None or p is None:
                continue
            acc = sums.setdefault(kind, [0.0, 0.0])
            acc[0] += p
            acc[1] += m
        for kind, (p, m) in sums.items():
            if m > 0:
                per_kind.setdefault(kind, ([], []))
                per_kind[kind][0].append(p)
                per_kind[kind][1].append(m)
    return {"per_cores": split("cores"), "per_family": split("family"),
            "per_network_kind": split("kind"), "per_dtype": split("weight_dtype"),
            "per_layer_kind": {k: error_stats(p, m) for k, (p, m) in sorted(per_kind.items())}}


def family_ranking(rows: list[dict]) -> dict:
    """Within each comparison group (same ``group``, cores and input scale) holding several
    families: is the predicted order of latencies the measured one? Each pair of points is
    also checked on its own, and marked *resolved* when the measured latencies differ by more
    than the uncertainty of either best-of measurement (``measured_uncertainty``: the gap
    between its best and second-best round); a pair inside that is a tie the measurement
    cannot order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r.get("group"):
            groups.setdefault((r["group"], r["cores"], r["input_scale"]), []).append(r)
    checks = []
    for key, rs in sorted(groups.items()):
        if len({r["family"] for r in rs}) < 2:
            continue
        by_pred = [r["point"] for r in sorted(rs, key=lambda r: r["predicted_s"])]
        by_meas = [r["point"] for r in sorted(rs, key=lambda r: r["measured_s"])]
        pairs = []
        for i, a in enumerate(rs):
            for b in rs[i + 1:]:
                gap = abs(a["measured_s"] - b["measured_s"]) / min(a["measured_s"],
                                                                   b["measured_s"])
                noise = max(a.get("measured_uncertainty", 0.0),
                            b.get("measured_uncertainty", 0.0))
                pairs.append({"points": [a["point"], b["point"]], "measured_gap": gap,
                              "resolved": bool(gap > noise),
                              "right": bool((a["predicted_s"] < b["predicted_s"]) ==
                                            (a["measured_s"] < b["measured_s"]))})
        checks.append({"group": key[0], "cores": key[1], "input_scale": key[2],
                       "predicted_order": by_pred, "measured_order": by_meas,
                       "right": by_pred == by_meas, "pairs": pairs,
                       "right_where_resolved": all(p["right"] for p in pairs
                                                   if p["resolved"])})
    return {"checks": checks, "all_right": bool(checks) and all(c["right"] for c in checks),
            "all_right_where_resolved": bool(checks) and all(c["right_where_resolved"]
                                                             for c in checks),
            "ties": sum(not p["resolved"] for c in checks for p in c["pairs"])}



def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    # one value per cell: the per-layer breakdowns (dicts) are in points.json only
    fields = [k for k, v in rows[0].items() if not isinstance(v, dict)]
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    tmp = path.with_suffix(".csv.tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(path)


def plot_points(path: Path, rows: list[dict], summary: dict) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5))
    markers = {"dense": "o", "task_specialized": "s", "gated": "^"}
    for fam in sorted({r["family"] for r in rows}):
        for c in sorted({r["cores"] for r in rows}):
            rs = [r for r in rows if r["family"] == fam and r["cores"] == c]
            if rs:
                ax.scatter([1e3 * r["measured_s"] for r in rs],
                           [1e3 * r["predicted_s"] for r in rs],
                           marker=markers.get(fam, "x"), label=f"{fam}, {c} core(s)")
    lo = min(min(r["measured_s"], r["predicted_s"]) for r in rows) * 1e3 * 0.8
    hi = max(max(r["measured_s"], r["predicted_s"]) for r in rows) * 1e3 * 1.25
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.plot([lo, hi], [lo * 1.1, hi * 1.1], "k:", lw=0.6)
    ax.plot([lo, hi], [lo * 0.9, hi * 0.9], "k:", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured latency per inference (ms)")
    ax.set_ylabel("predicted latency per inference (ms)")
    ax.set_title(f"{summary['name']}: MAPE {summary['latency_mape_pct']:.1f} %, "
                 f"Spearman {summary['spearman']:.3f}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path.name


def summary_text(summary: dict) -> str:
    s = summary
    fr = s["family_ranking"]
    rank = "n/a" if not fr["checks"] else ("right" if fr["all_right"] else "WRONG")
    if fr["checks"] and not fr["all_right"]:
        rank += (" (right in every pair the measurement resolves; " if
                 fr["all_right_where_resolved"] else " (also where the measurement resolves; ")
        rank += f"{fr['ties']} measured tie(s))"
    mode = "costs re-timed before every point" if s.get("recalibrate") else \
        "profile as detected"
    lines = [f"{s['n_points']} points ({mode}): latency MAPE {s['latency_mape_pct']:.1f} %, "
             f"max error {s['max_error_pct']:.1f} %, bias {s['bias_pct']:+.1f} %, Spearman "
             f"{s['spearman']:.3f}, family ranking {rank}; median spread of the measured "
             f"passes {100 * s['measured_spread_median']:.0f} %"]
    for key, what in (("per_cores", "cores"), ("per_family", "family"),
                      ("per_network_kind", "network"), ("per_dtype", "dtype"),
                      ("per_layer_kind", "layer kind")):
        if s.get(key):
            lines.append(f"  by {what}: " + ", ".join(
                f"{k} {v['latency_mape_pct']:.1f} % ({v['n_points']})"
                for k, v in s[key].items()))
    for u in s.get("unmeasured", []):
        lines.append(f"  not measured: {u['point']} (cores {u['cores']}): {u['reason']}")
    return "\n".join(lines)

