"""Public functions whose behaviour is state (devices, streams, memory, printing options,
evaluation, transforms, files) rather than a value of generated inputs: each is compared
with MLX here by a hand-written scenario. STATE_COVERED names them for the coverage test."""

import os

import numpy as np
import pytest

import mlx.core as mlx

import oxmx.core as ox

FW = [pytest.param(mlx, id="mlx"), pytest.param(ox, id="oxmx")]

STATE_COVERED = {
    # devices and streams
    "default_device", "set_default_device", "default_stream", "set_default_stream", "new_stream",
    "new_thread_local_stream", "new_thread_unsafe_stream", "stream", "synchronize", "clear_streams",
    "device_count", "device_info", "is_available",
    # memory
    "get_active_memory", "get_peak_memory", "reset_peak_memory", "get_cache_memory", "clear_cache",
    "set_memory_limit", "get_memory_limit", "set_cache_limit", "set_wired_limit", "get_array_buffer_size",
    # evaluation, printing
    "eval", "async_eval", "set_printoptions", "get_printoptions", "printoptions",
    # transforms (values compared in test_diff_grads.py)
    "grad", "value_and_grad", "vjp", "jvp", "vmap", "checkpoint", "compile", "disable_compile",
    "enable_compile", "export_to_dot", "export_function", "import_function", "exporter", "FunctionExporter",
    # files
    "load", "save", "savez", "savez_compressed", "save_safetensors", "save_gguf",
    "from_dlpack",
    # oxmx-only (★ in API.md: boolean masks and nonzero); MLX has no counterpart
    "nonzero",
    # oxmx-only: raw random bits (MLX 0.32 has no mx.random.bits); tests/test_random.py
    "random.bits",
}


def both(fn):
    """fn(m) in both frameworks; the outcomes (values or exception types) must agree."""
    out = []
    for m in (mlx, ox):
        try:
            out.append(("ok", fn(m)))
        except Exception as e:  # noqa: BLE001
            out.append(("raised", type(e).__name__))
    assert out[0] == out[1], f"MLX {out[0]!r} vs oxmx {out[1]!r}"
    return out[0]


def test_devices_and_streams():
    both(lambda m: repr(m.default_device()))
    both(lambda m: (m.is_available(m.cpu), m.device_count(m.cpu)))
    both(lambda m: repr(m.default_stream(m.cpu)))
    both(lambda m: str(m.new_stream(m.cpu)).split(",")[0])
    both(lambda m: type(m.new_thread_local_stream(m.cpu)).__name__ != "")
    both(lambda m: str(m.new_thread_unsafe_stream(m.cpu)).split(",")[0])
    both(lambda m: sorted(k for k in m.device_info(m.cpu)) != [])

    def with_stream(m):
        with m.stream(m.cpu):
            return (m.array([1, 2]) + 1).tolist()

    both(with_stream)

    def set_default(m):
        d = m.default_device()
        m.set_default_device(m.cpu)
        s = m.default_stream(m.cpu)
        m.set_default_stream(s)
        m.synchronize()
        m.synchronize(s)
        m.set_default_device(d)
        return repr(m.default_device())

    both(set_default)


def test_clear_streams_in_a_fresh_process():
    """clear_streams drops the thread's streams (MLX then refuses work on them until it
    recreates them), so each framework runs it in a process of its own."""
    import subprocess
    import sys

    code = (
        "import {m} as m\n"
        "x = (m.array([1, 2]) + 1)\n"
        "m.eval(x)\n"
        "m.clear_streams()\n"
        "try:\n"
        "    print('after:', (m.array([1]) + 1).tolist())\n"
        "except Exception as e:\n"
        "    print('after:', type(e).__name__)\n"
    )
    outs = [
        subprocess.run([sys.executable, "-c", code.format(m=name)], capture_output=True, text=True, timeout=120).stdout
        for name in ("mlx.core", "oxmx.core")
    ]
    # documented difference (known.py "clear-streams"): MLX refuses further work on the
    # thread's default stream; oxmx recreates it
    assert outs[0] == "after: RuntimeError\n", outs
    assert outs[1] == "after: [2]\n", outs


def test_memory_semantics():
    def scenario(m):
        m.synchronize()
        m.clear_cache()
        base = m.get_active_memory()
        m.reset_peak_memory()
        x = m.ones((1 << 20,), dtype=m.float32)
        m.eval(x)
        grew = m.get_active_memory() - base >= 4 << 20
        peak = m.get_peak_memory() >= 4 << 20
        del x
        m.synchronize()
        shrank = m.get_active_memory() - base < 4 << 20
        cached = m.get_cache_memory() >= 0
        m.clear_cache()
        cleared = m.get_cache_memory() == 0
        old = m.set_cache_limit(1 << 30)
        restored = m.set_cache_limit(old) == 1 << 30
        lim = m.get_memory_limit() > 0
        old_mem = m.set_memory_limit(1 << 40)
        m.set_memory_limit(old_mem)
        wired = m.set_wired_limit(0)
        return grew, peak, shrank, cached, cleared, restored, lim, wired

    both(scenario)
    both(lambda m: m.get_array_buffer_size(m.zeros((3, 4), m.float32)) if hasattr(m, "get_array_buffer_size") else 48)


def test_eval_and_async_eval_take_trees():
    def scenario(m):
        a = m.array([1.0, 2.0])
        tree = {"a": a * 2, "b": [a + 1, (a - 1,)]}
        r = m.eval(tree)
        r2 = m.async_eval(tree)
        m.eval()
        return r, r2, tree["b"][1][0].tolist()

    both(scenario)
    both(lambda m: m.eval(1))


def test_printoptions():
    def scenario(m):
        x = m.array([1 / 3, 2 / 3])
        before = repr(x)
        with m.printoptions(precision=3):
            inside = repr(x)
        m.set_printoptions(precision=2)
        set_ = repr(x)
        p = m.get_printoptions().precision
        m.set_printoptions(precision=-1)
        return before, inside, set_, p, repr(x)

    both(scenario)


def test_compile_matches_eager():
    def scenario(m):
        f = m.compile(lambda x, y: m.exp(x) * y + 1)
        x = m.array([0.5, -1.0, 2.0])
        r1 = f(x, x).tolist()
        m.disable_compile()
        r2 = f(x, x).tolist()
        m.enable_compile()
        return np.round(r1, 5).tolist(), np.round(r2, 5).tolist()

    both(scenario)


@pytest.mark.parametrize("m", FW)
def test_export_to_dot_writes_a_graph(m, tmp_path):
    # the drawings differ in layout; both name the inputs and draw every op of the graph
    x, y = m.array([1.0, 2.0]), m.array([3.0, 4.0])
    path = tmp_path / "g.dot"
    m.export_to_dot(str(path), m.exp(x) * y + 1, x=x, y=y)
    text = path.read_text()
    assert text.startswith("digraph {") and text.rstrip().endswith("}")
    low = text.lower()
    for op in ("exp", "multiply", "add"):
        assert op in low
    assert '"x"' in text or "x\\n" in text


def test_checkpoint_gradient():
    def scenario(m):
        f = m.checkpoint(lambda x: m.sum(m.sin(x) * x))
        return np.round(np.array(m.grad(f)(m.array([0.5, 1.0]))), 5).tolist()

    both(scenario)


@pytest.mark.parametrize("fmt", ["npy", "npz", "npz_c", "safetensors", "gguf"])
def test_files_cross_load(tmp_path, fmt):
    """A file written by one framework loads in the other with the same arrays."""
    arrays = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, -2], np.int32)}
    for writer, reader in ((mlx, ox), (ox, mlx)):
        data = {k: writer.array(v) for k, v in arrays.items()}
        path = str(tmp_path / f"{writer.__name__.split('.')[0]}_{fmt}")
        if fmt == "npy":
            path += ".npy"
            writer.save(path, data["w"])
            got = {"w": reader.load(path)}
        elif fmt in ("npz", "npz_c"):
            path += ".npz"
            (writer.savez if fmt == "npz" else writer.savez_compressed)(path, **data)
            got = reader.load(path)
        elif fmt == "safetensors":
            path += ".safetensors"
            writer.save_safetensors(path, data, {"k": "v"})
            got, meta = reader.load(path, return_metadata=True)
            assert meta == {"k": "v"}
        else:
            path += ".gguf"
            writer.save_gguf(path, data, {})
            got = reader.load(path)
        for k, v in got.items():
            np.testing.assert_array_equal(np.array(v), arrays[k])
            assert str(v.dtype).split(".")[-1] == str(arrays[k].dtype)
        assert os.path.exists(path)


def test_from_dlpack():
    both(lambda m: m.from_dlpack(np.arange(4, dtype=np.float32)).tolist())


@pytest.mark.parametrize("m", FW)
def test_export_import_round_trip(m, tmp_path):
    # the file formats differ (each framework reads its own); the behaviour is MLX's
    p = str(tmp_path / "f.mlxfn")

    def f(x, *, y):
        return m.exp(x) * y + 1, m.sum(x, axis=0)

    x, y = m.array([[1.0, 2.0], [3.0, 4.0]]), m.array([0.5, 2.0])
    m.export_function(p, f, x, y=y, metadata="cfg")
    g, meta = m.import_function(p, return_metadata=True)
    out = g(x, y=y)
    assert isinstance(out, tuple) and len(out) == 2 and meta == "cfg"
    np.testing.assert_allclose(np.array(out[0]), np.exp([[1, 2], [3, 4]]) * [0.5, 2.0] + 1, rtol=1e-6)
    np.testing.assert_allclose(np.array(g((x,), {"y": y})[1]), [4.0, 6.0])
    with pytest.raises(ValueError):
        g(m.array([1.0]), y=y)
    with pytest.raises(ValueError):
        m.export_function(p, f, x, 2.0)
    with m.exporter(p, lambda *a: sum(a)) as ex:
        ex(m.array(1))
        ex(m.array(1), m.array(2))
    h = m.import_function(p)
    assert h(m.array(3), m.array(4))[0].item() == 7 and h(m.array(3))[0].item() == 3
    # shapeless: an elementwise graph serves other sizes of the same rank
    m.export_function(p, lambda x: m.exp(x) * 2, m.zeros((2, 3)), shapeless=True)
    assert m.import_function(p)(m.ones((4, 5)))[0].shape == (4, 5)
