#!/usr/bin/env bash
# The first GPU run of branch wip/gpu-flash-attention (tensor-core flash attention forward
# and backward, register norms, memoized GEMV lookups). On the build machine:
#   git checkout wip/gpu-flash-attention && make build gpu-wheels
# Device tool: command "bash scripts/gpu_wip_check.sh", carry
#   ["python/oxmx/_oxmx.abi3.so", ".gpu_wheels"]; well under 10 minutes.
# 1. the new kernels' tests (strict: no CPU fallback), failures as they happen in
#    $OUT/fails_wip.txt; 2. attention and norms against torch, new and old kernels
#    (OXMX_CUDA_NO_FLASH=1 keeps the old attention); 3. GPT-2 small train step vs torch
#    eager and torch.compile (run_nn.py --gpu --cases gpt2).
# PART=tests|bench|gpt2 runs one part (all three together may pass 10 minutes).
set -u
PART=${PART:-all}
PY=${PY:-/opt/torch/.venv/bin/python}
OUTDIR=${OUT:-/tmp}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/python:$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_wheels ]; then
    $PY -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/oxmx_test_deps') for w in glob.glob('.gpu_wheels/*.whl')]"
    export PYTHONPATH="$PYTHONPATH:/tmp/oxmx_test_deps"
fi
if [ "$PART" = tests ] || [ "$PART" = all ]; then
echo "---- tests ----"
OXMX_CUDA_STRICT=1 FAIL_LOG="$OUTDIR/fails_wip.txt" timeout 200 $PY -m pytest -q -x -p no:cacheprovider -p pytest_fail_log \
    tests/test_gpu.py -k "flash or norms" 2>&1 | tail -25
OXMX_CUDA_STRICT=1 timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_fast.py tests/test_quantize.py 2>&1 | tail -3
fi
if [ "$PART" = bench ] || [ "$PART" = all ]; then
echo "---- attention and norms vs torch (new kernels) ----"
timeout 120 $PY benchmarks/run_gpu_kernels.py 2>&1 | tail -8
echo "---- old attention kernel ----"
OXMX_CUDA_NO_FLASH=1 timeout 100 $PY benchmarks/run_gpu_kernels.py oxmx 2>&1 | tail -6
fi
if [ "$PART" = gpt2 ] || [ "$PART" = all ]; then
echo "---- GPT-2 small train step ----"
timeout 240 $PY benchmarks/run_nn.py --gpu --cases gpt2 --no-write --process-timeout 110 2>&1 | tail -25
fi
