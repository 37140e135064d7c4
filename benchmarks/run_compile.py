#!/usr/bin/env python3
"""compile with fusion on the CPU (issue #14): oxmx eager, oxmx compiled and NumPy (and
real MLX, eager and compiled, when importable) side by side in one process.

Rows:
* ``chain``: ``exp(sin(x)) * 2 + 1`` on 16M float32 (``--quick``: 1M);
* ``gelu``: ``0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3)))`` on 16M float32;
* ``block step``: one training step (forward, backward, SGD update) of a pre-norm
  transformer block written in core ops (batch 8 x 128 tokens, width 256, 4 heads, MLP
  1024, GELU), compiled vs eager.

Bars (issue #14): compiled chain and GELU >= 3x eager oxmx and >= 2x NumPy; the block
step compiled >= 1.3x eager. Compiled results are checked equal to eager results (bit
for bit) before timing.

Method: every runner is warmed up, then the runners are timed round-robin (alternating
which goes first, garbage collector paused) until each has ``min_repeats`` runs and the
row's budget is spent; cells are medians. ``mx.eval`` is inside oxmx's timed region.

Usage: python benchmarks/run_compile.py [--quick] [--markdown]. Prints only.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_math import build_stamp, print_rows, timed_rounds  # noqa: E402

C = math.sqrt(2 / math.pi)


def chain(m):
    return lambda x: m.exp(m.sin(x)) * 2 + 1


def gelu(m):
    return lambda x: 0.5 * x * (1 + m.tanh(C * (x + 0.044715 * x**3)))


def block_step(mx, d=256, heads=4, hidden=1024, batch=8, seq=128):
    """A pre-norm transformer block's SGD step in core ops: (step, params, x)."""
    r = np.random.default_rng(0)
    shapes = {"wq": (d, d), "wk": (d, d), "wv": (d, d), "wo": (d, d), "w1": (d, hidden), "w2": (hidden, d)}
    params = {k: mx.array((r.standard_normal(s) / math.sqrt(s[0])).astype(np.float32)) for k, s in shapes.items()}
    params["g1"] = mx.ones((d,))
    params["g2"] = mx.ones((d,))
    x = mx.array(r.standard_normal((batch, seq, d)).astype(np.float32))
    mask = mx.array(np.triu(np.full((seq, seq), -1e9, np.float32), 1))
    dh = d // heads

    def norm(h, g):
        return h * mx.rsqrt((h * h).mean(axis=-1, keepdims=True) + 1e-5) * g

    def loss(p, x):
        h = norm(x, p["g1"])
        q, k, v = (
            (h @ p[w]).reshape(batch, seq, heads, dh).transpose(0, 2, 1, 3) for w in ("wq", "wk", "wv")
        )
        a = mx.softmax(q @ k.transpose(0, 1, 3, 2) * (1 / math.sqrt(dh)) + mask, axis=-1)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(batch, seq, d) @ p["wo"]
        x = x + o
        h = norm(x, p["g2"]) @ p["w1"]
        h = 0.5 * h * (1 + mx.tanh(C * (h + 0.044715 * h**3)))
        x = x + h @ p["w2"]
        return (x * x).mean()

    def step(p, x):
        l, g = mx.value_and_grad(loss)(p, x)
        return l, {k: p[k] - 0.01 * g[k] for k in p}

    return step, params, x


def median_ms(ts):
    return statistics.median(ts) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    import oxmx
    import oxmx.core as mx

    try:
        import mlx.core as mlx
    except ImportError:
        mlx = None
    n = 1 << (20 if args.quick else 24)
    reps, budget = (3, 2.0) if args.quick else (7, 15.0)
    xs = np.random.default_rng(1).uniform(-3, 3, n).astype(np.float32)
    rows = []
    for name, make in (("chain", chain), ("gelu", gelu)):
        x = mx.array(xs)
        mx.eval(x)
        eager, comp = make(mx), mx.compile(make(mx))
        want, got = eager(x), comp(x)
        if np.array(want).tobytes() != np.array(got).tobytes():
            raise SystemExit(f"{name}: compiled result differs from eager")
        runners = {
            "oxmx eager": lambda: mx.eval(eager(x)),
            "oxmx compiled": lambda: mx.eval(comp(x)),
            "NumPy": lambda f=make(np): f(xs),
        }
        if mlx is not None:
            xm = mlx.array(xs)
            fe, fc = make(mlx), mlx.compile(make(mlx))
            mlx.eval(fc(xm))
            runners["MLX eager"] = lambda: mlx.eval(fe(xm))
            runners["MLX compiled"] = lambda: mlx.eval(fc(xm))
        for r in runners.values():
            r()
        walls, _ = timed_rounds(list(runners.values()), reps, 200, budget, 0.02)
        t = {k: median_ms(w) for k, w in zip(runners, walls)}
        rows.append((f"{name} 2^{int(math.log2(n))} float32", t, [("vs eager", t["oxmx eager"] / t["oxmx compiled"], 3.0), ("vs NumPy", t["NumPy"] / t["oxmx compiled"], 2.0)]))
    step, params, x = block_step(mx)
        # one call of each: trace, and check the compiled step against the eager one
    cstep = mx.compile(step)
    le, pe = step(params, x)
    lc, pc = cstep(params, x)
    mx.eval(le, pe, lc, pc)
    if abs(le.item() - lc.item()) > 1e-5 * abs(le.item()):
        raise SystemExit(f"block step: compiled loss {lc.item()} vs eager {le.item()}")
    runners = {"oxmx eager": lambda: mx.eval(step(params, x)), "oxmx compiled": lambda: mx.eval(cstep(params, x))}
    for r in runners.values():
        r()
    walls, _ = timed_rounds(list(runners.values()), reps, 100, budget, 0.02)
    t = {k: median_ms(w) for k, w in zip(runners, walls)}
    rows.append(("transformer block step (8x128, d 256)", t, [("vs eager", t["oxmx eager"] / t["oxmx compiled"], 1.3)]))
    print(f"oxmx {getattr(oxmx, '__version__', '?')}: {build_stamp(oxmx)}; threads {oxmx.core.device_info()['num_threads'] if hasattr(oxmx.core, 'device_info') else '?'}")
    cols = ["oxmx eager", "oxmx compiled", "NumPy", "MLX eager", "MLX compiled"]
    head = ["row"] + [c + " (ms)" for c in cols] + ["compiled speed-ups (bar)"]
    lines = []
    for name, t, ratios in rows:
        cells = [f"{t[c]:.2f}" if c in t else "—" for c in cols]
        rs = ", ".join(f"{k} {v:.2f}x ({'met' if v >= bar else 'not met'}: >= {bar}x)" for k, v, bar in ratios)
        lines.append([name] + cells + [rs])
    print_rows(head, lines, args.markdown)


if __name__ == "__main__":
    main()
