"""Buffer donation: intermediates no one else can reach are overwritten in place.

Checked through memory use (fewer live buffers) and through values (a donated buffer
must never be one that a live array or view still reads).
"""

import numpy as np
import pytest

import oxmx.core as mx


@pytest.fixture(autouse=True)
def on_cpu():
    # Donation is the CPU backend's (GPU kernels do not write in place yet).
    with mx.stream(mx.cpu):
        yield

N = 1 << 20  # 4 MiB of float32: large enough to dominate the peak


def peak_during(fn):
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    out = fn()
    mx.eval(out)
    return mx.get_peak_memory() - base, out


def test_chain_of_unary_ops_reuses_one_buffer():
    x = mx.random.uniform(shape=(N,), key=mx.random.key(0))
    mx.eval(x)
    peak, y = peak_during(lambda: mx.sin(mx.exp(mx.negative(mx.abs(x)))))
    # Without donation three intermediates overlap pairwise (two live at once); with
    # donation the first output is rewritten in place by the rest.
    assert peak <= 1.5 * 4 * N, peak
    want = np.sin(np.exp(-np.abs(np.array(x))))
    np.testing.assert_allclose(np.array(y), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16, mx.float64])
def test_binary_chain_values(dtype):
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(N // 4).astype(np.float32) for _ in range(3))
    A, B, C = (mx.array(v).astype(dtype) for v in (a, b, c))
    # (a * b) is donated to "+ c"; "2 - t" donates its second operand; "t / 3" a scalar.
    got = (2.0 - (A * B + C)) / 3.0
    ref = (2.0 - (np.array(A.astype(mx.float64)) * np.array(B.astype(mx.float64)) + np.array(C.astype(mx.float64)))) / 3.0
    tol = {mx.float32: 1e-5, mx.float64: 1e-12, mx.float16: 2e-2, mx.bfloat16: 5e-2}[dtype]
    np.testing.assert_allclose(np.array(got.astype(mx.float64)), ref, rtol=tol, atol=tol)
    assert got.dtype == dtype
    # the inputs are untouched
    np.testing.assert_array_equal(np.array(A.astype(mx.float32)), np.array(mx.array(a).astype(dtype).astype(mx.float32)))


def test_binary_chain_peak():
    a = mx.random.uniform(shape=(N,), key=mx.random.key(1))
    b = mx.random.uniform(shape=(N,), key=mx.random.key(2))
    mx.eval(a, b)
    peak, y = peak_during(lambda: ((a * b + a) * b - a) * 0.5)
    assert peak <= 1.5 * 4 * N, peak
    an, bn = np.array(a), np.array(b)
    np.testing.assert_allclose(np.array(y), ((an * bn + an) * bn - an) * np.float32(0.5), rtol=1e-6)


def test_view_of_intermediate_keeps_its_values():
    x = mx.arange(16, dtype=mx.float32)
    t = mx.exp(x * 0.1)
    v = t.reshape(4, 4)  # shares t's buffer once evaluated
    w = -t
    del t
    mx.eval(v)
    before = np.array(v).copy()
    mx.eval(w)  # t is reachable only through w now, but v shares its buffer
    np.testing.assert_array_equal(np.array(v), before)
    np.testing.assert_allclose(np.array(w), -before.ravel(), rtol=0)


def test_numpy_buffer_keeps_its_values():
    t = mx.exp(mx.arange(8, dtype=mx.float32))
    mx.eval(t)
    view = memoryview(t)  # zero-copy export holds the buffer
    before = np.asarray(view).copy()
    w = t + 1.0
    del t
    mx.eval(w)
    np.testing.assert_array_equal(np.asarray(view), before)


def test_repeated_operand_is_not_donated():
    x = mx.arange(1, 9, dtype=mx.float32)
    t = x * 2.0
    y = t * t  # the same array twice: must not overwrite while reading it
    del t
    np.testing.assert_array_equal(np.array(y), (np.arange(1, 9, dtype=np.float32) * 2) ** 2)


def test_broadcast_and_strided_operands():
    x = mx.arange(12, dtype=mx.float32).reshape(3, 4)
    row = mx.array([1.0, 2.0, 3.0, 4.0])
    t = x * 1.0
    y = t + row  # the other operand is broadcast (not a scalar): allocating path
    z = (x * 1.0) + x.T.T  # transposed twice: a strided view
    xn = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(np.array(y), xn + np.array([1, 2, 3, 4], np.float32))
    np.testing.assert_array_equal(np.array(z), xn * 2)
