#!/usr/bin/env python3
"""The floor under issue #13's isolated-GEMV bar: how fast ONE kernel can read a buffer
the size of a 4-bit weight matrix (plus its scales and biases) when the L2 is cold, on
this GPU. Run with torch on the GPU machine:

    /opt/torch/.venv/bin/python benchmarks/cuda/copy_floor.py

For each size: a device-to-device copy (bytes read, the GEMV's traffic) and a sum (a
read-only kernel), each launched alone after a 512 MiB write evicts the L2, timed with
CUDA events (median of 30). The bar asks 0.7 x 4.8 TB/s = 3.36 TB/s of the GEMV; if a
lone read of the same bytes cannot reach it, the bar measures launch ramp and tail, not
the GEMV kernel, and belongs to back-to-back products (a decode step).
"""

import statistics

import torch

# packed words + bfloat16 scales and biases (group 64) of the matrices
SHAPES = {"4096x4096": (4096, 4096), "14336x4096": (14336, 4096), "4096x14336": (4096, 14336)}


def nbytes(n, k):
    return n * k // 2 + 2 * 2 * n * (k // 64)


def timed(fn, flush):
    ts = []
    for _ in range(30):
        flush.zero_()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) * 1e-3)
    return statistics.median(ts)


def main():
    flush = torch.empty(512 * 2**20, dtype=torch.uint8, device="cuda")
    print(torch.cuda.get_device_name(0))
    print(f"{'matrix':>12} {'MB':>7} {'copy us':>8} {'TB/s':>6} {'sum us':>8} {'TB/s':>6}")
    for name, (n, k) in SHAPES.items():
        size = nbytes(n, k)
        x = torch.ones(size // 4, dtype=torch.float32, device="cuda")
        y = torch.empty_like(x)
        tc = timed(lambda: y.copy_(x), flush)
        ts = timed(lambda: x.sum(), flush)
        print(f"{name:>12} {size / 1e6:7.2f} {tc * 1e6:8.2f} {size / tc / 1e12:6.2f} {ts * 1e6:8.2f} {size / ts / 1e12:6.2f}")


if __name__ == "__main__":
    main()
