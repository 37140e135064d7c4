"""gather_qmm as one node (``GatherQmm``) that reads the picked quantized matrices in place:
results against a float64 NumPy product of the dequantized matrices (``quant_reference``,
itself checked against MLX's formulas), every mode, both ``transpose`` settings, runs of
shared experts (the gemm path) and scattered ones (the GEMV path), index wrapping and
bounds, broadcasting, and the transforms against the composed take + quantized_matmul
form; and against real MLX where it is installed."""

import numpy as np
import pytest

import oxmx.core as mx
import quant_reference as ref

try:
    import mlx.core as mlx
except ImportError:  # pragma: no cover - MLX is in requirements-dev.txt
    mlx = None

AFFINE = [(gs, bits) for gs in (32, 64, 128) for bits in (2, 3, 4, 5, 6, 8)]
FP_MODES = [("mxfp4", 32, 4), ("mxfp8", 32, 8), ("nvfp4", 16, 4)]


def rand(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def quantized(e, rows, cols, seed, mode="affine", gs=64, bits=4):
    """Quantized experts (e, rows, cols) and their dequantized float64 values."""
    w = mx.array(rand((e, rows, cols), seed))
    if mode == "affine":
        wq, s, b = mx.quantize(w, group_size=gs, bits=bits)
        dense = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), gs, bits)
        return (wq, s, b), dense.astype(np.float64)
    wq, s = mx.quantize(w, mode=mode)
    dense = ref.dequantize_fp(np.array(wq), np.array(s), mode)
    return (wq, s, None), dense.astype(np.float64)


def reference(x, dense, lhs, rhs, transpose):
    """x[lhs[i]] @ W[rhs[i]]^T (or @ W) for every i, float64; lhs/rhs broadcast."""
    lhs, rhs = np.broadcast_arrays(lhs, rhs)
    xm = np.asarray(x, np.float64)
    out = [xm[l] @ (dense[r].T if transpose else dense[r]) for l, r in zip(lhs.ravel(), rhs.ravel())]
    m = xm.shape[-2]
    n = dense.shape[-2] if transpose else dense.shape[-1]
    return np.array(out).reshape(lhs.shape + (m, n))


def call(x, q, lhs, rhs, transpose=True, mode="affine", gs=64, bits=4, **kw):
    wq, s, b = q
    args = dict(transpose=transpose, mode=mode, **kw)
    if mode == "affine":
        args.update(group_size=gs, bits=bits)
    li = None if lhs is None else mx.array(lhs)
    ri = None if rhs is None else mx.array(rhs)
    return mx.gather_qmm(mx.array(x), wq, s, b, lhs_indices=li, rhs_indices=ri, **args)


@pytest.mark.parametrize("gs,bits", AFFINE)
@pytest.mark.parametrize("transpose", [True, False])
def test_affine_every_format(gs, bits, transpose):
    e, rows, cols = 3, 40, 256
    q, dense = quantized(e, rows, cols, 1, gs=gs, bits=bits)
    k = cols if transpose else rows
    x = rand((5, 1, k), 2)
    rhs = np.array([2, 0, 0, 1, 2, 1, 1], np.uint32)
    lhs = np.array([4, 0, 3, 3, 1, 2, 0], np.uint32)
    y = call(x, q, lhs, rhs, transpose, gs=gs, bits=bits)
    np.testing.assert_allclose(np.array(y), reference(x, dense, lhs, rhs, transpose), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("mode,gs,bits", FP_MODES)
@pytest.mark.parametrize("m", [1, 3, 12])
def test_fp_modes(mode, gs, bits, m):
    q, dense = quantized(4, 24, 128, 3, mode=mode)
    x = rand((3, m, 128), 4)
    rhs = np.array([3, 1, 1, 0], np.int32)
    lhs = np.array([0, 2, 1, 0], np.int32)
    y = call(x, q, lhs, rhs, mode=mode)
    np.testing.assert_allclose(np.array(y), reference(x, dense, lhs, rhs, True), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("m", [1, 2, 9])
@pytest.mark.parametrize("transpose", [True, False])
def test_sorted_runs_and_scattered_rows(m, transpose):
    """Long runs of one expert (a sorted mixture-of-experts batch) run as one product over
    stacked rows; rows of a run that are not consecutive in x are gathered first."""
    e, rows, cols = 5, 64, 128
    q, dense = quantized(e, rows, cols, 5)
    k = cols if transpose else rows
    x = rand((30, m, k), 6)
    rhs = np.sort(np.random.default_rng(7).integers(0, e, 40)).astype(np.uint32)
    consecutive = np.arange(40) % 30
    scattered = np.random.default_rng(8).integers(0, 30, 40).astype(np.uint32)
    for lhs in (consecutive, scattered):
        y = call(x, q, lhs, rhs, transpose)
        np.testing.assert_allclose(np.array(y), reference(x, dense, lhs, rhs, transpose), rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("cols", [256, 2048])
def test_half_inputs_match_quantized_matmul_of_the_picked_expert(dtype, cols):
    """Half x and scales (the tensor-core GEMV on a GPU; at 2048 columns its version-5
    form): each product equals quantized_matmul of its own expert, the same kernels
    without the gather."""
    e, rows = 4, 64
    w = mx.array(rand((e, rows, cols), 9)).astype(dtype)
    wq, s, b = mx.quantize(w, group_size=64, bits=4)
    x = mx.array(rand((6, 1, cols), 10)).astype(dtype)
    rhs = [3, 3, 0, 2, 1, 3]
    lhs = [5, 0, 1, 2, 4, 3]
    y = mx.gather_qmm(x, wq, s, b, lhs_indices=mx.array(lhs), rhs_indices=mx.array(rhs), group_size=64, bits=4)
    assert y.dtype == dtype and y.shape == (6, 1, rows)
    for i, (l, r) in enumerate(zip(lhs, rhs)):
        one = mx.quantized_matmul(x[l], wq[r], s[r], b[r], group_size=64, bits=4)
        np.testing.assert_allclose(np.array(y[i].astype(mx.float32)), np.array(one.astype(mx.float32)),
                                   rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_many_half_products_share_experts(dtype, order):
    """A mixture-of-experts batch of many one-row products in a half type (on a GPU the
    tensor-core GEMV then serves 8 products per block, one pass per distinct expert among
    them): each product equals quantized_matmul of its own expert; 37 products (a partial
    block of 8), 70 rows (a partial tile), x rows picked out of order; and an index out
    of range anywhere in the batch is an IndexError."""
    e, rows, cols, nb = 5, 70, 256, 37
    w = mx.array(rand((e, rows, cols), 41)).astype(dtype)
    wq, s, b = mx.quantize(w, group_size=64, bits=4)
    x = mx.array(rand((20, 1, cols), 42)).astype(dtype)
    rng = np.random.default_rng(43)
    rhs = rng.integers(0, e, nb)
    rhs = np.sort(rhs) if order == "sorted" else rhs
    lhs = rng.integers(-20, 20, nb)
    y = mx.gather_qmm(x, wq, s, b, lhs_indices=mx.array(lhs), rhs_indices=mx.array(rhs), group_size=64, bits=4)
    assert y.dtype == dtype and y.shape == (nb, 1, rows)
    want = mx.stack([mx.quantized_matmul(x[int(l)], wq[int(r)], s[int(r)], b[int(r)], group_size=64, bits=4)
                     for l, r in zip(lhs, rhs)])
    np.testing.assert_allclose(np.array(y.astype(mx.float32)), np.array(want.astype(mx.float32)), rtol=1e-2, atol=1e-2)
    for bad_l, bad_r in ((0, e), (20, 0), (-21, 0)):
        li, ri = lhs.copy(), rhs.copy()
        li[29], ri[29] = bad_l, bad_r
        with pytest.raises(IndexError, match="gather_qmm"):
            mx.eval(mx.gather_qmm(x, wq, s, b, lhs_indices=mx.array(li), rhs_indices=mx.array(ri),
                                  group_size=64, bits=4))


def test_broadcast_indices_vector_x_and_default_indices():
    q, dense = quantized(3, 16, 64, 11)
    x = rand((2, 1, 64), 12)
    lhs = np.array([[1], [0]], np.uint32)  # (2, 1)
    rhs = np.array([[2, 0, 1]], np.uint32)  # (1, 3)
    y = call(x, q, lhs, rhs)
    assert y.shape == (2, 3, 1, 16)
    np.testing.assert_allclose(np.array(y), reference(x, dense, lhs, rhs, True), rtol=2e-4, atol=2e-4)
    # a vector x: one row, squeezed again
    xv = rand((64,), 13)
    yv = mx.gather_qmm(mx.array(xv), *q, rhs_indices=mx.array([2, 1]))
    assert yv.shape == (2, 16)
    want = np.stack([dense[r] @ xv for r in (2, 1)])
    np.testing.assert_allclose(np.array(yv), want, rtol=2e-4, atol=2e-4)
    # no lhs: x's batch matrices in order, broadcast against rhs
    rhs2 = np.array([[0], [2]], np.uint32)  # (2, 1) against x's batch (2,)
    y2 = call(x, q, None, rhs2)
    assert y2.shape == (2, 2, 1, 16)
    np.testing.assert_allclose(np.array(y2), reference(x, dense, np.arange(2), rhs2, True), rtol=2e-4, atol=2e-4)


def test_negative_indices_wrap_and_out_of_range_raises():
    q, dense = quantized(3, 16, 64, 14)
    x = rand((2, 1, 64), 15)
    y = call(x, q, np.array([-1, 0], np.int32), np.array([-3, -1], np.int32))
    np.testing.assert_allclose(np.array(y), reference(x, dense, np.array([1, 0]), np.array([0, 2]), True),
                               rtol=2e-4, atol=2e-4)
    for lhs, rhs in (([0, 2], [0, 1]), ([0, 1], [3, 0]), ([0, 1], [0, -4])):
        with pytest.raises(IndexError, match="gather_qmm"):
            mx.eval(call(x, q, np.array(lhs, np.int32), np.array(rhs, np.int32)))
    # the gemm path (12 rows per product) checks them too
    x12 = rand((2, 12, 64), 16)
    with pytest.raises(IndexError, match="gather_qmm"):
        mx.eval(call(x12, q, np.array([0, 1], np.int32), np.array([0, 5], np.int32)))


def test_bad_arguments_are_value_errors():
    q, _ = quantized(3, 16, 64, 17)
    with pytest.raises(ValueError, match="gather_qmm"):
        call(rand((2, 1, 32), 18), q, None, np.array([0, 1], np.uint32))  # K mismatch
    with pytest.raises(ValueError, match="gather_qmm"):
        mx.gather_qmm(mx.ones((2, 1, 64)), *q, rhs_indices=mx.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="gather_qmm"):
        call(rand((2, 1, 64), 19), q, np.zeros(3, np.uint32), np.zeros(2, np.uint32))  # no broadcast


def test_empty_batch():
    q, _ = quantized(3, 16, 64, 20)
    y = call(rand((2, 1, 64), 21), q, None, np.zeros((0,), np.uint32).reshape(0, 1))
    assert y.shape == (0, 2, 1, 16)
    assert np.array(y).size == 0


# --------------------------------------------------------------- transforms
def composed(x, w, s, b, lhs, rhs, transpose=True):
    """The same product from take + quantized_matmul (independently tested ops)."""
    xs = mx.take(x, lhs, axis=0)
    ws, ss = mx.take(w, rhs, axis=0), mx.take(s, rhs, axis=0)
    bs = None if b is None else mx.take(b, rhs, axis=0)
    return mx.quantized_matmul(xs, ws, ss, bs, transpose=transpose, group_size=32, bits=4)


@pytest.mark.parametrize("transpose", [True, False])
def test_grads_match_the_composed_form(transpose):
    e, rows, cols = 3, 32, 64
    w = mx.array(rand((e, rows, cols), 22))
    wq, s, b = mx.quantize(w, group_size=32, bits=4)
    k = cols if transpose else rows
    x = mx.array(rand((4, 2, k), 23))
    lhs, rhs = mx.array([3, 0, 0, 2, 1]), mx.array([1, 1, 2, 0, 1])
    n = rows if transpose else cols
    cot = mx.array(rand((5, 2, n), 24))

    def f(x, s, b):
        y = mx.gather_qmm(x, wq, s, b, lhs_indices=lhs, rhs_indices=rhs, transpose=transpose,
                          group_size=32, bits=4)
        return mx.sum(y * cot)

    def g(x, s, b):
        return mx.sum(composed(x, wq, s, b, lhs, rhs, transpose) * cot)

    got = mx.grad(f, argnums=(0, 1, 2))(x, s, b)
    want = mx.grad(g, argnums=(0, 1, 2))(x, s, b)
    for a, c in zip(got, want):
        np.testing.assert_allclose(np.array(a), np.array(c), rtol=1e-4, atol=1e-4)
    # and x's gradient against central differences of the float64 reference
    dense = ref.dequantize_affine(np.array(wq), np.array(s), np.array(b), 32, 4).astype(np.float64)
    xn, eps = np.array(x, np.float64), 1e-3
    for idx in [(0, 1, 5), (3, 0, 0), (2, 1, 7)]:
        d = np.zeros_like(xn)
        d[idx] = eps
        fd = lambda xx: np.sum(reference(xx, dense, np.array(lhs), np.array(rhs), transpose) * np.array(cot))
        num = (fd(xn + d) - fd(xn - d)) / (2 * eps)
        assert abs(float(np.array(got[0])[idx]) - num) < 1e-2 * max(1.0, abs(num))


def test_jvp_and_vmap_match_the_composed_form():
    wq, s, b = mx.quantize(mx.array(rand((3, 16, 64), 25)), group_size=32, bits=4)
    x = mx.array(rand((4, 1, 64), 26))
    lhs, rhs = mx.array([1, 3, 0]), mx.array([2, 0, 2])
    tx, ts = mx.array(rand((4, 1, 64), 27)), mx.array(rand(s.shape, 28))

    def f(x, s):
        return mx.gather_qmm(x, wq, s, b, lhs_indices=lhs, rhs_indices=rhs, group_size=32, bits=4)

    def g(x, s):
        return composed(x, wq, s, b, lhs, rhs)

    (_, got), (_, want) = mx.jvp(f, (x, s), (tx, ts)), mx.jvp(g, (x, s), (tx, ts))
    np.testing.assert_allclose(np.array(got[0]), np.array(want[0]), rtol=1e-4, atol=1e-4)
    # vmap over x, over the indices, and over the weights
    xs = mx.array(rand((5, 4, 1, 64), 29))
    got = mx.vmap(lambda xx: f(xx, s))(xs)
    want = mx.stack([g(xs[i], s) for i in range(5)])
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-4, atol=1e-4)
    rs = mx.array([[0, 1, 2], [2, 2, 0]])
    got = mx.vmap(lambda r: mx.gather_qmm(x, wq, s, b, lhs_indices=lhs, rhs_indices=r, group_size=32, bits=4))(rs)
    want = mx.stack([composed(x, wq, s, b, lhs, rs[i]) for i in range(2)])
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-4, atol=1e-4)
    ss = mx.stack([s, s * 2])
    got = mx.vmap(lambda sv: f(x, sv))(ss)
    want = mx.stack([g(x, ss[i]) for i in range(2)])
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-4, atol=1e-4)
    # a batched out-of-range index still fails (not silently moved into another batch)
    with pytest.raises(IndexError, match="gather_qmm"):
        mx.eval(mx.vmap(lambda xx, r: mx.gather_qmm(xx, wq, s, b, rhs_indices=r, group_size=32, bits=4),
                        in_axes=(0, 0))(xs[:2, :3], mx.array([[0, 1, 4], [0, 1, 2]])))


# --------------------------------------------------------------- real MLX
@pytest.mark.skipif(mlx is None, reason="real MLX is not installed")
@pytest.mark.parametrize("gs,bits", [(32, 4), (64, 8), (128, 3)])
def test_matches_real_mlx(gs, bits):
    w = rand((4, 48, 256), 30)
    x = rand((6, 2, 256), 31)
    lhs, rhs = np.array([5, 0, 2, 2], np.uint32), np.array([3, 3, 0, 1], np.uint32)
    q = mlx.quantize(mlx.array(w), group_size=gs, bits=bits)
    want = mlx.gather_qmm(mlx.array(x), *q, lhs_indices=mlx.array(lhs), rhs_indices=mlx.array(rhs),
                          group_size=gs, bits=bits)
    oq = [mx.array(np.array(a)) for a in q]
    got = mx.gather_qmm(mx.array(x), *oq, lhs_indices=mx.array(lhs), rhs_indices=mx.array(rhs),
                        group_size=gs, bits=bits)
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-4, atol=1e-4)
