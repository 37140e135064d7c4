#!/usr/bin/env bash
# Issue 13 on the GPU machine: the quantization tests in strict mode (no CPU fallback),
# the quantized-matmul benchmark and the generation example's tokens/s (1B random Llama,
# float16 and 4-bit). Same set-up as scripts/gpu_test.sh:
#   command: bash scripts/gpu_quant.sh      carry: ["python/oxmx/_oxmx.abi3.so", ".gpu_wheels"]
# PART=tests|bench|all (default all).
set -u
PY=${PY:-/opt/torch/.venv/bin/python}
PART=${PART:-all}
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
if [ -d .gpu_wheels ]; then
    $PY -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/oxmx_test_deps') for w in glob.glob('.gpu_wheels/*.whl')]"
    export PYTHONPATH="$PYTHONPATH:/tmp/oxmx_test_deps"
fi
export PYTHONUNBUFFERED=1
OUTDIR=${OUT:-/tmp}
if [ "$PART" = tests ] || [ "$PART" = all ]; then
    OXMX_CUDA_STRICT=1 $PY -m pytest -q -p no:cacheprovider -x tests/test_quantize.py tests/test_gather_qmm.py tests/test_gguf_kquants.py \
        tests/nn/test_linear_embedding_dropout.py tests/nn/test_layer_transforms.py 2>&1 | tail -15
    $PY -m pytest -q -p no:cacheprovider tests/test_generate.py 2>&1 | tail -3
fi
if [ "$PART" = bench ] || [ "$PART" = all ]; then
    $PY benchmarks/run_quant.py --gpu --out "$OUTDIR/quant_gpu.md" 2>&1 | tail -12
    for bits in 0 4; do
        flag=""; [ "$bits" != 0 ] && flag="--bits $bits --group-size 64"
        $PY examples/generate.py --random-config 1b --dtype float16 $flag --prompt-tokens 128 --max-tokens 64 \
            --warmup --device gpu 2>&1 | tail -2 | tee -a "$OUTDIR/generate_gpu.txt"
    done
fi
