#!/usr/bin/env python3
"""GPU benchmarks (issue #4), oxmx or torch in this process (run each in its own
process: they load different cuDNN/CUDA library copies).

    python benchmarks/run_gpu.py oxmx
    python benchmarks/run_gpu.py torch

Prints one line per case: name, median time, throughput.
"""

import statistics
import sys
import time

import numpy as np

N_ELEM = 1 << 28
CASES = ["a + b f32 2^28", "a * b + c f32 2^28", "sum f32 2^28", "matmul f32 4096", "softmax f32 8192^2", "small add overhead"]


def timeit(fn, sync, reps=20):
    fn()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def run_oxmx():
    import oxmx.core as mx

    sync = mx.synchronize
    r = np.random.default_rng(0)
    a = mx.random.uniform(shape=(N_ELEM,))
    b = mx.random.uniform(shape=(N_ELEM,))
    c = mx.random.uniform(shape=(N_ELEM,))
    mx.eval(a, b, c)
    out = {}
    out[CASES[0]] = (timeit(lambda: mx.eval(a + b), sync), 3 * 4 * N_ELEM, "GB/s")
    out[CASES[1]] = (timeit(lambda: mx.eval(a * b + c), sync), 4 * 4 * N_ELEM, "GB/s")
    out[CASES[2]] = (timeit(lambda: mx.eval(a.sum()), sync), 4 * N_ELEM, "GB/s")
    m = mx.array(r.standard_normal((4096, 4096)).astype(np.float32))
    mx.eval(m)
    out[CASES[3]] = (timeit(lambda: mx.eval(m @ m), sync), 2 * 4096**3, "GFLOP/s")
    try:
        s = mx.random.uniform(shape=(8192, 8192))
        mx.eval(s)
        out[CASES[4]] = (timeit(lambda: mx.eval(mx.softmax(s, axis=-1)), sync), 2 * 4 * 8192 * 8192, "GB/s")
    except Exception as e:  # not on the GPU yet
        out[CASES[4]] = (float("nan"), 0, f"({type(e).__name__})")
    x = mx.ones((16,))
    mx.eval(x)

    def small():
        y = x
        for _ in range(100):
            y = y + 1.0
            mx.eval(y)

    out[CASES[5]] = (timeit(small, sync, reps=10) / 100, 1, "ops/s")
    return out


def run_torch():
    import torch

    dev = "cuda"
    sync = torch.cuda.synchronize
    a, b, c = (torch.rand(N_ELEM, device=dev) for _ in range(3))
    out = {}
    out[CASES[0]] = (timeit(lambda: a + b, sync), 3 * 4 * N_ELEM, "GB/s")
    out[CASES[1]] = (timeit(lambda: a * b + c, sync), 4 * 4 * N_ELEM, "GB/s")
    out[CASES[2]] = (timeit(lambda: a.sum(), sync), 4 * N_ELEM, "GB/s")
    torch.backends.cuda.matmul.allow_tf32 = False
    m = torch.randn(4096, 4096, device=dev)
    out[CASES[3]] = (timeit(lambda: m @ m, sync), 2 * 4096**3, "GFLOP/s")
    s = torch.rand(8192, 8192, device=dev)
    out[CASES[4]] = (timeit(lambda: torch.softmax(s, -1), sync), 2 * 4 * 8192 * 8192, "GB/s")
    x = torch.ones(16, device=dev)

    def small():
        y = x
        for _ in range(100):
            y = y + 1.0
            torch.cuda.synchronize()

    out[CASES[5]] = (timeit(small, sync, reps=10) / 100, 1, "ops/s")
    return out


if __name__ == "__main__":
    who = sys.argv[1] if len(sys.argv) > 1 else "oxmx"
    res = run_oxmx() if who == "oxmx" else run_torch()
    for k in CASES:
        t, work, unit = res[k]
        rate = work / t / (1e9 if unit in ("GB/s", "GFLOP/s") else 1) if t == t and t > 0 else float("nan")
        print(f"{who:6s} | {k:22s} | {t * 1e3:10.3f} ms | {rate:12.1f} {unit}")
