#!/usr/bin/env python3
"""The model kernels of ``mx.fast`` on the CPU, forward and forward+backward: oxmx, real
MLX (its CPU build) and JAX (``jax.jit``) side by side in one process.

Rows (float32):
* ``layer_norm`` / ``rms_norm`` of 4096 x 1024 (weight and bias), forward and the vjp
  with respect to every input;
* causal ``scaled_dot_product_attention``, B 2, 8 heads, 512 positions, head size 64,
  forward and the vjp with respect to q, k and v;
* cross-entropy of 1024 x 32000 logits (a Llama-size vocabulary) against integer
  targets, forward+backward (MLX and JAX: ``logsumexp`` minus the target's logit, as
  ``nn.losses.cross_entropy`` computes it).

Each result is checked against oxmx's before timing (relative 1e-3). Method: warm-up,
then round-robin timing (the first runner alternating, garbage collector paused) until
each runner has ``min_repeats`` runs and the row's budget is spent; cells are medians,
evaluation (``mx.eval`` / ``block_until_ready``) inside the timed region.

Usage: python benchmarks/run_fast_cpu.py [--quick] [--markdown]. Prints only.
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

EPS = 1e-5


def shapes(quick):
    if quick:
        return {"rows": (256, 512), "attn": (1, 2, 128, 64), "ce": (128, 4096)}
    return {"rows": (4096, 1024), "attn": (2, 8, 512, 64), "ce": (1024, 32000)}


def inputs(quick):
    r = np.random.default_rng(0)
    s = shapes(quick)
    n = s["rows"][1]
    f = lambda *shape: r.standard_normal(shape).astype(np.float32)  # noqa: E731
    return {
        "x": f(*s["rows"]), "g": f(*s["rows"]), "w": f(n), "b": f(n),
        "q": f(*s["attn"]), "k": f(*s["attn"]), "v": f(*s["attn"]), "ga": f(*s["attn"]),
        "logits": f(*s["ce"]), "targets": r.integers(0, s["ce"][1], s["ce"][0]).astype(np.int32),
    }


def mlx_like(m, fast_ce):
    """The row functions written with oxmx or MLX (the same API)."""
    scale = 1 / math.sqrt(64)
    ln = lambda x, w, b: m.fast.layer_norm(x, w, b, EPS)  # noqa: E731
    rms = lambda x, w: m.fast.rms_norm(x, w, EPS)  # noqa: E731
    attn = lambda q, k, v: m.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")  # noqa: E731
    if fast_ce:
        ce = lambda l, t: m.fast.cross_entropy(l, t).sum()  # noqa: E731
    else:
        ce = lambda l, t: (m.logsumexp(l, axis=-1) - m.take_along_axis(l, t[:, None], axis=-1)[:, 0]).sum()  # noqa: E731
    return {
        "layer_norm forward": (ln, ("x", "w", "b"), None),
        "layer_norm forward+backward": (ln, ("x", "w", "b"), "g"),
        "rms_norm forward+backward": (rms, ("x", "w"), "g"),
        "causal attention forward": (attn, ("q", "k", "v"), None),
        "causal attention forward+backward": (attn, ("q", "k", "v"), "ga"),
        "cross-entropy forward+backward": (ce, ("logits", "targets"), "scalar"),
    }


def runner_mlx(m, data, fn, names, ct):
    args = [m.array(data[k]) for k in names]
    m.eval(*args)
    if ct is None:
        return lambda: m.eval(fn(*args))
    if ct == "scalar":
        g = m.grad(fn)
        return lambda: m.eval(g(*args))
    c = m.array(data[ct])
    return lambda: m.eval(m.vjp(fn, args, [c]))


def jax_rows(jax, jnp):
    scale = 1 / math.sqrt(64)

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) * jax.lax.rsqrt(var + EPS) * w + b

    def rms(x, w):
        return x * jax.lax.rsqrt((x * x).mean(-1, keepdims=True) + EPS) * w

    def attn(q, k, v):
        s = jnp.einsum("bhqd,bhkd->bhqk", q, k) * scale
        lq, lk = q.shape[2], k.shape[2]
        keep = jnp.arange(lk)[None, :] <= jnp.arange(lq)[:, None] + (lk - lq)
        p = jax.nn.softmax(jnp.where(keep, s, -jnp.inf), axis=-1)
        return jnp.einsum("bhqk,bhkd->bhqd", p, v)

    def ce(l, t):
        return (jax.nn.logsumexp(l, axis=-1) - jnp.take_along_axis(l, t[:, None], axis=-1)[:, 0]).sum()

    return {"layer_norm": ln, "rms_norm": rms, "causal attention": attn, "cross-entropy": ce}


def runner_jax(jax, jnp, data, fn, names, ct):
    args = [jnp.asarray(data[k]) for k in names]
    if ct is None:
        f = jax.jit(fn)
        return lambda: f(*args).block_until_ready()
    if ct == "scalar":
        g = jax.jit(jax.grad(fn))
        return lambda: g(*args).block_until_ready()
    c = jnp.asarray(data[ct])
    nargs = len(args)
    f = jax.jit(lambda *a: jax.vjp(fn, *a[:nargs])[1](a[nargs]))
    return lambda: jax.block_until_ready(f(*args, c))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small shapes, few repeats (smoke test)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--settle", type=float, default=0.2,
                    help="idle seconds before each timed run (the other frameworks' worker threads spin down)")
    args = ap.parse_args(argv)
    import oxmx
    import oxmx.core as mx

    peers = {}
    try:
        import mlx.core as mlx

        peers["MLX"] = mlx
    except ImportError:
        pass
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_platforms", "cpu")
        peers["JAX"] = (jax, jnp)
    except ImportError:
        pass
    data = inputs(args.quick)
    reps, budget = (3, 1.0) if args.quick else (5, 10.0)
    ox_rows = mlx_like(mx, fast_ce=True)
    mlx_rows = mlx_like(peers["MLX"], fast_ce=False) if "MLX" in peers else {}
    jrows = jax_rows(*peers["JAX"]) if "JAX" in peers else {}
    table = []
    for name, (fn, names, ct) in ox_rows.items():
        runners = {"oxmx": runner_mlx(mx, data, fn, names, ct)}
        if name in mlx_rows:
            f2, _, _ = mlx_rows[name]
            runners["MLX"] = runner_mlx(peers["MLX"], data, f2, names, ct)
        base = name.replace(" forward+backward", "").replace(" forward", "")
        if base in jrows:
            runners["JAX"] = runner_jax(*peers["JAX"], data, jrows[base], names, ct)
        # every peer's result (the output, or the first input's gradient) against oxmx's
        values = {"oxmx": runner_value(mx, data, fn, names, ct)}
        if "MLX" in runners:
            values["MLX"] = runner_value(peers["MLX"], data, mlx_rows[name][0], names, ct)
        if "JAX" in runners:
            values["JAX"] = jax_value(*peers["JAX"], data, jrows[base], names, ct)
        want = values["oxmx"]
        for who, v in values.items():
            if not np.allclose(v, want, rtol=1e-3, atol=1e-3 * (1 + np.abs(want).max(initial=0))):
                raise SystemExit(f"{name}: {who}'s result differs from oxmx's")
        for r in runners.values():
            r()
        walls, _ = timed_rounds(list(runners.values()), reps, 100, budget, args.settle)
        t = {k: statistics.median(w) * 1e3 for k, w in zip(runners, walls)}
        table.append((name, t))
    print(f"oxmx {getattr(oxmx, '__version__', '?')}: {build_stamp(oxmx)}; shapes {shapes(args.quick)}")
    cols = ["oxmx", "MLX", "JAX"]
    head = ["row"] + [c + " (ms)" for c in cols] + ["MLX / oxmx", "JAX / oxmx"]
    lines = []
    for name, t in table:
        cells = [f"{t[c]:.2f}" if c in t else "—" for c in cols]
        ratios = [f"{t[c] / t['oxmx']:.2f}x" if c in t else "—" for c in ("MLX", "JAX")]
        lines.append([name] + cells + ratios)
    print_rows(head, lines, args.markdown)


def runner_value(m, data, fn, names, ct):
    """The row's result as float64 NumPy (the first input's gradient for backward rows)."""
    args = [m.array(data[k]) for k in names]
    if ct is None:
        out = fn(*args)
    elif ct == "scalar":
        out = m.grad(fn)(*args)
    else:
        out = m.vjp(fn, args, [m.array(data[ct])])[1][0]
    return np.asarray(out, dtype=np.float64)


def jax_value(jax, jnp, data, fn, names, ct):
    args = [jnp.asarray(data[k]) for k in names]
    if ct is None:
        out = fn(*args)
    elif ct == "scalar":
        out = jax.grad(fn)(*args)
    else:
        out = jax.vjp(fn, *args)[1](jnp.asarray(data[ct]))[0]
    return np.asarray(out, dtype=np.float64)


if __name__ == "__main__":
    main()
