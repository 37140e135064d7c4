"""The 86 elementwise ops of API.md, on every dtype they accept, against NumPy.

Result-dtype rules follow MLX: "math" ops (exp, sin, ...) map bool/integer inputs to
float32 and keep floating/complex dtypes; sign-preserving ops (abs, floor, square, ...)
keep the input dtype; predicates return bool.
"""

import math

import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    LOW_PRECISION,
    NUMERIC_DTYPES,
    REAL_DTYPES,
    SINT_DTYPES,
    UINT_DTYPES,
    VIEW_KINDS,
    as_ref,
    assert_array,
    mxdt,
    npdt,
    rand,
    to_mx,
    to_np,
    view_of,
)

# ------------------------------------------------------------------ references
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _erfinv(y):
    """float64 inverse error function by Newton iteration on math.erf."""
    y = np.asarray(y, np.float64)
    out = np.full(y.shape, np.nan)
    ok = np.abs(y) < 1
    yy = y[ok]
    # Giles' initial guess, then Newton steps
    w = -np.log((1.0 - yy) * (1.0 + yy))
    x = np.sign(yy) * np.sqrt(np.maximum(w, 0)) * 0.9 + yy * 0.1
    for _ in range(60):
        err = _erf(x) - yy
        x = x - err / (2.0 / math.sqrt(math.pi) * np.exp(-x * x))
    out[ok] = x
    out[y == 1] = np.inf
    out[y == -1] = -np.inf
    return out


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _rsqrt(x):
    return 1.0 / np.sqrt(x)


# name -> (reference, (low, high) input domain, kind, complex ok?)
#   kind "math": bool/int -> float32, floats/complex keep;  "same": keeps dtype;
#   "pred": -> bool
UNARY = {
    "abs": (np.abs, (-5, 5), "same", True),
    "acos": (np.arccos, (-0.95, 0.95), "math", True),
    "arccos": (np.arccos, (-0.95, 0.95), "math", True),
    "acosh": (np.arccosh, (1.05, 6), "math", True),
    "arccosh": (np.arccosh, (1.05, 6), "math", True),
    "asin": (np.arcsin, (-0.95, 0.95), "math", True),
    "arcsin": (np.arcsin, (-0.95, 0.95), "math", True),
    "asinh": (np.arcsinh, (-5, 5), "math", True),
    "arcsinh": (np.arcsinh, (-5, 5), "math", True),
    "atan": (np.arctan, (-5, 5), "math", True),
    "arctan": (np.arctan, (-5, 5), "math", True),
    "atanh": (np.arctanh, (-0.9, 0.9), "math", True),
    "arctanh": (np.arctanh, (-0.9, 0.9), "math", True),
    "ceil": (np.ceil, (-5, 5), "same", False),
    "floor": (np.floor, (-5, 5), "same", False),
    "trunc": (np.trunc, (-5, 5), "same", False),
    "round": (np.round, (-5, 5), "same", True),
    "conj": (np.conj, (-5, 5), "same", True),
    "conjugate": (np.conjugate, (-5, 5), "same", True),
    "cos": (np.cos, (-5, 5), "math", True),
    "cosh": (np.cosh, (-4, 4), "math", True),
    "sin": (np.sin, (-5, 5), "math", True),
    "sinh": (np.sinh, (-4, 4), "math", True),
    "tan": (np.tan, (-1.3, 1.3), "math", True),
    "tanh": (np.tanh, (-5, 5), "math", True),
    "degrees": (np.degrees, (-5, 5), "math", False),
    "radians": (np.radians, (-5, 5), "math", False),
    "erf": (_erf, (-3, 3), "math", False),
    "erfinv": (_erfinv, (-0.95, 0.95), "math", False),
    "exp": (np.exp, (-5, 5), "math", True),
    "expm1": (np.expm1, (-5, 5), "math", False),
    "log": (np.log, (0.1, 10), "math", True),
    "log10": (np.log10, (0.1, 10), "math", True),
    "log2": (np.log2, (0.1, 10), "math", True),
    "log1p": (np.log1p, (-0.9, 10), "math", True),
    "sqrt": (np.sqrt, (0.1, 10), "math", True),
    "rsqrt": (_rsqrt, (0.1, 10), "math", True),
    "reciprocal": (np.reciprocal, (0.25, 5), "math", True),
    "sigmoid": (_sigmoid, (-6, 6), "math", False),
    "negative": (np.negative, (-5, 5), "same", True),
    "positive": (np.positive, (-5, 5), "same", True),
    "sign": (np.sign, (-5, 5), "same", False),
    "square": (np.square, (-5, 5), "same", True),
    "isfinite": (np.isfinite, (-5, 5), "pred", True),
    "isinf": (np.isinf, (-5, 5), "pred", True),
    "isnan": (np.isnan, (-5, 5), "pred", True),
    "isneginf": (np.isneginf, (-5, 5), "pred", False),
    "isposinf": (np.isposinf, (-5, 5), "pred", False),
    "logical_not": (np.logical_not, (-2, 2), "pred", True),
}


def _unary_dtypes(name):
    _, _, kind, cplx = UNARY[name]
    out = list(REAL_DTYPES) + ["bool_"]
    if name == "negative":
        out.remove("bool_")  # negating a bool is an error (as NumPy)
    if cplx:
        out.append("complex64")
    return out


def _unary_cases():
    for name in UNARY:
        for d in _unary_dtypes(name):
            yield pytest.param(name, d, id=f"{name}-{d}")


def _int_domain(lo, hi, d):
    """Integer inputs inside a float domain; unsigned types start at 0."""
    lo_i, hi_i = math.ceil(lo), math.floor(hi)
    if d in UINT_DTYPES:
        lo_i = max(lo_i, 0)
    if hi_i < lo_i:
        return None
    return lo_i, hi_i


def _unary_input(rng, name, d, shape):
    ref, (lo, hi), kind, _ = UNARY[name]
    if d == "bool_":
        a = rng.random(shape) < 0.5
        if name in ("acosh", "arccosh"):
            a = np.ones(shape, bool)  # only 1 is in the domain
        if name in ("log", "log10", "log2", "rsqrt", "reciprocal"):
            a = np.ones(shape, bool)
        return a
    if d in INT_DTYPES:
        dom = _int_domain(lo, hi, d)
        assert dom is not None
        return rng.integers(dom[0], dom[1], size=shape, endpoint=True).astype(d)
    return rand(rng, shape, d, lo, hi)


def _expected_dtype(name, d):
    kind = UNARY[name][2]
    if kind == "pred":
        return "bool_"
    if kind == "math":
        return d if d in FLOAT_DTYPES or d == "complex64" else "float32"
    if name == "abs" and d == "complex64":
        return "float32"
    return d


def _ref_compute(fn, a, d, kind="same"):
    """Run the NumPy reference in a precision at least as good as the input's."""
    if kind == "math" and (d in INT_DTYPES or d == "bool_"):
        x = a.astype(np.float64)
    elif d == "bool_":
        x = a.astype(np.int8)  # NumPy refuses some bool ufuncs (sign, positive)
    elif d in LOW_PRECISION:
        x = as_ref(a).astype(np.float64)
    elif d == "float32":
        x = a.astype(np.float64)
    elif d == "complex64":
        x = a.astype(np.complex128)
    else:
        x = a
    with np.errstate(all="ignore"):
        return fn(x)


@pytest.mark.parametrize("name,d", list(_unary_cases()))
def test_unary(rng, name, d):
    fn = UNARY[name][0]
    a = _unary_input(rng, name, d, (3, 7))
    x = to_mx(a, d)
    y = getattr(mx, name)(x)
    exp_dt = _expected_dtype(name, d)
    ref = _ref_compute(fn, a, d, UNARY[name][2])
    if exp_dt == "bool_" or exp_dt in INT_DTYPES:
        assert_array(y, np.asarray(ref).astype(npdt(exp_dt)), exp_dt)
    elif d == "float64":
        assert_array(y, np.asarray(ref), exp_dt, rtol=1e-10, atol=1e-12)
    else:
        # results of ops on low-precision inputs are rounded once to that dtype
        assert_array(y, np.asarray(ref), exp_dt, scale=4 if name in ("tan", "erfinv", "cosh", "sinh") else 2)


@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("name", ["exp", "abs", "sqrt", "negative", "floor", "isnan", "sigmoid"])
def test_unary_views(rng, name, kind):
    fn, (lo, hi), _, _ = UNARY[name]
    a = rand(rng, (4, 6), "float32", lo, hi)
    x = view_of(a, "float32", kind)
    y = getattr(mx, name)(x)
    assert_array(y, _ref_compute(fn, a, "float32"), _expected_dtype(name, "float32"))


@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (1,), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_shapes(rng, name, shape):
    fn, (lo, hi), _, _ = UNARY[name]
    a = rand(rng, shape, "float32", lo, hi)
    y = getattr(mx, name)(to_mx(a, "float32"))
    ref = np.asarray(_ref_compute(fn, a, "float32"))
    assert y.shape == ref.shape
    assert_array(y, ref, _expected_dtype(name, "float32"), scale=2)


SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, 1e-30, 1e30])


@pytest.mark.parametrize("d", ["float32", "float64", "float16"])
@pytest.mark.parametrize("name", [n for n in UNARY if n not in ("sign", "erfinv")])
def test_unary_special_values(name, d):
    """NaN, +-inf, signed zeros and extremes behave as in NumPy (IEEE)."""
    fn = UNARY[name][0]
    with np.errstate(over="ignore"):
        a = SPECIAL.astype(npdt(d))  # 1e30 -> inf in float16 on purpose
    y = getattr(mx, name)(to_mx(a, d))
    with np.errstate(all="ignore"):
        ref = np.asarray(fn(a.astype(np.float64))).astype(npdt(_expected_dtype(name, d)))
    got = to_np(y)
    assert got.shape == ref.shape
    if got.dtype == np.bool_:
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref), err_msg="NaN positions")
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(ref), err_msg="+inf positions")
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(ref), err_msg="-inf positions")
        fin = np.isfinite(ref)
        rt = 2e-3 if d == "float16" else 1e-5
        np.testing.assert_allclose(got[fin].astype(np.float64), ref[fin].astype(np.float64), rtol=rt, atol=rt)


def test_erfinv_edges():
    x = mx.erfinv(mx.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0]))
    got = np.array(x)
    np.testing.assert_allclose(got[:3], _erfinv([0.0, 0.5, -0.5]), rtol=1e-5, atol=1e-6)
    assert got[3] == np.inf and got[4] == -np.inf and np.isnan(got[5])


def test_sign_values():
    a = np.array([-3.5, -0.0, 0.0, 2.0, np.inf, -np.inf], np.float32)
    assert_array(mx.sign(mx.array(a)), np.sign(a), "float32")
    i = np.array([-7, 0, 9], np.int32)
    assert_array(mx.sign(mx.array(i)), np.sign(i), "int32")
    u = np.array([0, 3], np.uint8)
    assert_array(mx.sign(mx.array(u)), np.sign(u), "uint8")


def test_sign_complex():
    z = np.array([3 + 4j, 0j, -2j], np.complex64)
    assert_array(mx.sign(mx.array(z)), np.array([0.6 + 0.8j, 0, -1j]), "complex64")


def test_round_half_to_even():
    a = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.7, -3.7], np.float32)
    assert_array(mx.round(mx.array(a)), np.round(a), "float32")


@pytest.mark.parametrize("decimals", [-2, -1, 0, 1, 2, 3])
def test_round_decimals(rng, decimals):
    a = rng.uniform(-1000, 1000, size=20).astype(np.float32)
    np.testing.assert_allclose(np.array(mx.round(mx.array(a), decimals)), np.round(a.astype(np.float64), decimals), rtol=1e-5, atol=1e-4)
    i = rng.integers(-10000, 10000, size=20).astype(np.int32)
    if decimals < 0:
        got = mx.round(mx.array(i), decimals)
        assert got.dtype == mx.int32
        np.testing.assert_array_equal(np.array(got), np.round(i, decimals))


def test_abs_int_min_wraps():
    # |INT_MIN| does not fit: two's complement wrap, as NumPy
    x = mx.abs(mx.array([-128, -5, 7], dtype=mx.int8))
    assert x.tolist() == np.abs(np.array([-128, -5, 7], np.int8)).tolist()


@pytest.mark.parametrize("d", INT_DTYPES + ["bool_"])
def test_bitwise_invert(rng, d):
    a = rand(rng, (5, 3), d, -100, 100)
    assert_array(mx.bitwise_invert(to_mx(a, d)), np.invert(a), d)


@pytest.mark.parametrize("d", ["float16", "bfloat16", "float32", "float64", "complex64"])
def test_bitwise_invert_rejects_inexact(d):
    with pytest.raises((ValueError, TypeError)):
        mx.eval(mx.bitwise_invert(mx.zeros((2,), dtype=mxdt(d))))


@pytest.mark.parametrize("d", ["complex64"] + REAL_DTYPES + ["bool_"])
def test_real_imag(rng, d):
    a = rand(rng, (3, 4), d)
    x = to_mx(a, d)
    r, i = mx.real(x), mx.imag(x)
    if d == "complex64":
        assert_array(r, a.real, "float32")
        assert_array(i, a.imag, "float32")
    else:
        assert_array(r, a, d)
        assert_array(i, np.zeros_like(a), d)


# ------------------------------------------------------------------ nan_to_num
@pytest.mark.parametrize("d", FLOAT_DTYPES)
def test_nan_to_num_defaults(d):
    a = np.array([np.nan, np.inf, -np.inf, 1.5, -2.0], np.float64)
    y = mx.nan_to_num(to_mx(a, d))
    fi = np.finfo(np.float32) if d == "float32" else None
    if d == "bfloat16":
        import ml_dtypes

        big = float(ml_dtypes.finfo(ml_dtypes.bfloat16).max)
    else:
        big = float(np.finfo(npdt(d)).max)
    assert_array(y, np.array([0.0, big, -big, 1.5, -2.0]), d)
    del fi


@pytest.mark.parametrize("d", ["float32", "float16", "float64"])
def test_nan_to_num_custom(d):
    a = np.array([np.nan, np.inf, -np.inf, 3.0])
    y = mx.nan_to_num(to_mx(a, d), nan=-1.0, posinf=100.0, neginf=-100.0)
    assert_array(y, np.nan_to_num(a, nan=-1.0, posinf=100.0, neginf=-100.0), d)


@pytest.mark.parametrize("d", INT_DTYPES + ["bool_"])
def test_nan_to_num_ints_identity(rng, d):
    a = rand(rng, (6,), d)
    assert_array(mx.nan_to_num(to_mx(a, d)), a, d)


# ------------------------------------------------------------------ binary ops
def _floor_divide_ref(a, b):
    with np.errstate(all="ignore"):
        return np.floor_divide(a, b)


BINARY = {
    # name: (reference, allowed dtypes, result kind, domain a, domain b)
    "add": (np.add, "numeric", "same"),
    "subtract": (np.subtract, "numeric-nobool", "same"),
    "multiply": (np.multiply, "numeric", "same"),
    "divide": (np.true_divide, "numeric", "div"),
    "floor_divide": (_floor_divide_ref, "real-nobool", "same"),
    "remainder": (np.remainder, "real-nobool", "same"),
    "maximum": (np.maximum, "real", "same"),
    "minimum": (np.minimum, "real", "same"),
    "power": (np.power, "pow", "same"),
    "pow": (np.power, "pow", "same"),
    "arctan2": (np.arctan2, "real", "math"),
    "atan2": (np.arctan2, "real", "math"),
    "logaddexp": (np.logaddexp, "real", "math"),
    "equal": (np.equal, "all", "pred"),
    "not_equal": (np.not_equal, "all", "pred"),
    "greater": (np.greater, "real", "pred"),
    "greater_equal": (np.greater_equal, "real", "pred"),
    "less": (np.less, "real", "pred"),
    "less_equal": (np.less_equal, "real", "pred"),
    "logical_and": (np.logical_and, "all", "pred"),
    "logical_or": (np.logical_or, "all", "pred"),
    "logical_xor": (np.logical_xor, "all", "pred"),
    "bitwise_and": (np.bitwise_and, "intbool", "same"),
    "bitwise_or": (np.bitwise_or, "intbool", "same"),
    "bitwise_xor": (np.bitwise_xor, "intbool", "same"),
    "left_shift": (np.left_shift, "int", "same"),
    "bitwise_left_shift": (np.left_shift, "int", "same"),
    "right_shift": (np.right_shift, "int", "same"),
    "bitwise_right_shift": (np.right_shift, "int", "same"),
}

_SETS = {
    "numeric": ["bool_"] + REAL_DTYPES + ["complex64"],
    "numeric-nobool": REAL_DTYPES + ["complex64"],
    "real-nobool": REAL_DTYPES,
    "real": ["bool_"] + REAL_DTYPES,
    "pow": REAL_DTYPES + ["complex64"],
    "all": ALL_DTYPES,
    "intbool": ["bool_"] + INT_DTYPES,
    "int": INT_DTYPES,
}


def _binary_cases():
    for name, (_, dset, _) in BINARY.items():
        for d in _SETS[dset]:
            if name in ("maximum", "minimum", "arctan2", "atan2", "logaddexp") and d == "bool_":
                continue
            yield pytest.param(name, d, id=f"{name}-{d}")


def _binary_inputs(rng, name, d, shape_a, shape_b):
    if name in ("power", "pow"):
        if d in INT_DTYPES:
            a = rand(rng, shape_a, d, 0 if d in UINT_DTYPES else -4, 4)
            b = rng.integers(0, 4, size=shape_b).astype(d)
            return a, b
        a = rand(rng, shape_a, d, 0.2, 3)
        b = rand(rng, shape_b, d, -2, 2)
        return a, b
    if name in ("left_shift", "bitwise_left_shift", "right_shift", "bitwise_right_shift"):
        bits = np.dtype(d).itemsize * 8
        a = rand(rng, shape_a, d, -1000, 1000)
        b = rng.integers(0, bits, size=shape_b).astype(d)
        return a, b
    if name in ("divide", "floor_divide", "remainder"):
        a = rand(rng, shape_a, d, -50, 50)
        b = rand(rng, shape_b, d, -7, 7)
        if d in INT_DTYPES:
            b = np.where(b == 0, 1, b).astype(d)
        elif d == "complex64":
            b = np.where(np.abs(b) < 0.5, 1 + 1j, b).astype(d)
        elif d != "bool_":
            b = np.where(np.abs(as_ref(b)) < 0.5, 1.0, as_ref(b)).astype(npdt(d))
        else:
            b = np.ones(shape_b, bool)
        return a, b
    lo, hi = (-5, 5)
    a = rand(rng, shape_a, d, lo, hi)
    b = rand(rng, shape_b, d, lo, hi)
    if d not in ("bool_",) and np.prod(shape_a) > 0 and np.prod(shape_b) > 0 and shape_a == shape_b:
        # make some elements equal so comparisons see ties
        flat_b = b.reshape(-1)
        flat_b[::3] = a.reshape(-1)[::3]
    return a, b


def _binary_expected_dtype(name, d):
    kind = BINARY[name][2]
    if kind == "pred":
        return "bool_"
    if kind in ("div", "math"):
        return d if d in FLOAT_DTYPES or d == "complex64" else "float32"
    return d


def _binary_ref(name, a, b, d):
    fn = BINARY[name][0]
    if d in LOW_PRECISION or d == "float32" or (BINARY[name][2] in ("div", "math") and d != "complex64"):
        x, y = as_ref(a).astype(np.float64), as_ref(b).astype(np.float64)
    elif d == "complex64":
        x, y = a.astype(np.complex128), b.astype(np.complex128)
    elif d == "bool_" and name in ("add", "multiply", "divide"):
        x, y = a.astype(np.int64), b.astype(np.int64)
    else:
        x, y = a, b
    with np.errstate(all="ignore"):
        r = np.asarray(fn(x, y))
    exp = _binary_expected_dtype(name, d)
    if d == "bool_" and name in ("add", "multiply"):
        r = r.astype(bool)  # bool + bool stays bool (logical or / and), as NumPy
    if exp == "bool_" or exp in INT_DTYPES:
        r = r.astype(npdt(exp))
    return r, exp


@pytest.mark.parametrize("name,d", list(_binary_cases()))
def test_binary(rng, name, d):
    a, b = _binary_inputs(rng, name, d, (4, 5), (4, 5))
    y = getattr(mx, name)(to_mx(a, d), to_mx(b, d))
    ref, exp = _binary_ref(name, a, b, d)
    scale = 4 if name in ("power", "pow") else 2
    if d == "float64":
        assert_array(y, ref, exp, rtol=1e-10, atol=1e-12)
        return
    if name in ("floor_divide", "remainder") and d in LOW_PRECISION:
        # the rounding of a/b near an integer may legitimately differ by one step
        got = as_ref(to_np(y)).astype(np.float64)
        if name == "floor_divide":
            assert np.all(np.abs(got - ref) <= 1), (got, ref)
        else:
            bb = as_ref(b).astype(np.float64)
            ok = np.isclose(got, ref, rtol=2e-2, atol=2e-2) | np.isclose(np.abs(got - ref), np.abs(bb), rtol=2e-2)
            assert ok.all(), (got, ref)
        assert y.dtype == mxdt(d)
        return
    assert_array(y, ref, exp, scale=scale)


@pytest.mark.parametrize("name,d", list(_binary_cases()))
def test_binary_broadcast_every_dtype(rng, name, d):
    a, b = _binary_inputs(rng, name, d, (3, 1, 5), (4, 1))
    y = getattr(mx, name)(to_mx(a, d), to_mx(b, d))
    ref, exp = _binary_ref(name, a, b, d)
    assert tuple(y.shape) == (3, 4, 5)
    if name in ("floor_divide", "remainder") and d in LOW_PRECISION:
        assert y.dtype == mxdt(d)
        return
    if d == "float64":
        assert_array(y, ref, exp, rtol=1e-10, atol=1e-12)
    else:
        assert_array(y, ref, exp, scale=4)


BROADCAST_SHAPES = [
    ((3, 4), (4,)),
    ((2, 1, 4), (3, 1)),
    ((), (2, 3)),
    ((2, 3), ()),
    ((0, 3), (1, 3)),
    ((5, 1), (1, 0)),
    ((1,), (2, 3, 4)),
    ((2, 1, 3, 1), (1, 4, 1, 5)),
]


@pytest.mark.parametrize("shapes", BROADCAST_SHAPES, ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_broadcasting(rng, name, shapes):
    d = "int32" if _SETS[BINARY[name][1]][-1] in INT_DTYPES or BINARY[name][1] == "int" else "float32"
    a, b = _binary_inputs(rng, name, d, *shapes)
    y = getattr(mx, name)(to_mx(a, d), to_mx(b, d))
    ref, exp = _binary_ref(name, a, b, d)
    assert y.shape == np.broadcast_shapes(*shapes)
    assert_array(y, ref, exp, scale=4)


@pytest.mark.parametrize("ka", VIEW_KINDS)
@pytest.mark.parametrize("kb", ["contig", "T", "neg"])
@pytest.mark.parametrize("name", ["add", "multiply", "maximum", "less", "divide", "subtract"])
def test_binary_noncontiguous(rng, name, ka, kb):
    a = rand(rng, (5, 6), "float32")
    b = rand(rng, (5, 6), "float32", 0.5, 5)
    y = getattr(mx, name)(view_of(a, "float32", ka), view_of(b, "float32", kb))
    ref, exp = _binary_ref(name, a, b, "float32")
    assert_array(y, ref, exp)


def test_binary_broadcast_views(rng):
    a = rand(rng, (4, 1), "float32")
    b = rand(rng, (6, 4), "float32")
    x = mx.broadcast_to(to_mx(a, "float32"), (4, 6))
    y = mx.swapaxes(to_mx(b, "float32"), 0, 1)
    assert_array(x * y + 1, np.broadcast_to(a, (4, 6)) * b.T + 1, "float32")


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide", "maximum", "power", "equal", "logaddexp", "arctan2"])
def test_binary_mixed_dtypes_promote(rng, name):
    a = rand(rng, (3, 4), "int16", 1, 5)
    b = rand(rng, (3, 4), "float16", 0.5, 2)
    y = getattr(mx, name)(to_mx(a, "int16"), to_mx(b, "float16"))
    assert y.dtype == (mx.bool_ if name == "equal" else mx.float16)
    ref, _ = _binary_ref(name, a.astype(np.float16), b, "float16")
    assert_array(y, ref, scale=4)


def test_binary_nan_propagation():
    a = np.array([np.nan, 1.0, np.nan, -np.inf, np.inf], np.float32)
    b = np.array([1.0, np.nan, np.nan, np.inf, 2.0], np.float32)
    for name, fn in [("maximum", np.maximum), ("minimum", np.minimum), ("add", np.add), ("logaddexp", np.logaddexp)]:
        with np.errstate(all="ignore"):
            ref = fn(a, b)
        assert_array(getattr(mx, name)(mx.array(a), mx.array(b)), ref, "float32")


def test_float_division_special():
    a = np.array([1.0, -1.0, 0.0, np.inf, 7.5], np.float32)
    b = np.array([0.0, 0.0, 0.0, np.inf, -0.0], np.float32)
    with np.errstate(all="ignore"):
        assert_array(mx.divide(mx.array(a), mx.array(b)), a / b, "float32")
        assert_array(mx.floor_divide(mx.array(a), mx.array(b)), np.floor_divide(a, b), "float32")


def test_remainder_sign_follows_divisor():
    for d in ["int32", "float32", "int64", "float64"]:
        a = np.array([5, -5, 5, -5, 0, 7], npdt(d))
        b = np.array([3, 3, -3, -3, 4, 7], npdt(d))
        assert_array(mx.remainder(to_mx(a, d), to_mx(b, d)), np.remainder(a, b), d)
        assert_array(mx.floor_divide(to_mx(a, d), to_mx(b, d)), np.floor_divide(a, b), d)


@pytest.mark.parametrize("d", ["int8", "int32", "int64", "uint8", "float32", "float16", "float64"])
def test_divmod(rng, d):
    a = rand(rng, (3, 5), d, -40, 40)
    b = rand(rng, (3, 5), d, 1, 9)
    q, r = mx.divmod(to_mx(a, d), to_mx(b, d))
    rq, rr = np.divmod(as_ref(a).astype(np.float64) if d in LOW_PRECISION else a, as_ref(b).astype(np.float64) if d in LOW_PRECISION else b)
    assert_array(q, rq, d, atol=1.0 if d in LOW_PRECISION else None)
    if d not in LOW_PRECISION:
        assert_array(r, rr, d)


def test_integer_overflow_wraps():
    a = np.array([120, -120, 100], np.int8)
    b = np.array([10, -10, 100], np.int8)
    assert_array(mx.add(mx.array(a), mx.array(b)), a + b, "int8")
    assert_array(mx.multiply(mx.array(a), mx.array(b)), a * b, "int8")
    u = np.array([1, 2], np.uint8)
    v = np.array([3, 1], np.uint8)
    assert_array(mx.subtract(mx.array(u), mx.array(v)), u - v, "uint8")


def test_integer_power_negative_exponent_defined():
    # NumPy raises for int ** negative int; MLX/oxmx define a result. Require determinism.
    x = mx.array([2, 3, 1, -1], dtype=mx.int32)
    e = mx.array([-1, -2, -3, -3], dtype=mx.int32)
    r1 = mx.power(x, e).tolist()
    r2 = mx.power(x, e).tolist()
    assert r1 == r2 and len(r1) == 4
    assert all(isinstance(v, int) for v in r1)


@pytest.mark.parametrize("d", SINT_DTYPES + UINT_DTYPES)
def test_shifts_exact(rng, d):
    bits = np.dtype(d).itemsize * 8
    a = rand(rng, (50,), d, -(2**40), 2**40)
    s = rng.integers(0, bits, size=50).astype(d)
    assert_array(mx.left_shift(to_mx(a, d), to_mx(s, d)), np.left_shift(a, s), d)
    assert_array(mx.right_shift(to_mx(a, d), to_mx(s, d)), np.right_shift(a, s), d)


def test_python_operators_on_bits():
    a = np.array([0b1100, 0b1010, -1], np.int32)
    b = np.array([0b1010, 0b0110, 5], np.int32)
    x, y = mx.array(a), mx.array(b)
    assert_array(x & y, a & b, "int32")
    assert_array(x | y, a | b, "int32")
    assert_array(x ^ y, a ^ b, "int32")
    assert_array(~x, ~a, "int32")
    assert_array(x << 2, a << 2, "int32")
    assert_array(x >> 1, a >> 1, "int32")


# ------------------------------------------------------------------ where / clip / isclose
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_where_dtypes(rng, d):
    c = rng.random((3, 4)) < 0.5
    a = rand(rng, (3, 4), d)
    b = rand(rng, (3, 4), d)
    assert_array(mx.where(mx.array(c), to_mx(a, d), to_mx(b, d)), np.where(c, a, b), d)


@pytest.mark.parametrize("shapes", [((3, 1), (1, 4), ()), ((), (2, 3), (3,)), ((2, 3), (), ()), ((0, 3), (3,), (1, 3))], ids=str)
def test_where_broadcast(rng, shapes):
    c = rng.random(shapes[0]) < 0.5
    a = rng.standard_normal(shapes[1]).astype(np.float32)
    b = rng.standard_normal(shapes[2]).astype(np.float32)
    assert_array(mx.where(mx.array(c), mx.array(a), mx.array(b)), np.where(c, a, b), "float32")


def test_where_scalars_and_nonbool_condition():
    assert_array(mx.where(mx.array([True, False]), 1, 2.5), np.array([1, 2.5], np.float32), "float32")
    assert_array(mx.where(mx.array([1, 0, 3]), mx.array([1, 2, 3]), mx.array([4, 5, 6])), np.array([1, 5, 3], np.int32))
    assert_array(mx.where(True, mx.array([1, 2]), mx.array([3, 4])), np.array([1, 2], np.int32))


def test_where_mismatched_shapes():
    with pytest.raises(ValueError):
        mx.where(mx.array([True, False, True]), mx.zeros((2,)), mx.zeros((2,)))


@pytest.mark.parametrize("d", REAL_DTYPES)
def test_clip(rng, d):
    a = rand(rng, (4, 5), d, -20, 20)
    lo, hi = (0, 10) if d in UINT_DTYPES else (-5, 5)
    assert_array(mx.clip(to_mx(a, d), lo, hi), np.clip(as_ref(a), lo, hi).astype(npdt(d)), d)
    assert_array(mx.clip(to_mx(a, d), None, hi), np.clip(as_ref(a), None, hi).astype(npdt(d)), d)
    assert_array(mx.clip(to_mx(a, d), lo, None), np.clip(as_ref(a), lo, None).astype(npdt(d)), d)


def test_clip_arrays_broadcast(rng):
    a = rng.uniform(-10, 10, (3, 4)).astype(np.float32)
    lo = rng.uniform(-5, 0, (4,)).astype(np.float32)
    hi = rng.uniform(0, 5, (3, 1)).astype(np.float32)
    assert_array(mx.clip(mx.array(a), mx.array(lo), mx.array(hi)), np.clip(a, lo, hi), "float32")


def test_clip_both_none():
    with pytest.raises(ValueError):
        mx.clip(mx.array([1, 2]), None, None)


@pytest.mark.parametrize("d", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("equal_nan", [False, True])
def test_isclose(d, equal_nan):
    a = np.array([1.0, 1.0, np.nan, np.inf, -np.inf, 0.0, 1e-9, 100.0])
    b = np.array([1.0, 1.1, np.nan, np.inf, np.inf, 1e-9, 0.0, 100.0001])
    aq = to_np(to_mx(a, d)).astype(np.float64)
    bq = to_np(to_mx(b, d)).astype(np.float64)
    got = mx.isclose(to_mx(a, d), to_mx(b, d), equal_nan=equal_nan)
    assert_array(got, np.isclose(aq, bq, equal_nan=equal_nan), "bool_")
    got2 = mx.isclose(to_mx(a, d), to_mx(b, d), rtol=0.2, atol=0.0)
    assert_array(got2, np.isclose(aq, bq, rtol=0.2, atol=0.0), "bool_")


def test_isclose_broadcast_and_ints():
    a = np.array([[1, 2, 3]], np.int32)
    b = np.array([[1], [3]], np.int32)
    assert_array(mx.isclose(mx.array(a), mx.array(b)), np.isclose(a, b), "bool_")


# ------------------------------------------------------------------ empty / 0-d through everything
@pytest.mark.parametrize("shape", [(0,), (), (3, 0), (0, 0, 2)], ids=str)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_empty_and_scalar(name, shape):
    d = "int32" if BINARY[name][1] in ("int", "intbool") else "float32"
    a = np.ones(shape, npdt(d))
    b = np.ones(shape, npdt(d))
    y = getattr(mx, name)(to_mx(a, d), to_mx(b, d))
    ref, exp = _binary_ref(name, a, b, d)
    assert_array(y, ref, exp)


def test_chained_expression_matches_numpy(rng):
    a = rng.standard_normal((64, 33)).astype(np.float32)
    b = rng.standard_normal((33,)).astype(np.float32)
    x, y = mx.array(a), mx.array(b)
    out = mx.tanh(x * y + 1) / (1 + mx.exp(-x)) - mx.maximum(x, y) ** 2
    ref = np.tanh(a * b + 1) / (1 + np.exp(-a)) - np.maximum(a, b) ** 2
    assert_array(out, ref, "float32", scale=5)


# ------------------------------------------------------------------ property-based: random shapes, dtypes, views
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

HYP_BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "equal", "less", "logaddexp", "arctan2", "power", "floor_divide", "remainder"]
HYP_DTYPES = ["float32", "int32", "float16", "bfloat16", "int8", "uint8", "int64", "float64"]


def _hyp_view(a, d, kind):
    return view_of(a, d, kind) if a.ndim >= 1 and a.size > 0 else to_mx(a, d)


@given(
    name=st.sampled_from(HYP_BINARY),
    d=st.sampled_from(HYP_DTYPES),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, min_side=0, max_side=4),
    ka=st.sampled_from(VIEW_KINDS),
    kb=st.sampled_from(VIEW_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_binary_broadcast(name, d, shapes, ka, kb, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a, b = _binary_inputs(rng, name, d, sa, sb)
    x, y = _hyp_view(a, d, ka), _hyp_view(b, d, kb)
    got = getattr(mx, name)(x, y)
    ref, exp = _binary_ref(name, a, b, d)
    assert tuple(got.shape) == shapes.result_shape
    if name in ("floor_divide", "remainder") and d in LOW_PRECISION:
        assert got.dtype == mxdt(d)
        return
    if d == "float64":
        assert_array(got, ref, exp, rtol=1e-10, atol=1e-12)
    else:
        assert_array(got, ref, exp, scale=4)


HYP_UNARY = ["exp", "log", "sqrt", "abs", "negative", "sin", "tanh", "floor", "sigmoid", "square", "isnan", "erf", "rsqrt", "log1p"]


@given(
    name=st.sampled_from(HYP_UNARY),
    d=st.sampled_from(["float32", "float16", "bfloat16", "int32", "uint8", "float64"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    kind=st.sampled_from(VIEW_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_unary(name, d, shape, kind, seed):
    rng = np.random.default_rng(seed)
    a = _unary_input(rng, name, d, shape)
    y = getattr(mx, name)(_hyp_view(a, d, kind))
    ref = np.asarray(_ref_compute(UNARY[name][0], a, d, UNARY[name][2]))
    exp = _expected_dtype(name, d)
    if exp == "bool_" or exp in INT_DTYPES:
        assert_array(y, ref.astype(npdt(exp)), exp)
    elif d == "float64":
        assert_array(y, ref, exp, rtol=1e-10, atol=1e-12)
    else:
        assert_array(y, ref, exp, scale=2)


@pytest.mark.parametrize(
    "shape,view",
    [
        ((70000,), lambda a: a),  # one long row
        ((3, 50001), lambda a: a),  # few long rows: cut across rows and inside them
        ((400, 300), lambda a: a.T),  # transposed
        ((5, 40000), lambda a: a[:, ::-3]),  # reversed steps
        ((100003,), lambda a: a[::2]),
    ],
    ids=["long_row", "few_rows", "transposed", "reversed_steps", "every_other"],
)
def test_big_strided_and_broadcast_operands_split_across_threads(shape, view):
    # arrays above the parallel threshold (2^15 elements) whose layout is one or few long
    # rows: the work is cut by element count, across row boundaries and inside rows
    r = np.random.default_rng(sum(shape))
    an = r.standard_normal(shape).astype(np.float32)
    bn = r.standard_normal(shape).astype(np.float32)
    a, b = view(mx.array(an)), view(mx.array(bn))
    av, bv = view(an), view(bn)
    np.testing.assert_array_equal(np.array(a * 2), av * np.float32(2))
    np.testing.assert_array_equal(np.array(3 - a), np.float32(3) - av)
    np.testing.assert_array_equal(np.array(a + b), av + bv)
    np.testing.assert_array_equal(np.array(mx.abs(a)), np.abs(av))
    np.testing.assert_array_equal(np.array(mx.where(a > 0, a, b)), np.where(av > 0, av, bv))
    np.testing.assert_array_equal(np.array(mx.where(a > 0, 1.5, b)), np.where(av > 0, np.float32(1.5), bv))
    np.testing.assert_array_equal(np.array(a ** 2), (av.astype(np.float64) ** 2).astype(np.float32))
    np.testing.assert_array_equal(np.array(a ** 3), (av.astype(np.float64) ** 3).astype(np.float32))
    row = b.reshape(-1)[: av.shape[-1]] if av.ndim > 1 else b
    rown = np.array(row)
    np.testing.assert_array_equal(np.array(a * row), av * rown)  # a row broadcast down the rows


@pytest.mark.parametrize("d", ["float32", "float16", "bfloat16"])
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_squares_and_cubes_are_the_rounded_products(d):
    # x ** 2 and x ** 3 are products (float32 in float64, the half types in float32),
    # rounded once: the GPU's formulas. Each element follows its own exponent.
    r = np.random.default_rng(9)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e20, -1e-30, 3.0e3, 1.5, -7.25]
    xs = np.concatenate([r.standard_normal(5000) * 30, special]).astype(np.float32)
    x = mx.array(xs).astype(getattr(mx, d))
    xf = np.array(x.astype(mx.float32))  # the values x holds
    wide = np.float64 if d == "float32" else np.float32

    def want(e):
        w = xf.astype(wide) ** e if e == 2 else xf.astype(wide) * xf.astype(wide) * xf.astype(wide)
        return np.array(mx.array(w.astype(np.float32)).astype(getattr(mx, d)).astype(mx.float32))

    for e in (2, 3):
        got = np.array((x ** e).astype(mx.float32))
        np.testing.assert_array_equal(got, want(e))
    # mixed exponents: 2 and 3 follow the products, the others pow
    ys = np.resize(np.array([2.0, 3.0, 0.5, 2.0, -1.0, 3.0], np.float32), xs.shape)
    got = np.array((mx.abs(x) ** mx.array(ys).astype(getattr(mx, d))).astype(mx.float32))
    ax = np.abs(xf)
    for e in (2, 3):
        sel = ys == e
        w = ax.astype(wide) ** 2 if e == 2 else ax.astype(wide) * ax.astype(wide) * ax.astype(wide)
        w = np.array(mx.array(w.astype(np.float32)).astype(getattr(mx, d)).astype(mx.float32))
        np.testing.assert_array_equal(got[sel], w[sel])
    rest = ~np.isin(ys, [2.0, 3.0]) & np.isfinite(ax) & (ax > 1e-3) & (ax < 1e3)
    tol = {"float32": 1e-6, "float16": 1e-3, "bfloat16": 8e-3}[d]
    np.testing.assert_allclose(got[rest], ax[rest].astype(np.float64) ** ys[rest], rtol=tol)
