"""Printing: MLX's repr format, set_printoptions / get_printoptions / printoptions."""

import numpy as np
import pytest

import oxmx.core as mx


def _current_precision():
    opts = mx.get_printoptions()
    if isinstance(opts, dict):  # tolerated here so one bug doesn't hide the other results
        return opts.get("precision")
    return opts.precision


def _restore_precision(p):
    for cand in (p, -1, None):
        try:
            mx.set_printoptions(precision=cand)
            return
        except Exception:  # noqa: BLE001
            continue


@pytest.fixture(autouse=True)
def reset_printoptions():
    old = _current_precision()
    _restore_precision(-1)  # every test starts from MLX's default formatting
    yield
    _restore_precision(old)


REPR_CASES = [
    (lambda: mx.array([1, 2]), "array([1, 2], dtype=int32)"),
    (lambda: mx.array([-1, 2]), "array([-1, 2], dtype=int32)"),
    (lambda: mx.array(7), "array(7, dtype=int32)"),
    (lambda: mx.array(True), "array(True, dtype=bool)"),
    (lambda: mx.array([True, False]), "array([True, False], dtype=bool)"),
    (lambda: mx.array([[1, 22], [333, 4]]), "array([[1, 22],\n       [333, 4]], dtype=int32)"),
    (
        lambda: mx.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]]),
        "array([[[1, 2],\n        [3, 4]],\n       [[5, 6],\n        [7, 8]]], dtype=int32)",
    ),
    (lambda: mx.array([1.5, -2.25]), "array([1.5, -2.25], dtype=float32)"),
    (lambda: mx.array([3.0]), "array([3], dtype=float32)"),
    (lambda: mx.array([1.23456789, -2.5]), "array([1.23457, -2.5], dtype=float32)"),
    (lambda: mx.array([0.1, 100.0]), "array([0.1, 100], dtype=float32)"),
    (lambda: mx.array(1e20), "array(1e+20, dtype=float32)"),
    (lambda: mx.array([1.5, 2.5], dtype=mx.float16), "array([1.5, 2.5], dtype=float16)"),
    (lambda: mx.array([1.5, 2.5]).astype(mx.bfloat16), "array([1.5, 2.5], dtype=bfloat16)"),
    (lambda: mx.array([1, 2], dtype=mx.uint64), "array([1, 2], dtype=uint64)"),
    (lambda: mx.array([1 + 2j, -3.5 - 1j]), "array([1+2j, -3.5-1j], dtype=complex64)"),
    (lambda: mx.array([]), "array([], dtype=float32)"),
    (lambda: mx.arange(12).reshape(3, 4)[:, ::2], "array([[0, 2],\n       [4, 6],\n       [8, 10]], dtype=int32)"),
    (lambda: mx.array([[1.5, 2], [3, 4]]).T, "array([[1.5, 3],\n       [2, 4]], dtype=float32)"),
    (lambda: mx.arange(1001), "array([0, 1, 2, ..., 998, 999, 1000], dtype=int32)"),
    (
        lambda: mx.arange(2000).reshape(2, 1000),
        "array([[0, 1, 2, ..., 997, 998, 999],\n       [1000, 1001, 1002, ..., 1997, 1998, 1999]], dtype=int32)",
    ),
]


@pytest.mark.parametrize("make,expected", REPR_CASES, ids=[f"case{i}" for i in range(len(REPR_CASES))])
def test_repr_format(make, expected):
    x = make()
    assert repr(x) == expected
    assert str(x) == expected


def test_print_function_output(capsys):
    print(mx.array([4, 5]))
    assert capsys.readouterr().out == "array([4, 5], dtype=int32)\n"


def test_get_printoptions_default():
    opts = mx.get_printoptions()
    assert isinstance(opts.precision, int)
    assert opts.precision == -1  # -1 means the default formatting


def test_set_printoptions_precision():
    mx.set_printoptions(precision=3)
    assert mx.get_printoptions().precision == 3
    assert repr(mx.array([1.23456789, -2.5])) == "array([1.235, -2.500], dtype=float32)"
    assert repr(mx.array([1.23456, 2], dtype=mx.float64)) == "array([1.235, 2.000], dtype=float64)"
    assert repr(mx.array([1, 2])) == "array([1, 2], dtype=int32)"  # integers unaffected
    mx.set_printoptions(precision=-1)  # MLX: -1 restores the default formatting
    assert repr(mx.array([1.23456789, -2.5])) == "array([1.23457, -2.5], dtype=float32)"


@pytest.mark.parametrize("p", [0, 1, 2, 4, 6])
def test_precision_matches_fixed_point(p):
    vals = [1.23456789, -0.5, 10.0]
    mx.set_printoptions(precision=p)
    s = repr(mx.array(vals))
    body = s[len("array([") : s.index("], dtype")]
    got = [t.strip() for t in body.split(",")]
    ref = [np.format_float_positional(np.float32(v), precision=p, unique=False, fractional=True, trim="-" if p == 0 else "k") for v in vals]
    assert [float(g) for g in got] == pytest.approx([float(r) for r in ref], abs=10 ** (-p))
    if p > 0:
        assert all(len(g.split(".")[1]) == p for g in got), got


def test_printoptions_context_manager():
    mx.set_printoptions(precision=3)
    with mx.printoptions(precision=1):
        assert mx.get_printoptions().precision == 1
        assert repr(mx.array([1.23456789, -2.5])) == "array([1.2, -2.5], dtype=float32)"
    assert mx.get_printoptions().precision == 3
    assert repr(mx.array([1.23456789, -2.5])) == "array([1.235, -2.500], dtype=float32)"


def test_printoptions_context_restores_on_error():
    before = _current_precision()
    with pytest.raises(KeyError):
        with mx.printoptions(precision=2):
            raise KeyError("x")
    assert _current_precision() == before


def test_printoptions_class():
    o = mx.PrintOptions(precision=2)
    assert o.precision == 2


def test_set_printoptions_bad_type():
    with pytest.raises((TypeError, ValueError)):
        mx.set_printoptions(precision="a")


def test_printing_forces_evaluation_and_views():
    x = mx.arange(6).reshape(2, 3) * 2
    assert repr(x[:, ::-1]) == "array([[4, 2, 0],\n       [10, 8, 6]], dtype=int32)"
    y = mx.broadcast_to(mx.array([1, 2]), (2, 2))
    assert repr(y) == "array([[1, 2],\n       [1, 2]], dtype=int32)"


def test_printing_special_floats():
    s = repr(mx.array([float("nan"), float("inf"), -float("inf"), -0.0]))
    assert s.startswith("array([") and s.endswith("dtype=float32)")
    for tok in ("nan", "inf", "-inf"):
        assert tok in s


def test_printing_large_arrays_is_fast_and_summarized():
    s = repr(mx.zeros((1000, 1000)))
    assert "..." in s and len(s) < 5000
