"""MultiHeadAttention and the Transformer stacks: NumPy references, real MLX with the
same weights (outputs and gradients), torch.nn.MultiheadAttention, finite differences
in float64, masks, batched/unbatched inputs, dropout/checkpoint, dtypes and errors."""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.utils import tree_flatten, tree_map, tree_unflatten


# ------------------------------------------------------------------ helpers
def softmax(a):
    a = a - a.max(-1, keepdims=True)
    e = np.exp(a)
    return e / e.sum(-1, keepdims=True)


def lin(p, x):
    return x @ p["weight"].T + p.get("bias", 0)


def mha_ref(p, q, k, v, heads, mask=None):
    """Multi-head attention in float64 NumPy on (B, L, D) inputs, additive mask."""
    Q, K, V = lin(p["query_proj"], q), lin(p["key_proj"], k), lin(p["value_proj"], v)
    B, L, _ = Q.shape
    S = K.shape[1]
    Q = Q.reshape(B, L, heads, -1).transpose(0, 2, 1, 3)
    K = K.reshape(B, S, heads, -1).transpose(0, 2, 1, 3)
    V = V.reshape(B, S, heads, -1).transpose(0, 2, 1, 3)
    s = Q @ K.transpose(0, 1, 3, 2) / np.sqrt(Q.shape[-1])
    if mask is not None:
        s = s + mask
    return lin(p["out_proj"], (softmax(s) @ V).transpose(0, 2, 1, 3).reshape(B, L, -1))


def params_np(module):
    return tree_map(lambda a: np.array(a, np.float64), module.parameters())


def randomize(module, rng, scale=0.5):
    """Random parameters (biases and norms included, so every leaf matters)."""
    module.update(tree_map(lambda a: mx.array(rng.standard_normal(a.shape).astype(np.float32) * scale), module.parameters()))
    return module


def to_mlx(module, mlx_module):
    """Copy every parameter leaf of ``module`` into ``mlx_module`` (same tree)."""
    import mlx.core as mlx
    from mlx.utils import tree_flatten as mlx_flatten
    from mlx.utils import tree_unflatten as mlx_unflatten

    ours = tree_flatten(module.parameters())
    assert [k for k, _ in ours] == [k for k, _ in mlx_flatten(mlx_module.parameters())]
    mlx_module.update(mlx_unflatten([(k, mlx.array(np.array(v))) for k, v in ours]))
    return mlx_module


def assert_grads_match_mlx(g_ours, g_mlx, rtol=1e-4, atol=1e-5):
    from mlx.utils import tree_flatten as mlx_flatten

    theirs = dict(mlx_flatten(g_mlx))
    ours = tree_flatten(g_ours)
    assert [k for k, _ in ours] == list(theirs)
    for k, g in ours:
        np.testing.assert_allclose(np.array(g), np.array(theirs[k]), rtol=rtol, atol=atol, err_msg=k)


def fd_check(loss, args, rng, eps=1e-6, directions=3, tol=1e-6):
    """Gradient of ``loss(*args)`` (a tree of float64 arrays) against central finite
    differences along random directions in the whole argument space."""
    grads = mx.grad(loss, argnums=tuple(range(len(args))))(*args)
    flat = tree_flatten(list(args))
    g_flat = dict(tree_flatten(list(grads)))
    for _ in range(directions):
        dirs = {k: rng.standard_normal(v.shape) for k, v in flat}

        def moved(sign):
            tree = tree_unflatten([(k, v + sign * eps * mx.array(dirs[k], dtype=mx.float64)) for k, v in flat])
            return loss(*tree).item()

        fd = (moved(1) - moved(-1)) / (2 * eps)
        analytic = sum(float((np.array(g_flat[k]) * d).sum()) for k, d in dirs.items())
        assert abs(fd - analytic) <= tol * (1 + abs(analytic)), (fd, analytic)


# ------------------------------------------------------------------ MultiHeadAttention
def test_mha_parameters_and_repr():
    m = nn.MultiHeadAttention(12, 3, 5, 6, 7, 9, 8, bias=True)
    shapes = {k: tuple(v.shape) for k, v in tree_flatten(m.parameters())}
    assert shapes == {
        "query_proj.weight": (12, 5),
        "query_proj.bias": (12,),
        "key_proj.weight": (12, 6),
        "key_proj.bias": (12,),
        "value_proj.weight": (9, 7),
        "value_proj.bias": (9,),
        "out_proj.weight": (8, 9),
        "out_proj.bias": (8,),
    }
    default = nn.MultiHeadAttention(8, 2)
    assert [k for k, _ in tree_flatten(default.parameters())] == [
        "query_proj.weight",
        "key_proj.weight",
        "value_proj.weight",
        "out_proj.weight",
    ]
    # value_input_dims defaults to key_input_dims
    assert nn.MultiHeadAttention(8, 2, key_input_dims=5).value_proj.weight.shape == (8, 5)
    mnn = pytest.importorskip("mlx.nn")
    assert repr(m) == repr(mnn.MultiHeadAttention(12, 3, 5, 6, 7, 9, 8, bias=True))


@pytest.mark.parametrize("bias", [False, True])
def test_mha_matches_reference(bias):
    rng = np.random.default_rng(0)
    m = randomize(nn.MultiHeadAttention(12, 3, 5, 6, 7, 9, 8, bias=bias), rng)
    q = rng.standard_normal((2, 4, 5))
    k = rng.standard_normal((2, 6, 6))
    v = rng.standard_normal((2, 6, 7))
    mask = rng.standard_normal((4, 6))
    f32 = lambda a: mx.array(a.astype(np.float32))  # noqa: E731
    for msk in (None, mask):
        got = m(f32(q), f32(k), f32(v), None if msk is None else f32(msk))
        assert got.shape == (2, 4, 8) and got.dtype == mx.float32
        np.testing.assert_allclose(np.array(got), mha_ref(params_np(m), q, k, v, 3, msk), rtol=1e-4, atol=1e-5)


def test_mha_masks():
    rng = np.random.default_rng(1)
    m = randomize(nn.MultiHeadAttention(8, 2), rng)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    xm = mx.array(x)
    causal = nn.MultiHeadAttention.create_additive_causal_mask(5)
    ref = mha_ref(params_np(m), x, x, x, 2, np.triu(np.full((5, 5), -np.inf), 1))
    np.testing.assert_allclose(np.array(m(xm, xm, xm, causal)), ref, rtol=1e-4, atol=1e-5)
    # the string "causal" and a boolean mask (True = attend) give the same result
    np.testing.assert_allclose(np.array(m(xm, xm, xm, "causal")), ref, rtol=1e-4, atol=1e-5)
    allowed = np.tril(np.ones((5, 5), bool))
    np.testing.assert_allclose(np.array(m(xm, xm, xm, mx.array(allowed))), ref, rtol=1e-4, atol=1e-5)
    # a per-head, per-batch additive mask
    full = rng.standard_normal((2, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(
        np.array(m(xm, xm, xm, mx.array(full))), mha_ref(params_np(m), x, x, x, 2, full), rtol=1e-4, atol=1e-5
    )
    # a causal query only depends on the keys up to its position
    y1 = np.array(m(xm, xm, xm, causal))
    x2 = x.copy()
    x2[:, 3:] += 1.0
    y2 = np.array(m(mx.array(x2), mx.array(x2), mx.array(x2), causal))
    np.testing.assert_allclose(y1[:, :3], y2[:, :3], rtol=1e-5, atol=1e-6)
    assert np.abs(y1[:, 3:] - y2[:, 3:]).max() > 1e-3


@pytest.mark.parametrize("dtype", [mx.float32, mx.float16, mx.bfloat16])
def test_causal_mask(dtype):
    m = nn.MultiHeadAttention.create_additive_causal_mask(4, dtype)
    assert m.shape == (4, 4) and m.dtype == dtype
    a = np.array(m.astype(mx.float32))
    lowest = float(mx.finfo(dtype).min)
    np.testing.assert_array_equal(a, np.where(np.triu(np.ones((4, 4), bool), 1), lowest, 0.0))
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    mdt = getattr(mlx, str(dtype).split(".")[-1])
    want = mnn.MultiHeadAttention.create_additive_causal_mask(4, mdt).astype(mlx.float32)
    np.testing.assert_array_equal(a, np.array(want))
    assert nn.MultiHeadAttention.create_additive_causal_mask(0).shape == (0, 0)


def test_mha_unbatched_and_empty():
    rng = np.random.default_rng(2)
    m = randomize(nn.MultiHeadAttention(8, 4, bias=True), rng)
    q = mx.array(rng.standard_normal((3, 8)).astype(np.float32))
    k = mx.array(rng.standard_normal((5, 8)).astype(np.float32))
    y = m(q, k, k)
    assert y.shape == (3, 8)
    np.testing.assert_allclose(np.array(y), np.array(m(q[None], k[None], k[None])[0]), rtol=1e-6)
    assert m(mx.zeros((0, 3, 8)), mx.zeros((0, 5, 8)), mx.zeros((0, 5, 8))).shape == (0, 3, 8)
    assert m(mx.zeros((2, 0, 8)), mx.zeros((2, 5, 8)), mx.zeros((2, 5, 8))).shape == (2, 0, 8)


def test_mha_matches_mlx_outputs_and_gradients():
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    rng = np.random.default_rng(3)
    ours = randomize(nn.MultiHeadAttention(12, 3, 5, 6, 7, 9, 8, bias=True), rng)
    theirs = to_mlx(ours, mnn.MultiHeadAttention(12, 3, 5, 6, 7, 9, 8, bias=True))
    q = rng.standard_normal((2, 4, 5)).astype(np.float32)
    k = rng.standard_normal((2, 6, 6)).astype(np.float32)
    v = rng.standard_normal((2, 6, 7)).astype(np.float32)
    mask = rng.standard_normal((4, 6)).astype(np.float32)
    w = rng.standard_normal((2, 4, 8)).astype(np.float32)

    def loss_o(q, k, v):
        return (ours(q, k, v, mx.array(mask)) * mx.array(w)).sum()

    def loss_m(q, k, v):
        return (theirs(q, k, v, mlx.array(mask)) * mlx.array(w)).sum()

    np.testing.assert_allclose(
        np.array(ours(mx.array(q), mx.array(k), mx.array(v), mx.array(mask))),
        np.array(theirs(mlx.array(q), mlx.array(k), mlx.array(v), mlx.array(mask))),
        rtol=1e-5,
        atol=1e-6,
    )
    val_o, g_o = nn.value_and_grad(ours, loss_o)(mx.array(q), mx.array(k), mx.array(v))
    val_m, g_m = mnn.value_and_grad(theirs, loss_m)(mlx.array(q), mlx.array(k), mlx.array(v))
    np.testing.assert_allclose(val_o.item(), val_m.item(), rtol=1e-5)
    assert_grads_match_mlx(g_o, g_m)
    gi_o = mx.grad(loss_o, argnums=(0, 1, 2))(mx.array(q), mx.array(k), mx.array(v))
    gi_m = mlx.grad(loss_m, argnums=(0, 1, 2))(mlx.array(q), mlx.array(k), mlx.array(v))
    for a, b in zip(gi_o, gi_m):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-4, atol=1e-5)


def test_mha_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    ours = randomize(nn.MultiHeadAttention(8, 2, bias=True), rng)
    t = torch.nn.MultiheadAttention(8, 2, bias=True, batch_first=True)
    p = {k: torch.tensor(np.array(v)) for k, v in tree_flatten(ours.parameters())}
    with torch.no_grad():
        t.in_proj_weight.copy_(torch.cat([p[f"{n}_proj.weight"] for n in ("query", "key", "value")]))
        t.in_proj_bias.copy_(torch.cat([p[f"{n}_proj.bias"] for n in ("query", "key", "value")]))
        t.out_proj.weight.copy_(p["out_proj.weight"])
        t.out_proj.bias.copy_(p["out_proj.bias"])
    q = rng.standard_normal((2, 4, 8)).astype(np.float32)
    kv = rng.standard_normal((2, 6, 8)).astype(np.float32)
    mask = rng.standard_normal((4, 6)).astype(np.float32)
    qt = torch.tensor(q, requires_grad=True)
    yt, _ = t(qt, torch.tensor(kv), torch.tensor(kv), attn_mask=torch.tensor(mask), need_weights=False)
    y = ours(mx.array(q), mx.array(kv), mx.array(kv), mx.array(mask))
    np.testing.assert_allclose(np.array(y), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    (yt**2).sum().backward()
    g = mx.grad(lambda q: (ours(q, mx.array(kv), mx.array(kv), mx.array(mask)) ** 2).sum())(mx.array(q))
    np.testing.assert_allclose(np.array(g), qt.grad.numpy(), rtol=1e-4, atol=1e-4)
    # unbatched inputs, as torch accepts them
    yt1, _ = t(torch.tensor(q[0]), torch.tensor(kv[0]), torch.tensor(kv[0]), need_weights=False)
    y1 = ours(mx.array(q[0]), mx.array(kv[0]), mx.array(kv[0]))
    np.testing.assert_allclose(np.array(y1), yt1.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_mha_gradients_match_finite_differences_float64():
    rng = np.random.default_rng(5)
    m = randomize(nn.MultiHeadAttention(6, 2, 4, 5, 3, 4, 7, bias=True), rng)
    m.set_dtype(mx.float64)
    q = mx.array(rng.standard_normal((2, 3, 4)), dtype=mx.float64)
    k = mx.array(rng.standard_normal((2, 5, 5)), dtype=mx.float64)
    v = mx.array(rng.standard_normal((2, 5, 3)), dtype=mx.float64)
    mask = mx.array(rng.standard_normal((3, 5)), dtype=mx.float64)
    w = mx.array(rng.standard_normal((2, 3, 7)), dtype=mx.float64)
    params = m.trainable_parameters()

    def loss(params, q, k, v):
        m.update(params)
        return (m(q, k, v, mask) * w).sum()

    fd_check(loss, [params, q, k, v], rng)
    m.update(params)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_mha_low_precision_smoke(dtype):
    rng = np.random.default_rng(6)
    m = randomize(nn.MultiHeadAttention(8, 2), rng)
    x = mx.array(rng.standard_normal((2, 5, 8)).astype(np.float32))
    want = np.array(m(x, x, x, "causal"))
    m.set_dtype(dtype)
    xd = x.astype(dtype)
    got = m(xd, xd, xd, nn.MultiHeadAttention.create_additive_causal_mask(5, dtype))
    assert got.dtype == dtype
    np.testing.assert_allclose(np.array(got.astype(mx.float32)), want, atol=0.15, rtol=0.05)


def test_mha_errors():
    with pytest.raises(ValueError, match=r"\[MultiHeadAttention\] dims \(12\) must be divisible by num_heads \(5\)"):
        nn.MultiHeadAttention(12, 5)
    with pytest.raises(ValueError, match=r"\[MultiHeadAttention\] value_dims \(10\) must be divisible"):
        nn.MultiHeadAttention(12, 3, value_dims=10)
    with pytest.raises(ValueError, match=r"\[MultiHeadAttention\] num_heads must be positive"):
        nn.MultiHeadAttention(12, 0)
    m = nn.MultiHeadAttention(8, 2)
    x = mx.zeros((2, 4, 8))
    cases = [
        ((mx.zeros((8,)), mx.zeros((8,)), mx.zeros((8,))), r"must all be \(batch, length, features\)"),
        ((mx.zeros((1, 2, 4, 8)),) * 3, r"must all be \(batch, length, features\)"),
        ((x, x[0], x), r"must all be \(batch, length, features\)"),
        ((x, x, x[:, :3]), r"same length"),
        ((x, x[:1], x[:1]), r"same batch size"),
    ]
    for args, msg in cases:
        with pytest.raises(ValueError, match=r"\[MultiHeadAttention\] .*" + msg):
            m(*args)
    # wrong feature sizes are reported by the projection layer
    with pytest.raises(ValueError, match=r"\[Linear\].*input_dims=8"):
        m(mx.zeros((2, 4, 7)), x, x)


# ------------------------------------------------------------------ Transformer layers vs MLX
def layer_pairs(mnn, norm_first, activation_pair):
    act_o, act_m = activation_pair
    return [
        (
            nn.TransformerEncoderLayer(8, 2, mlp_dims=12, activation=act_o, norm_first=norm_first),
            mnn.TransformerEncoderLayer(8, 2, mlp_dims=12, activation=act_m, norm_first=norm_first),
            "enc",
        ),
        (
            nn.TransformerDecoderLayer(8, 2, mlp_dims=12, activation=act_o, norm_first=norm_first),
            mnn.TransformerDecoderLayer(8, 2, mlp_dims=12, activation=act_m, norm_first=norm_first),
            "dec",
        ),
        (nn.TransformerEncoder(2, 8, 2, norm_first=norm_first), mnn.TransformerEncoder(2, 8, 2, norm_first=norm_first), "enc"),
        (nn.TransformerDecoder(2, 8, 4, norm_first=norm_first), mnn.TransformerDecoder(2, 8, 4, norm_first=norm_first), "dec"),
        (
            nn.Transformer(8, 2, 1, 2, mlp_dims=16, activation=act_o, norm_first=norm_first),
            mnn.Transformer(8, 2, 1, 2, mlp_dims=16, activation=act_m, norm_first=norm_first),
            "full",
        ),
    ]


@pytest.mark.parametrize("norm_first", [True, False])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_transformer_stacks_match_mlx(norm_first, activation):
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    mem = rng.standard_normal((2, 3, 8)).astype(np.float32)
    x_mask = np.array(nn.MultiHeadAttention.create_additive_causal_mask(5))
    mem_mask = rng.standard_normal((5, 3)).astype(np.float32)
    w = rng.standard_normal((2, 5, 8)).astype(np.float32)

    def call(module, lib, kind):
        a = lib.array
        if kind == "enc":
            return module(a(x), a(x_mask))
        if kind == "dec":
            return module(a(x), a(mem), a(x_mask), a(mem_mask))
        return module(a(mem), a(x), a(rng_src_mask), a(x_mask), a(mem_mask))

    rng_src_mask = rng.standard_normal((3, 3)).astype(np.float32)
    for ours, theirs, kind in layer_pairs(mnn, norm_first, (getattr(nn, activation), getattr(mnn, activation))):
        randomize(ours, rng, 0.4)
        to_mlx(ours, theirs)
        assert repr(ours) == repr(theirs)
        np.testing.assert_allclose(
            np.array(call(ours, mx, kind)), np.array(call(theirs, mlx, kind)), rtol=1e-4, atol=1e-5, err_msg=repr(ours)[:40]
        )
        _, g_o = nn.value_and_grad(ours, lambda: (call(ours, mx, kind) * mx.array(w)).sum())()
        _, g_m = mnn.value_and_grad(theirs, lambda: (call(theirs, mlx, kind) * mlx.array(w)).sum())()
        assert_grads_match_mlx(g_o, g_m, rtol=1e-3, atol=1e-4)


def test_encoder_layer_matches_reference():
    rng = np.random.default_rng(8)
    ln = lambda p, x: (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) * p["weight"] + p["bias"]  # noqa: E731
    x = rng.standard_normal((2, 4, 8))
    mask = rng.standard_normal((4, 4))
    for norm_first in (True, False):
        layer = randomize(nn.TransformerEncoderLayer(8, 2, mlp_dims=16, norm_first=norm_first), rng)
        p = params_np(layer)

        def mlp(y):
            return lin(p["linear2"], np.maximum(lin(p["linear1"], y), 0))

        if norm_first:
            y = ln(p["ln1"], x)
            h = x + mha_ref(p["attention"], y, y, y, 2, mask)
            want = h + mlp(ln(p["ln2"], h))
        else:
            h = ln(p["ln1"], x + mha_ref(p["attention"], x, x, x, 2, mask))
            want = ln(p["ln2"], h + mlp(h))
        got = layer(mx.array(x.astype(np.float32)), mx.array(mask.astype(np.float32)))
        np.testing.assert_allclose(np.array(got), want, rtol=1e-4, atol=1e-4)


def test_transformer_structure_and_defaults():
    t = nn.Transformer(8, 2, 2, 3)
    assert len(t.encoder.layers) == 2 and len(t.decoder.layers) == 3
    assert t.encoder.layers[0].linear1.weight.shape == (32, 8)  # mlp_dims defaults to 4 * dims
    assert t.encoder.layers[0].activation is nn.relu and t.encoder.layers[0].norm_first
    enc = nn.TransformerEncoder(1, 8, 2, dropout=0.25)
    assert repr(enc.layers[0].dropout1) == repr(enc.layers[0].dropout2) == "Dropout(p=0.25)"
    # custom encoder/decoder: a module without parameters is kept too
    custom = nn.Transformer(8, 2, custom_encoder=nn.Identity(), custom_decoder=nn.Identity())
    assert isinstance(custom.encoder, nn.Identity) and isinstance(custom.decoder, nn.Identity)


def test_custom_encoder_and_decoder_are_called():
    calls = []

    class Enc(nn.Module):
        def __call__(self, src, mask):
            calls.append(("enc", mask))
            return src * 2

    class Dec(nn.Module):
        def __call__(self, tgt, memory, tgt_mask, memory_mask):
            calls.append(("dec", tgt_mask, memory_mask))
            return tgt + memory

    t = nn.Transformer(4, 2, custom_encoder=Enc(), custom_decoder=Dec())
    out = t(mx.ones((1, 2, 4)), mx.ones((1, 2, 4)), "m_src", "m_tgt", "m_mem")
    np.testing.assert_array_equal(np.array(out), np.full((1, 2, 4), 3.0))
    assert calls == [("enc", "m_src"), ("dec", "m_tgt", "m_mem")]


def test_dropout_in_training_and_eval():
    rng = np.random.default_rng(9)
    x = mx.array(rng.standard_normal((2, 5, 8)).astype(np.float32))
    layer = randomize(nn.TransformerEncoderLayer(8, 2, dropout=0.5), rng)
    no_dropout = randomize(nn.TransformerEncoderLayer(8, 2), rng).update(layer.parameters())
    layer.eval()
    np.testing.assert_allclose(np.array(layer(x, None)), np.array(no_dropout(x, None)), rtol=1e-6)
    layer.train()
    mx.random.seed(1)
    a = np.array(layer(x, None))
    b = np.array(layer(x, None))
    assert np.abs(a - b).max() > 1e-3 and np.abs(a - np.array(no_dropout(x, None))).max() > 1e-3


def test_checkpoint_gives_same_values_and_gradients():
    rng = np.random.default_rng(10)
    x = mx.array(rng.standard_normal((2, 4, 8)).astype(np.float32))
    mem = mx.array(rng.standard_normal((2, 3, 8)).astype(np.float32))
    mask = nn.MultiHeadAttention.create_additive_causal_mask(4)
    plain = randomize(nn.Transformer(8, 2, 2, 2, mlp_dims=16), rng)
    ckpt = nn.Transformer(8, 2, 2, 2, mlp_dims=16, checkpoint=True).update(plain.parameters())
    assert ckpt.encoder.checkpoint and ckpt.decoder.checkpoint and not plain.encoder.checkpoint

    def loss(model):
        return lambda: (model(mem, x, None, mask, None) ** 2).sum()

    v1, g1 = nn.value_and_grad(plain, loss(plain))()
    v2, g2 = nn.value_and_grad(ckpt, loss(ckpt))()
    np.testing.assert_allclose(v1.item(), v2.item(), rtol=1e-6)
    for (k, a), (_, b) in zip(tree_flatten(g1), tree_flatten(g2)):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-5, atol=1e-6, err_msg=k)


def test_decoder_layer_gradients_match_finite_differences_float64():
    rng = np.random.default_rng(11)
    for norm_first in (True, False):
        layer = randomize(nn.TransformerDecoderLayer(4, 2, mlp_dims=6, norm_first=norm_first), rng)
        layer.set_dtype(mx.float64)
        x = mx.array(rng.standard_normal((1, 3, 4)), dtype=mx.float64)
        mem = mx.array(rng.standard_normal((1, 2, 4)), dtype=mx.float64)
        mask = nn.MultiHeadAttention.create_additive_causal_mask(3, mx.float64)
        w = mx.array(rng.standard_normal((1, 3, 4)), dtype=mx.float64)
        params = layer.trainable_parameters()

        def loss(params, x, mem):
            layer.update(params)
            return (layer(x, mem, mask, None) * w).sum()

        fd_check(loss, [params, x, mem], rng)
        layer.update(params)


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_transformer_low_precision_smoke(dtype):
    rng = np.random.default_rng(12)
    t = randomize(nn.Transformer(8, 2, 1, 1, mlp_dims=16), rng, 0.3)
    src = mx.array(rng.standard_normal((2, 3, 8)).astype(np.float32))
    tgt = mx.array(rng.standard_normal((2, 4, 8)).astype(np.float32))
    want = np.array(t(src, tgt, None, None, None))
    t.set_dtype(dtype)
    mask = nn.MultiHeadAttention.create_additive_causal_mask(4, dtype)
    got = t(src.astype(dtype), tgt.astype(dtype), None, None, None)
    assert got.dtype == dtype and np.isfinite(np.array(got.astype(mx.float32))).all()
    np.testing.assert_allclose(np.array(got.astype(mx.float32)), want, atol=0.25)
    assert t(src.astype(dtype), tgt.astype(dtype), None, mask, None).dtype == dtype


def test_transformer_bad_shapes_name_the_layer():
    enc = nn.TransformerEncoder(1, 8, 2)
    with pytest.raises(ValueError, match=r"\[(LayerNorm|MultiHeadAttention|Linear)\]"):
        enc(mx.zeros((2, 4, 6)), None)
    dec = nn.TransformerDecoder(1, 8, 2)
    with pytest.raises(ValueError, match=r"\[MultiHeadAttention\] .*same batch size"):
        dec(mx.zeros((2, 4, 8)), mx.zeros((3, 5, 8)), None, None)
