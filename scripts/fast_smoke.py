"""Fused fast kernels vs their composite formulas on the default device (quick check)."""
import numpy as np
import oxmx.core as mx
from oxmx.core import _fast_composite as R

F = mx.fast
r = np.random.default_rng(0)
print("device:", mx.default_device())


def err(a, b):
    return float(np.max(np.abs(np.array(a.astype(mx.float32)) - np.array(b.astype(mx.float32))))) if a.size else 0.0


for dt in (mx.float32, mx.float16, mx.bfloat16, mx.float64):
    x = mx.array(r.standard_normal((3, 5, 67)), dtype=dt)
    w = mx.array(r.standard_normal(67), dtype=dt)
    b = mx.array(r.standard_normal(67), dtype=dt)
    print(dt, "rms", err(F.rms_norm(x, w, 1e-5), R.rms_norm(x, w, 1e-5)), "ln", err(F.layer_norm(x, w, b, 1e-5), R.layer_norm(x, w, b, 1e-5)))
    xr = mx.array(r.standard_normal((2, 3, 9, 16)), dtype=dt)
    for trad in (False, True):
        off = mx.array([3, 7])
        print(dt, "rope", trad, err(F.rope(xr, 12, traditional=trad, base=10000.0, scale=0.5, offset=off), R.rope(xr, 12, trad, 10000.0, 0.5, off, None)))
    for (hq, hkv, lq, lk, d, dv) in ((4, 4, 33, 33, 64, 64), (8, 2, 1, 100, 128, 128), (4, 1, 70, 50, 256, 32), (2, 2, 5, 7, 3, 5)):
        q = mx.array(r.standard_normal((2, hq, lq, d)), dtype=dt)
        k = mx.array(r.standard_normal((2, hkv, lk, d)), dtype=dt)
        v = mx.array(r.standard_normal((2, hkv, lk, dv)), dtype=dt)
        bm = mx.array(r.random((lq, lk)) > 0.3)
        am = mx.array(r.standard_normal((hq, lq, lk)), dtype=dt)
        s = mx.array(r.standard_normal(hq), dtype=dt)
        for m in (None, "causal", bm, am):
            name = m if isinstance(m, (str, type(None))) else str(m.dtype)
            print(dt, "sdpa", (hq, hkv, lq, lk, d, dv), name, err(F.scaled_dot_product_attention(q, k, v, scale=0.2, mask=m), R.scaled_dot_product_attention(q, k, v, 0.2, m, None)))
        print(dt, "sdpa sinks", err(F.scaled_dot_product_attention(q, k, v, scale=0.2, mask="causal", sinks=s), R.scaled_dot_product_attention(q, k, v, 0.2, "causal", s)))
    lg = mx.array(r.standard_normal((4, 7, 1000)), dtype=dt)
    t = mx.array(r.integers(0, 1000, (4, 7)))
    print(dt, "ce", err(F.cross_entropy(lg, t), R.cross_entropy(lg, t)))
try:
    mx.eval(F.cross_entropy(lg, mx.array(r.integers(0, 1001, (4, 7)) + 1000)))
    print("ce out of range: NO ERROR")
except IndexError as e:
    print("ce out of range:", e)
