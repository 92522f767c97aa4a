#!/usr/bin/env bash
# Host detection and validation on a second CPU (the fidelity issue's second CPU), as one prepared script.
#
# Here (with network access to PyPI), once:   scripts/second_cpu.sh download
#   fetches wheels of the dependencies the device machine lacks (simpy, pydantic and its
#   parts, mlxtend), at the versions of this environment, for CPython 3.12 into .whl/
#   (ignored by git).
# There (numpy, scipy, numba, pyyaml, h5py, tqdm present):   scripts/second_cpu.sh run
#   installs those wheels into /tmp/site (when .whl/ holds any), records the machine and
#   scripts/parallel_probe.py's parallel-call timings (env.txt), detects the host
#   (host.yaml, detect.log) and validates configs/validation/many-cores.yaml at 1, 2, 4, 8 and 16 cores (those above the cores this
#   process may use are left out) on the detected profile: validate.log, summary.json,
#   points.csv, points.json, predicted_vs_measured.png, all in $OUT (or ./second-cpu-out).
#   SECOND_CPU_BUDGET (seconds, default 540) bounds detection + validation together; the
#   per-point lines of validate.log survive a run cut short. SECOND_CPU_PROFILE=FILE skips
#   the detection and validates on FILE (e.g. configs/hardware/second-cpu.yaml, the profile
#   an earlier run detected there).
set -uo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  download)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
          --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
    pins=$(python3 -m pip list --format=freeze 2>/dev/null | grep -i -E \
      '^(simpy|pydantic|pydantic[-_]core|annotated[-_]types|typing[-_]inspection|typing[-_]extensions|mlxtend)==')
    # shellcheck disable=SC2086
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${plat[@]}" -d .whl ${pins:-simpy pydantic pydantic-core \
      annotated-types typing-inspection typing-extensions mlxtend}
    ;;
  run)
    out="${OUT:-second-cpu-out}"
    mkdir -p "$out"
    budget="${SECOND_CPU_BUDGET:-540}"
    {
      date -u; uname -a; python3 --version; nproc
      lscpu 2>/dev/null || head -30 /proc/cpuinfo
      grep -H . /sys/devices/system/cpu/cpu0/cache/index*/{level,type,size,ways_of_associativity,shared_cpu_list} 2>/dev/null
      free -g 2>/dev/null
      env | grep -E '^(OMP|KMP|GOMP|MKL|NUMBA|TBB)_' || echo "no OMP/KMP/GOMP/MKL/NUMBA/TBB variables set"
      python3 -c 'import numpy, scipy, numba, yaml; print("numpy", numpy.__version__, "scipy", scipy.__version__, "numba", numba.__version__)'
    } > "$out/env.txt" 2>&1
    export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
    if compgen -G '.whl/*.whl' > /dev/null; then
      python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
      export PYTHONPATH="/tmp/site:$PWD"
    fi
    # a parallel layer call back to back and after serial gaps, per thread count (seconds)
    timeout 60 python3 scripts/parallel_probe.py >> "$out/env.txt" 2>&1
    if [ -n "${SECOND_CPU_PROFILE:-}" ]; then  # a profile detected there before
      hw="$SECOND_CPU_PROFILE"
      echo "== no detection: validating on $hw" | tee "$out/detect.log"
    else
      echo "== hw detect ($(date -u +%T))"
      # one round of the program benchmarks: validation re-times them in its own rounds
      timeout 240 python3 -m simsnn.cli hw detect --rounds 1 --max-rounds 3 -o "$out/host.yaml" 2>&1 \
        | tee "$out/detect.log"
      hw="$out/host.yaml"
    fi
    if [ ! -s "$hw" ]; then
      echo "hw detect wrote no profile: validating on the xeon-16c preset instead" \
        | tee -a "$out/detect.log"
      hw=xeon-16c
    fi
    # the many-core set, less the core counts this process may not use
    cfg=configs/validation/many-cores.run.yaml
    python3 - "$cfg" <<'PY' || exit 1
import os, sys, yaml
src = "configs/validation/many-cores.yaml"
cfg = yaml.safe_load(open(src))
n = len(os.sched_getaffinity(0))
for p in cfg["points"]:
    p["cores"] = [c for c in p["cores"] if c <= n] or [1]
yaml.safe_dump(cfg, open(sys.argv[1], "w"), sort_keys=False)
print(f"validating at cores <= {n}")
PY
    left=$((budget - SECONDS))
    echo "== validate ($(date -u +%T), ${left} s left)"
    timeout "$left" python3 -m simsnn.cli validate "$cfg" --hardware "$hw" -o "$out" 2>&1 \
      | tee "$out/validate.log"
    rc=$?
    rm -f "$cfg"
    echo "== done ($(date -u +%T), rc $rc)"
    exit "$rc"
    ;;
  *)
    echo "usage: scripts/second_cpu.sh download|run" >&2
    exit 2
    ;;
esac
