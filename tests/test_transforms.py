"""Function transforms: the Python API (argnums, argnames, pytrees, aux outputs,
errors), composition, stop_gradient, custom_function, checkpoint, compile, tree
utilities, and deep graphs."""

import threading

import numpy as np
import pytest

import oxmx.core as mx
from oxmx.utils import tree_flatten, tree_map, tree_map_with_path, tree_merge, tree_reduce, tree_unflatten


def f2(x, y, z=None):
    r = (x * y).sum()
    return r + z.sum() if z is not None else r


X = mx.array([1.0, 2.0])
Y = mx.array([3.0, 4.0])


# ------------------------------------------------------------------ grad API
def test_argnums_forms():
    assert mx.grad(f2)(X, Y).tolist() == [3.0, 4.0]
    gx, gy = mx.grad(f2, argnums=(0, 1))(X, Y)
    assert gx.tolist() == [3.0, 4.0] and gy.tolist() == [1.0, 2.0]
    assert mx.grad(f2, argnums=[1])(X, Y).tolist() == [1.0, 2.0]  # one index: not a tuple
    assert mx.grad(f2, argnums=-1 + 2)(X, Y).tolist() == [1.0, 2.0]


def test_argnames():
    pos, kw = mx.grad(f2, argnames="z")(X, Y, z=mx.array([1.0, 1.0]))
    assert pos is None and kw["z"].tolist() == [1.0, 1.0]
    pos, kw = mx.grad(f2, argnums=0, argnames=["z"])(X, Y, z=mx.array([5.0, 1.0]))
    assert pos.tolist() == [3.0, 4.0] and list(kw) == ["z"]


def test_value_and_grad_with_aux():
    (loss, aux), g = mx.value_and_grad(lambda x: (x.sum(), x * 2))(X)
    assert loss.item() == 3.0 and aux.tolist() == [2.0, 4.0] and g.tolist() == [1.0, 1.0]
    v, g = mx.value_and_grad(lambda x: (x**2).sum())(X)
    assert v.item() == 5.0 and g.tolist() == [2.0, 4.0]


def test_pytree_arguments():
    params = {"w": mx.array([[1.0, 2.0], [3.0, 4.0]]), "b": [mx.array([1.0, -1.0])]}

    def loss(p, x):
        return ((x @ p["w"] + p["b"][0]) ** 2).sum()

    g = mx.grad(loss)(params, mx.array([1.0, 1.0]))
    assert set(g) == {"w", "b"} and isinstance(g["b"], list)
    # reference by hand: y = x@w + b = [5, 5]; dL/dy = 2y = [10, 10]
    np.testing.assert_allclose(np.array(g["w"]), [[10, 10], [10, 10]])
    np.testing.assert_allclose(np.array(g["b"][0]), [10, 10])


def test_grad_errors():
    with pytest.raises(ValueError, match=r"\[grad\].*scalar"):
        mx.grad(lambda x: x * 2)(X)
    with pytest.raises(ValueError, match=r"\[grad\].*list was returned"):
        mx.grad(lambda x: [x.sum()])(X)
    with pytest.raises(ValueError, match=r"argument index 3"):
        mx.grad(lambda x: x.sum(), argnums=3)(X)
    with pytest.raises(ValueError, match=r"int32"):
        mx.grad(lambda x: x.sum())(mx.array([1, 2]))
    with pytest.raises(ValueError, match=r"bool"):
        mx.grad(lambda x: x.sum())(mx.array([True]))
    with pytest.raises(ValueError, match=r"only arrays"):
        mx.grad(lambda d: d["a"].sum())({"a": X, "b": 3.0})
    with pytest.raises(ValueError, match=r"cotangent"):
        mx.vjp(lambda x: x * 2, [X], [mx.array(1.0)])


def test_eval_inside_grad_is_allowed():
    g = mx.grad(lambda x: (x * x).sum() + 0 * (x.sum().item()))(X)
    assert g.tolist() == [2.0, 4.0]


def test_unrelated_input_gets_zeros():
    gx, gy = mx.grad(lambda x, y: x.sum(), argnums=(0, 1))(X, Y)
    assert gy.tolist() == [0.0, 0.0]


def test_repeated_use_accumulates():
    g = mx.grad(lambda x: (x * x * x).sum() + x.sum())(mx.array([2.0]))
    assert g.tolist() == [13.0]


# ------------------------------------------------------------------ composition
def test_higher_order():
    f = lambda x: mx.sin(x) * x
    x = mx.array(0.7)
    g2 = mx.grad(mx.grad(f))(x).item()
    g3 = mx.grad(mx.grad(mx.grad(f)))(x).item()
    np.testing.assert_allclose(g2, 2 * np.cos(0.7) - 0.7 * np.sin(0.7), rtol=1e-5)
    np.testing.assert_allclose(g3, -3 * np.sin(0.7) - 0.7 * np.cos(0.7), rtol=1e-5)


def test_per_example_gradients():
    w = mx.array([0.5, -1.0, 2.0])
    xs = mx.array(np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32))
    loss = lambda w, x: mx.tanh(x @ w) ** 2
    per = mx.vmap(mx.grad(loss), in_axes=(None, 0))(w, xs)
    assert per.shape == (8, 3)
    for i in range(8):
        np.testing.assert_allclose(np.array(per[i]), np.array(mx.grad(loss)(w, xs[i])), rtol=1e-5, atol=1e-6)


def test_grad_of_vmap_and_jvp_of_grad():
    x = mx.array([[1.0, 2.0], [3.0, 4.0]])
    g = mx.grad(lambda x: mx.vmap(lambda r: (r**2).sum())(x).sum())(x)
    assert g.tolist() == [[2.0, 4.0], [6.0, 8.0]]
    # jvp of grad = Hessian-vector product; for sum(x^3): H = diag(6x)
    _, (hvp,) = mx.jvp(mx.grad(lambda x: (x**3).sum()), [mx.array([1.0, 2.0])], [mx.array([1.0, 1.0])])
    assert hvp.tolist() == [6.0, 12.0]


def test_nested_vmap():
    x = mx.array(np.arange(24.0, dtype=np.float32).reshape(2, 3, 4))
    r = mx.vmap(mx.vmap(lambda v: v.sum()))(x)
    np.testing.assert_array_equal(np.array(r), np.arange(24.0).reshape(2, 3, 4).sum(-1))
    r = mx.vmap(mx.vmap(lambda v: v * 2, in_axes=1, out_axes=0), in_axes=2, out_axes=2)(x)
    assert r.shape == (3, 2, 4)


def test_vmap_axes_and_errors():
    x = mx.ones((3, 2))
    r = mx.vmap(lambda a: {"s": a.sum(), "c": mx.array(1.0)}, out_axes={"s": 0, "c": None})(x)
    assert r["s"].tolist() == [2.0, 2.0, 2.0] and r["c"].shape == ()
    r = mx.vmap(lambda a: mx.array(1.0))(x)
    assert r.tolist() == [1.0, 1.0, 1.0]
    assert mx.vmap(lambda a: a * 2, in_axes=-1, out_axes=-1)(x).shape == (3, 2)
    with pytest.raises(ValueError, match="Inconsistent axis sizes"):
        mx.vmap(lambda a, b: a * b)(mx.ones((3, 2)), mx.ones((4, 2)))
    with pytest.raises(ValueError, match=r"\[eval\]"):
        mx.vmap(lambda a: a.sum() + a.sum().item())(x)
    with pytest.raises(ValueError, match="out of bounds"):
        mx.vmap(lambda a: a, in_axes=2)(x)


# ------------------------------------------------------------------ stop_gradient
def test_stop_gradient():
    x = mx.array([1.0, 2.0])
    g = mx.grad(lambda x: (mx.stop_gradient(x) * x).sum())(x)
    assert g.tolist() == [1.0, 2.0]
    _, (t,) = mx.jvp(lambda x: mx.stop_gradient(x) * 3, [x], [mx.ones(2)])
    assert t.tolist() == [0.0, 0.0]
    assert mx.stop_gradient(x).tolist() == [1.0, 2.0]


# ------------------------------------------------------------------ custom_function / checkpoint
def test_custom_function_vjp_jvp_vmap():
    calls = []

    @mx.custom_function
    def f(x, y):
        return mx.sin(x) * y

    @f.vjp
    def f_vjp(primals, cotangent, output):
        calls.append("vjp")
        x, y = primals
        return cotangent * mx.cos(x) * y * 10, cotangent * mx.sin(x)

    @f.jvp
    def f_jvp(primals, tangents):
        x, y = primals
        tx, ty = tangents
        return tx * mx.cos(x) * y + ty * mx.sin(x) + 100

    @f.vmap
    def f_vmap(inputs, axes):
        calls.append("vmap")
        x, y = inputs
        return mx.sin(x) * y, axes[0] if axes[0] is not None else axes[1]

    x, y = mx.array(0.3), mx.array(2.0)
    np.testing.assert_allclose(f(x, y).item(), np.sin(0.3) * 2, rtol=1e-6)
    gx, gy = mx.grad(f, argnums=(0, 1))(x, y)
    np.testing.assert_allclose(gx.item(), 10 * np.cos(0.3) * 2, rtol=1e-6)  # the override, not the real derivative
    np.testing.assert_allclose(gy.item(), np.sin(0.3), rtol=1e-6)
    _, (t,) = mx.jvp(f, [x, y], [mx.array(1.0), mx.array(0.0)])
    np.testing.assert_allclose(t.item(), np.cos(0.3) * 2 + 100, rtol=1e-6)
    r = mx.vmap(f, in_axes=(0, None))(mx.array([0.1, 0.2]), y)
    np.testing.assert_allclose(np.array(r), np.sin([0.1, 0.2]) * 2, rtol=1e-6)
    assert "vjp" in calls and "vmap" in calls


def test_custom_function_without_overrides_uses_its_graph():
    f = mx.custom_function(lambda x: x**3)
    assert mx.grad(f)(mx.array(2.0)).item() == 12.0


def test_checkpoint():
    def block(x, w):
        return mx.tanh(x @ w) @ w.T

    x = mx.array(np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32))
    w = mx.array(np.random.default_rng(2).standard_normal((3, 3)).astype(np.float32))
    loss = lambda x, w: (block(x, w) ** 2).sum()
    loss_ck = lambda x, w: (mx.checkpoint(block)(x, w) ** 2).sum()
    g1 = mx.grad(loss, argnums=(0, 1))(x, w)
    g2 = mx.grad(loss_ck, argnums=(0, 1))(x, w)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ compile
def test_compile_matches_and_caches():
    traces = []

    def f(x, y):
        traces.append(1)
        return mx.exp(x) * y + 1.0

    cf = mx.compile(f)
    x, y = mx.array([1.0, 2.0]), mx.array([3.0, 4.0])
    want = np.exp([1.0, 2.0]) * [3.0, 4.0] + 1
    np.testing.assert_allclose(np.array(cf(x, y)), want, rtol=1e-6)
    np.testing.assert_allclose(np.array(cf(x * 2, y)), np.exp([2.0, 4.0]) * [3.0, 4.0] + 1, rtol=1e-6)
    assert len(traces) == 1  # replayed, not retraced
    cf(mx.ones((3,)), mx.ones((3,)))
    assert len(traces) == 2  # a new shape traces again
    cf(x.astype(mx.float16), y.astype(mx.float16))
    assert len(traces) == 3  # a new dtype too


def test_compile_constants_and_trees():
    cf = mx.compile(lambda d, s: {"out": d["a"] * s, "n": d["b"][0] + 1})
    r = cf({"a": mx.array([1.0]), "b": [mx.array([2.0])]}, 3.0)
    assert r["out"].tolist() == [3.0] and r["n"].tolist() == [3.0]
    r = cf({"a": mx.array([1.0]), "b": [mx.array([2.0])]}, 4.0)  # a new constant retraces
    assert r["out"].tolist() == [4.0]


def test_compile_random_state_capture():
    state = [mx.random.state]

    @mx.compile
    def plain(x):
        return x + mx.random.uniform(shape=x.shape)

    @lambda f: mx.compile(f, inputs=state, outputs=state)
    def fresh(x):
        return x + mx.random.uniform(shape=x.shape)

    x = mx.zeros((4,))
    mx.random.seed(3)
    a, b = fresh(x), fresh(x)
    assert not np.array_equal(np.array(a), np.array(b))  # the key advances on every call
    mx.random.seed(3)
    u1 = mx.random.uniform(shape=(4,))
    u2 = mx.random.uniform(shape=(4,))
    np.testing.assert_array_equal(np.array(a), np.array(u1))  # same sequence as uncompiled
    np.testing.assert_array_equal(np.array(b), np.array(u2))
    p1, p2 = plain(x), plain(x)
    np.testing.assert_array_equal(np.array(p1), np.array(p2))  # uncaptured: a constant


def test_compile_eval_inside_is_an_error_and_disable():
    cf = mx.compile(lambda x: x + x.sum().item())
    with pytest.raises(ValueError, match=r"\[eval\]"):
        cf(mx.array([1.0]))
    mx.disable_compile()
    try:
        assert cf(mx.array([1.0])).tolist() == [2.0]
    finally:
        mx.enable_compile()


def test_compile_of_grad_and_grad_of_compile():
    f = lambda x: (mx.sin(x) ** 2).sum()
    x = mx.array([0.1, 0.5])
    g_ref = np.array(mx.grad(f)(x))
    np.testing.assert_allclose(np.array(mx.compile(mx.grad(f))(x)), g_ref, rtol=1e-6)
    np.testing.assert_allclose(np.array(mx.grad(mx.compile(f))(x)), g_ref, rtol=1e-6)


# ------------------------------------------------------------------ deep graphs and threads
def test_million_op_chain_grad():
    x = mx.array(1.0)
    def f(x):
        y = x
        for _ in range(200_000):
            y = y + 1e-6
        return y * x
    g = mx.grad(f)(x)
    # f = y(x) * x with dy/dx = 1, so f'(1) = y(1) + 1 (y summed in float32)
    np.testing.assert_allclose(g.item(), f(x).item() + 1.0, rtol=1e-6)


def test_grad_in_threads():
    errors = []

    def work(k):
        try:
            for _ in range(20):
                x = mx.array([float(k), 1.0])
                g = mx.grad(lambda x: (x**2).sum())(x)
                assert g.tolist() == [2.0 * k, 2.0]
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


# ------------------------------------------------------------------ oxmx.utils
def test_tree_utils():
    tree = {"a": [1, 2, {"b": 3}], "c": (4,)}
    flat = tree_flatten(tree)
    assert flat == [("a.0", 1), ("a.1", 2), ("a.2.b", 3), ("c.0", 4)]
    back = tree_unflatten(flat)
    assert back == {"a": [1, 2, {"b": 3}], "c": [4]}
    assert tree_map(lambda x: x * 10, tree) == {"a": [10, 20, {"b": 30}], "c": (40,)}
    assert tree_map(lambda x, y: x + y, [1, 2], [3, 4]) == [4, 6]
    paths = []
    tree_map_with_path(lambda p, x: paths.append(p), tree)
    assert paths == ["a.0", "a.1", "a.2.b", "c.0"]
    assert tree_reduce(lambda acc, x: acc + x, tree, 0) == 10
    assert tree_merge({"a": 1}, {"b": [2]}) == {"a": 1, "b": [2]}
    with pytest.raises(ValueError):
        tree_merge({"a": 1}, {"a": 2})
    assert tree_merge({"a": 1}, {"a": 2}, lambda x, y: x + y) == {"a": 3}
    assert tree_flatten(5) == [("", 5)] and tree_unflatten([("", 5)]) == 5
    d = {}
    tree_flatten([1, [2]], destination=d)
    assert d == {"0": 1, "1.0": 2}
    assert tree_map(lambda x: len(x) if isinstance(x, list) else -x, [1, [2, 3]], is_leaf=lambda n: n == [2, 3]) == [-1, 2]


# paths -> the tree real MLX 0.32 builds (checked by experiment; compared again below)
UNFLATTEN_CASES = [
    ([("c.1", 1)], {"c": [{}, 1]}),  # gaps in lists are empty dicts, not None
    ([("c.2", 1), ("c.0", 5)], {"c": [5, {}, 1]}),
    ([("3", 1)], [{}, {}, {}, 1]),
    ([("a.2.1", 1)], {"a": [{}, {}, [{}, 1]]}),
    ([("a.1.x", 1), ("b", 2)], {"a": [{}, {"x": 1}], "b": 2}),
    ({"a.1": 1, "a.3": 2}, {"a": [{}, 1, {}, 2]}),
    ([("10", 1), ("2", 3)], [{}, {}, 3] + [{}] * 7 + [1]),  # numeric, not text, order
    ([("a.1", None)], {"a": [{}, None]}),
    ([("1", {})], [{}, {}]),
    ([("", 5)], 5),
    ([], []),
    ([("a.0", 1), ("a.b", 2)], {"a": {"0": 1, "b": 2}}),  # mixed keys: a dict, first-seen order
    ([("a.b", 1), ("a", 2)], {"a": {"b": 1, "": 2}}),  # a leaf where a path continues
    ([("1", 1), ("1.0", 2)], [{}, {"": 1, "0": 2}]),
    (((".a", 1),), {"": {"a": 1}}),
    ([("a.", 1)], {"a": 1}),
    ([("a..b", 1)], {"a": {"": {"b": 1}}}),
    ([("1", 1), ("01", 2)], {"1": 1, "01": 2}),  # two keys reading the same index: a dict
    ([("+1", 1), ("-1", 2)], [2, 1]),  # keys read as Python ints; a negative one takes the next place
    ([("a.²", 1)], {"a": {"²": 1}}),  # a digit that int() does not read: a dict key
    ([("1e1", 1)], {"1e1": 1}),
]


@pytest.mark.parametrize("items, want", UNFLATTEN_CASES)
def test_tree_unflatten_cases(items, want):
    assert tree_unflatten(items) == want


@pytest.mark.parametrize("items, want", UNFLATTEN_CASES)
def test_tree_unflatten_matches_mlx(items, want):
    mlx_utils = pytest.importorskip("mlx.utils")
    assert tree_unflatten(items) == mlx_utils.tree_unflatten(items)


def test_tree_unflatten_round_trip_gaps_and_errors():
    tree = {"layers": [{"w": 1, "b": [2, 3]}, {"w": 4}], "head": (5, {"x": 6})}
    assert tree_unflatten(tree_flatten(tree)) == {"layers": [{"w": 1, "b": [2, 3]}, {"w": 4}], "head": [5, {"x": 6}]}
    # the fillers are distinct dicts, so filling one later does not touch the others
    gaps = tree_unflatten([("3", 1)])
    gaps[0]["k"] = 1
    assert gaps[1] == {}
    # deep paths need no Python recursion
    deep = tree_unflatten([(".".join(["0"] * 3000), 7)])
    for _ in range(3000):
        deep = deep[0]
    assert deep == 7
    # a repeated path is a clear error (MLX recurses without end)
    for items, path in [([("a.b", 1), ("a.b", 2)], "a.b"), ([("0", 1), ("0", 2)], "0"), ([("a", 1), ("a.", 2)], "a")]:
        with pytest.raises(ValueError, match=rf"\[tree_unflatten\] The path '{path}' appears 2 times"):
            tree_unflatten(items)


def test_vmap_random_keys_and_batched_indices():
    keys = mx.random.split(mx.random.key(0), 4)
    r = mx.vmap(lambda k: mx.random.uniform(shape=(3,), key=k))(keys)
    ref = mx.stack([mx.random.uniform(shape=(3,), key=keys[i]) for i in range(4)])
    np.testing.assert_array_equal(np.array(r), np.array(ref))
    x = mx.arange(12.0).reshape(3, 4)
    assert mx.vmap(lambda i: x[i])(mx.array([2, 0])).tolist() == [[8.0, 9.0, 10.0, 11.0], [0.0, 1.0, 2.0, 3.0]]
    assert mx.vmap(lambda r, i: r[i])(x, mx.array([1, 2, 3])).tolist() == [1.0, 6.0, 11.0]
    got = mx.vmap(lambda r, i: mx.take_along_axis(r, i, axis=0))(x, mx.array([[0, 1], [3, 3], [2, 0]]))
    assert got.tolist() == [[0.0, 1.0], [7.0, 7.0], [10.0, 8.0]]


def test_jvp_of_custom_function_uses_its_rule_when_the_body_has_none():
    """Forward mode walks the body of a custom_function but only needs it when the
    function has no jvp rule of its own (the fused kernels of mx.fast have none)."""
    from oxmx import _oxmx

    x, t = mx.array([1.0, 2.0, 3.0]), mx.array([0.5, -1.0, 2.0])
    cf = mx.custom_function(lambda x: _oxmx._fast_rms_norm(x, None, 1e-5))
    cf.jvp(lambda primals, tangents: [2 * tangents[0]])
    _, (jt,) = mx.jvp(cf, [x], [t])
    np.testing.assert_allclose(np.array(jt), 2 * np.array(t))
    bare = mx.custom_function(lambda x: _oxmx._fast_rms_norm(x, None, 1e-5))
    with pytest.raises(NotImplementedError, match="rms_norm"):
        mx.jvp(bare, [x], [t])
    # a primal (not the body) without a tangent rule still fails
    with pytest.raises(NotImplementedError, match="rms_norm"):
        mx.jvp(lambda x: cf(_oxmx._fast_rms_norm(x, None, 1e-5)), [x], [t])


def test_gradients_are_freed_without_the_garbage_collector():
    """Rebuilding result trees makes no reference cycle: a dropped gradient releases its
    memory at once, not at the next garbage collection."""
    import gc

    gc.disable()
    try:
        p = {"w": mx.ones((500, 500))}
        mx.eval(p)
        before = mx.get_active_memory()
        g = mx.grad(lambda p: (p["w"] * 2).sum())(p)
        mx.eval(g)
        assert mx.get_active_memory() > before
        del g
        assert mx.get_active_memory() == before
    finally:
        gc.enable()


@pytest.mark.parametrize("used", [(0, 1, 2), (2, 0, 1), (0, 2), (1,), (2, 1)])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_split_gradient_puts_each_piece_in_its_window(used, axis):
    # the gradients of a split's outputs gathered into one array (pieces side by side,
    # zeros where an output is unused), against NumPy
    r = np.random.default_rng(len(used) + 7 * (axis % 3))
    x = mx.array(r.standard_normal((6, 9, 3)).astype(np.float32))
    cots = [r.standard_normal(mx.split(x, 3, axis=axis)[0].shape).astype(np.float32) for _ in range(3)]

    def f(x):
        parts = mx.split(x, 3, axis=axis)
        return sum((parts[i] * mx.array(cots[i])).sum() for i in used)

    want = np.zeros(x.shape, np.float32)
    wparts = np.split(want, 3, axis=axis)
    for i in used:
        wparts[i][...] = cots[i]
    np.testing.assert_array_equal(np.array(mx.grad(f)(x)), want)


def test_overlapping_and_mixed_slice_gradients_add_up():
    r = np.random.default_rng(3)
    xn = r.standard_normal((10, 4)).astype(np.float32)
    x = mx.array(xn)
    a, b, c = (r.standard_normal(s).astype(np.float32) for s in ((5, 4), (5, 4), (10, 4)))

    def f(x):  # overlapping row windows, one of them strided, and the whole array
        return (x[0:5] * mx.array(a)).sum() + (x[3:8] * mx.array(b)).sum() + (x * mx.array(c)).sum() + x[::2].sum()

    want = c.copy()
    want[0:5] += a
    want[3:8] += b
    want[::2] += 1
    np.testing.assert_allclose(np.array(mx.grad(f)(x)), want, rtol=1e-6, atol=1e-6)
    # uneven pieces along the last axis, unsorted, with a gap; bfloat16 keeps its dtype
    xb = x.astype(mx.bfloat16)
    g = mx.grad(lambda x: (x[:, 3:] * 2).sum() + x[:, :1].sum())(xb)
    assert g.dtype == mx.bfloat16
    np.testing.assert_array_equal(np.array(g.astype(mx.float32)), np.array([[1, 0, 0, 2, ]] * 10, np.float32))
    # an integer input of slices gets zeros, as before
    xi = mx.array(np.arange(12, dtype=np.int32).reshape(3, 4))
    gi = mx.vjp(lambda x: [x[:, :2], x[:, 2:]], [xi], [mx.ones((3, 2), mx.int32), mx.ones((3, 2), mx.int32)])[1][0]
    assert gi.dtype == mx.int32 and not np.array(gi).any()


@pytest.mark.parametrize("dtype", [mx.float32, mx.bfloat16])
def test_fused_qkv_gradient_through_head_split(dtype):
    # q, k, v = split(x @ w) with each viewed as heads and transposed (a transformer's
    # fused projection): the gradient of x @ w gathers the heads' gradients directly
    # (concatenated before their axes merge), equal to the same math in NumPy
    B, L, H, D = 2, 5, 3, 4
    r = np.random.default_rng(17)
    xn = r.standard_normal((B, L, H * D)).astype(np.float32)
    wn = r.standard_normal((H * D, 3 * H * D)).astype(np.float32) * 0.3
    cn = [r.standard_normal((B, H, L, D)).astype(np.float32) for _ in range(3)]
    x, w = mx.array(xn).astype(dtype), mx.array(wn).astype(dtype)
    cs = [mx.array(c).astype(dtype) for c in cn]

    def heads(t):
        return t.reshape(B, L, H, D).transpose(0, 2, 1, 3)

    def f(w):
        q, k, v = mx.split(x @ w, 3, axis=-1)
        return sum((heads(t) * c).sum() for t, c in zip((q, k, v), cs)).astype(mx.float32)

    g = mx.grad(f)(w)
    assert g.dtype == dtype and g.shape == w.shape
    # d/dw sum(heads(x @ w)[part] * c) = x^T @ (c moved back to the (B, L, H*D) layout)
    back = np.concatenate([c.transpose(0, 2, 1, 3).reshape(B, L, H * D) for c in
                           (np.array(ci.astype(mx.float32)) for ci in cs)], axis=-1)
    xf = np.array(x.astype(mx.float32)).astype(np.float64)
    want = np.einsum("bli,blo->io", xf, back.astype(np.float64))
    tol = 1e-4 if dtype == mx.float32 else 3e-2 * np.abs(want).max()
    np.testing.assert_allclose(np.array(g.astype(mx.float32)), want, rtol=1e-3, atol=tol)
    # compiled equals eager
    np.testing.assert_array_equal(np.array(mx.compile(mx.grad(f))(w).astype(mx.float32)),
                                  np.array(g.astype(mx.float32)))


def test_slice_gradients_random_windows_against_numpy():
    # random unit-step windows along one axis (disjoint or overlapping, in any order,
    # some reshaped into heads) and the whole array, summed with weights: the gradient
    # against NumPy's accumulation of the same windows
    r = np.random.default_rng(123)
    for trial in range(40):
        shape = tuple(int(s) for s in r.integers(1, 6, size=r.integers(1, 4)))
        axis = int(r.integers(0, len(shape)))
        n = shape[axis]
        xn = r.standard_normal(shape).astype(np.float32)
        windows = []
        for _ in range(int(r.integers(1, 5))):
            a = int(r.integers(0, n))
            b = int(r.integers(a + 1, n + 1))
            windows.append((a, b))
        whole = bool(r.integers(0, 2))
        ws = [r.standard_normal(shape[:axis] + (b - a,) + shape[axis + 1:]).astype(np.float32) for a, b in windows]

        def f(x):
            total = (x * 0.5).sum() if whole else 0.0
            for (a, b), w in zip(windows, ws):
                idx = tuple(slice(a, b) if d == axis else slice(None) for d in range(len(shape)))
                total = total + (x[idx] * mx.array(w)).sum()
            return total

        want = np.full(shape, 0.5 if whole else 0.0, np.float64)
        for (a, b), w in zip(windows, ws):
            idx = tuple(slice(a, b) if d == axis else slice(None) for d in range(len(shape)))
            want[idx] += w
        got = np.array(mx.grad(f)(mx.array(xn)))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"trial {trial}: {shape} {axis} {windows}")
