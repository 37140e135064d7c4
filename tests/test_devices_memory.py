"""Devices, streams, evaluation of pytrees, and the memory API."""

import gc
import os

import numpy as np
import pytest

import oxmx.core as mx

HAS_CUDA = bool(mx.cuda.is_available())
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
MB = 1 << 20


@pytest.fixture
def restore_device():
    dev = mx.default_device()
    yield
    mx.set_default_device(dev)


@pytest.fixture
def restore_limits():
    old_mem = mx.get_memory_limit()
    old_cache = mx.set_cache_limit(1 << 62)
    mx.set_cache_limit(old_cache)
    yield
    mx.set_memory_limit(old_mem)
    mx.set_cache_limit(old_cache)


# ------------------------------------------------------------------ devices
def test_backends_availability():
    assert mx.metal.is_available() is False
    assert isinstance(mx.cuda.is_available(), bool)
    if not os.path.exists("/dev/nvidiactl"):
        assert mx.cuda.is_available() is False
    assert mx.is_available(mx.cpu) is True
    assert mx.is_available(mx.gpu) is HAS_CUDA
    assert mx.device_count(mx.cpu) >= 1
    assert mx.device_count(mx.gpu) == (mx.device_count(mx.gpu) if HAS_CUDA else 0)


def test_device_objects():
    d = mx.Device(mx.cpu)
    assert d == mx.Device(mx.cpu, 0)
    assert d.type == mx.cpu
    assert "cpu" in repr(d)
    assert mx.cpu != mx.gpu
    info = mx.device_info()
    assert isinstance(info, dict)


def test_default_device():
    dev = mx.default_device()
    if HAS_CUDA:
        assert dev.type == mx.gpu
    else:
        assert dev == mx.cpu or dev.type == mx.cpu


def test_set_default_device(restore_device):
    mx.set_default_device(mx.cpu)
    assert mx.default_device().type == mx.cpu
    assert (mx.arange(4) * 2).tolist() == [0, 2, 4, 6]
    mx.set_default_device(mx.Device(mx.cpu, 0))
    assert mx.default_device() == mx.Device(mx.cpu, 0)
    if not HAS_CUDA:
        with pytest.raises(ValueError):
            mx.set_default_device(mx.gpu)
        assert mx.default_device().type == mx.cpu


# ------------------------------------------------------------------ streams
def test_streams():
    s1 = mx.new_stream(mx.cpu)
    s2 = mx.new_stream(mx.cpu)
    assert s1 != s2
    assert s1.device == mx.Device(mx.cpu)
    assert isinstance(s1, mx.Stream)
    assert "Stream" in repr(s1)
    ds = mx.default_stream(mx.cpu)
    assert ds.device.type == mx.cpu


def test_stream_context_manager():
    s = mx.new_stream(mx.cpu)
    before = mx.default_stream(mx.cpu)
    with mx.stream(s):
        assert mx.default_stream(mx.cpu) == s
        y = mx.arange(5) + 1
        assert y.tolist() == [1, 2, 3, 4, 5]
    assert mx.default_stream(mx.cpu) == before
    with mx.stream(mx.cpu):
        assert (mx.ones((2,)) * 3).tolist() == [3.0, 3.0]


def test_stream_context_restores_on_exception():
    before = mx.default_stream(mx.cpu)
    with pytest.raises(RuntimeError):
        with mx.stream(mx.new_stream(mx.cpu)):
            raise RuntimeError("boom")
    assert mx.default_stream(mx.cpu) == before


@pytest.mark.parametrize(
    "make",
    [lambda: mx.cpu, lambda: mx.Device(mx.cpu), lambda: mx.new_stream(mx.cpu), lambda: mx.default_stream(mx.cpu)],
    ids=["devtype", "device", "new_stream", "default_stream"],
)
def test_stream_keyword_on_ops(make):
    s = make()
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = mx.array(a)
    np.testing.assert_allclose(np.array(mx.add(x, x, stream=s)), a + a)
    np.testing.assert_allclose(np.array(mx.sum(x, axis=1, stream=s)), a.sum(1))
    np.testing.assert_allclose(np.array(mx.matmul(x, x.T, stream=s)), a @ a.T, rtol=1e-5)
    np.testing.assert_allclose(np.array(mx.exp(x, stream=s)), np.exp(a), rtol=1e-5)
    np.testing.assert_allclose(np.array(mx.reshape(x, (4, 3), stream=s)), a.reshape(4, 3))
    np.testing.assert_allclose(np.array(mx.zeros((2,), stream=s)), np.zeros(2))
    np.testing.assert_allclose(np.array(mx.arange(3, stream=s)), np.arange(3))
    np.testing.assert_allclose(np.array(mx.take(x, mx.array([2, 0]), axis=0, stream=s)), a[[2, 0]])
    np.testing.assert_allclose(np.array(mx.astype(x, mx.int32, stream=s)), a.astype(np.int32))


def test_ops_across_streams():
    s1, s2 = mx.new_stream(mx.cpu), mx.new_stream(mx.cpu)
    a = mx.arange(1000, dtype=mx.float32)
    b = mx.multiply(a, 2, stream=s1)
    c = mx.add(b, 1, stream=s2)  # consumes s1's result on s2
    d = mx.sum(c, stream=s1)
    assert d.item() == float(np.sum(np.arange(1000) * 2 + 1))


def test_bad_stream_argument():
    with pytest.raises((TypeError, ValueError)):
        mx.add(mx.array(1), mx.array(2), stream="cpu")
    with pytest.raises((TypeError, ValueError)):
        mx.add(mx.array(1), mx.array(2), stream=3)


def test_synchronize():
    s = mx.new_stream(mx.cpu)
    x = mx.add(mx.ones((100,)), 1, stream=s)
    mx.async_eval(x)
    mx.synchronize(s)
    mx.synchronize()
    assert x.sum().item() == 200.0


def test_thread_local_stream():
    s = mx.new_thread_local_stream(mx.cpu)
    assert (mx.add(mx.array(1), 1, stream=s)).item() == 2


# ------------------------------------------------------------------ eval / async_eval over pytrees
def test_eval_pytrees():
    a = mx.arange(3) + 1
    b = mx.ones((2,)) * 2
    c = mx.array(5) - 1
    tree = {"a": [a, (b,)], "c": {"nested": c}, "ignored": 3, "s": "str", "n": None}
    assert mx.eval(tree) is None
    assert a.tolist() == [1, 2, 3] and b.tolist() == [2.0, 2.0] and c.item() == 4
    mx.eval(a, [b], (c,), {"k": a})
    mx.eval()
    mx.eval([])
    mx.eval({})


def test_async_eval_pytrees():
    xs = [mx.arange(1000) * i for i in range(5)]
    d = {"x": mx.ones((10, 10)) @ mx.ones((10, 10)), "t": (mx.zeros((3,)) + 2,)}
    mx.async_eval(xs, d)
    for i, x in enumerate(xs):
        assert x[-1].item() == 999 * i
    assert d["x"][0, 0].item() == 10.0
    assert d["t"][0].tolist() == [2.0, 2.0, 2.0]


def test_eval_already_evaluated_and_views():
    x = mx.array([1, 2, 3])
    mx.eval(x)
    mx.eval(x, x, [x])
    v = x[::-1]
    mx.eval(v)
    assert v.tolist() == [3, 2, 1]


def test_eval_bad_leaf_type():
    # non-array leaves are ignored (as MLX), never a crash
    mx.eval([1, 2.0, "x", object()])


# ------------------------------------------------------------------ memory
def test_memory_counters_are_ints():
    for fn in (mx.get_active_memory, mx.get_peak_memory, mx.get_cache_memory, mx.get_memory_limit):
        v = fn()
        assert isinstance(v, int) and v >= 0


def test_active_and_peak_memory():
    gc.collect()  # arrays of earlier tests held in reference cycles must not be freed mid-test
    mx.synchronize()
    mx.clear_cache()
    mx.reset_peak_memory()
    base = mx.get_active_memory()
    x = mx.ones((8 * MB // 4,))  # 8 MiB of float32
    mx.eval(x)
    active = mx.get_active_memory()
    assert active >= base + 8 * MB
    assert mx.get_peak_memory() >= active
    del x
    mx.synchronize()
    assert mx.get_active_memory() < active
    assert mx.get_peak_memory() >= 8 * MB
    mx.reset_peak_memory()
    assert mx.get_peak_memory() <= active


def test_cache_memory_and_clear_cache(restore_limits):
    mx.set_cache_limit(1 << 40)
    x = mx.ones((4 * MB // 4,))
    mx.eval(x)
    del x
    mx.synchronize()
    mx.clear_cache()
    assert mx.get_cache_memory() == 0
    mx.eval(mx.zeros((10,)) + 1)


def test_set_cache_limit_returns_previous(restore_limits):
    old = mx.set_cache_limit(123 * MB)
    assert isinstance(old, int)
    assert mx.set_cache_limit(old) == 123 * MB
    mx.set_cache_limit(0)  # disables caching
    x = mx.ones((MB,))
    mx.eval(x)
    del x
    mx.synchronize()
    assert mx.get_cache_memory() == 0


def test_set_memory_limit_roundtrip(restore_limits):
    old = mx.get_memory_limit()
    prev = mx.set_memory_limit(512 * MB)
    assert prev == old
    assert mx.get_memory_limit() == 512 * MB


def test_exceeding_memory_limit_raises_memoryerror(restore_limits):
    mx.synchronize()
    mx.clear_cache()
    gc.collect()
    mx.set_memory_limit(mx.get_active_memory() + 64 * MB)
    with pytest.raises(MemoryError):
        y = mx.ones((64 * MB,))  # 256 MiB of float32
        mx.eval(y)
    # the process keeps working, and the failed array doesn't poison others
    z = mx.arange(10) * 3
    assert z.tolist() == list(range(0, 30, 3))
    with pytest.raises(MemoryError):
        (mx.zeros((4096, 4096)) + 1).tolist()
    mx.set_memory_limit(1 << 40)
    w = mx.ones((64 * MB,))
    mx.eval(w)
    assert w[-1].item() == 1.0


def test_memory_limit_error_from_lazy_chain(restore_limits):
    gc.collect()
    mx.set_memory_limit(mx.get_active_memory() + 32 * MB)
    a = mx.ones((1024,))
    b = mx.broadcast_to(a[:, None], (1024, 16 * 1024))  # a 64 MiB result only when materialized
    with pytest.raises(MemoryError):
        mx.eval(b * 2)
    assert (a * 2).sum().item() == 2048.0


def test_terabyte_allocation_raises():
    with pytest.raises(MemoryError):
        mx.eval(mx.zeros((1 << 40,), dtype=mx.uint8) + 1)
    with pytest.raises(MemoryError):
        mx.eval(mx.ones((1 << 20, 1 << 20)))
    assert (mx.ones((3,)) * 2).tolist() == [2.0, 2.0, 2.0]


def test_array_buffer_size():
    x = mx.ones((10,))
    mx.eval(x)
    assert mx.get_array_buffer_size(x) >= 40


# ------------------------------------------------------------------ GPU (skipped without CUDA)
@needs_gpu
def test_gpu_ops_match_numpy():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((64, 48)).astype(np.float32)
    b = rng.standard_normal((48, 32)).astype(np.float32)
    x, y = mx.array(a), mx.array(b)
    np.testing.assert_allclose(np.array(mx.matmul(x, y, stream=mx.gpu)), a @ b, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(np.array(mx.exp(x, stream=mx.gpu)), np.exp(a), rtol=1e-5)
    np.testing.assert_allclose(np.array(mx.sum(x, axis=0, stream=mx.gpu)), a.sum(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.array(mx.softmax(x, axis=-1, stream=mx.gpu)), np.exp(a) / np.exp(a).sum(-1, keepdims=True), rtol=1e-4, atol=1e-6)


@needs_gpu
def test_gpu_cpu_interleaved(restore_device):
    x = mx.arange(100, dtype=mx.float32)
    g = mx.multiply(x, 2, stream=mx.gpu)
    c = mx.add(g, 1, stream=mx.cpu)
    g2 = mx.sum(c, stream=mx.gpu)
    assert g2.item() == float(np.sum(np.arange(100) * 2 + 1))
    mx.set_default_device(mx.gpu)
    assert (mx.ones((4,)) + 1).tolist() == [2.0] * 4


@needs_gpu
def test_gpu_integer_edge_cases_match_cpu():
    a = mx.array([7, -7, -(2**31), 5], dtype=mx.int32)
    b = mx.array([0, 0, -1, 33], dtype=mx.int32)
    for op in (mx.floor_divide, mx.remainder, mx.left_shift, mx.right_shift):
        assert op(a, b, stream=mx.gpu).tolist() == op(a, b, stream=mx.cpu).tolist()
    f = mx.array([float("nan"), float("inf"), -float("inf"), 3e9])
    assert f.astype(mx.int32, stream=mx.gpu).tolist() == f.astype(mx.int32, stream=mx.cpu).tolist()


@needs_gpu
def test_gpu_out_of_bounds_gather_does_not_crash():
    x = mx.arange(10, dtype=mx.float32)
    with pytest.raises(IndexError):
        mx.take(x, mx.array([100]), stream=mx.gpu).tolist()
    assert mx.sum(x, stream=mx.gpu).item() == 45.0
