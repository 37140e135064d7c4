"""The CUDA backend against the CPU backend (skipped where no GPU is found).

Run on the GPU machine by scripts/gpu_test.sh; on CPU-only machines these tests are
skipped, and `test_no_gpu_detection_is_quiet` checks the fallback.
"""

import numpy as np
import pytest

import oxmx.core as mx

HAS_GPU = mx.cuda.is_available()
gpu_only = pytest.mark.skipif(not HAS_GPU, reason="no CUDA GPU")

FLOATS = [mx.float32, mx.float16, mx.bfloat16, mx.float64]
TOL = {mx.float32: 1e-5, mx.float16: 2e-3, mx.bfloat16: 2e-2, mx.float64: 1e-12}


def on(device, fn, *arrays):
    with mx.stream(device):
        out = fn(*arrays)
        mx.eval(out)
    return out


def test_no_gpu_detection_is_quiet():
    # importing and asking never raises, with or without a GPU
    assert isinstance(mx.cuda.is_available(), bool)
    assert mx.is_available(mx.cpu)
    if not HAS_GPU:
        with pytest.raises(ValueError):
            mx.set_default_device(mx.gpu)


def rand(shape, dtype, lo=-2.0, hi=2.0, seed=0):
    return mx.array(np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32)).astype(dtype)


def close(a, b, dtype):
    np.testing.assert_allclose(np.array(a.astype(mx.float64)), np.array(b.astype(mx.float64)), rtol=TOL[dtype], atol=TOL[dtype])


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["exp", "log", "sin", "tanh", "sqrt", "abs", "negative", "sigmoid", "floor", "erf", "square", "rsqrt"])
def test_unary(name, dtype):
    x = rand((37, 5), dtype, 0.1, 3.0)
    f = getattr(mx, name)
    close(on(mx.gpu, f, x), on(mx.cpu, f, x), dtype)


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS + [mx.int32, mx.int64, mx.uint8])
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "maximum", "minimum", "equal", "less", "floor_divide", "remainder"])
def test_binary_broadcast_strided(name, dtype):
    a = rand((4, 1, 6), mx.float32, 1, 9, seed=1).astype(dtype)
    b = rand((3, 6), mx.float32, 1, 9, seed=2).astype(dtype)
    f = getattr(mx, name)
    g = lambda a, b: f(a, b.T.T) if name != "less" else f(a[..., ::-1], b)
    want, got = on(mx.cpu, g, a, b), on(mx.gpu, g, a, b)
    assert got.dtype == want.dtype
    if dtype in TOL:
        close(got, want, dtype)
    else:
        np.testing.assert_array_equal(np.array(got), np.array(want))


@gpu_only
def test_integer_division_edge_cases():
    a = mx.array([7, -7, 5, -2147483648, 3], dtype=mx.int32)
    b = mx.array([2, 2, 0, -1, -1], dtype=mx.int32)
    for f in (mx.floor_divide, mx.remainder):
        np.testing.assert_array_equal(np.array(on(mx.gpu, f, a, b)), np.array(on(mx.cpu, f, a, b)))


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS + [mx.int32])
@pytest.mark.parametrize("axes", [None, 0, 1, (0, 2), -1])
def test_reductions(dtype, axes):
    x = rand((5, 7, 9), mx.float32, 0.5, 1.5, seed=3).astype(dtype)
    for name in ["sum", "max", "min", "mean", "prod"]:
        f = lambda x: getattr(mx, name)(x, axis=axes)
        want, got = on(mx.cpu, f, x), on(mx.gpu, f, x)
        if dtype in TOL:
            tol = TOL[dtype] * (50 if name in ("sum", "mean", "prod") else 1)
            np.testing.assert_allclose(np.array(got.astype(mx.float64)), np.array(want.astype(mx.float64)), rtol=tol, atol=tol)
        else:
            np.testing.assert_array_equal(np.array(got), np.array(want))


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float64])
@pytest.mark.parametrize("shapes", [((64, 32), (32, 48)), ((3, 5, 7), (7, 2)), ((7,), (7, 4)), ((2, 1, 3, 4), (5, 4, 6))])
def test_matmul(dtype, shapes):
    a = rand(shapes[0], dtype, seed=4)
    b = rand(shapes[1], dtype, seed=5)
    close(on(mx.gpu, mx.matmul, a, b), on(mx.cpu, mx.matmul, a, b), dtype if dtype != mx.float32 else mx.float32)


@gpu_only
def test_astype_where_arange_and_round_trips():
    x = rand((10,), mx.float32, -3, 3, seed=6)
    for d in [mx.int32, mx.float16, mx.bool_, mx.uint8, mx.float64]:
        np.testing.assert_array_equal(np.array(on(mx.gpu, lambda x: x.astype(d), x)), np.array(on(mx.cpu, lambda x: x.astype(d), x)))
    c = x > 0
    np.testing.assert_array_equal(np.array(on(mx.gpu, lambda c, x: mx.where(c, x, -x), c, x)), np.abs(np.array(x)))
    np.testing.assert_array_equal(np.array(on(mx.gpu, lambda: mx.arange(3, 20, 2))), np.arange(3, 20, 2))


@gpu_only
def test_default_device_and_lazy_migration():
    assert mx.default_device() == mx.gpu
    a = mx.array(np.arange(6, dtype=np.float32).reshape(2, 3))  # host data
    b = (a * 2).sum(axis=0)  # runs on the GPU, uploads a once
    assert b.tolist() == [6.0, 10.0, 14.0]  # read back on the host
    c = on(mx.cpu, lambda b: b + 1, b)  # a GPU result used by the CPU
    assert c.tolist() == [7.0, 11.0, 15.0]
    info = mx.device_info(mx.gpu)
    assert info["memory_size"] > 1 << 30 and "device_name" in info


@gpu_only
def test_gradients_on_gpu():
    w = rand((4, 3), mx.float32, seed=7)
    x = rand((5, 4), mx.float32, seed=8)
    loss = lambda w: (mx.tanh(x @ w) ** 2).sum()
    g_gpu = mx.grad(loss)(w)
    with mx.stream(mx.cpu):
        g_cpu = mx.grad(loss)(w)
    close(g_gpu, g_cpu, mx.float32)


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_and_argreduce(dtype):
    x = rand((6, 300), dtype, -5, 5, seed=9)
    close(on(mx.gpu, lambda x: mx.softmax(x, axis=-1), x), on(mx.cpu, lambda x: mx.softmax(x, axis=-1), x), dtype)
    for f in (mx.argmax, mx.argmin):
        for ax in (0, 1):
            g = lambda x: f(x, axis=ax)
            np.testing.assert_array_equal(np.array(on(mx.gpu, g, x)), np.array(on(mx.cpu, g, x)))
    t = mx.array([[1.0, 3.0, 3.0, float("nan"), 0.0]]).astype(dtype)
    for f in (mx.argmax, mx.argmin):
        assert on(mx.gpu, lambda t: f(t, axis=1), t).tolist() == on(mx.cpu, lambda t: f(t, axis=1), t).tolist()


def same(got, want):
    if isinstance(want, np.ndarray):
        np.testing.assert_array_equal(np.array(got), want)
        return
    assert got.dtype == want.dtype
    if got.dtype == mx.bfloat16:
        got, want = got.astype(mx.float32), want.astype(mx.float32)
    np.testing.assert_array_equal(np.array(got), np.array(want))


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64])
@pytest.mark.parametrize("n", [1, 3, 4, 7, 64, 100, 1024, 1028, 4096, 8192, 16384, 16388, 20000])
def test_softmax_row_lengths(dtype, n):
    # one-read (rows in registers) and two-read kernels, with NaN and inf rows
    x = rand((3, n), mx.float32, -8, 8, seed=n)
    x[1, n // 2] = float("inf")
    x[2, 0] = float("nan")
    x = x.astype(dtype)
    f = lambda x: mx.softmax(x, axis=-1)
    got, want = on(mx.gpu, f, x), on(mx.cpu, f, x)
    close(got[:1], want[:1], dtype)
    for r in (1, 2):
        np.testing.assert_array_equal(np.isnan(np.array(got[r].astype(mx.float32))), np.isnan(np.array(want[r].astype(mx.float32))))


MATMUL_LAYOUTS = {
    "plain": lambda a, b: a[:5, :7] @ b[:7, :3],
    "a_transposed": lambda a, b: a[:7, :5].T @ b[:7, :3],
    "b_transposed": lambda a, b: a[:5, :7] @ b[:3, :7].T,
    "both_transposed_offset": lambda a, b: a[1:8, 2:7].T @ b[3:6, 1:8].T,
    "batch_broadcast_rhs": lambda a, b: a.reshape(-1)[:72].reshape(3, 4, 6) @ b[:6, :5],
    "batch_broadcast_lhs": lambda a, b: a[:4, :6] @ b[:12, :5].reshape(2, 6, 5),
    "batched_transposed": lambda a, b: a[:12, :4].reshape(3, 4, 4).swapaxes(-1, -2) @ b[:12, :2].reshape(3, 4, 2),
    "strided_rows": lambda a, b: a[::2, ::3][:4, :3] @ b[:3, :6],
    "vector_lhs": lambda a, b: a[0, :7] @ b[:7, :4],
    "vector_rhs": lambda a, b: a[:5, :7] @ b[:7, 0],
    "k_zero": lambda a, b: a[:5, :0] @ b[:0, :3],
    "empty_m": lambda a, b: a[:0, :7] @ b[:7, :3],
    "multi_batch_broadcast": lambda a, b: a[:8, :3].reshape(2, 1, 4, 3) @ b[:9, :5].reshape(3, 3, 5),
}


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64])
@pytest.mark.parametrize("case", sorted(MATMUL_LAYOUTS))
def test_matmul_layouts(dtype, case):
    a = rand((16, 16), dtype, seed=11)
    b = rand((16, 16), dtype, seed=12)
    f = MATMUL_LAYOUTS[case]
    got, want = on(mx.gpu, f, a, b), on(mx.cpu, f, a, b)
    assert got.shape == want.shape and got.dtype == want.dtype
    tol = {mx.float32: 1e-5, mx.float16: 1e-2, mx.bfloat16: 5e-2, mx.float64: 1e-12}[dtype]
    np.testing.assert_allclose(np.array(got.astype(mx.float64)), np.array(want.astype(mx.float64)), rtol=tol, atol=tol * 8)


@gpu_only
def test_matmul_large_matches_numpy():
    r = np.random.default_rng(13)
    a = r.standard_normal((300, 257)).astype(np.float32)
    b = r.standard_normal((257, 129)).astype(np.float32)
    got = on(mx.gpu, lambda a, b: a @ b, mx.array(a), mx.array(b))
    np.testing.assert_allclose(np.array(got), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


# Copies to contiguous (copy.rs): 16-byte units where rows, strides and offsets allow, a
# block row per long row, and the element-wise walk otherwise.
COPIES = {
    "heads_transpose_d64": ((2, 33, 4, 64), lambda x: x.transpose(0, 2, 1, 3)),
    "heads_transpose_d3": ((2, 33, 4, 3), lambda x: x.transpose(0, 2, 1, 3)),
    "long_rows_offset": ((7, 1030), lambda x: x[:, 1:]),
    "long_rows_aligned": ((5, 2048), lambda x: x[::2, 8:]),
    "unit_rows_offset": ((6, 40), lambda x: x[1:, 8:24]),
    "column_major_long": ((600, 9), lambda x: x.T),
    "reversed": ((9, 300), lambda x: x[:, ::-1]),
}


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float32, mx.int8, mx.complex64])
@pytest.mark.parametrize("case", sorted(COPIES))
def test_copies_to_contiguous(dtype, case):
    shape, f = COPIES[case]
    n = int(np.prod(shape))
    base = np.arange(n, dtype=np.int64).reshape(shape) % 113
    x = mx.array(base).astype(dtype)
    want = f(base)
    for g in (lambda x: mx.contiguous(f(x)), lambda x: f(x).reshape(-1)):
        got = on(mx.gpu, g, x)
        vals = np.array(got).real if dtype == mx.complex64 else np.array(got.astype(mx.float32))
        np.testing.assert_array_equal(vals.reshape(want.shape), want)


# Reductions over one strided axis into contiguous outputs take the column kernel
# (a thread per output, chunks of rows combined in a second pass).
COLUMN_REDUCTIONS = {
    "rows_of_matrix": ((4099, 300), lambda f, x: f(x, axis=0)),
    "batch_and_rows": ((8, 513, 96), lambda f, x: f(x, axis=(0, 1))),
    "one_chunk": ((40, 64), lambda f, x: f(x, axis=0)),
    "sliced_columns": ((2000, 130), lambda f, x: f(x[:, 1:-1], axis=0)),
    "reversed_rows": ((3001, 70), lambda f, x: f(x[::-1], axis=0)),
}


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16, mx.int32, mx.bool_])
@pytest.mark.parametrize("case", sorted(COLUMN_REDUCTIONS))
def test_column_reductions(dtype, case):
    shape, f = COLUMN_REDUCTIONS[case]
    x = rand(shape, mx.float32, -3, 3, seed=31)
    x = (x > 0) if dtype == mx.bool_ else x.astype(dtype)
    names = ["any", "all", "sum"] if dtype == mx.bool_ else ["sum", "max", "min", "mean", "prod"]
    for name in names:
        g = lambda x: f(getattr(mx, name), x)
        # products of thousands of factors in [-3, 3] overflow or underflow depending
        # on the order: keep the float factors near 1
        y = 1 + x / 64 if name == "prod" and dtype in (mx.float32, mx.bfloat16) else x
        want, got = on(mx.cpu, g, y), on(mx.gpu, g, y)
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if dtype in (mx.int32, mx.bool_) and name != "mean":
            np.testing.assert_array_equal(np.array(got), np.array(want), err_msg=name)
        else:
            w, g64 = np.array(want.astype(mx.float64)), np.array(got.astype(mx.float64))
            scale = np.sqrt(x.size / got.size) if name in ("sum", "mean") else 1.0
            tol = (2e-2 if dtype == mx.bfloat16 else 1e-5) * scale
            np.testing.assert_allclose(g64, w, rtol=tol, atol=tol, err_msg=name)


# Rows of at most 256 contiguous elements are reduced by groups of lanes of a warp
# (several rows per warp, combined by shuffles), longer ones by a block each.
SHORT_ROWS = {
    "n1": ((37, 1), lambda f, x: f(x, axis=-1)),
    "n3": ((1001, 3), lambda f, x: f(x, axis=-1)),
    "n4": ((257, 4), lambda f, x: f(x, axis=-1)),
    "n7": ((33, 7), lambda f, x: f(x, axis=1)),
    "n64_heads": ((3, 5, 129, 64), lambda f, x: f(x, axis=-1)),
    "n65": ((300, 65), lambda f, x: f(x, axis=-1)),
    "n128": ((77, 128), lambda f, x: f(x, axis=-1)),
    "n200": ((19, 200), lambda f, x: f(x, axis=-1)),
    "n256": ((513, 256), lambda f, x: f(x, axis=-1)),
    "n257_block": ((9, 257), lambda f, x: f(x, axis=-1)),
    "offset_slice": ((70, 72), lambda f, x: f(x[3:, 4:68], axis=-1)),
    "unaligned_slice": ((70, 72), lambda f, x: f(x[:, 1:], axis=-1)),
    "keepdims": ((40, 96), lambda f, x: f(x, axis=-1, keepdims=True)),
}


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64, mx.int32, mx.int64, mx.uint8, mx.bool_])
@pytest.mark.parametrize("case", sorted(SHORT_ROWS))
def test_short_row_reductions(dtype, case):
    shape, f = SHORT_ROWS[case]
    x = rand(shape, mx.float32, -3, 3, seed=37)
    if dtype == mx.bool_:
        x = x > 0
    elif dtype == mx.uint8:
        x = (x + 3).astype(dtype)
    else:
        x = x.astype(dtype)
    names = ["any", "all", "sum"] if dtype == mx.bool_ else ["sum", "max", "min", "mean", "prod", "any", "all"]
    for name in names:
        g = lambda x: f(getattr(mx, name), x)
        y = 1 + x / 64 if name == "prod" and dtype in FLOATS else x
        y = (y > 1).astype(dtype) if name == "prod" and dtype not in FLOATS and dtype != mx.bool_ else y
        want, got = on(mx.cpu, g, y), on(mx.gpu, g, y)
        assert got.shape == want.shape and got.dtype == want.dtype, name
        if got.dtype in (mx.int32, mx.int64, mx.uint8, mx.uint32, mx.bool_):
            np.testing.assert_array_equal(np.array(got), np.array(want), err_msg=name)
        else:
            w, g64 = np.array(want.astype(mx.float64)), np.array(got.astype(mx.float64))
            scale = np.sqrt(shape[-1]) if name in ("sum", "mean") else 1.0
            tol = {mx.float16: 2e-3, mx.bfloat16: 2e-2, mx.float64: 1e-12}.get(dtype, 1e-5) * scale
            np.testing.assert_allclose(g64, w, rtol=tol, atol=tol, err_msg=name)


# Products big enough that a leading dimension that is not a multiple of 16 bytes is padded
# (lt_align.rs): output columns, a row-major and a column-major operand, batches.
MISALIGNED = {
    "output_cols": ((256, 1024), (1024, 4099), lambda a, b: a @ b),
    "lhs_rows": ((256, 4099), (4099, 1024), lambda a, b: a @ b),
    "lhs_column_major": ((1024, 4099), (1024, 256), lambda a, b: a.T @ b),
    "rhs_transposed": ((512, 1024), (4099, 1024), lambda a, b: a @ b.T),
    "batched": ((4, 256, 1030), (4, 1030, 1024), lambda a, b: a @ b),
}


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float32])
@pytest.mark.parametrize("case", sorted(MISALIGNED))
def test_matmul_misaligned_leading_dims(dtype, case):
    sa, sb, f = MISALIGNED[case]
    a, b = rand(sa, dtype, seed=21), rand(sb, dtype, seed=22)
    got = on(mx.gpu, f, a, b)
    an, bn = np.array(a.astype(mx.float32)).astype(np.float64), np.array(b.astype(mx.float32)).astype(np.float64)
    want = f(an, bn)
    assert got.shape == want.shape and got.dtype == dtype
    scale = np.sqrt(sa[-1] if case != "lhs_column_major" else sa[0])
    tol = (2e-2 if dtype == mx.bfloat16 else 1e-4) * scale
    np.testing.assert_allclose(np.array(got.astype(mx.float32)), want, rtol=2e-2, atol=tol)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float32])
def test_padded_operand_shared_by_both_backward_products(dtype):
    """An LM head with an odd vocabulary: both backward products read the cotangent, padded
    once (lt_align.rs keeps the last padded copy while its source lives). New cotangents
    of the same shape, and a slice of the same buffer at another offset, must not reuse it."""
    h, w = rand((256, 1024), dtype, seed=23), rand((4099, 1024), dtype, seed=24)
    base = rand((256, 4100), dtype, seed=25)
    hn, wn = (np.array(v.astype(mx.float32)).astype(np.float64) for v in (h, w))
    for t in (base[:, :4099], base[:, 1:], rand((256, 4099), dtype, seed=26)):
        grads = on(mx.gpu, lambda h, w: mx.grad(lambda h, w: ((h @ w.T) * t).sum(), argnums=(0, 1))(h, w), h, w)
        tn = np.array(t.astype(mx.float32)).astype(np.float64)
        for got, want, k in ((grads[0], tn @ wn, 4099), (grads[1], tn.T @ hn, 256)):
            assert got.shape == want.shape and got.dtype == dtype
            tol = (2e-2 if dtype == mx.bfloat16 else 1e-4) * np.sqrt(k)
            np.testing.assert_allclose(np.array(got.astype(mx.float32)), want, rtol=2e-2, atol=tol)


GATHERS = {
    "take_rows": lambda x, i: x[i],
    "take_negative": lambda x, i: mx.take(x, -1 - (i % 3).astype(mx.int32), axis=1),
    "two_axes": lambda x, i: x[i, i[::-1] % 3],
    "middle_axis": lambda x, i: x.reshape(2, 3, 2)[:, i % 3],
    "transposed_src": lambda x, i: x.T[i % 3],
    "flat_take": lambda x, i: mx.take(x, i * 2),
    "along_axis0": lambda x, i: mx.take_along_axis(x, mx.broadcast_to(i[:, None] % 4, (4, 3)), axis=0),
    "along_axis1": lambda x, i: mx.take_along_axis(x, mx.broadcast_to(i[None, :3] % 3, (4, 3)), axis=1),
}


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.int64, mx.uint8, mx.bool_, mx.complex64])
@pytest.mark.parametrize("idx_dtype", [mx.int32, mx.uint32, mx.int64, mx.int8])
@pytest.mark.parametrize("case", sorted(GATHERS))
def test_gathers(dtype, idx_dtype, case):
    x = (mx.arange(12).reshape(4, 3) * 3 + 1).astype(dtype)
    i = mx.array([3, 0, 2, 2, 1]).astype(idx_dtype)[:4]
    f = GATHERS[case]
    got, want = on(mx.gpu, f, x, i), on(mx.cpu, f, x, i)
    assert got.shape == want.shape and got.dtype == want.dtype
    same(got, want)


@gpu_only
@pytest.mark.parametrize("case", ["gather", "take_along_axis", "put_along_axis", "scatter", "scatter_add"])
@pytest.mark.parametrize("bad", [4, -5, 1 << 40])
def test_out_of_bounds_indices_raise_on_gpu(case, bad):
    x = mx.zeros((4, 3))
    i = mx.array([0, bad, 1], dtype=mx.int64)
    f = {
        "gather": lambda: x[i],
        "take_along_axis": lambda: mx.take_along_axis(x, i[:, None], axis=0),
        "put_along_axis": lambda: mx.put_along_axis(x, i[:, None], mx.ones((3, 1)), axis=0),
        "scatter": lambda: _set(x, i),
        "scatter_add": lambda: x.at[i].add(1.0),
    }[case]
    with pytest.raises(IndexError):
        on(mx.gpu, f)
    # the GPU is still usable and in-range indices work after the error
    same(on(mx.gpu, lambda: x[mx.array([1, 2])] + 1), np.ones((2, 3), np.float32))


@gpu_only
def test_index_errors_found_after_the_launch_fail_their_evaluation():
    """Index checks are read at the end of the evaluation (no wait after each gather):
    the evaluation still raises the op's IndexError, every array computed from the
    checked gather drops its data (it may derive from the bad index) and raises that
    error again when read or used, as on the CPU where the node is recomputed; other
    arrays of the same evaluation and arrays computed before stay valid, and the next
    evaluation starts clean (on this thread and on others)."""
    import threading

    with mx.stream(mx.gpu):
        x = mx.arange(12, dtype=mx.float32).reshape(4, 3)
        before = x * 2
        mx.eval(before)
        bad = x[mx.array([0, 7])] + 1
        downstream = bad.sum() * 3
        unrelated = x - 1
        with pytest.raises(IndexError, match=r"Index 7 is out of bounds"):
            mx.eval(downstream, unrelated)
        for a in (bad, downstream):
            with pytest.raises(IndexError, match=r"Index 7 is out of bounds"):
                np.array(a)
        # a consumer of a failed array cannot be evaluated either
        with pytest.raises(IndexError, match=r"Index 7 is out of bounds"):
            mx.eval(downstream + 1)
        same(unrelated, np.arange(12, dtype=np.float32).reshape(4, 3) - 1)
        same(before, np.arange(12, dtype=np.float32).reshape(4, 3) * 2)
        good = x[mx.array([3, 0])] * 1
        mx.eval(good)
        same(good, np.arange(12, dtype=np.float32).reshape(4, 3)[[3, 0]])

    # an error queued by one thread is reported to that thread only
    results = {}

    def run(name, idx):
        try:
            with mx.stream(mx.gpu):
                y = x[mx.array(idx)]
                for _ in range(50):
                    y = y + 0
                mx.eval(y)
            results[name] = "ok"
        except IndexError:
            results[name] = "IndexError"

    threads = [threading.Thread(target=run, args=(f"bad{k}", [0, 9])) for k in range(2)]
    threads += [threading.Thread(target=run, args=(f"good{k}", [1, 2])) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"bad0": "IndexError", "bad1": "IndexError", "good0": "ok", "good1": "ok"}


def _set(x, i):
    y = x + 0
    y[i] = 5.0
    return y


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float64, mx.int32, mx.int64, mx.uint32, mx.float16, mx.bfloat16, mx.uint8, mx.complex64,
                                   mx.int8, mx.int16, mx.uint16, mx.uint64, mx.bool_])
@pytest.mark.parametrize("mode", ["set", "add", "multiply", "maximum", "minimum"])
def test_scatters_with_duplicates(dtype, mode):
    x = (mx.arange(15).reshape(5, 3) % 4 + 1).astype(dtype)
    i = mx.array([4, 0, 4, 2, 4, 0])
    v = (mx.arange(18).reshape(6, 3) % 5 + 1).astype(dtype)

    def f(x, i, v):
        if mode == "set":
            y = x + 0
            y[i] = v
            return y
        return getattr(x.at[i], mode)(v)

    got, want = on(mx.gpu, f, x, i, v), on(mx.cpu, f, x, i, v)
    same(got, want)  # small integers: every order of combination gives the same value
    pa = lambda x, i, v: mx.put_along_axis(x, i[:5, None] % 3, v[:5, :1], axis=1)
    same(on(mx.gpu, pa, x, i % 5, v), on(mx.cpu, pa, x, i % 5, v))


@gpu_only
def test_scatter_add_floats_many_duplicates():
    r = np.random.default_rng(14)
    idx = r.integers(0, 50, 20000)
    vals = r.standard_normal(20000).astype(np.float32)
    got = on(mx.gpu, lambda: mx.zeros((50,)).at[mx.array(idx)].add(mx.array(vals)))
    want = np.zeros(50, np.float64)
    np.add.at(want, idx, vals.astype(np.float64))
    np.testing.assert_allclose(np.array(got), want, rtol=1e-4, atol=1e-4)


@gpu_only
@pytest.mark.parametrize("shape", [(), (1,), (3,), (5, 7), (1000,), (2, 3, 4)])
def test_random_bits_identical_to_cpu(shape):
    k = mx.random.key(42)
    for f in (
        lambda: mx.random.uniform(shape=shape, key=k),
        lambda: mx.random.normal(shape=shape, key=k),
        lambda: mx.random.randint(-100, 100, shape=shape, key=k),
        lambda: mx.random.bits(shape, 1, key=k),
        lambda: mx.random.bits(shape, 2, key=k),
        lambda: mx.random.uniform(shape=shape, key=mx.random.split(k, 3)[1]),
    ):
        same(on(mx.gpu, f), on(mx.cpu, f))
    # several keys at once (one run of bytes per key, odd sizes included)
    ks = mx.random.split(k, 4)
    g = lambda: mx.vmap(lambda k: mx.random.bits((3,), 1, key=k))(ks)
    same(on(mx.gpu, g), on(mx.cpu, g))


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16, mx.int8, mx.bool_, mx.complex64, mx.uint64])
def test_concatenate_and_slice_update(dtype):
    x = (mx.arange(24).reshape(4, 6) % 7).astype(dtype)
    y = (mx.arange(8).reshape(4, 2) % 3).astype(dtype)
    cases = [
        lambda x, y: mx.concatenate([x, y, x[:, ::-2]], axis=1),
        lambda x, y: mx.concatenate([x.T, y.T], axis=0),
        lambda x, y: mx.concatenate([x[:0], x[1:3]], axis=0),
    ]

    def upd(x, y):
        z = x + 0 if dtype != mx.bool_ else mx.logical_or(x, x)
        z[:, 1:5:2] = y
        z[::-2, 0] = y[:2, 1]
        return z

    for f in cases + [upd]:
        got, want = on(mx.gpu, f, x, y), on(mx.cpu, f, x, y)
        assert got.shape == want.shape
        same(got, want)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64, mx.int32, mx.int8, mx.uint16, mx.int64, mx.bool_])
@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"])
def test_scans_same_bits_as_cpu(dtype, op):
    if op == "logcumsumexp" and not mx.issubdtype(dtype, mx.floating):
        return
    # (3, 5000) and (2, 70001): a few long rows, scanned in 2048-element tiles; the
    # others one thread per row in the CPU's order
    for shape, axis in (((600, 37), 1), ((37, 600), 0), ((3, 5000), 1), ((2, 70001), 1), ((4, 0), 1), ((1, 2049), 1)):
        lo, hi = (0.999, 1.001) if op == "cumprod" else (-1.5, 1.5)
        x = rand(shape, mx.float32, lo, hi, seed=shape[0]).astype(dtype)
        tiled = shape[1] > 2048
        for reverse in (False, True):
            for inclusive in (True, False):
                f = lambda x: getattr(mx, op)(x, axis=axis, reverse=reverse, inclusive=inclusive)
                got, want = on(mx.gpu, f, x), on(mx.cpu, f, x)
                if tiled and op in ("cumsum", "cumprod", "logcumsumexp") and mx.issubdtype(dtype, mx.floating):
                    # Tiles combine floats in another order than the CPU's running value,
                    # which rounds at every step (its float16 sums drift by whole units
                    # over 70001 elements). Where no step rounds (small integers, powers
                    # of two) both are exact and equal; otherwise both are near the exact
                    # scan (float64 is held to NumPy's own running value, which rounds).
                    if op != "logcumsumexp" and (op == "cumprod" or dtype != mx.bfloat16):
                        xe = mx.array(_exact_rows(shape, op)).astype(dtype)
                        same(on(mx.gpu, f, xe), on(mx.cpu, f, xe))
                    if op == "cumprod":
                        continue  # rounded products drift in any order (relative errors add)
                    ref = _np_scan(np.array(x.astype(mx.float64)), op, reverse, inclusive)
                    eps = {mx.float32: 2.0**-23, mx.float16: 2.0**-10, mx.bfloat16: 2.0**-7, mx.float64: 2.0**-52}[dtype]
                    scale = max(1.0, float(np.abs(ref[np.isfinite(ref)]).max(initial=0)))
                    np.testing.assert_allclose(np.array(got.astype(mx.float64)), ref, rtol=0,
                                               atol=(4096 if dtype == mx.float64 else 64) * eps * scale)
                elif op == "logcumsumexp":
                    # exp/log1p of CUDA's libdevice and glibc can differ in the last bit
                    close(got, want, dtype)
                else:
                    same(got, want)


def _exact_rows(shape, op):
    """Rows whose sums (small integers) or products (signs, and a 2 undone by a later 0.5)
    are exact in every float dtype at every step."""
    r = np.random.default_rng(1)
    if op == "cumsum":
        return r.integers(-1, 2, shape).astype(np.float32)
    a = np.where(r.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)
    a[:, 50::200] *= 2
    a[:, 150::200] *= 0.5
    return a


def _np_scan(a, op, reverse, inclusive):
    """Scan of float64 rows (axis 1) in NumPy: the exact reference of a float scan."""
    a = a[:, ::-1] if reverse else a
    f = {"cumsum": np.cumsum, "cumprod": np.cumprod, "logcumsumexp": np.logaddexp.accumulate}[op]
    r = f(a, axis=1)
    if not inclusive:
        first = np.full((a.shape[0], 1), {"cumsum": 0.0, "cumprod": 1.0, "logcumsumexp": -np.inf}[op])
        r = np.concatenate([first, r[:, :-1]], axis=1)
    return r[:, ::-1] if reverse else r


@gpu_only
@pytest.mark.parametrize("op", ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"])
def test_complex_scans(op):
    # complex64 scans on the GPU, one thread per row and tiled; max/min are lexicographic
    # with NaN winning, and exact
    for shape in ((40, 9), (2, 6000)):
        z = np.random.default_rng(3).integers(-3, 4, shape) + 1j * np.random.default_rng(4).integers(-3, 4, shape)
        if op == "cumprod":
            z = np.exp(1j * np.random.default_rng(5).uniform(-1, 1, shape))
        elif op == "logcumsumexp":
            z = z / 4
        z = z.astype(np.complex64)
        z[1, 5] = complex("nan+1j")
        x = mx.array(z)
        for reverse in (False, True):
            for inclusive in (True, False):
                f = lambda x: getattr(mx, op)(x, axis=1, reverse=reverse, inclusive=inclusive)
                got, want = on(mx.gpu, f, x), on(mx.cpu, f, x)
                if op in ("cummax", "cummin"):
                    same(got, want)
                else:
                    g, w = np.array(got), np.array(want)
                    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
                    ok = ~np.isnan(w)
                    np.testing.assert_allclose(g[ok], w[ok], rtol=2e-4, atol=2e-3)


@gpu_only
def test_long_scan_edges():
    # the tiled scan's seams: rows of one tile plus one element, exact tile multiples,
    # a row of 2^20 + 3 (many tiles, several chunks in the carry pass); integers exact
    for n in (2049, 4096, 6144, (1 << 20) + 3):
        x = mx.array(np.random.default_rng(n).integers(-50, 50, (2, n)).astype(np.int32))
        for reverse in (False, True):
            for inclusive in (True, False):
                for op in ("cumsum", "cummax"):
                    f = lambda x: getattr(mx, op)(x, axis=1, reverse=reverse, inclusive=inclusive)
                    same(on(mx.gpu, f, x), on(mx.cpu, f, x))
    # -0.0 stays -0.0 in an inclusive sum, and becomes +0.0 after the exclusive scan's 0
    z = mx.array(np.full((1, 5000), -0.0, np.float32))
    for inclusive in (True, False):
        f = lambda z: mx.cumsum(z, axis=1, inclusive=inclusive)
        same(on(mx.gpu, f, z), on(mx.cpu, f, z))


COMPLEX_UNARY = ["abs", "negative", "sign", "square", "sqrt", "rsqrt", "reciprocal", "exp", "expm1", "log", "log2", "log10", "log1p",
                 "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
                 "conjugate", "real", "imag", "isnan", "isinf", "isfinite", "isposinf", "isneginf"]


def _complex(shape, seed):
    r = np.random.default_rng(seed)
    return mx.array((r.uniform(-2, 2, shape) + 1j * r.uniform(-2, 2, shape)).astype(np.complex64))


def close_c(got, want, tol=2e-5):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=tol, atol=tol)


@gpu_only
@pytest.mark.parametrize("name", COMPLEX_UNARY)
def test_complex_unary(name):
    z = _complex((7, 9), 20)
    z[0, :4] = mx.array([0j, 1 + 0j, complex("nan+1j"), complex("inf+0j")]).astype(mx.complex64)
    f = getattr(mx, name)
    g = lambda z: f(z[1:]) if name not in ("isnan", "isinf", "isfinite", "isposinf", "isneginf") else f(z)
    close_c(on(mx.gpu, g, z), on(mx.cpu, g, z), 1e-4 if name.startswith("arc") else 2e-5)


@gpu_only
@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "equal", "not_equal", "logaddexp"])
def test_complex_binary_broadcast(name):
    a, b = _complex((4, 1, 6), 21), _complex((3, 6), 22)
    if name != "power":  # (powers of infinities follow num_complex's formulas on the CPU only)
        # NaN in either operand (a NaN first operand wins maximum/minimum), infinities
        a[0, 0, :4] = mx.array([complex("nan+1j"), complex("-inf+0j"), complex("inf+0j"), 1j]).astype(mx.complex64)
        b[1, :4] = mx.array([1 + 1j, complex("nan+0j"), 2j, complex("-inf+0j")]).astype(mx.complex64)
    f = getattr(mx, name)
    got, want = on(mx.gpu, f, a, b), on(mx.cpu, f, a, b)
    if name in ("maximum", "minimum"):
        same(got, want)
    else:
        g, w = np.array(got), np.array(want)
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g[~np.isnan(w)], w[~np.isnan(w)], rtol=1e-4, atol=1e-4)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.complex64, mx.float32, mx.float16])
def test_max_min_argmax_with_nans_and_ties(dtype):
    # lexicographic complex order; a NaN wins max/min; argmax/argmin give the first NaN
    # or the first of equal values, however the block's tree meets them
    r = np.random.default_rng(12)
    a = r.integers(-3, 4, (6, 3000)).astype(np.float32)
    if dtype == mx.complex64:
        a = a + 1j * r.integers(-2, 3, (6, 3000)).astype(np.float32)
    a[1, 2500], a[1, 7], a[2, 300] = np.nan, np.nan, np.nan
    a[3, :] = 0.0
    x = mx.array(a).astype(dtype)
    for f in (lambda x: x.max(axis=1), lambda x: x.min(axis=1), lambda x: mx.argmax(x, axis=1), lambda x: mx.argmin(x, axis=1),
              lambda x: x.max(axis=0), lambda x: mx.argmax(x, axis=0), lambda x: x[:, 5:9].max(axis=1)):
        got, want = on(mx.gpu, f, x), on(mx.cpu, f, x)
        if got.dtype == mx.uint32:
            same(got, want)
        else:
            g, w = np.array(got), np.array(want)
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_array_equal(g[~np.isnan(w)], w[~np.isnan(w)])


@gpu_only
@pytest.mark.parametrize("dtype", [mx.int8, mx.uint8, mx.int16, mx.uint16, mx.int32, mx.uint32, mx.int64, mx.uint64])
def test_integer_power_same_as_cpu(dtype):
    # wrapping powers, negative exponents (only 1 and -1 survive), large exponents
    r = np.random.default_rng(9)
    signed = not mx.issubdtype(dtype, mx.unsignedinteger)
    base = r.integers(-5 if signed else 0, 6, (40, 13))
    exp = r.integers(-3 if signed else 0, 70, (40, 13))
    exp[0, :3] = [0, 1, 200]
    x, e = mx.array(base).astype(dtype), mx.array(exp).astype(dtype)
    for f in (lambda x, e: x**e, lambda x, e: mx.power(x, e[:1]), lambda x, e: x ** 3, lambda x, e: 2 ** e[:, ::-2]):
        same(on(mx.gpu, f, x, e), on(mx.cpu, f, x, e))


@gpu_only
def test_complex_casts_reductions_where():
    z = _complex((5, 8), 23)
    z[0, 0] = 0j
    for d in (mx.float32, mx.float16, mx.int32, mx.bool_, mx.float64):
        same(on(mx.gpu, lambda z: z.astype(d), z), on(mx.cpu, lambda z: z.astype(d), z))
    x = rand((5, 8), mx.float32, seed=24)
    for d in (mx.float32, mx.float16, mx.int32, mx.bool_):
        same(on(mx.gpu, lambda x: x.astype(d).astype(mx.complex64), x), on(mx.cpu, lambda x: x.astype(d).astype(mx.complex64), x))
    for f in (lambda z: z.sum(), lambda z: z.sum(axis=0), lambda z: z.prod(axis=1), lambda z: mx.where(z.real > 0, z, -z), lambda z: z.T + 1):
        close_c(on(mx.gpu, f, z), on(mx.cpu, f, z), 1e-4)
    big = _complex((1 << 18,), 25)
    close_c(on(mx.gpu, lambda z: z.sum(), big), on(mx.cpu, lambda z: z.sum(), big), 1e-2)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64, mx.int32, mx.uint8, mx.int64, mx.uint64, mx.bool_, mx.complex64])
@pytest.mark.parametrize("n", [1, 2, 5, 64, 1000, 2048, 3000, 4096, 20001])
def test_sort_argsort_same_as_cpu(dtype, n):
    # many ties (stability decides argsort), NaN, -0.0 and 0.0; rows longer than 2048
    # are sorted in tiles, then merged
    r = np.random.default_rng(n)
    a = r.integers(-4, 5, (3, n)).astype(np.float32)
    a[0, : n // 3] = 0.0
    a[0, n // 3 : n // 2] = -0.0
    if n > 3:
        a[1, 3] = np.nan
        a[2, 1] = np.inf
    x = mx.array(a).astype(dtype) if dtype != mx.complex64 else mx.array(a + 1j * r.integers(-2, 2, (3, n)).astype(np.float32))
    for f in (lambda x: mx.sort(x, axis=-1), lambda x: mx.argsort(x, axis=-1), lambda x: mx.sort(x, axis=0), lambda x: mx.argsort(x.T, axis=-1)):
        got, want = on(mx.gpu, f, x), on(mx.cpu, f, x)
        if got.dtype in (mx.float32, mx.float16, mx.bfloat16, mx.float64, mx.complex64):
            np.testing.assert_array_equal(np.array(got.astype(mx.float32) if got.dtype == mx.bfloat16 else got), np.array(want.astype(mx.float32) if want.dtype == mx.bfloat16 else want))
            np.testing.assert_array_equal(np.signbit(np.array(got.astype(mx.float32).real if got.dtype == mx.complex64 else got.astype(mx.float32))), np.signbit(np.array(want.astype(mx.float32).real if want.dtype == mx.complex64 else want.astype(mx.float32))))
        else:
            same(got, want)


@gpu_only
def test_native_kernels_do_not_fall_back(tmp_path):
    # With OXMX_CUDA_STRICT=1 an op without a GPU kernel raises instead of running on
    # the host, so this proves these ops run on the GPU. It also checks that kernels
    # land in the on-disk cache and a second process reuses them.
    import os
    import subprocess
    import sys

    script = """
import numpy as np, oxmx.core as mx
x = mx.arange(24, dtype=mx.float32).reshape(4, 6)
i = mx.array([3, 0, 2])
outs = [
    mx.softmax(x, axis=-1), x @ x.T, x.astype(mx.bfloat16) @ x.T.astype(mx.bfloat16),
    x.astype(mx.float16) @ x.T.astype(mx.float16), x.astype(mx.float64) @ x.T.astype(mx.float64),
    x[i], mx.take_along_axis(x[:3], i[:, None], axis=1), mx.put_along_axis(x[:3], i[:, None], x[:3, :1], axis=1),
    x.at[i].add(1.0), mx.concatenate([x, x], axis=0), mx.random.bits((3, 5), 4, key=mx.random.key(1)),
    mx.cumsum(x, axis=1), mx.cummax(x.astype(mx.int32), axis=0, reverse=True, inclusive=False),
    mx.exp(x.astype(mx.complex64) * 1j).sum(axis=0), mx.abs(x.astype(mx.complex64) / (x + 1j)),
    mx.sort(-x, axis=1), mx.argsort(x[:, ::-1], axis=1),
]
y = x + 0
y[1:3, ::2] = 7.0
y[i] = 1.0
outs.append(y)
mx.eval(*outs)
print("native ok", float(outs[1].sum()))
"""
    env = dict(os.environ, OXMX_CUDA_STRICT="1", OXMX_KERNEL_CACHE=str(tmp_path))
    for run in range(2):
        r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        assert "native ok" in r.stdout
        if run == 0:
            files = sorted(tmp_path.glob("*.ptx"))
            assert len(files) >= 5
            stamps = {f: f.stat().st_mtime_ns for f in files}
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # reused, not rewritten


@gpu_only
def test_work_across_streams_and_devices_is_ordered():
    # a chain whose links run on two GPU streams and the CPU; every link reads the
    # previous one's result, so any missing ordering shows up as a wrong sum
    s1, s2 = mx.new_stream(mx.gpu), mx.new_stream(mx.gpu)
    x = mx.zeros((1 << 20,))
    for k in range(12):
        with mx.stream([s1, s2, mx.cpu][k % 3]):
            x = x + 1.0
            if k % 4 == 3:
                mx.eval(x)
    np.testing.assert_array_equal(np.array(x[:5]), np.full(5, 12.0, np.float32))
    assert x.sum().item() == 12.0 * (1 << 20)


@gpu_only
def test_tf32_only_on_opt_in():
    # float32 matmul keeps float32 accuracy unless OXMX_CUDA_ALLOW_TF32=1
    import os
    import subprocess
    import sys

    code = """
import numpy as np, oxmx.core as mx
r = np.random.default_rng(0)
a = r.standard_normal((512, 512)).astype(np.float32)
b = r.standard_normal((512, 512)).astype(np.float32)
got = np.array(mx.array(a) @ mx.array(b))
ref = a.astype(np.float64) @ b.astype(np.float64)
print(float(np.abs(got - ref).max() / np.abs(ref).max()))
"""
    errs = []
    for flag in ("0", "1"):
        r = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, OXMX_CUDA_ALLOW_TF32=flag), capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        errs.append(float(r.stdout.strip().splitlines()[-1]))
    assert errs[0] < 1e-5, errs  # FP32 accumulation
    assert errs[1] > 1e-5, errs  # TF32 (10-bit mantissa inputs) when asked for


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_half_nan_and_inf_bits_match_cpu(dtype):
    # NaN payloads, signs and signaling NaNs: copies keep the bits, conversions give the
    # CPU's (half crate) bits
    bits = np.array([0x7C01, 0x7E00, 0xFE01, 0x7FFF, 0x7C00, 0xFC00, 0x0001, 0x8000, 0x7F80, 0xFF81, 0x7FC1, 0x3C00], np.uint16)
    h = mx.array(bits).view(dtype)
    f32 = mx.array(np.array([np.nan, -np.nan, np.inf, 1e-8, 65520.0, 3.0e38], np.float32))
    f32 = mx.concatenate([f32, mx.array(np.array([0x7FA00001, 0xFFC12345], np.uint32)).view(mx.float32)])
    cases = [
        (lambda h: h[::-1], h),  # strided copy
        (lambda h: h.reshape(3, 4).T.reshape(-1), h),
        (lambda h: h.astype(mx.float32), h),
        (lambda f: f.astype(dtype), f32),
    ]
    for f, a in cases:
        got, want = on(mx.gpu, f, a), on(mx.cpu, f, a)
        w = mx.uint16 if got.dtype in (mx.float16, mx.bfloat16) else mx.uint32
        same(on(mx.gpu, lambda g: g.view(w), got), on(mx.cpu, lambda g: g.view(w), want))
    # arithmetic: GPU float units return the canonical NaN (payloads of computed NaNs are
    # unspecified, as in IEEE 754); every other value has the CPU's bits
    got, want = on(mx.gpu, lambda h: -h, h), on(mx.cpu, lambda h: -h, h)
    g, w = np.array(got.astype(mx.float32)), np.array(want.astype(mx.float32))
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    np.testing.assert_array_equal(g.view(np.uint32)[~np.isnan(w)], w.view(np.uint32)[~np.isnan(w)])


@gpu_only
def test_former_host_fallbacks():
    # rows longer than 2048 (sort), a few long rows (scans) and complex max once ran on
    # the CPU backend; now on the GPU, with the CPU's results
    x = rand((2, 3000), mx.float32, seed=10)
    z = _complex((3, 4), 26)
    for f, a in ((lambda x: mx.sort(x, axis=-1), x), (lambda x: mx.cummax(x, axis=-1), x), (lambda z: z.max(axis=1), z)):
        same(on(mx.gpu, f, a), on(mx.cpu, f, a))
    # complex matmul is cuBLASLt's own (its sums round differently from the CPU's)
    np.testing.assert_allclose(np.array(on(mx.gpu, lambda z: z @ z.T, z)), np.array(on(mx.cpu, lambda z: z @ z.T, z)), rtol=1e-5, atol=1e-5)
    with pytest.raises(IndexError):
        on(mx.gpu, lambda x: x[mx.array([9])], x)


def _erfinv_inputs():
    rng = np.random.default_rng(7)
    uniform = rng.uniform(-1, 1, 1 << 21).astype(np.float32)
    # every magnitude: random bit patterns below 1.0, both signs
    bits = rng.integers(1, 0x3F800000, 1 << 20, dtype=np.uint32).view(np.float32)
    bits = bits * np.where(rng.random(bits.size) < 0.5, -1, 1).astype(np.float32)
    # inputs near +-1, where 1 - x^2 is tiny and the tail polynomial is taken
    near_one = (1 - rng.random(1 << 18) * 1e-3).astype(np.float32)
    edges = np.array([0.0, -0.0, 1.0, -1.0, np.nan, 1.5, -2.0, np.inf, -np.inf, 1e-30, 1e-45,
                      np.nextafter(np.float32(1), np.float32(0)), 0.5, -0.25], np.float32)
    return np.concatenate([uniform, bits, near_one, -near_one, edges])


@gpu_only
def test_erfinv_gives_the_cpus_bits():
    # the CPU's erfinv is MLX's; the GPU repeats it, the C library's logf included
    x = mx.array(_erfinv_inputs())
    got = np.array(on(mx.gpu, mx.erfinv, x))
    want = np.array(on(mx.cpu, mx.erfinv, x))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), np.flatnonzero(
        got.view(np.uint32) != want.view(np.uint32)
    )[:10]
    for dt in (mx.float16, mx.bfloat16):
        xh = x.astype(dt)
        g = np.array(on(mx.gpu, mx.erfinv, xh).view(mx.uint16))
        w = np.array(on(mx.cpu, mx.erfinv, xh).view(mx.uint16))
        nan = np.isnan(np.array(on(mx.cpu, mx.erfinv, xh).astype(mx.float32)))
        assert np.array_equal(g[~nan], w[~nan]), dt
        assert np.all(np.isnan(np.array(on(mx.gpu, mx.erfinv, xh).astype(mx.float32))[nan])), dt


@gpu_only
def test_random_normal_runs_on_the_gpu_with_the_cpus_bits():
    import os
    import subprocess
    import sys

    script = """
import numpy as np, oxmx.core as mx
k = mx.random.key(3)
g = mx.random.normal((1000, 257), key=k)
c = mx.random.normal((1000, 257), key=k, stream=mx.cpu)
t = mx.random.truncated_normal(-1.0, 2.0, (4096,), key=k)
mx.eval(g, c, t)
assert np.array_equal(np.array(g).view(np.uint32), np.array(c).view(np.uint32))
print("normal ok", float(g.std()))
"""
    env = dict(os.environ, OXMX_CUDA_STRICT="1")
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "normal ok" in r.stdout, r.stderr[-3000:]


def _attn_ref(q, k, v, scale, causal, sinks=None):
    """float64 NumPy attention with MLX's semantics (GQA, causal aligned to the last key,
    a fully masked row averages every value, sinks as extra logits)."""
    q, k, v = (np.array(a.astype(mx.float32)).astype(np.float64) for a in (q, k, v))
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    s = np.einsum("bhqd,bhkd->bhqk", q, k) * scale
    lq, lk = s.shape[-2], s.shape[-1]
    if causal:
        hide = np.arange(lk)[None, :] > np.arange(lq)[:, None] + (lk - lq)
        s = np.where(hide, np.finfo(np.float32).min, s)
    m = s.max(axis=-1, keepdims=True) if lk else np.zeros(s.shape[:-1] + (1,))
    if sinks is not None:
        sk = np.array(sinks.astype(mx.float32)).astype(np.float64)[None, :, None, None]
        m = np.maximum(m, sk)
    p = np.exp(s - m)
    den = p.sum(axis=-1, keepdims=True) + (np.exp(sk - m) if sinks is not None else 0)
    return np.einsum("bhqk,bhkd->bhqd", p / np.where(den == 0, 1, den), v)


@pytest.fixture(params=["cudnn first", "own kernel"])
def attention_path(request, monkeypatch):
    # the fused attention runs cuDNN's engine where it takes the problem, else the
    # project's kernel; "own kernel" turns cuDNN off so both are tested
    if request.param == "own kernel":
        monkeypatch.setenv("OXMX_CUDA_NO_CUDNN_SDPA", "1")
    else:
        monkeypatch.delenv("OXMX_CUDA_NO_CUDNN_SDPA", raising=False)
    return request.param


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_matches_reference(dtype, d, causal, attention_path):
    # tensor-core attention: tails of tiles, GQA, fewer and more queries than keys,
    # decode (one query, long cache: the keys split over blocks), sinks
    r = np.random.default_rng(d + causal)
    cases = [(2, 4, 4, 200, 200), (1, 8, 2, 64, 300), (1, 4, 4, 130, 70), (1, 32, 8, 1, 8192), (3, 2, 1, 1, 77), (1, 2, 2, 5, 0)]
    for b, hq, hkv, lq, lk in cases:
        q = mx.array(r.standard_normal((b, hq, lq, d)).astype(np.float32)).astype(dtype)
        k = mx.array(r.standard_normal((b, hkv, lk, d)).astype(np.float32)).astype(dtype)
        v = mx.array(r.standard_normal((b, hkv, lk, d)).astype(np.float32)).astype(dtype)
        scale = d**-0.5
        for sinks in (None, mx.array(r.standard_normal(hq).astype(np.float32)).astype(dtype)):
            kw = {"mask": "causal"} if causal else {}
            if sinks is not None:
                kw["sinks"] = sinks
            got = on(mx.gpu, lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, **kw), q, k, v)
            want = _attn_ref(q, k, v, scale, causal, sinks)
            assert got.shape == (b, hq, lq, d) and got.dtype == dtype
            np.testing.assert_allclose(np.array(got.astype(mx.float32)), want, rtol=3e-2, atol=3e-2,
                                       err_msg=f"{(b, hq, hkv, lq, lk)} sinks={sinks is not None}")


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("d", [64, 128])
def test_cudnn_attention_takes_training_and_decode_shapes(monkeypatch, dtype, d):
    # where libcudnn 9 is loaded (the GPU machine), cuDNN's fused engine runs these
    # attentions (none of the project's kernels launches) and agrees with the project's
    # kernel and with the float64 reference
    from oxmx import _oxmx

    r = np.random.default_rng(d)
    cases = [(2, 4, 4, 256, 256, True), (1, 8, 2, 128, 128, True), (2, 4, 4, 200, 200, False), (1, 32, 8, 1, 512, False)]
    for b, hq, hkv, lq, lk, causal in cases:
        q = mx.array(r.standard_normal((b, hq, lq, d)).astype(np.float32)).astype(dtype)
        k = mx.array(r.standard_normal((b, hkv, lk, d)).astype(np.float32)).astype(dtype)
        v = mx.array(r.standard_normal((b, hkv, lk, d)).astype(np.float32)).astype(dtype)
        kw = {"mask": "causal"} if causal else {}
        f = lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=d**-0.5, **kw)
        mx.eval(q, k, v)
        monkeypatch.delenv("OXMX_CUDA_NO_CUDNN_SDPA", raising=False)
        before = _oxmx._kernel_launches(mx.gpu)
        fused = on(mx.gpu, f, q, k, v)
        assert _oxmx._kernel_launches(mx.gpu) == before, f"cuDNN did not take {(b, hq, hkv, lq, lk, causal)}"
        monkeypatch.setenv("OXMX_CUDA_NO_CUDNN_SDPA", "1")
        own = on(mx.gpu, f, q, k, v)
        a, o = (np.array(x.astype(mx.float32)) for x in (fused, own))
        np.testing.assert_allclose(a, o, rtol=2e-2, atol=2e-2)
        np.testing.assert_allclose(a, _attn_ref(q, k, v, d**-0.5, causal), rtol=3e-2, atol=3e-2)


@gpu_only
def test_flash_attention_nan_and_large_scores(attention_path):
    # a NaN in one key's row reaches the rows that see it; huge scores do not overflow
    r = np.random.default_rng(5)
    q = r.standard_normal((1, 2, 100, 64)).astype(np.float32)
    k = r.standard_normal((1, 2, 100, 64)).astype(np.float32)
    v = r.standard_normal((1, 2, 100, 64)).astype(np.float32)
    k[0, 0, 70, 3] = np.nan
    q[0, 1] *= 300
    f = lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, mask="causal")
    args = [mx.array(a).astype(mx.bfloat16) for a in (q, k, v)]
    got = np.array(on(mx.gpu, f, *args).astype(mx.float32))
    assert np.isnan(got[0, 0, 70:]).all(axis=-1).all() and not np.isnan(got[0, 0, :70]).any()
    want = _attn_ref(*args, 0.125, True)
    np.testing.assert_allclose(got[0, 1], want[0, 1], rtol=3e-2, atol=3e-2)


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [4, 64, 100, 1024, 4096, 16384, 16388])
def test_norms_match_cpu(dtype, n):
    # rows of a multiple of 4 up to 16384 run the register kernel, the others the
    # three-pass one; with and without weight and bias
    x = rand((6, n), mx.float32, -3, 3, seed=n).astype(dtype) + 0.5
    w = rand((n,), mx.float32, 0.5, 1.5, seed=1).astype(dtype)
    b = rand((n,), mx.float32, -1, 1, seed=2).astype(dtype)
    for f in (lambda x: mx.fast.layer_norm(x, w, b, 1e-5), lambda x: mx.fast.layer_norm(x, None, None, 1e-5),
              lambda x: mx.fast.layer_norm(x, w, None, 1e-5), lambda x: mx.fast.rms_norm(x, w, 1e-6),
              lambda x: mx.fast.rms_norm(x[:, ::-1], None, 1e-6)):
        close(on(mx.gpu, f, x), on(mx.cpu, f, x), dtype)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_gradients(dtype, causal, attention_path):
    # the backward without the score matrix (head size 64) against the CPU's composite
    # gradient of the same inputs; GQA, tails, fewer and more queries than keys
    r = np.random.default_rng(21 + causal)
    for b, hq, hkv, lq, lk in [(2, 4, 4, 200, 200), (1, 8, 2, 64, 300), (1, 4, 4, 130, 70), (1, 2, 2, 1, 77), (1, 2, 1, 33, 33)]:
        q, k, v, ct = (mx.array(r.standard_normal(s).astype(np.float32)).astype(dtype)
                       for s in ((b, hq, lq, 64), (b, hkv, lk, 64), (b, hkv, lk, 64), (b, hq, lq, 64)))
        kw = {"mask": "causal"} if causal else {}
        f = lambda q, k, v: mx.vjp(lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=0.125, **kw),
                                   [q, k, v], [ct])[1]
        got = on(mx.gpu, f, q, k, v)
        want = on(mx.cpu, lambda q, k, v: f(*(a.astype(mx.float32) for a in (q, k, v))), q, k, v)
        for name, g, w in zip("qkv", got, want):
            g, w = np.array(g.astype(mx.float32)), np.array(w)
            scale = max(1.0, float(np.abs(w).max()))
            np.testing.assert_allclose(g, w, rtol=0, atol=4e-2 * scale, err_msg=f"d{name} {(b, hq, hkv, lq, lk)}")


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("layout", ["fused_qkv", "one_head", "packed_in", "odd_offset", "copy_env"])
def test_cudnn_attention_reads_strided_heads(dtype, causal, layout, monkeypatch):
    # q, k, v as a transformer makes them: one (b, l, 3·h·d) projection split and viewed
    # as (b, h, l, d) heads. cuDNN reads such views in place and writes the output with
    # the heads interleaved per position; forward and gradients against the CPU's
    # composite on the same values. "one_head": h = 1 (axes of length 1); "packed_in":
    # contiguous q, k, v with a strided cotangent; "odd_offset" views start 2 bytes off a
    # 16-byte unit (copied first); "copy_env" forces the copies (OXMX_CUDA_SDPA_COPY=1).
    if layout == "copy_env":
        monkeypatch.setenv("OXMX_CUDA_SDPA_COPY", "1")
    r = np.random.default_rng(61 + causal)
    b, h, hkv, L, d = (2, 1, 1, 256, 64) if layout == "one_head" else (2, 4, 2, 256, 64)
    width = (h + 2 * hkv) * d
    extra = 1 if layout == "odd_offset" else 0
    proj = mx.array(r.standard_normal((b, L, width + extra)).astype(np.float32)).astype(dtype)
    ct = mx.array(r.standard_normal((b, L, h * d)).astype(np.float32)).astype(dtype)

    def heads(t, n):
        t = t.reshape(b, L, n, d).transpose(0, 2, 1, 3)
        return mx.contiguous(t) if layout == "packed_in" else t

    def f(proj):
        p = proj[..., extra:]
        q, k, v = p[..., : h * d], p[..., h * d : (h + hkv) * d], p[..., (h + hkv) * d :]
        kw = {"mask": "causal"} if causal else {}
        o = mx.fast.scaled_dot_product_attention(heads(q, h), heads(k, hkv), heads(v, hkv), scale=d**-0.5, **kw)
        return o.transpose(0, 2, 1, 3).reshape(b, L, h * d)

    def fwd_bwd(proj):
        o, vjp = mx.vjp(f, [proj], [ct])
        return o[0], vjp[0]

    (og, gg), (oc, gc) = on(mx.gpu, fwd_bwd, proj), on(mx.cpu, lambda p: fwd_bwd(p.astype(mx.float32)), proj)
    for name, g, w in (("output", og, oc), ("gradient", gg, gc)):
        g, w = np.array(g.astype(mx.float32)), np.array(w.astype(mx.float32))
        assert np.isfinite(g).all(), name
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=0, atol=4e-2 * scale, err_msg=f"{name} {layout}")


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float16])
@pytest.mark.parametrize("causal", [False, True])
def test_cudnn_attention_gradients(dtype, causal):
    # lengths in whole 128-row tiles: cuDNN's fused backward runs (one SdpaGrad node,
    # none of the project's kernels' launches for the attention), against the CPU's
    # composite gradient of the same inputs; GQA; head sizes 64 and 128
    from oxmx import _oxmx

    r = np.random.default_rng(41 + causal)
    for b, hq, hkv, lq, d in [(2, 4, 4, 256, 64), (1, 8, 2, 128, 64), (1, 2, 2, 128, 128)]:
        assert _oxmx._cuda_sdpa_grad_ready(b, hq, hkv, lq, lq, d, dtype == mx.bfloat16, causal)
        q, k, v, ct = (mx.array(r.standard_normal(s).astype(np.float32)).astype(dtype)
                       for s in ((b, hq, lq, d), (b, hkv, lq, d), (b, hkv, lq, d), (b, hq, lq, d)))
        kw = {"mask": "causal"} if causal else {}
        f = lambda q, k, v: mx.vjp(lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=d**-0.5, **kw),
                                   [q, k, v], [ct])[1]
        got = on(mx.gpu, f, q, k, v)
        want = on(mx.cpu, lambda q, k, v: f(*(a.astype(mx.float32) for a in (q, k, v))), q, k, v)
        for name, g, w in zip("qkv", got, want):
            g, w = np.array(g.astype(mx.float32)), np.array(w)
            assert g.shape == w.shape
            scale = max(1.0, float(np.abs(w).max()))
            np.testing.assert_allclose(g, w, rtol=0, atol=4e-2 * scale, err_msg=f"d{name} {(b, hq, hkv, lq, d)}")


@gpu_only
def test_elementwise_buffer_donation_keeps_results():
    # temporaries handed over to the next elementwise op are overwritten in place; arrays
    # still held (by Python, by a view, twice in one op) must keep their values
    x = rand((1000, 33), mx.float32, seed=31)

    def chain(x):
        t = x * 2.0          # a temporary: donated to the next op
        u = mx.exp(t) + 1.0  # exp's output donated to the add
        w = u * u            # u twice: not donated
        kept = w + 0.5       # w is still referenced below
        view = kept[:, ::2]  # a view shares kept's buffer: kept is not donated
        return mx.sin(kept) - w, view * 3

    got, want = on(mx.gpu, chain, x), on(mx.cpu, chain, x)
    for g, w in zip(got, want):
        close(g, w, mx.float32)
    # the caller's array survives being an input
    y = on(mx.gpu, lambda x: (x + 1) * 2, x)
    close(y, on(mx.cpu, lambda x: (x + 1) * 2, x), mx.float32)
    close(x, rand((1000, 33), mx.float32, seed=31), mx.float32)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
@pytest.mark.parametrize("n", [64, 100, 102, 4096, 16384])
def test_norm_gradients_match_cpu(dtype, n):
    # the fused one-pass backward (rows of a multiple of 4, padded threads at 100;
    # 102 takes the composite) against the composite formula's gradients on the CPU,
    # with and without weight and bias
    from oxmx.core import _fast_composite as comp

    x = rand((70, n), mx.float32, -2, 2, seed=n).astype(dtype) + 0.3
    w = rand((n,), mx.float32, 0.5, 1.5, seed=3).astype(dtype)
    b = rand((n,), mx.float32, -1, 1, seed=4).astype(dtype)
    ct = rand((70, n), mx.float32, -1, 1, seed=5).astype(dtype)
    cases = {
        "layer_norm w b": (lambda x, w, b: mx.fast.layer_norm(x, w, b, 1e-5), lambda x, w, b: comp.layer_norm(x, w, b, 1e-5)),
        "layer_norm": (lambda x, w, b: mx.fast.layer_norm(x, None, None, 1e-5), lambda x, w, b: comp.layer_norm(x, None, None, 1e-5)),
        "layer_norm b": (lambda x, w, b: mx.fast.layer_norm(x, None, b, 1e-5), lambda x, w, b: comp.layer_norm(x, None, b, 1e-5)),
        "rms_norm w": (lambda x, w, b: mx.fast.rms_norm(x, w, 1e-6), lambda x, w, b: comp.rms_norm(x, w, 1e-6)),
        "rms_norm": (lambda x, w, b: mx.fast.rms_norm(x, None, 1e-6), lambda x, w, b: comp.rms_norm(x, None, 1e-6)),
    }
    tol = {mx.float32: 2e-4, mx.float16: 2e-2, mx.bfloat16: 8e-2}[dtype]
    for name, (f, ref) in cases.items():
        got = on(mx.gpu, lambda x, w, b: mx.vjp(f, [x, w, b], [ct])[1], x, w, b)
        want = on(mx.cpu, lambda x, w, b: mx.vjp(ref, [x, w, b], [ct])[1], x, w, b)
        for k, gg, ww in zip("xwb", got, want):
            a, e = np.array(gg.astype(mx.float32)), np.array(ww.astype(mx.float32))
            scale = max(1.0, float(np.abs(e).max()))
            np.testing.assert_allclose(a, e, rtol=0, atol=tol * scale, err_msg=f"{name}: d{k}")


@gpu_only
def test_norm_gradient_of_an_infinite_weight_is_nan_as_the_composite():
    # layer_norm: an infinite g * w makes the composite's (MLX's) dx NaN across the row;
    # the GPU's fused backward and the CPU's kernel give the same
    from oxmx.core import _fast_composite as comp

    x = rand((3, 64), mx.float32, seed=7)
    w = mx.concatenate([mx.ones((63,)), mx.array([-np.inf])])
    ct = rand((3, 64), mx.float32, seed=8)
    f = lambda x: mx.vjp(lambda a: mx.fast.layer_norm(a, w, None, 1e-5), [x], [ct])[1][0]  # noqa: E731
    ref = lambda x: mx.vjp(lambda a: comp.layer_norm(a, w, None, 1e-5), [x], [ct])[1][0]  # noqa: E731
    want = np.array(on(mx.cpu, ref, x))
    assert np.isnan(want).all()
    for device in (mx.gpu, mx.cpu):
        assert np.isnan(np.array(on(device, f, x))).all(), device


# Layouts of the strided elementwise walks (eager and fused): rows of four outputs per
# thread where every operand steps the last axis by 0 or 1 with aligned offsets, the
# unrolled strided walk otherwise (misaligned slices, transposed operands, odd rows).
WALK_LAYOUTS = {
    "bias_row": lambda a, b: (a, b[0]),
    "column": lambda a, b: (a, b[:, :1]),
    "misaligned_slice": lambda a, b: (a[:, 1:9], b[:, :8]),
    "aligned_slice": lambda a, b: (a[:, 4:12], b[:, 8:16]),
    "transposed": lambda a, b: (a[:, :6], b[:, :6].T),
    "odd_rows": lambda a, b: (a[:4, :6], b[2:, 3:9]),
    "reversed_rows": lambda a, b: (a, b[:, ::-1]),
    "three_axes": lambda a, b: (a.reshape(2, 3, 16), b.reshape(2, 3, 16)[:, :1]),
    "four_axes_reversed": lambda a, b: (a.reshape(2, 3, 4, 4), b.reshape(2, 3, 4, 4)[::-1, :, :1]),
}


@gpu_only
@pytest.mark.parametrize("layout", sorted(WALK_LAYOUTS))
@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16, mx.int32])
@pytest.mark.parametrize("compiled", [False, True])
def test_strided_elementwise_walks(layout, dtype, compiled):
    a = rand((6, 16), mx.float32, -3, 3, seed=11).astype(dtype)
    b = rand((6, 16), mx.float32, 1, 3, seed=12).astype(dtype)

    def chain(a, b):
        x, y = WALK_LAYOUTS[layout](a, b)
        return mx.maximum(x * y + 2, x - y) * 3

    fn = mx.compile(chain) if compiled else chain
    want, got = on(mx.cpu, fn, a, b), on(mx.gpu, fn, a, b)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(np.array(got.astype(mx.float32)), np.array(want.astype(mx.float32)))


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_and_its_gradient(dtype):
    """fast.cross_entropy and its native gradient kernel on the GPU against the CPU:
    long rows (the online logsumexp merges across a whole block), rows holding NaN,
    +inf, -inf or nothing but -inf (the CPU's NaN pattern), and a cotangent."""
    rng = np.random.default_rng(31)
    for shape in [(3, 7), (4, 5003), (2, 3, 300)]:
        x = rng.standard_normal(shape).astype(np.float32) * 4
        flat = x.reshape(-1, shape[-1])
        if flat.shape[0] >= 4:
            flat[0, 1], flat[1, 2], flat[2, :] = np.nan, np.inf, -np.inf
            flat[3, 0], flat[3, -1] = np.inf, np.nan
        logits = mx.array(x).astype(dtype)
        t = mx.array(rng.integers(0, shape[-1], shape[:-1]).astype(np.int32))
        ct = mx.array(rng.standard_normal(shape[:-1]).astype(np.float32))

        def loss_and_grad(l):
            return mx.value_and_grad(lambda l: (mx.fast.cross_entropy(l, t) * ct).sum())(l)

        (lc, gc), (lg, gg) = on(mx.cpu, loss_and_grad, logits), on(mx.gpu, loss_and_grad, logits)
        for want, got in ((on(mx.cpu, mx.fast.cross_entropy, logits, t), on(mx.gpu, mx.fast.cross_entropy, logits, t)), (gc, gg)):
            w, g = np.array(want.astype(mx.float64)), np.array(got.astype(mx.float64))
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
            np.testing.assert_allclose(np.nan_to_num(g), np.nan_to_num(w), rtol=TOL[dtype], atol=1e-6)
        assert gg.dtype == logits.dtype and gg.shape == logits.shape
    with pytest.raises(IndexError, match="cross_entropy"):
        on(mx.gpu, mx.fast.cross_entropy, mx.zeros((2, 5), dtype), mx.array([0, 5]))


@gpu_only
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("layout", ["columns", "offset_columns", "padded_3d", "broadcast_rows"])
def test_cross_entropy_reads_strided_rows(dtype, layout):
    """The cross-entropy kernels read rows at a stride in place (slices of wider rows,
    at an offset, padded 3-d logits; rows that do not step evenly are copied first), and
    a large gradient with rows of an odd size comes back with padded rows: both equal
    the CPU's results."""
    rng = np.random.default_rng(41)
    rows, n = (2048, 2053) if layout == "padded_3d" else (6, 301)
    wide = mx.array((rng.standard_normal((rows, n + 11)) * 3).astype(np.float32)).astype(dtype)
    if layout == "columns":
        logits = wide[:, :n]
    elif layout == "offset_columns":
        logits = wide[1:, 5 : n + 5]
    elif layout == "padded_3d":
        logits = wide[:, 3 : n + 3][None]  # (1, 2048, 2053): a padded gradient (> 2^22 values)
    else:
        logits = mx.broadcast_to(wide[:1, :n], (4, n))
    t = mx.array(rng.integers(0, n, logits.shape[:-1]).astype(np.int32))

    def loss_and_grad(l):
        return mx.value_and_grad(lambda l: mx.fast.cross_entropy(l, t).mean())(l)

    (lc, gc), (lg, gg) = on(mx.cpu, loss_and_grad, logits), on(mx.gpu, loss_and_grad, logits)
    np.testing.assert_allclose(np.array(lg), np.array(lc), rtol=TOL[dtype], atol=1e-6)
    assert gg.dtype == logits.dtype and gg.shape == logits.shape
    np.testing.assert_allclose(
        np.array(gg.astype(mx.float64)), np.array(gc.astype(mx.float64)), rtol=TOL[dtype], atol=1e-7
    )
    # the gradient feeds a product and a reduction as any array would
    w = mx.array(rng.standard_normal((n, 3)).astype(np.float32)).astype(dtype)
    pc, pg = on(mx.cpu, lambda g: (g @ w, g.sum(-1)), gc), on(mx.gpu, lambda g: (g @ w, g.sum(-1)), gg)
    for a, b in zip(pg, pc):
        np.testing.assert_allclose(np.array(a.astype(mx.float64)), np.array(b.astype(mx.float64)), rtol=5e-2, atol=1e-3)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.bfloat16, mx.float32])
def test_lm_head_backward_reads_the_zero_padded_loss_gradient(dtype):
    """The cross-entropy gradient of an odd vocabulary comes back with rows padded to 16
    bytes and the padding zeroed, and both backward products of the LM head read it in
    place as their zero-padded operand (no copy). The memory pool is first filled with
    NaN so that padding left unwritten would show in the products."""
    rng = np.random.default_rng(43)
    rows, vocab, d = 2048, 2053, 512
    h = mx.array(rng.standard_normal((rows, d)).astype(np.float32) * 0.5).astype(dtype)
    w = mx.array(rng.standard_normal((vocab, d)).astype(np.float32) * 0.5).astype(dtype)
    t = mx.array(rng.integers(0, vocab, (rows,)).astype(np.int32))

    def step(h, w):
        return mx.value_and_grad(lambda h, w: mx.fast.cross_entropy(h @ w.T, t).mean(), argnums=(0, 1))(h, w)

    with mx.stream(mx.gpu):
        for size in (rows * (vocab + 13), rows * (vocab + 5)):  # the padded gradient's sizes
            junk = [mx.full((size,), float("nan"), dtype) for _ in range(3)]
            mx.eval(junk)
            del junk
    (lc, gc), (lg, gg) = on(mx.cpu, step, h, w), on(mx.gpu, step, h, w)
    np.testing.assert_allclose(np.array(lg.astype(mx.float32)), np.array(lc.astype(mx.float32)), rtol=2e-2)
    for got, want in zip(gg, gc):
        got, want = np.array(got.astype(mx.float64)), np.array(want.astype(mx.float64))
        assert np.isfinite(got).all()
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=5e-2, atol=(3e-2 if dtype == mx.bfloat16 else 1e-4) * scale)


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64, mx.int8, mx.int32, mx.uint64])
@pytest.mark.parametrize("layout", ["contiguous", "offset", "rows", "transposed"])
def test_fused_host_scalars_by_value(dtype, layout):
    """Scalars held on the host reach eager and fused kernels by value, also once they
    have a device copy (a constant used again): every walk against the CPU."""
    x = rand((8, 12), mx.float32, 1, 5, seed=13).astype(dtype)
    s1, s2 = mx.array(3, dtype=dtype), mx.array(2, dtype=dtype)
    view = {"contiguous": lambda v: v, "offset": lambda v: v.reshape(-1)[1:], "rows": lambda v: v[:, 4:],
            "transposed": lambda v: v.T}[layout]

    def f(v):
        v = view(v)
        return mx.maximum(v * s1 - s2, s2) + s1

    for fn in (f, mx.compile(f), mx.compile(f)):  # the second compiled call: scalars already uploaded
        want, got = on(mx.cpu, fn, x), on(mx.gpu, fn, x)
        np.testing.assert_array_equal(np.array(got.astype(mx.float64)), np.array(want.astype(mx.float64)))


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.float64, mx.int8, mx.uint64])
@pytest.mark.parametrize("compiled", [False, True])
def test_contiguous_walk_covers_every_element(dtype, compiled):
    """The contiguous walk loads several vectors per thread before computing: every
    length (whole vectors, a tail of 1-3, fewer elements than one thread's vectors,
    more than one grid-stride round) and an operand at an offset, against the CPU."""
    for n in [4, 5, 7, 15, 16, 17, 63, 64, 65, 1023, 4099, (1 << 20) + 3]:
        a = rand((n + 4,), mx.float32, -3, 3, seed=n).astype(dtype)
        b = rand((n + 4,), mx.float32, 1, 3, seed=n + 1).astype(dtype)

        def unary(a):
            return mx.abs(a[4:] * 3 - 1)

        def binary(a, b):
            return mx.maximum(a[:n] * b[4:] + 2, a[4:] - b[:n])

        for fn, args in ((unary, (a,)), (binary, (a, b)), (lambda a: -a[4:], (a,))):
            f = mx.compile(fn) if compiled else fn
            want, got = on(mx.cpu, f, *args), on(mx.gpu, f, *args)
            assert got.shape == want.shape == (n,)
            np.testing.assert_array_equal(np.array(got.astype(mx.float64)), np.array(want.astype(mx.float64)))


@gpu_only
@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64])
@pytest.mark.parametrize("compiled", [False, True])
def test_float_powers_against_the_cpu(dtype, compiled):
    """Squares and cubes are multiplications on the GPU (pow otherwise): the same values
    as the CPU's pow, signed zeros, infinities, NaN, overflow and underflow included."""
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-20, -3e-14, 1e13, -7e12, 65000.0, 1.5, -2.25]
    x = np.concatenate([np.random.default_rng(5).uniform(-40, 40, 500), special]).astype(np.float32)
    a = mx.array(x).astype(dtype)
    for y in (2, 3, 2.5, -3, 0.5):
        f = mx.compile(lambda a: a**y) if compiled else (lambda a: a**y)
        want, got = on(mx.cpu, f, a), on(mx.gpu, f, a)
        assert got.dtype == want.dtype == dtype
        w, g = np.array(want.astype(mx.float64)), np.array(got.astype(mx.float64))
        np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
        if dtype in (mx.float16, mx.bfloat16) and y in (2, 3):
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=TOL[dtype] / 4, atol=0)


@gpu_only
def test_fast_op_gradients_run_on_the_current_stream():
    # inside `with mx.stream(mx.cpu)` (the default device being the GPU) the fused norm
    # and attention gradients are the CPU's nodes: nothing is launched on the GPU
    from oxmx import _oxmx

    x, ct = rand((8, 64), mx.float32, seed=1), rand((8, 64), mx.float32, seed=2)
    w = rand((64,), mx.float32, seed=3)
    q = rand((1, 2, 16, 64), mx.float32, seed=4).astype(mx.bfloat16)
    mx.eval(x, ct, w, q)
    with mx.stream(mx.cpu):
        assert _oxmx._current_device() == mx.cpu
        before = _oxmx._kernel_launches(mx.gpu)
        g1 = mx.vjp(lambda a, b: mx.fast.layer_norm(a, b, None, 1e-5), [x, w], [ct])[1]
        g2 = mx.vjp(lambda a: mx.fast.scaled_dot_product_attention(a, a, a, scale=0.125, mask="causal"), [q], [q])[1]
        mx.eval(g1, g2)
        assert _oxmx._kernel_launches(mx.gpu) == before
    assert _oxmx._current_device() == mx.default_device()
