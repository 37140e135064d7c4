"""Where one synchronized norm call's time goes on the GPU, without any profiler loaded:
the median wall time of `run_gpu_kernels.py`'s layer_norm and rms_norm calls, split
into building the graph, `mx.eval` (the backend's launch) and `mx.synchronize`, and the
backend's host phases (`OXMX_CUDA_PROFILE`). Run it with `OXMX_NORM_THREADS=...` to try
other block shapes of the norm kernels.

    /opt/torch/.venv/bin/python benchmarks/cuda/norm_host.py [--reps 200]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    args = ap.parse_args()
    import oxmx.core as mx
    from oxmx import _oxmx
    import run_gpu_kernels as k

    x = mx.random.normal((k.ROWS, k.COLS)).astype(mx.bfloat16)
    w, b = mx.ones((k.COLS,), mx.bfloat16), mx.zeros((k.COLS,), mx.bfloat16)
    mx.eval(x, w, b)
    cases = {
        "layer_norm": lambda: mx.fast.layer_norm(x, w, b, 1e-5),
        "rms_norm": lambda: mx.fast.rms_norm(x, w, 1e-5),
    }
    threads = os.environ.get("OXMX_NORM_THREADS", "default")
    for name, build in cases.items():
        for _ in range(20):
            mx.eval(build())
        mx.synchronize()
        split = {"build": [], "eval": [], "sync": [], "wall": []}
        _oxmx._cuda_profile(True)
        for _ in range(args.reps):
            t0 = time.perf_counter()
            y = build()
            t1 = time.perf_counter()
            mx.eval(y)
            t2 = time.perf_counter()
            mx.synchronize()
            t3 = time.perf_counter()
            del y
            for key, v in (("build", t1 - t0), ("eval", t2 - t1), ("sync", t3 - t2), ("wall", t3 - t0)):
                split[key].append(v * 1e6)
        phases = "  ".join(f"{n} {ns / args.reps / 1e3:.1f}" for n, ns, _ in _oxmx._cuda_profile(False) if ns)
        med = {key: statistics.median(v) for key, v in split.items()}
        print(
            f"{name:10s} threads {threads:>7s}: wall {med['wall']:6.1f} us = build {med['build']:.1f} + eval "
            f"{med['eval']:.1f} + synchronize {med['sync']:.1f}; backend us/call: {phases}"
        )


if __name__ == "__main__":
    main()
