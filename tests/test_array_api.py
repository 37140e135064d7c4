"""The Python surface of mx.array: properties, operators (reflected and in-place),
conversions (item, tolist, __array__, buffer protocol, DLPack), printing, pickle/copy,
weakref, and the Python protocol methods."""

import copy
import gc
import operator
import pickle
import weakref

import ml_dtypes
import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    assert_array,
    dtype_name,
    mxdt,
    npdt,
    rand,
    to_mx,
    to_np,
)

NON_BF16 = [d for d in ALL_DTYPES if d != "bfloat16"]


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("d", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 4)], ids=str)
def test_properties(d, shape):
    x = mx.zeros(shape, dtype=mxdt(d))
    ref = np.zeros(shape, npdt(d))
    assert x.shape == shape and isinstance(x.shape, tuple)
    assert x.ndim == ref.ndim
    assert x.size == ref.size
    assert x.itemsize == ref.itemsize
    assert x.nbytes == ref.nbytes
    assert x.dtype == mxdt(d)
    assert x.dtype.size == ref.itemsize


def test_real_imag_T_properties():
    z = np.array([[1 + 2j, 3 - 4j]], np.complex64)
    x = mx.array(z)
    assert_array(x.real, z.real, "float32")
    assert_array(x.imag, z.imag, "float32")
    assert_array(x.T, z.T, "complex64")
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    assert_array(mx.array(a).mT, np.swapaxes(a, -1, -2), "int32")


def test_dtype_objects():
    assert mx.float32 == mx.float32 and mx.float32 != mx.float16
    assert hash(mx.float32) == hash(mx.float32)
    assert "float32" in repr(mx.float32)
    assert {mx.int8: 1}[mx.int8] == 1
    for d in ALL_DTYPES:
        assert mxdt(d).size == npdt(d).itemsize


# ------------------------------------------------------------------ operators
ARITH = [
    ("add", operator.add, np.add),
    ("sub", operator.sub, np.subtract),
    ("mul", operator.mul, np.multiply),
    ("truediv", operator.truediv, np.true_divide),
    ("floordiv", operator.floordiv, np.floor_divide),
    ("mod", operator.mod, np.remainder),
    ("pow", operator.pow, np.power),
]


@pytest.mark.parametrize("name,op,npop", ARITH, ids=[a[0] for a in ARITH])
@pytest.mark.parametrize("d", ["float32", "int32", "float16", "int64", "uint8"])
def test_arith_operators(rng, name, op, npop, d):
    a = rand(rng, (3, 4), d, 1, 5)
    b = rand(rng, (3, 4), d, 1, 3)
    x, y = to_mx(a, d), to_mx(b, d)
    exp_d = "float32" if name == "truediv" and d in INT_DTYPES else d
    ref = npop(a.astype(np.float64), b.astype(np.float64))
    assert_array(op(x, y), ref, exp_d, scale=4)


@pytest.mark.parametrize("name,op,npop", ARITH, ids=[a[0] for a in ARITH])
def test_arith_with_python_scalars_and_reflected(name, op, npop):
    a = np.array([1.0, 2.0, 4.0], np.float32)
    x = mx.array(a)
    assert_array(op(x, 2), npop(a, np.float32(2)), "float32")
    assert_array(op(x, 2.5), npop(a, np.float32(2.5)), "float32")
    assert_array(op(3, x), npop(np.float32(3), a), "float32")
    assert_array(op(3.5, x), npop(np.float32(3.5), a), "float32")
    i = np.array([1, 2, 4], np.int32)
    xi = mx.array(i)
    exp = "float32" if name == "truediv" else "int32"
    assert_array(op(7, xi), npop(np.int32(7), i), exp)
    assert_array(op(xi, 3), npop(i, np.int32(3)), exp)


@pytest.mark.parametrize("name,op,npop", ARITH, ids=[a[0] for a in ARITH])
def test_arith_with_numpy_arrays(name, op, npop):
    a = np.array([1.0, 2.0, 4.0], np.float32)
    b = np.array([2.0, 3.0, 0.5], np.float32)
    got = op(mx.array(a), b)
    assert isinstance(got, mx.array)
    assert_array(got, npop(a, b), "float32")


INPLACE = [
    ("iadd", operator.iadd, np.add),
    ("isub", operator.isub, np.subtract),
    ("imul", operator.imul, np.multiply),
    ("itruediv", operator.itruediv, np.true_divide),
    ("ifloordiv", operator.ifloordiv, np.floor_divide),
    ("imod", operator.imod, np.remainder),
    ("ipow", operator.ipow, np.power),
    ("iand", operator.iand, np.bitwise_and),
    ("ior", operator.ior, np.bitwise_or),
    ("ixor", operator.ixor, np.bitwise_xor),
    ("ilshift", operator.ilshift, np.left_shift),
    ("irshift", operator.irshift, np.right_shift),
]


@pytest.mark.parametrize("name,op,npop", INPLACE, ids=[a[0] for a in INPLACE])
def test_inplace_operators(name, op, npop):
    if name in ("iand", "ior", "ixor", "ilshift", "irshift"):
        a = np.array([5, 12, 7], np.int32)
        b = np.array([3, 1, 2], np.int32)
    else:
        a = np.array([5.0, 12.0, 7.5], np.float32)
        b = np.array([2.0, 4.0, 1.5], np.float32)
    x = mx.array(a)
    alias = x
    before = x * 1  # a result computed earlier keeps its value
    x = op(x, mx.array(b))
    ref = npop(a, b)
    assert_array(x, ref, dtype_name_from(ref))
    assert x is alias, "in-place operators update the array object itself (MLX semantics)"
    assert_array(before, a)


def dtype_name_from(a):
    return {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32"}[a.dtype]


def test_inplace_with_scalar():
    x = mx.array([1.0, 2.0])
    x += 1
    x *= 2.0
    x -= mx.array([1.0, 1.0])
    x /= 2
    assert x.tolist() == [1.5, 2.5]


COMPARE = [
    (operator.eq, np.equal),
    (operator.ne, np.not_equal),
    (operator.lt, np.less),
    (operator.le, np.less_equal),
    (operator.gt, np.greater),
    (operator.ge, np.greater_equal),
]


@pytest.mark.parametrize("op,npop", COMPARE, ids=["eq", "ne", "lt", "le", "gt", "ge"])
def test_comparison_operators(op, npop):
    a = np.array([1, 2, 3, 4], np.int32)
    b = np.array([4, 2, 1, 4], np.int32)
    x, y = mx.array(a), mx.array(b)
    assert_array(op(x, y), npop(a, b), "bool_")
    assert_array(op(x, 2), npop(a, 2), "bool_")
    assert_array(op(2, x), npop(2, a), "bool_")
    assert_array(op(x, 2.5), npop(a, 2.5), "bool_")
    assert_array(op(mx.array(a[:, None]), y), npop(a[:, None], b), "bool_")


def test_unary_operators():
    a = np.array([-2, 0, 3], np.int32)
    x = mx.array(a)
    assert_array(-x, -a, "int32")
    assert_array(+x, +a, "int32")
    assert_array(abs(x), np.abs(a), "int32")
    assert_array(~x, ~a, "int32")
    assert_array(~mx.array([True, False]), np.array([False, True]), "bool_")


BITS = [
    (operator.and_, np.bitwise_and),
    (operator.or_, np.bitwise_or),
    (operator.xor, np.bitwise_xor),
    (operator.lshift, np.left_shift),
    (operator.rshift, np.right_shift),
]


@pytest.mark.parametrize("op,npop", BITS, ids=["and", "or", "xor", "lshift", "rshift"])
def test_bitwise_operators(op, npop):
    a = np.array([12, 10, 255, 1], np.int32)
    b = np.array([10, 6, 3, 4], np.int32)
    x = mx.array(a)
    assert_array(op(x, mx.array(b)), npop(a, b), "int32")
    assert_array(op(x, 3), npop(a, np.int32(3)), "int32")
    assert_array(op(3, x), npop(np.int32(3), a), "int32")
    if op not in (operator.lshift, operator.rshift):
        p, q = np.array([True, False, True]), np.array([True, True, False])
        assert_array(op(mx.array(p), mx.array(q)), npop(p, q), "bool_")


def test_matmul_operator():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert_array(mx.array(a) @ mx.array(b), a @ b, "float32")
    x = mx.array(a)
    x2 = mx.array(np.eye(3, dtype=np.float32))
    x @= x2
    assert_array(x, a, "float32")


def test_operator_bad_operand():
    x = mx.array([1, 2])
    with pytest.raises((TypeError, ValueError)):
        x + "a"
    with pytest.raises((TypeError, ValueError)):
        x + None
    with pytest.raises((TypeError, ValueError)):
        x * object()


def test_operator_broadcast_mismatch():
    with pytest.raises(ValueError):
        mx.ones((2, 3)) + mx.ones((4,))
    with pytest.raises(ValueError):
        mx.ones((2, 3)) == mx.ones((3, 2))


# ------------------------------------------------------------------ item / tolist
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_item_types(d):
    x = mx.array(1, dtype=mxdt(d))
    v = x.item()
    if d == "bool_":
        assert v is True
    elif d in INT_DTYPES:
        assert type(v) is int and v == 1
    elif d == "complex64":
        assert type(v) is complex and v == 1
    else:
        assert type(v) is float and v == 1.0


def test_item_values_extremes():
    assert mx.array(2**62, dtype=mx.int64).item() == 2**62
    assert mx.array(2**64 - 1, dtype=mx.uint64).item() == 2**64 - 1
    assert mx.array(-(2**63), dtype=mx.int64).item() == -(2**63)
    assert mx.array(4294967295, dtype=mx.uint32).item() == 4294967295
    assert np.isnan(mx.array(float("nan")).item())
    assert mx.array(float("inf")).item() == float("inf")
    assert mx.array(0.1, dtype=mx.float64).item() == 0.1
    assert mx.array([[7]]).item() == 7  # any single-element array


def test_item_multi_element_raises():
    with pytest.raises(ValueError):
        mx.array([1, 2]).item()
    with pytest.raises(ValueError):
        mx.array([]).item()


@pytest.mark.parametrize("d", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 2), (2, 1, 2)], ids=str)
def test_tolist(rng, d, shape):
    a = rand(rng, shape, d)
    got = to_mx(a, d).tolist()
    if d == "bfloat16":
        ref = a.astype(np.float32).tolist()
    else:
        ref = a.tolist()
    assert got == ref
    if shape == ():
        assert not isinstance(got, list)


def test_tolist_of_views():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    x = mx.array(a)
    assert x.T.tolist() == a.T.tolist()
    assert x[::-1, ::2].tolist() == a[::-1, ::2].tolist()
    assert mx.broadcast_to(x[:1], (2, 4)).tolist() == np.broadcast_to(a[:1], (2, 4)).tolist()


# ------------------------------------------------------------------ NumPy interop
@pytest.mark.parametrize("d", NON_BF16)
@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 3)], ids=str)
def test_np_array_conversion(rng, d, shape):
    a = rand(rng, shape, d)
    x = to_mx(a, d)
    b = np.array(x)
    assert b.dtype == npdt(d)
    assert b.shape == shape
    np.testing.assert_array_equal(b, a)
    c = np.asarray(x)
    np.testing.assert_array_equal(c, a)


def test_np_array_conversion_bfloat16():
    x = mx.array([1.5, -2.0]).astype(mx.bfloat16)
    try:
        b = np.array(x)
    except (TypeError, ValueError, RuntimeError):
        pass  # as MLX: bfloat16 has no buffer format
    else:
        np.testing.assert_array_equal(b.astype(np.float32), [1.5, -2.0])
    np.testing.assert_array_equal(np.array(x.astype(mx.float32)), [1.5, -2.0])


def test_np_array_with_dtype_and_views():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    x = mx.array(a)
    np.testing.assert_array_equal(np.array(x, dtype=np.float64), a.astype(np.float64))
    np.testing.assert_array_equal(np.array(x.T), a.T)
    np.testing.assert_array_equal(np.array(x[1:, ::-2]), a[1:, ::-2])
    np.testing.assert_array_equal(np.array(mx.broadcast_to(x[:1], (5, 4))), np.broadcast_to(a[:1], (5, 4)))


def test_np_array_evaluates_lazy_graph():
    x = mx.arange(10) * 2 + 1
    np.testing.assert_array_equal(np.array(x), np.arange(10) * 2 + 1)


def test_np_ufunc_on_array():
    x = mx.array([1.0, 4.0, 9.0])
    np.testing.assert_allclose(np.sqrt(x), [1, 2, 3])


FORMATS = {
    "bool_": "?",
    "uint8": "B",
    "uint16": "H",
    "uint32": "I",
    "uint64": "Q",
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "float16": "e",
    "float32": "f",
    "float64": "d",
    "complex64": "Zf",
}


@pytest.mark.parametrize("d", NON_BF16)
def test_buffer_protocol(rng, d):
    a = rand(rng, (2, 3), d)
    x = to_mx(a, d)
    mv = memoryview(x)
    assert mv.format.lstrip("@=<") == FORMATS[d]
    assert mv.shape == (2, 3)
    assert mv.itemsize == npdt(d).itemsize
    assert mv.ndim == 2
    assert mv.nbytes == a.nbytes
    np.testing.assert_array_equal(np.frombuffer(mv.tobytes(), dtype=npdt(d)).reshape(2, 3), a)


def test_buffer_protocol_views_and_scalars():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    mv = memoryview(mx.array(a).T)
    assert mv.shape == (3, 2)
    np.testing.assert_array_equal(np.array(mv), a.T)
    s = memoryview(mx.array(3.5))
    assert s.shape == () and s.ndim == 0
    e = memoryview(mx.zeros((0, 3)))
    assert e.shape == (0, 3) and e.nbytes == 0


def test_buffer_keeps_data_alive():
    mv = memoryview(mx.arange(1000) + 1)
    gc.collect()
    assert np.frombuffer(mv, dtype=np.int32)[-1] == 1000


@pytest.mark.parametrize("d", NON_BF16)
def test_dlpack_to_numpy(rng, d):
    a = rand(rng, (3, 4), d)
    x = to_mx(a, d)
    assert tuple(x.__dlpack_device__()) == (1, 0)  # kDLCPU, device 0
    b = np.from_dlpack(x)
    assert b.dtype == npdt(d)
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("d", NON_BF16)
def test_dlpack_from_numpy(rng, d):
    a = rand(rng, (3, 4), d)
    x = mx.from_dlpack(a)
    if d == "float64":
        # MLX maps NumPy float64 input to float32; keeping float64 is fine too
        assert x.dtype in (mx.float64, mx.float32)
    else:
        assert x.dtype == mxdt(d)
    got = to_np(x)
    np.testing.assert_array_equal(got, a.astype(got.dtype))


def test_dlpack_views_and_roundtrip():
    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    np.testing.assert_array_equal(np.from_dlpack(mx.array(a).T), a.T)
    np.testing.assert_array_equal(np.array(mx.from_dlpack(a[::2, 1:])), a[::2, 1:])
    x = mx.from_dlpack(np.from_dlpack(mx.array(a)))
    np.testing.assert_array_equal(np.array(x), a)
    assert mx.from_dlpack(np.zeros((0, 2), np.float32)).shape == (0, 2)


def test_array_namespace():
    ns = mx.array([1]).__array_namespace__()
    assert ns.add is mx.add or ns.add == mx.add


# ------------------------------------------------------------------ printing
def test_repr_exact_basic():
    assert repr(mx.array([1, 2])) == "array([1, 2], dtype=int32)"
    assert repr(mx.array(3)) == "array(3, dtype=int32)"
    assert repr(mx.array([True, False])) == "array([True, False], dtype=bool)"
    assert repr(mx.array([1.5, -2.25])) == "array([1.5, -2.25], dtype=float32)"
    assert repr(mx.array([[1, 2], [3, 4]])) == "array([[1, 2],\n       [3, 4]], dtype=int32)"
    assert repr(mx.array([1, 2], dtype=mx.uint8)) == "array([1, 2], dtype=uint8)"
    assert repr(mx.array([], dtype=mx.float32)) == "array([], dtype=float32)"
    assert str(mx.array([1, 2])) == "array([1, 2], dtype=int32)"


@pytest.mark.parametrize("d", ALL_DTYPES)
def test_repr_every_dtype(d):
    s = repr(mx.array([0, 1], dtype=mxdt(d)))
    name = "bool" if d == "bool_" else d
    assert s.startswith("array(") and s.endswith(f"dtype={name})"), s


def test_repr_special_values_and_lazy():
    s = repr(mx.array([float("nan"), float("inf"), -float("inf")]))
    assert "nan" in s and "inf" in s and "-inf" in s
    y = mx.arange(3) + 1  # printing evaluates
    assert repr(y) == "array([1, 2, 3], dtype=int32)"


def test_repr_large_is_summarized():
    s = repr(mx.arange(100000))
    assert len(s) < 2000 and "..." in s


def test_repr_complex_and_zero_size():
    assert "complex64" in repr(mx.array([1 + 2j]))
    assert "1+2j" in repr(mx.array([1 + 2j])).replace(" ", "")
    assert repr(mx.zeros((2, 0))).endswith("dtype=float32)")


# ------------------------------------------------------------------ pickle / copy / weakref
@pytest.mark.parametrize("d", ALL_DTYPES)
def test_pickle_roundtrip(rng, d):
    a = rand(rng, (3, 4), d)
    x = to_mx(a, d)
    for proto in (2, pickle.HIGHEST_PROTOCOL):
        y = pickle.loads(pickle.dumps(x, protocol=proto))
        assert isinstance(y, mx.array) and y.dtype == x.dtype and y.shape == x.shape
        np.testing.assert_array_equal(to_np(y), a)


def test_pickle_views_and_scalars():
    x = mx.arange(12).reshape(3, 4).T[::2]
    y = pickle.loads(pickle.dumps(x))
    assert y.tolist() == x.tolist()
    s = pickle.loads(pickle.dumps(mx.array(2.5)))
    assert s.shape == () and s.item() == 2.5
    e = pickle.loads(pickle.dumps(mx.zeros((0, 3), dtype=mx.int8)))
    assert e.shape == (0, 3) and e.dtype == mx.int8


@pytest.mark.parametrize("fn", [copy.copy, copy.deepcopy])
def test_copy(fn):
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    y = fn(x)
    assert isinstance(y, mx.array)
    assert y.tolist() == x.tolist() and y.dtype == x.dtype
    x[0, 0] = 100.0
    assert y[0, 0].item() == 1.0
    d = fn({"a": mx.array([1]), "b": [mx.array(2.0)]})
    assert d["a"].tolist() == [1] and d["b"][0].item() == 2.0


def test_weakref():
    x = mx.array([1, 2, 3])
    r = weakref.ref(x)
    assert r() is x
    del x
    gc.collect()
    assert r() is None
    ws = weakref.WeakValueDictionary()
    y = mx.ones((2,))
    ws["y"] = y
    assert ws["y"] is y


# ------------------------------------------------------------------ Python protocols
def test_iter_and_len():
    a = np.arange(6, dtype=np.int32).reshape(3, 2)
    x = mx.array(a)
    assert len(x) == 3
    rows = list(x)
    assert len(rows) == 3
    for r, ra in zip(rows, a):
        assert isinstance(r, mx.array)
        assert r.tolist() == ra.tolist()
    assert [v.item() for v in mx.array([4, 5, 6])] == [4, 5, 6]
    assert list(mx.zeros((0, 3))) == []
    with pytest.raises(TypeError):
        len(mx.array(1))
    with pytest.raises(TypeError):
        iter(mx.array(1))


def test_bool():
    assert bool(mx.array(True)) is True
    assert bool(mx.array([0])) is False
    assert bool(mx.array(2.5)) is True
    assert bool(mx.array([[0.0]])) is False
    with pytest.raises(ValueError):
        bool(mx.array([1, 2]))
    with pytest.raises(ValueError):
        bool(mx.array([]))
    if mx.array(3) > 2:
        pass
    else:  # pragma: no cover
        pytest.fail("__bool__ of a comparison")


def test_int_float_complex():
    assert int(mx.array(7)) == 7 and type(int(mx.array(7))) is int
    assert int(mx.array(2.9)) == 2 and int(mx.array(-2.9)) == -2
    assert int(mx.array([3])) == 3
    assert float(mx.array(2)) == 2.0 and type(float(mx.array(2))) is float
    assert float(mx.array(1.5, dtype=mx.float16)) == 1.5
    assert float(mx.array(1.5).astype(mx.bfloat16)) == 1.5
    assert complex(mx.array(1 + 2j)) == 1 + 2j
    with pytest.raises(ValueError):
        float(mx.array([1.0, 2.0]))
    with pytest.raises(ValueError):
        int(mx.array([1, 2]))


def test_index_protocol():
    assert operator.index(mx.array(3)) == 3
    assert list(range(10))[mx.array(4)] == 4
    assert list(range(mx.array(3))) == [0, 1, 2]
    assert "abcdef"[mx.array(1) : mx.array(3)] == "bc"
    assert operator.index(mx.array(5, dtype=mx.uint8)) == 5
    with pytest.raises(TypeError):
        operator.index(mx.array(3.0))
    with pytest.raises(TypeError):
        operator.index(mx.array([1, 2]))


def test_hashable_identity():
    x = mx.array([1])
    d = {x: "ok"}
    assert d[x] == "ok"


# ------------------------------------------------------------------ methods mirror functions
METHODS = [
    ("abs", {}),
    ("all", {"axis": 1}),
    ("any", {"axis": 0}),
    ("argmax", {"axis": 1}),
    ("argmin", {"axis": 0}),
    ("conj", {}),
    ("cos", {}),
    ("cummax", {"axis": 1}),
    ("cummin", {"axis": 0}),
    ("cumprod", {"axis": 1}),
    ("cumsum", {"axis": 0}),
    ("diagonal", {}),
    ("exp", {}),
    ("flatten", {}),
    ("log", {}),
    ("log10", {}),
    ("log1p", {}),
    ("log2", {}),
    ("logcumsumexp", {"axis": 1}),
    ("logsumexp", {"axis": 1}),
    ("max", {"axis": 0}),
    ("mean", {"axis": 1}),
    ("min", {}),
    ("prod", {"axis": 1}),
    ("reciprocal", {}),
    ("round", {}),
    ("rsqrt", {}),
    ("sin", {}),
    ("sqrt", {}),
    ("square", {}),
    ("std", {"axis": 0}),
    ("sum", {"axis": 1, "keepdims": True}),
    ("var", {"ddof": 1}),
    ("transpose", {}),
]


@pytest.mark.parametrize("name,kw", METHODS, ids=[m[0] for m in METHODS])
def test_methods_match_functions(rng, name, kw):
    a = rng.uniform(0.5, 2.0, (3, 4)).astype(np.float32)
    x = mx.array(a)
    m = getattr(x, name)(**kw)
    f = getattr(mx, name)(x, **kw)
    assert m.shape == f.shape and m.dtype == f.dtype
    np.testing.assert_allclose(np.array(m), np.array(f), rtol=1e-6, atol=1e-7)


def test_other_methods():
    x = mx.array(np.arange(12, dtype=np.float32).reshape(3, 4))
    assert x.astype(mx.int32).dtype == mx.int32
    assert x.reshape(4, 3).shape == (4, 3)
    assert x.moveaxis(0, 1).shape == (4, 3)
    assert x.swapaxes(0, 1).shape == (4, 3)
    assert x[None].squeeze(0).shape == (3, 4)
    assert [p.shape for p in x.split(2, axis=1)] == [(3, 2), (3, 2)]
    assert x.view(mx.int32).dtype == mx.int32
    assert mx.array([1.0, 2.0]).diag().shape == (2, 2)
