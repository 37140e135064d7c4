"""Shared helpers for the oxmx engine test-suite (NumPy is the reference).

Imported by the test modules as ``from oxmx_testing import ...`` (pytest puts
``tests/`` on ``sys.path`` because it has no ``__init__.py``).
"""

import ml_dtypes
import numpy as np

import oxmx.core as mx

# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------
ALL_DTYPES = [
    "bool_",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "complex64",
]
UINT_DTYPES = ["uint8", "uint16", "uint32", "uint64"]
SINT_DTYPES = ["int8", "int16", "int32", "int64"]
INT_DTYPES = UINT_DTYPES + SINT_DTYPES
FLOAT_DTYPES = ["float16", "bfloat16", "float32", "float64"]
REAL_DTYPES = INT_DTYPES + FLOAT_DTYPES
NUMERIC_DTYPES = REAL_DTYPES + ["complex64"]
LOW_PRECISION = ("float16", "bfloat16")


def mxdt(name):
    """The oxmx Dtype object called ``name`` ("bool_", "float32", ...)."""
    return getattr(mx, name)


def npdt(name):
    """The NumPy dtype that matches the oxmx dtype ``name``."""
    if name == "bfloat16":
        return np.dtype(ml_dtypes.bfloat16)
    if name == "bool_":
        return np.dtype(np.bool_)
    return np.dtype(name)


def dtype_name(dt):
    """Short name of an oxmx Dtype ("float32"); bool comes back as "bool_"."""
    for n in ALL_DTYPES:
        if dt == mxdt(n):
            return n
    raise AssertionError(f"unknown dtype {dt!r}")


def is_float(name):
    return name in FLOAT_DTYPES


def is_int(name):
    return name in INT_DTYPES


# --------------------------------------------------------------------------
# conversions
# --------------------------------------------------------------------------
def to_mx(a, name=None):
    """NumPy data -> oxmx array of dtype ``name`` (default: the array's own)."""
    a = np.asarray(a)
    if name is None:
        if a.dtype == ml_dtypes.bfloat16:
            name = "bfloat16"
        else:
            name = dtype_name_from_np(a.dtype)
    if name == "bfloat16":
        # NumPy has no native bfloat16: go through float32 (exact for bf16 values).
        out = mx.array(a.astype(np.float32)).astype(mx.bfloat16)
    else:
        out = mx.array(a.astype(npdt(name)), dtype=mxdt(name))
    assert out.dtype == mxdt(name)
    return out


def dtype_name_from_np(dt):
    dt = np.dtype(dt)
    if dt == np.bool_:
        return "bool_"
    if dt == ml_dtypes.bfloat16:
        return "bfloat16"
    return dt.name


def to_np(x):
    """oxmx array -> NumPy array with the matching dtype (bfloat16 via ml_dtypes)."""
    if x.dtype == mx.bfloat16:
        return np.array(x.astype(mx.float32)).astype(ml_dtypes.bfloat16)
    return np.array(x)


def as_ref(a):
    """A NumPy array in a dtype NumPy can compute in (bf16/f16 -> float32)."""
    a = np.asarray(a)
    if a.dtype in (np.float16, ml_dtypes.bfloat16):
        return a.astype(np.float32)
    return a


# --------------------------------------------------------------------------
# tolerances and comparison
# --------------------------------------------------------------------------
TOLS = {
    "float16": (2e-3, 2e-3),
    "bfloat16": (1.6e-2, 1.6e-2),
    "float32": (2e-5, 1e-6),
    "float64": (1e-10, 1e-12),
    "complex64": (2e-5, 1e-6),
}


def tols(name, scale=1.0):
    rtol, atol = TOLS.get(name, (0.0, 0.0))
    return rtol * scale, atol * scale


def assert_array(x, ref, dtype=None, rtol=None, atol=None, equal_nan=True, scale=1.0):
    """Assert that oxmx array ``x`` equals NumPy ``ref`` in shape, dtype and value.

    ``dtype``: expected oxmx dtype name (default: no dtype check).
    Floating results are compared with tolerances chosen for the result dtype.
    """
    assert isinstance(x, mx.array), f"expected an oxmx array, got {type(x)}"
    ref = np.asarray(ref)
    if dtype is not None:
        assert x.dtype == mxdt(dtype), f"dtype {x.dtype} != expected {dtype}"
    assert tuple(x.shape) == tuple(ref.shape), f"shape {x.shape} != expected {ref.shape}"
    got = to_np(x)
    name = dtype_name(x.dtype)
    if name in TOLS or rtol is not None or atol is not None:
        r, a = tols(name, scale)
        if rtol is not None:
            r = rtol
        if atol is not None:
            a = atol
        if name == "complex64" or np.iscomplexobj(ref):
            np.testing.assert_allclose(
                got.astype(np.complex128), ref.astype(np.complex128), rtol=r, atol=a, equal_nan=equal_nan
            )
        else:
            np.testing.assert_allclose(
                as_ref(got).astype(np.float64),
                as_ref(ref).astype(np.float64),
                rtol=r,
                atol=a,
                equal_nan=equal_nan,
            )
    else:
        np.testing.assert_array_equal(got, ref.astype(got.dtype) if ref.dtype != got.dtype else ref)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def rand(rng, shape, name, low=-5.0, high=5.0):
    """Random NumPy data of oxmx dtype ``name``, already rounded to that dtype."""
    shape = tuple(shape)
    if name == "bool_":
        return rng.random(shape) < 0.5
    if name in INT_DTYPES:
        info = np.iinfo(np.dtype(name))
        lo = max(int(np.floor(low)), info.min)
        hi = min(int(np.ceil(high)), info.max)
        if hi <= lo:
            hi = lo + 1
        return rng.integers(lo, hi, size=shape, endpoint=True).astype(name)
    if name == "complex64":
        re = rng.uniform(low, high, size=shape)
        im = rng.uniform(low, high, size=shape)
        return (re + 1j * im).astype(np.complex64)
    return rng.uniform(low, high, size=shape).astype(npdt(name))


def pair(rng, shape, name, low=-5.0, high=5.0):
    """Random data and the matching oxmx array."""
    a = rand(rng, shape, name, low, high)
    return a, to_mx(a, name)


VIEW_KINDS = ["contig", "T", "step", "neg"]


def view_of(a, name, kind):
    """An oxmx array holding the values of NumPy ``a`` as dtype ``name``, laid out as:

    contig: a fresh contiguous array; T: a transposed view (last two axes, ndim >= 2);
    step: a strided slice ``[..., ::2]`` of a larger array; neg: a reversed view ``[..., ::-1]``.
    """
    a = np.asarray(a)
    if kind == "contig" or a.ndim == 0:
        return to_mx(a, name)
    if kind == "T":
        if a.ndim < 2:
            return to_mx(a, name)
        base = to_mx(np.ascontiguousarray(np.swapaxes(a, -1, -2)), name)
        return mx.swapaxes(base, -1, -2)
    if kind == "step":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), dtype=a.dtype)
        big[..., ::2] = a
        return to_mx(big, name)[..., ::2]
    if kind == "neg":
        base = to_mx(np.ascontiguousarray(a[..., ::-1]), name)
        return base[..., ::-1]
    raise ValueError(kind)


# ------------------------------------------------------------------ fusion tests
def same_bits(a, b, nan_sign=True):
    """Bitwise equality of two arrays and of their dtypes (fused against unfused): NaN
    payloads too unless `nan_sign` is False (the CPU's vectorized add or multiply of two
    NaNs may return either one: LLVM treats those operations as commutative)."""
    assert a.dtype == b.dtype and a.shape == b.shape
    if a.dtype == mx.bfloat16:  # NumPy has no bfloat16; widening is exact
        a, b = a.astype(mx.float32), b.astype(mx.float32)
    an, bn = np.array(a), np.array(b)
    if not nan_sign and an.dtype.kind == "f":
        assert np.array_equal(np.isnan(an), np.isnan(bn))
        an, bn = np.where(np.isnan(an), 0, an), np.where(np.isnan(bn), 0, bn)
    assert an.tobytes() == bn.tobytes(), f"max diff {np.max(np.abs(an.astype(np.float64) - bn.astype(np.float64)))}"


def alternating_chain(x, n):
    """n steps alternating sin and a multiply-add by scalars: a long elementwise chain."""
    for i in range(n):
        x = x * 1.001 + 0.001 if i % 2 else mx.sin(x)
    return x


def sines_accumulated(*xs):
    """acc * 0.5 + sin(x) over many inputs: a chain that reads a new array at each step."""
    acc = xs[0]
    for x in xs[1:]:
        acc = acc * 0.5 + mx.sin(x)
    return acc


def run_program(ops, unary, a, b, c):
    """A random elementwise program: each (name, k) of `ops` applies mx.<name> to an
    earlier value (unary names, listed in `unary`) or to the last value and an earlier
    one. Returns every value, inputs first."""
    vals = [a, b, c]
    for name, k in ops:
        fn = getattr(mx, name)
        if name in unary:
            vals.append(fn(vals[-1 - k % len(vals)]))
        else:
            vals.append(fn(vals[-1], vals[k % len(vals)]))
    return vals
