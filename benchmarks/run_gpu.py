#!/usr/bin/env python3
"""GPU benchmarks (issue #4): oxmx against torch on the same GPU, each library in its
own process (they load different CUDA library copies).

    python benchmarks/run_gpu.py          # both, one after the other, then a table
    python benchmarks/run_gpu.py oxmx     # one library only
    python benchmarks/run_gpu.py torch

Times are medians of 20 runs after a warm-up; throughput counts bytes read + written
(elementwise, softmax), bytes read (sum) or 2·n³ flops (matmul). torch's float32 matmul
runs without TF32, as oxmx's does by default.
"""

import json
import statistics
import subprocess
import sys
import time

N_ELEM = 1 << 28
MATMULS = [("f32", 4096), ("f32", 8192), ("bf16", 4096), ("bf16", 8192)]
CASES = (
    ["a + b f32 2^28", "a * b + c f32 2^28", "sum f32 2^28"]
    + [f"matmul {d} {n}" for d, n in MATMULS]
    + ["softmax f32 8192^2", "small add overhead", "tiny ops in a step"]
)
# issue #15: a step of many small ops evaluated once (64x64 float32: sin, or * and +)
TINY_STEPS = 2000
TINY_OPS = TINY_STEPS // 2 + TINY_STEPS  # half are one op (sin), half two (* then +)


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
    ev = lambda f: (lambda: mx.eval(f()))
    a, b, c = (mx.random.uniform(shape=(N_ELEM,)) for _ in range(3))
    mx.eval(a, b, c)
    out = {
        CASES[0]: (timeit(ev(lambda: a + b), sync), 3 * 4 * N_ELEM, "GB/s"),
        CASES[1]: (timeit(ev(lambda: a * b + c), sync), 4 * 4 * N_ELEM, "GB/s"),
        CASES[2]: (timeit(ev(lambda: a.sum()), sync), 4 * N_ELEM, "GB/s"),
    }
    del a, b, c
    for d, n in MATMULS:
        m = mx.random.normal((n, n)).astype(mx.float32 if d == "f32" else mx.bfloat16)
        mx.eval(m)
        out[f"matmul {d} {n}"] = (timeit(ev(lambda: m @ m), sync), 2 * n**3, "GFLOP/s")
        del m
    s = mx.random.uniform(shape=(8192, 8192))
    mx.eval(s)
    out["softmax f32 8192^2"] = (timeit(ev(lambda: mx.softmax(s, axis=-1)), sync), 2 * 4 * 8192 * 8192, "GB/s")
    x = mx.ones((16,))
    mx.eval(x)

    def small():
        y = x
        for _ in range(100):
            y = y + 1.0
            mx.eval(y)

    out["small add overhead"] = (timeit(small, sync, reps=10) / 100, 1, "ops/s")
    t = mx.ones((64, 64))
    mx.eval(t)

    def tiny():
        y = t
        for i in range(TINY_STEPS):
            y = y * 1.0001 + 0.5 if i % 2 else mx.sin(y)
        mx.eval(y)

    out["tiny ops in a step"] = (timeit(tiny, sync, reps=5) / TINY_OPS, 1, "ops/s")
    return out


def run_torch():
    import torch

    dev = "cuda"
    sync = torch.cuda.synchronize
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b, c = (torch.rand(N_ELEM, device=dev) for _ in range(3))
    out = {
        CASES[0]: (timeit(lambda: a + b, sync), 3 * 4 * N_ELEM, "GB/s"),
        CASES[1]: (timeit(lambda: a * b + c, sync), 4 * 4 * N_ELEM, "GB/s"),
        CASES[2]: (timeit(lambda: a.sum(), sync), 4 * N_ELEM, "GB/s"),
    }
    del a, b, c
    for d, n in MATMULS:
        m = torch.randn(n, n, device=dev, dtype=torch.float32 if d == "f32" else torch.bfloat16)
        out[f"matmul {d} {n}"] = (timeit(lambda: m @ m, sync), 2 * n**3, "GFLOP/s")
        del m
    s = torch.rand(8192, 8192, device=dev)
    out["softmax f32 8192^2"] = (timeit(lambda: torch.softmax(s, -1), sync), 2 * 4 * 8192 * 8192, "GB/s")
    x = torch.ones(16, device=dev)

    def small():
        y = x
        for _ in range(100):
            y = y + 1.0
            torch.cuda.synchronize()

    out["small add overhead"] = (timeit(small, sync, reps=10) / 100, 1, "ops/s")
    t = torch.ones((64, 64), device=dev)

    def tiny():
        y = t
        for i in range(TINY_STEPS):
            y = y * 1.0001 + 0.5 if i % 2 else torch.sin(y)
        return y

    out["tiny ops in a step"] = (timeit(tiny, sync, reps=5) / TINY_OPS, 1, "ops/s")
    return out


def report(who, res):
    rows = {}
    for k in CASES:
        t, work, unit = res[k]
        rate = work / t / (1e9 if unit in ("GB/s", "GFLOP/s") else 1)
        print(f"{who:6s} | {k:22s} | {t * 1e3:10.3f} ms | {rate:12.1f} {unit}", flush=True)
        rows[k] = (t, rate, unit)
    return rows


def main():
    who = sys.argv[1] if len(sys.argv) > 1 else "both"
    if who != "both":
        rows = report(who, run_oxmx() if who == "oxmx" else run_torch())
        if "--json" in sys.argv:
            print(json.dumps(rows))
        return
    got = {}
    for w in ("oxmx", "torch"):
        r = subprocess.run([sys.executable, __file__, w, "--json"], capture_output=True, text=True)
        print("\n".join(r.stdout.strip().splitlines()[:-1]))
        if r.returncode != 0:
            print(r.stderr[-3000:])
            sys.exit(1)
        got[w] = json.loads(r.stdout.strip().splitlines()[-1])
    print("\n| workload | oxmx | torch | oxmx / torch |\n|---|---|---|---|")
    for k in CASES:
        (to, ro, u), (tt, rt, _) = got["oxmx"][k], got["torch"][k]
        if u == "ops/s":
            print(f"| {k} | {to * 1e6:.1f} µs | {tt * 1e6:.1f} µs | {tt / to:.2f}x (time) |")
        else:
            print(f"| {k} | {ro:.0f} {u} | {rt:.0f} {u} | {ro / rt:.2f}x |")


if __name__ == "__main__":
    main()
