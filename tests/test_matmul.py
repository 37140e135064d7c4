"""matmul (batched, broadcast, 1-D), addmm, inner, outer, tensordot, vecdot vs NumPy."""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import FLOAT_DTYPES, VIEW_KINDS, as_ref, assert_array, rand, to_mx, view_of

MM_DTYPES = FLOAT_DTYPES + ["complex64"]


def _mm_tol(d, k):
    """Tolerances for a length-k dot product in dtype d (inputs in [-1, 1])."""
    return {
        "float16": dict(rtol=1e-2, atol=2e-3 * max(k, 1) ** 0.5 + 2e-3),
        "bfloat16": dict(rtol=3e-2, atol=2e-2 * max(k, 1) ** 0.5 + 1e-2),
        "float32": dict(rtol=1e-4, atol=1e-5 * max(k, 1)),
        "float64": dict(rtol=1e-10, atol=1e-12 * max(k, 1)),
        "complex64": dict(rtol=1e-4, atol=1e-5 * max(k, 1)),
    }[d]


def _ref_mm(a, b, d):
    if d == "complex64":
        return np.matmul(a.astype(np.complex128), b.astype(np.complex128))
    return np.matmul(as_ref(a).astype(np.float64), as_ref(b).astype(np.float64))


@pytest.mark.parametrize("d", MM_DTYPES)
@pytest.mark.parametrize(
    "sa,sb",
    [
        ((4, 5), (5, 3)),
        ((1, 7), (7, 1)),
        ((17, 33), (33, 9)),
        ((64, 64), (64, 64)),
        ((3, 4, 5), (3, 5, 2)),
        ((2, 1, 4, 5), (3, 5, 6)),
        ((1, 4, 5), (2, 3, 5, 2)),
        ((5,), (5, 3)),
        ((4, 5), (5,)),
        ((5,), (5,)),
        ((5,), (2, 5, 3)),
        ((2, 3, 5), (5,)),
        ((0, 5), (5, 3)),
        ((4, 0), (0, 3)),
        ((4, 5), (5, 0)),
        ((0, 4, 5), (5, 2)),
    ],
    ids=str,
)
def test_matmul_shapes_dtypes(rng, d, sa, sb):
    a = rand(rng, sa, d, -1, 1)
    b = rand(rng, sb, d, -1, 1)
    y = mx.matmul(to_mx(a, d), to_mx(b, d))
    ref = _ref_mm(a, b, d)
    assert_array(y, ref, d, **_mm_tol(d, sa[-1]))


@pytest.mark.parametrize("d", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("ka", VIEW_KINDS)
@pytest.mark.parametrize("kb", VIEW_KINDS)
def test_matmul_noncontiguous(rng, d, ka, kb):
    a = rand(rng, (6, 8), d, -1, 1)
    b = rand(rng, (8, 5), d, -1, 1)
    y = mx.matmul(view_of(a, d, ka), view_of(b, d, kb))
    assert_array(y, _ref_mm(a, b, d), d, **_mm_tol(d, 8))


def test_matmul_transposed_batched_views(rng):
    a = rng.standard_normal((3, 7, 4)).astype(np.float32)
    b = rng.standard_normal((3, 7, 5)).astype(np.float32)
    x = mx.swapaxes(mx.array(a), 1, 2)  # (3, 4, 7)
    y = mx.array(b)
    assert_array(x @ y, np.swapaxes(a, 1, 2) @ b, "float32", **_mm_tol("float32", 7))
    # a broadcast (stride 0) batch operand
    c = rng.standard_normal((1, 4, 7)).astype(np.float32)
    cb = mx.broadcast_to(mx.array(c), (3, 4, 7))
    assert_array(cb @ y, np.broadcast_to(c, (3, 4, 7)) @ b, "float32", **_mm_tol("float32", 7))


def test_matmul_operator_and_big(rng):
    a = rng.standard_normal((130, 257)).astype(np.float32)
    b = rng.standard_normal((257, 67)).astype(np.float32)
    assert_array(mx.array(a) @ mx.array(b), a.astype(np.float64) @ b, "float32", rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("m,k,n", [(64, 4096, 64), (33, 32768, 17), (250, 2048, 40)])
@pytest.mark.parametrize("view", ["contiguous", "transposed", "reversed"])
@pytest.mark.parametrize("d", ["float32", "float64"])
def test_matmul_small_output_long_inner(rng, m, k, n, view, d):
    """Products with a small output and a long inner dimension run as parallel row blocks
    on the CPU: uneven blocks, transposed and negatively strided left operands."""
    a = rng.standard_normal((m, k)).astype(d)
    b = rng.standard_normal((k, n)).astype(d)

    def arr(v):
        return mx.array(v, dtype=getattr(mx, d))  # (MLX makes float64 input float32)

    if view == "transposed":
        x = mx.transpose(arr(np.ascontiguousarray(a.T)))  # column-major (m, k)
    elif view == "reversed":
        x = arr(a[::-1].copy())[::-1]  # row stride -k
    else:
        x = arr(a)
    tol = dict(rtol=1e-4, atol=2e-3) if d == "float32" else dict(rtol=1e-10, atol=1e-9)
    assert_array(x @ arr(b), a.astype(np.float64) @ b, d, **tol)


def test_matmul_mixed_dtypes_promote(rng):
    a = rng.standard_normal((3, 4)).astype(np.float16)
    b = rng.standard_normal((4, 2)).astype(np.float32)
    y = mx.matmul(mx.array(a), mx.array(b))
    assert y.dtype == mx.float32
    assert_array(y, a.astype(np.float64) @ b, "float32", rtol=1e-3, atol=1e-3)


def test_matmul_integer_inputs():
    a = np.arange(6, dtype=np.int32).reshape(2, 3)
    b = np.arange(6, dtype=np.int32).reshape(3, 2)
    try:
        y = mx.matmul(mx.array(a), mx.array(b))
        mx.eval(y)
    except ValueError:
        return  # MLX refuses integer matmul with ValueError: acceptable
    np.testing.assert_array_equal(np.array(y), a @ b)


@pytest.mark.parametrize(
    "sa,sb",
    [((2, 3), (4, 3)), ((3,), (4,)), ((2, 3, 4), (3, 5, 4)), ((2, 2, 3), (3, 3, 2))],
    ids=str,
)
def test_matmul_shape_mismatch(sa, sb):
    with pytest.raises(ValueError):
        mx.eval(mx.matmul(mx.ones(sa), mx.ones(sb)))


def test_matmul_zero_d_rejected():
    with pytest.raises(ValueError):
        mx.matmul(mx.array(1.0), mx.ones((3,)))


def test_matmul_nan_inf_propagate():
    a = np.array([[1.0, np.nan], [np.inf, 1.0]], np.float32)
    b = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    with np.errstate(all="ignore"):
        ref = a @ b
    got = np.array(mx.array(a) @ mx.array(b))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))


# ------------------------------------------------------------------ addmm
@pytest.mark.parametrize("d", ["float32", "float16", "bfloat16", "float64"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (2.0, 0.5), (-1.5, 0.0), (0.0, 3.0)])
@pytest.mark.parametrize("cshape", [(4, 3), (3,), (1, 3), ()], ids=str)
def test_addmm(rng, d, alpha, beta, cshape):
    a = rand(rng, (4, 6), d, -1, 1)
    b = rand(rng, (6, 3), d, -1, 1)
    c = rand(rng, cshape, d, -1, 1)
    y = mx.addmm(to_mx(c, d), to_mx(a, d), to_mx(b, d), alpha=alpha, beta=beta)
    ref = alpha * _ref_mm(a, b, d) + beta * as_ref(c).astype(np.float64)
    assert_array(y, ref, d, **_mm_tol(d, 6))


def test_addmm_batched(rng):
    a = rng.standard_normal((2, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 5, 3)).astype(np.float32)
    c = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y = mx.addmm(mx.array(c), mx.array(a), mx.array(b), alpha=0.5, beta=2.0)
    assert_array(y, 0.5 * (a @ b) + 2.0 * c, "float32", rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ inner / outer
@pytest.mark.parametrize("d", FLOAT_DTYPES)
@pytest.mark.parametrize("sa,sb", [((5,), (5,)), ((2, 5), (3, 5)), ((2, 3, 4), (4,)), ((), (3,)), ((0,), (0,))], ids=str)
def test_inner(rng, d, sa, sb):
    a = rand(rng, sa, d, -1, 1)
    b = rand(rng, sb, d, -1, 1)
    y = mx.inner(to_mx(a, d), to_mx(b, d))
    ref = np.inner(as_ref(a).astype(np.float64), as_ref(b).astype(np.float64))
    assert_array(y, ref, d, **_mm_tol(d, sa[-1] if sa else 1))


def test_inner_mismatch():
    with pytest.raises(ValueError):
        mx.eval(mx.inner(mx.ones((3,)), mx.ones((4,))))


@pytest.mark.parametrize("d", ["float32", "float16", "int32", "bfloat16", "float64"])
@pytest.mark.parametrize("sa,sb", [((3,), (4,)), ((2, 2), (3,)), ((0,), (3,)), ((), (2,))], ids=str)
def test_outer(rng, d, sa, sb):
    a = rand(rng, sa, d, -3, 3)
    b = rand(rng, sb, d, -3, 3)
    y = mx.outer(to_mx(a, d), to_mx(b, d))
    ref = np.outer(as_ref(a).astype(np.float64), as_ref(b).astype(np.float64))
    assert_array(y, ref, d)


# ------------------------------------------------------------------ tensordot / vecdot
@pytest.mark.parametrize(
    "sa,sb,axes",
    [
        ((2, 3, 4), (3, 4, 5), 2),
        ((2, 3), (3, 2), 1),
        ((2, 3), (4, 5), 0),
        ((2, 3, 4), (4, 3, 5), [[1, 2], [1, 0]]),
        ((3, 4), (4, 3), [[0, 1], [1, 0]]),
        ((2, 3, 4), (5, 3), [[1], [1]]),
        ((0, 3), (3, 2), 1),
    ],
    ids=str,
)
def test_tensordot(rng, sa, sb, axes):
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    y = mx.tensordot(mx.array(a), mx.array(b), axes=axes)
    ref = np.tensordot(a.astype(np.float64), b.astype(np.float64), axes=axes)
    assert_array(y, ref, "float32", rtol=1e-4, atol=1e-5)


def test_tensordot_default_axes(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((3, 4, 2)).astype(np.float32)
    assert_array(mx.tensordot(mx.array(a), mx.array(b)), np.tensordot(a, b), "float32", rtol=1e-4, atol=1e-5)


def test_tensordot_mismatch():
    with pytest.raises(ValueError):
        mx.eval(mx.tensordot(mx.ones((2, 3)), mx.ones((4, 2)), axes=1))


@pytest.mark.parametrize("d", ["float32", "float16", "bfloat16", "float64", "complex64"])
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_vecdot(rng, d, axis):
    a = rand(rng, (3, 4), d, -1, 1)
    b = rand(rng, (3, 4), d, -1, 1)
    y = mx.vecdot(to_mx(a, d), to_mx(b, d), axis=axis)
    if d == "complex64":
        ref = np.sum(np.conj(a.astype(np.complex128)) * b, axis=axis)
    else:
        ref = np.sum(as_ref(a).astype(np.float64) * as_ref(b).astype(np.float64), axis=axis)
    assert_array(y, ref, d, **_mm_tol(d, 4))


def test_vecdot_broadcast(rng):
    a = rng.standard_normal((2, 3)).astype(np.float32)
    b = rng.standard_normal((3,)).astype(np.float32)
    y = mx.vecdot(mx.array(a), mx.array(b))
    assert_array(y, np.sum(a * b, axis=-1), "float32", rtol=1e-5, atol=1e-6)


def test_vecdot_bad_axis():
    with pytest.raises((ValueError, IndexError)):
        mx.eval(mx.vecdot(mx.ones((2, 3)), mx.ones((2, 3)), axis=2))


@pytest.mark.parametrize("dt", ["float32", "complex64"])
@pytest.mark.parametrize("shapes", [((5, 4), (3, 4)), ((2, 5, 4), (2, 3, 4)), ((2, 6, 4), (3, 4))], ids=str)
def test_gradients_through_transposed_operands(rng, dt, shapes):
    """``x @ w.T`` and ``x.T @ w`` (a linear layer's weight, a tied LM head): the vjp
    computes a transposed operand's gradient in the operand's own layout. The gradients
    equal those through a contiguous copy of the transpose (the plain rule), and for real
    data the analytic ``c w`` and ``c^T x``."""
    sx, sw = shapes
    x, w = to_mx(rand(rng, sx, dt)), to_mx(rand(rng, sw, dt))
    c = to_mx(rand(rng, np.broadcast_shapes(sx[:-1] + (sw[-2],), sw[:-2] + (1, 1)), dt))
    T = lambda a: mx.swapaxes(a, -1, -2)  # noqa: E731
    copied = lambda a: mx.contiguous(T(a))  # noqa: E731

    def grads(f):
        return mx.grad(lambda x, w: mx.sum(mx.real(f(x, w) * c)), argnums=(0, 1))(x, w)

    for got, want in (
        (grads(lambda x, w: x @ T(w)), grads(lambda x, w: x @ copied(w))),
        (grads(lambda x, w: T(T(x)) @ T(w)), grads(lambda x, w: copied(T(x)) @ copied(w))),
    ):
        for g, r in zip(got, want):
            assert_array(g, np.array(r), dt, rtol=1e-5, atol=1e-5)
    if dt == "float32":
        gx, gw = grads(lambda x, w: x @ T(w))
        cn, xn, wn = np.array(c), np.array(x), np.array(w)
        assert_array(gx, cn @ wn, dt, rtol=1e-5, atol=1e-4)
        want_gw = np.swapaxes(cn, -1, -2) @ xn
        assert_array(gw, want_gw.sum(axis=0) if want_gw.ndim > len(sw) else want_gw, dt, rtol=1e-5, atol=1e-4)
