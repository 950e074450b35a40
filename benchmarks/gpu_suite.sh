#!/usr/bin/env bash
# The GPU suite in one call (see benchmarks/gpu_suite.py). On the GPU machine, with the wheels from
# benchmarks/gpu_wheels.sh carried as .whl/:
#
#   bash benchmarks/gpu_suite.sh                    # CUDA; results in $OUT/suite.{json,md}
#   bash benchmarks/gpu_suite.sh --device cpu --quick --out /tmp/suite     # dry run on a CPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
exec "$PYTHON" benchmarks/gpu_suite.py "$@"
