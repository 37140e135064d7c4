"""Reductions (sum prod max min mean var std all any argmax argmin logsumexp softmax
count_nonzero) and scans, against NumPy: axes, keepdims, ddof, dtypes, views, empty and
0-d inputs, NaN/Inf."""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    LOW_PRECISION,
    REAL_DTYPES,
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

AXES = [None, 0, 1, -1, (0, 2), (1, 2), (0, 1, 2), (-1, 0)]


def _sum_dtype(d):
    """MLX's accumulator dtype for sum/prod."""
    if d in ("bool_", "int8", "int16"):
        return "int32"
    if d in ("uint8", "uint16"):
        return "uint32"
    return d


def _mean_dtype(d):
    return d if d in FLOAT_DTYPES or d == "complex64" else "float32"


def _np_axis(axis):
    return tuple(axis) if isinstance(axis, list) else axis


def _logsumexp_ref(a, axis=None, keepdims=False):
    a = np.asarray(a, np.float64)
    with np.errstate(all="ignore"):
        m = np.max(a, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        s = np.sum(np.exp(a - m), axis=axis, keepdims=True)
        out = np.log(s) + m
    if not keepdims:
        out = np.squeeze(out, axis=axis) if axis is not None else out.reshape(())
    return out


def _softmax_ref(a, axis=None):
    a = np.asarray(a, np.float64)
    with np.errstate(all="ignore"):
        m = np.max(a, axis=axis, keepdims=True)
        e = np.exp(a - m)
        return e / np.sum(e, axis=axis, keepdims=True)


def _tol_for_sum(x_ref, d, n):
    """Absolute tolerance for a sum of n terms of dtype d."""
    eps = {"float16": 1e-3, "bfloat16": 8e-3, "float32": 1.2e-7, "float64": 2.3e-16, "complex64": 1.2e-7}[d]
    return eps * (n + 4) * max(1.0, float(np.max(np.abs(x_ref)))) if np.size(x_ref) else eps


# ------------------------------------------------------------------ sum / prod
@pytest.mark.parametrize("d", ALL_DTYPES)
@pytest.mark.parametrize("axis", [None, 1, (0, 2)], ids=str)
def test_sum_dtypes(rng, d, axis):
    a = rand(rng, (3, 4, 5), d, -4, 4)
    y = mx.sum(to_mx(a, d), axis=axis)
    sd = _sum_dtype(d)
    if d in FLOAT_DTYPES or d == "complex64":
        ref = np.sum(as_ref(a).astype(np.complex128 if d == "complex64" else np.float64), axis=axis)
        n = a.size if axis is None else np.prod([a.shape[i] for i in np.atleast_1d(axis)])
        assert_array(y, ref, sd, atol=_tol_for_sum(as_ref(a), d, n), rtol=0)
    else:
        assert_array(y, np.sum(a, axis=axis, dtype=npdt(sd)), sd)


@pytest.mark.parametrize("d", [n for n in ALL_DTYPES if n != "complex64"])
@pytest.mark.parametrize("axis", [None, 0, -1], ids=str)
def test_prod_dtypes(rng, d, axis):
    lo, hi = (-2, 2) if d not in ("uint8", "uint16", "uint32", "uint64") else (0, 2)
    a = rand(rng, (3, 2, 4), d, lo, hi)
    if d in FLOAT_DTYPES:
        a = rand(rng, (3, 2, 4), d, 0.5, 1.5)
    y = mx.prod(to_mx(a, d), axis=axis)
    sd = _sum_dtype(d)
    if d in FLOAT_DTYPES:
        ref = np.prod(as_ref(a).astype(np.float64), axis=axis)
        assert_array(y, ref, sd, scale=8)
    else:
        assert_array(y, np.prod(a, axis=axis, dtype=npdt(sd)), sd)


@pytest.mark.parametrize("op", ["sum", "prod", "max", "min", "mean", "all", "any", "var", "std", "logsumexp"])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_reduce_axes_keepdims(rng, op, axis, keepdims):
    a = rng.uniform(0.5, 1.5, (3, 4, 5)).astype(np.float32)
    if op in ("all", "any"):
        a = (rng.random((3, 4, 5)) < 0.7).astype(np.float32)
    x = mx.array(a)
    y = getattr(mx, op)(x, axis=axis, keepdims=keepdims)
    a64 = a.astype(np.float64)
    if op == "logsumexp":
        ref = _logsumexp_ref(a64, axis=axis, keepdims=keepdims)
    else:
        ref = getattr(np, op)(a64, axis=axis, keepdims=keepdims)
    exp_dt = "bool_" if op in ("all", "any") else "float32"
    assert_array(y, ref, exp_dt, rtol=1e-5, atol=1e-5) if exp_dt == "float32" else assert_array(y, ref, exp_dt)


@pytest.mark.parametrize("op", ["sum", "max", "min", "mean", "prod", "all", "any", "var", "std", "logsumexp", "argmax", "argmin", "count_nonzero"])
def test_reduce_method_and_function_agree(rng, op):
    a = rng.uniform(0.5, 1.5, (4, 6)).astype(np.float32)
    x = mx.array(a)
    f = getattr(mx, op)(x, axis=1)
    if hasattr(x, op):
        m = getattr(x, op)(axis=1)
        np.testing.assert_array_equal(np.array(f), np.array(m))
    assert f.shape == (4,)


# ------------------------------------------------------------------ max / min
@pytest.mark.parametrize("d", [n for n in ALL_DTYPES if n != "complex64"])
@pytest.mark.parametrize("op", ["max", "min"])
def test_max_min_dtypes(rng, d, op):
    a = rand(rng, (4, 7), d, -100, 100)
    x = to_mx(a, d)
    assert_array(getattr(mx, op)(x), getattr(np, op)(a), d)
    assert_array(getattr(mx, op)(x, axis=0), getattr(np, op)(a, axis=0), d)
    assert_array(getattr(mx, op)(x, axis=1, keepdims=True), getattr(np, op)(a, axis=1, keepdims=True), d)


def test_max_min_extremes():
    for d in INT_DTYPES:
        info = np.iinfo(np.dtype(d))
        a = np.array([info.min, 0, info.max, 1], dtype=d)
        assert mx.max(to_mx(a, d)).item() == info.max
        assert mx.min(to_mx(a, d)).item() == info.min


# ------------------------------------------------------------------ mean / var / std
@pytest.mark.parametrize("d", REAL_DTYPES + ["bool_"])
def test_mean_dtypes(rng, d):
    a = rand(rng, (5, 6), d, -20, 20)
    y = mx.mean(to_mx(a, d), axis=1)
    ref = np.mean(as_ref(a).astype(np.float64), axis=1)
    assert_array(y, ref, _mean_dtype(d), scale=4)


def test_mean_int_no_overflow():
    a = np.array([2**31 - 1, 2**31 - 1, 2**31 - 3], np.int32)
    y = mx.mean(mx.array(a))
    assert y.dtype == mx.float32
    np.testing.assert_allclose(y.item(), np.mean(a.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("op", ["var", "std"])
@pytest.mark.parametrize("d", ["float32", "float64", "float16", "bfloat16", "int32", "uint8"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_var_std(rng, op, ddof, d, axis):
    a = rand(rng, (6, 5), d, -10, 10) if d not in ("uint8",) else rand(rng, (6, 5), d, 0, 20)
    y = getattr(mx, op)(to_mx(a, d), axis=axis, ddof=ddof)
    ref = getattr(np, op)(as_ref(a).astype(np.float64), axis=axis, ddof=ddof)
    assert_array(y, ref, _mean_dtype(d), scale=8)


@pytest.mark.parametrize("ddof", [3, 5])
def test_var_ddof_too_large_nonfinite(ddof):
    y = mx.var(mx.array([1.0, 2.0, 3.0]), ddof=ddof)
    v = y.item()
    assert not np.isfinite(v) or v < 0  # inf / nan as NumPy (which warns), never a crash


def test_var_large_offset_stable():
    # catastrophic cancellation check: var of (1e4 + small noise) in float32
    rng = np.random.default_rng(0)
    a = (1e4 + rng.standard_normal(1000)).astype(np.float32)
    np.testing.assert_allclose(mx.var(mx.array(a)).item(), np.var(a.astype(np.float64)), rtol=2e-2)


# ------------------------------------------------------------------ all / any / count_nonzero
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_all_any_dtypes(rng, d):
    a = rand(rng, (4, 5), d, -1, 1)
    x = to_mx(a, d)
    for op in ("all", "any"):
        assert_array(getattr(mx, op)(x), getattr(np, op)(a), "bool_")
        assert_array(getattr(mx, op)(x, axis=1), getattr(np, op)(a, axis=1), "bool_")
        assert_array(getattr(mx, op)(x, axis=0, keepdims=True), getattr(np, op)(a, axis=0, keepdims=True), "bool_")


@pytest.mark.parametrize("d", ALL_DTYPES)
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_count_nonzero(rng, d, axis):
    a = rand(rng, (4, 5), d, -1, 1)
    y = mx.count_nonzero(to_mx(a, d), axis=axis)
    ref = np.count_nonzero(a, axis=axis)
    assert tuple(y.shape) == np.shape(ref)
    np.testing.assert_array_equal(np.array(y), ref)
    y2 = mx.count_nonzero(to_mx(a, d), axis=axis, keepdims=True)
    np.testing.assert_array_equal(np.array(y2), np.count_nonzero(a, axis=axis, keepdims=True))


# ------------------------------------------------------------------ argmax / argmin
@pytest.mark.parametrize("d", [n for n in ALL_DTYPES if n != "complex64"])
@pytest.mark.parametrize("op", ["argmax", "argmin"])
def test_argmax_argmin(rng, d, op):
    a = rand(rng, (5, 7), d, -3, 3)  # small range: plenty of ties, first index wins
    x = to_mx(a, d)
    ref_all = getattr(np, op)(as_ref(a))
    y = getattr(mx, op)(x)
    assert y.shape == () and y.item() == ref_all
    for axis in (0, 1, -1):
        y = getattr(mx, op)(x, axis=axis)
        np.testing.assert_array_equal(np.array(y), getattr(np, op)(as_ref(a), axis=axis))
        yk = getattr(mx, op)(x, axis=axis, keepdims=True)
        assert yk.shape == getattr(np, op)(as_ref(a), axis=axis, keepdims=True).shape


def test_argmax_dtype_and_keepdims_none():
    x = mx.ones((2, 3))
    assert mx.argmax(x).dtype == mx.uint32
    assert mx.argmax(x, keepdims=True).shape == (1, 1)


# ------------------------------------------------------------------ logsumexp / softmax
@pytest.mark.parametrize("d", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)], ids=str)
def test_logsumexp(rng, d, axis):
    a = rand(rng, (4, 6), d, -30, 30)
    y = mx.logsumexp(to_mx(a, d), axis=axis)
    assert_array(y, _logsumexp_ref(as_ref(a), axis=axis), d, scale=4)


def test_logsumexp_large_values_stable():
    a = np.array([1000.0, 1000.0, -1000.0], np.float32)
    np.testing.assert_allclose(mx.logsumexp(mx.array(a)).item(), 1000 + np.log(2), rtol=1e-6)


@pytest.mark.parametrize("d", FLOAT_DTYPES)
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("precise", [False, True])
def test_softmax(rng, d, axis, precise):
    a = rand(rng, (4, 6), d, -10, 10)
    y = mx.softmax(to_mx(a, d), axis=axis, precise=precise)
    assert_array(y, _softmax_ref(as_ref(a), axis=axis), d, scale=4)


def test_softmax_int_input_is_float():
    y = mx.softmax(mx.array([1, 2, 3]))
    assert y.dtype == mx.float32
    assert_array(y, _softmax_ref(np.array([1, 2, 3])), "float32")


def test_softmax_large_logits_stable():
    a = np.array([[1000.0, 1001.0, 999.0], [-1e4, 0.0, 1e4]], np.float32)
    assert_array(mx.softmax(mx.array(a), axis=-1), _softmax_ref(a, axis=-1), "float32")


# ------------------------------------------------------------------ NaN / Inf through every reduction
NAN_INF_CASES = {
    "nan": np.array([[1.0, np.nan, 3.0], [4.0, 5.0, 6.0]], np.float32),
    "inf": np.array([[1.0, np.inf, 3.0], [-np.inf, 5.0, 6.0]], np.float32),
    "inf-inf": np.array([[np.inf, -np.inf, 3.0], [np.inf, np.inf, 6.0]], np.float32),
    "allnan": np.array([[np.nan, np.nan], [np.nan, 1.0]], np.float32),
    "neginf": np.array([[-np.inf, -np.inf], [-np.inf, 0.0]], np.float32),
}


def _ref_reduce(op, a, axis):
    with np.errstate(all="ignore"):
        if op == "logsumexp":
            return _logsumexp_ref(a, axis=axis)
        if op == "softmax":
            return _softmax_ref(a, axis=axis)
        if op == "count_nonzero":
            return np.count_nonzero(a, axis=axis)
        return getattr(np, op)(a.astype(np.float64), axis=axis)


@pytest.mark.parametrize("case", list(NAN_INF_CASES))
@pytest.mark.parametrize("op", ["sum", "prod", "max", "min", "mean", "var", "std", "all", "any", "argmax", "argmin", "logsumexp", "softmax", "count_nonzero"])
@pytest.mark.parametrize("axis", [None, 1], ids=str)
def test_nan_inf_reductions(case, op, axis):
    a = NAN_INF_CASES[case]
    y = getattr(mx, op)(mx.array(a), axis=axis)
    ref = np.asarray(_ref_reduce(op, a, axis))
    got = np.array(y)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    if op in ("argmax", "argmin", "all", "any", "count_nonzero"):
        np.testing.assert_array_equal(got, ref)
    else:
        np.testing.assert_allclose(got.astype(np.float64), ref.astype(np.float64), rtol=1e-5, atol=1e-6, equal_nan=True)


# ------------------------------------------------------------------ empty and 0-d
@pytest.mark.parametrize("op,ref", [("sum", 0.0), ("prod", 1.0), ("all", True), ("any", False), ("count_nonzero", 0)])
def test_empty_reductions_identity(op, ref):
    y = getattr(mx, op)(mx.zeros((0,)))
    assert y.shape == ()
    assert y.item() == ref
    y2 = getattr(mx, op)(mx.zeros((0, 3)), axis=0)
    assert y2.shape == (3,)
    assert np.array(y2).tolist() == [ref] * 3


@pytest.mark.parametrize("op", ["mean", "var", "std"])
def test_empty_mean_is_nan(op):
    y = getattr(mx, op)(mx.zeros((0,)))
    assert y.shape == () and np.isnan(y.item())


@pytest.mark.parametrize("op", ["max", "min", "argmax", "argmin"])
def test_empty_max_raises(op):
    with pytest.raises(ValueError):
        mx.eval(getattr(mx, op)(mx.zeros((0,))))
    with pytest.raises(ValueError):
        mx.eval(getattr(mx, op)(mx.zeros((3, 0)), axis=1))


def test_empty_logsumexp():
    try:
        v = mx.logsumexp(mx.zeros((0,))).item()
    except ValueError:
        return  # refusing an empty reduction is acceptable (MLX does)
    assert v == -np.inf  # log(sum of nothing) = log(0)


@pytest.mark.parametrize("op", ["sum", "prod", "max", "min", "mean", "var", "std", "all", "any", "logsumexp", "softmax", "count_nonzero"])
def test_reduce_over_nonempty_axis_of_empty(op):
    # reducing the non-empty axis of a (0, 3) array gives an empty result, no error;
    # logsumexp refuses every empty input, as MLX's does
    if op == "logsumexp":
        with pytest.raises(ValueError, match="empty"):
            mx.logsumexp(mx.zeros((0, 3)), axis=1)
        return
    y = getattr(mx, op)(mx.zeros((0, 3)), axis=1)
    assert y.shape == ((0, 3) if op == "softmax" else (0,))
    mx.eval(y)


@pytest.mark.parametrize("op", ["sum", "prod", "max", "min", "mean", "var", "std", "all", "any", "argmax", "argmin", "logsumexp", "softmax", "count_nonzero"])
def test_zero_d_reductions(op):
    x = mx.array(2.5)
    y = getattr(mx, op)(x)
    ref = np.asarray(_ref_reduce(op, np.array(2.5, np.float32), None))
    assert y.shape == ()
    np.testing.assert_allclose(np.array(y).astype(np.float64), ref.astype(np.float64), rtol=1e-6)


@pytest.mark.parametrize("op", ["sum", "max", "mean", "argmax", "softmax", "logsumexp", "var", "all"])
def test_reduce_bad_axis(op):
    with pytest.raises(IndexError) as ei:
        mx.eval(getattr(mx, op)(mx.zeros((2, 3)), axis=2))
    assert isinstance(ei.value, ValueError), "axis errors must be both ValueError and IndexError"
    with pytest.raises(IndexError):
        mx.eval(getattr(mx, op)(mx.zeros((2, 3)), axis=-3))
    with pytest.raises(IndexError):
        mx.eval(getattr(mx, op)(mx.array(1.0), axis=0))


def test_reduce_duplicate_axes():
    with pytest.raises(ValueError):
        mx.sum(mx.ones((2, 3)), axis=(0, 0))
    with pytest.raises(ValueError):
        mx.sum(mx.ones((2, 3)), axis=(1, -1))


def test_reduce_empty_axis_list_is_identity():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert_array(mx.sum(mx.array(a), axis=[]), a, "float32")


# ------------------------------------------------------------------ non-contiguous inputs
@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("op", ["sum", "max", "mean", "argmax", "var", "logsumexp", "softmax", "prod", "all"])
@pytest.mark.parametrize("axis", [None, 0, 1], ids=str)
def test_reduce_views(rng, op, kind, axis):
    a = rng.uniform(0.5, 1.5, (6, 5)).astype(np.float32)
    x = view_of(a, "float32", kind)
    y = getattr(mx, op)(x, axis=axis)
    ref = np.asarray(_ref_reduce(op, a, axis))
    np.testing.assert_allclose(np.array(y).astype(np.float64), ref.astype(np.float64), rtol=1e-5, atol=1e-6)


def test_reduce_broadcast_view(rng):
    a = rng.standard_normal((1, 5)).astype(np.float32)
    x = mx.broadcast_to(mx.array(a), (7, 5))
    np.testing.assert_allclose(np.array(mx.sum(x, axis=0)), 7 * a[0], rtol=1e-5)
    np.testing.assert_allclose(np.array(mx.max(x, axis=1)), np.full(7, a.max()), rtol=1e-6)


# ------------------------------------------------------------------ larger and random shapes
@pytest.mark.parametrize("seed", range(6))
def test_random_shapes_sum_max(seed):
    rng = np.random.default_rng(seed)
    ndim = rng.integers(0, 5)
    shape = tuple(int(s) for s in rng.integers(0, 5, size=ndim))
    a = rng.standard_normal(shape).astype(np.float32)
    x = mx.array(a)
    axes = [ax for ax in range(ndim) if rng.random() < 0.5]
    axis = tuple(axes) if axes else None
    np.testing.assert_allclose(np.array(mx.sum(x, axis=axis)), np.sum(a, axis=axis, dtype=np.float64), rtol=1e-4, atol=1e-4)
    if a.size and (axis is None or all(a.shape[i] > 0 for i in axis)):
        np.testing.assert_array_equal(np.array(mx.max(x, axis=axis)), np.max(a, axis=axis))


def test_large_sum_accuracy():
    rng = np.random.default_rng(1)
    a = rng.uniform(0, 1, 1_000_003).astype(np.float32)
    np.testing.assert_allclose(mx.sum(mx.array(a)).item(), np.sum(a, dtype=np.float64), rtol=5e-5)
    np.testing.assert_allclose(mx.mean(mx.array(a)).item(), np.mean(a, dtype=np.float64), rtol=5e-5)


def test_int_sum_wraps_like_numpy():
    a = np.full(10, 2**30, np.int32)
    assert mx.sum(mx.array(a)).item() == int(np.sum(a, dtype=np.int32))


def test_minmax():
    a = np.array([[3, -1, 7], [0, 9, 2]], np.int32)
    lo, hi = mx.minmax(mx.array(a), axis=1)
    assert_array(lo, a.min(axis=1), "int32")
    assert_array(hi, a.max(axis=1), "int32")


# ------------------------------------------------------------------ scans
SCANS = {
    "cumsum": np.cumsum,
    "cumprod": np.cumprod,
    "cummax": np.maximum.accumulate,
    "cummin": np.minimum.accumulate,
}


def _scan_ref(op, a, axis, reverse, inclusive):
    if op == "logcumsumexp":
        fn = lambda v, axis: np.logaddexp.accumulate(v, axis=axis)  # noqa: E731
    else:
        fn = SCANS[op]
    x = np.flip(a, axis) if reverse else a
    r = fn(x, axis=axis)
    if not inclusive:
        ident = {"cumsum": 0, "cumprod": 1, "cummax": -np.inf, "cummin": np.inf, "logcumsumexp": -np.inf}[op]
        r = np.concatenate([np.full_like(np.take(r, [0], axis=axis), ident), np.delete(r, -1, axis=axis)], axis=axis)
    return np.flip(r, axis) if reverse else r


@pytest.mark.parametrize("op", list(SCANS) + ["logcumsumexp"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("inclusive", [True, False])
def test_scans(rng, op, axis, reverse, inclusive):
    a = rng.uniform(0.5, 1.5, (4, 5)).astype(np.float64)
    y = getattr(mx, op)(mx.array(a.astype(np.float32)), axis=axis, reverse=reverse, inclusive=inclusive)
    ref = _scan_ref(op, a.astype(np.float32).astype(np.float64), axis, reverse, inclusive)
    assert_array(y, ref, "float32", rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", list(SCANS))
def test_scans_flatten_when_no_axis(rng, op):
    a = rng.integers(-3, 4, size=(3, 4)).astype(np.int32)
    y = getattr(mx, op)(mx.array(a))
    assert y.shape == (12,)
    np.testing.assert_array_equal(np.array(y), SCANS[op](a.reshape(-1)))


@pytest.mark.parametrize("d", ["int8", "uint8", "int32", "int64", "float16", "bfloat16", "float64", "bool_"])
def test_cumsum_dtypes(rng, d):
    a = rand(rng, (3, 5), d, -3, 3)
    y = mx.cumsum(to_mx(a, d), axis=1)
    sd = "int32" if d == "bool_" else d  # scans keep the dtype (bool counts in int32)
    ref = np.cumsum(as_ref(a).astype(np.float64) if d in FLOAT_DTYPES else a.astype(npdt(sd)), axis=1, dtype=None if d in FLOAT_DTYPES else npdt(sd))
    assert_array(y, ref, sd, scale=4)


def test_scan_empty_and_method():
    assert mx.cumsum(mx.zeros((0, 3)), axis=0).shape == (0, 3)
    x = mx.array([[1, 2], [3, 4]])
    assert x.cumsum(axis=0).tolist() == [[1, 2], [4, 6]]
    assert x.cumprod(axis=1).tolist() == [[1, 2], [3, 12]]


def test_scan_nan_inf():
    a = np.array([1.0, np.nan, 2.0, np.inf, -np.inf], np.float32)
    np.testing.assert_array_equal(np.isnan(np.array(mx.cumsum(mx.array(a)))), np.isnan(np.cumsum(a)))
    np.testing.assert_array_equal(np.isnan(np.array(mx.cummax(mx.array(a)))), np.isnan(np.maximum.accumulate(a)))


def test_scan_views(rng):
    a = rng.standard_normal((5, 6)).astype(np.float32)
    x = view_of(a, "float32", "T")
    np.testing.assert_allclose(np.array(mx.cumsum(x, axis=1)), np.cumsum(a, axis=1), rtol=1e-5, atol=1e-5)
    x = view_of(a, "float32", "neg")
    np.testing.assert_allclose(np.array(mx.cumsum(x, axis=1)), np.cumsum(a, axis=1), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ property-based: random shapes / axes
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

HYP_OPS = ["sum", "prod", "max", "min", "mean", "var", "std", "all", "any", "logsumexp", "count_nonzero", "argmax", "argmin"]


@given(
    op=st.sampled_from(HYP_OPS),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    data=st.data(),
    keepdims=st.booleans(),
    kind=st.sampled_from(VIEW_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_hypothesis_reductions(op, shape, data, keepdims, kind, seed):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.5, 1.5, size=shape).astype(np.float32)
    nd = len(shape)
    if op in ("argmax", "argmin"):
        axis = data.draw(st.one_of(st.none(), st.integers(-nd, nd - 1))) if nd else None
    else:
        axes = data.draw(st.lists(st.integers(0, max(nd - 1, 0)), unique=True, max_size=nd)) if nd else []
        axis = tuple(axes) if axes and data.draw(st.booleans()) else (axes[0] if len(axes) == 1 else None)
    x = view_of(a, "float32", kind) if nd >= 1 and a.size else mx.array(a)
    red_size = a.size if axis is None else int(np.prod([shape[i] for i in np.atleast_1d(axis)]))
    if op in ("max", "min", "argmax", "argmin") and red_size == 0:
        with pytest.raises(ValueError):
            mx.eval(getattr(mx, op)(x, axis=axis, keepdims=keepdims))
        return
    y = getattr(mx, op)(x, axis=axis, keepdims=keepdims)
    with np.errstate(all="ignore"):
        if op == "logsumexp":
            if red_size == 0:
                return  # either -inf or a clear error (see test_empty_logsumexp)
            ref = _logsumexp_ref(a, axis=axis, keepdims=keepdims)
        elif op == "count_nonzero":
            ref = np.count_nonzero(a, axis=axis, keepdims=keepdims)
        else:
            ref = getattr(np, op)(a.astype(np.float64), axis=axis, keepdims=keepdims)
    ref = np.asarray(ref)
    assert tuple(y.shape) == ref.shape
    np.testing.assert_allclose(np.array(y).astype(np.float64), ref.astype(np.float64), rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
@pytest.mark.parametrize("reverse", [False, True])
def test_exclusive_max_min_scans_start_at_dtype_bounds(dtype, reverse):
    # MLX: an exclusive cummax/cummin starts from the dtype's lowest/highest value
    info = np.iinfo(dtype)
    a = np.array([5, 3, 7, 1], dtype=dtype)
    for op, start, acc in (("cummax", info.min, np.maximum), ("cummin", info.max, np.minimum)):
        y = np.array(getattr(mx, op)(mx.array(a), reverse=reverse, inclusive=False))
        b = a[::-1] if reverse else a
        ref = np.concatenate([[start], acc.accumulate(b)[:-1]]).astype(dtype)
        np.testing.assert_array_equal(y, ref[::-1] if reverse else ref)
