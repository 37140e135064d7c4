"""RNN, GRU and LSTM: parameters, NumPy reference recurrences, real MLX and PyTorch
with the same weights, gradients (finite differences in float64 and MLX's), dtypes,
empty inputs and errors."""

import math
import re

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.utils import tree_flatten, tree_unflatten

LAYERS = ["RNN", "GRU", "LSTM"]
D, H = 3, 4


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


# ------------------------------------------------------------------ NumPy references
def rnn_ref(p, x, h=None, act=np.tanh):
    out = []
    h = np.zeros(x.shape[:-2] + (H,)) if h is None else h
    for t in range(x.shape[-2]):
        h = act(x[..., t, :] @ p["Wxh"].T + h @ p["Whh"].T + p.get("bias", 0))
        out.append(h)
    return np.stack(out, -2)


def gru_ref(p, x, h=None):
    out = []
    h = np.zeros(x.shape[:-2] + (H,)) if h is None else h
    for t in range(x.shape[-2]):
        gx = x[..., t, :] @ p["Wx"].T + p.get("b", 0)
        gh = h @ p["Wh"].T
        r = sigmoid(gx[..., :H] + gh[..., :H])
        z = sigmoid(gx[..., H : 2 * H] + gh[..., H : 2 * H])
        n = np.tanh(gx[..., 2 * H :] + r * (gh[..., 2 * H :] + p.get("bhn", 0)))
        h = (1 - z) * n + z * h
        out.append(h)
    return np.stack(out, -2)


def lstm_ref(p, x, h=None, c=None):
    hs, cs = [], []
    h = np.zeros(x.shape[:-2] + (H,)) if h is None else h
    c = np.zeros(x.shape[:-2] + (H,)) if c is None else c
    for t in range(x.shape[-2]):
        g = x[..., t, :] @ p["Wx"].T + h @ p["Wh"].T + p.get("bias", 0)
        i, f, gg, o = sigmoid(g[..., :H]), sigmoid(g[..., H : 2 * H]), np.tanh(g[..., 2 * H : 3 * H]), sigmoid(g[..., 3 * H :])
        c = f * c + i * gg
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.stack(hs, -2), np.stack(cs, -2)


def params_np(layer):
    return {k: np.array(v, np.float64) for k, v in tree_flatten(layer.parameters())}


def make(name, bias=True, dtype=mx.float32):
    layer = getattr(nn, name)(D, H, bias=bias)
    layer.set_dtype(dtype)
    return layer


def inputs(rng, shape, dtype=mx.float32):
    return mx.array(rng.standard_normal(shape), dtype=dtype)


# ------------------------------------------------------------------ parameters
def test_parameter_names_shapes_and_init():
    expect = {
        "RNN": {"Wxh": (H, D), "Whh": (H, H), "bias": (H,)},
        "GRU": {"Wx": (3 * H, D), "Wh": (3 * H, H), "b": (3 * H,), "bhn": (H,)},
        "LSTM": {"Wx": (4 * H, D), "Wh": (4 * H, H), "bias": (4 * H,)},
    }
    for name, shapes in expect.items():
        layer = make(name)
        assert {k: tuple(v.shape) for k, v in tree_flatten(layer.parameters())} == shapes
        assert all(v.dtype == mx.float32 for _, v in tree_flatten(layer.parameters()))
        no_bias = make(name, bias=False)
        assert sorted(k for k, _ in tree_flatten(no_bias.parameters())) == sorted(k for k in shapes if k[0] == "W")
        # as in MLX, the missing biases are attributes set to None
        assert all(getattr(no_bias, k) is None for k in shapes if k[0] != "W")


def test_init_is_uniform_over_one_over_sqrt_hidden():
    mx.random.seed(0)
    hidden = 64
    k = 1 / math.sqrt(hidden)
    for name in LAYERS:
        for key, v in tree_flatten(getattr(nn, name)(50, hidden).parameters()):
            a = np.array(v)
            assert a.min() >= -k and a.max() <= k, (name, key)
            # U(-k, k) has standard deviation k / sqrt(3); the smallest tensor has 64 entries
            assert abs(a.std() - k / math.sqrt(3)) < 0.25 * k, (name, key)
            assert a.max() > 0.8 * k and a.min() < -0.8 * k, (name, key)


def test_repr_matches_mlx():
    mnn = pytest.importorskip("mlx.nn")
    for name in ["GRU", "LSTM"]:
        for bias in (True, False):
            assert repr(getattr(nn, name)(D, H, bias=bias)) == repr(getattr(mnn, name)(D, H, bias=bias))
    for bias in (True, False):
        # the same up to the address of the default tanh
        no_address = [re.sub(r" at 0x[0-9a-f]+", "", repr(m)) for m in (nn.RNN(D, H, bias=bias), mnn.RNN(D, H, bias=bias))]
        assert no_address[0] == no_address[1] == f"RNN(input_dims=3, hidden_size=4, nonlinearity=<function tanh>, bias={bias})"
    assert nn.RNN(D, H).nonlinearity is nn.tanh


# ------------------------------------------------------------------ forward vs NumPy
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(5, D), (2, 5, D), (2, 1, 3, D)])
def test_forward_matches_reference(shape, bias):
    rng = np.random.default_rng(0)
    x = inputs(rng, shape)
    xs = np.array(x, np.float64)
    h0 = inputs(rng, shape[:-2] + (H,))
    c0 = inputs(rng, shape[:-2] + (H,))
    h0s, c0s = np.array(h0, np.float64), np.array(c0, np.float64)
    out_shape = shape[:-1] + (H,)

    rnn = make("RNN", bias)
    for h, hs in ((None, None), (h0, h0s)):
        y = rnn(x, h)
        assert y.shape == out_shape and y.dtype == mx.float32
        np.testing.assert_allclose(np.array(y), rnn_ref(params_np(rnn), xs, hs), rtol=1e-5, atol=1e-6)

    gru = make("GRU", bias)
    for h, hs in ((None, None), (h0, h0s)):
        y = gru(x, h)
        assert y.shape == out_shape
        np.testing.assert_allclose(np.array(y), gru_ref(params_np(gru), xs, hs), rtol=1e-5, atol=1e-6)

    lstm = make("LSTM", bias)
    for h, c, hs, cs in ((None, None, None, None), (h0, None, h0s, None), (None, c0, None, c0s), (h0, c0, h0s, c0s)):
        yh, yc = lstm(x, h, c)
        assert yh.shape == out_shape and yc.shape == out_shape
        rh, rc = lstm_ref(params_np(lstm), xs, hs, cs)
        np.testing.assert_allclose(np.array(yh), rh, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.array(yc), rc, rtol=1e-5, atol=1e-6)


def test_rnn_custom_nonlinearity():
    rng = np.random.default_rng(1)
    rnn = nn.RNN(D, H, nonlinearity=nn.relu)
    x = inputs(rng, (2, 6, D))
    np.testing.assert_allclose(
        np.array(rnn(x)), rnn_ref(params_np(rnn), np.array(x, np.float64), act=lambda v: np.maximum(v, 0)), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match=r"\[RNN\] nonlinearity must be callable"):
        nn.RNN(D, H, nonlinearity=3)


def test_unbatched_input_with_batched_state_broadcasts():
    rng = np.random.default_rng(2)
    x = inputs(rng, (5, D))
    h0 = inputs(rng, (2, H))
    gru = make("GRU")
    y = gru(x, h0)
    assert y.shape == (2, 5, H)
    np.testing.assert_allclose(np.array(y[1]), np.array(gru(x, h0[1])), rtol=1e-6)
    # each batch element of a batched input is the unbatched computation
    xb = inputs(rng, (3, 5, D))
    lstm = make("LSTM")
    hb, cb = lstm(xb)
    h1, c1 = lstm(xb[1])
    np.testing.assert_allclose(np.array(hb[1]), np.array(h1), rtol=1e-6)
    np.testing.assert_allclose(np.array(cb[1]), np.array(c1), rtol=1e-6)


# ------------------------------------------------------------------ vs real MLX
def copy_to_mlx(layer, mlx_layer):
    import mlx.core as mlx
    from mlx.utils import tree_flatten as mlx_flatten
    from mlx.utils import tree_unflatten as mlx_unflatten

    ours = dict(tree_flatten(layer.parameters()))
    assert set(ours) == {k for k, _ in mlx_flatten(mlx_layer.parameters())}
    mlx_layer.update(mlx_unflatten([(k, mlx.array(np.array(v))) for k, v in ours.items()]))


@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_gradients_match_mlx(name, bias):
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    from mlx.utils import tree_flatten as mlx_flatten

    rng = np.random.default_rng(3)
    ours = make(name, bias)
    theirs = getattr(mnn, name)(D, H, bias=bias)
    copy_to_mlx(ours, theirs)
    x = rng.standard_normal((2, 6, D)).astype(np.float32)
    h0 = rng.standard_normal((2, H)).astype(np.float32)
    c0 = rng.standard_normal((2, H)).astype(np.float32)
    w = rng.standard_normal((2, 6, H)).astype(np.float32)

    def states(lib, x):
        args = [lib.array(x), lib.array(h0)] + ([lib.array(c0)] if name == "LSTM" else [])
        return args

    def loss_ours(x, h, *c):
        out = ours(x, h, *c)
        return sum(((o * mx.array(w)) ** 2).sum() for o in (out if isinstance(out, tuple) else (out,)))

    def loss_mlx(x, h, *c):
        out = theirs(x, h, *c)
        return sum(((o * mlx.array(w)) ** 2).sum() for o in (out if isinstance(out, tuple) else (out,)))

    out_o, out_m = ours(*states(mx, x)), theirs(*states(mlx, x))
    for a, b in zip(out_o if name == "LSTM" else [out_o], out_m if name == "LSTM" else [out_m]):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6)
    # unbatched, no initial state
    np.testing.assert_allclose(
        np.array(ours(mx.array(x[0]))[0] if name == "LSTM" else ours(mx.array(x[0]))),
        np.array(theirs(mlx.array(x[0]))[0] if name == "LSTM" else theirs(mlx.array(x[0]))),
        rtol=1e-5,
        atol=1e-6,
    )

    v_o, g_o = nn.value_and_grad(ours, loss_ours)(*states(mx, x))
    v_m, g_m = mnn.value_and_grad(theirs, loss_mlx)(*states(mlx, x))
    np.testing.assert_allclose(v_o.item(), v_m.item(), rtol=1e-5)
    g_m = dict(mlx_flatten(g_m))
    for k, g in tree_flatten(g_o):
        np.testing.assert_allclose(np.array(g), np.array(g_m[k]), rtol=1e-4, atol=1e-5, err_msg=k)

    # gradients with respect to the input and the initial states
    n_args = 3 if name == "LSTM" else 2
    gi_o = mx.grad(loss_ours, argnums=tuple(range(n_args)))(*states(mx, x))
    gi_m = mlx.grad(loss_mlx, argnums=tuple(range(n_args)))(*states(mlx, x))
    for a, b in zip(gi_o, gi_m):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ vs PyTorch
def to_torch(name, layer):
    """A torch layer with the same weights (torch has two biases where MLX has one)."""
    torch = pytest.importorskip("torch")
    p = {k: torch.tensor(np.array(v)) for k, v in tree_flatten(layer.parameters())}
    if name == "RNN":
        t = torch.nn.RNN(D, H, batch_first=True)
        weights = (p["Wxh"], p["Whh"], p["bias"], torch.zeros(H))
    elif name == "GRU":
        t = torch.nn.GRU(D, H, batch_first=True)
        # torch adds b_hn inside r * (W_hn h + b_hn), as MLX does with bhn
        weights = (p["Wx"], p["Wh"], p["b"], torch.cat([torch.zeros(2 * H), p["bhn"]]))
    else:
        t = torch.nn.LSTM(D, H, batch_first=True)
        weights = (p["Wx"], p["Wh"], p["bias"], torch.zeros(4 * H))
    with torch.no_grad():
        for dst, src in zip((t.weight_ih_l0, t.weight_hh_l0, t.bias_ih_l0, t.bias_hh_l0), weights):
            dst.copy_(src)
    return t


@pytest.mark.parametrize("name", LAYERS)
def test_forward_and_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    layer = make(name)
    t = to_torch(name, layer)
    x = rng.standard_normal((3, 7, D)).astype(np.float32)
    h0 = rng.standard_normal((3, H)).astype(np.float32)
    c0 = rng.standard_normal((3, H)).astype(np.float32)

    xt = torch.tensor(x, requires_grad=True)
    if name == "LSTM":
        yt, _ = t(xt, (torch.tensor(h0)[None], torch.tensor(c0)[None]))
        y = layer(mx.array(x), mx.array(h0), mx.array(c0))[0]
    else:
        yt, _ = t(xt, torch.tensor(h0)[None])
        y = layer(mx.array(x), mx.array(h0))
    np.testing.assert_allclose(np.array(y), yt.detach().numpy(), rtol=1e-5, atol=1e-6)

    (yt**2).sum().backward()

    def loss(x):
        out = layer(x, mx.array(h0), mx.array(c0)) if name == "LSTM" else layer(x, mx.array(h0))
        return ((out[0] if name == "LSTM" else out) ** 2).sum()

    np.testing.assert_allclose(np.array(mx.grad(loss)(mx.array(x))), xt.grad.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("name", LAYERS)
def test_gradients_match_finite_differences_float64(name):
    rng = np.random.default_rng(5)
    layer = make(name, dtype=mx.float64)
    x = inputs(rng, (2, 4, D), mx.float64)
    h0 = inputs(rng, (2, H), mx.float64)
    w = inputs(rng, (2, 4, H), mx.float64)

    def loss(params, x, h0):
        layer.update(params)
        out = layer(x, h0)
        return sum(((o * w) ** 2).sum() for o in (out if isinstance(out, tuple) else (out,)))

    params = layer.trainable_parameters()
    grads = mx.grad(loss, argnums=(0, 1, 2))(params, x, h0)
    flat = tree_flatten((params, x, h0))
    g_flat = dict(tree_flatten(grads))
    eps = 1e-6
    for _ in range(3):  # random directions over every parameter and input at once
        dirs = {k: rng.standard_normal(v.shape) for k, v in flat}

        def moved(sign):
            tree = tree_unflatten([(k, v + sign * eps * mx.array(dirs[k], dtype=mx.float64)) for k, v in flat])
            return loss(*tree).item()

        fd = (moved(1) - moved(-1)) / (2 * eps)
        analytic = sum(float((np.array(g_flat[k]) * d).sum()) for k, d in dirs.items())
        assert abs(fd - analytic) <= 1e-6 * (1 + abs(analytic)), (fd, analytic)
    layer.update(params)


# ------------------------------------------------------------------ dtypes, empty inputs
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
@pytest.mark.parametrize("name", LAYERS)
def test_low_precision_smoke(name, dtype):
    rng = np.random.default_rng(6)
    layer = make(name)
    x = inputs(rng, (2, 5, D))
    want = layer(x)
    layer.set_dtype(dtype)
    got = layer(x.astype(dtype))
    for a, b in zip(got if name == "LSTM" else [got], want if name == "LSTM" else [want]):
        assert a.dtype == dtype
        np.testing.assert_allclose(np.array(a.astype(mx.float32)), np.array(b), atol=5e-2)
    # float32 weights with a half-precision input compute in float32, as in MLX
    assert make(name)(x.astype(dtype))[0].dtype == mx.float32


@pytest.mark.parametrize("name", LAYERS)
def test_empty_batch_and_empty_sequence(name):
    layer = make(name)
    for shape, out in [((0, 5, D), (0, 5, H)), ((2, 0, D), (2, 0, H)), ((0, D), (0, H))]:
        y = layer(mx.zeros(shape))
        for a in y if name == "LSTM" else [y]:
            assert a.shape == out and a.dtype == mx.float32
    # an empty sequence still broadcasts against a batched initial state
    y = layer(mx.zeros((0, D)), mx.zeros((3, H)))
    assert (y[0] if name == "LSTM" else y).shape == (3, 0, H)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("name", LAYERS)
def test_bad_input_shapes(name):
    layer = make(name)
    for shape in [(D,), (2, 5, D + 1), ()]:
        with pytest.raises(ValueError, match=rf"\[{name}\] expected an input of shape"):
            layer(mx.zeros(shape))
    for hshape in [(2, H + 1), (3, H), ()]:
        with pytest.raises(ValueError, match=rf"\[{name}\] hidden of shape"):
            layer(mx.zeros((2, 5, D)), mx.zeros(hshape))
    if name == "LSTM":
        with pytest.raises(ValueError, match=r"\[LSTM\] cell of shape"):
            layer(mx.zeros((2, 5, D)), None, mx.zeros((2, H - 1)))
