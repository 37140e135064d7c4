#!/usr/bin/env python3
"""compile with fusion on the GPU (issue #14): oxmx eager and compiled against torch eager
and torch.compile on the same GPU, each library in its own process (they load different
CUDA library copies).

    python benchmarks/run_compile_gpu.py          # both, then a Markdown table
    python benchmarks/run_compile_gpu.py oxmx     # one library only
    python benchmarks/run_compile_gpu.py torch

Cases, all float32 on 2^28 elements (1 GiB per array):
* ``copy``: ``abs(x)`` eager in oxmx, ``y.copy_(x)`` in torch: one kernel reading and
  writing the array (the copy-bandwidth reference is torch's);
* ``10-op chain``: ten arithmetic ops, ``x*1.5+0.5 -> square -> -0.25 -> abs -> *3 -> +x
  -> maximum(y, 0) -> minimum(y, 4) -> *2`` (bytes: one read of x, one write);
* ``transcendental chain``: ``exp(sin(x)) * 2 + 1`` (float32 transcendentals run in
  float64 on the GPU for their ulp bounds, so this one is compute-bound);
* ``a*b+c``: three inputs, one output (torch eager runs two kernels);
* ``GELU``: the tanh approximation written out in elementwise ops.
Times are medians of 20 runs after a warm-up, synchronized; oxmx's compiled rows also
report how many kernels one call launches. Bars (issue #14): the chain >= 0.9x of copy
bandwidth; a*b+c >= 1.4x torch eager; GELU against torch.compile.
"""

import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_gpu import timeit  # noqa: E402

N = 1 << 28
C = math.sqrt(2 / math.pi)
CASES = ["copy", "10-op chain", "transcendental chain", "a*b+c", "GELU"]
BYTES = {"copy": 8 * N, "10-op chain": 8 * N, "transcendental chain": 8 * N, "a*b+c": 16 * N, "GELU": 8 * N}


def chain(m, x):
    y = x * 1.5 + 0.5
    y = y * y
    y = y - 0.25
    y = m.abs(y)
    y = y * 3
    y = y + x
    y = m.maximum(y, m.zeros_like(y) if m.__name__ == "torch" else 0.0)
    y = m.minimum(y, m.full_like(y, 4.0) if m.__name__ == "torch" else 4.0)
    return y * 2


def tchain(m, x):
    return m.exp(m.sin(x)) * 2 + 1


def gelu(m, x):
    return 0.5 * x * (1 + m.tanh(C * (x + 0.044715 * x * x * x)))


def run_oxmx():
    import oxmx.core as mx
    from oxmx import _oxmx

    sync = mx.synchronize
    a, b, c = (mx.random.uniform(shape=(N,)) for _ in range(3))
    mx.eval(a, b, c)
    fns = {
        "copy": (lambda: mx.abs(a), None),
        "10-op chain": (lambda: chain(mx, a), mx.compile(lambda x: chain(mx, x))),
        "transcendental chain": (lambda: tchain(mx, a), mx.compile(lambda x: tchain(mx, x))),
        "a*b+c": (lambda: a * b + c, mx.compile(lambda x, y, z: x * y + z)),
        "GELU": (lambda: gelu(mx, a), mx.compile(lambda x: gelu(mx, x))),
    }
    args = {"copy": (), "10-op chain": (a,), "transcendental chain": (a,), "a*b+c": (a, b, c), "GELU": (a,)}
    out = {}
    for k, (eager, comp) in fns.items():
        row = {"eager": timeit(lambda: mx.eval(eager()), sync)}
        if comp is not None:
            mx.eval(comp(*args[k]))
            sync()
            before = _oxmx._kernel_launches(mx.gpu)
            mx.eval(comp(*args[k]))
            sync()
            row["kernels"] = _oxmx._kernel_launches(mx.gpu) - before
            row["compiled"] = timeit(lambda: mx.eval(comp(*args[k])), sync)
            same = mx.array_equal(comp(*args[k]), eager()).item()
            row["equal to eager"] = bool(same)
        out[k] = row
    return out


def run_torch():
    import torch

    sync = torch.cuda.synchronize
    a, b, c = (torch.rand(N, device="cuda") for _ in range(3))
    dst = torch.empty_like(a)
    fns = {
        "copy": (lambda: dst.copy_(a), None),
        "10-op chain": (lambda: chain(torch, a), lambda x: chain(torch, x)),
        "transcendental chain": (lambda: tchain(torch, a), lambda x: tchain(torch, x)),
        "a*b+c": (lambda: a * b + c, lambda x, y, z: x * y + z),
        "GELU": (lambda: gelu(torch, a), lambda x: gelu(torch, x)),
    }
    args = {"copy": (), "10-op chain": (a,), "transcendental chain": (a,), "a*b+c": (a, b, c), "GELU": (a,)}
    out = {}
    for k, (eager, plain) in fns.items():
        row = {"eager": timeit(eager, sync)}
        if plain is not None:
            try:
                comp = torch.compile(plain)
                comp(*args[k])
                row["compiled"] = timeit(lambda: comp(*args[k]), sync)
            except Exception as e:  # noqa: BLE001 - torch.compile may lack a compiler here
                row["compile error"] = str(e).splitlines()[0][:200]
        out[k] = row
    return out


def gbs(k, t):
    return BYTES[k] / t / 1e9


def main():
    who = sys.argv[1] if len(sys.argv) > 1 else "both"
    if who != "both":
        res = run_oxmx() if who == "oxmx" else run_torch()
        for k, row in res.items():
            print(f"{who:6s} | {k:12s} | " + " | ".join(f"{m} {v * 1e3:.3f} ms ({gbs(k, v):.0f} GB/s)" if isinstance(v, float) else f"{m} {v}" for m, v in row.items()), flush=True)
        print(json.dumps(res))
        return
    got = {}
    for w in ("oxmx", "torch"):
        r = subprocess.run([sys.executable, __file__, w], capture_output=True, text=True)
        print("\n".join(r.stdout.strip().splitlines()[:-1]))
        if r.returncode != 0:
            print(r.stderr[-3000:])
            sys.exit(1)
        got[w] = json.loads(r.stdout.strip().splitlines()[-1])
    ox, th = got["oxmx"], got["torch"]
    copy = th["copy"]["eager"]
    print("\n| float32 2^28 | oxmx eager | oxmx compiled (kernels) | torch eager | torch.compile | measure |")
    print("|---|---|---|---|---|---|")
    for k in CASES:
        o, t = ox[k], th[k]
        cell = lambda v: f"{v * 1e3:.2f} ms, {gbs(k, v):.0f} GB/s"
        oc = f"{cell(o['compiled'])} ({o['kernels']})" if "compiled" in o else "—"
        tc = cell(t["compiled"]) if "compiled" in t else t.get("compile error", "—")
        if k == "copy":
            m = "reference"
        elif k == "10-op chain":
            m = f"{copy / o['compiled']:.2f}x of torch's copy bandwidth (bar 0.9x)"
        elif k == "transcendental chain":
            m = f"{t['eager'] / o['compiled']:.2f}x torch eager, {t.get('compiled', float('nan')) / o['compiled']:.2f}x torch.compile"
        elif k == "a*b+c":
            m = f"{t['eager'] / o['compiled']:.2f}x torch eager (bar 1.4x)"
        else:
            m = f"{t.get('compiled', float('nan')) / o['compiled']:.2f}x torch.compile"
        print(f"| {k} | {cell(o['eager'])} | {oc} | {cell(t['eager'])} | {tc} | {m} |")


if __name__ == "__main__":
    main()
