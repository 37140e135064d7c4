#!/usr/bin/env bash
# Run the Python test suite on the GPU machine with the GPU as the default device.
#
# Here (the build machine):  make build gpu-wheels   # the extension, and the test-only
#                                                   # packages the GPU machine lacks
# Then call the device tool with:
#   command: bash scripts/gpu_test.sh [pytest args]
#   carry:   ["python/oxmx/_oxmx.abi3.so", ".gpu_wheels"]
# It prints the GPU, the GPU-only tests' result, then the whole suite's summary line.
#
# One device call may run at most 10 minutes and the whole suite takes about 8 on an
# H200, so it can be split:
#   PART=gpu     only tests/test_gpu.py (about 2 minutes)
#   PART=ulp     only the ulp bounds of the math functions, measured on the GPU
#                (tests/test_math_ulp.py with OXMX_ULP_DEVICE=gpu; prints the table)
#   PART=suite   only the whole suite (without the separate test_gpu.py run)
#   SHARD=k/n    with PART=suite: only the k-th of n groups of test files (1-based),
#                e.g. SHARD=1/2 and SHARD=2/2 in two calls
#   JOBS=j       with PART=suite: j pytest processes at once, each on every j-th file of
#                the shard (JOBS=4 runs the whole suite in about 7 minutes on the H200)
# Each failure is written to $OUT/fails*.txt as it happens (scripts/pytest_fail_log.py),
# so a call that reaches its time limit still reports what had failed.
# With OXMX_CUDA_STRICT=1 any op that would fall back to the CPU backend fails instead.
set -u
PY=${PY:-/opt/torch/.venv/bin/python}
PART=${PART:-all}
SHARD=${SHARD:-1/1}
JOBS=${JOBS:-1}
export PYTHONPATH="$PWD/python:$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
# The GPU machine has no internet: test-only packages (safetensors, gguf) come as wheels.
if [ -d .gpu_wheels ]; then
    # a wheel is a zip of its importable files: unpacking it is enough (no pip needed)
    $PY -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/oxmx_test_deps') for w in glob.glob('.gpu_wheels/*.whl')]"
    export PYTHONPATH="$PYTHONPATH:/tmp/oxmx_test_deps"
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY - <<'PY'
import oxmx.core as mx
print("oxmx sees a GPU:", mx.cuda.is_available(), "default device:", mx.default_device())
if mx.cuda.is_available():
    print(mx.device_info(mx.gpu))
PY
OUTDIR=${OUT:-/tmp}
if [ "$PART" = gpu ] || [ "$PART" = all ]; then
    $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py "$@" 2>&1 | tee "$OUTDIR/gpu_tests.log" | tail -25
fi
if [ "$PART" = ulp ] || [ "$PART" = all ]; then
    OXMX_ULP_DEVICE=gpu $PY -m pytest -q -s -p no:cacheprovider tests/test_math_ulp.py -k ulp "$@" 2>&1 \
        | tee "$OUTDIR/ulp_gpu.log" | grep -vE "^\.+|^$" | tail -40
fi
if [ "$PART" = suite ] || [ "$PART" = all ]; then
    k=${SHARD%/*}
    n=${SHARD#*/}
    # every n-th test file from the k-th on (the differential harness needs real MLX,
    # which the GPU machine lacks: it would only skip)
    files=$(ls tests/test_*.py tests/*/test_*.py | grep -v '^tests/differential/' | awk -v k="$k" -v n="$n" '(NR - k) % n == 0')
    echo "---- suite with the GPU as default device (shard $SHARD: $(echo "$files" | wc -l) files, $JOBS jobs, strict=${OXMX_CUDA_STRICT:-0}) ----"
    for j in $(seq 0 $((JOBS - 1))); do
        part=$(echo "$files" | awk -v j="$j" -v n="$JOBS" '(NR - 1) % n == j')
        # shellcheck disable=SC2086
        FAIL_LOG="$OUTDIR/fails_$j.txt" $PY -m pytest -q -p no:cacheprovider -p pytest_fail_log $part "$@" > "$OUTDIR/suite_$j.log" 2>&1 &
    done
    wait
    cat "$OUTDIR"/fails_*.txt 2>/dev/null | cut -c1-220 | head -60
    tail -q -n1 "$OUTDIR"/suite_*.log
fi
