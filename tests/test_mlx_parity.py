"""MLX-parity fixes checked against NumPy: __version__, linspace(endpoint), asarray(copy),
__array__(copy), pad reflect/symmetric, roll with tuples, x.at[] updates, summarized
printing, and complex logaddexp / logcumsumexp."""

import cmath
import math

import numpy as np
import pytest

import oxmx.core as mx


# ---------------------------------------------------------------- __version__
def test_version():
    import oxmx

    assert isinstance(mx.__version__, str)
    assert mx.__version__ == oxmx.__version__
    assert mx.__version__.count(".") >= 2


# ---------------------------------------------------------------- linspace
@pytest.mark.parametrize("endpoint", [True, False])
@pytest.mark.parametrize("start,stop,num", [(0, 1, 5), (5, 0, 6), (-3.5, 7.25, 11), (2, 2, 4), (0, 1, 0), (3, 1, 1)])
def test_linspace_endpoint(start, stop, num, endpoint):
    x = mx.linspace(start, stop, num, endpoint=endpoint)
    ref = np.linspace(start, stop, num, endpoint=endpoint, dtype=np.float32)
    assert x.dtype == mx.float32
    assert x.shape == ref.shape
    np.testing.assert_allclose(np.array(x), ref, rtol=1e-6, atol=1e-6)


def test_linspace_float32_formula():
    # MLX's values: t = i / (num - 1) in float32, (1 - t) * start + t * stop.
    a, b, n = 345.584192064786, 3304.3707618338713, 33
    t = np.arange(n, dtype=np.float32) / np.float32(n - 1)
    ref = (np.float32(1) - t) * np.float32(a) + t * np.float32(b)
    np.testing.assert_array_equal(np.array(mx.linspace(a, b, n)), ref)
    t = np.arange(n, dtype=np.float32) / np.float32(n)
    ref = (np.float32(1) - t) * np.float32(a) + t * np.float32(b)
    np.testing.assert_array_equal(np.array(mx.linspace(a, b, n, endpoint=False)), ref)


def test_linspace_float64_and_ints():
    x = mx.linspace(0.3, 0.7, 7, dtype=mx.float64)
    t = np.arange(7, dtype=np.float64) / 6.0
    np.testing.assert_array_equal(np.array(x), (1 - t) * 0.3 + t * 0.7)
    assert mx.linspace(0, 10, 5, dtype=mx.int32).tolist() == [0, 2, 5, 7, 10]
    assert mx.linspace(0, 10, 5, endpoint=False, dtype=mx.int64).tolist() == [0, 2, 4, 6, 8]
    # one sample: start rounded to float32, then cast
    assert mx.linspace(0.1, 1, 1, dtype=mx.float64).item() == float(np.float32(0.1))


def test_linspace_positional_endpoint_then_dtype():
    x = mx.linspace(0, 1, 4, False, mx.float16)
    assert x.dtype == mx.float16
    np.testing.assert_allclose(np.array(x), [0, 0.25, 0.5, 0.75])


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: mx.linspace(0, 1, 3, endpoint=1), TypeError),
        (lambda: mx.linspace(0, 1, 3.0), TypeError),
        (lambda: mx.linspace(0, 1, 2**40), TypeError),
        (lambda: mx.linspace(0, 1, -1), ValueError),
        (lambda: mx.linspace(0, 1, -1, endpoint=False), ValueError),
    ],
)
def test_linspace_bad_arguments(call, exc):
    with pytest.raises(exc, match=r"\[linspace\]"):
        call()


# ---------------------------------------------------------------- asarray / __array__
def test_asarray_copy_true_and_none():
    a = mx.array([1, 2, 3])
    for copy in (None, True):
        b = mx.asarray(a, copy=copy)
        assert b is not a
        b[0] = 9
        assert a.tolist() == [1, 2, 3]
        assert b.tolist() == [9, 2, 3]
    n = np.array([1.0, 2.0], dtype=np.float32)
    b = mx.asarray(n, mx.float16, copy=True)
    n[0] = 100
    assert b.dtype == mx.float16 and b.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("src", [lambda: mx.array([1, 2]), lambda: np.arange(3, dtype=np.float32), lambda: [1, 2], lambda: 3.5])
def test_asarray_copy_false_refused(src):
    # Like MLX on the CPU: every conversion copies, so copy=False is a ValueError.
    with pytest.raises(ValueError, match=r"\[asarray\]"):
        mx.asarray(src(), copy=False)


@pytest.mark.parametrize("copy", [1, "yes", np.True_])
def test_asarray_copy_must_be_bool(copy):
    with pytest.raises(TypeError, match=r"\[asarray\]"):
        mx.asarray(mx.array([1]), copy=copy)


def test_asarray_bad_arguments():
    with pytest.raises(TypeError):
        mx.asarray(mx.array([1]), None, True)  # copy is keyword-only
    with pytest.raises(TypeError):
        mx.asarray(None)
    with pytest.raises(ValueError):
        mx.asarray(object())


def test_numpy_array_copy_protocol():
    b = mx.array([1.0, 2.0])
    for copy in (None, True, False):
        r = np.array(b, copy=copy)
        np.testing.assert_array_equal(r, [1.0, 2.0])
        assert r.dtype == np.float32
    # a real copy is independent and writeable
    r = np.array(b, copy=True)
    r[0] = 5
    assert b.tolist() == [1.0, 2.0]
    # copy=False with a dtype change cannot be honoured
    with pytest.raises(ValueError):
        np.array(b, dtype=np.float64, copy=False)
    np.testing.assert_array_equal(np.array(mx.array(3), copy=False), 3)
    assert np.array(mx.zeros((0, 3)), copy=False).shape == (0, 3)
    np.testing.assert_array_equal(np.array(mx.array([1 + 2j]), copy=False), [1 + 2j])


def test_dunder_array_copy_keyword():
    b = mx.array([1.0, 2.0])
    for copy in (None, True, False, 1, 0):
        np.testing.assert_array_equal(b.__array__(copy=copy), [1.0, 2.0])
    r = b.__array__(copy=True)
    assert r.flags.writeable
    r[0] = 7
    assert b.tolist() == [1.0, 2.0]
    v = b.__array__(copy=False)  # zero-copy view: read-only
    assert not v.flags.writeable
    assert b.__array__(np.float64, copy=True).dtype == np.float64
    with pytest.raises(ValueError, match=r"\[__array__\]"):
        b.__array__(np.float64, copy=False)
    with pytest.raises(TypeError):
        mx.array([1.0], dtype=mx.bfloat16).__array__()


# ---------------------------------------------------------------- pad
PAD_WIDTHS_1D = [0, 2, 4, 5, 6, 13, (3,), (1, 3), [(0, 3)], ((2, 1),)]


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("pw", PAD_WIDTHS_1D)
def test_pad_1d(mode, pw):
    a = np.arange(5, dtype=np.int32)
    np_pw = pw if not isinstance(pw, tuple) or len(pw) != 1 or isinstance(pw[0], tuple) else pw[0]
    ref = np.pad(a, np_pw, mode=mode)
    out = mx.pad(mx.array(a), pw, mode=mode)
    assert out.dtype == mx.int32
    np.testing.assert_array_equal(np.array(out), ref)


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
@pytest.mark.parametrize("pw", [1, 3, (2, 1), [(1, 2), (3, 0)], [(5, 5), (7, 7)], [(0, 0), (1, 1)], [(1, 2)]])
def test_pad_2d(mode, pw):
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    np_pw = pw[0] if isinstance(pw, list) and len(pw) == 1 else pw
    np.testing.assert_array_equal(np.array(mx.pad(mx.array(a), pw, mode=mode)), np.pad(a, np_pw, mode=mode))


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_pad_3d_and_dtypes(mode):
    a = np.arange(24).reshape(2, 3, 4).astype(np.int32)
    np.testing.assert_array_equal(np.array(mx.pad(mx.array(a), 3, mode=mode)), np.pad(a, 3, mode=mode))
    b = np.array([True, False, True])
    np.testing.assert_array_equal(np.array(mx.pad(mx.array(b), 4, mode=mode)), np.pad(b, 4, mode=mode))
    c = np.array([1 + 1j, 2 - 1j], dtype=np.complex64)
    np.testing.assert_array_equal(np.array(mx.pad(mx.array(c), 3, mode=mode)), np.pad(c, 3, mode=mode))
    h = mx.pad(mx.array([1.5, 2.5], dtype=mx.bfloat16), 3, mode=mode)
    assert h.dtype == mx.bfloat16
    np.testing.assert_array_equal(np.array(h.astype(mx.float32)), np.pad(np.array([1.5, 2.5]), 3, mode=mode))


@pytest.mark.parametrize("mode", ["reflect", "symmetric"])
def test_pad_reflect_edge_cases(mode):
    np.testing.assert_array_equal(np.array(mx.pad(mx.array([1]), 2, mode=mode)), [1] * 5)
    assert mx.pad(mx.array(3), 2, mode=mode).item() == 3
    assert mx.pad(mx.zeros((0, 3)), [(0, 0), (1, 1)], mode=mode).shape == (0, 5)
    assert mx.pad(mx.array([], dtype=mx.float32), 0, mode=mode).shape == (0,)
    # constant_values is ignored outside constant mode
    np.testing.assert_array_equal(
        np.array(mx.pad(mx.arange(5), 2, mode=mode, constant_values=7)), np.pad(np.arange(5), 2, mode=mode)
    )
    with pytest.raises(ValueError, match=r"\[pad\] Cannot pad empty axis 0"):
        mx.pad(mx.array([], dtype=mx.float32), 2, mode=mode)


def test_pad_edge_of_empty_axis_gives_zeros():
    np.testing.assert_array_equal(np.array(mx.pad(mx.array([], dtype=mx.float32), 2, mode="edge")), np.zeros(4))


def test_pad_constant_values():
    a = mx.arange(5)
    np.testing.assert_array_equal(np.array(mx.pad(a, 2, constant_values=7)), np.pad(np.arange(5), 2, constant_values=7))
    assert mx.pad(a, 1, constant_values=7.5).tolist() == [7, 0, 1, 2, 3, 4, 7]
    f = mx.pad(mx.arange(3, dtype=mx.float16), 1, constant_values=7.5)
    assert f.dtype == mx.float16 and f.tolist() == [7.5, 0, 1, 2, 7.5]
    # an array fill value: its first element, as MLX
    assert mx.pad(a, 1, constant_values=mx.array([5, 6])).tolist() == [5, 0, 1, 2, 3, 4, 5]
    assert mx.pad(a, 1, constant_values=np.array([[8]])).tolist() == [8, 0, 1, 2, 3, 4, 8]
    assert mx.pad(mx.arange(3) > 0, 1, constant_values=True).tolist() == [True, False, True, True, True]


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: mx.pad(mx.arange(5), -1, mode="reflect"), ValueError),
        (lambda: mx.pad(mx.arange(5), (-1, 2)), ValueError),
        (lambda: mx.pad(mx.arange(5), 2, mode="wrap"), ValueError),
        (lambda: mx.pad(mx.arange(5), 2, mode=1), TypeError),
        (lambda: mx.pad(mx.arange(5), 2, mode=None), TypeError),
        (lambda: mx.pad(mx.arange(12).reshape(3, 4), [(1, 2)] * 3), ValueError),
        (lambda: mx.pad(mx.arange(12).reshape(3, 4), [1, 2, 3]), TypeError),
        (lambda: mx.pad(mx.arange(12).reshape(3, 4), [(1,), (2,)]), TypeError),
        (lambda: mx.pad(mx.arange(12).reshape(3, 4), 1.5), TypeError),
        (lambda: mx.pad(mx.arange(12).reshape(3, 4), "a"), TypeError),
        (lambda: mx.pad(mx.arange(12).reshape(3, 4), None), TypeError),
        (lambda: mx.pad(mx.arange(3), (2**40, 0)), TypeError),
        (lambda: mx.pad(mx.arange(5), []), ValueError),
        (lambda: mx.pad(mx.arange(5), 2, constant_values=None), TypeError),
        (lambda: mx.pad(mx.arange(5), 2, constant_values=[5, 6]), ValueError),
        (lambda: mx.pad(mx.arange(5), 2, constant_values=2**40), ValueError),
        (lambda: mx.pad(mx.arange(5, dtype=mx.uint8), 2, constant_values=-1), ValueError),
    ],
)
def test_pad_bad_arguments(call, exc):
    with pytest.raises(exc, match=r"\[pad\]"):
        call()


def test_pad_integer_like_widths():
    ref = np.pad(np.arange(5), 2)
    for pw in (True and 2, np.int64(2), mx.array(2)):
        np.testing.assert_array_equal(np.array(mx.pad(mx.arange(5), pw)), ref)
    np.testing.assert_array_equal(np.array(mx.pad(mx.arange(5), True)), np.pad(np.arange(5), 1))


# ---------------------------------------------------------------- roll
@pytest.mark.parametrize(
    "shift,axis",
    [(1, (0, 1)), ((1, 2), (0, 1)), ((1, 2), (1, 0)), ((1, -1), (-1, -2)), ((5, 1), (2, 2)), (7, None), (-3, 1)],
)
def test_roll_matches_numpy(shift, axis):
    a = np.arange(24).reshape(2, 3, 4)
    np.testing.assert_array_equal(np.array(mx.roll(mx.array(a), shift, axis)), np.roll(a, shift, axis))


def test_roll_tuple_shift_rules():
    a = np.arange(12).reshape(3, 4)
    x = mx.array(a)
    # no axis, or a single axis: the shifts add up
    np.testing.assert_array_equal(np.array(mx.roll(x, (5, 1))), np.roll(a, 6))
    np.testing.assert_array_equal(np.array(mx.roll(x, (1, 1), 0)), np.roll(a, 2, 0))
    np.testing.assert_array_equal(np.array(mx.roll(x, (), 1)), a)
    np.testing.assert_array_equal(np.array(mx.roll(x, ())), a)
    # tuple of axes: one shift per axis, extra shifts ignored
    np.testing.assert_array_equal(np.array(mx.roll(x, (1, 2, 3), (0, 1))), np.roll(a, (1, 2), (0, 1)))
    np.testing.assert_array_equal(np.array(mx.roll(x, (1, 1), (1,))), np.roll(a, 1, 1))
    np.testing.assert_array_equal(np.array(mx.roll(x, 1, ())), a)
    np.testing.assert_array_equal(np.array(mx.roll(x, [1, 2], [0, 1])), np.roll(a, (1, 2), (0, 1)))
    np.testing.assert_array_equal(np.array(mx.roll(x, np.int64(2), np.int64(1))), np.roll(a, 2, 1))
    np.testing.assert_array_equal(np.array(mx.roll(x, shift=1, axis=0)), np.roll(a, 1, 0))


def test_roll_edge_cases():
    assert mx.roll(mx.array(5), 1).item() == 5
    assert mx.roll(mx.array(5), (1, 2)).item() == 5
    assert mx.roll(mx.zeros((0, 3)), 2, 1).shape == (0, 3)
    assert mx.roll(mx.zeros((0,)), (1, 2)).shape == (0,)


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), (1,), (0, 1)), ValueError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), 1, 2), IndexError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), 1, -3), IndexError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), 1, (0, 5)), IndexError),
        (lambda: mx.roll(mx.array(5), 1, 0), IndexError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), 1.5), TypeError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), None), TypeError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), (1, 2.0), (0, 1)), TypeError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), 2**40), TypeError),
        (lambda: mx.roll(mx.arange(12).reshape(3, 4), (2**31 - 1, 2**31 - 1)), OverflowError),
    ],
)
def test_roll_bad_arguments(call, exc):
    with pytest.raises(exc, match=r"\[roll\]"):
        call()


# ---------------------------------------------------------------- x.at[...]
def _np_at(a, idx, op, v):
    r = a.copy()
    getattr(np, op).at(r, idx, v)
    return r


@pytest.mark.parametrize(
    "op,npop",
    [("add", "add"), ("subtract", "subtract"), ("multiply", "multiply"), ("maximum", "maximum"), ("minimum", "minimum")],
)
@pytest.mark.parametrize("idx", [np.array([0, 0, 1, 5, 5, 5]), 3, -1, slice(2, 5), slice(None, None, -3)])
def test_at_ops_1d(op, npop, idx):
    a = np.arange(10, dtype=np.float32) - 4
    n = len(a[idx]) if not isinstance(idx, int) else None
    vals = [2.5, np.linspace(-3, 3, n, dtype=np.float32) if n else np.float32(-1.5)]
    for v in vals:
        m_idx = mx.array(idx) if isinstance(idx, np.ndarray) else idx
        m_v = mx.array(v) if isinstance(v, np.ndarray) else float(v)
        out = getattr(mx.array(a).at[m_idx], op)(m_v)
        assert out.dtype == mx.float32
        np.testing.assert_allclose(np.array(out), _np_at(a, idx, npop, v), rtol=1e-6)


def test_at_divide_float():
    a = np.arange(10, dtype=np.float32)
    out = mx.array(a).at[mx.array([2, 2, 4])].divide(mx.array([2.0, 4.0, 8.0]))
    ref = a.copy()
    np.divide.at(ref, [2, 2, 4], np.array([2.0, 4.0, 8.0], dtype=np.float32))
    np.testing.assert_allclose(np.array(out), ref, rtol=1e-6)
    out = mx.array(a).at[3].divide(2)
    assert out.tolist()[3] == 1.5


def test_at_2d_indices():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = mx.array(a)
    ref = a.copy()
    np.add.at(ref, (np.array([0, 0]), np.array([1, 1])), 1)
    np.testing.assert_array_equal(np.array(x.at[mx.array([0, 0]), mx.array([1, 1])].add(1)), ref)
    ref = a.copy()
    np.add.at(ref, (slice(None), np.array([0, 0, 3])), 1)
    np.testing.assert_array_equal(np.array(x.at[:, mx.array([0, 0, 3])].add(1)), ref)
    ref = a.copy()
    np.multiply.at(ref, (slice(None), 1), np.array([1, 2, 3], dtype=np.float32))
    np.testing.assert_array_equal(np.array(x.at[:, 1].multiply(mx.array([1, 2, 3]))), ref)
    ref = a.copy()
    np.subtract.at(ref, (np.array([0, 0]), slice(1, 3)), np.array([5, 6], dtype=np.float32))
    np.testing.assert_array_equal(np.array(x.at[mx.array([0, 0]), 1:3].subtract(mx.array([5, 6]))), ref)
    ref = a.copy()
    ref[..., 0] /= 2
    np.testing.assert_array_equal(np.array(x.at[..., 0].divide(2)), ref)
    # an update with extra leading length-1 axes is accepted, as MLX
    ref = a.copy()
    ref[1] += np.array([1, 2, 3, 4], dtype=np.float32)
    np.testing.assert_array_equal(np.array(x.at[1].add(mx.array([[[1, 2, 3, 4]]]))), ref)
    assert mx.array(5).at[...].add(1).item() == 6
    assert mx.array(5).at[None].multiply(2).item() == 10


def test_at_integer_semantics():
    a = mx.arange(10)
    # the update is cast to the array's dtype; divide multiplies by 1/v
    assert a.at[mx.array([7])].divide(0.5).tolist()[7] == 14
    assert a.at[mx.array([7])].divide(3).tolist()[7] == 0
    assert a.at[mx.array([7])].multiply(0.7).tolist()[7] == 0
    assert a.at[mx.array([7])].subtract(0.5).tolist()[7] == 7
    assert a.at[mx.array([3, 3, 3])].divide(mx.array([1, 1, 1])).tolist()[3] == 3
    u = mx.arange(3, dtype=mx.uint8).at[mx.array([0])].subtract(1)
    assert u.dtype == mx.uint8 and u.tolist() == [255, 1, 2]
    h = mx.arange(3, dtype=mx.int16).at[mx.array([0, 0])].add(mx.array([1, 2], dtype=mx.int64))
    assert h.dtype == mx.int16 and h.tolist() == [3, 1, 2]
    b = mx.zeros((3,), dtype=mx.bool_).at[mx.array([0, 0])].add(True)
    assert b.dtype == mx.bool_ and b.tolist() == [True, False, False]
    c = mx.zeros((2,), dtype=mx.complex64).at[mx.array([0, 0])].add(1j)
    assert c.tolist() == [2j, 0j]


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda: mx.arange(3, dtype=mx.uint8).at[mx.array([0])].add(-5), ValueError),
        (lambda: mx.arange(3).at[mx.array([0])].add(2**40), ValueError),
        (lambda: mx.arange(3).at[mx.array([0])].add(None), TypeError),
        (lambda: mx.arange(3).at[mx.array([0])].add([1]), ValueError),
    ],
)
def test_at_bad_values(call, exc):
    with pytest.raises(exc, match=r"\[at\."):
        call()


def test_at_value_is_positional_only():
    with pytest.raises(TypeError):
        mx.arange(3).at[0].add(v=1)


# ---------------------------------------------------------------- printing
def test_print_summarizes_long_axes():
    assert repr(mx.arange(6)) == "array([0, 1, 2, 3, 4, 5], dtype=int32)"
    assert repr(mx.arange(7)) == "array([0, 1, 2, ..., 4, 5, 6], dtype=int32)"
    assert str(mx.arange(1001)) == "array([0, 1, 2, ..., 998, 999, 1000], dtype=int32)"
    assert repr(mx.arange(2000)) == "array([0, 1, 2, ..., 1997, 1998, 1999], dtype=int32)"


def test_print_summarizes_nested():
    expected = (
        "array([[0, 1, 2, ..., 4, 5, 6],\n"
        "       [7, 8, 9, ..., 11, 12, 13],\n"
        "       [14, 15, 16, ..., 18, 19, 20],\n"
        "       ...,\n"
        "       [28, 29, 30, ..., 32, 33, 34],\n"
        "       [35, 36, 37, ..., 39, 40, 41],\n"
        "       [42, 43, 44, ..., 46, 47, 48]], dtype=int32)"
    )
    assert repr(mx.arange(49).reshape(7, 7)) == expected
    r = repr(mx.arange(8 * 2 * 2).reshape(8, 2, 2))
    assert r.startswith("array([[[0, 1],\n        [2, 3]],\n       [[4, 5],")
    assert "\n       ...,\n       [[20, 21]," in r
    r = repr(mx.arange(3 * 400).reshape(3, 400))
    assert r.splitlines()[0] == "array([[0, 1, 2, ..., 397, 398, 399],"
    assert len(r.splitlines()) == 3
    r = repr(mx.arange(11**3).reshape(11, 11, 11))
    assert r.count("...") == 6 * 6 + 6 + 1


def test_print_empty_and_scalars():
    assert repr(mx.array([], dtype=mx.float32)) == "array([], dtype=float32)"
    assert repr(mx.zeros((7, 0))) == "array([[],\n       [],\n       [],\n       ...,\n       [],\n       [],\n       []], dtype=float32)"
    assert repr(mx.array(1.5)) == "array(1.5, dtype=float32)"


def test_print_dtypes_summarized():
    x = np.array([-1.5, 0.1, np.nan, np.inf, -np.inf, 2.0, 3.25], dtype=np.float32)
    assert repr(mx.array(x)) == "array([-1.5, 0.1, nan, ..., -inf, 2, 3.25], dtype=float32)"
    assert repr(mx.array(x.astype(np.float16))) == "array([-1.5, 0.0999756, nan, ..., -inf, 2, 3.25], dtype=float16)"
    assert repr(mx.array([True] * 7)) == "array([True, True, True, ..., True, True, True], dtype=bool)"
    big = mx.array([2**40] * 8, dtype=mx.int64)
    assert repr(big) == f"array([{2**40}, {2**40}, {2**40}, ..., {2**40}, {2**40}, {2**40}], dtype=int64)"
    c = mx.array([1 + 2j] * 7, dtype=mx.complex64)
    assert repr(c) == "array([1+2j, 1+2j, 1+2j, ..., 1+2j, 1+2j, 1+2j], dtype=complex64)"
    bf = mx.arange(7).astype(mx.bfloat16)
    assert repr(bf) == "array([0, 1, 2, ..., 4, 5, 6], dtype=bfloat16)"


def test_print_negative_nan():
    neg_nan = np.array([np.nan], dtype=np.float32)
    neg_nan.view(np.uint32)[0] |= np.uint32(0x80000000)
    assert repr(mx.array(neg_nan)) == "array([-nan], dtype=float32)"


# ---------------------------------------------------------------- complex logaddexp / logcumsumexp
def _lae(x, y):
    return cmath.log(cmath.exp(x) + cmath.exp(y))


def _close(a, b, tol=1e-4):
    d = a - b
    # the imaginary part is defined modulo 2*pi
    im = math.remainder(d.imag, 2 * math.pi)
    return abs(d.real) <= tol * max(1.0, abs(b.real)) and abs(im) <= tol * max(1.0, abs(b.imag))


def test_logaddexp_complex():
    za = np.array([1 + 2j, -1 + 0.5j, 0j, 3 - 4j, 20 + 1j, -20 - 2j], dtype=np.complex64)
    zb = np.array([0.5 - 1j, 2 + 2j, 0j, -3 + 4j, 20 + 3j, -20 + 0j], dtype=np.complex64)
    out = mx.logaddexp(mx.array(za), mx.array(zb))
    assert out.dtype == mx.complex64
    for got, x, y in zip(out.tolist(), za.tolist(), zb.tolist()):
        assert _close(got, _lae(x, y)), (got, x, y)
    # real operands promote; huge magnitudes stay finite (no overflow of exp)
    r = mx.logaddexp(mx.array([1000 + 1j], dtype=mx.complex64), mx.array([1000 + 3j], dtype=mx.complex64)).item()
    assert _close(r, complex(1000 + math.log(2 * math.cos(1)), 2))
    r = mx.logaddexp(mx.array([1 + 1j], dtype=mx.complex64), 1.0).item()
    assert _close(r, _lae(1 + 1j, 1.0))


def test_logaddexp_complex_infinities():
    inf = float("inf")
    a = mx.array([complex(inf, 0), complex(-inf, 0), complex(-inf, 0)], dtype=mx.complex64)
    b = mx.array([1 + 0j, 1 + 0j, complex(-inf, 0)], dtype=mx.complex64)
    assert mx.logaddexp(a, b).tolist() == [complex(inf, 0), 1 + 0j, complex(-inf, 0)]


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("inclusive", [False, True])
def test_logcumsumexp_complex(reverse, inclusive):
    z = np.array([1 + 2j, -1 + 0.5j, 0j, 3 - 4j, 2 + 1j], dtype=np.complex64)
    out = mx.logcumsumexp(mx.array(z), reverse=reverse, inclusive=inclusive)
    assert out.dtype == mx.complex64
    seq = z.tolist()[::-1] if reverse else z.tolist()
    acc, ref = None, []
    for v in seq:
        if inclusive:
            acc = v if acc is None else _lae(acc, v)
            ref.append(acc)
        else:
            ref.append(complex(-math.inf, 0) if acc is None else acc)
            acc = v if acc is None else _lae(acc, v)
    if reverse:
        ref = ref[::-1]
    for got, want in zip(out.tolist(), ref):
        if math.isinf(want.real):
            assert got == want
        else:
            assert _close(got, want), (got, want)


def test_logcumsumexp_complex_shapes():
    z = mx.array(np.array([[1 + 1j, 2 + 2j, 3 + 3j], [0j, 1j, -1 + 0j]], dtype=np.complex64))
    a0 = mx.logcumsumexp(z, axis=0).tolist()
    assert a0[0] == [1 + 1j, 2 + 2j, 3 + 3j]
    assert _close(a0[1][0], _lae(1 + 1j, 0j))
    flat = mx.logcumsumexp(z)
    assert flat.shape == (6,)
    assert mx.logcumsumexp(mx.array(1 + 1j)).tolist() == [1 + 1j]
    assert mx.logcumsumexp(mx.array([], dtype=mx.complex64)).shape == (0,)


def test_log1p_complex_small_argument():
    z = 1e-4 + 1e-4j
    got = mx.log1p(mx.array(z, dtype=mx.complex64)).item()
    want = cmath.log(1 + z)
    assert abs(got.real - want.real) <= 1e-9 and abs(got.imag - want.imag) <= 1e-9


# ---------------------------------------------------------------- found by tests/differential
@pytest.mark.parametrize("shape,axis", [((2, 0), 0), ((3, 0), 0), ((2, 0, 1), 0), ((0, 3), 1)])
def test_empty_views_convert(shape, axis):
    # pieces of an empty array are views whose offset lies past their (empty) buffer
    parts = mx.unstack(mx.zeros(shape, dtype=mx.uint64), axis=axis)
    ref = [np.zeros(shape, np.uint64).take(i, axis=axis) for i in range(shape[axis])]
    assert isinstance(parts, tuple) and len(parts) == len(ref)
    for p, r in zip(parts, ref):
        assert p.tolist() == r.tolist()
        np.testing.assert_array_equal(np.array(p), r)
    tail = mx.zeros((3, 0))[2:]
    assert np.array(tail).shape == (1, 0)


def test_sign_of_zero_and_nan():
    x = np.array([-0.0, 0.0, -2.5, 3.0, np.nan], np.float32)
    got = np.array(mx.sign(mx.array(x)))
    ref = np.sign(x)
    np.testing.assert_array_equal(got, ref)
    assert not np.signbit(got[0])


@pytest.mark.parametrize("v", [0.0, -3.0, 2.5])
def test_softmax_of_a_scalar_and_its_derivatives(v):
    x = mx.array(v)
    assert mx.softmax(x).item() == 1.0
    _, (t,) = mx.jvp(mx.softmax, [x], [mx.array(1.0)])
    assert t.item() == 0.0
    assert mx.grad(lambda a: mx.softmax(a, precise=True))(x).item() == 0.0
    assert mx.softmax(mx.zeros((0, 3))).shape == (0, 3)


@pytest.mark.parametrize("size", [0, 2, 4, 7])
def test_unique_static_size(size):
    rng = np.random.default_rng(size)
    a = rng.integers(0, 5, (3, 4)).astype(np.int32)
    vals, idx, inv, counts = np.unique(a, return_index=True, return_inverse=True, return_counts=True)
    got = mx.unique(mx.array(a), size, return_index=True, return_inverse=True, return_counts=True, fill_value=-1)
    k = min(size, vals.size)
    pad = size - k
    np.testing.assert_array_equal(np.array(got[0]), np.concatenate([vals[:k], np.full(pad, -1)]))
    np.testing.assert_array_equal(np.array(got[1])[:k], idx[:k])
    np.testing.assert_array_equal(np.array(got[2]), inv.reshape(a.shape))
    np.testing.assert_array_equal(np.array(got[3]), np.concatenate([counts[:k], np.zeros(pad, int)]))
    assert got[1].dtype == mx.uint32 and got[2].dtype == mx.uint32 and got[3].dtype == mx.int32
    assert mx.unique(mx.array(np.zeros(0, np.float32)), 0).shape == (0,)
    with pytest.raises(ValueError):
        mx.unique(mx.array(np.zeros(0, np.float32)), 2)


def _lex_key(z):
    return (z.real, z.imag)


def test_complex_ordering_is_lexicographic():
    rng = np.random.default_rng(3)
    a = (rng.integers(-2, 3, 40) + 1j * rng.integers(-2, 3, 40)).astype(np.complex64)
    b = (rng.integers(-2, 3, 40) + 1j * rng.integers(-2, 3, 40)).astype(np.complex64)
    lt = [_lex_key(x) < _lex_key(y) for x, y in zip(a, b)]
    le = [_lex_key(x) <= _lex_key(y) for x, y in zip(a, b)]
    assert mx.less(mx.array(a), mx.array(b)).tolist() == lt
    assert mx.less_equal(mx.array(a), mx.array(b)).tolist() == le
    assert mx.greater(mx.array(b), mx.array(a)).tolist() == lt
    run = [max(a[: i + 1].tolist(), key=_lex_key) for i in range(len(a))]
    np.testing.assert_array_equal(np.array(mx.cummax(mx.array(a))), np.array(run, np.complex64))
    run = [min(a[: i + 1].tolist(), key=_lex_key) for i in range(len(a))]
    np.testing.assert_array_equal(np.array(mx.cummin(mx.array(a))), np.array(run, np.complex64))


def test_mlx_return_types_and_dtypes():
    assert isinstance(mx.divmod(mx.array([7]), mx.array([2])), list)
    assert mx.broadcast_shapes((2, 1), (3,)) == (2, 3)
    assert isinstance(mx.meshgrid(mx.array([1, 2]), mx.array([3])), tuple)
    assert mx.count_nonzero(mx.array([0, 1, 2])).dtype == mx.int32
    assert mx.searchsorted(mx.array([1, 2, 3]), mx.array([2])).dtype == mx.uint32
    assert mx.cumprod(mx.array([True, True, False, True])).tolist() == [True, True, False, False]
    assert mx.can_cast(mx.uint32, mx.bfloat16) and not mx.can_cast(mx.float32, mx.int32)


def test_scalar_range_and_operator_errors():
    with pytest.raises(ValueError, match="overflow"):
        mx.array([1], mx.uint8) + (-1)
    with pytest.raises(ValueError, match="overflow"):
        mx.array([1], mx.int8) * 200
    assert (mx.array([19], mx.uint64) + (-2)).tolist() == [17]
    with pytest.raises(ValueError, match="Floating point"):
        mx.array([1.5]) & mx.array([1])
    with pytest.raises(RuntimeError):
        mx.bitwise_and(mx.array([1.5]), mx.array([1]))
    with pytest.raises(TypeError):
        mx.array(True).__index__()
    assert mx.array(3, mx.uint8).__index__() == 3


def test_array_buffer_size():
    x = mx.zeros((3, 4))
    with pytest.raises(ValueError):
        mx.get_array_buffer_size(x)
    mx.eval(x)
    assert mx.get_array_buffer_size(x) == 48
    v = x[1:]
    mx.eval(v)
    # a view shares its buffer: counted once
    assert mx.get_array_buffer_size(x, [x, {"v": v}]) == 48


def test_bfloat16_nans_are_stored_positive():
    """As MLX: a NaN computed in float32 and stored as bfloat16 is +NaN (0x7FC0), whatever
    its sign (sqrt of a negative is -NaN on x86)."""
    x = mx.array([-1.0, 0.0, 4.0])
    for y in (mx.sqrt(x).astype(mx.bfloat16), mx.sqrt(x.astype(mx.bfloat16)), (-mx.array(float("nan"))).astype(mx.bfloat16)):
        bits = np.array(y.view(mx.uint16)).reshape(-1)
        assert bits[0] == 0x7FC0, hex(bits[0])
    assert "-nan" not in repr(mx.sqrt(x.astype(mx.bfloat16)))


# ---------------------------------------------------------------- int() / index()
def test_int_of_arrays_is_pythons_int():
    import operator

    with pytest.raises(OverflowError):
        int(mx.array(float("inf")))
    with pytest.raises(OverflowError):
        int(mx.array(-np.inf, dtype=mx.float64))
    with pytest.raises(ValueError):
        int(mx.array(float("nan")))
    assert int(mx.array(1e30, dtype=mx.float64)) == int(1e30)  # exact, not saturated
    assert int(mx.array(-2.75)) == -2 and int(mx.array(True)) == 1
    big = mx.array(2**64 - 1, dtype=mx.uint64)
    assert int(big) == 2**64 - 1 and operator.index(big) == 2**64 - 1
    assert [10, 20, 30][mx.array(1)] == 20
    with pytest.raises(TypeError):
        int(mx.array(1 + 2j))


# ---------------------------------------------------------------- round(x, decimals)
def _round_like_mlx(x, decimals, npdt):
    """MLX's formula: round(x * s) * (1 / s), every step rounded to the dtype."""
    s = npdt(10.0**decimals)
    with np.errstate(over="ignore"):  # float16 overflows to inf, as in MLX
        return (np.round((x * s).astype(npdt)).astype(npdt) * (npdt(1) / s)).astype(npdt)


@pytest.mark.parametrize("decimals", [1, 2, 3, -1, -2])
@pytest.mark.parametrize("dt", ["float32", "float16", "float64"])
def test_round_decimals_uses_mlx_formula(decimals, dt):
    npdt = np.dtype(dt).type
    x = (np.random.default_rng(decimals + 10).standard_normal(20000) * 50).astype(npdt)
    got = np.array(mx.round(mx.array(x, dtype=getattr(mx, dt)), decimals))
    assert got.dtype == np.dtype(dt)
    np.testing.assert_array_equal(got, _round_like_mlx(x, decimals, npdt))
    if dt != "float16":  # (x * 10^d overflows float16 here, as in MLX)
        # within one decimal step of the exact rounding (x * 10^d is itself rounded)
        np.testing.assert_allclose(got, np.round(x.astype(np.float64), decimals), rtol=1e-6, atol=1.01 * 10.0**-decimals)


def test_round_decimals_matches_mlx_bits():
    m = pytest.importorskip("mlx.core")
    x = (np.random.default_rng(3).standard_normal(5000) * 20).astype(np.float32)
    for dt in ("float32", "float16", "bfloat16"):
        for d in (1, 3, -1):
            want = np.array(m.round(m.array(x).astype(getattr(m, dt)), d).astype(m.float32))
            got = np.array(mx.round(mx.array(x).astype(getattr(mx, dt)), d).astype(mx.float32))
            np.testing.assert_array_equal(got, want, err_msg=f"{dt} {d}")


# ---------------------------------------------------------------- median with NaN
def test_median_of_rows_with_nan_is_nan():
    a = np.array([[1.0, np.nan, 0.0, 2.0], [3.0, 1.0, 2.0, 5.0], [np.inf, 1.0, -np.inf, 0.5]], dtype=np.float32)
    for dt in (mx.float32, mx.bfloat16, mx.float16):
        got = np.array(mx.median(mx.array(a).astype(dt), axis=1).astype(mx.float32))
        np.testing.assert_array_equal(got, np.median(a.astype(np.float64), axis=1).astype(np.float32))
    np.testing.assert_array_equal(np.array(mx.median(mx.array(a))), np.float32(np.nan))
    np.testing.assert_array_equal(np.array(mx.median(mx.array(a), axis=0)), np.median(a, axis=0))


# ---------------------------------------------------------------- negative ints into uint64
def test_negative_python_ints_wrap_into_uint64_everywhere():
    u = mx.array(np.array([[7, 8]], dtype=np.uint64))
    wrapped = 2**64 - 2
    assert mx.full((2,), -2, dtype=mx.uint64).tolist() == [wrapped, wrapped]
    assert mx.pad(u, 1, constant_values=-2).tolist()[0] == [wrapped] * 4
    assert u.at[0, 1].add(-2).tolist() == [[7, 6]]
    assert (u + (-2)).tolist() == [[5, 6]]
    with pytest.raises(ValueError, match="overflow"):
        mx.pad(u, 1, constant_values=-(2**63) - 1)
    with pytest.raises(ValueError, match="overflow"):
        mx.pad(mx.zeros((2,), dtype=mx.uint32), 1, constant_values=-1)


# ---------------------------------------------------------------- at[].maximum / minimum with NaN
@pytest.mark.parametrize("dt", [mx.float32, mx.float16, mx.bfloat16, mx.float64])
def test_scatter_max_min_nan_rule_is_mlx(dt):
    """MLX's scatter rule: the update wins unless the value there is strictly greater
    (smaller): a NaN update wins, a NaN already there is replaced."""
    nan = float("nan")
    cases = [(nan, 1.0, 1.0, 1.0), (1.0, nan, nan, nan), (2.0, 1.0, 2.0, 1.0), (1.0, 2.0, 2.0, 1.0), (nan, nan, nan, nan)]
    for d, u, want_max, want_min in cases:
        x = mx.array([d, 5.0]).astype(dt)
        i, v = mx.array([0]), mx.array([u]).astype(dt)
        got_max = x.at[i].maximum(v).astype(mx.float32).tolist()[0]
        got_min = x.at[i].minimum(v).astype(mx.float32).tolist()[0]
        for got, want in ((got_max, want_max), (got_min, want_min)):
            assert (math.isnan(got) and math.isnan(want)) or got == want, (d, u, got, want)
    # duplicates apply in order: NaN in the middle is replaced by the next update
    x = mx.zeros((1,), dtype=dt)
    got = x.at[mx.array([0, 0, 0])].maximum(mx.array([nan, 3.0, 2.0]).astype(dt))
    assert got.astype(mx.float32).tolist() == [3.0]
