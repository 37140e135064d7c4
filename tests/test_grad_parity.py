"""Gradients at ties, kinks and infinities, checked against closed forms and finite
differences: the conventions oxmx shares with MLX 0.32 (scatter max/min, max/min
reductions, abs, power, logaddexp, logsumexp, logcumsumexp), broadcastable cotangents
from custom vjps, and argnums validation."""

import numpy as np
import pytest

import oxmx.core as mx

inf = float("inf")
nan = float("nan")


def A(*v):
    return mx.array(np.array(v, dtype=np.float32))


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.array(a), np.array(b, dtype=np.float32), rtol=tol, atol=tol, equal_nan=True)


def fd_grad(f, x, eps=1e-3):
    """Central finite differences of scalar ``f`` (NumPy float64) at ``x``."""
    x = np.array(x, dtype=np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


# ------------------------------------------------------------------ scatter max / min
def test_scatter_maximum_vjp_winners_get_whole_cotangent():
    x = A(1.0, 5.0, 3.0, 2.0)
    v = A(4.0, 4.0, 1.0)
    idx = mx.array([0, 0, 2])
    w = A(1.0, 2.0, 3.0, 4.0)
    gx, gv = mx.grad(lambda x, v: (x.at[idx].maximum(v) * w).sum(), argnums=(0, 1))(x, v)
    # x[0] lost to 4; both tied updates of 4 win (no splitting); x[2] kept over 1.
    close(gx, [0.0, 2.0, 3.0, 4.0])
    close(gv, [1.0, 1.0, 0.0])


def test_scatter_minimum_vjp_and_tie_with_original():
    x = A(1.0, 5.0, 3.0, 2.0)
    v = A(1.0, 0.5, 7.0)
    idx = mx.array([0, 1, 3])
    w = A(1.0, 2.0, 3.0, 4.0)
    gx, gv = mx.grad(lambda x, v: (x.at[idx].minimum(v) * w).sum(), argnums=(0, 1))(x, v)
    # x[0] ties with v[0]: both get the cotangent.
    close(gx, [1.0, 0.0, 3.0, 4.0])
    close(gv, [1.0, 2.0, 0.0])


def test_scatter_maximum_matches_finite_differences_without_ties():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(6).astype(np.float32)
    v0 = rng.standard_normal(4).astype(np.float32)
    idx = np.array([0, 2, 2, 5])
    w = rng.standard_normal(6)

    def ref(x, v):
        out = x.copy()
        np.maximum.at(out, idx, v)
        return (out * w).sum()

    gx, gv = mx.grad(lambda x, v: (x.at[mx.array(idx)].maximum(v) * mx.array(w.astype(np.float32))).sum(), argnums=(0, 1))(
        mx.array(x0), mx.array(v0)
    )
    close(gx, fd_grad(lambda x: ref(x, v0.astype(np.float64)), x0), 1e-3)
    close(gv, fd_grad(lambda v: ref(x0.astype(np.float64), v), v0), 1e-3)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
def test_scatter_max_min_jvp_is_transpose_of_vjp(op):
    x = A(1.0, 5.0, 3.0, 2.0)
    v = A(4.0, 4.0, 1.0)
    idx = mx.array([0, 0, 2])
    tx, tv = A(1.0, 10.0, 100.0, 1000.0), A(0.5, 0.25, 0.125)
    g = A(1.0, -2.0, 3.0, 0.5)
    f = lambda x, v: getattr(x.at[idx], op)(v)
    _, (t,) = mx.jvp(f, [x, v], [tx, tv])
    _, (gx, gv) = mx.vjp(f, [x, v], [g])
    lhs = (t * g).sum().item()
    rhs = (gx * tx).sum().item() + (gv * tv).sum().item()
    assert abs(lhs - rhs) < 1e-4


def test_scatter_prod_gradient_is_refused_clearly():
    x, v = A(1.0, 2.0), A(3.0)
    with pytest.raises(RuntimeError, match=r"^\[scatter\] VJP not implemented for scatter_prod"):
        mx.grad(lambda x: x.at[mx.array([0])].multiply(v).sum())(x)


# ------------------------------------------------------------------ custom vjp cotangent shapes
def test_custom_vjp_broadcastable_cotangents():
    @mx.custom_function
    def f(x):
        return x * 2

    @f.vjp
    def f_vjp(primals, cot, out):
        return mx.array([7.0])

    g = mx.grad(f)(mx.array(1.0))
    assert g.shape == ()
    close(g, 7.0)
    # Through another op (the cotangent keeps flowing).
    close(mx.grad(lambda x: f(mx.sin(x)))(mx.array(1.0)), 7.0 * np.cos(1.0))

    @mx.custom_function
    def h(x):
        return x * 2

    @h.vjp
    def h_vjp(primals, cot, out):
        return mx.array([[1.0, 2.0, 3.0]])

    _, (g,) = mx.vjp(h, [mx.ones((4, 3))], [mx.ones((4, 3))])
    assert g.shape == (4, 3)
    close(g, np.tile([1.0, 2.0, 3.0], (4, 1)))


@pytest.mark.parametrize("shape", [(2, 3), (12,), (4, 3, 1)])
def test_custom_vjp_incompatible_cotangent_is_an_error(shape):
    @mx.custom_function
    def h(x):
        return x * 2

    @h.vjp
    def h_vjp(primals, cot, out):
        return mx.ones(shape)

    with pytest.raises(ValueError, match=r"^\[custom_function\]"):
        mx.vjp(h, [mx.ones((4, 3))], [mx.ones((4, 3))])


# ------------------------------------------------------------------ argnums
@pytest.mark.parametrize("argnums", [(0, 0), (0, 1, 0), [1, 1]])
@pytest.mark.parametrize("fn", [mx.grad, mx.value_and_grad])
def test_repeated_argnums_rejected(fn, argnums):
    with pytest.raises(ValueError, match="Duplicate argument index"):
        fn(lambda x, y: (x * y).sum(), argnums=argnums)


def test_negative_and_empty_argnums_rejected():
    with pytest.raises(ValueError, match="negative argument index -1"):
        mx.grad(lambda x: x, argnums=-1)
    with pytest.raises(ValueError, match="no argument"):
        mx.grad(lambda x: x, argnums=())


# ------------------------------------------------------------------ max / min reductions
def test_max_reduction_vjp_splits_ties_and_jvp_takes_first():
    x = A(1.0, 3.0, 3.0, 0.0, 3.0)
    close(mx.grad(mx.max)(x), [0.0, 1 / 3, 1 / 3, 0.0, 1 / 3])
    t = A(1.0, 10.0, 100.0, 1000.0, 10000.0)
    close(mx.jvp(mx.max, [x], [t])[1][0], 10.0)
    close(mx.jvp(mx.min, [x], [t])[1][0], 1000.0)


def test_max_reduction_jvp_multi_axis_and_nan():
    x = mx.array(np.array([[[1.0, 3.0], [3.0, 0.0]], [[2.0, 2.0], [5.0, 5.0]]], np.float32))
    t = mx.array((10.0 ** np.arange(8)).reshape(2, 2, 2).astype(np.float32))
    close(mx.jvp(lambda x: mx.max(x, axis=(0, 2)), [x], [t])[1][0], [10.0, 1e6])
    close(mx.jvp(lambda x: mx.min(x, axis=1), [x], [t])[1][0], [[1.0, 1000.0], [10000.0, 100000.0]])
    # NaN is the extremum: its tangent is taken.
    close(mx.jvp(mx.max, [A(1.0, nan, 3.0)], [A(1.0, 10.0, 100.0)])[1][0], 10.0)


def test_max_min_over_one_element_pass_the_gradient_through_even_nan():
    # the extremum of one element is that element (MLX's rule): a NaN passes its
    # cotangent and tangent through; over several elements a NaN still gives NaN (as MLX)
    for f in (mx.max, mx.min):
        close(mx.grad(lambda x: f(x, keepdims=True).sum())(A(nan)), [1.0])
        x = mx.array(np.array([[nan], [3.0]], np.float32))
        close(mx.vjp(lambda a: f(a, axis=1), [x], [A(2.0, 5.0)])[1][0], [[2.0], [5.0]])
        close(mx.jvp(lambda a: f(a, axis=1), [x], [A(1.0, 1.0).reshape(2, 1)])[1][0], [1.0, 1.0])
        assert np.isnan(np.array(mx.grad(lambda x: f(x))(A(1.0, nan)))).all()


# ------------------------------------------------------------------ kinks
def test_abs_gradient_zero_at_zero_and_nan():
    close(mx.grad(lambda x: mx.abs(x).sum())(A(0.0, -0.0, 2.0, -2.0, nan)), [0.0, 0.0, 1.0, -1.0, 0.0])


def test_relu_clip_maximum_conventions():
    x = A(-1.0, 0.0, 0.5, 1.0, 2.0)
    close(mx.grad(lambda x: mx.maximum(x, 0.0).sum())(x), [0.0, 0.0, 1.0, 1.0, 1.0])
    # At the bounds the bound gets the gradient (maximum/minimum send ties to their second operand).
    close(mx.grad(lambda x: mx.clip(x, 0.0, 1.0).sum())(x), [0.0, 0.0, 1.0, 0.0, 0.0])
    ga, gb = mx.grad(lambda a, b: mx.maximum(a, b).sum(), argnums=(0, 1))(A(1.0, 2.0), A(1.0, 0.0))
    close(ga, [0.0, 1.0])
    close(gb, [1.0, 0.0])


def test_power_exponent_gradient_where_result_is_zero():
    a = A(0.0, 0.0, -2.0, 0.5, 0.0, 2.0)
    b = A(2.0, 0.0, -inf, inf, -1.0, 3.0)
    _, (da, db) = mx.vjp(lambda a, b: a**b, [a, b], [mx.ones_like(a)])
    # a^b log a, taken as 0 where a^b == 0; else the IEEE value.
    close(db, [0.0, -inf, 0.0, 0.0, -inf, 8.0 * np.log(2.0)])
    close(da[5], 12.0)


def test_logaddexp_gradient_with_infinities():
    a = A(inf, 1.0, -inf, 3.0, 0.5)
    b = A(1.0, inf, 2.0, -inf, -0.25)
    ga, gb = mx.grad(lambda a, b: mx.logaddexp(a, b).sum(), argnums=(0, 1))(a, b)
    s = 1 / (1 + np.exp(-0.75))
    close(ga, [1.0, 0.0, 0.0, 1.0, s])
    close(gb, [0.0, 1.0, 1.0, 0.0, 1 - s])


# ------------------------------------------------------------------ logsumexp / softmax
def test_logsumexp_gradient_is_softmax():
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((3, 4)).astype(np.float32)

    def ref(x):
        m = x.max(axis=1, keepdims=True)
        return (np.log(np.exp(x - m).sum(axis=1)) + m[:, 0]).sum()

    close(mx.grad(lambda x: mx.logsumexp(x, axis=1).sum())(mx.array(x0)), fd_grad(ref, x0), 1e-3)
    e = np.exp(x0 - x0.max())
    close(mx.grad(mx.logsumexp)(mx.array(x0)), e / e.sum())
    t = rng.standard_normal((3, 4)).astype(np.float32)
    close(mx.jvp(mx.logsumexp, [mx.array(x0)], [mx.array(t)])[1][0], (t * e / e.sum()).sum(), 1e-4)


def test_logsumexp_gradient_with_infinities():
    close(mx.grad(mx.logsumexp)(A(-inf, 0.0, 0.0)), [0.0, 0.5, 0.5])
    # An infinite maximum gives NaN (softmax of [inf, 0]).
    assert np.isnan(np.array(mx.grad(mx.logsumexp)(A(inf, 0.0)))).all()
    close(mx.grad(lambda x: mx.softmax(x)[1])(A(-inf, 0.0, 0.0)), [0.0, 0.25, -0.25])


def test_logsumexp_second_order():
    x = A(0.5, -1.0, 2.0)
    w = A(1.0, 0.0, -1.0)
    h = mx.grad(lambda x: (mx.grad(lambda y: mx.logsumexp(y * w))(x) * w).sum())(x)
    assert np.isfinite(np.array(h)).all()


# ------------------------------------------------------------------ logcumsumexp
def _lcse_jac(x):
    x = np.asarray(x, np.float64)
    out = np.logaddexp.accumulate(x)
    n = len(x)
    j = np.zeros((n, n))
    for r in range(n):
        for c in range(r + 1):
            j[r, c] = np.exp(x[c] - out[r])
    return j


@pytest.mark.parametrize("x", [[-200.0, 100.0, 50.0], [0.5, -1.0, 2.0, 0.0], [1.0, -inf, 2.0]])
def test_logcumsumexp_gradients_wide_range(x):
    t = np.array([1.0, -2.0, 0.5, 3.0][: len(x)], np.float32)
    jac = _lcse_jac(x)
    close(mx.jvp(mx.logcumsumexp, [A(*x)], [mx.array(t)])[1][0], jac @ t, 1e-4)
    close(mx.vjp(mx.logcumsumexp, [A(*x)], [mx.array(t)])[1][0], t @ jac, 1e-4)


def test_logcumsumexp_jvp_zero_before_first_finite_value():
    close(mx.jvp(mx.logcumsumexp, [A(-inf, -inf, 2.0)], [A(1.0, 10.0, 100.0)])[1][0], [0.0, 0.0, 100.0], 1e-4)


def test_logcumsumexp_second_order_is_finite_and_symmetric():
    x = A(0.5, -1.0, 2.0, 0.0)
    w = A(1.0, -2.0, 0.0, 3.0)
    f = lambda x: (mx.logcumsumexp(x) * w).sum()
    hv = mx.grad(lambda x: (mx.grad(f)(x) * w).sum())(x)
    hv2 = mx.jvp(lambda x: mx.grad(f)(x), [x], [w])[1][0]
    assert np.isfinite(np.array(hv)).all()
    close(hv, hv2, 1e-4)
