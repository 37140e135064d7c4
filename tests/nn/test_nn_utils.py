"""nn.value_and_grad, nn.utils.checkpoint, nn.average_gradients and the distributed
layers (which behave like their single-process selves until mx.distributed lands)."""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.nn.layers.distributed import shard_inplace, shard_linear
from oxmx.utils import tree_flatten, tree_map


class MLP(nn.Module):
    def __init__(self, sizes, act=mx.tanh):
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
        self.act = act

    def __call__(self, x):
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)


def np_mlp(params, x):
    for i, layer in enumerate(params):
        x = x @ layer["weight"].T + layer["bias"]
        if i < len(params) - 1:
            x = np.tanh(x)
    return x


def np_loss(params, x, y):
    return float(((np_mlp(params, x) - y) ** 2).mean())


def mse(model):
    return lambda x, y: ((model(x) - y) ** 2).mean()


def data(rng, n=6, d_in=3, d_out=2, dtype=np.float64):
    return rng.standard_normal((n, d_in)).astype(dtype), rng.standard_normal((n, d_out)).astype(dtype)


def test_value_and_grad_matches_finite_differences():
    rng = np.random.default_rng(0)
    model = MLP([3, 5, 2])
    model.set_dtype(mx.float64)
    x, y = data(rng)
    value, grads = nn.value_and_grad(model, mse(model))(mx.array(x, dtype=mx.float64), mx.array(y, dtype=mx.float64))
    params = [{k: np.array(v) for k, v in layer.items()} for layer in model.parameters()["layers"]]
    assert abs(float(value) - np_loss(params, x, y)) < 1e-12
    eps = 1e-6
    for path, g in tree_flatten(grads):
        _, i, name = path.split(".")
        p = params[int(i)][name]
        numeric = np.zeros_like(p)
        for j in np.ndindex(p.shape):
            old = p[j]
            p[j] = old + eps
            hi = np_loss(params, x, y)
            p[j] = old - eps
            lo = np_loss(params, x, y)
            p[j] = old
            numeric[j] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(np.array(g), numeric, rtol=1e-6, atol=1e-9, err_msg=path)


def test_value_and_grad_matches_mlx_with_copied_weights():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    class TheirMLP(mlx_nn.Module):
        def __init__(self, sizes):
            super().__init__()
            self.layers = [mlx_nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = mlx_core.tanh(layer(x))
            return self.layers[-1](x)

    theirs, ours = TheirMLP([4, 8, 8, 3]), MLP([4, 8, 8, 3])
    ours.update(tree_map(lambda a: mx.array(np.array(a)), theirs.parameters()))
    ours.layers[1].freeze(keys="bias")
    theirs.layers[1].freeze(keys="bias")
    x, y = data(np.random.default_rng(1), n=5, d_in=4, d_out=3, dtype=np.float32)
    v1, g1 = nn.value_and_grad(ours, mse(ours))(mx.array(x), mx.array(y))
    v2, g2 = mlx_nn.value_and_grad(theirs, lambda a, b: ((theirs(a) - b) ** 2).mean())(mlx_core.array(x), mlx_core.array(y))
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-6)
    flat1, flat2 = tree_flatten(g1), tree_flatten(g2)
    assert [k for k, _ in flat1] == [k for k, _ in flat2]
    assert "layers.1.bias" not in dict(flat1)  # frozen parameters get no gradient
    for (k, a), (_, b) in zip(flat1, flat2):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-7, err_msg=k)


def test_value_and_grad_leaves_model_arrays_and_passes_extras():
    model = MLP([3, 4, 1])
    before = [(k, id(v)) for k, v in tree_flatten(model.parameters())]
    fn = nn.value_and_grad(model, lambda x, scale=1.0: ((model(x) * scale).sum(), model(x)))
    (loss, out), grads = fn(mx.ones((2, 3)), scale=3.0)
    assert out.shape == (2, 1) and isinstance(loss, mx.array)
    np.testing.assert_allclose(float(loss), 3 * float(model(mx.ones((2, 3))).sum()), rtol=1e-6)
    np.testing.assert_allclose(np.array(grads["layers"][1]["bias"]), [6.0])
    assert [(k, id(v)) for k, v in tree_flatten(model.parameters())] == before
    assert fn.__name__ == "<lambda>"
    # the grads tree has the shape of the trainable parameters
    assert [k for k, _ in tree_flatten(grads)] == [k for k, _ in tree_flatten(model.trainable_parameters())]


def test_value_and_grad_errors():
    model = MLP([3, 1])
    with pytest.raises(TypeError, match=r"\[value_and_grad\] model must be an nn.Module"):
        nn.value_and_grad(lambda x: x, lambda x: x)
    with pytest.raises(TypeError, match=r"\[value_and_grad\] fn must be callable"):
        nn.value_and_grad(model, 3)
    with pytest.raises(ValueError, match=r"\[value_and_grad\].*scalar"):
        nn.value_and_grad(model, lambda x: model(x))(mx.ones((2, 3)))
    # a failing call leaves the model's own arrays in place
    before = [id(v) for _, v in tree_flatten(model.parameters())]
    with pytest.raises(ValueError):
        nn.value_and_grad(model, lambda x: model(x).sum())(mx.ones((2, 4)))
    assert [id(v) for _, v in tree_flatten(model.parameters())] == before


def test_checkpoint_gives_the_same_values_and_gradients():
    rng = np.random.default_rng(2)
    model = MLP([3, 6, 6, 2])
    x, y = (mx.array(a) for a in data(rng, dtype=np.float32))
    plain = nn.value_and_grad(model, mse(model))(x, y)
    ckpt = nn.utils.checkpoint(model)
    checked = nn.value_and_grad(model, lambda a, b: ((ckpt(a) - b) ** 2).mean())(x, y)
    np.testing.assert_allclose(float(plain[0]), float(checked[0]), rtol=1e-6)
    for (k, a), (_, b) in zip(tree_flatten(plain[1]), tree_flatten(checked[1])):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-7, err_msg=k)
    # gradient with respect to the input, and a custom fn with keyword arguments
    gx = mx.grad(lambda a: ckpt(a).sum())(x)
    np.testing.assert_allclose(np.array(gx), np.array(mx.grad(lambda a: model(a).sum())(x)), rtol=1e-5, atol=1e-7)
    first = nn.utils.checkpoint(model, lambda a, k=1.0: model.layers[0](a) * k)
    np.testing.assert_allclose(np.array(first(x, k=2.0)), np.array(model.layers[0](x)) * 2, rtol=1e-6)
    with pytest.raises(TypeError, match=r"\[checkpoint\] module must be an nn.Module"):
        nn.utils.checkpoint(lambda a: a)


def test_average_gradients_single_process():
    grads = {"a": mx.ones(3), "b": [mx.zeros((2, 2))]}
    assert nn.average_gradients(grads) is grads
    assert nn.average_gradients(grads, all_reduce_size=0, communication_type=mx.float16) is grads


class FakeGroup:
    """A stand-in for a multi-process mx.distributed.Group."""

    def __init__(self, size):
        self._size = size

    def size(self):
        return self._size

    def rank(self):
        return 0


def test_multi_process_groups_shard_the_parameters():
    # a group of two seen from rank 0 (the collectives themselves run in
    # tests/distributed over MPI)
    g = FakeGroup(2)
    assert nn.AllToShardedLinear(4, 2, group=g).weight.shape == (1, 4)
    assert nn.ShardedToAllLinear(4, 2, group=g).weight.shape == (2, 2)
    with pytest.raises(ValueError, match=r"\[AllToShardedLinear\] output_dims \(3\) must be divisible"):
        nn.AllToShardedLinear(4, 3, group=g)
    lin = nn.Linear(2, 4)
    shard_inplace(lin, "all-to-sharded", group=g)
    assert lin.weight.shape == (2, 2) and lin.bias.shape == (2,)
    # fully sharded: rank 0 keeps the first half of axis 0 of every parameter
    lin = nn.Linear(2, 4)
    w, b = np.array(lin.weight), np.array(lin.bias)
    fs = nn.fully_shard(lin, group=g)
    assert isinstance(fs, nn.FullyShardedModule) and fs.module is lin
    np.testing.assert_array_equal(np.array(lin.weight), w[:2])
    np.testing.assert_array_equal(np.array(lin.bias), b[:2])
    with pytest.raises(ValueError, match=r"\[FullyShardedModule\] The parameter weight of shape \(3, 2\)"):
        nn.FullyShardedModule(nn.Linear(2, 3), group=g)


@pytest.mark.parametrize("kind", [nn.AllToShardedLinear, nn.ShardedToAllLinear])
@pytest.mark.parametrize("bias", [True, False])
def test_sharded_linear_is_linear_on_one_process(kind, bias):
    mx.random.seed(3)
    ref = nn.Linear(6, 4, bias=bias)
    mx.random.seed(3)
    layer = kind(6, 4, bias=bias)  # same initialisation as Linear
    assert [(k, v.tolist()) for k, v in tree_flatten(layer.parameters())] == [
        (k, v.tolist()) for k, v in tree_flatten(ref.parameters())
    ]
    x = mx.array(np.random.default_rng(4).standard_normal((3, 6)).astype(np.float32))
    np.testing.assert_allclose(np.array(layer(x)), np.array(ref(x)), rtol=1e-6, atol=1e-7)
    assert repr(layer) == repr(ref).replace("Linear", kind.__name__)
    _, g_layer = nn.value_and_grad(layer, lambda a: (layer(a) ** 2).sum())(x)
    _, g_ref = nn.value_and_grad(ref, lambda a: (ref(a) ** 2).sum())(x)
    for (k, a), (_, b) in zip(tree_flatten(g_layer), tree_flatten(g_ref)):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6, err_msg=k)
    with pytest.raises(ValueError, match=rf"\[{kind.__name__}\] input of shape \(3, 5\) does not match input_dims=6"):
        layer(mx.zeros((3, 5)))


def test_sharded_layers_match_mlx_on_one_process():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    for ours_kind, theirs_kind in ((nn.AllToShardedLinear, mlx_nn.AllToShardedLinear), (nn.ShardedToAllLinear, mlx_nn.ShardedToAllLinear)):
        mx.random.seed(5)
        mlx_core.random.seed(5)
        ours, theirs = ours_kind(4, 3), theirs_kind(4, 3)
        np.testing.assert_array_equal(np.array(ours.weight), np.array(theirs.weight))
        x = np.ones((2, 4), np.float32)
        np.testing.assert_allclose(np.array(ours(mx.array(x))), np.array(theirs(mlx_core.array(x))), rtol=1e-6)
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("sharding", ["all-to-sharded", "sharded-to-all"])
@pytest.mark.parametrize("segments", [1, 2, [1, 3]])
def test_shard_linear_and_from_linear(sharding, segments):
    lin = nn.Linear(4, 6)
    sharded = shard_linear(lin, sharding, segments=segments)
    assert type(sharded) is (nn.AllToShardedLinear if sharding == "all-to-sharded" else nn.ShardedToAllLinear)
    assert mx.array_equal(sharded.weight, lin.weight) and mx.array_equal(sharded.bias, lin.bias)
    x = mx.ones((2, 4))
    np.testing.assert_allclose(np.array(sharded(x)), np.array(lin(x)), rtol=1e-6)
    assert type(lin) is nn.Linear  # the original is unchanged


def test_shard_errors_and_shard_inplace():
    lin = nn.Linear(4, 6)
    with pytest.raises(ValueError, match=r"\[shard_linear\] Sharding type sharding='bogus' not supported"):
        shard_linear(lin, "bogus")
    with pytest.raises(TypeError, match=r"\[shard_linear\] expected a Linear or QuantizedLinear layer, got Identity"):
        shard_linear(nn.Identity(), "all-to-sharded")
    with pytest.raises(ValueError, match=r"\[ShardedToAllLinear\] cannot split shape \(6, 4\) into segments=3"):
        shard_linear(lin, "sharded-to-all", segments=3)
    weight = lin.weight
    assert shard_inplace(lin, "all-to-sharded") is None
    assert mx.array_equal(lin.weight, weight)
    calls = []
    shard_inplace(lin, lambda path, w: calls.append(path) or (0, 2))
    assert sorted(calls) == ["bias", "weight"] and mx.array_equal(lin.weight, weight)
    with pytest.raises(ValueError, match=r"\[shard_inplace\] Sharding type sharding='nope'"):
        shard_inplace(lin, "nope")


def _params(module, core, flatten):
    """(name, dtype name, NumPy value) of every parameter; floats through float32."""
    return [(k, str(v.dtype).rsplit(".", 1)[-1],
             np.array(v.astype(core.float32)) if core.issubdtype(v.dtype, core.floating) else np.array(v))
            for k, v in flatten(module.parameters())]


def _trainable(module, flatten):
    return [k for k, _ in flatten(module.trainable_parameters())]


@pytest.mark.parametrize("kind", ["QuantizedAllToShardedLinear", "QuantizedShardedToAllLinear"])
@pytest.mark.parametrize("bias, group_size, bits, mode", [(True, 64, 4, "affine"), (False, 32, 8, "affine"),
                                                          (True, 32, 4, "mxfp4"), (True, 16, 4, "nvfp4")])
def test_quantized_sharded_layers_match_mlx_on_one_process(kind, bias, group_size, bits, mode):
    """Built from the same seed, or by shard_linear from the same QuantizedLinear: the
    packed parameters are MLX's bit for bit, the output MLX's (and the unsharded layer's),
    and the parameters stay frozen through the layer's own unfreeze, as in MLX."""
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn
    from mlx.nn.layers.distributed import shard_linear as mlx_shard_linear
    from mlx.utils import tree_flatten as mlx_tree_flatten

    mx.random.seed(31)
    mlx_core.random.seed(31)
    ours = getattr(nn, kind)(128, 24, bias, group_size, bits, mode)
    theirs = getattr(mlx_nn, kind)(128, 24, bias, group_size, bits, mode)
    x = np.random.default_rng(32).standard_normal((3, 128)).astype(np.float32)
    sharding = "all-to-sharded" if "AllToSharded" in kind else "sharded-to-all"
    for build in ("init", "shard_linear"):
        if build == "shard_linear":
            their_lin, lin = mlx_nn.Linear(128, 24, bias=bias), nn.Linear(128, 24, bias=bias)
            lin.load_weights([(k, mx.array(np.array(v))) for k, v in mlx_tree_flatten(their_lin.parameters())])
            q, their_q = lin.to_quantized(group_size, bits, mode), their_lin.to_quantized(group_size, bits, mode)
            ours, theirs = shard_linear(q, sharding), mlx_shard_linear(their_q, sharding)
            np.testing.assert_allclose(np.array(ours(mx.array(x))), np.array(q(mx.array(x))), rtol=1e-6, atol=1e-6)
        assert type(ours).__name__ == type(theirs).__name__ == kind
        assert repr(ours) == repr(theirs)
        got, want = _params(ours, mx, tree_flatten), _params(theirs, mlx_core, mlx_tree_flatten)
        assert [(k, d) for k, d, _ in got] == [(k, d) for k, d, _ in want]
        for (k, _, a), (_, _, b) in zip(got, want):
            np.testing.assert_array_equal(a, b, err_msg=k)
        y, r = np.array(ours(mx.array(x))), np.array(theirs(mlx_core.array(x)))
        np.testing.assert_allclose(y, r, rtol=1e-5, atol=1e-5 * np.abs(r).max())
        assert _trainable(ours, tree_flatten) == _trainable(theirs, mlx_tree_flatten) == []
        for layer, flatten in ((ours, tree_flatten), (theirs, mlx_tree_flatten)):
            layer.unfreeze()  # the layer's own parameters stay frozen
            assert _trainable(layer, flatten) == []
            layer.unfreeze(keys=["bias"])
            assert _trainable(layer, flatten) == []
        wrapped, their_wrapped = nn.Sequential(ours), mlx_nn.Sequential(theirs)
        wrapped.unfreeze()  # a parent's unfreeze reaches them
        their_wrapped.unfreeze()
        assert _trainable(wrapped, tree_flatten) == _trainable(their_wrapped, mlx_tree_flatten) != []


def test_fully_sharded_module_on_one_process():
    lin = nn.Linear(4, 3)
    assert nn.fully_shard(lin) is lin
    assert nn.fully_shard(lin, compute_dtype=mx.float16) is lin
    wrapped = nn.FullyShardedModule(lin, compute_dtype=mx.bfloat16)
    assert repr(wrapped) == "FullyShardedModule(num_sharded_params=2\n  (module): Linear(input_dims=4, output_dims=3, bias=True)\n)"
    x = mx.ones((2, 4))
    y = wrapped(x)
    assert y.dtype == mx.float32  # as in MLX, compute_dtype only applies to gathered shards
    np.testing.assert_array_equal(np.array(y), np.array(lin(x)))
    value, grads = nn.value_and_grad(wrapped, lambda a: wrapped(a).sum())(x)
    np.testing.assert_allclose(np.array(grads["module"]["weight"]), np.full((3, 4), 2.0))
    np.testing.assert_allclose(np.array(grads["module"]["bias"]), np.full(3, 2.0))
    emb = nn.Embedding(5, 4)
    np.testing.assert_array_equal(np.array(nn.FullyShardedModule(emb).as_linear(x)), np.array(emb.as_linear(x)))


def compiled_training_losses(core, nn_mod, tree_map_fn, steps=5):
    """Losses of a compiled SGD loop (``mx.compile`` with the model state as inputs and
    outputs, the usual MLX training step) for either framework."""
    from functools import partial

    core.random.seed(0)
    model = nn_mod.Sequential(nn_mod.Linear(3, 8), nn_mod.Dropout(0.0), nn_mod.Linear(8, 1))
    x, y = core.random.normal((16, 3)), core.random.normal((16, 1))
    loss_and_grad = nn_mod.value_and_grad(model, lambda a, b: ((model(a) - b) ** 2).mean())
    state = [model.state]

    @partial(core.compile, inputs=state, outputs=state)
    def step(a, b):
        loss, grads = loss_and_grad(a, b)
        model.update(tree_map_fn(lambda p, g: p - 0.1 * g, model.trainable_parameters(), grads))
        return loss

    return [step(x, y).item() for _ in range(steps)]


def test_compiled_training_step_matches_mlx():
    losses = compiled_training_losses(mx, nn, tree_map)
    assert all(b < a for a, b in zip(losses, losses[1:]))  # SGD descends
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn
    from mlx.utils import tree_map as mlx_tree_map

    np.testing.assert_allclose(losses, compiled_training_losses(mlx_core, mlx_nn, mlx_tree_map), rtol=1e-5)
