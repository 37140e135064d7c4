"""LayerNorm, RMSNorm, GroupNorm, InstanceNorm and BatchNorm of oxmx.nn.

Values against real MLX with identical parameters (float32/float16/bfloat16), against
NumPy float64 formulas and against torch (channels-first layers fed the transposed
input, BatchNorm's running statistics over several steps); gradients with respect to
the input and the parameters against central finite differences in float64.
"""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.utils import tree_flatten

DTYPES = {"float32": 2e-5, "float16": 1e-2, "bfloat16": 6e-2}


def to_np(a):
    return np.array(a.astype(mx.float32)) if a.dtype in (mx.bfloat16, mx.float16) else np.array(a)


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def dtype_name(dt):
    return str(dt).split(".")[-1]


def randomize(layer, rng):
    """Give the learned parameters random values (so a swapped weight/bias shows)."""
    params = {k: mx.array(rng.standard_normal(v.shape).astype(np.float32)) for k, v in tree_flatten(layer.trainable_parameters())}
    layer.load_weights(list(params.items()), strict=False)
    return params


def copy_to_mlx(layer, ref, mlx_core):
    ref.load_weights([(k, mlx_core.array(np.array(v))) for k, v in tree_flatten(layer.parameters())])


def np_normalize(x, axes, eps=1e-5):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


def check_grad_fd(f, x, rng, eps=1e-6, rtol=1e-6, directions=3):
    """``mx.grad`` of ``sum(f(x) * u)`` against central differences in float64."""
    xm = mx.array(x, dtype=mx.float64)
    u = mx.array(rng.standard_normal(f(xm).shape), dtype=mx.float64)

    def scalar(a):
        return mx.sum(f(a) * u)

    g = np.array(mx.grad(scalar)(xm))
    assert g.shape == x.shape
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        fd = (scalar(mx.array(x + eps * v, dtype=mx.float64)).item() - scalar(mx.array(x - eps * v, dtype=mx.float64)).item()) / (2 * eps)
        ad = float((g * v).sum())
        assert abs(ad - fd) <= rtol * max(1.0, abs(fd)) + 1e-7, (ad, fd)


LAYERS = {
    "LayerNorm": (lambda n: n.LayerNorm(6), (2, 3, 6)),
    "LayerNorm-nobias": (lambda n: n.LayerNorm(6, eps=1e-3, bias=False), (4, 6)),
    "LayerNorm-noaffine": (lambda n: n.LayerNorm(6, affine=False), (6,)),
    "RMSNorm": (lambda n: n.RMSNorm(6, eps=1e-4), (2, 3, 6)),
    "GroupNorm": (lambda n: n.GroupNorm(3, 6), (2, 4, 5, 6)),
    "GroupNorm-torch": (lambda n: n.GroupNorm(3, 6, pytorch_compatible=True), (2, 4, 6)),
    "GroupNorm-noaffine": (lambda n: n.GroupNorm(2, 6, eps=1e-3, affine=False), (3, 6)),
    "InstanceNorm": (lambda n: n.InstanceNorm(6), (2, 4, 5, 6)),
    "InstanceNorm-affine": (lambda n: n.InstanceNorm(6, eps=1e-3, affine=True), (2, 7, 6)),
    "BatchNorm": (lambda n: n.BatchNorm(6), (5, 6)),
    "BatchNorm-3d": (lambda n: n.BatchNorm(6, momentum=0.3), (3, 4, 6)),
    "BatchNorm-4d-noaffine": (lambda n: n.BatchNorm(6, affine=False), (2, 3, 3, 6)),
    "BatchNorm-notrack": (lambda n: n.BatchNorm(6, track_running_stats=False), (4, 6)),
}


# ---------------------------------------------------------------- vs MLX
@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("training", [True, False])
def test_matches_mlx(name, dtype, training, rng):
    mlx_core, mlx_nn = mlx_pair()
    make, shape = LAYERS[name]
    ours, ref = make(nn), make(mlx_nn)
    randomize(ours, rng)
    copy_to_mlx(ours, ref, mlx_core)
    assert repr(ours) == repr(ref)
    if not training:
        ours.eval(), ref.eval()
    for step in range(3):  # several steps: BatchNorm's running statistics accumulate
        x = (rng.standard_normal(shape) * 2 + step).astype(np.float32)
        y = ours(mx.array(x).astype(getattr(mx, dtype)))
        r = ref(mlx_core.array(x).astype(getattr(mlx_core, dtype)))
        assert y.shape == shape and dtype_name(y.dtype) == dtype_name(r.dtype)
        tol = DTYPES[dtype]
        np.testing.assert_allclose(to_np(y), np.array(r.astype(mlx_core.float32)), rtol=tol, atol=tol)
    mine, theirs = dict(tree_flatten(ours.parameters())), dict(tree_flatten(ref.parameters()))
    assert sorted(mine) == sorted(theirs)
    assert sorted(k for k, _ in tree_flatten(ours.trainable_parameters())) == sorted(
        k for k, _ in tree_flatten(ref.trainable_parameters())
    )
    for k in mine:
        assert dtype_name(mine[k].dtype) == dtype_name(theirs[k].dtype)
        np.testing.assert_allclose(np.array(mine[k]), np.array(theirs[k]), rtol=DTYPES[dtype], atol=DTYPES[dtype])


def test_integer_inputs_normalise_as_float32_like_mlx():
    mlx_core, mlx_nn = mlx_pair()
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    for make in (lambda n: n.LayerNorm(4), lambda n: n.RMSNorm(4), lambda n: n.BatchNorm(4), lambda n: n.GroupNorm(2, 4)):
        y, r = make(nn)(mx.array(x)), make(mlx_nn)(mlx_core.array(x))
        assert y.dtype == mx.float32 and dtype_name(r.dtype) == "float32"
        np.testing.assert_allclose(np.array(y), np.array(r), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- vs NumPy formulas
def test_layer_and_rms_norm_match_numpy(rng):
    x = rng.standard_normal((3, 4, 8)) * 3 + 2
    ln = nn.LayerNorm(8, eps=1e-3)
    p = randomize(ln, rng)
    expect = np_normalize(x, -1, 1e-3) * np.array(p["weight"]) + np.array(p["bias"])
    np.testing.assert_allclose(np.array(ln(mx.array(x.astype(np.float32)))), expect, rtol=1e-5, atol=1e-5)
    rms = nn.RMSNorm(8, eps=1e-3)
    p = randomize(rms, rng)
    expect = x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-3) * np.array(p["weight"])
    np.testing.assert_allclose(np.array(rms(mx.array(x.astype(np.float32)))), expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pytorch_compatible", [False, True])
@pytest.mark.parametrize("shape", [(2, 6), (2, 3, 6), (2, 3, 4, 6)])
def test_group_norm_matches_numpy(pytorch_compatible, shape, rng):
    x = rng.standard_normal(shape) * np.arange(1, 7)  # features on different scales
    gn = nn.GroupNorm(3, 6, eps=1e-4, pytorch_compatible=pytorch_compatible)
    p = randomize(gn, rng)
    expect = np.empty_like(x)
    for c0 in range(3):
        cols = [c0 * 2, c0 * 2 + 1] if pytorch_compatible else [c0, c0 + 3]  # contiguous or strided groups
        for b in range(shape[0]):
            expect[b][..., cols] = np_normalize(x[b][..., cols], None, 1e-4)
    expect = expect * np.array(p["weight"]) + np.array(p["bias"])
    np.testing.assert_allclose(np.array(gn(mx.array(x.astype(np.float32)))), expect, rtol=1e-5, atol=1e-5)


def test_instance_norm_matches_numpy(rng):
    x = rng.standard_normal((2, 3, 4, 5)) * 4 - 1
    inorm = nn.InstanceNorm(5, affine=True)
    p = randomize(inorm, rng)
    expect = np_normalize(x, (1, 2)) * np.array(p["weight"]) + np.array(p["bias"])
    np.testing.assert_allclose(np.array(inorm(mx.array(x.astype(np.float32)))), expect, rtol=1e-5, atol=1e-5)


def test_batch_norm_running_statistics_match_numpy(rng):
    bn = nn.BatchNorm(3, momentum=0.25)
    p = randomize(bn, rng)
    run_mean, run_var = np.zeros(3), np.ones(3)
    for _ in range(4):
        x = rng.standard_normal((5, 2, 3)) * [1.0, 3.0, 0.5] + [0.0, 2.0, -1.0]
        y = np.array(bn(mx.array(x.astype(np.float32))))
        flat = x.reshape(-1, 3)
        expect = (x - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5) * np.array(p["weight"]) + np.array(p["bias"])
        np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)
        run_mean = 0.75 * run_mean + 0.25 * flat.mean(0)
        run_var = 0.75 * run_var + 0.25 * flat.var(0, ddof=1)  # unbiased in the running estimate
        np.testing.assert_allclose(np.array(bn.running_mean), run_mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.array(bn.running_var), run_var, rtol=1e-5, atol=1e-6)
    bn.eval()
    x = rng.standard_normal((4, 3))
    y = np.array(bn(mx.array(x.astype(np.float32))))
    expect = (x - run_mean) / np.sqrt(run_var + 1e-5) * np.array(p["weight"]) + np.array(p["bias"])
    np.testing.assert_allclose(y, expect, rtol=1e-5, atol=1e-5)
    # evaluation never touches the running statistics
    np.testing.assert_allclose(np.array(bn.running_mean), run_mean, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- vs torch
def test_layer_and_rms_norm_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 5, 8))
    w, b = rng.standard_normal(8), rng.standard_normal(8)
    ln = nn.LayerNorm(8, eps=1e-4)
    ln.update({"weight": mx.array(w, dtype=mx.float64), "bias": mx.array(b, dtype=mx.float64)})
    ref = torch.nn.functional.layer_norm(torch.tensor(x), (8,), torch.tensor(w), torch.tensor(b), eps=1e-4)
    np.testing.assert_allclose(np.array(ln(mx.array(x, dtype=mx.float64))), ref.numpy(), rtol=1e-10, atol=1e-12)
    rms = nn.RMSNorm(8, eps=1e-4)
    rms.update({"weight": mx.array(w, dtype=mx.float64)})
    ref = torch.nn.functional.rms_norm(torch.tensor(x), (8,), torch.tensor(w), eps=1e-4)
    np.testing.assert_allclose(np.array(rms(mx.array(x, dtype=mx.float64))), ref.numpy(), rtol=1e-10, atol=1e-12)


def channels_first(x):
    return np.moveaxis(x, -1, 1)


def test_group_norm_pytorch_compatible_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 4, 8)) * 2 + 1
    gn = nn.GroupNorm(4, 8, pytorch_compatible=True)
    p = randomize(gn, rng)
    tgn = torch.nn.GroupNorm(4, 8).double()
    with torch.no_grad():
        tgn.weight.copy_(torch.tensor(np.array(p["weight"])))
        tgn.bias.copy_(torch.tensor(np.array(p["bias"])))
    gn.set_dtype(mx.float64)
    ref = tgn(torch.tensor(channels_first(x))).detach().numpy()
    np.testing.assert_allclose(channels_first(np.array(gn(mx.array(x, dtype=mx.float64)))), ref, rtol=1e-10, atol=1e-12)


def test_instance_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 5, 6, 4)) * 3
    inorm = nn.InstanceNorm(4, affine=True)
    p = randomize(inorm, rng)
    tin = torch.nn.InstanceNorm2d(4, affine=True).double()
    with torch.no_grad():
        tin.weight.copy_(torch.tensor(np.array(p["weight"])))
        tin.bias.copy_(torch.tensor(np.array(p["bias"])))
    inorm.set_dtype(mx.float64)
    ref = tin(torch.tensor(channels_first(x))).detach().numpy()
    np.testing.assert_allclose(channels_first(np.array(inorm(mx.array(x, dtype=mx.float64)))), ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, torch_cls", [((6, 4), "BatchNorm1d"), ((3, 5, 4), "BatchNorm1d"), ((2, 3, 3, 4), "BatchNorm2d")])
def test_batch_norm_matches_torch_with_running_stats(shape, torch_cls, rng):
    torch = pytest.importorskip("torch")
    bn = nn.BatchNorm(4, momentum=0.2)
    p = randomize(bn, rng)
    bn.set_dtype(mx.float64)
    tbn = getattr(torch.nn, torch_cls)(4, momentum=0.2).double()
    with torch.no_grad():
        tbn.weight.copy_(torch.tensor(np.array(p["weight"])))
        tbn.bias.copy_(torch.tensor(np.array(p["bias"])))
    for step in range(3):
        x = rng.standard_normal(shape) * (step + 1) + step
        y = np.array(bn(mx.array(x, dtype=mx.float64)))
        ref = tbn(torch.tensor(channels_first(x))).detach().numpy()
        np.testing.assert_allclose(channels_first(y), ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.array(bn.running_mean), tbn.running_mean.numpy(), rtol=1e-10)
        np.testing.assert_allclose(np.array(bn.running_var), tbn.running_var.numpy(), rtol=1e-10)
    bn.eval(), tbn.eval()
    x = rng.standard_normal(shape)
    np.testing.assert_allclose(
        channels_first(np.array(bn(mx.array(x, dtype=mx.float64)))),
        tbn(torch.tensor(channels_first(x))).detach().numpy(),
        rtol=1e-10,
        atol=1e-12,
    )


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_input_gradients_finite_differences(name, rng):
    make, shape = LAYERS[name]
    layer = make(nn)
    randomize(layer, rng)
    layer.set_dtype(mx.float64)
    if "running_mean" in layer:
        layer.eval()  # the running statistics would change between the evaluations
        check_grad_fd(layer, rng.standard_normal(shape), rng)
        layer.train()
    # training mode (batch statistics), without letting the running stats drift
    layer_train = make(nn)
    layer_train.update(layer.parameters())
    layer_train.set_dtype(mx.float64)
    check_grad_fd(layer_train, rng.standard_normal(shape) * 2 + 1, rng)


@pytest.mark.parametrize("name", sorted(n for n in LAYERS if "noaffine" not in n and n != "InstanceNorm"))
def test_parameter_gradients_finite_differences(name, rng):
    make, shape = LAYERS[name]
    layer = make(nn)
    randomize(layer, rng)
    layer.set_dtype(mx.float64)
    x = mx.array(rng.standard_normal(shape), dtype=mx.float64)
    trainable = dict(tree_flatten(layer.trainable_parameters()))
    assert trainable
    for key in trainable:

        def f(value, key=key):
            layer.update({key: value})
            return layer(x)

        check_grad_fd(f, np.array(trainable[key]), rng)
        layer.update({key: trainable[key]})


# ---------------------------------------------------------------- state, repr, errors
def test_batch_norm_state_is_frozen_and_persistent(tmp_path, rng):
    bn = nn.BatchNorm(3)
    assert sorted(k for k, _ in tree_flatten(bn.parameters())) == ["bias", "running_mean", "running_var", "weight"]
    assert sorted(k for k, _ in tree_flatten(bn.trainable_parameters())) == ["bias", "weight"]
    bn.freeze()
    assert tree_flatten(bn.trainable_parameters()) == []
    bn.unfreeze()
    assert sorted(k for k, _ in tree_flatten(bn.trainable_parameters())) == ["bias", "weight"]
    assert sorted(k for k, _ in tree_flatten(nn.BatchNorm(3, affine=False).trainable_parameters())) == []
    assert sorted(k for k, _ in tree_flatten(nn.BatchNorm(3, track_running_stats=False).parameters())) == ["bias", "weight"]

    # gradients reach only the trainable parameters; the stats do not get any
    x = mx.array(rng.standard_normal((4, 3)).astype(np.float32))

    def loss(params):
        bn.update(params)
        return mx.sum(bn(x) ** 2)

    grads = mx.grad(loss)(bn.trainable_parameters())
    assert sorted(grads) == ["bias", "weight"]

    bn(x * 3 + 1)
    path = str(tmp_path / "bn.safetensors")
    bn.save_weights(path)
    fresh = nn.BatchNorm(3)
    fresh.load_weights(path)
    np.testing.assert_array_equal(np.array(fresh.running_mean), np.array(bn.running_mean))
    np.testing.assert_array_equal(np.array(fresh.running_var), np.array(bn.running_var))


def test_batch_norm_training_vs_eval(rng):
    bn = nn.BatchNorm(2)
    x = mx.array(rng.standard_normal((8, 2)).astype(np.float32) * 5 + 3)
    y_train = bn(x)
    np.testing.assert_allclose(np.array(y_train).mean(0), 0, atol=1e-5)
    before = np.array(bn.running_mean)
    bn.eval()
    y_eval = bn(x)
    np.testing.assert_array_equal(np.array(bn.running_mean), before)
    assert not np.allclose(np.array(y_eval), np.array(y_train))


def test_zero_size_batches(rng):
    for layer, shape in [
        (nn.LayerNorm(4), (0, 4)),
        (nn.RMSNorm(4), (0, 3, 4)),
        (nn.GroupNorm(2, 4), (0, 3, 4)),
        (nn.InstanceNorm(4), (0, 3, 4)),
        (nn.BatchNorm(4), (0, 4)),
    ]:
        y = layer(mx.zeros(shape))
        assert y.shape == shape
    bn = nn.BatchNorm(4)
    bn(mx.zeros((0, 4)))
    # an empty batch carries no statistics: the running ones are left as they were
    np.testing.assert_array_equal(np.array(bn.running_mean), np.zeros(4))
    np.testing.assert_array_equal(np.array(bn.running_var), np.ones(4))


def test_unbatched_and_batched_agree(rng):
    x = rng.standard_normal((3, 6)).astype(np.float32)
    for layer in (nn.LayerNorm(6), nn.RMSNorm(6)):
        randomize(layer, rng)
        np.testing.assert_allclose(np.array(layer(mx.array(x))[1]), np.array(layer(mx.array(x[1]))), rtol=1e-6)


def test_reprs():
    assert repr(nn.LayerNorm(4)) == "LayerNorm(4, eps=1e-05, affine=True)"
    assert repr(nn.LayerNorm(4, affine=False)) == "LayerNorm(4, eps=1e-05, affine=False)"
    assert repr(nn.RMSNorm(4, eps=1e-6)) == "RMSNorm(4, eps=1e-06)"
    assert repr(nn.GroupNorm(2, 4)) == "GroupNorm(2, 4, eps=1e-05, affine=True, pytorch_compatible=False)"
    assert repr(nn.InstanceNorm(4)) == "InstanceNorm(4, eps=1e-05, affine=False)"
    assert repr(nn.BatchNorm(4)) == "BatchNorm(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"


@pytest.mark.parametrize(
    "make, x, error, match",
    [
        (lambda: nn.LayerNorm(5), lambda: mx.zeros((2, 4)), ValueError, r"\[LayerNorm\].*\(2, 4\).*dims=5"),
        (lambda: nn.LayerNorm(5, affine=False), lambda: mx.zeros((2, 4)), ValueError, r"\[LayerNorm\]"),
        (lambda: nn.LayerNorm(1), lambda: mx.array(1.0), ValueError, r"\[LayerNorm\]"),
        (lambda: nn.RMSNorm(5), lambda: mx.zeros((2, 4)), ValueError, r"\[RMSNorm\].*dims=5"),
        (lambda: nn.GroupNorm(2, 6), lambda: mx.zeros((2, 3, 4)), ValueError, r"\[GroupNorm\].*dims=6"),
        (lambda: nn.GroupNorm(2, 4), lambda: mx.zeros((4,)), ValueError, r"\[GroupNorm\].*at least 2"),
        (lambda: nn.InstanceNorm(4), lambda: mx.zeros((3, 4)), ValueError, r"\[InstanceNorm\].*at least 3"),
        (lambda: nn.InstanceNorm(5), lambda: mx.zeros((2, 3, 4)), ValueError, r"\[InstanceNorm\].*dims=5"),
        (lambda: nn.BatchNorm(5), lambda: mx.zeros((2, 4)), ValueError, r"\[BatchNorm\].*dims=5"),
        (lambda: nn.BatchNorm(4), lambda: mx.zeros((4,)), ValueError, r"\[BatchNorm\].*2, 3 or 4"),
        (lambda: nn.BatchNorm(4), lambda: mx.zeros((1, 2, 2, 2, 4)), ValueError, r"\[BatchNorm\].*2, 3 or 4"),
        (lambda: nn.BatchNorm(4), lambda: mx.zeros((1, 4)), ValueError, r"\[BatchNorm\].*more than one value"),
        (lambda: nn.BatchNorm(4), lambda: [[1.0, 2.0, 3.0, 4.0]], TypeError, r"\[BatchNorm\]"),
        (lambda: nn.LayerNorm(4), lambda: np.zeros((2, 4)), TypeError, r"\[LayerNorm\]"),
    ],
)
def test_bad_inputs(make, x, error, match):
    layer = make()
    with pytest.raises(error, match=match):
        layer(x())


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"\[GroupNorm\].*\(4\).*\(3\)"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"\[GroupNorm\]"):
        nn.GroupNorm(0, 4)


def test_batch_norm_single_sample_in_eval_is_fine():
    bn = nn.BatchNorm(4)
    bn.eval()
    np.testing.assert_allclose(np.array(bn(mx.ones((1, 4)))), np.ones((1, 4)) / np.sqrt(1 + 1e-5), rtol=1e-6)


def test_batch_norm_under_value_and_grad_and_compile(rng):
    x = mx.array(rng.standard_normal((8, 3)).astype(np.float32) * 2 + 1)
    expect_mean = 0.1 * np.array(x).mean(0)

    bn = nn.BatchNorm(3)

    def loss(params):
        bn.update(params)
        return mx.sum(bn(x) ** 2)

    value, grads = mx.value_and_grad(loss)(bn.trainable_parameters())
    # sum((w * xhat + b)^2) with w = 1, b = 0: each feature's xhat has sum 0, sum of squares N
    assert value.item() == pytest.approx(24.0, rel=1e-4)
    np.testing.assert_allclose(np.array(grads["weight"]), 16.0, rtol=1e-4)
    np.testing.assert_allclose(np.array(grads["bias"]), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.array(bn.running_mean), expect_mean, rtol=1e-5)

    # compiled with the module's state as input and output: the stats still advance
    bn2 = nn.BatchNorm(3)
    step = mx.compile(lambda a: bn2(a), inputs=[bn2.state], outputs=[bn2.state])
    step(x)
    np.testing.assert_allclose(np.array(bn2.running_mean), expect_mean, rtol=1e-5)
    step(x)
    np.testing.assert_allclose(np.array(bn2.running_mean), expect_mean * 1.9, rtol=1e-5)
