"""Design-space exploration: sweep files over experiments, resumable results, Pareto fronts
(docs/sweeps.md)."""
from simsnn.sweep.plan import Base, config_hash, load_sweep, resolve_point, sample_points
from simsnn.sweep.report import candidates, feasible, pareto_front, pareto_mask
from simsnn.sweep.run import plan, run_sweep
from simsnn.sweep.store import ResultStore, read_results

__all__ = ["Base", "ResultStore", "candidates", "config_hash", "feasible", "load_sweep",
           "pareto_front", "pareto_mask", "plan", "read_results", "resolve_point", "run_sweep",
           "sample_points"]
