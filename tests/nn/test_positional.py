"""RoPE, SinusoidalPositionalEncoding and ALiBi: NumPy reference formulas, real MLX
(same arguments), gradients against central finite differences, dtypes and errors."""

import math

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn


def np_(a):
    return np.array(a.astype(mx.float32)) if a.dtype in (mx.float16, mx.bfloat16) else np.array(a)


def rope_ref(x, dims, traditional, base, scale, offset):
    """RoPE in float64 NumPy: features ``< dims`` of the last axis are rotated by
    ``(offset + position) * scale * base**(-2i/dims)`` along the second-to-last axis."""
    x = np.asarray(x, np.float64)
    L = x.shape[-2]
    half = dims // 2
    inv_freq = base ** (-np.arange(half) * 2.0 / dims)
    theta = (offset + np.arange(L))[:, None] * scale * inv_freq[None]
    cos, sin = np.cos(theta), np.sin(theta)
    out = x.copy()
    if traditional:
        a, b = x[..., 0:dims:2], x[..., 1:dims:2]
        out[..., 0:dims:2] = a * cos - b * sin
        out[..., 1:dims:2] = a * sin + b * cos
    else:
        a, b = x[..., :half], x[..., half:dims]
        out[..., :half] = a * cos - b * sin
        out[..., half:dims] = a * sin + b * cos
    return out


def sinusoidal_ref(x, dims, min_freq=1e-4, max_freq=1.0, scale=None, cos_first=False, full_turns=False):
    half = dims // 2
    one_zero = 1 - np.arange(half) / (half - 1) if half > 1 else np.ones(1)
    sig = np.exp(one_zero * (math.log(max_freq) - math.log(min_freq)) + math.log(min_freq))
    if full_turns:
        sig = sig * 2 * math.pi
    y = np.asarray(x, np.float64)[..., None] * sig
    parts = [np.cos(y), np.sin(y)] if cos_first else [np.sin(y), np.cos(y)]
    return np.concatenate(parts, -1) * (scale or math.sqrt(2 / dims))


def alibi_slopes_ref(n):
    """The ALiBi paper's slopes (its reference code), any head count."""

    def pow2(k):
        start = 2 ** (-(2 ** -(math.log2(k) - 3)))
        return [start * start**i for i in range(k)]

    if math.log2(n).is_integer():
        return pow2(n)
    closest = 2 ** math.floor(math.log2(n))
    return pow2(closest) + pow2(2 * closest)[0::2][: n - closest]


# ---------------------------------------------------------------------------- RoPE
@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("dims,base,scale,offset", [(8, 10000, 1.0, 0), (4, 500.0, 0.5, 3), (6, 10000, 2.0, 7)])
def test_rope_matches_formula(traditional, dims, base, scale, offset):
    x = np.random.default_rng(0).standard_normal((2, 3, 5, 8)).astype(np.float32)
    rope = nn.RoPE(dims, traditional=traditional, base=base, scale=scale)
    got = rope(mx.array(x), offset=offset)
    assert got.shape == x.shape and got.dtype == mx.float32
    np.testing.assert_allclose(np.array(got), rope_ref(x, dims, traditional, base, scale, offset), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("traditional", [False, True])
def test_rope_matches_mlx(traditional):
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    x = np.random.default_rng(1).standard_normal((2, 6, 10)).astype(np.float32)
    for offset in (0, 4):
        want = mnn.RoPE(6, traditional=traditional, base=300, scale=0.7)(mlx.array(x), offset=offset)
        got = nn.RoPE(6, traditional=traditional, base=300, scale=0.7)(mx.array(x), offset=offset)
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-5, atol=1e-6)
    assert repr(nn.RoPE(6, traditional=traditional)) == repr(mnn.RoPE(6, traditional=traditional))


def test_rope_has_no_parameters_and_keeps_dtype():
    rope = nn.RoPE(4)
    assert rope.parameters() == {}
    x = mx.array(np.random.default_rng(2).standard_normal((1, 3, 4)).astype(np.float32))
    for dt in (mx.float16, mx.bfloat16):
        y = rope(x.astype(dt))
        assert y.dtype == dt
        np.testing.assert_allclose(np_(y), rope_ref(np.array(x), 4, False, 10000, 1.0, 0), atol=3e-2)
    assert rope(mx.zeros((2, 0, 4))).shape == (2, 0, 4)


def test_rope_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = mx.array(rng.standard_normal((1, 4, 6)), dtype=mx.float64)
    w = mx.array(rng.standard_normal((1, 4, 6)), dtype=mx.float64)
    rope = nn.RoPE(4, traditional=True, base=100)

    def f(x):
        return (rope(x, offset=2) * w).sum()

    g = np.array(mx.grad(f)(x))
    eps = 1e-6
    fd = np.zeros(x.shape)
    xn = np.array(x)
    for idx in np.ndindex(*x.shape):
        d = np.zeros(x.shape)
        d[idx] = eps
        fd[idx] = (f(mx.array(xn + d, dtype=mx.float64)).item() - f(mx.array(xn - d, dtype=mx.float64)).item()) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("dims,shape", [(4, (2, 8)), (5, (1, 2, 8)), (16, (1, 2, 8))])
def test_rope_bad_input_raises(dims, shape):
    with pytest.raises(ValueError, match=r"\[rope\]"):
        nn.RoPE(dims)(mx.zeros(shape))


# ------------------------------------------------------------ SinusoidalPositionalEncoding
SINUSOIDAL_CASES = [
    dict(dims=8),
    dict(dims=6, min_freq=0.01, max_freq=2.0, scale=3.0, cos_first=True, full_turns=True),
    dict(dims=2, min_freq=0.5, max_freq=2.0),
    dict(dims=10, cos_first=True),
]


@pytest.mark.parametrize("kw", SINUSOIDAL_CASES)
def test_sinusoidal_matches_formula_and_mlx(kw):
    x = np.array([[0.0, 1.0, 2.5], [7.0, 100.0, -3.0]], np.float32)
    pe = nn.SinusoidalPositionalEncoding(**kw)
    got = pe(mx.array(x))
    assert got.shape == (2, 3, kw["dims"]) and got.dtype == mx.float32
    # float32 sin/cos of arguments up to ~1300 are accurate to ~1e-4
    np.testing.assert_allclose(np.array(got), sinusoidal_ref(x, **kw), rtol=1e-4, atol=5e-4)
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    want = mnn.SinusoidalPositionalEncoding(**kw)(mlx.array(x))
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-5, atol=1e-6)


def test_sinusoidal_state_is_not_a_parameter():
    pe = nn.SinusoidalPositionalEncoding(8)
    assert pe.parameters() == {} and pe.trainable_parameters() == {}
    assert "_sigmas" in pe and pe["_sigmas"].shape == (4,)
    assert repr(pe) == "SinusoidalPositionalEncoding()"


def test_sinusoidal_input_dtypes_and_shapes():
    pe = nn.SinusoidalPositionalEncoding(4)
    # positions of any dtype give float32 features, as in MLX (the frequencies are float32)
    assert pe(mx.array([1, 2])).dtype == mx.float32
    assert pe(mx.array([1.0, 2.0], dtype=mx.float16)).dtype == mx.float32
    assert pe(mx.array(3.0)).shape == (4,)
    assert pe(mx.zeros((0, 5))).shape == (0, 5, 4)
    np.testing.assert_allclose(np.array(pe(mx.array([2]))), sinusoidal_ref(np.array([2.0]), 4), rtol=1e-5)


def test_sinusoidal_gradient_matches_derivative():
    pe = nn.SinusoidalPositionalEncoding(6, cos_first=True)
    x = mx.array([0.3, -1.2, 2.0], dtype=mx.float64)
    g = np.array(mx.grad(lambda x: pe(x).sum())(x))
    eps = 1e-6
    xs = np.array(x)
    fd = (sinusoidal_ref(xs + eps, 6, cos_first=True).sum(-1) - sinusoidal_ref(xs - eps, 6, cos_first=True).sum(-1)) / (
        2 * eps
    )
    np.testing.assert_allclose(g, fd, rtol=1e-5)


@pytest.mark.parametrize("kw", [dict(dims=7), dict(dims=0), dict(dims=-2), dict(dims=4, min_freq=0.0), dict(dims=4, max_freq=-1.0)])
def test_sinusoidal_bad_arguments(kw):
    with pytest.raises(ValueError, match=r"\[SinusoidalPositionalEncoding\]"):
        nn.SinusoidalPositionalEncoding(**kw)


# ------------------------------------------------------------------------------ ALiBi
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 8, 12, 16])
def test_alibi_slopes_match_paper(n):
    slopes = nn.ALiBi.create_alibi_slope(n)
    assert slopes.shape == (n, 1, 1) and slopes.dtype == mx.float32
    np.testing.assert_allclose(np.array(slopes).ravel(), alibi_slopes_ref(n), rtol=1e-6)


def test_alibi_slopes_and_matrix_match_mlx():
    pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    for n in (1, 3, 6, 8, 12):
        np.testing.assert_array_equal(np.array(nn.ALiBi.create_alibi_slope(n)), np.array(mnn.ALiBi.create_alibi_slope(n)))
    for q, k, h, off in [(3, 4, 2, 0), (5, 5, 3, 2), (4, 2, 1, 0), (2, 3, 2, 1)]:
        got = nn.ALiBi.create_alibi_matrix(q, k, h, offset=off)
        want = mnn.ALiBi.create_alibi_matrix(q, k, h, offset=off)
        assert got.shape == tuple(want.shape)
        np.testing.assert_array_equal(np.array(got), np.array(want))


def test_alibi_matrix_formula():
    m = np.array(nn.ALiBi.create_alibi_matrix(5, 6, 4, offset=2))
    assert m.shape == (1, 4, 3, 6)
    slopes = np.array(alibi_slopes_ref(4))
    q = np.arange(2, 5)[:, None]
    k = np.arange(6)[None]
    np.testing.assert_allclose(m[0], -np.abs(q - k)[None] * slopes[:, None, None], rtol=1e-6)
    # the diagonal is +0, not -0 (as MLX prints it)
    assert not np.signbit(m[0, 0, 0, 2])
    assert nn.ALiBi.create_alibi_matrix(2, 2, 2, dtype=mx.float16).dtype == mx.float16
    assert nn.ALiBi.create_alibi_slope(2, dtype=mx.bfloat16).dtype == mx.bfloat16


def test_alibi_call_adds_biases_and_mask():
    rng = np.random.default_rng(4)
    scores = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    mask = rng.standard_normal((4, 5)).astype(np.float32)
    alibi = nn.ALiBi()
    for off in (0, 1, 3):
        bias = np.array(nn.ALiBi.create_alibi_matrix(4 + off, 5, 3, offset=off))
        np.testing.assert_allclose(np.array(alibi(mx.array(scores), offset=off)), scores + bias, rtol=1e-6)
        got = alibi(mx.array(scores), offset=off, mask=mx.array(mask))
        np.testing.assert_allclose(np.array(got), scores + bias + mask, rtol=1e-6, atol=1e-6)
    assert alibi(mx.array(scores).astype(mx.float16)).dtype == mx.float16
    assert alibi(mx.zeros((0, 2, 3, 3))).shape == (0, 2, 3, 3)
    assert alibi.parameters() == {} and repr(alibi) == "ALiBi()"


def test_alibi_call_matches_mlx():
    mlx = pytest.importorskip("mlx.core")
    mnn = pytest.importorskip("mlx.nn")
    rng = np.random.default_rng(5)
    scores = rng.standard_normal((1, 6, 3, 7)).astype(np.float32)
    mask = rng.standard_normal((3, 7)).astype(np.float32)
    got = nn.ALiBi()(mx.array(scores), offset=2, mask=mx.array(mask))
    want = mnn.ALiBi()(mlx.array(scores), offset=2, mask=mlx.array(mask))
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6)


def test_alibi_gradient_passes_through():
    scores = mx.array(np.random.default_rng(6).standard_normal((1, 2, 3, 3)), dtype=mx.float64)
    g = mx.grad(lambda s: (nn.ALiBi()(s) ** 2).sum())(scores)
    want = 2 * (np.array(scores) + np.array(nn.ALiBi.create_alibi_matrix(3, 3, 2, dtype=mx.float64)))
    np.testing.assert_allclose(np.array(g), want, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (3,), (1, 2, 3, 4, 5)])
def test_alibi_bad_scores_shape(shape):
    with pytest.raises(ValueError, match=r"\[ALiBi\].*\(batch, num_heads, L_q, L_k\)"):
        nn.ALiBi()(mx.zeros(shape))


def test_alibi_bad_head_count():
    with pytest.raises(ValueError, match=r"\[ALiBi\] num_heads"):
        nn.ALiBi.create_alibi_slope(0)
    with pytest.raises(ValueError, match=r"\[ALiBi\] num_heads"):
        nn.ALiBi.create_alibi_matrix(2, 2, -1)
    with pytest.raises(ValueError, match=r"\[ALiBi\] sequence lengths"):
        nn.ALiBi.create_alibi_matrix(2, -1, 2)
