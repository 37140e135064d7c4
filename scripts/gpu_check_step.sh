#!/usr/bin/env bash
# One device call that checks the GPU paths changed since the last GPU run and measures
# issue #15's numbers: the GPU test files under OXMX_CUDA_STRICT=1, the attention/norm
# kernels against torch, where a GPT-2 step's time goes (kernels, host phases, the GPU's
# idle gaps) and the GPT-2 step against torch. About 500 s on an H200.
#
# Here:      make build gpu-wheels
# Device:    command: bash scripts/gpu_check_step.sh
#            carry:   ["python/oxmx/_oxmx.abi3.so", ".gpu_wheels"]
# Each part's output is also written to $OUT/<part>.log.
set -u
P=${PY:-/opt/torch/.venv/bin/python}
OUT=${OUT:-/tmp/oxmx_out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/python:$PWD/scripts:/tmp/oxmx_test_deps" PYTHONUNBUFFERED=1
$P -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/oxmx_test_deps') for w in glob.glob('.gpu_wheels/*.whl')]"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
part() {  # part NAME SECONDS command...
    local name=$1 limit=$2
    shift 2
    echo "== $name"
    timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -"${TAIL:-60}"
}
TAIL=8 part tests 220 env OXMX_CUDA_STRICT=1 $P -m pytest -q -n 8 -p no:cacheprovider \
    tests/test_gpu.py tests/test_transforms.py tests/test_compile_fusion.py tests/test_fast.py \
    tests/test_elementwise.py tests/optimizers
TAIL=10 part kernels 120 $P benchmarks/run_gpu_kernels.py
TAIL=90 part profile 120 $P benchmarks/cuda/profile_step.py --host --top 30 --gaps 25
TAIL=14 part gpt2 160 $P benchmarks/run_nn.py --gpu --cases gpt2 --no-write --process-timeout 150
