"""Kernel time of oxmx's batch-1 4-bit GEMV on the GPU, without host or launch overhead.

Run under Nsight Compute on the GPU machine (scripts/gpu_gemv_kernel_time.sh does this):
each kernel is timed alone with the L2 flushed before it (``--cache-control all``), so
its bytes come from HBM, as in a decode step that streams every layer's weights once.

    ncu --metrics gpu__time_duration.sum --cache-control all --clock-control none \
        --csv python benchmarks/cuda/gemv_kernel_time.py N K DTYPE GROUP

The script runs setup, then REPEAT rounds of one product per matrix (each its own
``mx.eval``, as decode runs them); the wrapper script reports the median time of the
last REPEAT x 4 kernels (those products).
"""

import sys

import numpy as np

import oxmx.core as mx

REPEAT = 3


def main():
    n, k = int(sys.argv[1]), int(sys.argv[2])
    dtype = getattr(mx, sys.argv[3])
    gs = int(sys.argv[4])
    mats = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal((1, k), dtype=np.float32)).astype(dtype)
    weights = []
    for _ in range(mats):
        w = mx.array(rng.standard_normal((n, k), dtype=np.float32) * 0.02).astype(dtype)
        weights.append(mx.quantize(w, group_size=gs, bits=4))
    mx.eval(x, weights)
    # one call of each first: kernels compiled and cached before the measured launches
    mx.eval([mx.quantized_matmul(x, *t, group_size=gs, bits=4) for t in weights])
    mx.synchronize()
    for _ in range(REPEAT):
        for t in weights:
            mx.eval(mx.quantized_matmul(x, *t, group_size=gs, bits=4))
    mx.synchronize()
    packed = n * k // 2
    print(f"bytes per product: {packed + 2 * 2 * n * (k // gs)}", flush=True)


if __name__ == "__main__":
    main()
