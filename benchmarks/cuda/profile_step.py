"""Where an oxmx GPU training step spends its device time, kernel by kernel.

Runs benchmarks/run_nn.py's case (default gpt2, compiled) on the GPU and records one
step's kernels with CUPTI through torch.profiler in the same process. torch is used only
as the profiler here: it launches nothing, and no convolution runs, so its cuDNN copy is
never loaded next to oxmx's. Prints the kernels by total device time, grouped by name,
and the sum against the step's wall time.

    /opt/torch/.venv/bin/python benchmarks/cuda/profile_step.py [--case gpt2] [--eager] [--top 40]
"""

import argparse
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", default="gpt2")
    ap.add_argument("--eager", action="store_true")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--steps", type=int, default=2, help="steps recorded (times are per step)")
    ap.add_argument("--launches", type=int, default=0,
                    help="also list this many of the longest single launches with grid, block, registers")
    ap.add_argument("--gaps", type=int, default=0,
                    help="also list the GPU's idle time per step and this many of its longest gaps between kernels")
    ap.add_argument("--host", action="store_true",
                    help="also split the CUDA backend's host time per step by phase (OXMX_CUDA_PROFILE=1)")
    args = ap.parse_args()
    if args.host:
        import os

        os.environ["OXMX_CUDA_PROFILE"] = "1"  # read at the backend's first timed phase

    import run_nn

    fw = run_nn.MLXLike("oxmx", "oxmx", gpu=True)
    run, _ = fw.build(args.case, compiled=not args.eager)
    for i in range(3):
        run(i)
    t = time.perf_counter()
    if args.host:
        from oxmx import _oxmx

        _oxmx._cuda_profile(True)
        _oxmx._cuda_profile_ops(True)
    for i in range(3):
        run(i)
    wall = (time.perf_counter() - t) / 3
    build, ev, sync = (sum(p[k] for p in run.phases[-3:]) / 3 * 1e3 for k in range(3))
    print(f"phases per step: build {build:.2f} ms (the compiled call), mx.eval {ev:.2f} ms, "
          f"synchronize {sync:.2f} ms")
    if args.host:
        print("host time per step by phase (ms, calls):")
        for name, ns, n in _oxmx._cuda_profile(True):
            print(f"  {name:8s} {ns / 3e6:8.2f} ms {n // 3:7d}")
        print("host time per step in the backend's run, by primitive (ms, calls, us/call):")
        for name, ns, n in _oxmx._cuda_profile_ops(True)[:20]:
            print(f"  {name:24s} {ns / 3e6:8.2f} ms {n // 3:7d} {ns / max(n, 1) / 1e3:8.1f}")

    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for i in range(args.steps):
            run(i)
    groups = defaultdict(lambda: [0.0, 0])
    each = defaultdict(list)
    for ev in prof.events():
        if ev.device_type != torch.autograd.DeviceType.CUDA:
            continue
        # NVRTC kernels carry their shape/dtype in the name: group by the stem.
        name = re.sub(r"_[0-9a-f]{8,}$", "", ev.name)
        groups[name][0] += ev.device_time_total / 1e3 / args.steps
        groups[name][1] += 1
        each[name].append(ev.device_time_total / 1e3)
    total = sum(v[0] for v in groups.values())
    print(f"{args.case} {'eager' if args.eager else 'compiled'}: wall {wall * 1e3:.2f} ms/step, "
          f"kernels {total:.2f} ms/step, {sum(v[1] for v in groups.values()) // args.steps} launches/step")
    for name, (ms, n) in sorted(groups.items(), key=lambda kv: -kv[1][0])[: args.top]:
        big = sorted(each[name], reverse=True)
        spread = " ".join(f"{t:.3f}" for t in big[:4])
        over = sum(t >= 0.05 for t in big) // args.steps
        print(f"{ms:9.3f} ms {n // args.steps:6d}x  {name[:60]:60s} largest {spread}; {over}/step >= 50 us")
    if args.launches or args.gaps:
        kernels = trace_kernels(prof)
    if args.launches:
        print_launches(kernels, args.launches)
    if args.gaps:
        print_gaps(kernels, args.gaps, args.steps)


def trace_kernels(prof):
    """The recording's kernels (Chrome trace events: ts and dur in us, args)."""
    import json
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        prof.export_chrome_trace(f.name)
        trace = json.load(open(f.name))
    return [e for e in trace.get("traceEvents", []) if e.get("cat") == "kernel"]


def print_launches(kernels, count):
    """The longest single kernels of the recording."""
    kernels = sorted(kernels, key=lambda e: -e.get("dur", 0))
    print(f"longest {count} launches (us, grid, block, registers/thread, shared bytes):")
    for e in kernels[:count]:
        a = e.get("args", {})
        print(f"  {e.get('dur', 0):9.1f}  grid {a.get('grid')} block {a.get('block')} "
              f"regs {a.get('registers per thread')} smem {a.get('shared memory')}  {e.get('name', '')[:90]}")


def print_gaps(kernels, count, steps):
    """Idle time between consecutive kernels: the total per step (gaps under 5 ms, the
    rest being the host between steps) and the longest gaps with the kernels around them."""
    ks = sorted(kernels, key=lambda e: e.get("ts", 0))
    gaps = []
    for a, b in zip(ks, ks[1:]):
        g = b["ts"] - (a["ts"] + a.get("dur", 0))
        if g > 0:
            gaps.append((g, a.get("name", ""), b.get("name", "")))
    inside = [g for g in gaps if g[0] < 5000]
    total = sum(g[0] for g in inside) / steps / 1e3
    small = sum(g[0] for g in inside if g[0] < 10) / steps / 1e3
    print(f"GPU idle between kernels: {total:.2f} ms/step ({small:.2f} ms in gaps under 10 us); "
          f"between steps: {[round(g[0] / 1e3, 2) for g in gaps if g[0] >= 5000]} ms")
    print(f"longest {count} gaps inside a step (us, kernel before -> kernel after):")
    for g, a, b in sorted(inside, key=lambda g: -g[0])[:count]:
        print(f"  {g:8.1f}  {a[:50]} -> {b[:50]}")


if __name__ == "__main__":
    main()
