"""Gradients of cumprod against the sum of products they stand for, with zeros,
infinities and underflow in the row, and of the reverse/exclusive scans against finite
differences."""

import warnings

import numpy as np
import pytest

import oxmx.core as mx


def _naive_vjp(x, g):
    """dx_k = sum_{j >= k} g_j prod_{i <= j, i != k} x_i, evaluated term by term."""
    n = len(x)
    dx = np.zeros(n, dtype=np.result_type(x, g, np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(n):
            s = 0.0
            for j in range(k, n):
                p = 1.0
                for i in range(j + 1):
                    if i != k:
                        p *= x[i]
                s += g[j] * p
            dx[k] = s
    return dx


def _naive_jvp(x, t):
    """d out_j = sum_{k <= j} t_k prod_{i <= j, i != k} x_i."""
    n = len(x)
    out = np.zeros(n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(n):
            s = 0.0
            for k in range(j + 1):
                p = 1.0
                for i in range(j + 1):
                    if i != k:
                        p *= x[i]
                s += t[k] * p
            out[j] = s
    return out


def test_cumprod_vjp_with_zeros_and_infinities_is_the_sum_of_products():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(1, 7))
        x = rng.choice([0.0, np.inf, -np.inf, 2.0, -0.5, 3.0, 1.0], size=n)
        g = rng.choice([1.0, 0.0, -2.0, 0.5], size=n)
        _, (dx,) = mx.vjp(lambda a: mx.cumprod(a), [mx.array(x, dtype=mx.float64)], [mx.array(g, dtype=mx.float64)])
        got, ref = np.array(dx), _naive_vjp(x, g)
        # exact wherever the sum is defined; where it has +inf - inf, NaN or an infinity
        defined = ~np.isnan(ref)
        np.testing.assert_array_equal(got[defined], ref[defined], err_msg=f"x={x} g={g}")
        assert np.all(np.isnan(got[~defined]) | np.isinf(got[~defined])), (x, g, got)


@pytest.mark.parametrize("cases", [
    ([1.0, np.inf, 2.0], [np.inf, 3.0, np.inf]),
    ([0.0, np.inf], [np.inf, 0.0]),
    ([np.inf, 0.0], [1.0, np.inf]),
    ([2.0, 0.0, np.inf, 3.0], [np.nan, np.inf, 0.0, np.nan]),
    ([np.inf, 2.0, 0.0, 5.0], [3.0, np.nan, np.inf, np.nan]),
])
def test_cumprod_vjp_documented_examples(cases):
    x, want = cases
    _, (dx,) = mx.vjp(mx.cumprod, [mx.array(x)], [mx.ones((len(x),))])
    np.testing.assert_array_equal(np.array(dx), np.array(want, dtype=np.float32))


def test_cumprod_jvp_with_zeros_and_infinities():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(1, 6))
        x = rng.choice([0.0, np.inf, 2.0, -0.5, 3.0], size=n)
        t = rng.choice([1.0, -2.0, 0.5], size=n)
        _, (dt,) = mx.jvp(mx.cumprod, [mx.array(x, dtype=mx.float64)], [mx.array(t, dtype=mx.float64)])
        got, ref = np.array(dt), _naive_jvp(x, t)
        defined = ~np.isnan(ref)
        np.testing.assert_array_equal(got[defined], ref[defined], err_msg=f"x={x} t={t}")


def test_cumprod_gradient_survives_underflow():
    # the running product underflows to 0, yet every factor is nonzero: a division-based
    # rule would lose the gradient of the early elements
    x = np.full(12, 1e-30)
    _, (dx,) = mx.vjp(mx.cumprod, [mx.array(x, dtype=mx.float64)], [mx.ones((12,), dtype=mx.float64)])
    np.testing.assert_allclose(np.array(dx), _naive_vjp(x, np.ones(12)), rtol=1e-12)
    assert np.array(dx)[0] == 1.0 + 1e-30  # d out_0/dx_0 = 1 dominates


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("inclusive", [False, True])
@pytest.mark.parametrize("shape,axis", [((9,), 0), ((3, 5), 1), ((4, 3, 2), 0), ((2, 17), -1)])
def test_cumprod_variants_match_finite_differences(reverse, inclusive, shape, axis):
    rng = np.random.default_rng(2)
    x = rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1, 1], size=shape)
    g = rng.standard_normal(shape)

    def f(a):
        return mx.cumprod(a, axis=axis, reverse=reverse, inclusive=inclusive)

    _, (dx,) = mx.vjp(f, [mx.array(x, dtype=mx.float64)], [mx.array(g, dtype=mx.float64)])
    t = rng.standard_normal(shape)
    _, (dt,) = mx.jvp(f, [mx.array(x, dtype=mx.float64)], [mx.array(t, dtype=mx.float64)])
    eps = 1e-6

    def num(v):
        return np.array(f(mx.array(v, dtype=mx.float64)))

    fd = (num(x + eps * t) - num(x - eps * t)) / (2 * eps)
    np.testing.assert_allclose(np.array(dt), fd, rtol=1e-6, atol=1e-8)
    # <g, J t> = <J^T g, t>
    np.testing.assert_allclose((np.array(dx) * t).sum(), (g * fd).sum(), rtol=1e-6)


def test_cumprod_second_order_and_complex():
    x = mx.array([0.7, -1.3, 2.0, 0.0, 1.1], dtype=mx.float64)
    h = mx.grad(lambda a: mx.grad(lambda b: mx.cumprod(b).sum())(a).sum())(x)
    # reference: the Hessian summed over rows, by central differences of the gradient
    def grad_np(v):
        return _naive_vjp(v, np.ones(5))
    eps, xv = 1e-6, np.array(x)
    ref = np.array([(grad_np(xv + eps * e) - grad_np(xv - eps * e)).sum() / (2 * eps) for e in np.eye(5)])
    np.testing.assert_allclose(np.array(h), ref, rtol=1e-5, atol=1e-7)
    # complex rows: the products themselves, not conjugated (as MLX)
    z = np.array([1 + 1j, 2 - 1j, 0.5j], dtype=np.complex64)
    _, (dz,) = mx.vjp(mx.cumprod, [mx.array(z)], [mx.ones((3,), dtype=mx.complex64)])
    np.testing.assert_allclose(np.array(dz), _naive_vjp(z.astype(complex), np.ones(3)), rtol=1e-5)
