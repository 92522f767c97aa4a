"""Calibration of the layer kernel on L1-resident weights: the synaptic accumulate per weight
dtype with its run setup and remainder paths (a fit over run widths), the event cost, the
setup of each further run an event visits, and runs off a vector boundary."""
from __future__ import annotations

import numpy as np

from simsnn.host.timing import DTYPES, per_event

#: run widths of the accumulate fit: full blocks of 8 ... 64 and one short of them, so that
#: every remainder block's cost is seen
RUN_WIDTHS = (4, 8, 12, 16, 20, 24, 28, 31, 32, 40, 48, 56, 63, 64, 80, 96, 112, 127, 128,
              192, 256, 512, 1024)


def measure_runs(inner: int, repeat: int, n_ev: int) -> dict:
    """Per dtype, the time per event against one run of W open units, W in ``RUN_WIDTHS``
    (a layer whose few weight rows stay in L1, minus the same layer with no events)."""
    out: dict = {"widths": list(RUN_WIDTHS), "spread": 0.0}
    for dtype in DTYPES:
        vals = []
        for width in RUN_WIDTHS:
            sec, sp = per_event(width, dtype, inner, repeat, n_ev)
            vals.append(max(sec, 0.0))
            out["spread"] = max(out["spread"], sp)
        out[dtype] = vals
    return out


def event_cost(inner: int, repeat: int) -> tuple[float, float]:
    """Seconds per input event against one run of one unit (256 events on 8 L1-resident
    rows, less the same layer with no events): the event's own cost (decode, row lookup)
    and its run's setup. Returns (seconds, spread)."""
    sec, sp = per_event(1, "fp32", inner, repeat, 256)
    return max(sec, 0.0), sp


def run_setup(clock_hz: float, inner: int, repeat: int, per_synop: float,
               width: int = 64) -> dict:
    """Seconds per run of open units an event visits beyond its compute: the time per event
    against k = 1, 2, 4, 8 runs of ``width`` fp16 units (gaps of ``width`` between them, no
    remainder for any block of 8 ... 64; 64 events on 8 L1-resident rows, less the same
    layer with no events), the slope over k less the run's ``width`` accumulates at
    ``per_synop`` seconds each. :func:`calibrate_program` takes it out of the event cost,
    which was timed against one run: an event that visits several runs (a gated layer's
    shared units and open groups) pays the setup of each."""
    ks, per, sp_max = (1, 2, 4, 8), [], 0.0
    for k in ks:
        sec, sp = per_event(2 * width * k, "fp16", inner, repeat,
                             s0=np.arange(k) * 2 * width, sl=np.full(k, width))
        per.append(max(sec, 0.0))
        sp_max = max(sp_max, sp)
    slope = float(np.polyfit(np.array(ks, float), np.array(per), 1)[0])
    sec = max(slope - width * per_synop, 0.0)
    return {"seconds": sec, "spread": sp_max, "cycles": sec * clock_hz, "per_run_s": slope}


def unaligned_cost(clock_hz: float, repeat: int, inner: int) -> dict:
    """Per weight dtype, what an element of a run costs more when the run's weight piece and
    current do not start on a 32-byte boundary: runs of W = 256, 512 and 1,024 units
    (rows of W + 32 units, so that every row starts aligned; 64 events per step on 8
    L1-resident rows) starting at unit 0 and at units 4, 12 and 20; the slope over W of the
    time per event, unaligned (median over the three starts) less aligned."""
    widths, out = (256, 512, 1024), {}
    for dtype in DTYPES:
        extra, sp_max = [], 0.0
        for width in widths:
            per = {}
            for start in (0, 4, 12, 20):
                per[start], sp = per_event(width + 32, dtype, inner, repeat, s0=[start],
                                            sl=[width])
                sp_max = max(sp_max, sp)
            extra.append(float(np.median([per[k] for k in (4, 12, 20)])) - per[0])
        slope = max(float(np.polyfit(np.array(widths, float), np.array(extra), 1)[0]), 0.0)
        out[dtype] = {"seconds": slope, "spread": sp_max, "cycles": slope * clock_hz}
    return {f"unaligned.{d}": v for d, v in out.items()}


def fit_runs(runs: dict, per_event: float, clock_hz: float, simd_width: int) -> dict:
    """Per dtype, the time per event against one run of W units (:func:`measure_runs`)
    fitted as a + b W + sum over B of c_B (W mod B), B = 8, 16, 32, 64, on relative error:
    b, the synaptic accumulate, from the widths that are whole blocks of 64 (no remainder:
    a straight line, the wide runs set it); then a and the c_B >= 0 over all widths with b
    fixed (non-negative least squares): c_B is the extra cost of an element past the last
    full block of B (``tail``: the loop's vector epilogue and scalar remainder), a - (event)
    the run's fixed cost (``segment``: the loop's setup). A width whose time came out zero
    (a difference of two timings that noise reversed; :func:`measure_runs` clips it) is left
    out: on relative error it would weigh as much as all the others together (``dropped``)."""
    from scipy.optimize import nnls

    from simsnn.lowering import TAIL_BLOCKS
    w_all = np.array(runs["widths"], float)
    out: dict = {}
    for dtype in [d for d in DTYPES if d in runs]:
        y_all = np.array(runs[dtype])
        ok = y_all > 0
        if (ok & (w_all % max(TAIL_BLOCKS) == 0)).sum() < 2:
            ok[:] = True  # nothing better to fit: keep every width
        w, y = w_all[ok], y_all[ok]
        full = w % max(TAIL_BLOCKS) == 0
        x = np.stack([np.ones_like(w)] + [w % b for b in TAIL_BLOCKS], 1)
        wt = 1.0 / np.maximum(y, 1e-12)
        line = np.stack([np.ones_like(w), w], 1)[full] * wt[full, None]
        b = float(np.linalg.lstsq(line, y[full] * wt[full], rcond=None)[0][1])
        if b <= 0:  # noise flattened the line: the widest run's time per unit instead
            b = max(float(y[np.argmax(w)] / w.max()), 1e-15)
        coef = nnls(x * wt[:, None], (y - b * w) * wt)[0]
        rms = float(np.sqrt(np.mean(((x @ coef + b * w - y) * wt) ** 2)))
        out[f"synop.{dtype}"] = {"seconds": b, "spread": runs["spread"],
                                 "cycles_per_instruction": b * clock_hz * simd_width,
                                 "fit_rms_rel": rms,
                                 "dropped": [int(v) for v in w_all[~ok]]}
        seg = max(float(coef[0]) - per_event, 0.0)
        out[f"segment.{dtype}"] = {"seconds": seg, "spread": runs["spread"],
                                   "cycles": seg * clock_hz}
        tail = {blk: float(c) for blk, c in zip(TAIL_BLOCKS, coef[1:])}
        out[f"tail.{dtype}"] = {"seconds": tail, "spread": runs["spread"],
                                "cycles": {blk: c * clock_hz for blk, c in tail.items()}}
    return out

