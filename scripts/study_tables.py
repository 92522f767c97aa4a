"""Markdown tables of a finished sweep, for docs/studies.md.

    python scripts/study_tables.py DIR --rows AXIS [AXIS ...] --metric latency_s
        [--columns family|network] [--scale 1e6] [--where AXIS=VALUE ...] [--digits 1]

Reads DIR/results.jsonl and prints one table: a row per combination of the ``--rows`` axes
(mean over every other axis), a column per family (or network), cells = the metric (times
``--scale``). ``--where`` keeps only the points with these axis values.
"""
from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from simsnn.sweep import candidates, read_results
from simsnn.sweep.report import as_number


def _match(row: dict, where: list[str]) -> bool:
    for w in where:
        k, v = w.split("=", 1)
        if str(row.get(k)) != v:
            return False
    return True


def _order(v):
    """Numbers and quantities (``20 GB/s``) by value, other strings after them."""
    x = as_number(v)
    return (0, x, "") if x is not None else (1, 0.0, str(v))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--rows", nargs="+", required=True)
    ap.add_argument("--metric", required=True)
    ap.add_argument("--columns", default="family")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--digits", type=int, default=1)
    ap.add_argument("--where", nargs="*", default=[])
    args = ap.parse_args()
    rows = [r for r in candidates(read_results(Path(args.dir) / "results.jsonl"), unique=False)
            if _match(r, args.where)]
    cols = sorted({str(r[args.columns]) for r in rows}, key=_order)
    levels = [sorted({r[a] for r in rows}, key=_order) for a in args.rows]
    print("| " + " | ".join(args.rows + cols) + " |")
    print("|" + "---|" * (len(args.rows) + len(cols)))
    for combo in itertools.product(*levels):
        sel = [r for r in rows if all(r[a] == v for a, v in zip(args.rows, combo))]
        if not sel:
            continue
        cells = []
        for c in cols:
            vals = [r[args.metric] for r in sel if str(r[args.columns]) == c
                    and r.get(args.metric) is not None]
            cells.append(f"{np.mean(vals) * args.scale:,.{args.digits}f}" if vals else "-")
        print("| " + " | ".join([str(v) for v in combo] + cells) + " |")


if __name__ == "__main__":
    main()
