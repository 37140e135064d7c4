"""The 14 dtypes: promotion (incl. weak Python scalars), finfo, iinfo, result_type,
can_cast, issubdtype, isdtype and dtype categories."""

import itertools

import ml_dtypes
import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import ALL_DTYPES, FLOAT_DTYPES, INT_DTYPES, SINT_DTYPES, UINT_DTYPES, mxdt, npdt

BITS = {
    "bool_": 1,
    "uint8": 8,
    "uint16": 16,
    "uint32": 32,
    "uint64": 64,
    "int8": 8,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "float16": 16,
    "bfloat16": 16,
    "float32": 32,
    "float64": 64,
    "complex64": 64,
}


def promote(a, b):
    """MLX's promotion rule, written as a lattice (JAX-like; no float64 from ints)."""
    if a == b:
        return a
    if "complex64" in (a, b):
        return "complex64"
    fa, fb = a in FLOAT_DTYPES, b in FLOAT_DTYPES
    if fa and fb:
        if {a, b} == {"float16", "bfloat16"}:
            return "float32"
        return a if BITS[a] > BITS[b] else b
    if fa:
        return a  # any float wins over bool / integers, keeping its width
    if fb:
        return b
    if a == "bool_":
        return b
    if b == "bool_":
        return a
    ua, ub = a in UINT_DTYPES, b in UINT_DTYPES
    if ua == ub:
        return a if BITS[a] >= BITS[b] else b
    u, s = (a, b) if ua else (b, a)
    if BITS[s] > BITS[u]:
        return s
    if BITS[u] == 64:
        return "float32"  # uint64 with a signed int has no integer home
    return f"int{2 * BITS[u]}"


PAIRS = list(itertools.product(ALL_DTYPES, ALL_DTYPES))


def test_promotion_rule_examples():
    # a few illustrative fixed points of the table
    assert promote("int8", "uint8") == "int16"
    assert promote("float16", "bfloat16") == "float32"
    assert promote("int64", "float16") == "float16"
    assert promote("uint64", "int8") == "float32"
    assert promote("bool_", "float32") == "float32"


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_result_type_pairs(a, b):
    assert mx.result_type(mxdt(a), mxdt(b)) == mxdt(promote(a, b))


@pytest.mark.parametrize("a,b", PAIRS, ids=[f"{a}-{b}" for a, b in PAIRS])
def test_binary_op_promotion(a, b):
    x = mx.ones((2,), dtype=mxdt(a))
    y = mx.ones((2,), dtype=mxdt(b))
    exp = mxdt(promote(a, b))
    z = mx.add(x, y) if "bool_" not in (a, b) else mx.maximum(x, y)
    assert z.dtype == exp
    w = mx.multiply(x, y)
    assert w.dtype == exp
    mx.eval(z, w)
    np.testing.assert_allclose(np.array(w.astype(mx.float32)), [1.0, 1.0])


def test_result_type_with_arrays_and_many_args():
    assert mx.result_type(mx.array([1], dtype=mx.int8), mx.array([1], dtype=mx.uint8)) == mx.int16
    assert mx.result_type(mx.int8, mx.uint16, mx.float16) == mx.float16
    assert mx.result_type(mx.int8) == mx.int8
    assert mx.result_type(mx.array([1.0]), mx.int64) == mx.float32


# ------------------------------------------------------------------ weak Python scalars
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_weak_python_scalars(d):
    x = mx.ones((3,), dtype=mxdt(d))
    inexact = d in FLOAT_DTYPES or d == "complex64"
    assert (x * True).dtype == mxdt(d)
    assert (x * 2).dtype == (mx.int32 if d == "bool_" else mxdt(d))
    assert (x * 2.0).dtype == (mxdt(d) if inexact else mx.float32)
    assert (2.0 * x).dtype == (mxdt(d) if inexact else mx.float32)
    assert (x + 1j).dtype == mx.complex64


def test_weak_scalar_examples_from_issue():
    xf16 = mx.array([1.5, 2.0], dtype=mx.float16)
    y = xf16 * 2.0
    assert y.dtype == mx.float16 and y.tolist() == [3.0, 4.0]
    xi = mx.array([1, 2])
    z = xi + 2.5
    assert z.dtype == mx.float32 and z.tolist() == [3.5, 4.5]
    b = mx.array([1.0], dtype=mx.bfloat16) - 1
    assert b.dtype == mx.bfloat16
    u = mx.array([3], dtype=mx.uint8) * 2
    assert u.dtype == mx.uint8 and u.tolist() == [6]


def test_weak_scalar_in_functions():
    x = mx.array([1, 2], dtype=mx.int16)
    assert mx.add(x, 3).dtype == mx.int16
    assert mx.maximum(x, 1.5).dtype == mx.float32
    assert mx.where(mx.array([True, False]), x, 7).dtype == mx.int16
    h = mx.array([1.0], dtype=mx.float16)
    assert mx.minimum(h, 0.5).dtype == mx.float16
    assert mx.power(h, 2).dtype == mx.float16


def test_weak_int_scalar_out_of_range():
    x = mx.array([1], dtype=mx.int8)
    try:
        y = x + 1000
    except (ValueError, OverflowError):
        return  # refusing (as MLX) is acceptable
    assert y.dtype == mx.int8  # a weak scalar never widens the array dtype


def test_strong_zero_d_arrays_promote():
    # a 0-d *array* is not a weak scalar: it takes part in promotion
    x = mx.array([1, 2], dtype=mx.int8)
    assert (x + mx.array(1, dtype=mx.int32)).dtype == mx.int32
    h = mx.array([1.0], dtype=mx.float16)
    assert (h * mx.array(2.0)).dtype == mx.float32


# ------------------------------------------------------------------ finfo / iinfo
def _np_finfo(d):
    if d == "bfloat16":
        return ml_dtypes.finfo(ml_dtypes.bfloat16)
    return np.finfo(np.dtype(d))


@pytest.mark.parametrize("d", FLOAT_DTYPES)
def test_finfo(d):
    fi = mx.finfo(mxdt(d))
    ref = _np_finfo(d)
    assert fi.max == float(ref.max)
    assert fi.min == float(ref.min)
    assert fi.eps == float(ref.eps)
    assert fi.dtype == mxdt(d)
    assert fi.bits == ref.bits
    assert fi.smallest_normal == float(ref.smallest_normal)
    assert "finfo" in repr(fi)


def test_finfo_complex_and_errors():
    fc = mx.finfo(mx.complex64)
    assert fc.eps == float(np.finfo(np.float32).eps)
    assert fc.max == float(np.finfo(np.float32).max)
    for d in INT_DTYPES + ["bool_"]:
        with pytest.raises(ValueError):
            mx.finfo(mxdt(d))


@pytest.mark.parametrize("d", INT_DTYPES)
def test_iinfo(d):
    ii = mx.iinfo(mxdt(d))
    ref = np.iinfo(np.dtype(d))
    assert ii.min == int(ref.min) and ii.max == int(ref.max)
    assert ii.dtype == mxdt(d)
    assert "iinfo" in repr(ii)


def test_iinfo_errors():
    for d in FLOAT_DTYPES + ["complex64"]:
        with pytest.raises(ValueError):
            mx.iinfo(mxdt(d))


def test_finfo_values_are_representable():
    for d in FLOAT_DTYPES:
        fi = mx.finfo(mxdt(d))
        x = mx.array([fi.max, fi.min, fi.eps], dtype=mxdt(d))
        assert bool(mx.all(mx.isfinite(x)))
        assert (mx.array(1.0, dtype=mxdt(d)) + mx.array(fi.eps, dtype=mxdt(d))).item() > 1.0


# ------------------------------------------------------------------ can_cast
@pytest.mark.parametrize(
    "src,dst,ok",
    [
        ("int8", "int16", True),
        ("int16", "int64", True),
        ("uint8", "uint32", True),
        ("uint8", "int16", True),
        ("float16", "float32", True),
        ("float32", "float64", True),
        ("bool_", "int8", True),
        ("bool_", "float16", True),
        ("int8", "float16", True),
        ("float32", "complex64", True),
        ("int64", "int32", False),
        ("float32", "float16", False),
        ("uint8", "int8", False),
        ("int8", "uint8", False),
        ("float32", "int32", False),
        ("complex64", "float32", False),
        ("float16", "bfloat16", False),
        ("int16", "bool_", False),
    ],
)
def test_can_cast(src, dst, ok):
    assert mx.can_cast(mxdt(src), mxdt(dst)) is ok


@pytest.mark.parametrize("d", ALL_DTYPES)
def test_can_cast_to_self(d):
    assert mx.can_cast(mxdt(d), mxdt(d)) is True


# ------------------------------------------------------------------ categories
CATEGORIES = {
    "generic": ALL_DTYPES,
    "number": [d for d in ALL_DTYPES if d != "bool_"],
    "integer": INT_DTYPES,
    "signedinteger": SINT_DTYPES,
    "unsignedinteger": UINT_DTYPES,
    "inexact": FLOAT_DTYPES + ["complex64"],
    "floating": FLOAT_DTYPES,
    "complexfloating": ["complex64"],
}


@pytest.mark.parametrize("cat", list(CATEGORIES))
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_issubdtype_categories(cat, d):
    assert mx.issubdtype(mxdt(d), getattr(mx, cat)) is (d in CATEGORIES[cat])


def test_issubdtype_category_hierarchy():
    sub = {
        ("floating", "inexact"): True,
        ("complexfloating", "inexact"): True,
        ("inexact", "number"): True,
        ("integer", "number"): True,
        ("signedinteger", "integer"): True,
        ("unsignedinteger", "integer"): True,
        ("number", "generic"): True,
        ("integer", "floating"): False,
        ("floating", "integer"): False,
        ("number", "integer"): False,
    }
    for (a, b), ok in sub.items():
        assert mx.issubdtype(getattr(mx, a), getattr(mx, b)) is ok, (a, b)


def test_issubdtype_dtype_vs_dtype():
    assert mx.issubdtype(mx.float32, mx.float32) is True
    assert mx.issubdtype(mx.float32, mx.float64) is False
    assert mx.issubdtype(mx.int8, mx.int16) is False


ISDTYPE_KINDS = {
    "bool": ["bool_"],
    "signed integer": SINT_DTYPES,
    "unsigned integer": UINT_DTYPES,
    "integral": INT_DTYPES,
    "real floating": FLOAT_DTYPES,
    "complex floating": ["complex64"],
    "numeric": [d for d in ALL_DTYPES if d != "bool_"],
}


@pytest.mark.parametrize("kind", list(ISDTYPE_KINDS))
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_isdtype_kinds(kind, d):
    assert mx.isdtype(mxdt(d), kind) is (d in ISDTYPE_KINDS[kind])


def test_isdtype_tuple_and_dtype():
    assert mx.isdtype(mx.int8, (mx.int8, "real floating")) is True
    assert mx.isdtype(mx.float16, ("integral", "real floating")) is True
    assert mx.isdtype(mx.float16, mx.float32) is False
    assert mx.isdtype(mx.float16, mx.float16) is True
    with pytest.raises((ValueError, TypeError)):
        mx.isdtype(mx.float16, "not a kind")


def test_dtype_classes_exist():
    assert isinstance(mx.float32, mx.Dtype)
    for cat in ("generic", "number", "integer", "signedinteger", "unsignedinteger", "inexact", "floating", "complexfloating"):
        assert isinstance(getattr(mx, cat), mx.DtypeCategory), cat


@pytest.mark.parametrize("d", ALL_DTYPES)
def test_dtype_size_and_numpy_roundtrip(d):
    assert mxdt(d).size == npdt(d).itemsize
    if d not in ("bfloat16",):
        a = np.zeros(3, npdt(d))
        if d == "float64":
            # MLX maps NumPy float64 to float32 (see test_creation); only require a float
            assert mx.array(a).dtype in (mx.float32, mx.float64)
        else:
            assert mx.array(a).dtype == mxdt(d)
        assert np.array(mx.zeros((3,), dtype=mxdt(d))).dtype == npdt(d)


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_to_float32_every_bit_pattern(half):
    # Widening is exact; a NaN keeps its sign and payload and gets the quiet bit.
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    got = np.array(mx.view(mx.array(bits), getattr(mx, half)).astype(mx.float32)).view(np.uint32)
    ref_t = np.float16 if half == "float16" else ml_dtypes.bfloat16
    ref = bits.view(ref_t).astype(np.float32).view(np.uint32)
    nan = np.isnan(bits.view(ref_t).astype(np.float32))
    np.testing.assert_array_equal(got[~nan], ref[~nan])
    np.testing.assert_array_equal(got[nan], ref[nan] | 0x0040_0000)
    # a strided view converts the same
    got3 = np.array(mx.view(mx.array(bits), getattr(mx, half))[::3].astype(mx.float32)).view(np.uint32)
    np.testing.assert_array_equal(got3, got[::3])


def _float32_patterns():
    """Random float32 bit patterns plus the hard cases of rounding to a half type: exact
    ties (for float16 normals and bfloat16), the overflow edge, subnormal results,
    signed zeros, infinities and NaNs."""
    rng = np.random.default_rng(7)
    bits = [rng.integers(0, 1 << 32, 1 << 21, dtype=np.uint64).astype(np.uint32)]
    hi = rng.integers(0, 1 << 19, 1 << 16, dtype=np.uint64).astype(np.uint32) << 13
    bits += [hi | 0x1000, hi | 0x0FFF, hi | 0x1001]  # float16 ties and their neighbours
    hi = rng.integers(0, 1 << 16, 1 << 16, dtype=np.uint64).astype(np.uint32) << 16
    bits += [hi | 0x8000, hi | 0x7FFF, hi | 0x8001]  # bfloat16 ties and their neighbours
    edges = np.array([65504.0, 65519.99, 65520.0, 3.4028235e38, 6.1e-5, 5.96e-8, 2.98e-8, 2.99e-8,
                      1e-45, 0.0, np.inf, np.nan], dtype=np.float32)
    bits.append(edges.view(np.uint32))
    out = np.concatenate(bits)
    return np.concatenate([out, out ^ np.uint32(0x8000_0000)])  # both signs


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("stride", [1, 3])
def test_float32_to_half_rounds_to_nearest_even(half, stride):
    bits = _float32_patterns()
    x = bits.view(np.float32)
    got = np.array(mx.view(mx.array(x)[::stride].astype(getattr(mx, half)), mx.uint16))
    ref_t = np.float16 if half == "float16" else ml_dtypes.bfloat16
    with np.errstate(over="ignore", invalid="ignore"):
        ref = x[::stride].astype(ref_t).view(np.uint16)
    nan = np.isnan(x[::stride])
    np.testing.assert_array_equal(got[~nan], ref[~nan])
    if half == "bfloat16":
        assert (got[nan] == 0x7FC0).all()  # MLX's quiet NaN
    else:
        g = got[nan].view(np.float16)
        assert np.isnan(g).all()
        np.testing.assert_array_equal(np.signbit(g), np.signbit(x[::stride][nan]))
