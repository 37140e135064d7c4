#!/usr/bin/env bash
# Compile the generated CUDA kernel sources with NVRTC on a machine without a GPU (the
# `oxmx-cuda` unit tests that call crate::nvrtc_check: every elementwise expression per
# dtype, the fast kernels). NVRTC and the CUDA headers come from NVIDIA's PyPI wheels,
# unpacked once into ~/.cache/oxmx/nvrtc (about 95 MB of downloads).
#
#   bash scripts/nvrtc_check.sh            # then the same cargo test as `make test-rust`
set -euo pipefail
CACHE=${NVRTC_CACHE:-$HOME/.cache/oxmx/nvrtc}
PY=${PY:-.venv/bin/python}
if [ ! -e "$CACHE/x/nvidia/cuda_nvrtc/lib/libnvrtc.so" ]; then
    mkdir -p "$CACHE"
    "$PY" -m pip download --no-deps -q nvidia-cuda-nvrtc-cu12 nvidia-cuda-runtime-cu12 -d "$CACHE"
    for w in "$CACHE"/*.whl; do
        "$PY" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$w" "$CACHE/x"
    done
    ln -sf libnvrtc.so.12 "$CACHE/x/nvidia/cuda_nvrtc/lib/libnvrtc.so"
fi
log=$(mktemp)
status=0
CUDA_HOME="$CACHE/x/nvidia/cuda_runtime" LD_LIBRARY_PATH="$CACHE/x/nvidia/cuda_nvrtc/lib" \
    cargo test --release -p oxmx-cuda --lib -- --nocapture >"$log" 2>&1 || status=$?
cat "$log"
if grep -q "NVRTC not found" "$log"; then
    echo "NVRTC could not be loaded: nothing was compiled" >&2
    exit 1
fi
[ "$status" -eq 0 ] && echo "the generated CUDA sources compile"
exit "$status"
