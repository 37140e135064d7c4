"""mx.checkpoint over trees of arguments and outputs (as MLX's), against the gradient of
the same function without checkpointing, against real MLX, against finite differences
(through the transform harness), and nn.utils.checkpoint built on it."""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.utils import tree_flatten, tree_map
from transform_harness import Op, check_vjp_jvp

RNG = np.random.default_rng(0)
W = RNG.standard_normal((3, 4)).astype(np.float32)
B = RNG.standard_normal((4,)).astype(np.float32)
X = RNG.standard_normal((2, 3)).astype(np.float32)


def block(params, x, scale=1.0, act=None):
    """A tree of parameters, an array, a Python scalar and a non-array leaf (written
    with operators only, so that it runs on oxmx and on MLX arrays alike)."""
    h = x @ params["layers"][0]["w"] + params["layers"][0]["b"]
    h = (act(h) if act else h / (1.0 + h * h)) * scale
    return (h * params["gain"][1]).sum()


def tree(m):
    """The same parameters as arrays of module ``m`` (oxmx.core or mlx.core)."""
    return {"layers": [{"w": m.array(W), "b": m.array(B)}], "gain": (m.array(1.5), m.array(np.float32([2.0, -1.0, 0.5, 3.0])))}


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    fa, fb = tree_flatten(a), tree_flatten(b)
    assert [k for k, _ in fa] == [k for k, _ in fb]
    for (k, u), (_, v) in zip(fa, fb):
        np.testing.assert_allclose(np.array(u), np.array(v), rtol=rtol, atol=atol, err_msg=k)


def test_pytree_arguments_match_plain_gradient():
    # the repro of the bug: a dict argument raised "[vjp] primals must be an array ..."
    g = mx.grad(mx.checkpoint(lambda p, x: (p["w"] * x).sum()))({"w": mx.ones(3)}, mx.arange(3.0))
    assert list(g) == ["w"] and g["w"].tolist() == [0.0, 1.0, 2.0]
    x = mx.array(X)
    plain = mx.grad(block, argnums=(0, 1))(tree(mx), x, 0.5)
    ckpt = mx.grad(mx.checkpoint(block), argnums=(0, 1))(tree(mx), x, 0.5)
    assert_trees_close(ckpt, plain)
    # containers keep their types: the tuple of "gain" stays a tuple
    assert isinstance(ckpt[0]["gain"], tuple) and isinstance(ckpt[0]["layers"], list)


def test_matches_mlx():
    mlx = pytest.importorskip("mlx.core")
    x = X
    for kwargs in ({}, {"scale": 0.5}, {"act": "sin"}):
        ox_kw = {k: (mx.sin if v == "sin" else v) for k, v in kwargs.items()}
        ml_kw = {k: (mlx.sin if v == "sin" else v) for k, v in kwargs.items()}
        ox = mx.value_and_grad(mx.checkpoint(block), argnums=(0, 1))(tree(mx), mx.array(x), **ox_kw)
        ml = mlx.value_and_grad(mlx.checkpoint(block), argnums=(0, 1))(tree(mlx), mlx.array(x), **ml_kw)
        np.testing.assert_allclose(float(ox[0]), float(ml[0]), rtol=1e-6)
        assert_trees_close(ox[1], tree_map(np.array, ml[1]))


def test_keyword_arrays_and_constant_leaves():
    f = lambda x, s=1.0, tag=None: (mx.sin(x) * s * s).sum()  # noqa: E731
    x = mx.array([0.3, -1.0, 2.0])
    g = mx.grad(lambda s: mx.checkpoint(f)(x, s=s, tag="ignored"))(mx.array(2.0))
    np.testing.assert_allclose(float(g), 4.0 * float(mx.sin(x).sum()), rtol=1e-6)
    gx = mx.grad(mx.checkpoint(f))(x, 3, None)  # an int and None are constants
    np.testing.assert_allclose(np.array(gx), 9.0 * np.cos(np.array(x)), rtol=1e-6)
    # an empty dict argument has no arrays and does not disturb the others
    gx = mx.grad(mx.checkpoint(lambda x, d: (x * x).sum()))(x, {})
    np.testing.assert_allclose(np.array(gx), 2 * np.array(x), rtol=1e-6)


def test_tree_outputs():
    def f(x):
        return {"a": x * 2.0, "b": [mx.sin(x), "label"], "n": 3}

    out = mx.checkpoint(f)(mx.array([1.0, 2.0]))
    assert out["b"][1] == "label" and out["n"] == 3 and out["a"].tolist() == [2.0, 4.0]
    loss = lambda x, g: (g(x)["a"] * g(x)["b"][0]).sum()  # noqa: E731
    x = mx.array([0.5, -2.0])
    np.testing.assert_allclose(np.array(mx.grad(loss)(x, mx.checkpoint(f))), np.array(mx.grad(loss)(x, f)), rtol=1e-6)


def test_backward_recomputes_the_function():
    calls = []

    def f(p, x):
        calls.append(1)
        return (mx.exp(p["w"] * x)).sum()

    p, x = {"w": mx.array([0.1, 0.2])}, mx.array([1.0, 2.0])
    mx.checkpoint(f)(p, x)
    assert len(calls) == 1
    calls.clear()
    g = mx.grad(mx.checkpoint(f))(p, x)
    assert len(calls) == 2  # forward, then again in the backward pass
    np.testing.assert_allclose(np.array(g["w"]), np.array(x) * np.exp(np.array([0.1, 0.4])), rtol=1e-6)


def test_harness_and_higher_order():
    # vjp/jvp of a checkpointed function against float64 finite differences
    op = Op("checkpoint-tree", lambda a, b: mx.checkpoint(lambda t, k=1.0: mx.tanh(t[0] @ t[1]["v"]) * k)((a, {"v": b}), k=2.0),
            [((3, 4), "any"), ((4, 2), "any")])
    check_vjp_jvp(op, np.random.default_rng(3))
    # second order through a checkpoint with a dict argument: d/dx sum(cos x) = -sin x
    inner = mx.grad(mx.checkpoint(lambda p: mx.sin(p["x"]).sum()))
    g2 = mx.grad(lambda x: inner({"x": x})["x"].sum())(mx.array([0.4, 1.0]))
    np.testing.assert_allclose(np.array(g2), -np.sin([0.4, 1.0]), rtol=1e-6)


def test_not_callable():
    with pytest.raises(TypeError, match=r"\[checkpoint\] fun must be callable"):
        mx.checkpoint(3)


def test_nn_checkpoint_with_keyword_array():
    model = nn.Linear(3, 2)
    ckpt = nn.utils.checkpoint(model, lambda x, shift=0.0: mx.tanh(model(x) + shift))
    x, shift = mx.array(X), mx.array([0.5, -0.5])
    loss = lambda f: lambda x, s: (f(x, shift=s) ** 2).sum()  # noqa: E731
    plain = lambda x, shift=0.0: mx.tanh(model(x) + shift)  # noqa: E731
    got = nn.value_and_grad(model, loss(ckpt))(x, shift)
    want = nn.value_and_grad(model, loss(plain))(x, shift)
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=1e-6)
    assert_trees_close(got[1], want[1])
    gs = mx.grad(loss(ckpt), argnums=1)(x, shift)
    np.testing.assert_allclose(np.array(gs), np.array(mx.grad(loss(plain), argnums=1)(x, shift)), rtol=1e-5, atol=1e-6)
