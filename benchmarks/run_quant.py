"""Quantized matmul benchmarks (issue 13), oxmx side by side with its peers in one process.

CPU (default): decode GEMV (batch 1, 4-bit affine, group 64, float16 scales) of the
4096x4096, 14336x4096 (up projection) and 4096x14336 (down projection) weights, as
bandwidth over the bytes of packed weights + scales + biases, next to NumPy's float32
memcpy bandwidth and real MLX's CPU build on the same matrices; and the prefill product
512x4096x4096 against oxmx's own float32 matmul.

GPU (``--gpu``, on the device machine): the same GEMVs, timed two ways: one call per
evaluation (includes launch and host overhead), and 16 matrices of a batch in one kernel
(the kernel's own bandwidth); the prefill product 512x4096x4096 (4-bit, bfloat16 x)
against oxmx's bfloat16 cuBLASLt matmul.

Both: a mixture-of-experts layer's ``gather_qmm`` (60 experts of 1408x2048, 4-bit, top-4
of each token, as Qwen1.5-MoE's up projection): decode (one token, 4 experts) and a sorted
batch of 128 tokens (512 products grouped by expert, ``sorted_indices=True``), next to the
same products composed from ``take`` of the experts + ``quantized_matmul`` (what oxmx ran
before the ``GatherQmm`` node: a copy of every picked expert) and, on the CPU, real MLX.

Writes a markdown table to stdout (and ``--out`` if given).
"""

import argparse
import platform
import time

import numpy as np

SHAPES = [(4096, 4096), (14336, 4096), (4096, 14336)]  # (N rows of W, K)


def best(fn, repeat=20, warm=3, sync=lambda: None, calls=1):
    """Fastest of ``repeat`` timings of ``calls`` back-to-back calls (per call), each
    timing ended by ``sync`` (the GPU finishing its queue)."""
    for _ in range(warm):
        fn()
    sync()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        sync()
        ts.append((time.perf_counter() - t) / calls)
    return min(ts)


def memcpy_gbs():
    a = np.ones(64 * 1024 * 1024, np.float32)  # 256 MiB
    b = np.empty_like(a)
    t = best(lambda: np.copyto(b, a), repeat=10, warm=2)
    return 2 * a.nbytes / t / 1e9  # read + write


def quant_bytes(n, k, gs=64, bits=4, scale_bytes=2):
    return n * k * bits // 8 + 2 * n * (k // gs) * scale_bytes


def cpu(rows):
    import oxmx.core as mx

    try:
        import mlx.core as mlx
    except ImportError:
        mlx = None
    bw = memcpy_gbs()
    rows.append(("float32 memcpy (NumPy, read+write)", f"{bw:.1f} GB/s", "", ""))
    rng = np.random.default_rng(0)
    for n, k in SHAPES:
        w = rng.standard_normal((n, k)).astype(np.float32) * 0.02
        x = rng.standard_normal((1, k)).astype(np.float32)
        nb = quant_bytes(n, k)
        wq, s, b = mx.quantize(mx.array(w).astype(mx.float16), group_size=64, bits=4)
        xa = mx.array(x).astype(mx.float16)
        mx.eval(wq, s, b, xa)
        t = best(lambda: mx.eval(mx.quantized_matmul(xa, wq, s, b, group_size=64, bits=4)))
        line = [f"GEMV 4-bit {n}x{k}, batch 1", f"{t * 1e3:.3f} ms", f"{nb / t / 1e9:.1f} GB/s ({nb / t / 1e9 / bw:.2f}x memcpy)"]
        if mlx is not None:
            mq, ms, mb = mlx.quantize(mlx.array(w).astype(mlx.float16), group_size=64, bits=4)
            mxx = mlx.array(x).astype(mlx.float16)
            mlx.eval(mq, ms, mb, mxx)
            tm = best(lambda: mlx.eval(mlx.quantized_matmul(mxx, mq, ms, mb, group_size=64, bits=4)))
            line.append(f"MLX {tm * 1e3:.3f} ms ({tm / t:.2f}x slower)" if tm > t else f"MLX {tm * 1e3:.3f} ms ({t / tm:.2f}x faster)")
        else:
            line.append("MLX not installed")
        rows.append(tuple(line))
    # prefill
    m, n, k = 512, 4096, 4096
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.02
    wq, s, b = mx.quantize(mx.array(w), group_size=64, bits=4)
    x = mx.array(rng.standard_normal((m, k)).astype(np.float32))
    wf = mx.array(w)
    mx.eval(wq, s, b, x, wf)
    tq = best(lambda: mx.eval(mx.quantized_matmul(x, wq, s, b, group_size=64, bits=4)), repeat=5)
    tf = best(lambda: mx.eval(mx.matmul(x, wf.T)), repeat=5)
    rows.append((f"prefill {m}x{k}x{n} 4-bit vs float32 matmul", f"{tq * 1e3:.1f} ms", f"float32 {tf * 1e3:.1f} ms", f"{tf / tq:.2f}x"))
    moe(rows, mx, lambda: None, mlx, "float16")


def gpu(rows):
    import oxmx.core as mx

    rng = np.random.default_rng(0)
    peak = 4.8e12  # H200 HBM3e
    sync = mx.synchronize
    for n, k in SHAPES:
        w = rng.standard_normal((n, k)).astype(np.float32) * 0.02
        wq, s, b = mx.quantize(mx.array(w).astype(mx.bfloat16), group_size=64, bits=4)
        x = mx.array(rng.standard_normal((1, k)).astype(np.float32)).astype(mx.bfloat16)
        mx.eval(wq, s, b, x)
        nb = quant_bytes(n, k)
        one = lambda: mx.eval(mx.quantized_matmul(x, wq, s, b, group_size=64, bits=4))
        t1 = best(one, repeat=50, sync=sync)
        tp = best(one, repeat=10, sync=sync, calls=20)
        e = 16
        wqs, ss, bs = (mx.stack([a] * e) for a in (wq, s, b))
        xs = mx.array(rng.standard_normal((e, 1, k)).astype(np.float32)).astype(mx.bfloat16)
        mx.eval(wqs, ss, bs, xs)
        tb = best(lambda: mx.eval(mx.quantized_matmul(xs, wqs, ss, bs, group_size=64, bits=4)), repeat=50, sync=sync)
        rows.append((f"GEMV 4-bit {n}x{k}, batch 1",
                     f"one call {t1 * 1e6:.1f} us; 20 queued {tp * 1e6:.1f} us each ({nb / tp / 1e12:.2f} TB/s)",
                     f"16 matrices in one kernel: {tb / e * 1e6:.2f} us each, {e * nb / tb / 1e12:.2f} TB/s = "
                     f"{e * nb / tb / peak:.2f}x of 4.8 TB/s", ""))
    m, n, k = 512, 4096, 4096
    w = rng.standard_normal((n, k)).astype(np.float32) * 0.02
    wq, s, b = mx.quantize(mx.array(w).astype(mx.bfloat16), group_size=64, bits=4)
    x = mx.array(rng.standard_normal((m, k)).astype(np.float32)).astype(mx.bfloat16)
    wf = mx.array(w).astype(mx.bfloat16)
    mx.eval(wq, s, b, x, wf)
    tq = best(lambda: mx.eval(mx.quantized_matmul(x, wq, s, b, group_size=64, bits=4)), repeat=30, sync=sync, calls=10)
    tf = best(lambda: mx.eval(mx.matmul(x, wf.T)), repeat=30, sync=sync, calls=10)
    rows.append((f"prefill {m}x{k}x{n} 4-bit, bf16 x", f"{tq * 1e6:.1f} us", f"bf16 cuBLASLt matmul {tf * 1e6:.1f} us", f"{tf / tq:.2f}x"))
    moe(rows, mx, sync, None, "bfloat16")


def moe(rows, mx, sync, mlx=None, dtype="float32"):
    """Mixture-of-experts rows (see the module docstring)."""
    experts, n, k, top = 60, 1408, 2048, 4
    rng = np.random.default_rng(1)
    w = rng.standard_normal((experts, n, k)).astype(np.float32) * 0.02
    dt = getattr(mx, dtype)
    wq, s, b = mx.quantize(mx.array(w).astype(dt), group_size=64, bits=4)
    mx.eval(wq, s, b)
    per_expert = quant_bytes(n, k)
    for tokens in (1, 128):
        picks = np.stack([rng.choice(experts, top, replace=False) for _ in range(tokens)])
        order = np.argsort(picks.ravel(), kind="stable")
        rhs = picks.ravel()[order].astype(np.uint32)
        lhs = (order // top).astype(np.uint32)
        x = rng.standard_normal((tokens, 1, k)).astype(np.float32)
        xa, li, ri = mx.array(x).astype(dt), mx.array(lhs), mx.array(rhs)
        mx.eval(xa, li, ri)
        fused = lambda: mx.eval(mx.gather_qmm(xa, wq, s, b, lhs_indices=li, rhs_indices=ri, group_size=64, bits=4,
                                              sorted_indices=True))
        composed = lambda: mx.eval(mx.quantized_matmul(mx.take(xa, li, axis=0), mx.take(wq, ri, axis=0),
                                                       mx.take(s, ri, axis=0), mx.take(b, ri, axis=0),
                                                       group_size=64, bits=4))
        reps = 20 if tokens == 1 else 5
        tf = best(fused, repeat=reps, sync=sync)
        tc = best(composed, repeat=reps, sync=sync)
        used = len(set(rhs.tolist())) * per_expert
        label = (f"MoE gather_qmm decode: 1 token, {top} of {experts} experts {n}x{k}" if tokens == 1 else
                 f"MoE gather_qmm, {tokens} tokens x {top} experts sorted ({len(rhs)} products)")
        rate = (f"{used / tf / 1e9:.1f} GB/s of picked experts" if tokens == 1 else
                f"{2 * len(rhs) * n * k / tf / 1e9:.0f} GFLOP/s")
        line = [label, f"{tf * 1e3:.3f} ms ({rate})",
                f"take + quantized_matmul {tc * 1e3:.3f} ms ({tc / tf:.1f}x slower)"]
        if mlx is not None:
            mw = mlx.quantize(mlx.array(w).astype(getattr(mlx, dtype)), group_size=64, bits=4)
            mxx, mli, mri = mlx.array(x).astype(getattr(mlx, dtype)), mlx.array(lhs), mlx.array(rhs)
            mlx.eval(*mw, mxx, mli, mri)
            tm = best(lambda: mlx.eval(mlx.gather_qmm(mxx, *mw, lhs_indices=mli, rhs_indices=mri, group_size=64,
                                                      bits=4, sorted_indices=True)), repeat=reps)
            line.append(f"MLX {tm * 1e3:.3f} ms ({tm / tf:.2f}x oxmx's time)")
        rows.append(tuple(line))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpu", action="store_true")
    ap.add_argument("--out")
    ap.add_argument("--moe-only", action="store_true", help="only the mixture-of-experts rows")
    a = ap.parse_args()
    rows = []
    if a.moe_only:
        import oxmx.core as mx

        try:
            import mlx.core as mlx
        except ImportError:
            mlx = None
        if a.gpu:
            moe(rows, mx, mx.synchronize, None, "bfloat16")
        else:
            moe(rows, mx, lambda: None, mlx, "float16")
    else:
        (gpu if a.gpu else cpu)(rows)
    where = "GPU (H200)" if a.gpu else f"CPU ({platform.processor() or platform.machine()})"
    text = [f"### Quantized matmul, {where}", "", "| workload | oxmx | measure | peer |", "|---|---|---|---|"]
    text += ["| " + " | ".join(r + ("",) * (4 - len(r))) + " |" for r in rows]
    out = "\n".join(text)
    print(out)
    if a.out:
        with open(a.out, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
