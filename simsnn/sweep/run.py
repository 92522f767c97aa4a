"""Run a sweep: plan, resolve, evaluate (local process pool, or Dask), store, report."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from simsnn.errors import SimsnnError
from simsnn.sweep.diskcache import DEFAULT_LIMIT, set_limit, usage
from simsnn.sweep.evaluate import evaluate_chunk, prepare
from simsnn.sweep.plan import Base, config_hash, resolve_point, sample_points
from simsnn.sweep.store import ResultStore


def plan(base: Base) -> tuple[list[dict], list[dict]]:
    """(resolved points, invalid points as result records) of the sweep, in plan order;
    points repeated by the sampling (same config) appear once."""
    good, bad, seen = [], [], set()
    for values in sample_points(base.sweep, base.source):
        try:
            p = resolve_point(base, values)
        except SimsnnError as exc:
            pid = config_hash({"invalid": values})
            if pid not in seen:
                seen.add(pid)
                bad.append({"point_id": pid, "values": values, "status": "invalid",
                            "error": str(exc)})
            continue
        if p["point_id"] not in seen:
            seen.add(p["point_id"])
            good.append(p)
    return good, bad


def _software_key(p: dict) -> str:
    """What a point's hardware-independent work depends on (the hardware's core count is
    the default core count)."""
    return config_hash([p["experiment"], [n for n, _ in p["networks"]],
                        p["hardware"].get("cores", {}).get("count")])


def _shared_work(points: list[dict]) -> tuple[dict, list[list[tuple[dict, int, str]]]]:
    """The hardware-independent work of ``points``, once per content hash: (per workload key,
    the set counts of every hardware point using it, which the fast mode profiles at once;
    the preparation stages: the distinct traces first, then the distinct workloads and
    their reuse profiles). Invalid points are skipped: their evaluation reports them."""
    from simsnn.sweep.evaluate import point_specs
    hints: dict[str, set] = {}
    traces: dict[str, tuple] = {}
    workloads: dict[str, tuple] = {}
    for p in points:
        try:
            exp, _, ks = point_specs(p)
            for i, k in enumerate(ks):
                traces.setdefault(k["trace"], (p, i, "trace"))
                workloads.setdefault(k["workload"], (p, i, "workload"))
                if exp.memory_mode == "fast":
                    hints.setdefault(k["workload"], set()).update(k["sets"])
        except Exception:  # noqa: BLE001 - an invalid point: its evaluation reports it
            continue
    return ({k: sorted(v) for k, v in hints.items()},
            [list(traces.values()), list(workloads.values())])


def _chunks(points: list[dict], size: int) -> list[list[dict]]:
    """Points with the same hardware-independent work together, in chunks of ``size``."""
    order = sorted(range(len(points)), key=lambda i: (_software_key(points[i]), i))
    ps = [points[i] for i in order]
    return [ps[i:i + size] for i in range(0, len(ps), size)]


class _Progress:
    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="pt", file=sys.stderr, dynamic_ncols=True,
                            smoothing=0.1)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_sweep(base: Base, out_dir: str | Path, workers: int | None = None,
              resume: bool = False, scheduler: str | None = None,
              dask_local: int | None = None, chunk: int | None = None,
              progress: bool = True, cache_dir: str | Path | None = None,
              cache_limit: int | None = DEFAULT_LIMIT) -> dict:
    """Evaluate every point of ``base`` not yet in ``out_dir/results.jsonl``; write the
    reports; return the summary. ``cache_dir``: where the hardware-independent pieces are
    kept (default ``out_dir/cache``; several sweeps over the same workloads may share one);
    ``cache_limit``: its size in bytes (None: unbounded), the least recently used pieces
    evicted beyond it."""
    out = Path(out_dir)
    started = time.perf_counter()
    points, invalid = plan(base)
    store = ResultStore(out / "results.jsonl", resume=resume)
    skipped = sum(1 for p in points if p["point_id"] in store.done) + \
        sum(1 for p in invalid if p["point_id"] in store.done)
    todo = [p for p in points if p["point_id"] not in store.done]
    for rec in invalid:
        store.append(rec)
    cache = str(cache_dir or out / "cache")
    set_limit(cache, cache_limit)
    hints, stages = _shared_work(todo)
    n_workers = workers or os.cpu_count() or 1
    size = chunk or max(1, min(32, len(todo) // (4 * n_workers) or 1))
    chunks = _chunks(todo, size)
    bar = _Progress(len(todo), progress)
    base_dir = str(base.base_dir)
    timer: dict = {}
    try:
        if scheduler or dask_local:
            _run_dask(stages, chunks, base_dir, cache, hints, store, bar, scheduler,
                      dask_local, timer)
        elif n_workers == 1 or len(chunks) <= 1:
            t0 = time.perf_counter()
            for items in stages:
                prepare(items, base_dir, cache, hints)
            timer["prepare"] = time.perf_counter() - t0
            for c in chunks:
                for rec in evaluate_chunk(c, base_dir, cache, hints):
                    store.append(rec)
                bar.update(len(c))
            timer["points"] = time.perf_counter() - t0 - timer["prepare"]
        else:
            _run_pool(stages, chunks, base_dir, cache, hints, store, bar, n_workers, timer)
    finally:
        bar.close()
        store.close()
    from simsnn.sweep.report import write_reports
    summary = write_reports(base, out, store.records)
    total = time.perf_counter() - started
    summary.update({"planned": len(points) + len(invalid), "skipped_resumed": skipped,
                    "evaluated": len(todo), "seconds": total,
                    "prepare_seconds": timer.get("prepare", 0.0),
                    "points_seconds": timer.get("points", 0.0),
                    "cache": usage(cache),
                    "workers": 0 if (scheduler or dask_local) else n_workers,
                    "scheduler": scheduler or (f"LocalCluster({dask_local})" if dask_local
                                               else "process pool")})
    from simsnn.io import write_json_atomic
    write_json_atomic(out / "summary.json", summary)
    return summary


def _run_pool(stages, chunks, base_dir, cache, hints, store, bar, n_workers, timer) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    ctx = mp.get_context("spawn" if sys.platform == "darwin" else "forkserver")
    with ProcessPoolExecutor(max_workers=n_workers, mp_context=ctx) as pool:
        t0 = time.perf_counter()
        for items in stages:  # one item per task: distinct pieces run side by side
            for f in [pool.submit(prepare, [it], base_dir, cache, hints) for it in items]:
                f.result()
        t1 = timer["prepare"] = time.perf_counter() - t0
        pending = {pool.submit(evaluate_chunk, c, base_dir, cache, hints) for c in chunks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in done:
                recs = f.result()
                for rec in recs:
                    store.append(rec)
                bar.update(len(recs))
        timer["points"] = time.perf_counter() - t0 - t1


def _run_dask(stages, chunks, base_dir, cache, hints, store, bar, scheduler,
              dask_local, timer) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SimsnnError("Dask is not installed: pip install 'simsnn[dask]'") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise SimsnnError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    else:
        cluster = LocalCluster(n_workers=dask_local, threads_per_worker=1, processes=True,
                               dashboard_address=None, host="127.0.0.1")
        client = Client(cluster)
    try:
        t0 = time.perf_counter()
        for items in stages:
            client.gather([client.submit(prepare, [it], base_dir, cache, hints, pure=False)
                           for it in items])
        t1 = timer["prepare"] = time.perf_counter() - t0
        futures = [client.submit(evaluate_chunk, c, base_dir, cache, hints, pure=False)
                   for c in chunks]
        for f in as_completed(futures):
            recs = f.result()
            for rec in recs:
                store.append(rec)
            bar.update(len(recs))
        timer["points"] = time.perf_counter() - t0 - t1
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
