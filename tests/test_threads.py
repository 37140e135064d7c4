"""Several Python threads building graphs and evaluating at once: results stay correct,
no deadlock, no crash, no panic."""

import threading

import numpy as np
import pytest

import oxmx.core as mx

N_THREADS = 8


def _run_threads(target, n=N_THREADS, timeout=120):
    errors = []
    results = [None] * n
    barrier = threading.Barrier(n)

    def wrap(i):
        try:
            barrier.wait()
            results[i] = target(i)
        except BaseException as e:  # noqa: BLE001 - also catch a PanicException
            errors.append((i, e))

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    alive = [t for t in threads if t.is_alive()]
    assert not alive, f"{len(alive)} threads still running after {timeout}s (deadlock?)"
    if errors:
        i, e = errors[0]
        raise AssertionError(f"thread {i} raised {type(e).__module__}.{type(e).__name__}: {e}") from e
    return results


def test_independent_graphs_in_threads():
    def work(i):
        rng = np.random.default_rng(i)
        a = rng.standard_normal((64, 48)).astype(np.float32)
        b = rng.standard_normal((48, 32)).astype(np.float32)
        out = []
        for k in range(20):
            x, y = mx.array(a), mx.array(b)
            z = mx.tanh(x @ y + k) * 2 - mx.sum(x, axis=1, keepdims=True)
            got = np.array(z)
            ref = np.tanh(a.astype(np.float64) @ b + k) * 2 - a.sum(axis=1, keepdims=True)
            out.append(np.max(np.abs(got - ref)))
        return max(out)

    errs = _run_threads(work)
    assert max(errs) < 1e-3, errs


def test_shared_inputs_read_concurrently():
    base = mx.arange(100_000, dtype=mx.float32)
    mx.eval(base)
    expected = float(np.sum(np.arange(100_000, dtype=np.float64) * 3))

    def work(i):
        vals = []
        for _ in range(10):
            vals.append(mx.sum(base * 3).item())
        return vals

    for vals in _run_threads(work):
        for v in vals:
            assert v == pytest.approx(expected, rel=1e-5)


def test_shared_lazy_graph_evaluated_from_many_threads():
    # the same un-evaluated node is forced by every thread at once
    for _ in range(5):
        a = mx.arange(10_000, dtype=mx.float32)
        shared = mx.exp(mx.sin(a) * 0.5) + mx.cos(a)
        ref = np.exp(np.sin(np.arange(10_000, dtype=np.float32)) * 0.5) + np.cos(np.arange(10_000, dtype=np.float32))

        def work(i):
            if i % 2:
                mx.eval(shared)
            return np.array(shared)

        for got in _run_threads(work):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_threads_with_own_streams():
    def work(i):
        s = mx.new_stream(mx.cpu)
        with mx.stream(s):
            x = mx.full((256,), float(i))
            for _ in range(50):
                x = x + 1
            y = mx.sum(x, stream=s)
        mx.synchronize(s)
        return y.item()

    res = _run_threads(work)
    assert res == [256.0 * (i + 50) for i in range(N_THREADS)]


def test_async_eval_from_threads():
    def work(i):
        xs = [mx.ones((100, 100)) * (i + k) for k in range(10)]
        mx.async_eval(xs)
        return [x[0, 0].item() for x in xs]

    res = _run_threads(work)
    for i, vals in enumerate(res):
        assert vals == [float(i + k) for k in range(10)]


def test_setitem_and_indexing_in_threads():
    def work(i):
        x = mx.zeros((50,), dtype=mx.int32)
        for k in range(50):
            x[k] = k * i
        idx = mx.array(np.arange(49, -1, -1, dtype=np.int32))
        return x[idx].tolist()

    res = _run_threads(work)
    for i, vals in enumerate(res):
        assert vals == [k * i for k in range(49, -1, -1)]


def test_errors_in_threads_are_isolated():
    def work(i):
        if i % 2 == 0:
            try:
                mx.reshape(mx.zeros((3,)), (2, 2))
            except ValueError:
                pass
            try:
                mx.arange(3)[mx.array([10])].tolist()
            except IndexError:
                pass
        return (mx.arange(10) * i).sum().item()

    res = _run_threads(work)
    assert res == [45 * i for i in range(N_THREADS)]


def test_many_small_graphs_many_threads():
    def work(i):
        acc = 0.0
        for k in range(300):
            acc += (mx.array(float(k)) * 2 + i).item()
        return acc

    res = _run_threads(work, n=16)
    for i, v in enumerate(res):
        assert v == sum(2.0 * k + i for k in range(300))


def test_memory_counters_from_threads():
    def work(i):
        x = mx.ones((1 << 16,))
        mx.eval(x)
        return mx.get_active_memory() >= (1 << 18)

    assert all(_run_threads(work))
