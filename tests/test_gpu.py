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


@gpu_only
def test_primitives_without_kernels_still_work():
    # random bits, gathers, scans and sorts run on the host for now, with the same bits
    k = mx.random.key(42)
    np.testing.assert_array_equal(np.array(on(mx.gpu, lambda: mx.random.uniform(shape=(1000,), key=k))), np.array(on(mx.cpu, lambda: mx.random.uniform(shape=(1000,), key=k))))
    x = rand((5, 7), mx.float32, seed=10)
    for f in (lambda x: x[mx.array([4, 0, 2])], lambda x: mx.cumsum(x, axis=1), lambda x: mx.sort(x, axis=0), lambda x: mx.concatenate([x, x], axis=1)):
        np.testing.assert_array_equal(np.array(on(mx.gpu, f, x)), np.array(on(mx.cpu, f, x)))
    with pytest.raises(IndexError):
        on(mx.gpu, lambda x: x[mx.array([9])], x)
