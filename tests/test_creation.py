"""Array creation: mx.array / asarray conversions and every creation op, against NumPy."""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    NUMERIC_DTYPES,
    assert_array,
    dtype_name,
    mxdt,
    npdt,
    rand,
    to_mx,
    to_np,
)

SHAPES = [(), (0,), (1,), (5,), (2, 3), (3, 0, 2), (2, 1, 3, 2)]


# ---------------------------------------------------------------- mx.array
class TestArrayConstructor:
    def test_python_scalars_default_dtypes(self):
        assert mx.array(True).dtype == mx.bool_
        assert mx.array(3).dtype == mx.int32
        assert mx.array(3.5).dtype == mx.float32
        assert mx.array(1 + 2j).dtype == mx.complex64
        assert mx.array(3).ndim == 0 and mx.array(3).shape == ()
        assert mx.array(3).item() == 3
        assert mx.array(-2.5).item() == -2.5
        assert mx.array(False).item() is False
        assert mx.array(1 + 2j).item() == 1 + 2j

    def test_large_python_int_becomes_int64(self):
        x = mx.array([2**31])
        assert x.dtype == mx.int64
        assert x.tolist() == [2**31]

    def test_nested_lists(self, rng):
        for shape in [(3,), (2, 3), (2, 3, 4), (1, 1, 1, 1)]:
            a = rng.integers(-100, 100, size=shape)
            x = mx.array(a.tolist())
            assert x.dtype == mx.int32
            assert_array(x, a.astype(np.int32))
            f = rng.standard_normal(shape).astype(np.float32)
            y = mx.array(f.tolist())
            assert y.dtype == mx.float32
            assert_array(y, f)

    def test_tuples_and_mixed(self):
        assert_array(mx.array((1, 2, 3)), np.array([1, 2, 3], np.int32), "int32")
        assert_array(mx.array([1, 2.5]), np.array([1, 2.5], np.float32), "float32")
        assert_array(mx.array([True, 2]), np.array([1, 2], np.int32), "int32")
        assert_array(mx.array([[True, False]]), np.array([[True, False]]), "bool_")
        assert_array(mx.array([(1, 2), [3, 4]]), np.array([[1, 2], [3, 4]], np.int32))

    def test_empty_lists(self):
        x = mx.array([])
        assert x.shape == (0,) and x.dtype == mx.float32 and x.size == 0
        y = mx.array([[], []])
        assert y.shape == (2, 0)
        assert x.tolist() == [] and y.tolist() == [[], []]

    def test_list_of_arrays(self):
        x = mx.array([mx.array([1, 2]), mx.array([3, 4])])
        assert_array(x, np.array([[1, 2], [3, 4]], np.int32), "int32")

    @pytest.mark.parametrize("name", ALL_DTYPES)
    def test_dtype_keyword(self, name):
        x = mx.array([0, 1, 1], dtype=mxdt(name))
        assert x.dtype == mxdt(name)
        assert_array(x.astype(mx.float32), np.array([0, 1, 1], np.float32))

    def test_dtype_positional(self):
        assert mx.array([1, 2], mx.float16).dtype == mx.float16

    def test_float_to_int_truncates(self):
        assert_array(mx.array([1.7, -1.7, 2.5], dtype=mx.int32), np.array([1, -1, 2], np.int32), "int32")

    def test_wraps_into_unsigned(self):
        assert mx.array([-1], dtype=mx.uint8).tolist() == [255]

    @pytest.mark.parametrize("name", [n for n in ALL_DTYPES if n not in ("bfloat16", "float64")])
    @pytest.mark.parametrize("shape", SHAPES)
    def test_from_numpy_keeps_dtype(self, rng, name, shape):
        a = rand(rng, shape, name)
        x = mx.array(a)
        assert x.dtype == mxdt(name)
        assert x.shape == a.shape
        np.testing.assert_array_equal(np.array(x), a)

    def test_from_numpy_float64_defaults_to_float32(self):
        # MLX's convention: NumPy float64 input becomes float32 unless a dtype is given
        a = np.array([1.5, -2.25, 1e-3])
        assert mx.array(a).dtype == mx.float32
        x = mx.array(a, dtype=mx.float64)
        assert x.dtype == mx.float64
        np.testing.assert_array_equal(np.array(x), a)

    def test_from_numpy_scalar(self):
        assert mx.array(np.int64(5)).dtype == mx.int64
        assert mx.array(np.float32(5)).dtype == mx.float32
        assert mx.array(np.array(True)).dtype == mx.bool_
        assert mx.array(np.int16(-7)).item() == -7

    @pytest.mark.parametrize(
        "view",
        [
            lambda a: a[:, ::2],
            lambda a: a.T,
            lambda a: a[::-1, 1:],
            lambda a: np.broadcast_to(a[:1], a.shape),
        ],
        ids=["step", "T", "neg", "bcast"],
    )
    def test_from_numpy_noncontiguous(self, view):
        a = view(np.arange(24, dtype=np.int32).reshape(4, 6))
        x = mx.array(a)
        assert x.shape == a.shape
        np.testing.assert_array_equal(np.array(x), a)

    def test_from_numpy_zero_size(self):
        x = mx.array(np.zeros((2, 0, 3), np.float32))
        assert x.shape == (2, 0, 3) and x.size == 0

    def test_from_numpy_with_dtype_cast(self):
        x = mx.array(np.array([1, 2, 300], dtype=np.int64), dtype=mx.int16)
        assert x.dtype == mx.int16 and x.tolist() == [1, 2, 300]

    def test_copy_of_array_is_independent(self):
        a = mx.array([1, 2, 3])
        b = mx.array(a)
        a[0] = 10
        assert b.tolist() == [1, 2, 3]
        assert a.tolist() == [10, 2, 3]

    def test_numpy_source_not_aliased(self):
        a = np.arange(4, dtype=np.float32)
        x = mx.array(a)
        a[0] = 100
        assert x.tolist() == [0, 1, 2, 3]


# ---------------------------------------------------------------- asarray
class TestAsarray:
    def test_list(self):
        assert_array(mx.asarray([1, 2]), np.array([1, 2], np.int32), "int32")

    def test_numpy(self):
        a = np.arange(6, dtype=np.int64).reshape(2, 3)
        assert_array(mx.asarray(a), a, "int64")

    def test_array_passthrough_and_dtype(self):
        x = mx.array([1, 2])
        y = mx.asarray(x)
        assert_array(y, np.array([1, 2], np.int32), "int32")
        z = mx.asarray(x, dtype=mx.float32)
        assert_array(z, np.array([1, 2], np.float32), "float32")

    def test_scalar(self):
        assert mx.asarray(2.5).dtype == mx.float32 and mx.asarray(2.5).item() == 2.5


# ---------------------------------------------------------------- arange
class TestArange:
    @pytest.mark.parametrize(
        "args",
        [(5,), (0,), (2, 9), (9, 2), (10, 0, -3), (-5, 5, 2), (3, 4), (0, 100, 7), (-1, -10, -1)],
    )
    def test_int(self, args):
        assert_array(mx.arange(*args), np.arange(*args).astype(np.int32), "int32")

    @pytest.mark.parametrize(
        "args",
        [(0.0, 1.0, 0.25), (2, 5.5), (0, 1, 0.1), (1.5,), (-1.0, 1.0, 0.3), (5.0, 0.0, -0.75), (0, 3, 1.5)],
    )
    def test_float(self, args):
        x = mx.arange(*args)
        ref = np.arange(*args, dtype=np.float64)
        assert x.dtype == mx.float32
        assert x.shape == ref.shape
        np.testing.assert_allclose(np.array(x), ref, rtol=1e-6, atol=1e-6)

    @pytest.mark.parametrize("name", [n for n in ALL_DTYPES if n not in ("bool_", "complex64")])
    def test_dtype(self, name):
        x = mx.arange(0, 10, 2, dtype=mxdt(name))
        assert_array(x, np.arange(0, 10, 2).astype(npdt(name)), name)

    def test_keywords(self):
        assert_array(mx.arange(start=1, stop=4, step=1), np.array([1, 2, 3], np.int32))
        assert_array(mx.arange(1, 4, dtype=mx.float32), np.array([1, 2, 3], np.float32), "float32")

    def test_zero_step(self):
        with pytest.raises(ValueError):
            mx.arange(0, 10, 0)

    @pytest.mark.parametrize("stop", [float("nan"), float("inf")])
    def test_non_finite(self, stop):
        with pytest.raises((ValueError, OverflowError)):
            mx.arange(stop)

    def test_too_large(self):
        with pytest.raises((ValueError, OverflowError, MemoryError)):
            mx.eval(mx.arange(1e20))


# ---------------------------------------------------------------- zeros/ones/full/empty
@pytest.mark.parametrize("shape", SHAPES + [3, [2, 2]], ids=str)
@pytest.mark.parametrize("name", ALL_DTYPES)
def test_zeros_ones(shape, name):
    z = mx.zeros(shape, dtype=mxdt(name))
    o = mx.ones(shape, dtype=mxdt(name))
    e = mx.empty(shape, dtype=mxdt(name))
    assert_array(z, np.zeros(shape, npdt(name)), name)
    assert_array(o, np.ones(shape, npdt(name)), name)
    assert e.dtype == mxdt(name) and e.shape == np.empty(shape).shape
    mx.eval(e)


def test_default_dtypes():
    assert mx.zeros((2,)).dtype == mx.float32
    assert mx.ones((2,)).dtype == mx.float32
    assert mx.empty((2,)).dtype == mx.float32
    assert mx.full((2,), 1).dtype == mx.int32
    assert mx.full((2,), 1.0).dtype == mx.float32
    assert mx.full((2,), True).dtype == mx.bool_
    assert mx.eye(2).dtype == mx.float32
    assert mx.identity(2).dtype == mx.float32
    assert mx.tri(2).dtype == mx.float32
    assert mx.linspace(0, 1, 3).dtype == mx.float32


@pytest.mark.parametrize("name", NUMERIC_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3)], ids=str)
def test_full_scalar(shape, name):
    x = mx.full(shape, 3, dtype=mxdt(name))
    assert_array(x, np.full(shape, 3, npdt(name)), name)


def test_full_broadcasts_array_value():
    v = mx.array([1, 2, 3])
    assert_array(mx.full((2, 3), v), np.full((2, 3), [1, 2, 3], np.int32), "int32")
    col = mx.array([[1.5], [2.5]])
    assert_array(mx.full((2, 4), col), np.broadcast_to(np.array([[1.5], [2.5]], np.float32), (2, 4)), "float32")


def test_full_bad_broadcast():
    with pytest.raises(ValueError):
        mx.full((2, 3), mx.array([1, 2]))


@pytest.mark.parametrize("value", [7, 7.5, True, -1])
def test_full_values(value):
    ref = np.full((2, 2), value)
    x = mx.full((2, 2), value)
    assert x.tolist() == ref.tolist()


# ---------------------------------------------------------------- *_like
@pytest.mark.parametrize("name", NUMERIC_DTYPES + ["bool_"])
def test_like_ops(rng, name):
    a = rand(rng, (3, 4), name)
    x = to_mx(a, name)
    assert_array(mx.zeros_like(x), np.zeros_like(a), name)
    assert_array(mx.ones_like(x), np.ones_like(a), name)
    e = mx.empty_like(x)
    assert e.shape == x.shape and e.dtype == x.dtype
    assert_array(mx.full_like(x, 1), np.full_like(a, 1), name)


def test_like_ops_dtype_override():
    x = mx.array([[1, 2], [3, 4]])
    assert_array(mx.zeros_like(x, dtype=mx.float16), np.zeros((2, 2), np.float16), "float16")
    assert_array(mx.ones_like(x, dtype=mx.bool_), np.ones((2, 2), bool), "bool_")
    assert_array(mx.full_like(x, 2.5, dtype=mx.float32), np.full((2, 2), 2.5, np.float32), "float32")


def test_full_like_keeps_input_dtype():
    # the fill value is cast to the input's dtype (as NumPy's full_like)
    assert_array(mx.full_like(mx.array([1, 2]), 2.5), np.full_like(np.array([1, 2], np.int32), 2.5), "int32")
    assert_array(mx.full_like(mx.array([1.0, 2.0]), 2), np.array([2, 2], np.float32), "float32")


def test_like_ops_on_views_and_empty():
    x = mx.zeros((4, 6))[::2, 1:]
    assert mx.ones_like(x).shape == (2, 5)
    z = mx.zeros((0, 3), dtype=mx.int8)
    assert mx.ones_like(z).shape == (0, 3) and mx.ones_like(z).dtype == mx.int8
    s = mx.array(5)
    assert mx.zeros_like(s).shape == () and mx.zeros_like(s).item() == 0


# ---------------------------------------------------------------- eye/identity/tri
@pytest.mark.parametrize("n,m,k", [(3, None, 0), (3, 4, 1), (4, 3, -1), (3, 3, 5), (3, 3, -5), (0, None, 0), (1, 5, 2), (5, 1, -3)])
def test_eye(n, m, k):
    assert_array(mx.eye(n, m, k), np.eye(n, m, k, dtype=np.float32), "float32")
    assert_array(mx.eye(n, m, k=k, dtype=mx.int32), np.eye(n, m, k, dtype=np.int32), "int32")


@pytest.mark.parametrize("name", ALL_DTYPES)
def test_identity(name):
    assert_array(mx.identity(4, dtype=mxdt(name)), np.identity(4, npdt(name)), name)
    assert_array(mx.identity(0), np.identity(0, np.float32), "float32")


@pytest.mark.parametrize("n,m,k", [(3, None, 0), (3, 4, -1), (4, 2, 1), (2, 2, 10), (2, 2, -10), (0, 3, 0)])
def test_tri(n, m, k):
    assert_array(mx.tri(n, m, k), np.tri(n, m, k, dtype=np.float32), "float32")
    assert_array(mx.tri(n, m, k, dtype=mx.int32), np.tri(n, m, k, dtype=np.int32), "int32")


# ---------------------------------------------------------------- linspace
@pytest.mark.parametrize("start,stop,num", [(0, 1, 5), (0, 1, 1), (0, 1, 0), (-3.5, 7.25, 50), (10, -10, 7), (1, 1, 4), (0, 1e6, 11)])
def test_linspace(start, stop, num):
    x = mx.linspace(start, stop, num)
    ref = np.linspace(start, stop, num)
    assert x.dtype == mx.float32 and x.shape == ref.shape
    np.testing.assert_allclose(np.array(x), ref, rtol=1e-6, atol=1e-5 * max(1, abs(stop - start)))


def test_linspace_default_num():
    assert mx.linspace(0, 1).shape == (50,)


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float64", "int32"])
def test_linspace_dtype(name):
    x = mx.linspace(0, 10, num=4, dtype=mxdt(name))
    ref = np.linspace(0, 10, 4)
    assert x.dtype == mxdt(name)
    if name == "int32":
        np.testing.assert_array_equal(np.array(x), ref.astype(np.int32))
    else:
        np.testing.assert_allclose(np.array(x.astype(mx.float32)), ref, rtol=1e-2)


def test_linspace_negative_num():
    with pytest.raises(ValueError):
        mx.linspace(0, 1, -1)


# ---------------------------------------------------------------- meshgrid
@pytest.mark.parametrize("indexing", ["xy", "ij"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("sizes", [(2, 3), (4,), (2, 3, 4), (0, 3)], ids=str)
def test_meshgrid(indexing, sparse, sizes):
    vecs = [np.arange(n, dtype=np.float32) * (i + 1) for i, n in enumerate(sizes)]
    got = mx.meshgrid(*[mx.array(v) for v in vecs], indexing=indexing, sparse=sparse)
    ref = np.meshgrid(*vecs, indexing=indexing, sparse=sparse)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert_array(g, r, "float32")


def test_meshgrid_bad_indexing():
    with pytest.raises(ValueError):
        mx.meshgrid(mx.array([1, 2]), mx.array([3]), indexing="zz")


# ---------------------------------------------------------------- window functions
@pytest.mark.parametrize("M", [0, 1, 2, 5, 16, 33])
@pytest.mark.parametrize("fn", ["bartlett", "blackman", "hamming", "hanning"])
def test_windows(fn, M):
    x = getattr(mx, fn)(M)
    ref = getattr(np, fn)(M)
    assert x.dtype == mx.float32 and x.shape == ref.shape
    np.testing.assert_allclose(np.array(x), ref, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- shapes given many ways
def test_shape_argument_forms():
    assert mx.zeros(3).shape == (3,)
    assert mx.zeros([2, 3]).shape == (2, 3)
    assert mx.zeros((np.int32(2), 3)).shape == (2, 3)
    assert mx.ones(()).shape == ()
    assert mx.full([], 4).item() == 4


@pytest.mark.parametrize("name", FLOAT_DTYPES + INT_DTYPES)
def test_created_values_roundtrip(rng, name):
    a = rand(rng, (4, 5), name)
    x = to_mx(a, name)
    assert dtype_name(x.dtype) == name
    np.testing.assert_array_equal(to_np(x), a)
