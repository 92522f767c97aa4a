"""The ``simsnn`` command line. User mistakes print one line and exit with status 2."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from simsnn.errors import ConfigError, SimsnnError


def _load_net(ref: str, dt: float | None = None):
    from simsnn.loading import load_network
    return load_network(ref, dt=dt)


def _emit(obj: dict, path: str | None) -> None:
    from simsnn.experiment import json_ready
    from simsnn.io import write_json_atomic
    if path:
        write_json_atomic(path, json_ready(obj))
    else:
        print(json.dumps(json_ready(obj), indent=2))


def cmd_check(args) -> int:
    from simsnn.config.loader import load_config
    for f in args.files:
        cfg = load_config(f)
        if cfg.kind == "network":  # also build it: shapes, weights file
            _load_net(f)
        print(f"{f}: ok ({cfg.kind})")
    return 0


def cmd_run(args) -> int:
    from simsnn.config.loader import load_config
    from simsnn.experiment import format_table, run_experiment
    cfg = load_config(args.config, expect="experiment")
    result = run_experiment(cfg, args.config, progress=not args.quiet)
    print(format_table(result))
    if args.json:
        _emit(result, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_footprint(args) -> int:
    from simsnn.footprint import footprint
    from simsnn.trace import load_trace
    net = _load_net(args.network, args.dt)
    fp = footprint(net, load_trace(args.trace) if args.trace else None)
    if args.json:
        _emit(fp, None if args.json == "-" else args.json)
        return 0
    for row in fp["layers"]:
        state = row["membrane_bytes"] + row["spike_buffer_bytes"]
        print(f"{row['name']:<16} {row['type']:<10} params {row['params']:>10,}  weights "
              f"{row['weight_bytes']:>10,} B  state {state:>8,} B")
    t = fp["touched_weight_bytes"]
    print(f"total {fp['total_bytes']:,} B (weights {fp['weight_bytes']:,} B, state "
          f"{fp['state_bytes']:,} B); params {fp['params']:,}; weights touched per inference: "
          f"mean {t['mean']:,.0f} B, max {t['max']:,} B over {t['over']}")
    return 0


def cmd_evaluate(args) -> int:
    from simsnn.datasets import load_dataset
    from simsnn.inference import run_network
    net = _load_net(args.network, args.dt)
    ds = load_dataset(args.data, seed=args.seed)
    x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    if args.samples:
        x, y = x[: args.samples], y[: args.samples]
    scores, _ = run_network(net, x, labels=y, seed=args.seed)
    acc = float((scores.argmax(1) == y).mean())
    print(f"{net.name}: accuracy {100 * acc:.2f} % on {len(y)} {args.data} {args.split} samples")
    return 0


def cmd_trace(args) -> int:
    from simsnn.trace import load_trace
    if args.trace_cmd == "info":
        tr = load_trace(args.file)
        print(f"{args.file}: network {tr.network} ({tr.family}), {tr.n_samples} samples x "
              f"{tr.timesteps} steps, source {tr.meta.get('source', '?')}")
        for name, rate in tr.rates().items():
            print(f"  {name:<20} units {tr.layers[name].shape[2]:>7}  rate {rate:.4f}")
        if tr.gate_groups is not None:
            print(f"  gate: {tr.gate_groups.shape[1]} groups, mean open "
                  f"{tr.gate_groups.sum(1).mean():.2f}")
        if tr.accuracy() is not None:
            print(f"  accuracy {100 * tr.accuracy():.2f} %")
        if args.network:
            from simsnn.metrics import neurobench_metrics
            _emit(neurobench_metrics(_load_net(args.network, args.dt), tr), None)
        return 0
    if args.trace_cmd == "record":
        from simsnn.datasets import load_dataset
        from simsnn.inference import run_network
        net = _load_net(args.network, args.dt)
        ds = load_dataset(args.data, seed=args.seed)
        x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
        if args.samples:
            x, y = x[: args.samples], y[: args.samples]
        _, tr = run_network(net, x, record=True, labels=y, seed=args.seed)
    elif args.trace_cmd == "synth":
        from simsnn.synth import SynthParams, synthesize_trace
        net = _load_net(args.network, args.dt)
        try:
            params = SynthParams(samples=args.samples or 100, input_rate=args.input_rate,
                                 rate=args.rate, burstiness=args.burstiness,
                                 heterogeneity=args.heterogeneity,
                                 gate_accuracy=args.gate_accuracy, seed=args.seed)
        except ValueError as exc:
            raise ConfigError("command line", "", str(exc)) from None
        tr = synthesize_trace(net, params)
    else:  # import
        from simsnn.spike_import import import_spikes_file
        net = _load_net(args.network, args.dt) if args.network else None
        tr = import_spikes_file(args.file, net)
    tr.save(args.output)
    print(f"wrote {args.output}: {tr.n_samples} samples, {len(tr.layers)} layers")
    return 0


def cmd_nir(args) -> int:
    from simsnn.nir_io import export_nir
    net = _load_net(args.network, args.dt)
    export_nir(net, args.output)
    print(f"wrote {args.output}")
    return 0


def cmd_models(args) -> int:
    from simsnn.loading import MODELS_DIR, shipped_models
    if args.models_cmd == "list":
        for name in shipped_models():
            print(name)
        return 0
    from simsnn.train.shipped import regenerate_shipped
    out = Path(args.output) if args.output else MODELS_DIR
    regenerate_shipped(out_dir=out, epochs=args.epochs, seed=args.seed, threads=args.threads)
    return 0


def cmd_train(args) -> int:
    from simsnn.config.loader import load_config
    from simsnn.datasets import load_dataset
    from simsnn.errors import ConfigError
    try:
        from simsnn.train.shipped import save_model
        from simsnn.train.trainer import train_network
    except ImportError as exc:
        raise ConfigError("simsnn train", "extra", f"training needs the 'train' extra "
                          f"(pip install 'simsnn[train]'): {exc}") from None
    out = Path(args.output)
    if out.suffix not in (".yaml", ".yml"):
        raise ConfigError(str(out), "output", "must be a .yaml path; the weights go to the "
                          "NPZ beside it")
    cfg = load_config(args.config, expect="network")
    ds = load_dataset(args.data, seed=args.seed)
    net, history = train_network(cfg, ds, epochs=args.epochs, seed=args.seed,
                                 threads=args.threads, log=print)
    yaml_path, npz = save_model(history["config"], net, out, weight_dtype=None)
    print(f"wrote {yaml_path} and {npz} ({history['seconds']:.1f} s)")
    return 0


def _cpus(text: str | None) -> list[int] | None:
    if not text:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            a, _, b = part.partition("-")
            out += list(range(int(a), int(b or a) + 1))
    except ValueError:
        raise ConfigError("--pin", "pin", f"expected CPU ids like 0,1 or 0-3, got {text!r}") \
            from None
    return out


def cmd_measure(args) -> int:
    from simsnn.config.layout import LayoutConfig
    from simsnn.datasets import load_dataset
    from simsnn.experiment import RESULT_SCHEMA, RESULT_VERSION
    from simsnn.host.measure import host_summary, measure
    ds = load_dataset(args.data, seed=args.seed)
    x, y = ds.x_test[: args.samples], ds.y_test[: args.samples]
    layout = LayoutConfig(weight_dtype=args.weight_dtype) if args.weight_dtype else None
    results = []
    for ref in args.networks:
        net = _load_net(ref)
        results.append(measure(net, x, y, cores=args.cores, layout=layout,
                               warmup=args.warmup, repeat=args.repeat,
                               per_layer=args.per_layer, pin=_cpus(args.pin), seed=args.seed))
    print(f"{'network':<18}{'accuracy':>9}{'median ms':>11}{'spread':>8}{'p99 ms':>9}"
          f"{'peak RSS MiB':>14}")
    for r in results:
        acc = "-" if r["accuracy"] is None else f"{100 * r['accuracy']:.1f}%"
        print(f"{r['network']:<18}{acc:>9}{1e3 * r['latency_s']:>11.3f}"
              f"{100 * r['latency']['spread']:>7.1f}%{1e3 * r['latency']['p99']:>9.3f}"
              f"{r['peak_rss_bytes'] / 2**20:>14.1f}")
        for k, v in r["latency"].get("per_layer_s", {}).items():
            print(f"    {k:<22}{1e3 * v:>9.3f} ms")
    if args.json:
        _emit({"schema": RESULT_SCHEMA, "schema_version": RESULT_VERSION,
               "kind": "measurement", "measured": True, "host": host_summary(),
               "dataset": args.data, "results": results}, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_validate(args) -> int:
    from simsnn.config.loader import load_config
    from simsnn.host.validate import run_validation
    from simsnn.host.validation_report import summary_text
    cfg = load_config(args.config, expect="validation")
    if args.hardware:
        cfg = cfg.model_copy(update={"hardware": str(Path(args.hardware).resolve())
                                     if Path(args.hardware).exists() else args.hardware})
    if args.samples:
        cfg = cfg.model_copy(update={"samples": args.samples})
    if args.recalibrate is not None:
        cfg = cfg.model_copy(update={"recalibrate": args.recalibrate})
    if cfg.reference == "cachegrind":
        from simsnn.host.cachegrind import traffic_text, validate_traffic
        summary = validate_traffic(cfg, args.config, args.output)
        print(traffic_text(summary))
        print(f"wrote {args.output}/summary.json, points.csv, points.json")
        return 0
    summary = run_validation(cfg, args.config, args.output)
    print(summary_text(summary))
    print(f"wrote {args.output}/summary.json, points.csv, points.json"
          + (", predicted_vs_measured.png" if summary["plot"] else
             " (no plot: pip install 'simsnn[plot]')"))
    return 0


def _cache_limit(text: str | None) -> int | None:
    """``--cache-limit``: a size ("1 GiB", "500MB", bytes) or "none"; default 1 GiB."""
    from simsnn.sweep.diskcache import DEFAULT_LIMIT
    if text is None:
        return DEFAULT_LIMIT
    if text.strip().lower() in ("none", "unbounded"):
        return None
    from hwmodels.units import UnitError, parse_quantity
    try:
        value = parse_quantity(text, "bytes")
    except UnitError as e:
        raise SimsnnError(f"--cache-limit: {e}") from None
    if value < 0:
        raise SimsnnError(f"--cache-limit: {text!r} is negative")
    return int(value)


def cmd_sweep(args) -> int:
    from simsnn.sweep import load_sweep, plan, run_sweep
    limit = _cache_limit(args.cache_limit)
    base = load_sweep(args.config)
    if args.dry_run:
        points, invalid = plan(base)
        for p in points:
            print(f"{p['point_id']}  " + "  ".join(f"{k}={v}" for k, v in p["values"].items()))
        for p in invalid:
            print(f"{p['point_id']}  INVALID  {p['error']}")
        print(f"{len(points)} points, {len(invalid)} invalid ({base.sweep.sampling.method} "
              f"sampling, seed {base.sweep.sampling.seed})")
        return 0
    if not args.output:
        raise SimsnnError("sweep: -o DIR is required (except with --dry-run)")
    s = run_sweep(base, args.output, workers=args.workers, resume=args.resume,
                  scheduler=args.scheduler, dask_local=args.dask_local,
                  progress=not args.quiet, cache_dir=args.cache,
                  cache_limit=limit)
    rate = s["evaluated"] / s["seconds"] if s["seconds"] else 0.0
    if len(s["code_versions"]) > 1:
        print(f"simsnn: warning: {args.output}/results.jsonl holds points evaluated by "
              f"{len(s['code_versions'])} different versions of the simulator (a resume "
              f"after an upgrade); their `code` fields tell them apart", file=sys.stderr)
    print(f"{s['name']}: {s['points_ok']} points done, {s['points_invalid']} invalid, "
          f"{s['skipped_resumed']} resumed; {s['feasible']} of {s['candidates']} candidates "
          f"feasible, {len(s['pareto'])} on the Pareto front; {s['evaluated']} evaluated in "
          f"{s['seconds']:.1f} s ({rate:.1f} points/s, {s['scheduler']}); results in "
          f"{args.output}/")
    c = s["cache"]
    cap = "unbounded" if c["limit_bytes"] is None else f"limit {c['limit_bytes'] / 2**20:.0f} MiB"
    print(f"cache: {c['bytes'] / 2**20:.1f} MiB in {c['files']} files at {c['dir']} ({cap})")
    return 0


def cmd_hw_detect(args) -> int:
    from hwmodels.detect import to_yaml
    from simsnn.host.detect import detect_profile, stability_text, write_profile
    say = (lambda m: print(m, file=sys.stderr)) if not args.quiet else None
    det = detect_profile(quick=args.quick, rounds=args.rounds, max_rounds=args.max_rounds,
                         name=args.name, progress=say)
    if args.output:
        write_profile(det, args.output)
        print(f"wrote {args.output}")
    else:
        print(to_yaml(det.hardware, det.header))
    if det.noisy:
        print(f"noisy (run-to-run spread over 5 %): {', '.join(det.noisy)}", file=sys.stderr)
    print(f"stability: {stability_text(det.stability)}", file=sys.stderr)
    return 0


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simsnn", description="Simulate and compare dense, "
                                "task-specialized and per-layer gated SNNs on hardware models.")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def net_args(sp, trace=False):
        sp.add_argument("network", help="network YAML, NIR file or shipped model name")
        sp.add_argument("--dt", type=float, default=None, help="time step for NIR files")

    s = sub.add_parser("check", help="validate config files of any kind")
    s.add_argument("files", nargs="+")
    s.set_defaults(fn=cmd_check)

    s = sub.add_parser("run", help="run an experiment file and print the comparison")
    s.add_argument("config")
    s.add_argument("--json", metavar="OUT", help="also write the result JSON here")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(fn=cmd_run)

    s = sub.add_parser("footprint", help="static and per-inference memory footprint")
    net_args(s)
    s.add_argument("--trace", help="gate decisions from this trace file")
    s.add_argument("--json", nargs="?", const="-", help="print (or write to a file) JSON")
    s.set_defaults(fn=cmd_footprint)

    s = sub.add_parser("evaluate", help="test accuracy of a network on an offline dataset")
    net_args(s)
    s.add_argument("--data", default="mnist")
    s.add_argument("--split", choices=["train", "test"], default="test")
    s.add_argument("--samples", type=int)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(fn=cmd_evaluate)

    s = sub.add_parser("trace", help="record, synthesize, import or inspect spike traces")
    tsub = s.add_subparsers(dest="trace_cmd", required=True, metavar="ACTION")
    r = tsub.add_parser("record", help="run a network on a dataset and record its trace")
    net_args(r)
    r.add_argument("--data", default="mnist")
    r.add_argument("--split", choices=["train", "test"], default="test")
    r.add_argument("--samples", type=int)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("-o", "--output", required=True)
    r = tsub.add_parser("synth", help="synthetic trace from firing statistics")
    net_args(r)
    r.add_argument("--samples", type=int, default=100)
    r.add_argument("--rate", type=float, default=0.1)
    r.add_argument("--input-rate", type=float, default=0.2)
    r.add_argument("--burstiness", type=float, default=0.0)
    r.add_argument("--heterogeneity", type=float, default=0.0)
    r.add_argument("--gate-accuracy", type=float, default=1.0)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("-o", "--output", required=True)
    r = tsub.add_parser("import", help="import per-layer spike arrays ([T,N] or [T,B,N]) "
                        "from an NPZ file")
    r.add_argument("file")
    r.add_argument("--network", help="check names and sizes against this network")
    r.add_argument("--dt", type=float, default=None)
    r.add_argument("-o", "--output", required=True)
    r = tsub.add_parser("info", help="summarize a trace file")
    r.add_argument("file")
    r.add_argument("--network", help="also print NeuroBench metrics for this network")
    r.add_argument("--dt", type=float, default=None)
    for r in tsub.choices.values():
        r.set_defaults(fn=cmd_trace)

    s = sub.add_parser("nir", help="export a dense network to a NIR file")
    s.add_argument("action", choices=["export"])
    net_args(s)
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(fn=cmd_nir)

    s = sub.add_parser("models", help="list or regenerate the shipped pretrained models")
    msub = s.add_subparsers(dest="models_cmd", required=True, metavar="ACTION")
    msub.add_parser("list").set_defaults(fn=cmd_models)
    r = msub.add_parser("regenerate", help="retrain the shipped models (needs simsnn[train])")
    r.add_argument("--epochs", type=int, default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("-o", "--output", help="folder (default: the package's models folder)")
    r.set_defaults(fn=cmd_models)

    s = sub.add_parser("measure", help="time the networks' event-driven program on this CPU")
    s.add_argument("networks", nargs="+", help="network YAMLs or shipped model names")
    s.add_argument("--data", default="mnist")
    s.add_argument("--samples", type=int, default=200)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--cores", type=int, default=1, help="threads (the layer's open units are "
                   "split over them as in the simulator)")
    s.add_argument("--pin", help="CPU ids to pin the process to, e.g. 0 or 0-1")
    s.add_argument("--warmup", type=int, default=1, help="untimed passes first")
    s.add_argument("--repeat", type=int, default=5, help="timed passes (median, spread)")
    s.add_argument("--per-layer", action="store_true", help="also time each layer (one "
                   "instrumented pass)")
    s.add_argument("--weight-dtype", choices=["fp32", "fp16"], help="override the weights' "
                   "storage dtype")
    s.add_argument("--json", help="write the result JSON here")
    s.set_defaults(fn=cmd_measure)

    s = sub.add_parser("hw", help="hardware profiles of this host")
    hsub = s.add_subparsers(dest="hw_cmd", required=True, metavar="ACTION")
    r = hsub.add_parser("detect", help="write a calibrated hardware YAML for this host")
    r.add_argument("-o", "--output", help="YAML file to write (default: print it)")
    r.add_argument("--quick", action="store_true", help="smaller, faster calibration")
    r.add_argument("--rounds", type=_positive_int, default=3,
                   help="rounds of the program's micro-benchmarks at least, each timing at "
                        "its best over them (default 3; --quick: 1)")
    r.add_argument("--max-rounds", type=_positive_int, default=8,
                   help="more rounds, up to this many, while a figure still moves or the "
                        "machine ran slowed (default 8)")
    r.add_argument("--name", default="host")
    r.add_argument("-q", "--quiet", action="store_true")
    r.set_defaults(fn=cmd_hw_detect)

    s = sub.add_parser("validate", help="measure and predict a validation set; report the "
                       "prediction error")
    s.add_argument("config", help="validation YAML (kind: validation)")
    s.add_argument("-o", "--output", required=True, help="directory for the results")
    s.add_argument("--hardware", help="hardware file or preset (overrides the file's)")
    s.add_argument("--samples", type=_positive_int,
                   help="test samples per point (overrides the file's)")
    s.add_argument("--recalibrate", action=argparse.BooleanOptionalAction, default=None,
                   help="re-time the program's costs before every point instead of "
                   "predicting with the profile as detected (overrides the file's)")
    s.set_defaults(fn=cmd_validate)

    s = sub.add_parser("sweep", help="design-space sweep over an experiment (kind: sweep)")
    s.add_argument("config", help="sweep YAML")
    s.add_argument("-o", "--output", help="directory for results.jsonl, CSV, plots")
    s.add_argument("--dry-run", action="store_true", help="list the points and stop")
    s.add_argument("--resume", action="store_true", help="skip points already in "
                   "DIR/results.jsonl")
    s.add_argument("--workers", type=int, help="local worker processes (default: all cores)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--scheduler", help="run on an existing Dask cluster (tcp://HOST:PORT)")
    g.add_argument("--dask-local", type=int, metavar="N", help="start a Dask LocalCluster "
                   "of N worker processes")
    s.add_argument("--cache", help="folder of the shared hardware-independent pieces "
                   "(traces, workloads, reuse profiles; default DIR/cache)")
    s.add_argument("--cache-limit", metavar="SIZE", help="size limit of the cache folder "
                   "(e.g. 500MB, 2GiB; 'none': unbounded; default 1 GiB): the least "
                   "recently used pieces are removed beyond it")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_sweep)

    s = sub.add_parser("train", help="train a network config (needs simsnn[train])")
    s.add_argument("config")
    s.add_argument("--data", default="mnist")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("-o", "--output", required=True,
                   help="network YAML to write (weights go to the NPZ beside it)")
    s.set_defaults(fn=cmd_train)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from hwmodels.errors import HardwareError
    try:
        return int(args.fn(args) or 0)
    except (SimsnnError, HardwareError) as exc:
        print(f"simsnn: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = {"torch": "train", "nir": "nir", "mlxtend": "data", "sklearn": "data",
                 "matplotlib": "plot", "distributed": "dask",
                 "dask": "dask"}.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"simsnn: error: this command needs the optional package {exc.name!r}: "
              f"pip install 'simsnn[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
