#!/usr/bin/env bash
# The speed benchmarks on one accelerator, unchanged code, in under ~8 minutes.
#
#   scripts/gpu_bench.sh [OUT_DIR]        # default runs/bench_gpu
#
# Needs a Python whose jax sees the accelerator (set PYTHON, default .venv/bin/python);
# nothing is downloaded. Writes OUT_DIR/quick/speed.{md,json} (`vograd bench speed --quick`)
# and OUT_DIR/gpu/speed.{md,json} (throughput on every task and window, the learned
# optimizer's cost against optax.adam, memory against window, FLOP/s against the matmul peak),
# and OUT_DIR/devices.txt. Absolute times hold on an accelerator: docs/performance.md keeps
# the table.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${1:-runs/bench_gpu}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export VOGRAD_COMPILE_CACHE=$OUT/xla-cache
"$PYTHON" - <<'PY' | tee "$OUT/devices.txt"
import jax
devices = jax.devices()
print("jax", jax.__version__, "backend", jax.default_backend(), "devices", devices)
if jax.default_backend() == "cpu":
    raise SystemExit("gpu_bench: jax sees no accelerator here (backend cpu); install jax with "
                     "its CUDA plugin into $PYTHON's environment first")
PY
timeout 150 "$PYTHON" -m vograd.benchmarks.speed.run --quick --out "$OUT/quick" > "$OUT/quick.log" 2>&1 \
  || echo "gpu_bench: the quick run failed or ran past 150 s; see $OUT/quick.log"
timeout 330 "$PYTHON" -m vograd.benchmarks.speed.run --preset gpu --out "$OUT/gpu" > "$OUT/gpu.log" 2>&1 \
  || echo "gpu_bench: the gpu preset failed or ran past 330 s; see $OUT/gpu.log"
tail -n 5 "$OUT/quick.log" "$OUT/gpu.log"
