"""compile's passes and fused kernels (issue #14).

Reference: the same function run eagerly. Fusion only removes the memory traffic
between elementwise steps (each step keeps its kernel, dtype and rounding), so compiled
results must equal eager results bit for bit. Fusion itself is shown by counting the
nodes a backend runs (``_nodes_run``) and, on a GPU, the kernels it launches.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import oxmx.core as mx
from oxmx import _oxmx
from oxmx_testing import alternating_chain, mxdt, npdt, run_program, same_bits, sines_accumulated
from transform_harness import OPS

_T = _oxmx.transforms


same = same_bits


def tree_same(x, y):
    if isinstance(x, (list, tuple)):
        assert len(x) == len(y)
        for a, b in zip(x, y):
            tree_same(a, b)
    else:
        same(x, y)


def tree_close(x, y, rtol):
    if isinstance(x, (list, tuple)):
        for a, b in zip(x, y):
            tree_close(a, b, rtol)
    else:
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_allclose(np.array(x.astype(mx.float64)), np.array(y.astype(mx.float64)), rtol=rtol, atol=rtol)


def nodes_run(fn):
    """(result, nodes run by backends while evaluating it)."""
    before = _oxmx._nodes_run()
    r = fn()
    mx.eval(r)
    return r, _oxmx._nodes_run() - before


def capture(f, *xs):
    with _T._Trace(False) as trace:
        leaves = [trace.leaf(x) for x in xs]
        out = f(*leaves)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        return _T.capture(leaves, outs)


# ------------------------------------------------------------------ the fused chain
def chain(x):
    return mx.exp(mx.sin(x)) * 2 + 1


def test_chain_runs_as_one_node_and_matches_eager():
    x = mx.array(np.random.default_rng(0).standard_normal((1000,)).astype(np.float32))
    cf = mx.compile(chain)
    mx.eval(cf(x))  # trace
    got, n = nodes_run(lambda: cf(x))
    assert n == 1
    mode = _oxmx._eval_fusion()
    try:  # eager, node by node (a GPU fuses at evaluation programs it has seen before)
        _oxmx._eval_fusion("off")
        want, n_eager = nodes_run(lambda: chain(x))
    finally:
        _oxmx._eval_fusion(*mode)
    assert n_eager == 4
    same(got, want)
    tape = capture(chain, x)
    assert len(tape) >= 4 and tape.fused_len() == 1
    assert len(tape.groups()) == 1 and "sin" in tape.groups()[0]


def test_debug_prints_the_groups():
    code = (
        "import oxmx.core as mx\n"
        "f = mx.compile(lambda x: mx.exp(mx.sin(x)) * 2 + 1)\n"
        "mx.eval(f(mx.ones((8,))))\n"
    )
    env = dict(os.environ, OXMX_COMPILE_DEBUG="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "[compile]" in r.stderr and "1 fused groups" in r.stderr
    assert "sin" in r.stderr and "exp" in r.stderr and "multiply" in r.stderr


def test_fusion_keeps_values_used_outside_the_group():
    x = mx.array(np.linspace(-3, 3, 50, dtype=np.float32))

    def f(x):
        y = mx.tanh(x) * 3
        return y, y + mx.exp(y)  # y is an output and an operand of the second group

    cf = mx.compile(f)
    tree_same(cf(x), f(x))
    tape = capture(f, x)
    assert tape.fused_len() == 2 and len(tape.groups()) == 2

    def g(x):
        y = mx.sin(x)
        return (y * 2 + y) / (1 + y * y)  # y read three times inside one group

    same(mx.compile(g)(x), g(x))
    assert capture(g, x).fused_len() == 1


def test_reductions_and_views_split_groups():
    x = mx.array(np.random.default_rng(1).standard_normal((6, 7)).astype(np.float32))

    def f(x):
        e = mx.exp(x - 1)
        s = e.sum(axis=1, keepdims=True)  # not elementwise: ends the group
        return mx.log(e / s + 1) * 2

    cf = mx.compile(f)
    same(cf(x), f(x))
    _, n = nodes_run(lambda: cf(x))
    assert n == 3  # fused exp(x-1), the sum, fused log(e/s+1)*2

    def g(x):
        return (mx.sin(x).T * 2 + 1).reshape(-1)  # a transposed intermediate

    same(mx.compile(g)(x), g(x))


def test_common_subexpressions_are_merged():
    x = mx.array(np.arange(10, dtype=np.float32))

    def f(x):
        return mx.sin(x) * 2 + mx.sin(x) * 2

    tape = capture(f, x)
    plain = capture(lambda x: mx.sin(x) * 2 * 2, x)
    assert len(tape) == len(plain)  # sin and the first multiply are recorded once
    same(mx.compile(f)(x), f(x))


# ------------------------------------------------------------------ dtypes, layouts, edges
DTYPES = ["float32", "float64", "float16", "bfloat16", "int32", "uint8", "int64"]


@pytest.mark.parametrize("dt", DTYPES)
def test_dtypes_and_mixed_chains(dt):
    rng = np.random.default_rng(2)
    if dt.startswith(("int", "uint")):
        a = rng.integers(0, 50, (5, 33)).astype(npdt(dt))
    else:
        a = (rng.standard_normal((5, 33)) * 3).astype(npdt(dt))
    x = mx.array(a)

    def f(x):
        y = mx.abs(x) + x * x
        z = mx.where(y > 4, y, -y).astype(mx.float32)
        w = mx.maximum(z, 1.5) - mx.floor(z / 3)
        return (w.astype(mxdt(dt)) * 2), mx.isnan(w) | (w < 0)

    tree_same(mx.compile(f)(x), f(x))
    assert capture(f, x).fused_len() <= 3


@pytest.mark.parametrize(
    "make",
    [
        lambda r: r.standard_normal((4, 6, 5)).astype(np.float32).transpose(2, 0, 1),
        lambda r: r.standard_normal((40, 30)).astype(np.float32)[::3, 1::2],
        lambda r: r.standard_normal((7,)).astype(np.float32)[::-1],
    ],
    ids=["transposed", "strided", "reversed"],
)
def test_non_contiguous_and_broadcast_inputs(make):
    r = np.random.default_rng(3)
    x = mx.array(make(r))
    if x.ndim == 1:
        x = x[::-1]
    elif x.ndim == 2:
        x = mx.array(r.standard_normal((40, 30)).astype(np.float32))[::3, 1::2]
    else:
        x = mx.transpose(x, (1, 2, 0))
    b = mx.array(r.standard_normal(x.shape[-1:]).astype(np.float32))

    def f(x, b):
        return mx.sigmoid(x * b + 0.5) - mx.exp(-x) * b

    same(mx.compile(f)(x, b), f(x, b))


def test_zero_d_empty_nan_inf():
    def f(x):
        return mx.log(mx.abs(x)) * 2 + mx.sqrt(x)

    for x in [mx.array(2.5), mx.zeros((0, 3)), mx.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 3.0])]:
        same(mx.compile(f)(x), f(x))


@pytest.mark.parametrize("shape", [(1 << 17,), (3, 70001), (300, 257), (2, 3, 40000)])
def test_large_arrays_every_block_cut(shape):
    # One long row (segments), many short rows (row blocks), and a broadcast in the middle.
    r = np.random.default_rng(4)
    x = mx.array(r.standard_normal(shape).astype(np.float32))
    b = mx.array(r.standard_normal(shape[-1:]).astype(np.float32))
    c = mx.array(r.standard_normal(shape[:1] + (1,) * (len(shape) - 1)).astype(np.float32))

    def f(x, b, c):
        return mx.tanh(x * b + c) * mx.cos(x) + 1

    cf = mx.compile(f)
    same(cf(x, b, c), f(x, b, c))
    xt = mx.swapaxes(x, 0, -1) if len(shape) > 1 else x[::-1]
    bt = mx.array(r.standard_normal(xt.shape[-1:]).astype(np.float32))
    ct = mx.array(r.standard_normal(xt.shape[:1] + (1,) * (xt.ndim - 1)).astype(np.float32))
    same(cf(xt, bt, ct), f(xt, bt, ct))


def test_long_chains_split_at_the_step_limit():
    x = mx.array(np.linspace(0, 1, 100, dtype=np.float32))

    def f(x):
        return alternating_chain(x, 150)

    same(mx.compile(f)(x), f(x))
    assert 3 <= capture(f, x).fused_len() <= 6


def test_many_inputs_split_at_the_input_limit():
    r = np.random.default_rng(5)
    xs = [mx.array(r.standard_normal((9,)).astype(np.float32)) for _ in range(40)]

    f = sines_accumulated
    same(mx.compile(f)(*xs), f(*xs))
    assert capture(f, *xs).fused_len() >= 3


# ------------------------------------------------------------------ random programs
UNARY = ["abs", "negative", "square", "sqrt", "exp", "log1p", "sin", "cos", "tanh", "sigmoid", "floor", "erf", "arctan"]
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "power", "arctan2", "logaddexp", "remainder"]


@given(
    ops=st.lists(st.tuples(st.sampled_from(UNARY + BINARY), st.integers(0, 3)), min_size=1, max_size=12),
    shape=st.sampled_from([(), (1,), (5,), (3, 4), (2, 1, 6), (0, 4), (70000,)]),
    dt=st.sampled_from(["float32", "float16", "bfloat16", "float64"]),
)
def test_random_programs_match_eager(ops, shape, dt):
    r = np.random.default_rng(len(ops) * 31 + len(shape))
    inputs = [mx.array((r.standard_normal(shape) * 2).astype(npdt(dt))) for _ in range(3)]

    def f(a, b, c):
        return run_program(ops, UNARY, a, b, c)[-1]

    same(mx.compile(f)(*inputs), f(*inputs))


# ------------------------------------------------------------------ the harness under compile
@pytest.mark.parametrize("op", OPS, ids=repr)
def test_harness_compiled_equals_eager(op):
    rng = np.random.default_rng(6)
    for dtype in (np.float64, np.float32):
        xs = op.make(rng, dtype)

        def loss(*xs):
            y = op.fn(*xs)
            parts = y if isinstance(y, (list, tuple)) else [y]
            return sum((mx.sin(p) * p).sum() for p in parts if mx.issubdtype(p.dtype, mx.floating))

        grad = mx.grad(loss, argnums=tuple(range(len(xs))))
        for f in (op.fn, grad):
            try:
                want = f(*xs)
                flat = list(want) if isinstance(want, (list, tuple)) else [want]
                # a GPU scatter-add sums in the order its atomics land: not reproducible
                atomic = mx.default_device() == mx.gpu and "scatter" in _T.dot(flat, [])
                mx.eval(want)
            except Exception as e:  # e.g. an op without a kernel under OXMX_CUDA_STRICT
                with pytest.raises(type(e)):
                    mx.eval(mx.compile(f)(*xs))
                continue
            got = mx.compile(f)(*xs)
            if atomic:
                tree_close(got, want, 1e-12 if dtype == np.float64 else 1e-5)
            else:
                tree_same(got, want)


# ------------------------------------------------------------------ transforms of compiled functions
def test_transforms_of_a_compiled_function_after_a_fused_call():
    x = mx.array(np.linspace(-1, 1, 20, dtype=np.float32))
    f = lambda x: mx.tanh(mx.exp(x) * 0.5 + x)
    cf = mx.compile(f)
    mx.eval(cf(x))  # cached: the next calls replay the same tape under transforms
    loss = lambda g: (lambda x: g(x).sum())
    same(mx.grad(loss(cf))(x), mx.grad(loss(f))(x))
    v = mx.ones_like(x)
    tree_same(mx.jvp(cf, (x,), (v,)), mx.jvp(f, (x,), (v,)))
    xs = mx.stack([x, x * 2])
    same(mx.vmap(cf)(xs), mx.vmap(f)(xs))


def test_compiled_training_step_matches_eager():
    r = np.random.default_rng(7)
    w = mx.array(r.standard_normal((8, 4)).astype(np.float32))
    x = mx.array(r.standard_normal((16, 8)).astype(np.float32))
    y = mx.array(r.standard_normal((16, 4)).astype(np.float32))

    def step(w, x, y):
        def loss(w):
            h = x @ w
            g = 0.5 * h * (1 + mx.tanh(0.7978845608 * (h + 0.044715 * h ** 3)))
            return ((g - y) ** 2).mean()

        l, gw = mx.value_and_grad(loss)(w)
        return l, w - 0.1 * gw

    cstep = mx.compile(step)
    a, b = w, w
    for _ in range(3):
        la, a = cstep(a, x, y)
        lb, b = step(b, x, y)
        same(la, lb)
        same(a, b)


# ------------------------------------------------------------------ half-precision logits
def _lm_head_step(dt, vocab=37):
    """A tied LM head and its loss, with the logits cast to float32 as GPT-2's loss does:
    (the loss, the embedding's gradient)."""
    import oxmx.nn as nn

    r = np.random.default_rng(11)
    h = mx.array(r.standard_normal((2, 6, 8)).astype(np.float32)).astype(dt)
    w = mx.array((r.standard_normal((vocab, 8)) * 0.5).astype(np.float32)).astype(dt)
    y = mx.array(r.integers(0, vocab, (2, 6)).astype(np.int32))

    def step(w, h, y):
        def loss(w):
            return nn.losses.cross_entropy((h @ w.T).astype(mx.float32), y, reduction="mean")

        return mx.value_and_grad(loss)(w)

    return step, (w, h, y)


@pytest.mark.parametrize("dt", [mx.bfloat16, mx.float16])
def test_compiled_loss_reads_half_logits_without_the_float32_copy(dt):
    step, args = _lm_head_step(dt)
    tape = capture(step, *args)
    plain, run = tape.op_names(False), tape.op_names(True)
    # the float32 copy of the logits and the gradient's cast back are gone
    assert plain.count("astype float32") - run.count("astype float32") >= 1
    assert plain.count(f"astype {dt.name}") - run.count(f"astype {dt.name}") >= 1
    assert f"cross_entropy_grad {dt.name}" in run and "custom_function float32" not in run
    # the kernels sum a row in an order set by its length alone: same bits as eager
    tree_same(mx.compile(step)(*args), step(*args))


def test_compiled_loss_keeps_float32_logits_and_transforms_exact():
    step, args = _lm_head_step(mx.float32)
    tape = capture(step, *args)
    assert tape.op_names(True).count("astype float32") == tape.op_names(False).count("astype float32")
    tree_same(mx.compile(step)(*args), step(*args))
    # a transform over the compiled step replays the plain trace (rules intact)
    w, h, y = args
    f = lambda w: mx.compile(step)(w.astype(mx.bfloat16).astype(mx.float32), h, y)[0]
    same(mx.grad(f)(w), mx.grad(lambda w: step(w.astype(mx.bfloat16).astype(mx.float32), h, y)[0])(w))


# ------------------------------------------------------------------ the GPU: one launch
gpu = pytest.mark.skipif(not mx.is_available(mx.gpu), reason="no GPU")


@gpu
@pytest.mark.parametrize("n_ops", [2, 5, 10])
def test_gpu_chain_of_n_ops_is_one_launch(n_ops):
    def f(x, y):
        for i in range(n_ops):
            x = mx.sin(x) if i % 2 else x * y + 0.25
        return x

    with mx.stream(mx.gpu):
        x = mx.array(np.random.default_rng(8).standard_normal((1 << 20,)).astype(np.float32))
        y = mx.array(np.random.default_rng(9).standard_normal((1 << 20,)).astype(np.float32))
        mx.eval(x, y)
        cf = mx.compile(f)
        mx.eval(cf(x, y))
        before = _oxmx._kernel_launches(mx.gpu)
        got = cf(x, y)
        mx.eval(got)
        assert _oxmx._kernel_launches(mx.gpu) - before == 1
        same(got, f(x, y))


# ------------------------------------------------------------------ export_to_dot
def test_export_to_dot_draws_the_graph(tmp_path):
    x, y = mx.array([1.0, 2.0]), mx.array([3.0, 4.0])
    z = mx.exp(x) * y + 1
    path = tmp_path / "graph.dot"
    mx.export_to_dot(str(path), z, x=x, y=y)
    text = path.read_text()
    assert text.startswith("digraph {") and text.rstrip().endswith("}")
    assert "exp" in text and "multiply" in text and "add" in text
    assert '"x\\n[2] float32"' in text or "x\\n" in text  # named leaves are labelled
    assert text.count("->") >= 5  # x->exp, exp->mul, y->mul, mul->add, const->add
    f = mx.compile(lambda a, b: mx.exp(a) * b + 1)
    w = f(x, y)
    import io

    buf = io.StringIO()
    mx.export_to_dot(buf, w)
    assert "fused: s0 = exp(x0)" in buf.getvalue()
    with pytest.raises(TypeError, match=r"\[export_to_dot\]"):
        mx.export_to_dot(str(path), [z])


def test_split_gradient_is_one_concatenation():
    # q, k, v = split(x @ w): their gradients become one concatenation, not a zero fill
    # plus one slice update per output
    r = np.random.default_rng(5)
    x, w = (mx.array(r.standard_normal(s).astype(np.float32)) for s in ((4, 8), (8, 12)))

    def step(w):
        def loss(w):
            q, k, v = mx.split(x @ w, 3, axis=-1)
            return (q * k + v).sum()

        return mx.grad(loss)(w)

    names = capture(step, w).op_names(False)
    assert any(n.startswith("concatenate") for n in names), names
    assert not any(n.startswith("slice_update") for n in names), names
    tree_same(mx.compile(step)(w), step(w))


def test_head_split_gradients_concatenate_before_their_axes_merge():
    # the parts are reshapes of transposed head gradients: they are concatenated along
    # the head axis first, so no part is copied to merge its axes (one reshape of the
    # concatenation, a view, instead of one reshape per part)
    B, L, H, D = 2, 6, 2, 4
    r = np.random.default_rng(6)
    x, w = (mx.array(r.standard_normal(s).astype(np.float32)) for s in ((B, L, H * D), (H * D, 3 * H * D)))

    def step(w):
        def loss(w):
            q, k, v = (t.reshape(B, L, H, D).transpose(0, 2, 1, 3) for t in mx.split(x @ w, 3, axis=-1))
            return (mx.fast.scaled_dot_product_attention(q, k, v, scale=0.5) * 0.5).sum()

        return mx.grad(loss)(w)

    names = capture(step, w).op_names(False)
    cat = [i for i, n in enumerate(names) if n.startswith("concatenate")]
    assert len(cat) == 1, names
    # the concatenation reads the transposed head gradients (the tape lists a node's
    # inputs before it), and one reshape of it follows
    assert [n.split()[0] for n in names[cat[0] - 2 : cat[0] + 2]] == ["custom_function", "transpose", "concatenate", "reshape"], names
    tree_same(mx.compile(step)(w), step(w))
