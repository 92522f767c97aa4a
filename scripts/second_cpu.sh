#!/usr/bin/env bash
# Host detection and validation on a second CPU (issue 4, section 4), as one prepared script.
#
# Here (with network access to PyPI), once:   scripts/second_cpu.sh download
#   fetches wheels of the dependencies the device machine lacks (simpy, pydantic and its
#   parts, mlxtend) for CPython 3.12 into .whl/ (ignored by git).
# There (numpy, scipy, numba, pyyaml, h5py, matplotlib present):   scripts/second_cpu.sh run
#   installs those wheels and this checkout into /tmp/site, detects the host, validates
#   configs/validation/many-cores.yaml at 1, 4, 8 and 16 cores, and copies everything to
#   $OUT (or ./second-cpu-out). About 5 minutes on a 16-core Xeon (estimate).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  download)
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64)
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp "${plat[@]}" -d .whl \
      simpy pydantic pydantic-core annotated-types typing-inspection typing-extensions mlxtend
    ;;
  run)
    out="${OUT:-second-cpu-out}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
    python3 -m simsnn.cli hw detect -o "$out/host.yaml" 2>&1 | tee "$out/detect.log"
    python3 -m simsnn.cli validate configs/validation/many-cores.yaml \
      --hardware "$out/host.yaml" -o "$out/validation" 2>&1 | tee "$out/validate.log"
    cp "$out"/validation/* "$out"/ 2>/dev/null || true
    ;;
  *)
    echo "usage: scripts/second_cpu.sh download|run" >&2
    exit 2
    ;;
esac
