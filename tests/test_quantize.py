"""quantize / dequantize / quantized_matmul / gather_qmm / qqmm / fp8 against the NumPy
reference of MLX's formulas (tests/quant_reference.py), which is itself checked bit for
bit against real MLX where it is installed."""

import numpy as np
import pytest

import oxmx.core as mx
import quant_reference as ref

try:
    import mlx.core as mlx
except ImportError:  # pragma: no cover - MLX is in requirements-dev.txt
    mlx = None

needs_mlx = pytest.mark.skipif(mlx is None, reason="real MLX is not installed")

AFFINE = [(gs, bits) for gs in (32, 64, 128) for bits in (1, 2, 3, 4, 5, 6, 8)]
FP_MODES = [("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)]


def rand(shape, seed, scale=1.0):
    r = np.random.default_rng(seed)
    # mixed magnitudes per row so that groups differ
    return (r.standard_normal(shape) * np.exp(r.standard_normal(shape[:-1] + (1,))) * scale).astype(np.float32)


def np_of(a):
    return np.array(a.astype(mx.float32)) if a.dtype in (mx.bfloat16, mx.float16) else np.array(a)


def half_round(dtype):
    """Rounds float32 values to ``dtype`` and back (as the dequantize formula does)."""
    if dtype == mx.float32:
        return lambda v: np.asarray(v, np.float32)
    return lambda v: np_of(mx.array(np.asarray(v, np.float32)).astype(dtype))


# --------------------------------------------------------------- the reference is MLX's
@needs_mlx
@pytest.mark.parametrize("gs,bits", AFFINE)
def test_reference_matches_real_mlx_affine(gs, bits):
    w = rand((8, 256), bits * 100 + gs)
    wq, s, b = mlx.quantize(mlx.array(w), group_size=gs, bits=bits)
    rq, rs, rb = ref.quantize_affine(w, gs, bits)
    np.testing.assert_array_equal(np.array(wq), rq)
    np.testing.assert_array_equal(np.array(s), rs)
    np.testing.assert_array_equal(np.array(b), rb)
    d = np.array(mlx.dequantize(wq, s, b, group_size=gs, bits=bits))
    np.testing.assert_array_equal(d, ref.dequantize_affine(rq, rs, rb, gs, bits))


@needs_mlx
@pytest.mark.parametrize("mode,gs,bits", FP_MODES)
def test_reference_matches_real_mlx_fp(mode, gs, bits):
    w = rand((8, 256), 7)
    w[0, :32] = 0  # an all-zero group
    w[1, :32] *= 1e-39  # subnormal groups (the mx scale byte wraps)
    wq, s = mlx.quantize(mlx.array(w), mode=mode)
    rq, rs = ref.quantize_nvfp4(w) if mode == "nvfp4" else ref.quantize_mx(w, bits)
    np.testing.assert_array_equal(np.array(s), rs)
    np.testing.assert_array_equal(np.array(wq), rq)
    d = np.array(mlx.dequantize(wq, s, mode=mode, dtype=mlx.float32))
    np.testing.assert_array_equal(d, ref.dequantize_fp(rq, rs, mode))


@needs_mlx
def test_reference_fp8_matches_real_mlx_exhaustively():
    codes = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(np.array(mlx.from_fp8(mlx.array(codes), dtype=mlx.float32)), ref.E4M3)
    pos = ref.E4M3[:127].astype(np.float32)
    mids = ((pos[1:] + pos[:-1]) / 2).astype(np.float32)
    x = np.concatenate([pos, -pos, mids, -mids, np.nextafter(mids, 0), np.nextafter(mids, 1e9),
                        [448, 460, 464, 500, 1e30, np.inf, -np.inf, np.nan, 2.0**-10, 3e-45]]).astype(np.float32)
    np.testing.assert_array_equal(np.array(mlx.to_fp8(mlx.array(x))), ref.to_e4m3(x))


# --------------------------------------------------------------- oxmx against the reference
@pytest.mark.parametrize("gs,bits", AFFINE)
def test_quantize_affine_bit_exact(gs, bits):
    w = rand((6, 2 * 128), gs + bits)
    wq, s, b = mx.quantize(mx.array(w), group_size=gs, bits=bits)
    rq, rs, rb = ref.quantize_affine(w, gs, bits)
    assert wq.dtype == mx.uint32 and wq.shape == (6, 256 * bits // 32)
    np.testing.assert_array_equal(np.array(wq), rq)
    np.testing.assert_array_equal(np.array(s), rs)
    np.testing.assert_array_equal(np.array(b), rb)
    d = mx.dequantize(wq, s, b, group_size=gs, bits=bits)
    np.testing.assert_array_equal(np.array(d), ref.dequantize_affine(rq, rs, rb, gs, bits))
    # round trip: within one step of every value (half a step inside the range; keeping
    # the larger end exact can clip the other end by up to half a step more)
    err = np.abs(np.array(d) - w).reshape(6, -1, gs).max(-1)
    assert np.all(err <= np.abs(rs) * (1 + 1e-5) + 1e-6)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantize_affine_half_dtypes(dtype, bits):
    wh = mx.array(rand((4, 3, 128), bits)).astype(dtype)
    w32 = np_of(wh)
    wq, s, b = mx.quantize(wh, group_size=64, bits=bits)
    assert s.dtype == dtype and b.dtype == dtype
    rq, rs, rb = ref.quantize_affine(w32, 64, bits)
    rnd = half_round(dtype)
    np.testing.assert_array_equal(np.array(wq), rq)
    np.testing.assert_array_equal(np_of(s), rnd(rs))
    np.testing.assert_array_equal(np_of(b), rnd(rb))
    d = mx.dequantize(wq, s, b, group_size=64, bits=bits)
    assert d.dtype == dtype
    np.testing.assert_array_equal(np_of(d), ref.dequantize_affine(rq, np_of(s), np_of(b), 64, bits, rnd))


@pytest.mark.parametrize("mode,gs,bits", FP_MODES)
def test_quantize_fp_modes_bit_exact(mode, gs, bits):
    w = rand((5, 2, 128), 3)
    w[0, 0, :32] = 0
    w[1, 0, :32] *= 1e-39
    out = mx.quantize(mx.array(w), mode=mode)
    assert len(out) == 2
    wq, s = out
    assert s.dtype == mx.uint8
    rq, rs = ref.quantize_nvfp4(w) if mode == "nvfp4" else ref.quantize_mx(w, bits)
    np.testing.assert_array_equal(np.array(s), rs)
    np.testing.assert_array_equal(np.array(wq), rq)
    d = mx.dequantize(wq, s, mode=mode)
    assert d.dtype == mx.bfloat16
    d32 = mx.dequantize(wq, s, mode=mode, dtype=mx.float32)
    np.testing.assert_array_equal(np.array(d32), ref.dequantize_fp(rq, rs, mode))


def test_nvfp4_global_scale():
    w = rand((4, 64), 11)
    g = np.float32(np.abs(w).max())
    wq, s = mx.quantize(mx.array(w), mode="nvfp4", global_scale=mx.array(g))
    rq, rs = ref.quantize_nvfp4(w, g)
    np.testing.assert_array_equal(np.array(s), rs)
    np.testing.assert_array_equal(np.array(wq), rq)
    d = mx.dequantize(wq, s, mode="nvfp4", global_scale=mx.array(g), dtype=mx.float32)
    np.testing.assert_allclose(np.array(d), ref.dequantize_fp(rq, rs, "nvfp4") * g / 2688, rtol=1e-6)


def test_fp8_round_trip_exhaustive():
    codes = np.arange(256, dtype=np.uint8)
    vals = mx.from_fp8(mx.array(codes), dtype=mx.float32)
    np.testing.assert_array_equal(np.array(vals), ref.E4M3)
    assert mx.from_fp8(mx.array(codes)).dtype == mx.bfloat16
    finite = codes[~np.isnan(ref.E4M3)]
    back = np.array(mx.to_fp8(mx.array(ref.E4M3[finite])))
    np.testing.assert_array_equal(back, finite)
    r = np.random.default_rng(0)
    x = np.concatenate([r.standard_normal(20000) * 10.0 ** r.integers(-4, 3, 20000),
                        [0, -0.0, np.inf, -np.inf, np.nan, 448, 449, 464, 1e-45, -3e-40]]).astype(np.float32)
    np.testing.assert_array_equal(np.array(mx.to_fp8(mx.array(x))), ref.to_e4m3(x))
    for dt in (mx.float16, mx.bfloat16):
        xh = mx.array(x[:1000]).astype(dt)
        np.testing.assert_array_equal(np.array(mx.to_fp8(xh)), ref.to_e4m3(np_of(xh)))


# --------------------------------------------------------------- against real MLX directly
@needs_mlx
@pytest.mark.parametrize("case", [("affine", 64, 4), ("affine", 32, 3), ("affine", 128, 8), ("affine", 64, 6),
                                  ("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)])
def test_packing_identical_to_real_mlx(case):
    mode, gs, bits = case
    w = rand((16, 512), 99)
    ours = mx.quantize(mx.array(w), group_size=gs, bits=bits, mode=mode)
    theirs = mlx.quantize(mlx.array(w), group_size=gs, bits=bits, mode=mode)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.array(a), np.array(b))
    x = rand((3, 512), 5)
    y = mx.quantized_matmul(mx.array(x), *ours[:1], *ours[1:], group_size=gs, bits=bits, mode=mode)
    z = mlx.quantized_matmul(mlx.array(x), *theirs[:1], *theirs[1:], group_size=gs, bits=bits, mode=mode)
    np.testing.assert_allclose(np.array(y), np.array(z), rtol=2e-4, atol=2e-4)


# --------------------------------------------------------------- quantized_matmul
def dense(mode, gs, bits, wq, s, b):
    if mode == "affine":
        return ref.dequantize_affine(np.array(wq), np_of(s), np_of(b), gs, bits)
    return ref.dequantize_fp(np.array(wq), np.array(s), mode)


def qparams(mode, gs, bits, w):
    out = mx.quantize(mx.array(w), group_size=gs, bits=bits, mode=mode)
    return out[0], out[1], (out[2] if mode == "affine" else None)


CASES = [("affine", 64, 4), ("affine", 32, 4), ("affine", 128, 4), ("affine", 32, 8), ("affine", 32, 2), ("affine", 128, 8), ("affine", 64, 3), ("affine", 32, 5),
         ("affine", 64, 6), ("affine", 32, 1), ("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)]


@pytest.mark.parametrize("mode,gs,bits", CASES)
@pytest.mark.parametrize("m", [1, 3, 8, 9, 40])
def test_quantized_matmul_transposed(mode, gs, bits, m):
    n, k = 70, 256
    wq, s, b = qparams(mode, gs, bits, rand((n, k), 1))
    x = rand((m, k), 2)
    y = mx.quantized_matmul(mx.array(x), wq, s, b, transpose=True, group_size=gs, bits=bits, mode=mode)
    want = x.astype(np.float64) @ dense(mode, gs, bits, wq, s, b).T.astype(np.float64)
    np.testing.assert_allclose(np.array(y), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


# Long rows (x over 24 KiB: no longer in L1 beside the stream of W), K chosen so that a
# group or two is left after the last 16-word step, and 70 rows so that the CPU GEMV's
# tasks end in a partial group of the four rows it takes per load of x.
@pytest.mark.parametrize("gs,bits,k", [(32, 4, 8224), (64, 4, 8256), (128, 4, 8320), (32, 8, 8224), (64, 8, 8256)])
@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_quantized_matmul_long_rows(gs, bits, k, m, dtype):
    # (half types: x, scales and biases in it, as a half-precision checkpoint has them)
    n = 70
    wq, s, b = mx.quantize(mx.array(rand((n, k), 7)).astype(dtype), group_size=gs, bits=bits)
    x = mx.array(rand((m, k), 8)).astype(dtype)
    y = mx.quantized_matmul(x, wq, s, b, transpose=True, group_size=gs, bits=bits)
    assert y.dtype == dtype
    wd = ref.dequantize_affine(np.array(wq), np_of(s).astype(np.float64), np_of(b).astype(np.float64), gs, bits)
    xd = np_of(x).astype(np.float64)
    want = xd @ wd.T
    if dtype == mx.float32:
        np.testing.assert_allclose(np.array(y), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    else:
        # the result's rounding to the half type, plus at most an ulp of each weight (a
        # backend may round the dequantized weights to the half type, as the GPU does)
        eps = 2.0**-8 if dtype == mx.bfloat16 else 2.0**-11
        bound = eps * (np.abs(want) + np.abs(xd) @ np.abs(wd).T)
        assert (np.abs(np_of(y).astype(np.float64) - want) <= bound).all()


@pytest.mark.parametrize("mode,gs,bits", CASES)
@pytest.mark.parametrize("m", [1, 5, 12])
def test_quantized_matmul_not_transposed(mode, gs, bits, m):
    k, n = 48, 384
    wq, s, b = qparams(mode, gs, bits, rand((k, n), 4))
    x = rand((m, k), 5)
    y = mx.quantized_matmul(mx.array(x), wq, s, b, transpose=False, group_size=gs, bits=bits, mode=mode)
    want = x.astype(np.float64) @ dense(mode, gs, bits, wq, s, b).astype(np.float64)
    np.testing.assert_allclose(np.array(y), want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_quantized_matmul_shapes_dtypes_and_views():
    w = rand((64, 128), 6)
    wq, s, b = mx.quantize(mx.array(w), group_size=64, bits=4)
    wd = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), 64, 4)
    # 1-D and 3-D x; a transposed (non-contiguous) x
    x1 = rand((128,), 7)
    np.testing.assert_allclose(np.array(mx.quantized_matmul(mx.array(x1), wq, s, b)), x1 @ wd.T, rtol=1e-4, atol=1e-4)
    x3 = rand((2, 3, 128), 8)
    y3 = mx.quantized_matmul(mx.array(x3), wq, s, b)
    assert y3.shape == (2, 3, 64)
    np.testing.assert_allclose(np.array(y3), x3 @ wd.T, rtol=1e-4, atol=1e-4)
    xt = rand((128, 5), 9)
    yt = mx.quantized_matmul(mx.array(xt).T, wq, s, b)
    np.testing.assert_allclose(np.array(yt), xt.T @ wd.T, rtol=1e-4, atol=1e-4)
    # half inputs compute in float32 and return the promoted dtype
    for dt in (mx.float16, mx.bfloat16):
        xh, sh, bh = mx.array(x3).astype(dt), s.astype(dt), b.astype(dt)
        y = mx.quantized_matmul(xh, wq, sh, bh)
        assert y.dtype == dt
        want = np_of(xh) @ ref.dequantize_affine(np.array(wq), np_of(sh), np_of(bh), 64, 4).T
        np.testing.assert_allclose(np_of(y), want, rtol=1e-2, atol=1e-2 * np.abs(want).max())
    assert mx.quantized_matmul(mx.array(x3).astype(mx.bfloat16), wq, s, b).dtype == mx.float32
    # empty batch
    assert mx.quantized_matmul(mx.zeros((0, 128)), wq, s, b).shape == (0, 64)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 33])
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_quantized_matmul_gemv_few_rows(n, dtype):
    # Fewer rows than (or not a multiple of) the four that the CPU GEMV takes at a time:
    # every row is computed once, by the four-row loop or the one-row loop after it.
    k, gs = 320, 64
    wq, s, b = mx.quantize(mx.array(rand((n, k), 31)).astype(dtype), group_size=gs, bits=4)
    x = mx.array(rand((1, k), 32)).astype(dtype)
    y = mx.quantized_matmul(x, wq, s, b, group_size=gs, bits=4)
    assert y.shape == (1, n) and y.dtype == dtype
    wd = ref.dequantize_affine(np.array(wq), np_of(s).astype(np.float64), np_of(b).astype(np.float64), gs, 4)
    xd = np_of(x).astype(np.float64)
    want = xd @ wd.T
    eps = {mx.float32: 2.0**-20, mx.float16: 2.0**-11, mx.bfloat16: 2.0**-8}[dtype]
    bound = eps * (np.abs(want) + np.abs(xd) @ np.abs(wd).T)
    assert (np.abs(np_of(y).astype(np.float64) - want) <= bound).all()


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("gs", [32, 64, 128])
@pytest.mark.parametrize("m,k", [(1, 384), (2, 4352), (5, 384), (8, 1024)])
def test_quantized_matmul_half_gemv(dtype, gs, m, k):
    # The decode shapes of a language model in half precision: x and scales in one half
    # type, 4-bit (the GPU's tensor-core GEMV); 70 rows (not a whole number of 16-row
    # tiles), two weight matrices, K both below and above one pass of its K-split.
    e, n = 2, 70
    wq, s, b = mx.quantize(mx.array(rand((e, n, k), 21)).astype(dtype), group_size=gs, bits=4)
    x = mx.array(rand((e, m, k), 22)).astype(dtype)
    y = mx.quantized_matmul(x, wq, s, b, group_size=gs, bits=4)
    assert y.dtype == dtype and y.shape == (e, m, n)
    wd = half_round(dtype)(ref.dequantize_affine(np.array(wq), np_of(s), np_of(b), gs, 4)).astype(np.float64)
    xd = np_of(x).astype(np.float64)
    want = xd @ np.swapaxes(wd, -1, -2)
    # The result's own rounding, plus the weights' rounding to the half type (a backend
    # may skip it, computing s * sum(q x) + b * sum(x)): at most an ulp of each weight.
    mag = np.abs(xd) @ np.swapaxes(np.abs(wd), -1, -2)
    eps = 2.0**-8 if dtype == mx.bfloat16 else 2.0**-11
    bound = eps * (np.abs(want) + mag)
    err = np.abs(np_of(y) - want)
    assert np.all(err <= bound), float((err / bound).max())


@pytest.mark.parametrize("transpose", [True, False])
def test_quantized_matmul_empty_reduction_is_zero(transpose):
    # K = 0: a sum over no terms, as NumPy's (1, 0) @ (0, 4)
    w, s, b = mx.zeros((4, 0), dtype=mx.uint32), mx.zeros((4, 0)), mx.zeros((4, 0))
    x = mx.ones((2, 0)) if transpose else mx.ones((2, 4))
    y = mx.quantized_matmul(x, w, s, b, transpose=transpose, group_size=64, bits=4)
    want = np.ones((2, 0)) @ np.ones((0, 4)) if transpose else np.ones((2, 4)) @ np.ones((4, 0))
    assert y.shape == want.shape
    np.testing.assert_array_equal(np.array(y), want)


def test_quantized_matmul_batched_weights():
    e, n, k = 3, 40, 64
    w = rand((e, n, k), 10)
    wq, s, b = mx.quantize(mx.array(w), group_size=32, bits=4)
    wd = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), 32, 4)
    x = rand((2, 1, 5, k), 11)  # broadcasts against the expert batch
    y = mx.quantized_matmul(mx.array(x), wq, s, b, group_size=32, bits=4)
    assert y.shape == (2, 3, 5, n)
    np.testing.assert_allclose(np.array(y), x @ np.swapaxes(wd, -1, -2), rtol=1e-4, atol=1e-4)


def test_gather_qmm_matches_gathered_dense():
    e, n, k = 4, 24, 64
    w = rand((e, n, k), 12)
    wq, s, b = mx.quantize(mx.array(w), group_size=32, bits=4)
    wd = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), 32, 4)
    x = rand((6, 1, k), 13)
    rhs = np.array([3, 0, 1, 1, 2, 3], np.uint32)
    y = mx.gather_qmm(mx.array(x), wq, s, b, rhs_indices=mx.array(rhs), group_size=32, bits=4)
    want = np.stack([x[i] @ wd[rhs[i]].T for i in range(6)])
    np.testing.assert_allclose(np.array(y), want, rtol=1e-4, atol=1e-4)
    lhs = np.array([5, 0], np.uint32)
    y2 = mx.gather_qmm(mx.array(x), wq, s, b, lhs_indices=mx.array(lhs), rhs_indices=mx.array(rhs[:2]),
                       group_size=32, bits=4)
    want2 = np.stack([x[lhs[i]] @ wd[rhs[i]].T for i in range(2)])
    np.testing.assert_allclose(np.array(y2), want2, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------- transforms
def test_grad_wrt_x_and_scales_biases():
    n, k = 16, 64
    wq, s, b = mx.quantize(mx.array(rand((n, k), 14)), group_size=32, bits=4)
    x = mx.array(rand((3, k), 15))
    cot = rand((3, n), 16)

    def f(x, s, b):
        return mx.sum(mx.quantized_matmul(x, wq, s, b, group_size=32, bits=4) * mx.array(cot))

    gx, gs, gb = mx.grad(f, argnums=(0, 1, 2))(x, s, b)
    q = ref.unpack(np.array(wq), 4).astype(np.float64).reshape(n, -1, 32)
    wd = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), 32, 4)
    np.testing.assert_allclose(np.array(gx), cot @ wd, rtol=1e-4, atol=1e-4)
    dW = (cot.T.astype(np.float64) @ np.array(x).astype(np.float64)).reshape(n, -1, 32)
    np.testing.assert_allclose(np.array(gs), (dW * q).sum(-1), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(np.array(gb), dW.sum(-1), rtol=1e-4, atol=1e-4)
    # not transposed: grad wrt x is cot @ W^T
    g2 = mx.grad(lambda x: mx.sum(mx.quantized_matmul(x, wq, s, b, transpose=False, group_size=32, bits=4)))(
        mx.array(rand((2, n), 17)))
    np.testing.assert_allclose(np.array(g2), np.ones((2, k)) @ wd.T, rtol=1e-4, atol=1e-4)


def test_jvp_and_vmap():
    n, k = 8, 64
    wq, s, b = mx.quantize(mx.array(rand((n, k), 18)), group_size=64, bits=8)
    wd = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), 64, 8)
    x, t = rand((2, k), 19), rand((2, k), 20)
    _, (tan,) = mx.jvp(lambda x: mx.quantized_matmul(x, wq, s, b, group_size=64, bits=8), [mx.array(x)], [mx.array(t)])
    np.testing.assert_allclose(np.array(tan), t @ wd.T, rtol=1e-4, atol=1e-4)
    xs = rand((5, 3, k), 21)
    y = mx.vmap(lambda x: mx.quantized_matmul(x, wq, s, b, group_size=64, bits=8), in_axes=1)(mx.array(xs))
    np.testing.assert_allclose(np.array(y), np.swapaxes(xs, 0, 1) @ wd.T, rtol=1e-4, atol=1e-4)


def test_qqmm_is_matmul_of_fake_quantized_operands():
    x, w = rand((4, 64), 22), rand((8, 64), 23)
    for mode in ("nvfp4", "mxfp8"):
        y = mx.qqmm(mx.array(x), mx.array(w), mode=mode)
        if mode == "nvfp4":
            xq = ref.dequantize_fp(*ref.quantize_nvfp4(x), mode)
            wq = ref.dequantize_fp(*ref.quantize_nvfp4(w), mode)
        else:
            xq = ref.dequantize_fp(*ref.quantize_mx(x, 8), mode)
            wq = ref.dequantize_fp(*ref.quantize_mx(w, 8), mode)
        np.testing.assert_allclose(np.array(y), xq @ wq.T, rtol=1e-5, atol=1e-5)
        # a pre-quantized w gives the same product
        pq, ps = mx.quantize(mx.array(w), mode=mode)
        np.testing.assert_allclose(np.array(mx.qqmm(mx.array(x), pq, ps, mode=mode)), np.array(y), rtol=1e-6)


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize("call,msg", [
    (lambda: mx.quantize(mx.ones((4, 100)), group_size=64), "divisible"),
    (lambda: mx.quantize(mx.ones((4, 128)), group_size=16), "group size"),
    (lambda: mx.quantize(mx.ones((4, 128)), bits=7), "bits"),
    (lambda: mx.quantize(mx.ones((128,))), "at least 2"),
    (lambda: mx.quantize(mx.ones((4, 128)), mode="mxfp4", group_size=64), "group size"),
    (lambda: mx.quantize(mx.ones((4, 128)), mode="int4"), "mode"),
    (lambda: mx.quantize(mx.ones((4, 128), dtype=mx.int32)), "floating"),
    (lambda: mx.dequantize(mx.zeros((4, 16), dtype=mx.uint32), mx.ones((4, 2))), "Biases"),
    (lambda: mx.dequantize(mx.zeros((4, 15), dtype=mx.uint32), mx.ones((4, 2)), mx.ones((4, 2))), "shapes"),
    (lambda: mx.dequantize(mx.zeros((4, 16)), mx.ones((4, 2)), mx.ones((4, 2))), "uint32"),
    (lambda: mx.dequantize(mx.zeros((4, 16), dtype=mx.uint32), mx.ones((4, 2)), mx.ones((4, 3))), "same shape"),
    (lambda: mx.quantized_matmul(mx.ones((2, 127)), mx.zeros((4, 16), dtype=mx.uint32), mx.ones((4, 2)),
                                 mx.ones((4, 2))), "does not match"),
    (lambda: mx.quantized_matmul(mx.ones((2, 128)), mx.zeros((4, 16), dtype=mx.uint32), mx.ones((4, 4)),
                                 mx.ones((4, 4)), group_size=64), "incompatible"),
    (lambda: mx.quantized_matmul(mx.ones((2, 128)), mx.zeros((4, 16), dtype=mx.uint32),
                                 mx.ones((4, 4), dtype=mx.uint8), mx.ones((4, 4)), mode="mxfp4"), "null"),
    (lambda: mx.to_fp8(mx.ones((3,), dtype=mx.int32)), "floating"),
    (lambda: mx.from_fp8(mx.ones((3,), dtype=mx.int32)), "uint8"),
])
def test_bad_inputs_raise_clear_errors(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


# --------------------------------------------------------------- argument checks as MLX orders them
def first_sentence(exc):
    """The error message up to its first sentence end (MLX and oxmx word the rest, e.g.
    the shape, slightly differently)."""
    return str(exc).split(". ")[0].rstrip(".")


def same_error(call):
    """``call(core)`` raises the same error (type and first sentence) in oxmx as in MLX."""
    with pytest.raises(Exception) as theirs:
        mx.eval(call(mlx))
    with pytest.raises(Exception) as ours:
        mx.eval(call(mx))
    assert type(ours.value) is type(theirs.value)
    assert first_sentence(ours.value) == first_sentence(theirs.value)


W = np.ones((8, 40), np.float32)
W64 = np.ones((8, 64), np.float32)
W96 = np.ones((8, 96), np.float32)


@needs_mlx
@pytest.mark.parametrize("call", [
    # divisibility is checked before the group size / bits / mode-specific rules
    lambda m: m.quantize(m.array(W), group_size=48),
    lambda m: m.quantize(m.array(W), group_size=64, bits=7),
    lambda m: m.quantize(m.array(W), group_size=48, bits=7),
    lambda m: m.quantize(m.array(W96), group_size=64, mode="mxfp8"),
    lambda m: m.quantize(m.array(W64[:, :32]), mode="mxfp4", group_size=64, bits=8),
    # then the group size before the bits
    lambda m: m.quantize(m.array(W96), group_size=48, bits=7),
    lambda m: m.quantize(m.array(W64), group_size=16),
    lambda m: m.quantize(m.array(W64), mode="mxfp4", group_size=32, bits=8),
    # mode, rank and dtype come first
    lambda m: m.quantize(m.array(W), group_size=64, bits=4, mode="foo"),
    lambda m: m.quantize(m.array(W[0]), group_size=48, bits=7),
    lambda m: m.quantize(m.array(W).astype(m.int32), group_size=48, bits=7),
    # global scales: nvfp4 only, one float32 value, checked before the group size
    lambda m: m.quantize(m.array(W64), mode="affine", global_scale=m.array(1.0)),
    lambda m: m.quantize(m.array(W64), mode="mxfp8", global_scale=m.array(1.0)),
    lambda m: m.quantize(m.array(W64), mode="nvfp4", global_scale=m.array([1.0, 2.0])),
    lambda m: m.quantize(m.array(W64), mode="nvfp4", global_scale=m.array([1, 2], m.float16)),
    lambda m: m.quantize(m.array(W64), mode="nvfp4", global_scale=m.array(1.0, m.float16)),
    lambda m: m.quantize(m.array(W64), mode="nvfp4", group_size=32, global_scale=m.array(1)),
    lambda m: m.quantize(m.array(W), mode="nvfp4", global_scale=m.array([1.0, 2.0])),
    lambda m: m.dequantize(*m.quantize(m.array(W64), mode="nvfp4"), mode="nvfp4", global_scale=m.array([1.0, 2.0])),
    lambda m: m.dequantize(*m.quantize(m.array(W64), mode="nvfp4"), mode="nvfp4", global_scale=m.array(1)),
    lambda m: m.dequantize(*m.quantize(m.array(W64)), global_scale=m.array(1.0)),
    lambda m: m.qqmm(m.ones((2, 64)), m.array(W64), mode="nvfp4", global_scale_x=m.array(1.0)),
    lambda m: m.qqmm(m.ones((2, 64)), m.array(W64), mode="nvfp4", global_scale_w=m.array(1.0)),
    lambda m: m.qqmm(m.ones((2, 64)), m.array(W64), mode="nvfp4", global_scale_x=m.array([1.0, 2.0])),
    lambda m: m.qqmm(m.ones((2, 64)), m.array(W64), mode="nvfp4", global_scale_x=m.array(1),
                     global_scale_w=m.array(1.0)),
    lambda m: m.qqmm(m.ones((2, 64)), m.array(W64), mode="mxfp8", global_scale_x=m.array(1.0),
                     global_scale_w=m.array(1.0)),
    # gather_qmm: one global scale per expert (w's batch shape), and only with indices
    lambda m: m.gather_qmm(m.ones((2, 64)), *m.quantize(m.array(W64), mode="nvfp4"), mode="nvfp4",
                           global_scale=m.array(1.0)),
    lambda m: m.gather_qmm(m.ones((2, 64)), *m.quantize(m.array(W64), mode="nvfp4"), mode="nvfp4",
                           global_scale=m.array([1.0]), lhs_indices=m.array([0])),
    lambda m: m.gather_qmm(m.ones((2, 1, 64)), *m.quantize(m.ones((3, 8, 64)), mode="nvfp4"), mode="nvfp4",
                           global_scale=m.array([1.0, 2.0]), rhs_indices=m.array([0, 2])),
    lambda m: m.gather_qmm(m.ones((2, 1, 64)), *m.quantize(m.ones((3, 8, 64)), mode="nvfp4"), mode="nvfp4",
                           global_scale=m.array([1.0, 2.0, 3.0], m.float16), rhs_indices=m.array([0, 2])),
    lambda m: m.gather_qmm(m.ones((2, 1, 64)), *m.quantize(m.ones((3, 8, 64)), mode="mxfp4"), mode="mxfp4",
                           global_scale=m.array([1.0, 2.0, 3.0]), rhs_indices=m.array([0, 2])),
], ids=lambda c: "")
def test_argument_errors_match_mlx(call):
    same_error(call)


@needs_mlx
@pytest.mark.parametrize("dtype", [None, "float16", "bfloat16", "float32"])
@pytest.mark.parametrize("gshape", [(), (1,), (1, 1)])
def test_dequantize_with_global_scale_matches_mlx(dtype, gshape):
    """A float32 global scale makes the result float32 whatever ``dtype`` asks (as in MLX),
    bit for bit MLX's values; a one-element scale of any rank leaves the shape alone."""
    w = rand((8, 64), 31)
    g = np.full(gshape, np.abs(w).max() * 0.7, np.float32)

    def run(m):
        q, s = m.quantize(m.array(w), mode="nvfp4", global_scale=m.array(g))
        kw = {} if dtype is None else {"dtype": getattr(m, dtype)}
        return m.dequantize(q, s, mode="nvfp4", global_scale=m.array(g), **kw)

    theirs, ours = run(mlx), run(mx)
    assert ours.dtype == mx.float32 and theirs.dtype == mlx.float32 and ours.shape == theirs.shape == (8, 64)
    np.testing.assert_array_equal(np.array(ours), np.array(theirs))


@needs_mlx
def test_gather_qmm_global_scale_is_per_expert():
    """MLX's CPU build rejects gather_qmm with a global scale (GPU only) after checking its
    arguments; oxmx computes it: each gathered expert's product times its own scale / 2688,
    against MLX's dequantize of that expert with that scale."""
    e, n, k = 3, 8, 64
    w = rand((e, n, k), 32)
    gs = np.array([0.5, 3.0, 7.0], np.float32)
    x = rand((4, 1, k), 33)
    rhs = np.array([2, 0, 1, 2], np.uint32)
    q, s = mx.quantize(mx.array(w), mode="nvfp4")
    y = mx.gather_qmm(mx.array(x), q, s, mode="nvfp4", global_scale=mx.array(gs), rhs_indices=mx.array(rhs))
    mq, ms = mlx.array(np.array(q)), mlx.array(np.array(s))
    dense = [np.array(mlx.dequantize(mq[i], ms[i], mode="nvfp4", global_scale=mlx.array(gs[i]))) for i in range(e)]
    want = np.stack([x[i] @ dense[rhs[i]].T for i in range(4)])
    assert y.shape == (4, 1, n)
    np.testing.assert_allclose(np.array(y), want, rtol=1e-5, atol=1e-5)
    # the lhs-only form uses every expert once, in w's batch layout
    y2 = mx.gather_qmm(mx.array(x[:3]), q, s, mode="nvfp4", global_scale=mx.array(gs), lhs_indices=mx.array([1, 1, 0]))
    want2 = np.stack([x[[1, 1, 0][i]] @ dense[i].T for i in range(3)])
    np.testing.assert_allclose(np.array(y2), want2, rtol=1e-5, atol=1e-5)


@needs_mlx
@pytest.mark.parametrize("mode", ["nvfp4", "mxfp8"])
def test_qqmm_vector_x(mode):
    """A 1-D x (MLX accepts it; its CPU build cannot evaluate qqmm at all) is one row:
    against MLX's own fake quantization of x and w."""
    x, w = rand((1, 64), 34)[0], rand((8, 64), 35)

    def fake(a):
        return np.array(mlx.dequantize(*mlx.quantize(mlx.array(a), mode=mode), mode=mode, dtype=mlx.float32))

    y = mx.qqmm(mx.array(x), mx.array(w), mode=mode)
    assert y.shape == (8,) and y.dtype == mx.float32
    np.testing.assert_allclose(np.array(y), fake(x[None])[0] @ fake(w).T, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.array(y), np.array(mx.qqmm(mx.array(x[None]), mx.array(w), mode=mode))[0])
    g = mx.grad(lambda v: mx.qqmm(v, mx.array(w), mode=mode).sum())(mx.array(x))
    np.testing.assert_allclose(np.array(g), fake(w).sum(0), rtol=1e-5, atol=1e-5)  # straight through


@needs_mlx
def test_qqmm_global_scales_match_mlx_fake_quantization():
    """nvfp4 qqmm with global scales multiplies MLX's dequantize(quantize(.)) of both
    operands (the float32 products of identical operands: equal to float32 rounding), and a
    pre-quantized w gives the bit-identical result."""
    x, w = rand((3, 64), 36), rand((8, 64), 37)
    gx, gw = np.float32(np.abs(x).max()), np.float32(np.abs(w).max() * 0.3)

    def fake(a, g):
        q, s = mlx.quantize(mlx.array(a), mode="nvfp4", global_scale=mlx.array(g))
        return np.array(mlx.dequantize(q, s, mode="nvfp4", global_scale=mlx.array(g)))

    y = mx.qqmm(mx.array(x), mx.array(w), mode="nvfp4", global_scale_x=mx.array(gx), global_scale_w=mx.array(gw))
    np.testing.assert_allclose(np.array(y), fake(x, gx) @ fake(w, gw).T, rtol=1e-5, atol=1e-6)
    wq, ws = mx.quantize(mx.array(w), mode="nvfp4", global_scale=mx.array(gw))
    y2 = mx.qqmm(mx.array(x), wq, ws, mode="nvfp4", global_scale_x=mx.array(gx), global_scale_w=mx.array(gw))
    np.testing.assert_array_equal(np.array(y2), np.array(y))


# --------------------------------------------------------------- half-precision inputs, NaN signs
@needs_mlx
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_to_fp8_every_half_value_matches_mlx(dtype):
    """Every float16/bfloat16 bit pattern (infinities and NaNs of both signs included:
    a NaN keeps its sign, -NaN -> -448) converts as MLX converts it, and as the reference."""
    bits = np.arange(65536, dtype=np.uint16)
    theirs = np.array(mlx.to_fp8(mlx.array(bits).view(getattr(mlx, dtype))))
    x = mx.array(bits).view(getattr(mx, dtype))
    np.testing.assert_array_equal(np.array(mx.to_fp8(x)), theirs)
    np.testing.assert_array_equal(ref.to_e4m3(np_of(x)), theirs)
    nan32 = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF], np.uint32)
    np.testing.assert_array_equal(np.array(mx.to_fp8(mx.array(nan32).view(mx.float32))), [126, 254, 126, 254])


def with_ties(shape, seed, dtype):
    """Random weights in ``dtype`` (as float32) where some groups' elements sit exactly on
    E2M1 rounding ties once divided by their group's scale."""
    w = rand(shape, seed)
    w[..., ::5] = np.round(w[..., ::5] * 4) / 4  # multiples of 1/4: ties under power-of-two scales
    return np_of(mx.array(w).astype(getattr(mx, dtype)))


@needs_mlx
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
@pytest.mark.parametrize("mode,gs,bits", FP_MODES)
def test_fp_modes_with_ties_match_mlx(mode, gs, bits, dtype):
    """MLX breaks E2M1 ties towards zero (0.75 -> 0.5, 1.75 -> 1.5, 3.5 -> 3), not to the
    even code: weights that land on ties, in every float dtype, quantize bit-identically
    to MLX's, as does the reference."""
    for seed in range(4):
        w = with_ties((16, 256), 40 + seed, dtype)
        theirs = mlx.quantize(mlx.array(w).astype(getattr(mlx, dtype)), mode=mode)
        ours = mx.quantize(mx.array(w).astype(getattr(mx, dtype)), mode=mode)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(np.array(a), np.array(b))
        rq, rs = ref.quantize_nvfp4(w) if mode == "nvfp4" else ref.quantize_mx(w, bits)
        np.testing.assert_array_equal(np.array(theirs[0]), rq)
        np.testing.assert_array_equal(np.array(theirs[1]), rs)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("gs", [32, 64, 128])
@pytest.mark.parametrize(
    "e,n,k,scale",
    [(2, 70, 1536, 1.0), (3, 70, 2048, 1.0), (1, 300, 4096, 1e-3), (2, 70, 32768, 1.0), (1, 4500, 1024, 4.0)],
)
def test_quantized_matmul_half_gemv_one_row(dtype, gs, e, n, k, scale):
    # one row of x per product with K a multiple of 512 (partial 128-row blocks, > 48 KiB
    # of shared memory at K = 32768, x far from 1 but results within float16's range);
    # bounded by the rounding of a half-precision dot product
    _check_one_row_gemv(dtype, gs, e, n, k, scale)


@pytest.mark.parametrize("gs,e,n,k", [(64, 12, 4096, 512), (32, 3, 8192, 1024)])
def test_quantized_matmul_half_gemv_batches_fill_the_gpu(gs, e, n, k):
    # batches whose grid fills an H200 (a block and 8 warps per multiprocessor): there
    # the GPU takes the version-5 GEMV, in its two block shapes
    _check_one_row_gemv(mx.bfloat16, gs, e, n, k, 1.0)


def _check_one_row_gemv(dtype, gs, e, n, k, scale):
    wq, s, b = mx.quantize(mx.array(rand((e, n, k), 21)).astype(dtype), group_size=gs, bits=4)
    x = mx.array(rand((e, 1, k), 22) * scale).astype(dtype)
    y = mx.quantized_matmul(x, wq, s, b, group_size=gs, bits=4)
    wd = half_round(dtype)(ref.dequantize_affine(np.array(wq), np_of(s), np_of(b), gs, 4)).astype(np.float64)
    xd = np_of(x).astype(np.float64)
    want = xd @ np.swapaxes(wd, -1, -2)
    eps = 2.0**-8 if dtype == mx.bfloat16 else 2.0**-11
    bound = eps * (np.abs(want) + np.abs(xd) @ np.swapaxes(np.abs(wd), -1, -2))
    assert np.all(np.abs(np_of(y) - want) <= bound)
