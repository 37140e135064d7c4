"""Wall time against device time for the single-op GPU benchmarks (run_gpu_kernels.py's
attention and norms, run_gpu.py's tiny ops): which of them the kernels bound and which
the host does. Kernels are recorded with CUPTI through torch.profiler in the same
process; torch launches nothing and loads no cuDNN here.

    /opt/torch/.venv/bin/python benchmarks/cuda/kernel_times.py [--reps 10]

Per case: the median wall time of one synchronized call, the device time of its kernels
(per call) and their launches, the largest kernels by name.
"""

import argparse
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def builders(mx):
    """Each case as a call that builds its graph (unevaluated)."""
    import run_gpu
    import run_gpu_kernels as k

    bf = mx.bfloat16
    q, kk, v, ct = (mx.random.normal((k.B, k.H, k.L, k.D)).astype(bf) for _ in range(4))
    attn = lambda q, kk, v: mx.fast.scaled_dot_product_attention(q, kk, v, scale=k.D**-0.5, mask="causal")
    dq = mx.random.normal((1, k.DEC_H, 1, k.DEC_D)).astype(bf)
    dk, dv = (mx.random.normal((1, k.DEC_H, k.DEC_KV, k.DEC_D)).astype(bf) for _ in range(2))
    x = mx.random.normal((k.ROWS, k.COLS)).astype(bf)
    w, b = mx.ones((k.COLS,), bf), mx.zeros((k.COLS,), bf)
    t = mx.ones((64, 64))
    mx.eval(q, kk, v, ct, dq, dk, dv, x, w, b, t)

    def tiny():
        y = t
        for i in range(run_gpu.TINY_STEPS):
            y = y * 1.0001 + 0.5 if i % 2 else mx.sin(y)
        return y

    return {
        "sdpa causal fwd": lambda: attn(q, kk, v),
        "sdpa causal fwd+bwd": lambda: mx.vjp(attn, [q, kk, v], [ct]),
        "sdpa decode": lambda: mx.fast.scaled_dot_product_attention(dq, dk, dv, scale=k.DEC_D**-0.5),
        "layer_norm": lambda: mx.fast.layer_norm(x, w, b, 1e-5),
        "rms_norm": lambda: mx.fast.rms_norm(x, w, 1e-5),
        f"tiny ops x{run_gpu.TINY_OPS}": tiny,
    }


def cases(mx):
    """Each case as a call that builds and evaluates its graph."""
    return {name: (lambda f=f: mx.eval(f())) for name, f in builders(mx).items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--top", type=int, default=4)
    ap.add_argument("--host", action="store_true",
                    help="also split the CUDA backend's host time per call by phase (OXMX_CUDA_PROFILE=1)")
    args = ap.parse_args()
    if args.host:
        import os

        os.environ["OXMX_CUDA_PROFILE"] = "1"  # read at the backend's first timed phase
    import oxmx.core as mx
    import torch
    from torch.profiler import ProfilerActivity, profile

    for name, fn in cases(mx).items():
        fn()
        mx.synchronize()
        walls = []
        if args.host:
            from oxmx import _oxmx

            _oxmx._cuda_profile(True)
            _oxmx._cuda_profile_ops(True)
        for _ in range(args.reps):
            t = time.perf_counter()
            fn()
            mx.synchronize()
            walls.append(time.perf_counter() - t)
        if args.host:
            phases = "  ".join(f"{n} {ns / args.reps / 1e3:.0f}" for n, ns, _ in _oxmx._cuda_profile(True) if ns)
            ops = "  ".join(f"{n} {ns / max(c, 1) / 1e3:.1f}" for n, ns, c in _oxmx._cuda_profile_ops(True)[:6])
            print(f"{name}: host us/call by phase: {phases}\n    us per run by primitive: {ops}")
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(args.reps):
                fn()
                mx.synchronize()
        groups = defaultdict(lambda: [0.0, 0])
        for ev in prof.events():
            if ev.device_type != torch.autograd.DeviceType.CUDA:
                continue
            g = groups[re.sub(r"_[0-9a-f]{8,}$", "", ev.name)]
            g[0] += ev.device_time_total / 1e3 / args.reps
            g[1] += 1
        dev = sum(g[0] for g in groups.values())
        launches = sum(g[1] for g in groups.values()) / args.reps
        wall = statistics.median(walls) * 1e3
        print(f"{name:22s} wall {wall:8.3f} ms  kernels {dev:8.3f} ms  {launches:6.0f} launches  "
              f"host-bound {max(wall - dev, 0):7.3f} ms")
        for kname, (ms, n) in sorted(groups.items(), key=lambda kv: -kv[1][0])[: args.top]:
            print(f"    {ms:8.3f} ms {n / args.reps:6.0f}x  {kname[:80]}")


if __name__ == "__main__":
    main()
