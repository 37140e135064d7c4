"""NumPy-style indexing: __getitem__/__setitem__ with ints, slices (negative steps),
None, Ellipsis, integer arrays (advanced-indexing placement rules), boolean masks, and
``x.at[idx].add/subtract/multiply/divide/maximum/minimum``.  NumPy is the reference."""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx_testing import ALL_DTYPES, assert_array, mxdt, npdt, rand, to_mx, to_np

# ------------------------------------------------------------------ random index generator


def _rand_slice(rng, n):
    def pick():
        r = rng.random()
        if r < 0.3:
            return None
        return int(rng.integers(-n - 2, n + 3))

    step = [None, 1, 2, 3, -1, -2, -3][rng.integers(0, 7)]
    return slice(pick(), pick(), step)


def random_index(rng, shape, allow_arrays=True, max_arr_ndim=2):
    """A random NumPy index for ``shape`` and its oxmx twin (arrays converted)."""
    ndim = len(shape)
    n_explicit = ndim if rng.random() < 0.6 else int(rng.integers(0, ndim + 1))
    # an Ellipsis that stands for zero dims between advanced indices is a NumPy corner
    # case (it still "separates" them); only generate Ellipses that cover >= 1 dim
    use_ellipsis = n_explicit < ndim and rng.random() < 0.5
    ell_pos = int(rng.integers(0, n_explicit + 1)) if use_ellipsis else None
    if use_ellipsis:
        dims = list(range(ell_pos)) + list(range(ndim - (n_explicit - ell_pos), ndim))
    else:
        dims = list(range(n_explicit))
    bshape = tuple(int(s) for s in rng.integers(1, 4, size=int(rng.integers(1, max_arr_ndim + 1))))
    comps = []
    for i, dim in enumerate(dims):
        if use_ellipsis and i == ell_pos:
            comps.append(Ellipsis)
        if rng.random() < 0.12:
            comps.append(None)
        n = shape[dim]
        r = rng.random()
        if r < 0.25 and n > 0:
            comps.append(int(rng.integers(-n, n)))
        elif r < 0.5 and n > 0 and allow_arrays:
            arr_shape = bshape if rng.random() < 0.7 else bshape[-1:]
            comps.append(rng.integers(-n, n, size=arr_shape).astype(np.int32))
        else:
            comps.append(_rand_slice(rng, n))
    if use_ellipsis and ell_pos == len(dims):
        comps.append(Ellipsis)
    if rng.random() < 0.1:
        comps.append(None)
    np_idx = tuple(comps)
    mx_idx = tuple(mx.array(c) if isinstance(c, np.ndarray) else c for c in comps)
    return np_idx, mx_idx


def _fmt(idx):
    return repr(tuple(c.tolist() if isinstance(c, np.ndarray) else c for c in idx))


SHAPES = [(7,), (4, 5), (3, 4, 5), (2, 3, 4, 5), (5, 0, 3)]


@pytest.mark.parametrize("seed", range(150))
def test_getitem_random(seed):
    rng = np.random.default_rng(seed)
    shape = SHAPES[seed % len(SHAPES)]
    a = np.arange(int(np.prod(shape)), dtype=np.int32).reshape(shape)
    x = mx.array(a)
    np_idx, mx_idx = random_index(rng, shape)
    try:
        ref = a[np_idx]
    except IndexError:
        pytest.skip("index invalid for numpy too")  # rare generator corner case
    got = x[mx_idx]
    assert tuple(got.shape) == ref.shape, f"index {_fmt(np_idx)}"
    np.testing.assert_array_equal(np.array(got), ref, err_msg=f"index {_fmt(np_idx)}")


@pytest.mark.parametrize("seed", range(100))
def test_setitem_random(seed):
    rng = np.random.default_rng(1000 + seed)
    shape = SHAPES[seed % 4]
    a = np.zeros(shape, np.float32)
    x = mx.array(a)
    np_idx, mx_idx = random_index(rng, shape)
    target = np.arange(a.size).reshape(shape)[np_idx]
    unique = np.unique(target).size == target.size
    if unique and target.ndim > 0 and target.size > 0 and rng.random() < 0.7:
        # a full or broadcastable array value
        vshape = target.shape if rng.random() < 0.5 else target.shape[-1:]
        v = rng.standard_normal(vshape).astype(np.float32)
        vm = mx.array(v)
    else:
        v = np.float32(rng.integers(1, 9))
        vm = float(v)
    ref = a.copy()
    ref[np_idx] = v
    x[mx_idx] = vm
    np.testing.assert_array_equal(np.array(x), ref, err_msg=f"index {_fmt(np_idx)}")


# ------------------------------------------------------------------ basic cases
def test_int_indexing():
    a = np.arange(60, dtype=np.int32).reshape(3, 4, 5)
    x = mx.array(a)
    assert_array(x[1], a[1])
    assert_array(x[-1], a[-1])
    assert_array(x[1, 2], a[1, 2])
    assert x[1, 2, 3].item() == a[1, 2, 3]
    assert x[-3, -4, -5].item() == a[-3, -4, -5]
    assert x[0][1][2].item() == a[0][1][2]
    assert x[mx.array(1)].shape == (4, 5)
    assert x[np.int64(2), np.int32(1)].tolist() == a[2, 1].tolist()


@pytest.mark.parametrize(
    "sl",
    [
        slice(None),
        slice(1, None),
        slice(None, -1),
        slice(None, None, -1),
        slice(None, None, -2),
        slice(-1, 0, -1),
        slice(5, 1, -2),
        slice(1, 100),
        slice(-100, 100, 3),
        slice(100, -100, -3),
        slice(3, 3),
        slice(4, 2),
    ],
    ids=str,
)
def test_slices(sl):
    a = np.arange(40, dtype=np.int32).reshape(8, 5)
    x = mx.array(a)
    assert_array(x[sl], a[sl])
    assert_array(x[:, sl], a[:, sl])
    assert_array(x[sl, sl], a[sl, sl])


def test_slice_of_slice_and_views():
    a = np.arange(100, dtype=np.float32).reshape(10, 10)
    x = mx.array(a)
    assert_array(x[::2][1:, ::-3][::-1], a[::2][1:, ::-3][::-1])
    assert_array(x.T[2:7:2, ::-1], a.T[2:7:2, ::-1])
    assert_array(mx.broadcast_to(x[:1], (4, 10))[1:3, 2:], np.broadcast_to(a[:1], (4, 10))[1:3, 2:])


def test_none_and_ellipsis():
    a = np.arange(60, dtype=np.int32).reshape(3, 4, 5)
    x = mx.array(a)
    for idx in [
        (None,),
        (None, Ellipsis, None),
        (Ellipsis, 1),
        (0, Ellipsis, 0),
        (Ellipsis,),
        (1, None, slice(None), None, 2),
        (Ellipsis, None),
        (slice(None), Ellipsis, slice(1, 3), None),
    ]:
        assert_array(x[idx], a[idx])
    assert_array(x[...], a)
    assert_array(x[None], a[None])


def test_scalar_array_indexing():
    s = mx.array(5.0)
    assert s[...].item() == 5.0
    assert s[None].shape == (1,)
    assert s[()].item() == 5.0


# ------------------------------------------------------------------ advanced (integer array) indexing
ADV_CASES = [
    lambda I, J: (I,),
    lambda I, J: (I, J),
    lambda I, J: (I, slice(None), J),  # separated: advanced dims go first
    lambda I, J: (slice(None), I, J),  # adjacent: advanced dims stay in place
    lambda I, J: (slice(None), I),
    lambda I, J: (Ellipsis, I),
    lambda I, J: (I, Ellipsis, J),
    lambda I, J: (1, slice(None), J),  # int counts as advanced, separated
    lambda I, J: (slice(None), 1, J),  # adjacent int + array
    lambda I, J: (None, I, 1),
    lambda I, J: (I, slice(None, None, -2), J),
    lambda I, J: (I[:, None], slice(None), J),
    lambda I, J: (I[:, None], J[None, :]),
    lambda I, J: (slice(1, 3), I[:, None], J),
    lambda I, J: (I, None, J),
]


@pytest.mark.parametrize("case", range(len(ADV_CASES)))
def test_advanced_indexing_placement(case):
    a = np.arange(120, dtype=np.int32).reshape(4, 5, 6)
    I = np.array([0, 3, -1], np.int32)
    J = np.array([1, -2, 4], np.int32)
    np_idx = ADV_CASES[case](I, J)
    mx_idx = tuple(mx.array(c) if isinstance(c, np.ndarray) else c for c in np_idx)
    ref = a[np_idx]
    got = mx.array(a)[mx_idx]
    assert tuple(got.shape) == ref.shape
    np.testing.assert_array_equal(np.array(got), ref)


def test_list_index_is_array_index():
    a = np.arange(20, dtype=np.int32).reshape(4, 5)
    assert_array(mx.array(a)[[0, 2, 2]], a[[0, 2, 2]])


@pytest.mark.parametrize("d", ["uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64"])
def test_index_array_dtypes(d):
    a = np.arange(10, dtype=np.float32) * 1.5
    idx = np.array([9, 0, 3, 3], dtype=d)
    assert_array(mx.array(a)[mx.array(idx)], a[idx], "float32")


def test_multidim_index_array():
    a = np.arange(30, dtype=np.int32).reshape(5, 6)
    idx = np.array([[0, 4], [2, 2], [1, 3]])
    assert_array(mx.array(a)[mx.array(idx)], a[idx])
    assert_array(mx.array(a)[:, mx.array(idx)], a[:, idx])


def test_empty_index_array():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    e = np.zeros((0,), np.int32)
    assert_array(mx.array(a)[mx.array(e)], a[e])
    assert_array(mx.array(a)[:, mx.array(e)], a[:, e])


@pytest.mark.parametrize("d", ALL_DTYPES)
def test_getitem_every_dtype(rng, d):
    a = rand(rng, (4, 6), d)
    x = to_mx(a, d)
    for idx_np, idx_mx in [
        ((1,), (1,)),
        ((slice(None, None, -1), 2), (slice(None, None, -1), 2)),
        ((np.array([3, 0]),), (mx.array([3, 0]),)),
        ((Ellipsis, np.array([5, 1, 1])), (Ellipsis, mx.array([5, 1, 1]))),
    ]:
        got = x[idx_mx]
        assert got.dtype == mxdt(d)
        np.testing.assert_array_equal(to_np(got), a[idx_np])


# ------------------------------------------------------------------ boolean masks (evaluate their input)
def test_bool_mask_full():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = a % 3 == 1
    assert_array(mx.array(a)[mx.array(m)], a[m], "float32")


def test_bool_mask_from_comparison():
    a = np.array([3.0, -1.0, 0.5, -2.0, 7.0], np.float32)
    x = mx.array(a)
    assert_array(x[x > 0], a[a > 0], "float32")
    assert_array(x[x > 100], a[a > 100], "float32")  # empty result


def test_bool_mask_leading_axis_and_combined():
    a = np.arange(24, dtype=np.int32).reshape(4, 6)
    m = np.array([True, False, True, True])
    x = mx.array(a)
    assert_array(x[mx.array(m)], a[m])
    assert_array(x[mx.array(m), 1:4], a[m, 1:4])
    m2 = np.array([False, True, False, False, True, True])
    assert_array(x[:, mx.array(m2)], a[:, m2])
    assert_array(x[mx.array(m), ::-2], a[m, ::-2])


def test_bool_mask_wrong_shape():
    with pytest.raises(IndexError):
        y = mx.arange(5)[mx.array([True, False])]
        mx.eval(y)


def test_bool_mask_setitem():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    m = a > 5
    ref = a.copy()
    ref[m] = -1
    x = mx.array(a)
    x[mx.array(m)] = -1
    assert_array(x, ref, "float32")
    ref2 = a.copy()
    rows = np.array([True, False, True])
    ref2[rows] = np.array([9, 8, 7, 6], np.float32)
    x2 = mx.array(a)
    x2[mx.array(rows)] = mx.array([9, 8, 7, 6], dtype=mx.float32)
    assert_array(x2, ref2, "float32")


def test_bool_python_scalar_index():
    a = np.arange(3, dtype=np.int32)
    assert tuple(mx.array(a)[True].shape) == a[True].shape
    assert tuple(mx.array(a)[False].shape) == a[False].shape


def test_nonzero():
    a = np.array([[0, 1, 0], [2, 0, 3]], np.int32)
    got = mx.nonzero(mx.array(a))
    ref = np.nonzero(a)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        np.testing.assert_array_equal(np.array(g), r)
    assert mx.nonzero(mx.zeros((2, 2)))[0].shape == (0,)


# ------------------------------------------------------------------ setitem specifics
def test_setitem_basic_forms():
    ref = np.zeros((3, 4), np.float32)
    x = mx.zeros((3, 4))
    steps = [
        ((1,), 5.0),
        ((slice(None), slice(1, 3)), np.array([1.0, 2.0], np.float32)),
        ((slice(None, None, -1), 0), np.array([1.0, 2.0, 3.0], np.float32)),
        ((Ellipsis, -1), 2.5),
        ((None,), 0.25),
        ((1, 2), np.float32(9.0)),
        ((slice(None, None, -2), slice(None, None, -3)), np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)),
    ]
    for idx, v in steps:
        ref[idx] = v
        x[idx] = mx.array(v) if isinstance(v, np.ndarray) else v
        np.testing.assert_array_equal(np.array(x), ref, err_msg=str(idx))


def test_setitem_advanced_forms():
    ref = np.zeros((4, 5), np.int32)
    x = mx.zeros((4, 5), dtype=mx.int32)
    I = np.array([0, 2], np.int32)
    J = np.array([1, 4], np.int32)
    for idx, v in [
        ((I, 1), 7),
        ((I, J), np.array([3, 4], np.int32)),
        ((slice(None), J), np.array([[1], [2], [3], [4]], np.int32)),
        ((I[:, None], J[None, :]), np.array([[5, 6], [7, 8]], np.int32)),
        ((np.array([-1]),), 9),
    ]:
        ref[idx] = v
        midx = tuple(mx.array(c) if isinstance(c, np.ndarray) else c for c in idx)
        x[midx] = mx.array(v) if isinstance(v, np.ndarray) else v
        np.testing.assert_array_equal(np.array(x), ref, err_msg=str(idx))


def test_setitem_casts_value_to_array_dtype():
    x = mx.zeros((3,), dtype=mx.int32)
    x[1] = 2.7
    assert x.dtype == mx.int32 and x.tolist() == [0, 2, 0]
    y = mx.zeros((2,), dtype=mx.float16)
    y[0] = mx.array(1.5, dtype=mx.float32)
    assert y.dtype == mx.float16 and y.tolist() == [1.5, 0.0]


def test_setitem_does_not_affect_earlier_results():
    x = mx.array([1, 2, 3])
    y = x * 2
    z = x[1:]
    x[0] = 100
    assert y.tolist() == [2, 4, 6]
    assert z.tolist() == [2, 3]
    assert x.tolist() == [100, 2, 3]


def test_setitem_on_view_of_array():
    a = mx.arange(6).reshape(2, 3)
    b = a.T
    b[0] = mx.array([7, 8])
    assert b.tolist() == [[7, 8], [1, 4], [2, 5]]


def test_setitem_bad_broadcast():
    x = mx.zeros((3, 4))
    with pytest.raises(ValueError):
        x[0] = mx.ones((2,))
    with pytest.raises(ValueError):
        x[:, :2] = mx.ones((3, 3))


def test_setitem_empty_selection():
    x = mx.arange(5)
    x[3:3] = 9
    x[mx.zeros((0,), dtype=mx.int32)] = 9
    assert x.tolist() == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ x.at[...]
AT_OPS = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
}


@pytest.mark.parametrize("op", list(AT_OPS))
@pytest.mark.parametrize("case", ["dup-int-array", "slice", "int", "tuple-arrays", "scalar-value", "2d-index"])
def test_at_ops(rng, op, case):
    a = rng.uniform(1, 3, size=(6, 4)).astype(np.float32)
    if case == "dup-int-array":
        np_idx = (np.array([0, 2, 2, 5, 0, 0], np.int32),)
        v = rng.uniform(0.5, 2, size=(6, 4)).astype(np.float32)
    elif case == "slice":
        np_idx = (slice(1, 5, 2),)
        v = rng.uniform(0.5, 2, size=(2, 4)).astype(np.float32)
    elif case == "int":
        np_idx = (3,)
        v = rng.uniform(0.5, 2, size=(4,)).astype(np.float32)
    elif case == "tuple-arrays":
        np_idx = (np.array([1, 1, 4], np.int32), np.array([0, 0, 3], np.int32))
        v = rng.uniform(0.5, 2, size=(3,)).astype(np.float32)
    elif case == "scalar-value":
        np_idx = (np.array([1, 1, -1], np.int32),)
        v = np.float32(1.75)
    else:
        np_idx = (np.array([[0, 1], [1, 5]], np.int32), slice(None, 2))
        v = rng.uniform(0.5, 2, size=(2, 2, 2)).astype(np.float32)
    ref = a.copy()
    AT_OPS[op].at(ref, np_idx if len(np_idx) > 1 else np_idx[0], v)
    x = mx.array(a)
    mx_idx = tuple(mx.array(c) if isinstance(c, np.ndarray) else c for c in np_idx)
    mx_idx = mx_idx if len(mx_idx) > 1 else mx_idx[0]
    mv = mx.array(v) if isinstance(v, np.ndarray) else float(v)
    got = getattr(x.at[mx_idx], op)(mv)
    assert_array(got, ref, "float32", rtol=1e-5, atol=1e-6)
    # functional: the source is unchanged
    np.testing.assert_array_equal(np.array(x), a)


@pytest.mark.parametrize("d", ["int32", "int8", "uint8", "int64", "float16", "bfloat16", "float64"])
def test_at_add_dtypes(d):
    a = np.zeros(5, dtype=npdt(d))
    idx = np.array([0, 0, 4, 4, 4], np.int32)
    ref = np.zeros(5, np.float64)
    np.add.at(ref, idx, 1)
    got = to_mx(a, d).at[mx.array(idx)].add(1)
    assert got.dtype == mxdt(d)
    np.testing.assert_array_equal(np.array(got.astype(mx.float64)), ref)


def test_at_many_duplicates_accumulate():
    idx = np.zeros(10000, np.int32)
    got = mx.zeros((3,)).at[mx.array(idx)].add(1.0)
    assert got.tolist() == [10000.0, 0.0, 0.0]


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("idx", [(3,), (-4,), (0, 5), (0, -6), (2, 0)], ids=str)
def test_int_out_of_range(idx):
    x = mx.zeros((3, 5))
    if idx == (2, 0):
        x[idx]  # valid
        return
    with pytest.raises(IndexError):
        x[idx]
    with pytest.raises(IndexError):
        x[idx] = 1.0


def test_slice_step_zero():
    with pytest.raises(ValueError):
        mx.arange(5)[::0]
    x = mx.arange(5)
    with pytest.raises(ValueError):
        x[::0] = 1


def test_too_many_indices():
    with pytest.raises((IndexError, ValueError)):
        mx.zeros((2, 3))[0, 1, 2]
    with pytest.raises((IndexError, ValueError)):
        mx.array(1.0)[0]


def test_two_ellipses():
    with pytest.raises((IndexError, ValueError)):
        mx.zeros((2, 3))[..., ...]


@pytest.mark.parametrize("bad", [1.5, "a", {1: 2}, mx.array([0.5, 1.0])], ids=["float", "str", "dict", "float-array"])
def test_bad_index_types(bad):
    with pytest.raises((TypeError, ValueError, IndexError)):
        mx.eval(mx.zeros((3,))[bad])


@pytest.mark.parametrize("idx", [[3], [-4], [0, 1, 100], [-(2**31)]], ids=str)
def test_array_index_out_of_range(idx):
    x = mx.arange(3)
    with pytest.raises(IndexError):
        y = x[mx.array(idx)]
        y.tolist()


def test_array_index_out_of_range_setitem_and_at():
    x = mx.arange(3)
    with pytest.raises(IndexError):
        x[mx.array([7])] = 1
        x.tolist()
    with pytest.raises(IndexError):
        mx.arange(3).at[mx.array([7])].add(1).tolist()
    # the process keeps working afterwards
    assert (mx.arange(3) + 1).tolist() == [1, 2, 3]
