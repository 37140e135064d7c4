"""Helpers shared by the model-file tests (test_io*.py)."""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx.core import _io
from oxmx_testing import ALL_DTYPES, mxdt, npdt, rand, to_np

# dtypes each format stores
GGUF_DTYPES = ["int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
SHAPES = [(), (0,), (7,), (2, 0, 3), (3, 4, 5)]


def raw(x):
    """Bytes of an oxmx array, bit for bit (bfloat16 through a uint16 view)."""
    if x.dtype == mx.bfloat16:
        return np.array(x.view(mx.uint16)).tobytes()
    return np.array(x).tobytes()


def np_raw(a):
    return np.ascontiguousarray(a).tobytes()


def special(rng, shape, name):
    """Random data with NaN, ±inf, -0.0 and extremes mixed in for floats."""
    a = np.array(rand(rng, shape, name))
    if a.size and name in ("float16", "bfloat16", "float32", "float64"):
        flat = a.reshape(-1)
        vals = [np.nan, np.inf, -np.inf, -0.0, 65504.0 if name == "float16" else 1e30]
        for i, v in enumerate(vals[: flat.size]):
            flat[i] = np.array(v).astype(npdt(name))
    if a.size and name in ("int64", "uint64", "int32", "uint32"):
        info = np.iinfo(np.dtype(name))
        flat = a.reshape(-1)
        flat[0] = info.max
        if flat.size > 1:
            flat[1] = info.min
    return a


@pytest.fixture
def no_fsync(monkeypatch):
    """Round-trip tests write hundreds of tiny files: skip fsync (atomicity unchanged)."""
    monkeypatch.setattr(_io, "_SYNC", False)


def same(x, ref, name):
    assert x.dtype == mxdt(name), (x.dtype, name)
    assert tuple(x.shape) == tuple(np.shape(ref))
    assert raw(x) == np_raw(np.asarray(ref)), name


__all__ = ["ALL_DTYPES", "GGUF_DTYPES", "SHAPES", "raw", "np_raw", "special", "no_fsync", "same", "to_np", "npdt"]
