#!/usr/bin/env python3
"""GPU benchmarks of issue #15's fused kernels: attention and the row norms, oxmx against
torch on the same GPU, each library in its own process (they load different cuDNN copies).

    python benchmarks/run_gpu_kernels.py          # both, one after the other, then a table
    python benchmarks/run_gpu_kernels.py oxmx     # one library only
    python benchmarks/run_gpu_kernels.py torch

Medians of 20 synchronized runs after a warm-up. torch's attention is
`F.scaled_dot_product_attention` (its flash/cuDNN kernels pick themselves); "fwd+bwd" is
the forward and the gradients of q, k and v for a fixed cotangent. The norms read and
write bfloat16 (bytes counted: input + output).
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_gpu import timeit  # noqa: E402  (median of synchronized runs after a warm-up)

B, H, L, D = 8, 16, 2048, 64  # causal training attention
DEC_H, DEC_KV, DEC_D = 32, 8192, 128  # decode: one query against a long cache
ROWS, COLS = 8192, 4096  # norms
CASES = ["sdpa causal fwd", "sdpa causal fwd+bwd", "sdpa decode", "layer_norm", "rms_norm"]
# causal attention flops: QK^T and PV, half of the L x L square (x3.5 with the backward)
ATTN_FLOPS = 4 * B * H * L * L * D / 2
NORM_BYTES = 2 * 2 * ROWS * COLS


def run_oxmx():
    import oxmx.core as mx

    sync = mx.synchronize
    bf = mx.bfloat16
    q, k, v, ct = (mx.random.normal((B, H, L, D)).astype(bf) for _ in range(4))
    scale = D**-0.5
    attn = lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")
    fwd = lambda: mx.eval(attn(q, k, v))
    bwd = lambda: mx.eval(mx.vjp(attn, [q, k, v], [ct]))
    dq = mx.random.normal((1, DEC_H, 1, DEC_D)).astype(bf)
    dk, dv = (mx.random.normal((1, DEC_H, DEC_KV, DEC_D)).astype(bf) for _ in range(2))
    dec = lambda: mx.eval(mx.fast.scaled_dot_product_attention(dq, dk, dv, scale=DEC_D**-0.5))
    x = mx.random.normal((ROWS, COLS)).astype(bf)
    w, b = mx.ones((COLS,), bf), mx.zeros((COLS,), bf)
    ln = lambda: mx.eval(mx.fast.layer_norm(x, w, b, 1e-5))
    rms = lambda: mx.eval(mx.fast.rms_norm(x, w, 1e-5))
    mx.eval(q, k, v, ct, dq, dk, dv, x, w, b)
    return _measure(sync, fwd, bwd, dec, ln, rms)


def run_torch():
    import torch
    import torch.nn.functional as F

    dev, bf = "cuda", torch.bfloat16
    sync = torch.cuda.synchronize
    g = torch.Generator(device=dev).manual_seed(0)
    rnd = lambda *s: torch.randn(*s, device=dev, generator=g).to(bf)
    q, k, v, ct = (rnd(B, H, L, D) for _ in range(4))
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    fwd = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def bwd():
        out = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
        torch.autograd.grad(out, (qg, kg, vg), ct)

    dq = rnd(1, DEC_H, 1, DEC_D)
    dk, dv = rnd(1, DEC_H, DEC_KV, DEC_D), rnd(1, DEC_H, DEC_KV, DEC_D)
    dec = lambda: F.scaled_dot_product_attention(dq, dk, dv)
    x = rnd(ROWS, COLS)
    w, b = torch.ones(COLS, device=dev, dtype=bf), torch.zeros(COLS, device=dev, dtype=bf)
    ln = lambda: F.layer_norm(x, (COLS,), w, b, 1e-5)
    rms = lambda: F.rms_norm(x, (COLS,), w, 1e-5)
    with torch.no_grad():
        r = _measure(sync, fwd, None, dec, ln, rms)
    r["sdpa causal fwd+bwd"] = (timeit(bwd, sync), 3.5 * ATTN_FLOPS, "GFLOP/s")
    return r


def _measure(sync, fwd, bwd, dec, ln, rms):
    out = {"sdpa causal fwd": (timeit(fwd, sync), ATTN_FLOPS, "GFLOP/s")}
    if bwd is not None:
        out["sdpa causal fwd+bwd"] = (timeit(bwd, sync), 3.5 * ATTN_FLOPS, "GFLOP/s")
    # decode reads the bfloat16 cache once
    out["sdpa decode"] = (timeit(dec, sync), 2 * 2 * DEC_H * DEC_KV * DEC_D, "GB/s")
    out["layer_norm"] = (timeit(ln, sync), NORM_BYTES, "GB/s")
    out["rms_norm"] = (timeit(rms, sync), NORM_BYTES, "GB/s")
    return out


def report(who, res):
    rows = {}
    for k in CASES:
        t, work, unit = res[k]
        rate = work / t / 1e9
        print(f"{who:6s} | {k:22s} | {t * 1e3:10.3f} ms | {rate:12.1f} {unit}", flush=True)
        rows[k] = (t, rate, unit)
    return rows


def main():
    who = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else "both"
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
            continue
        got[w] = json.loads(r.stdout.strip().splitlines()[-1])
    if len(got) < 2:
        sys.exit(1)
    print("\n| workload (bf16) | oxmx | torch | oxmx / torch (speed) |\n|---|---|---|---|")
    for k in CASES:
        (to, ro, u), (tt, rt, _) = got["oxmx"][k], got["torch"][k]
        print(f"| {k} | {to * 1e3:.3f} ms, {ro:.0f} {u} | {tt * 1e3:.3f} ms, {rt:.0f} {u} | {tt / to:.2f}x |")


if __name__ == "__main__":
    main()
