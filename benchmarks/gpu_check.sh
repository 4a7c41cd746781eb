#!/usr/bin/env bash
# The one call on the GPU machine: GPU tests against the NumPy reference,
# compute-sanitizer memcheck, and the GPU benchmarks against cuDNN. Writes logs and
# JSON under $OUT (default: a fresh temporary folder). Run from the repository root:
#   CNNKERN_COMMIT=<sha> bash benchmarks/gpu_check.sh
# CNNKERN_BENCH_SUITE (default resnet50,vgg16) and CNNKERN_BENCH_ARGS (extra
# `cnnkern bench` options) shape the benchmark part.
set -uo pipefail
OUT=${OUT:-$(mktemp -d)}
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/device.txt"
# the device gets the working tree without .git: pass CNNKERN_COMMIT=<sha> to record it
echo "${CNNKERN_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}" | tee "$OUT/commit.txt"
echo "== GPU tests"
python3 -m pytest -q -m gpu tests -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.log" || status=1
echo "== compute-sanitizer memcheck"
for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 3 \
        python3 -m pytest -q -m gpu tests -k sanitizer -p no:cacheprovider 2>&1 \
        | tee "$OUT/$tool.log" | tail -n 4 || status=1
done
echo "== benchmarks vs cuDNN"
# the plot needs matplotlib; without it the table and JSON are still written
plot=(--plot "$OUT/gpu_bench.png")
python3 -c "import matplotlib" 2>/dev/null || plot=()
python3 -m cnnkern bench --device gpu --suite ${CNNKERN_BENCH_SUITE:-resnet50,vgg16} \
    --json "$OUT/gpu_bench.json" "${plot[@]}" --strict ${CNNKERN_BENCH_ARGS:-} 2>&1 \
    | tee "$OUT/bench.log" || status=1
echo "results in $OUT; status $status"
exit $status
