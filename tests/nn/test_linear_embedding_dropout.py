"""Linear, Bilinear, Identity, Sequential, Embedding, Dropout* (the quantized layers are
in test_quantized.py).

Values are compared with NumPy formulas, with real MLX given the same weights (and, as
oxmx's random numbers match MLX's bit for bit, with MLX's own initialisation under the
same seed), and with torch where installed; gradients with central finite differences
in float64.
"""

import math

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn

FLOATS = [(mx.float32, 1e-6), (mx.float16, 2e-3), (mx.bfloat16, 2e-2)]


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def to_np(a):
    return np.array(a.astype(mx.float32)) if a.dtype == mx.bfloat16 else np.array(a)


def numeric_grad(f, x, eps=1e-6):
    """Central finite differences of the scalar ``f`` (NumPy float64 in, float out)."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += eps
        lo[i] -= eps
        g[i] = (f(hi) - f(lo)) / (2 * eps)
    return g


# ---------------------------------------------------------------- Linear
@pytest.mark.parametrize("dtype, tol", FLOATS)
@pytest.mark.parametrize("shape", [(4,), (3, 4), (2, 3, 4), (0, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_numpy(dtype, tol, shape, bias):
    rng = np.random.default_rng(0)
    layer = nn.Linear(4, 3, bias=bias)
    layer.set_dtype(dtype)
    x = mx.array(rng.standard_normal(shape).astype(np.float32)).astype(dtype)
    y = layer(x)
    assert y.shape == (*shape[:-1], 3) and y.dtype == dtype
    expect = to_np(x).astype(np.float64) @ to_np(layer.weight).T.astype(np.float64)
    if bias:
        expect = expect + to_np(layer.bias)
    np.testing.assert_allclose(to_np(y), expect, rtol=tol, atol=tol * 4)


def test_linear_init_matches_mlx_and_bounds():
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(11)
    mlx_core.random.seed(11)
    ours, theirs = nn.Linear(16, 8), mlx_nn.Linear(16, 8)
    np.testing.assert_array_equal(np.array(ours.weight), np.array(theirs.weight))
    np.testing.assert_array_equal(np.array(ours.bias), np.array(theirs.bias))
    big = np.array(nn.Linear(64, 256).weight)
    k = 1 / math.sqrt(64)
    assert big.dtype == np.float32 and np.abs(big).max() <= k
    # U(-k, k) has standard deviation k / sqrt(3)
    assert abs(big.std() - k / math.sqrt(3)) < 0.05 * k and abs(big.mean()) < 0.05 * k


def test_linear_matches_mlx_with_same_weights():
    mlx_core, mlx_nn = mlx_pair()
    ours, theirs = nn.Linear(5, 7), mlx_nn.Linear(5, 7)
    ours.weight, ours.bias = mx.array(np.array(theirs.weight)), mx.array(np.array(theirs.bias))
    x = np.random.default_rng(1).standard_normal((2, 3, 5)).astype(np.float32)
    np.testing.assert_allclose(np.array(ours(mx.array(x))), np.array(theirs(mlx_core.array(x))), rtol=1e-6, atol=1e-6)
    assert repr(ours) == repr(theirs) and repr(nn.Linear(5, 7, bias=False)) == repr(mlx_nn.Linear(5, 7, bias=False))


def test_linear_matches_torch():
    torch = pytest.importorskip("torch")
    layer = nn.Linear(6, 2)
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    expect = torch.nn.functional.linear(
        torch.tensor(x), torch.tensor(np.array(layer.weight)), torch.tensor(np.array(layer.bias))
    )
    np.testing.assert_allclose(np.array(layer(mx.array(x))), expect.numpy(), rtol=1e-5, atol=1e-6)


def test_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    layer = nn.Linear(3, 2)
    layer.set_dtype(mx.float64)
    x = rng.standard_normal((4, 3))
    w, b = np.array(layer.weight), np.array(layer.bias)
    loss = lambda y: (mx.sin(y) * y).sum()  # noqa: E731  a non-linear scalar of the output
    np_loss = lambda y: float((np.sin(y) * y).sum())  # noqa: E731
    value, grads = nn.value_and_grad(layer, lambda x: loss(layer(x)))(mx.array(x, dtype=mx.float64))
    assert abs(float(value) - np_loss(x @ w.T + b)) < 1e-12
    np.testing.assert_allclose(np.array(grads["weight"]), numeric_grad(lambda w_: np_loss(x @ w_.T + b), w), rtol=1e-6)
    np.testing.assert_allclose(np.array(grads["bias"]), numeric_grad(lambda b_: np_loss(x @ w.T + b_), b), rtol=1e-6)
    gx = mx.grad(lambda x: loss(layer(x)))(mx.array(x, dtype=mx.float64))
    np.testing.assert_allclose(np.array(gx), numeric_grad(lambda x_: np_loss(x_ @ w.T + b), x), rtol=1e-6)


@pytest.mark.parametrize("shape", [(2, 5), (5,), (3, 0)])
def test_linear_bad_input_shape(shape):
    with pytest.raises(ValueError, match=r"\[Linear\] input of shape .* does not match input_dims=4"):
        nn.Linear(4, 3)(mx.zeros(shape))
    with pytest.raises(ValueError, match=r"\[Linear\] input of shape \(\) does not match input_dims=4"):
        nn.Linear(4, 3, bias=False)(mx.array(1.0))
    with pytest.raises(TypeError, match=r"\[Linear\] expected an array"):
        nn.Linear(4, 3)([1.0, 2.0, 3.0, 4.0])


def test_linear_bad_dims():
    with pytest.raises(ValueError, match=r"\[Linear\] input_dims must be positive"):
        nn.Linear(0, 3)
    with pytest.raises(ValueError, match=r"\[Linear\] input_dims must be a non-negative integer, got -1"):
        nn.Linear(-1, 3)
    with pytest.raises(ValueError, match=r"\[Linear\] output_dims must be a non-negative integer, got 2.5"):
        nn.Linear(2, 2.5)
    assert nn.Linear(3, 0)(mx.ones((2, 3))).shape == (2, 0)


# ---------------------------------------------------------------- Bilinear
def bilinear_np(x1, x2, w, b):
    y = np.einsum("...j,oij,...i->...o", x1.astype(np.float64), w.astype(np.float64), x2.astype(np.float64))
    return y if b is None else y + b


@pytest.mark.parametrize("dtype, tol", FLOATS)
@pytest.mark.parametrize(
    "s1, s2", [((5, 2), (5, 3)), ((2,), (3,)), ((4, 1, 2), (1, 6, 3)), ((0, 2), (0, 3)), ((5, 2), (1, 3))]
)
@pytest.mark.parametrize("bias", [True, False])
def test_bilinear_matches_numpy(dtype, tol, s1, s2, bias):
    rng = np.random.default_rng(4)
    layer = nn.Bilinear(2, 3, 4, bias=bias)
    layer.set_dtype(dtype)
    x1 = mx.array(rng.standard_normal(s1).astype(np.float32)).astype(dtype)
    x2 = mx.array(rng.standard_normal(s2).astype(np.float32)).astype(dtype)
    y = layer(x1, x2)
    expect = bilinear_np(to_np(x1), to_np(x2), to_np(layer.weight), to_np(layer.bias) if bias else None)
    assert y.shape == expect.shape and y.dtype == dtype
    np.testing.assert_allclose(to_np(y), expect, rtol=tol * 4, atol=tol * 8)


def test_bilinear_matches_mlx_and_torch():
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(5)
    mlx_core.random.seed(5)
    ours, theirs = nn.Bilinear(3, 2, 4), mlx_nn.Bilinear(3, 2, 4)
    np.testing.assert_array_equal(np.array(ours.weight), np.array(theirs.weight))  # same init
    rng = np.random.default_rng(6)
    x1, x2 = rng.standard_normal((7, 3)).astype(np.float32), rng.standard_normal((7, 2)).astype(np.float32)
    got = np.array(ours(mx.array(x1), mx.array(x2)))
    np.testing.assert_allclose(got, np.array(theirs(mlx_core.array(x1), mlx_core.array(x2))), rtol=1e-5, atol=1e-6)
    assert repr(ours) == repr(theirs)
    torch = pytest.importorskip("torch")
    # torch's weight is (out, in1, in2); MLX's is (out, in2, in1)
    expect = torch.nn.functional.bilinear(
        torch.tensor(x1),
        torch.tensor(x2),
        torch.tensor(np.array(ours.weight).transpose(0, 2, 1)),
        torch.tensor(np.array(ours.bias)),
    )
    np.testing.assert_allclose(got, expect.numpy(), rtol=1e-5, atol=1e-6)


def test_bilinear_gradients_match_finite_differences():
    rng = np.random.default_rng(7)
    layer = nn.Bilinear(2, 3, 2)
    layer.set_dtype(mx.float64)
    x1, x2 = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    w, b = np.array(layer.weight), np.array(layer.bias)
    np_loss = lambda y: float((y**2).sum())  # noqa: E731
    _, grads = nn.value_and_grad(layer, lambda a, c: (layer(a, c) ** 2).sum())(
        mx.array(x1, dtype=mx.float64), mx.array(x2, dtype=mx.float64)
    )
    np.testing.assert_allclose(
        np.array(grads["weight"]), numeric_grad(lambda w_: np_loss(bilinear_np(x1, x2, w_, b)), w), rtol=1e-6
    )
    g1, g2 = mx.grad(lambda a, c: (layer(a, c) ** 2).sum(), argnums=(0, 1))(
        mx.array(x1, dtype=mx.float64), mx.array(x2, dtype=mx.float64)
    )
    np.testing.assert_allclose(np.array(g1), numeric_grad(lambda a: np_loss(bilinear_np(a, x2, w, b)), x1), rtol=1e-6)
    np.testing.assert_allclose(np.array(g2), numeric_grad(lambda c: np_loss(bilinear_np(x1, c, w, b)), x2), rtol=1e-6)


def test_bilinear_bad_inputs():
    layer = nn.Bilinear(2, 3, 4)
    with pytest.raises(ValueError, match=r"\[Bilinear\] input of shape \(5, 3\) does not match input1_dims=2"):
        layer(mx.zeros((5, 3)), mx.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\[Bilinear\] input of shape \(5, 4\) does not match input2_dims=3"):
        layer(mx.zeros((5, 2)), mx.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\[Bilinear\] the leading axes .* do not broadcast"):
        layer(mx.zeros((5, 2)), mx.zeros((4, 3)))


# ---------------------------------------------------------------- Identity, Sequential
def test_identity_and_sequential():
    x = mx.arange(6.0).reshape(2, 3)
    assert nn.Identity(1, 2, key="ignored")(x) is x
    assert nn.Identity().parameters() == {}
    assert nn.Sequential()(x) is x
    lin = nn.Linear(3, 2)
    seq = nn.Sequential(lin, lambda v: v * 2, nn.Identity())
    np.testing.assert_allclose(np.array(seq(x)), np.array(lin(x)) * 2, rtol=1e-6)
    assert seq.layers[0] is lin and list(seq.parameters()["layers"][0]) == ["weight", "bias"]
    mlx_core, mlx_nn = mlx_pair()
    assert repr(nn.Sequential(nn.Identity(), nn.Sequential(nn.Identity()))) == repr(
        mlx_nn.Sequential(mlx_nn.Identity(), mlx_nn.Sequential(mlx_nn.Identity()))
    )


# ---------------------------------------------------------------- Embedding
@pytest.mark.parametrize("idx_dtype", [mx.int32, mx.uint8, mx.int64])
@pytest.mark.parametrize("shape", [(), (5,), (2, 3), (0,)])
def test_embedding_lookup(idx_dtype, shape):
    emb = nn.Embedding(10, 4)
    idx = np.random.default_rng(8).integers(0, 10, shape)
    y = emb(mx.array(idx).astype(idx_dtype))
    assert y.shape == (*shape, 4) and y.dtype == mx.float32
    np.testing.assert_array_equal(np.array(y), np.array(emb.weight)[idx])


def test_embedding_init_as_linear_and_mlx():
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(9)
    mlx_core.random.seed(9)
    ours, theirs = nn.Embedding(12, 6), mlx_nn.Embedding(12, 6)
    np.testing.assert_array_equal(np.array(ours.weight), np.array(theirs.weight))
    assert repr(ours) == repr(theirs) == "Embedding(12, 6)"
    x = np.random.default_rng(10).standard_normal((3, 6)).astype(np.float32)
    np.testing.assert_allclose(np.array(ours.as_linear(mx.array(x))), x @ np.array(ours.weight).T, rtol=1e-5, atol=1e-6)
    big = np.array(nn.Embedding(1000, 16).weight)
    assert abs(big.std() - 0.25) < 0.01 and abs(big.mean()) < 0.01  # N(0, 1/dims)


def test_embedding_gradient_scatters_into_rows():
    emb = nn.Embedding(5, 3)
    idx = mx.array([1, 3, 1])
    _, grads = nn.value_and_grad(emb, lambda i: emb(i).sum())(idx)
    np.testing.assert_array_equal(np.array(grads["weight"]), np.array([[0] * 3, [2] * 3, [0] * 3, [1] * 3, [0] * 3]))


def test_embedding_matches_torch():
    torch = pytest.importorskip("torch")
    emb = nn.Embedding(7, 3)
    idx = np.array([[0, 6], [3, 3]])
    expect = torch.nn.functional.embedding(torch.tensor(idx), torch.tensor(np.array(emb.weight)))
    np.testing.assert_array_equal(np.array(emb(mx.array(idx))), expect.numpy())


def test_embedding_bad_inputs():
    emb = nn.Embedding(5, 3)
    with pytest.raises(ValueError, match=r"\[Embedding\] indices must be an integer array, got .*float32"):
        emb(mx.array([1.0]))
    with pytest.raises(ValueError, match=r"\[Embedding\] indices must be an integer array, got list"):
        emb([1, 2])
    with pytest.raises(ValueError, match=r"\[Embedding.as_linear\] input of shape \(2, 4\) does not match dims=3"):
        emb.as_linear(mx.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"\[Embedding\] dims must be positive"):
        nn.Embedding(5, 0)
    with pytest.raises(ValueError, match=r"\[Embedding\] num_embeddings must be a non-negative integer"):
        nn.Embedding(-5, 3)


# ---------------------------------------------------------------- Dropout
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p):
    mx.random.seed(12)
    x = mx.ones((200, 500))
    y = np.array(nn.Dropout(p)(x))
    kept = y != 0
    # 100000 Bernoulli draws: the kept fraction is within 5 standard deviations of 1 - p
    assert abs(kept.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / y.size)
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(y.mean() - 1) < 0.02  # the expectation is preserved


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_dropout_modes_and_dtypes(dtype):
    x = mx.ones((4, 8), dtype=dtype)
    d = nn.Dropout(0.5)
    assert d(x).dtype == dtype and d(x).shape == (4, 8)
    d.eval()
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x
    assert nn.Dropout(0.5)(mx.zeros((0, 3))).shape == (0, 3)
    assert repr(nn.Dropout(0.25)) == "Dropout(p=0.25)"


def test_dropout_bad_p():
    for cls in (nn.Dropout, nn.Dropout2d, nn.Dropout3d):
        for p in (1.0, -0.1, 1.5):
            with pytest.raises(ValueError, match=rf"\[{cls.__name__}\] The dropout probability {p} is not in \[0, 1\)"):
                cls(p)


def test_dropout_channel_masks():
    mx.random.seed(13)
    y = np.array(nn.Dropout2d(0.5)(mx.ones((8, 5, 6, 16))))
    # every (batch, channel) is either all zero or all 2 across H and W
    per_channel = y.reshape(8, 30, 16)
    assert np.all(per_channel == per_channel[:, :1, :]) and set(np.unique(y)) == {0.0, 2.0}
    assert 0.3 < (per_channel[:, 0, :] == 0).mean() < 0.7
    y3 = np.array(nn.Dropout3d(0.5)(mx.ones((4, 3, 5, 6, 16))))
    per_channel = y3.reshape(4, 90, 16)
    assert np.all(per_channel == per_channel[:, :1, :])
    assert nn.Dropout2d(0.5)(mx.ones((5, 6, 3))).shape == (5, 6, 3)  # unbatched HWC
    assert nn.Dropout3d(0.5)(mx.ones((2, 5, 6, 3))).shape == (2, 5, 6, 3)
    with pytest.raises(ValueError, match=r"\[Dropout2d\] Received input with 2 dimensions. Expected 3 or 4"):
        nn.Dropout2d()(mx.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\[Dropout3d\] Received input with 3 dimensions. Expected 4 or 5"):
        nn.Dropout3d()(mx.ones((2, 3, 3)))
    with pytest.raises(ValueError, match=r"\[Dropout2d\] Received input with 2"):
        nn.Dropout2d().eval()(mx.ones((2, 3)))  # checked in eval mode too


def test_dropout_matches_mlx_under_same_seed():
    mlx_core, mlx_nn = mlx_pair()
    x = np.random.default_rng(14).standard_normal((3, 4, 5, 6)).astype(np.float32)
    pairs = [(nn.Dropout(0.3), mlx_nn.Dropout(0.3)), (nn.Dropout2d(0.4), mlx_nn.Dropout2d(0.4))]
    pairs.append((nn.Dropout3d(0.2), mlx_nn.Dropout3d(0.2)))
    for ours, theirs in pairs:
        mx.random.seed(15)
        mlx_core.random.seed(15)
        np.testing.assert_array_equal(np.array(ours(mx.array(x))), np.array(theirs(mlx_core.array(x))))
        assert repr(ours) == repr(theirs)


def test_dropout_gradient_is_the_scaled_mask():
    x = mx.arange(1.0, 13.0).reshape(3, 4)
    d = nn.Dropout(0.25)
    mx.random.seed(17)
    y = np.array(d(x))
    mx.random.seed(17)
    g = np.array(mx.grad(lambda v: d(v).sum())(x))
    np.testing.assert_allclose(g, (y != 0) / 0.75, rtol=1e-6)
