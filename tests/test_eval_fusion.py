"""Fusion at evaluation (issue #15, `oxmx-core/src/eval_fusion.rs`).

A chain of pending elementwise nodes that nothing else holds runs as one fused node when
evaluated (on a GPU one kernel instead of one launch per op). The reference is the same
code evaluated with fusion off: a fused node computes each step as its own node would,
so the results must be equal bit for bit. Fusion itself is shown by counting the nodes a
backend runs (``_nodes_run``); on the CPU the tests switch it on with mode "all" (by
default only backends that ask for it fuse, the GPU).
"""

import numpy as np
import pytest
from hypothesis import given, strategies as st

import oxmx.core as mx
from oxmx import _oxmx
from oxmx_testing import alternating_chain, npdt, run_program, same_bits, sines_accumulated


same = same_bits


@pytest.fixture
def fusion():
    """Sets the mode for a test (`fusion("all", 1)`), restoring the previous one."""
    before = _oxmx._eval_fusion()
    yield lambda mode, min_seen=1: _oxmx._eval_fusion(mode, min_seen)
    _oxmx._eval_fusion(*before)


def run(fn, *args):
    """(result of fn evaluated, nodes the backends ran for it)."""
    mx.eval(*args)
    before = _oxmx._nodes_run()
    out = fn(*args)
    mx.eval(out)
    return out, _oxmx._nodes_run() - before


def both(fusion, fn, *args):
    """fn's result with fusion on every backend and off, their node counts."""
    fusion("all", 1)
    fused, n_fused = run(fn, *args)
    fusion("off")
    plain, n_plain = run(fn, *args)
    return fused, plain, n_fused, n_plain


def chain(x):
    for i in range(10):
        x = x * 1.0001 + 0.5 if i % 2 else mx.sin(x)
    return x


def test_a_private_chain_runs_as_one_node(fusion):
    x = mx.array(np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32))
    fused, plain, n_fused, n_plain = both(fusion, chain, x)
    same(fused, plain)
    assert n_plain == 15 and n_fused == 1


def test_values_held_elsewhere_are_kept(fusion):
    x = mx.array(np.linspace(-2, 2, 50, dtype=np.float32))

    def f(x):
        h = mx.exp(x) * 2  # held by the caller: computed on its own
        y = mx.sin(h) + h
        return h, y

    fused, plain, n_fused, n_plain = both(fusion, f, x)
    for a, b in zip(fused, plain):
        same(a, b)
    assert n_plain == 4 and n_fused == 2

    # held from Python across the evaluation of another array
    fusion("all", 1)
    a = mx.cos(x) - 1
    b = a * a + 3
    before = _oxmx._nodes_run()
    mx.eval(b)
    assert _oxmx._nodes_run() - before == 2  # a's two nodes as one, b's two as one...
    same(a, (mx.cos(x) - 1))  # ...and a stays readable, computed exactly


def test_a_value_read_twice_inside_the_group_joins_it(fusion):
    x = mx.array(np.arange(-3, 4, dtype=np.float32))

    def f(x):
        a = mx.sin(x)
        return (a + 1) * (a * 2)

    fused, plain, n_fused, n_plain = both(fusion, f, x)
    same(fused, plain)
    assert n_plain == 4 and n_fused == 1


def test_default_mode_leaves_the_cpu_alone(fusion):
    fusion("gpu", 1)
    x = mx.ones((8,))
    with mx.stream(mx.cpu):
        _, n = run(chain, x)
    assert n == 15


def test_a_program_fuses_once_seen_often_enough(fusion):
    fusion("all", 3)
    x = mx.array(np.random.default_rng(1).standard_normal((7, 5)).astype(np.float32))

    def f(x):  # a program of its own, so that no earlier test has counted it
        return mx.tanh(mx.abs(x) * 0.25 - 7.5) / 3.0

    counts = [run(f, x)[1] for _ in range(4)]
    assert counts == [5, 5, 1, 1]


def test_long_chains_split_at_the_step_limit(fusion):
    x = mx.array(np.linspace(0, 1, 100, dtype=np.float32))

    fused, plain, n_fused, n_plain = both(fusion, lambda x: alternating_chain(x, 150), x)
    same(fused, plain)
    # the scalars 1.001 and 0.001 (one array per op) are two inputs of each group
    assert n_plain == 225 and 4 <= n_fused <= 5


def test_many_inputs_split_at_the_input_limit(fusion):
    r = np.random.default_rng(5)
    xs = [mx.array(r.standard_normal((9,)).astype(np.float32)) for _ in range(40)]

    fused, plain, n_fused, n_plain = both(fusion, sines_accumulated, *xs)
    same(fused, plain)
    assert 3 <= n_fused < n_plain // 10


def test_reductions_views_and_matmuls_split_groups(fusion):
    r = np.random.default_rng(6)
    x = mx.array(r.standard_normal((6, 6)).astype(np.float32))

    def f(x):
        y = mx.exp(x) * 0.5
        s = y.sum(axis=1, keepdims=True)  # not elementwise: y stays computed
        z = (y / s).T @ x  # a transpose view and a matmul
        return mx.sigmoid(z) * 2 - 1

    fused, plain, n_fused, n_plain = both(fusion, f, x)
    same(fused, plain)
    assert n_fused == n_plain - 3  # three groups of two: one node each


@pytest.mark.parametrize(
    "make",
    [
        lambda r: mx.transpose(mx.array(r.standard_normal((4, 6, 5)).astype(np.float32)), (2, 0, 1)),
        lambda r: mx.array(r.standard_normal((40, 30)).astype(np.float32))[::3, 1::2],
        lambda r: mx.array(r.standard_normal((7,)).astype(np.float32))[::-1],
        lambda r: mx.array(np.float32(2.5)),
        lambda r: mx.zeros((0, 3)),
        lambda r: mx.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 3.0], mx.float32),
    ],
    ids=["transposed", "strided", "reversed", "0-d", "empty", "nan-inf"],
)
def test_layouts_and_edge_values(fusion, make):
    r = np.random.default_rng(3)
    x = make(r)
    b = mx.array(r.standard_normal(x.shape[-1:]).astype(np.float32))

    def f(x, b):
        return mx.sigmoid(x * b + 0.5) - mx.log(mx.abs(x)) * b + mx.sqrt(x)

    fused, plain, n_fused, n_plain = both(fusion, f, x, b)
    same(fused, plain, nan_sign=False)
    assert n_fused < n_plain


DTYPES = ["float32", "float64", "float16", "bfloat16", "int32", "uint8", "int64"]


@pytest.mark.parametrize("dt", DTYPES)
def test_dtypes_comparisons_where_and_casts(fusion, dt):
    rng = np.random.default_rng(2)
    if dt.startswith(("int", "uint")):
        x = mx.array(rng.integers(0, 50, (5, 33)).astype(npdt(dt)))
    else:
        x = mx.array((rng.standard_normal((5, 33)) * 3).astype(np.float32)).astype(getattr(mx, dt))

    def f(x):
        y = mx.abs(x) + x * x
        z = mx.where(y > 4, y, -y).astype(mx.float32)
        w = mx.maximum(z, 1.5) - mx.floor(z / 3)
        return (w.astype(x.dtype) * 2), mx.isnan(w) | (w < 0)

    fused, plain, n_fused, n_plain = both(fusion, f, x)
    for a, b in zip(fused, plain):
        same(a, b)
    assert n_fused < n_plain


UNARY = ["abs", "negative", "square", "sqrt", "exp", "log1p", "sin", "cos", "tanh", "sigmoid", "floor", "erf", "arctan", "erfinv"]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "arctan2", "logaddexp", "remainder"]


@given(
    ops=st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 3)), min_size=1, max_size=12),
    shape=st.sampled_from([(), (1,), (5,), (3, 4), (2, 1, 6), (0, 4), (70000,)]),
    dt=st.sampled_from(["float32", "float16", "bfloat16", "float64"]),
    hold=st.integers(0, 12),
)
def test_random_programs_match_unfused(ops, shape, dt, hold):
    before = _oxmx._eval_fusion()
    r = np.random.default_rng(len(ops) * 31 + len(shape))
    inputs = [mx.array((r.standard_normal(shape) * 2).astype(np.float32)).astype(getattr(mx, dt)) for _ in range(3)]

    def f(a, b, c):
        vals = run_program(ops, UNARY, a, b, c)
        # one intermediate also returned: it must not be fused away
        return vals[-1], vals[min(hold, len(vals) - 1)]

    try:
        _oxmx._eval_fusion("all", 1)
        fused, _ = run(f, *inputs)
        _oxmx._eval_fusion("off")
        plain, _ = run(f, *inputs)
    finally:
        _oxmx._eval_fusion(*before)
    for a, b in zip(fused, plain):
        same(a, b)


def test_booleans_and_integers(fusion):
    r = np.random.default_rng(7)
    a = mx.array(r.integers(0, 2, (4, 9)).astype(bool))
    b = mx.array(r.integers(-20, 20, (4, 9)).astype(np.int32))

    def f(a, b):
        m = mx.logical_and(a, b > 0) | mx.logical_not(a)
        return mx.where(m, b * 3, b // 2) % 7, m == a

    fused, plain, n_fused, n_plain = both(fusion, f, a, b)
    for x, y in zip(fused, plain):
        same(x, y)
    assert n_fused < n_plain


def test_transforms_see_the_plain_nodes(fusion):
    x = mx.array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))

    def loss(x):
        return (chain(x) * mx.cos(x)).sum()

    def everything(x):
        g = mx.grad(loss)(x)
        _, jv = mx.jvp(chain, (x,), (mx.ones_like(x),))
        vm = mx.vmap(chain)(x)
        return g, jv[0], vm

    fused, plain, _, _ = both(fusion, everything, x)
    for a, b in zip(fused, plain):
        same(a, b)


def test_compiled_functions_and_eager_tails(fusion):
    x = mx.array(np.linspace(-1, 1, 33, dtype=np.float32))
    cf = mx.compile(chain)

    def f(x):
        return mx.exp(cf(x)) * 0.5 + 1

    fused, plain, _, _ = both(fusion, f, x)
    same(fused, plain)


def test_a_failing_fused_node_falls_back_to_the_plain_nodes(fusion):
    x = mx.array(np.linspace(-3, 3, 21, dtype=np.float32))

    def f(x):  # a program of its own; 2.0 three times: two broadcasts are skipped
        return (mx.arcsinh(x * 2.0) + 2.0) * 2.0

    fusion("off")
    plain, n_plain = run(f, x)
    _oxmx._eval_fusion("all", 1, fail_fused=True)
    got, n = run(f, x)
    same(got, plain)
    assert n == n_plain == 4
    # the backend had "no kernel" for it: the program is not fused again
    fusion("all", 1)
    again, n = run(f, x)
    same(again, plain)
    assert n == 4


def test_bad_mode_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[eval_fusion\].*'fast'"):
        _oxmx._eval_fusion("fast")


gpu = pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU")


@gpu
def test_gpu_eager_chain_is_one_launch_once_seen_again(fusion):
    fusion("gpu", 2)
    with mx.stream(mx.gpu):
        x = mx.array(np.random.default_rng(8).standard_normal((1 << 20,)).astype(np.float32))
        y = mx.array(np.random.default_rng(9).standard_normal((1 << 20,)).astype(np.float32))
        mx.eval(x, y)

        def f(x, y):
            for i in range(10):
                x = mx.sin(x) if i % 2 else x * y + 0.125
            return x

        launches = []
        for _ in range(3):
            before = _oxmx._kernel_launches(mx.gpu)
            got = f(x, y)
            mx.eval(got)
            launches.append(_oxmx._kernel_launches(mx.gpu) - before)
        assert launches[0] == 15 and launches[1:] == [1, 1]
        fusion("off")
        same(got, f(x, y))
