#!/usr/bin/env bash
# Issue #17 on a machine with several GPUs (device kinds nvidia-h200-x2 / -x4):
#   command: bash scripts/gpu_multi.sh
#   carry:   ["python/oxmx/_oxmx.abi3.so", ".gpu_wheels"]
# 1. the distributed tests over NCCL (every collective and dtype on 1/2/4 GPUs against the
#    single-process result; average_gradients, sharded layers, data-parallel and fully
#    sharded training, a tensor-parallel Llama),
# 2. all_sum bandwidth 1 MiB - 1 GiB against torch.distributed (benchmarks/run_nccl.py),
# 3. data-parallel samples/s and loss curves on 1/2/4 GPUs (benchmarks/run_dp_scaling.py).
# NVLink multicast stays off. PART=tests|nccl|dp runs one part; logs go to $OUT.
set -u
PY=${PY:-/opt/torch/.venv/bin/python}
PART=${PART:-all}
OUTDIR=${OUT:-/tmp}
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD/python:$PWD/scripts${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_wheels ]; then
    $PY -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/oxmx_test_deps') for w in glob.glob('.gpu_wheels/*.whl')]"
    export PYTHONPATH="$PYTHONPATH:/tmp/oxmx_test_deps"
fi
nvidia-smi -L
n=$(nvidia-smi -L | grep -c '^GPU ')
if [ "$PART" = tests ] || [ "$PART" = all ]; then
    echo "---- distributed tests over NCCL ($n GPUs) ----"
    $PY -m pytest -q -p no:cacheprovider tests/distributed -k "nccl" 2>&1 | tee "$OUTDIR/dist_tests.log" | tail -15
fi
if [ "$PART" = nccl ] || [ "$PART" = all ]; then
    for k in 2 4; do
        [ "$k" -le "$n" ] && $PY benchmarks/run_nccl.py -n "$k" 2>&1 | tee "$OUTDIR/nccl_$k.log" | tail -12
    done
fi
if [ "$PART" = dp ] || [ "$PART" = all ]; then
    $PY benchmarks/run_dp_scaling.py 2>&1 | tee "$OUTDIR/dp_scaling.log" | tail -20
fi
