#!/usr/bin/env python3
"""Transcendental functions on the GPU (issue #18): oxmx and torch, each in its own process.

oxmx computes float32 transcendentals in double and rounds once (to hold them to the same
1-ulp bound as the CPU kernels, tests/test_math_ulp.py with OXMX_ULP_DEVICE=gpu); torch
uses CUDA's float functions (up to 2-4 ulp). This measures what that costs: 2**26 float32
elements per call, best of 20 after warm-up, and the bandwidth over the bytes read and
written next to the same framework's plain `abs` (a copy-speed kernel).

    python benchmarks/run_math_gpu.py [--markdown]      # on the GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_quant import best  # noqa: E402  (fastest of repeated timings, ended by a sync)

N = 2**26
UNARY = ["abs", "exp", "expm1", "log", "log1p", "sin", "cos", "tan", "tanh", "sinh", "arcsin",
         "arctan", "arcsinh", "erf", "sigmoid"]
BINARY = ["arctan2", "power", "logaddexp"]
TORCH = {"arcsin": "asin", "arctan": "atan", "arcsinh": "asinh", "arctan2": "atan2",
         "power": "pow", "logaddexp": "logaddexp"}


def inputs(np):
    r = np.random.default_rng(0)
    x = r.uniform(0.05, 0.95, N).astype(np.float32)  # inside every function's domain
    y = r.uniform(0.5, 2.0, N).astype(np.float32)
    return x, y


def run_oxmx():
    import numpy as np
    import oxmx.core as mx

    xn, yn = inputs(np)
    x, y = mx.array(xn), mx.array(yn)
    mx.eval(x, y)
    out = {}
    for f in UNARY + BINARY:
        fn = getattr(mx, f)
        call = (lambda: mx.eval(fn(x, y))) if f in BINARY else (lambda: mx.eval(fn(x)))
        out[f] = best(call, sync=mx.synchronize)
    print(json.dumps(out))


def run_torch():
    import numpy as np
    import torch

    xn, yn = inputs(np)
    x, y = torch.from_numpy(xn).cuda(), torch.from_numpy(yn).cuda()
    out = {}
    for f in UNARY + BINARY:
        fn = torch.sigmoid if f == "sigmoid" else getattr(torch, TORCH.get(f, f))
        call = (lambda: fn(x, y)) if f in BINARY else (lambda: fn(x))
        out[f] = best(call, sync=torch.cuda.synchronize)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", choices=["oxmx", "torch"])
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()
    if a.worker:
        return run_oxmx() if a.worker == "oxmx" else run_torch()
    from gpu_processes import run_json_process

    res = {w: run_json_process(w, [sys.executable, __file__, "--worker", w], 600) or {} for w in ("oxmx", "torch")}
    print("| function | oxmx us | GB/s (vs its abs) | torch us | torch / oxmx |")
    print("|---|---:|---:|---:|---:|")
    ox, th = res["oxmx"], res["torch"]
    for f in UNARY + BINARY:
        nbytes = 4 * N * (3 if f in BINARY else 2)
        t, tt = ox.get(f), th.get(f)
        gbs = f"{nbytes / t / 1e9:.0f} ({t and ox.get('abs', 0) / t * (1.5 if f in BINARY else 1):.2f}x)" if t else "-"
        ratio = f"{tt / t:.2f}x" if t and tt else "-"
        print(f"| {f} | {t * 1e6:.0f} | {gbs} | {tt * 1e6 if tt else float('nan'):.0f} | {ratio} |" if t else f"| {f} | - | - | - | - |")


if __name__ == "__main__":
    main()
