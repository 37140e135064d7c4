"""NumPy reference of MLX's quantization formulas (as documented for mx.quantize and
checked bit for bit against real MLX by tests/test_quantize.py): packing, affine and
mx/nv formats, fp8/fp4 conversions. Independent of oxmx's implementation."""

import numpy as np

FP4 = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0], np.float32)


def e4m3_table():
    out = np.empty(256, np.float32)
    for c in range(256):
        e, m = (c >> 3) & 15, c & 7
        if e == 15 and m == 7:
            v = np.nan
        elif e == 0:
            v = m * 2.0**-9
        else:
            v = (1 + m / 8) * 2.0 ** (e - 7)
        out[c] = -v if c & 128 else v
    return out


E4M3 = e4m3_table()
_E4M3_POS = E4M3[:127]  # codes 0..126, increasing


def to_e4m3(x):
    """float -> E4M3 code by exhaustive nearest search: ties to the even code, saturating
    at 448; NaN -> 448 with its sign (what MLX returns: -NaN -> -448)."""
    x = np.asarray(x, np.float32)
    a = np.abs(x).astype(np.float64)
    a = np.where(np.isnan(a), 448.0, np.minimum(a, 448.0))
    d = np.abs(a[..., None] - _E4M3_POS.astype(np.float64))
    best = d.min(-1, keepdims=True)
    cand = d == best
    # among equally near codes prefer an even one
    codes = np.arange(127)
    even = cand & (codes % 2 == 0)
    pick = np.where(even.any(-1), np.argmax(even, -1), np.argmax(cand, -1))
    neg = np.signbit(x)  # -0.0, negatives that round to 0 and -NaN keep the sign
    return (pick + 128 * neg).astype(np.uint8)


def to_e2m1(x):
    """float -> E2M1 code: nearest, ties to the smaller magnitude (as MLX rounds them, not
    to the even code), saturating at 6; NaN and anything that rounds to zero -> 0 (MLX
    never writes the -0 code)."""
    x = np.asarray(x, np.float32)
    a = np.abs(x).astype(np.float64)
    grid = FP4[:8].astype(np.float64)
    d = np.abs(np.where(np.isnan(a), 0.0, np.minimum(a, 6.0))[..., None] - grid)
    best = d.min(-1, keepdims=True)
    cand = d == best
    pick = np.argmax(cand, -1)  # the first, smaller, of two equally near codes
    return (pick + 8 * ((x < 0) & (pick != 0))).astype(np.uint32)  # no -0 code


def pack(q, bits):
    """uint levels (.., C) -> uint32 words, a little-endian bit stream per row."""
    q = np.asarray(q, np.uint64)
    shape = q.shape[:-1]
    bitplanes = (q[..., None] >> np.arange(bits, dtype=np.uint64)) & np.uint64(1)
    stream = bitplanes.reshape(shape + (-1, 32))
    return (stream << np.arange(32, dtype=np.uint64)).sum(-1).astype(np.uint32)


def unpack(w, bits):
    w = np.asarray(w, np.uint32)
    shape = w.shape[:-1]
    stream = ((w[..., None].astype(np.uint64) >> np.arange(32, dtype=np.uint64)) & np.uint64(1)).reshape(
        shape + (-1, bits)
    )
    return (stream << np.arange(bits, dtype=np.uint64)).sum(-1).astype(np.uint32)


def quantize_affine(w, group_size, bits):
    """(packed, scales, biases) in float32 (cast scales/biases to w's dtype after)."""
    w = np.asarray(w, np.float32)
    g = w.reshape(w.shape[:-1] + (-1, group_size))
    wmax = g.max(-1, keepdims=True)
    wmin = g.min(-1, keepdims=True)
    n_bins = np.float32(2**bits - 1)
    eps = np.float32(1e-7)
    with np.errstate(all="ignore"):
        if bits == 1:
            scales = np.maximum(wmax - wmin, eps)
            biases = wmin
        else:
            mask = np.abs(wmin) > np.abs(wmax)
            scales = np.maximum((wmax - wmin) / n_bins, eps)
            scales = np.where(mask, scales, -scales)
            edge = np.where(mask, wmin, wmax)
            q0 = np.round(edge / scales)
            scales = np.where(q0 != 0, edge / q0, scales).astype(np.float32)
            biases = np.where(q0 == 0, np.float32(0), edge).astype(np.float32)
        q = np.clip(np.round((g - biases) / scales), 0, n_bins).astype(np.uint32)
    return pack(q.reshape(w.shape), bits), scales[..., 0], biases[..., 0]


def dequantize_affine(wq, scales, biases, group_size, bits, rnd=lambda v: v):
    """``rnd(rnd(q * s) + b)``: ``rnd`` rounds to the output dtype after each operation."""
    q = unpack(wq, bits).astype(np.float32)
    g = q.reshape(q.shape[:-1] + (-1, group_size))
    s = np.asarray(scales, np.float32)[..., None]
    b = np.asarray(biases, np.float32)[..., None]
    return rnd(rnd(g * s) + b).reshape(q.shape)


def quantize_mx(w, bits):
    """mxfp4 (bits 4) / mxfp8 (bits 8), group 32: (packed, uint8 scales)."""
    w = np.asarray(w, np.float32)
    g = w.reshape(w.shape[:-1] + (-1, 32))
    vmax = np.float32(6.0 if bits == 4 else 448.0)
    with np.errstate(all="ignore"):
        ratio = np.abs(g).max(-1, keepdims=True) / vmax
        e = np.ceil(np.log2(ratio.astype(np.float64)).astype(np.float32))
        e = np.where(ratio == 0, np.float32(0), e)
        codes = np.mod(e + 127, 256).astype(np.uint8)
        vals = (g / np.exp2(e).astype(np.float32)).astype(np.float32)
    q = to_e2m1(vals) if bits == 4 else to_e4m3(vals).astype(np.uint32)
    return pack(q.reshape(w.shape), bits), codes[..., 0]


def quantize_nvfp4(w, global_scale=None):
    """nvfp4, group 16: (packed, E4M3 scales)."""
    w = np.asarray(w, np.float32)
    g = w.reshape(w.shape[:-1] + (-1, 16))
    scale = np.abs(g).max(-1, keepdims=True) / np.float32(6.0)
    if global_scale is not None:
        scale = scale * (np.float32(2688.0) / np.float32(global_scale))
    codes = to_e4m3(scale)
    used = E4M3[codes]
    if global_scale is not None:
        used = used * (np.float32(global_scale) / np.float32(2688.0))
    with np.errstate(all="ignore"):
        q = to_e2m1(np.where(used == 0, np.float32(0), g / used))  # a zero scale zeroes its group
    return pack(q.reshape(w.shape), 4), codes[..., 0]


def dequantize_fp(wq, scales, mode):
    """float32 values of an mxfp4/mxfp8/nvfp4 matrix."""
    bits = 8 if mode == "mxfp8" else 4
    gs = 16 if mode == "nvfp4" else 32
    q = unpack(wq, bits)
    vals = (E4M3[q] if bits == 8 else FP4[q]).astype(np.float32)
    sc = np.asarray(scales)
    with np.errstate(all="ignore"):  # wrapped scale bytes of tiny groups overflow, as in MLX
        s = E4M3[sc] if mode == "nvfp4" else np.exp2(sc.astype(np.float64) - 127).astype(np.float32)
        g = vals.reshape(vals.shape[:-1] + (-1, gs))
        return (g * s[..., None]).reshape(vals.shape)
