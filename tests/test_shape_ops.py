"""Shape, layout and casting ops against NumPy: reshape transpose permute_dims
broadcast_to broadcast_arrays expand_dims squeeze flatten unflatten moveaxis swapaxes
concatenate concat stack split unstack slice slice_update astype view contiguous
atleast_*d as_strided take take_along_axis put_along_axis pad roll repeat tile tril triu
diag diagonal diff flip matrix_transpose broadcast_shapes."""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import (
    ALL_DTYPES,
    FLOAT_DTYPES,
    INT_DTYPES,
    VIEW_KINDS,
    assert_array,
    mxdt,
    npdt,
    rand,
    to_mx,
    to_np,
    view_of,
)


def _a(shape=(2, 3, 4), dtype=np.int32):
    return np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)


# ------------------------------------------------------------------ reshape
@pytest.mark.parametrize(
    "src,dst",
    [
        ((2, 3, 4), (4, 6)),
        ((2, 3, 4), (24,)),
        ((2, 3, 4), (-1,)),
        ((2, 3, 4), (4, -1)),
        ((2, 3, 4), (2, -1, 2)),
        ((24,), (2, 3, 4)),
        ((1,), ()),
        ((), (1, 1)),
        ((0, 3), (3, 0)),
        ((0, 3), (0, 5)),
        ((6,), (6, 1, 1)),
    ],
    ids=str,
)
def test_reshape(src, dst):
    a = _a(src)
    x = mx.array(a)
    assert_array(mx.reshape(x, dst), a.reshape(dst), "int32")
    assert_array(x.reshape(dst), a.reshape(dst), "int32")
    if len(dst) > 0:
        assert_array(x.reshape(*dst), a.reshape(dst), "int32")


@pytest.mark.parametrize("kind", VIEW_KINDS)
def test_reshape_of_views(rng, kind):
    a = rand(rng, (4, 6), "float32")
    x = view_of(a, "float32", kind)
    assert_array(mx.reshape(x, (3, 8)), a.reshape(3, 8), "float32")
    assert_array(mx.reshape(x, (24,)), a.reshape(24), "float32")


def _broadcast(a, shape):
    return np.broadcast_to(a, shape) if isinstance(a, np.ndarray) else mx.broadcast_to(a, shape)


RESHAPE_VIEWS = [
    # (make the strided source from a NumPy array, new shape)
    (lambda a: a[:, :, :5], (12, 5)),  # padded rows: leading axes merge without a copy
    (lambda a: a[:, :, :5], (2, 6, 5)),
    (lambda a: a[:, :, :5], (60,)),  # rows with gaps cannot merge: copied
    (lambda a: a.transpose(2, 0, 1), (7, 2, 2, 3)),  # a transposed array split along one axis
    (lambda a: a.transpose(2, 0, 1), (7, 12)),
    (lambda a: a.transpose(2, 0, 1), (84,)),
    (lambda a: a[:, :1, :], (4, 7)),  # an axis of length 1 in the middle
    (lambda a: a[::2, :, 1:6], (2, 15)),
    (lambda a: _broadcast(a[:1, :1, :], (4, 3, 7)), (2, 2, 21)),
    (lambda a: _broadcast(a[:1, :1, :], (4, 3, 7)), (12, 7)),
    (lambda a: a[:, :, :0], (0, 4)),
]


@pytest.mark.parametrize("make,dst", RESHAPE_VIEWS, ids=lambda v: str(v) if isinstance(v, tuple) else "")
def test_reshape_of_strided_arrays_matches_numpy(make, dst):
    """Reshapes of strided arrays (views where whole rows regroup, copies otherwise) give
    NumPy's values, and later ops read the view's strides."""
    base = np.arange(4 * 3 * 7, dtype=np.float32).reshape(4, 3, 7)
    want = make(base).reshape(dst)
    x = make(mx.array(base))
    got = mx.reshape(x, dst)
    assert_array(got, want, "float32")
    assert_array(mx.reshape(got, x.shape), make(base), "float32")  # and back
    assert_array(got * 2 + 1, want * 2 + 1, "float32")  # consumers read the strides


@pytest.mark.parametrize("dst", [(5, 5), (25,), (5, -1), (-1, -1), (7, -1), (-2, 12)], ids=str)
def test_reshape_wrong_size(dst):
    with pytest.raises(ValueError):
        mx.reshape(mx.zeros((2, 3, 4)), dst)


def test_reshape_error_message_names_op():
    with pytest.raises(ValueError, match="reshape"):
        mx.zeros((2, 5)).reshape(3, 4)


# ------------------------------------------------------------------ transpose family
@pytest.mark.parametrize("axes", [None, (0, 1, 2), (2, 1, 0), (1, 0, 2), (0, 2, 1), (-1, 0, 1), (2, 0, 1)], ids=str)
def test_transpose(axes):
    a = _a()
    x = mx.array(a)
    assert_array(mx.transpose(x, axes), np.transpose(a, axes), "int32")
    assert_array(mx.permute_dims(x, axes), np.transpose(a, axes), "int32")
    if axes is not None:
        assert_array(x.transpose(axes), np.transpose(a, axes), "int32")
        assert_array(x.transpose(*axes), np.transpose(a, axes), "int32")


def test_transpose_properties():
    a = _a()
    x = mx.array(a)
    assert_array(x.T, a.T, "int32")
    assert_array(x.mT, np.swapaxes(a, -1, -2), "int32")
    assert_array(mx.matrix_transpose(x), np.swapaxes(a, -1, -2), "int32")
    assert_array(mx.array(5).T, np.array(5), "int32")


@pytest.mark.parametrize("axes", [(1, 1, 0), (1, 0), (0, 1, 3), (0, 1, 2, 3)], ids=str)
def test_transpose_bad_axes(axes):
    with pytest.raises((ValueError, IndexError)):
        mx.transpose(mx.zeros((2, 3, 4)), axes)


@pytest.mark.parametrize("src,dst", [(0, -1), (2, 0), (-1, 1), (1, 1)])
def test_moveaxis(src, dst):
    a = _a()
    assert_array(mx.moveaxis(mx.array(a), src, dst), np.moveaxis(a, src, dst), "int32")
    assert_array(mx.array(a).moveaxis(src, dst), np.moveaxis(a, src, dst), "int32")


@pytest.mark.parametrize("a1,a2", [(0, 2), (1, -1), (0, 0), (-3, -2)])
def test_swapaxes(a1, a2):
    a = _a()
    assert_array(mx.swapaxes(mx.array(a), a1, a2), np.swapaxes(a, a1, a2), "int32")
    assert_array(mx.array(a).swapaxes(a1, a2), np.swapaxes(a, a1, a2), "int32")


def test_swap_move_bad_axis():
    for fn in (lambda x: mx.swapaxes(x, 0, 3), lambda x: mx.moveaxis(x, 3, 0), lambda x: mx.moveaxis(x, 0, -4)):
        with pytest.raises(IndexError) as ei:
            fn(mx.zeros((2, 3, 4)))
        assert isinstance(ei.value, ValueError)


# ------------------------------------------------------------------ broadcasting
@pytest.mark.parametrize(
    "src,dst",
    [((3,), (2, 3)), ((1, 3), (4, 3)), ((), (2, 2)), ((2, 1, 1), (2, 3, 4)), ((1,), (0,)), ((3, 1), (2, 3, 0))],
    ids=str,
)
def test_broadcast_to(src, dst):
    a = _a(src)
    y = mx.broadcast_to(mx.array(a), dst)
    assert_array(y, np.broadcast_to(a, dst), "int32")


def test_broadcast_to_scalar_value():
    assert_array(mx.broadcast_to(2.5, (2, 2)), np.full((2, 2), 2.5, np.float32), "float32")


@pytest.mark.parametrize("src,dst", [((2,), (3, 3)), ((2, 3), (3,)), ((3, 2), (3, 3)), ((2,), (0,))], ids=str)
def test_broadcast_to_bad(src, dst):
    with pytest.raises(ValueError):
        mx.broadcast_to(mx.zeros(src), dst)


def test_broadcast_arrays_and_shapes():
    a, b, c = _a((2, 1)), _a((3,)), _a(())
    got = mx.broadcast_arrays(mx.array(a), mx.array(b), mx.array(c))
    ref = np.broadcast_arrays(a, b, c)
    assert len(got) == 3
    for g, r in zip(got, ref):
        assert_array(g, r, "int32")
    assert tuple(mx.broadcast_shapes((2, 1), (3,), ())) == (2, 3)
    assert tuple(mx.broadcast_shapes((5, 1, 4), (3, 1))) == (5, 3, 4)
    with pytest.raises(ValueError):
        mx.broadcast_shapes((2, 3), (3, 2))
    with pytest.raises(ValueError):
        mx.broadcast_arrays(mx.zeros((2,)), mx.zeros((3,)))


def test_broadcast_view_then_write_is_independent():
    x = mx.array([1, 2, 3])
    y = mx.broadcast_to(x, (2, 3))
    z = y + 0
    x[0] = 9
    assert z.tolist() == [[1, 2, 3], [1, 2, 3]]


# ------------------------------------------------------------------ expand / squeeze / flatten
@pytest.mark.parametrize("axis", [0, 1, 3, -1, -4, (0, 4), (0, 1), (-1, -2)], ids=str)
def test_expand_dims(axis):
    a = _a()
    assert_array(mx.expand_dims(mx.array(a), axis), np.expand_dims(a, axis), "int32")


@pytest.mark.parametrize("axis", [4, -5, (0, 0), (0, 5)], ids=str)
def test_expand_dims_bad(axis):
    with pytest.raises((ValueError, IndexError)):
        mx.expand_dims(mx.zeros((2, 3, 4)), axis)


@pytest.mark.parametrize("axis", [None, 0, 2, -1, (0, 2), (0, 2, 3)], ids=str)
def test_squeeze(axis):
    a = _a((1, 3, 1, 1))
    assert_array(mx.squeeze(mx.array(a), axis), np.squeeze(a, axis), "int32")
    if axis is not None:
        assert_array(mx.array(a).squeeze(axis), np.squeeze(a, axis), "int32")


def test_squeeze_bad():
    with pytest.raises(ValueError):
        mx.squeeze(mx.zeros((1, 2, 1)), axis=1)
    with pytest.raises((ValueError, IndexError)):
        mx.squeeze(mx.zeros((1, 2, 1)), axis=3)
    assert mx.squeeze(mx.zeros((1, 1))).shape == ()


@pytest.mark.parametrize("start,end", [(0, -1), (1, 2), (0, 1), (-2, -1), (2, 2), (0, 0)])
def test_flatten(start, end):
    a = _a((2, 3, 4))
    nd = a.ndim
    s, e = start % nd, end % nd
    ref = a.reshape(a.shape[:s] + (-1,) + a.shape[e + 1 :])
    assert_array(mx.flatten(mx.array(a), start, end), ref, "int32")
    assert_array(mx.array(a).flatten(start, end), ref, "int32")


def test_flatten_scalar_and_bad():
    assert mx.flatten(mx.array(3)).shape == (1,)
    with pytest.raises((ValueError, IndexError)):
        mx.flatten(mx.zeros((2, 3)), 2, 3)
    with pytest.raises(ValueError):
        mx.flatten(mx.zeros((2, 3, 4)), 2, 1)


@pytest.mark.parametrize("axis,shape", [(2, (2, 2)), (0, (1, 2)), (1, (3, 1)), (-1, (2, -1)), (2, (-1, 4))], ids=str)
def test_unflatten(axis, shape):
    a = _a()
    ax = axis % 3
    sz = a.shape[ax]
    full = tuple(s if s != -1 else sz // -np.prod(shape) for s in shape)
    ref = a.reshape(a.shape[:ax] + full + a.shape[ax + 1 :])
    assert_array(mx.unflatten(mx.array(a), axis, shape), ref, "int32")


def test_unflatten_bad():
    with pytest.raises(ValueError):
        mx.unflatten(mx.zeros((2, 3, 4)), 2, (3, -1))
    with pytest.raises(ValueError):
        mx.unflatten(mx.zeros((2, 3, 4)), 2, (3, 3))


# ------------------------------------------------------------------ concatenate / stack / split
@pytest.mark.parametrize("axis", [0, 1, -1, 2])
@pytest.mark.parametrize("fn", ["concatenate", "concat"])
def test_concatenate(fn, axis):
    rng = np.random.default_rng(0)
    shapes = [(2, 3, 4), (2, 3, 4)]
    arrs = []
    for i, s in enumerate(shapes):
        s = list(s)
        s[axis] = i + 1
        arrs.append(rng.standard_normal(s).astype(np.float32))
    got = getattr(mx, fn)([mx.array(a) for a in arrs], axis=axis)
    assert_array(got, np.concatenate(arrs, axis=axis), "float32")


def test_concatenate_none_axis_mixed_dtypes_views():
    a, b = _a((2, 3)), _a((4,), np.float32)
    got = mx.concatenate([mx.array(a).T, mx.array(b)[::-1]], axis=None)
    assert got.dtype == mx.float32
    assert_array(got, np.concatenate([a.T.reshape(-1), b[::-1]]).astype(np.float32), "float32")


def test_concatenate_with_empty():
    a = _a((2, 3))
    got = mx.concatenate([mx.array(a), mx.zeros((0, 3), dtype=mx.int32), mx.array(a)])
    assert_array(got, np.concatenate([a, np.zeros((0, 3), np.int32), a]), "int32")
    assert mx.concatenate([mx.zeros((0,)), mx.zeros((0,))]).shape == (0,)


def test_concatenate_bad():
    with pytest.raises(ValueError):
        mx.concatenate([mx.ones((2, 3)), mx.ones((2, 4))])
    with pytest.raises(ValueError):
        mx.concatenate([mx.ones((2, 3)), mx.ones((2,))])
    with pytest.raises(ValueError):
        mx.concatenate([])
    with pytest.raises((ValueError, IndexError)):
        mx.concatenate([mx.ones((2, 3)), mx.ones((2, 3))], axis=2)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -3])
def test_stack(axis):
    arrs = [_a((2, 3)) + i for i in range(3)]
    assert_array(mx.stack([mx.array(a) for a in arrs], axis=axis), np.stack(arrs, axis=axis), "int32")


def test_stack_bad():
    with pytest.raises(ValueError):
        mx.stack([mx.ones((2,)), mx.ones((3,))])
    with pytest.raises(ValueError):
        mx.stack([])
    with pytest.raises((ValueError, IndexError)):
        mx.stack([mx.ones((2,)), mx.ones((2,))], axis=3)


@pytest.mark.parametrize(
    "spec,axis",
    [(3, 1), (2, 0), (1, 2), (4, 2), ([1, 3], 2), ([2], 1), ([0, 0, 4], 2), ([3, 1], 2), ([], 0)],
    ids=str,
)
def test_split(spec, axis):
    a = _a((2, 3, 4))
    got = mx.split(mx.array(a), spec, axis=axis)
    ref = np.split(a, spec, axis=axis)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert_array(g, r, "int32")


def test_split_method_and_bad():
    a = _a((6,))
    parts = mx.array(a).split(3)
    assert [p.tolist() for p in parts] == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError):
        mx.split(mx.array(a), 4)
    with pytest.raises((ValueError, IndexError)):
        mx.split(mx.array(a), 2, axis=1)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_unstack(axis):
    a = _a()
    got = mx.unstack(mx.array(a), axis=axis)
    ref = [np.take(a, i, axis=axis) for i in range(a.shape[axis])]
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert_array(g, r, "int32")


# ------------------------------------------------------------------ slice / slice_update
def test_slice_dynamic():
    a = _a((4, 5, 6))
    x = mx.array(a)
    y = mx.slice(x, mx.array([1, 2]), [0, 2], [2, 5, 3])
    assert_array(y, a[1:3, :, 2:5], "int32")
    y = mx.slice(x, mx.array([3]), [1], [4, 2, 6])
    assert_array(y, a[:, 3:5, :], "int32")


def test_slice_update_dynamic():
    a = np.zeros((4, 5), np.float32)
    u = np.arange(6, dtype=np.float32).reshape(2, 3) + 1
    y = mx.slice_update(mx.array(a), mx.array(u), mx.array([1, 2]), [0, 1])
    ref = a.copy()
    ref[1:3, 2:5] = u
    assert_array(y, ref, "float32")
    # the input is unchanged (functional update)
    y2 = mx.slice_update(mx.array(a), mx.array(u[:1]), mx.array([3]), [0])
    ref2 = a.copy()
    ref2[3:4, 0:3] = u[:1]
    assert_array(y2, ref2, "float32")


# ------------------------------------------------------------------ astype / view / contiguous
@pytest.mark.parametrize("src", ALL_DTYPES)
@pytest.mark.parametrize("dst", ALL_DTYPES)
def test_astype_all_pairs(rng, src, dst):
    # values representable in every dtype so the cast is exact
    a = rand(rng, (3, 4), src, 0, 100)
    x = to_mx(a, src)
    y = x.astype(mxdt(dst))
    y2 = mx.astype(x, mxdt(dst))
    if src == "complex64" and dst != "complex64":
        ref = a.real.astype(npdt(dst)) if dst != "bool_" else (a != 0)
    else:
        ref = a.astype(npdt(dst))
    if dst in FLOAT_DTYPES or dst == "complex64":
        assert_array(y, ref.astype(np.complex128 if dst == "complex64" else np.float64), dst)
    else:
        assert_array(y, ref, dst)
    np.testing.assert_array_equal(to_np(y), to_np(y2))


def test_astype_float_to_int_truncates():
    a = np.array([1.7, -1.7, 0.5, -0.5, 100.99], np.float32)
    assert_array(mx.array(a).astype(mx.int32), a.astype(np.int32), "int32")
    assert_array(mx.array(a).astype(mx.int8), a.astype(np.int8), "int8")


def test_astype_int_wraps():
    a = np.array([259, -1, 65535, 70000], np.int32)
    for d in ["uint8", "int8", "uint16", "int16"]:
        assert_array(mx.array(a).astype(mxdt(d)), a.astype(d), d)


def test_astype_to_bool():
    a = np.array([0.0, -0.0, 0.5, np.nan, -3.0], np.float32)
    assert_array(mx.array(a).astype(mx.bool_), a.astype(bool), "bool_")


@pytest.mark.parametrize("kind", VIEW_KINDS)
def test_astype_of_views(rng, kind):
    a = rand(rng, (4, 6), "float32")
    assert_array(view_of(a, "float32", kind).astype(mx.float16), a.astype(np.float16), "float16")


@pytest.mark.parametrize(
    "src,dst",
    [("float32", "int32"), ("float32", "uint32"), ("int32", "int16"), ("int16", "int32"), ("uint8", "int8"), ("float16", "int16"), ("int64", "float64"), ("int32", "uint8"), ("float32", "float32")],
)
def test_view_reinterprets_bits(rng, src, dst):
    a = rand(rng, (3, 8), src, -50, 50)
    x = to_mx(a, src)
    y = mx.view(x, mxdt(dst))
    ref = a.view(npdt(dst))
    assert_array(y, ref, dst)
    assert_array(x.view(mxdt(dst)), ref, dst)


def test_view_bfloat16_bits():
    a = np.array([1.0, -2.5, 3.140625], np.float32)
    y = mx.array(a).astype(mx.bfloat16).view(mx.uint16)
    ref = (a.view(np.uint32) >> 16).astype(np.uint16)
    assert_array(y, ref, "uint16")


def test_view_bad_size():
    with pytest.raises(ValueError):
        mx.view(mx.array([1, 2, 3], dtype=mx.int8), mx.int16)


def test_view_of_noncontiguous(rng):
    a = rand(rng, (4, 6), "float32")
    x = view_of(a, "float32", "T")
    y = mx.view(x, mx.int32)
    np.testing.assert_array_equal(np.array(y), a.view(np.int32))


@pytest.mark.parametrize("kind", VIEW_KINDS)
def test_contiguous(rng, kind):
    a = rand(rng, (5, 4), "float32")
    y = mx.contiguous(view_of(a, "float32", kind))
    assert_array(y, a, "float32")
    mv = memoryview(y)
    assert mv.c_contiguous


def test_contiguous_allow_col_major(rng):
    a = rand(rng, (5, 4), "float32")
    assert_array(mx.contiguous(view_of(a, "float32", "T"), allow_col_major=True), a, "float32")


# ------------------------------------------------------------------ atleast_nd
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4), (2, 3, 4, 5)], ids=str)
def test_atleast(shape):
    a = _a(shape)
    for fn in ("atleast_1d", "atleast_2d", "atleast_3d"):
        assert_array(getattr(mx, fn)(mx.array(a)), getattr(np, fn)(a), "int32")


def test_atleast_multiple_args():
    got = mx.atleast_2d(mx.array(1), mx.array([1, 2]))
    assert len(got) == 2 and got[0].shape == (1, 1) and got[1].shape == (1, 2)


# ------------------------------------------------------------------ as_strided
@pytest.mark.parametrize(
    "shape,strides,offset",
    [((3, 3), (1, 1), 0), ((3,), (2,), 1), ((2, 5), (5, 1), 0), ((5, 2), (1, 5), 0), ((4,), (0,), 3), ((2, 2, 2), (4, 2, 1), 2)],
    ids=str,
)
def test_as_strided(shape, strides, offset):
    base = np.arange(12, dtype=np.int32)
    ref = np.lib.stride_tricks.as_strided(base[offset:], shape=shape, strides=[s * 4 for s in strides])
    assert_array(mx.as_strided(mx.array(base), shape, strides, offset), ref, "int32")


def test_as_strided_defaults():
    a = _a((3, 4))
    assert_array(mx.as_strided(mx.array(a)), a, "int32")
    # "as if row contiguous" even for a transposed input
    at = mx.array(a).T
    assert_array(mx.as_strided(at, (12,), (1,)), a.T.reshape(-1), "int32")


# ------------------------------------------------------------------ take / take_along_axis / put_along_axis
@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("ishape", [(3,), (2, 2), (), (0,)], ids=str)
def test_take(rng, axis, ishape):
    a = _a((3, 4, 5))
    n = a.size if axis is None else a.shape[axis]
    idx = rng.integers(-n, n, size=ishape).astype(np.int32)
    got = mx.take(mx.array(a), mx.array(idx), axis=axis)
    assert_array(got, np.take(a, idx, axis=axis), "int32")


def test_take_int_index_and_dtypes():
    a = _a((3, 4))
    assert_array(mx.take(mx.array(a), 1, axis=1), np.take(a, 1, axis=1), "int32")
    for d in ["uint8", "int16", "uint32", "int64"]:
        idx = np.array([2, 0, 1], dtype=d)
        assert_array(mx.take(mx.array(a), mx.array(idx), axis=0), np.take(a, idx, axis=0), "int32")


@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_take_along_axis(rng, axis):
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    if axis is None:
        idx = rng.integers(0, a.size, size=(7,))
    else:
        shp = list(a.shape)
        shp[axis] = 6
        idx = rng.integers(0, a.shape[axis], size=shp)
    got = mx.take_along_axis(mx.array(a), mx.array(idx.astype(np.int32)), axis=axis)
    assert_array(got, np.take_along_axis(a, idx, axis=axis), "float32")


def test_take_along_axis_argsort_like(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    idx = np.argsort(a, axis=1)
    got = mx.take_along_axis(mx.array(a), mx.array(idx.astype(np.int32)), axis=1)
    assert_array(got, np.sort(a, axis=1), "float32")


def test_take_along_axis_broadcast_indices(rng):
    a = rng.standard_normal((3, 5)).astype(np.float32)
    idx = np.array([[4, 0]], np.int32)  # broadcasts over axis 0
    got = mx.take_along_axis(mx.array(a), mx.array(idx), axis=1)
    assert_array(got, np.take_along_axis(a, np.broadcast_to(idx, (3, 2)), axis=1), "float32")


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_put_along_axis(rng, axis):
    a = np.zeros((3, 5), np.float32)
    n = a.shape[axis]
    perm = np.argsort(rng.random(a.shape), axis=axis)[(slice(None),) * (axis % 2) + (slice(0, 2),)]
    vals = rng.standard_normal(perm.shape).astype(np.float32)
    ref = a.copy()
    np.put_along_axis(ref, perm, vals, axis=axis)
    got = mx.put_along_axis(mx.array(a), mx.array(perm.astype(np.int32)), mx.array(vals), axis=axis)
    assert_array(got, ref, "float32")
    del n


def test_put_along_axis_scalar_value_and_none_axis():
    a = np.zeros((2, 3), np.float32)
    got = mx.put_along_axis(mx.array(a), mx.array([[0], [2]]), mx.array(5.0), axis=1)
    ref = a.copy()
    np.put_along_axis(ref, np.array([[0], [2]]), 5.0, axis=1)
    assert_array(got, ref, "float32")
    got = mx.put_along_axis(mx.array(a), mx.array([1, 4]), mx.array([7.0, 8.0]), axis=None)
    ref = a.copy().reshape(-1)
    ref[[1, 4]] = [7.0, 8.0]
    assert_array(got, ref.reshape(2, 3), "float32")


# ------------------------------------------------------------------ pad / roll / repeat / tile / flip / tri / diag / diff
@pytest.mark.parametrize("width", [1, (1, 2), ((1, 0), (0, 2)), ((0, 0), (3, 3)), 0], ids=str)
@pytest.mark.parametrize("mode", ["constant", "edge"])
def test_pad(width, mode):
    a = _a((2, 3))
    got = mx.pad(mx.array(a), width, mode=mode)
    assert_array(got, np.pad(a, width, mode=mode), "int32")


def test_pad_constant_value():
    a = _a((2, 2), np.float32)
    assert_array(mx.pad(mx.array(a), 1, constant_values=-1.5), np.pad(a, 1, constant_values=-1.5), "float32")


@pytest.mark.parametrize("shift,axis", [(2, None), (-7, None), (1, 0), ((1, -1), (0, 2)), (5, 1), (0, 2)], ids=str)
def test_roll(shift, axis):
    a = _a()
    assert_array(mx.roll(mx.array(a), shift, axis=axis), np.roll(a, shift, axis=axis), "int32")


@pytest.mark.parametrize("rep,axis", [(2, None), (3, 0), (2, 1), (1, -1), (0, 1)], ids=str)
def test_repeat(rep, axis):
    a = _a((2, 3))
    assert_array(mx.repeat(mx.array(a), rep, axis=axis), np.repeat(a, rep, axis=axis), "int32")


@pytest.mark.parametrize("reps", [2, (2, 2), (1, 3), (2, 1, 2), (0, 2)], ids=str)
def test_tile(reps):
    a = _a((2, 3))
    assert_array(mx.tile(mx.array(a), reps), np.tile(a, reps), "int32")


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)], ids=str)
def test_flip(axis):
    a = _a()
    assert_array(mx.flip(mx.array(a), axis=axis), np.flip(a, axis=axis), "int32")


@pytest.mark.parametrize("k", [-2, -1, 0, 1, 3])
def test_tril_triu(k):
    a = _a((2, 4, 5))
    assert_array(mx.tril(mx.array(a), k), np.tril(a, k), "int32")
    assert_array(mx.triu(mx.array(a), k), np.triu(a, k), "int32")


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_diag(k):
    v = _a((4,))
    m = _a((3, 5))
    assert_array(mx.diag(mx.array(v), k=k), np.diag(v, k=k), "int32")
    assert_array(mx.diag(mx.array(m), k=k), np.diag(m, k=k), "int32")


@pytest.mark.parametrize("offset,a1,a2", [(0, 0, 1), (1, 1, 2), (-1, 2, 0), (2, -1, -2)])
def test_diagonal(offset, a1, a2):
    a = _a((3, 4, 5))
    assert_array(mx.diagonal(mx.array(a), offset, a1, a2), np.diagonal(a, offset, a1, a2), "int32")


@pytest.mark.parametrize("n,axis", [(1, -1), (2, 1), (1, 0), (3, 2), (0, 1)])
def test_diff(n, axis):
    a = (_a((3, 4, 5)) ** 2).astype(np.int32)
    assert_array(mx.diff(mx.array(a), n=n, axis=axis), np.diff(a, n=n, axis=axis), "int32")


# ------------------------------------------------------------------ empty and 0-d everywhere
def test_shape_ops_on_empty():
    x = mx.zeros((0, 3))
    assert mx.transpose(x).shape == (3, 0)
    assert mx.reshape(x, (3, 0)).shape == (3, 0)
    assert mx.expand_dims(x, 0).shape == (1, 0, 3)
    assert mx.flatten(x).shape == (0,)
    assert mx.concatenate([x, x]).shape == (0, 3)
    assert mx.stack([x, x]).shape == (2, 0, 3)
    assert [p.shape for p in mx.split(x, 3, axis=1)] == [(0, 1)] * 3
    assert mx.broadcast_to(x, (2, 0, 3)).shape == (2, 0, 3)
    assert mx.pad(x, 1).shape == (2, 5)
    assert mx.tile(x, (2, 2)).shape == (0, 6)
    assert mx.flip(x).shape == (0, 3)
    assert mx.roll(x, 1).shape == (0, 3)
    assert mx.take(x, mx.array([0, 2]), axis=1).shape == (0, 2)
    assert x.astype(mx.int8).shape == (0, 3)


def test_shape_ops_on_scalars():
    s = mx.array(7)
    assert mx.reshape(s, (1, 1)).tolist() == [[7]]
    assert mx.expand_dims(s, 0).tolist() == [7]
    assert mx.broadcast_to(s, (2,)).tolist() == [7, 7]
    assert mx.transpose(s).item() == 7
    assert mx.flatten(s).tolist() == [7]
    assert mx.stack([s, s]).tolist() == [7, 7]
    assert s.astype(mx.float16).item() == 7.0


# ------------------------------------------------------------------ property-based: reshape / transpose / concatenate chains
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402


@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4),
    data=st.data(),
    kind=st.sampled_from(VIEW_KINDS),
)
def test_hypothesis_layout_chain(shape, data, kind):
    a = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    x = view_of(a, "int32", kind) if a.size else mx.array(a)
    perm = data.draw(st.permutations(range(len(shape))))
    a1, x1 = np.transpose(a, perm), mx.transpose(x, perm)
    assert_array(x1, a1, "int32")
    # reshape the (non-contiguous) transposed view to a random compatible shape
    flat = a1.reshape(-1)
    n = flat.size
    divs = [k for k in range(1, n + 1) if n % k == 0] or [1]
    k = data.draw(st.sampled_from(divs))
    new_shape = (k, -1) if n else (0, data.draw(st.integers(0, 3)))
    assert_array(mx.reshape(x1, new_shape), a1.reshape(new_shape), "int32")
    ax = data.draw(st.integers(-a1.ndim, a1.ndim - 1))
    assert_array(mx.concatenate([x1, x1[..., ::-1]], axis=-1), np.concatenate([a1, a1[..., ::-1]], axis=-1), "int32")
    assert_array(mx.expand_dims(x1, ax), np.expand_dims(a1, ax), "int32")
    assert_array(mx.swapaxes(x1, 0, ax), np.swapaxes(a1, 0, ax), "int32")
    assert_array(x1.astype(mx.float32) + 1, a1.astype(np.float32) + 1, "float32")
