"""Conv1d/2d/3d, ConvTranspose1d/2d/3d, MaxPool/AvgPool 1d/2d/3d and Upsample.

Compared with real MLX given the same weights (and MLX's own initialisation under the
same seed, as oxmx's random numbers match MLX's bit for bit), with torch where installed
(layouts permuted to channels first), with NumPy formulas, and gradients with central
finite differences in float64.
"""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.nn.layers.upsample import upsample_cubic, upsample_linear, upsample_nearest

RNG = np.random.default_rng(7)


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def to_np(a):
    return np.array(a.astype(mx.float32)) if a.dtype == mx.bfloat16 else np.array(a)


CONV_LAYERS = [
    ("Conv1d", (4, 6, 3), dict(stride=2, padding=1, dilation=2, groups=2), (2, 9, 4)),
    ("Conv1d", (3, 5, 1), dict(bias=False), (2, 4, 3)),
    ("Conv2d", (4, 6, (3, 2)), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2), (2, 7, 8, 4)),
    ("Conv2d", (4, 8, 3), dict(padding=1, groups=4), (1, 5, 5, 4)),
    ("Conv3d", (2, 3, 2), dict(stride=2, padding=1), (1, 5, 4, 5, 2)),
    ("ConvTranspose1d", (4, 6, 3), dict(stride=2, padding=1, output_padding=1), (2, 5, 4)),
    ("ConvTranspose2d", (4, 6, (3, 2)), dict(stride=2, padding=(1, 0), dilation=(1, 2)), (2, 4, 3, 4)),
    ("ConvTranspose3d", (2, 3, 2), dict(stride=2, bias=False), (1, 2, 3, 2, 2)),
]


@pytest.mark.parametrize("name,args,kw,xshape", CONV_LAYERS, ids=[f"{c[0]}-{i}" for i, c in enumerate(CONV_LAYERS)])
def test_conv_layers_match_mlx(name, args, kw, xshape):
    m, mn = mlx_pair()
    m.random.seed(11)
    ml = getattr(mn, name)(*args, **kw)
    mx.random.seed(11)
    ol = getattr(nn, name)(*args, **kw)
    # same initialisation (shape, distribution, bias at zero), repr and dict entries
    np.testing.assert_array_equal(np.array(ol.weight), np.array(ml.weight))
    assert repr(ol) == repr(ml)
    assert sorted(ol.keys()) == sorted(ml.keys())
    if "bias" in ml:
        assert not np.array(ol.bias).any()
        b = RNG.standard_normal(ml.bias.shape).astype(np.float32)
        ml.update({"bias": m.array(b)})
        ol.update({"bias": mx.array(b)})
    x = RNG.standard_normal(xshape).astype(np.float32)
    ym, yo = ml(m.array(x)), ol(mx.array(x))
    assert yo.shape == ym.shape and yo.dtype == mx.float32
    np.testing.assert_allclose(np.array(yo), np.array(ym), rtol=1e-5, atol=1e-5)
    # parameter gradients of a loss, as training sees them
    ct = RNG.standard_normal(ym.shape).astype(np.float32)
    gm = mn.value_and_grad(ml, lambda mdl, x: (mdl(x) * m.array(ct)).sum())(ml, m.array(x))[1]
    go = nn.value_and_grad(ol, lambda mdl, x: (mdl(x) * mx.array(ct)).sum())(ol, mx.array(x))[1]
    for k in gm:
        np.testing.assert_allclose(np.array(go[k]), np.array(gm[k]), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name,args", [("Conv1d", (8, 64, 5)), ("Conv2d", (8, 64, (3, 5))), ("ConvTranspose2d", (8, 64, (3, 5)))])
def test_conv_init_bounds(name, args):
    layer = getattr(nn, name)(*args, groups=2) if name != "ConvTranspose2d" else getattr(nn, name)(*args)
    fan_in = layer.weight.shape[-1] * int(np.prod(layer.weight.shape[1:-1]))
    w = np.array(layer.weight)
    bound = 1 / np.sqrt(fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound  # uniform(-k, k) has std k / sqrt(3)
    assert not np.array(layer.bias).any()


def test_conv2d_matches_torch():
    torch = pytest.importorskip("torch")
    layer = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=(1, 2), groups=2)
    x = RNG.standard_normal((2, 9, 8, 4)).astype(np.float32)
    want = torch.nn.functional.conv2d(
        torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(np.array(layer.weight)).permute(0, 3, 1, 2),
        torch.tensor(np.array(layer.bias)), stride=2, padding=1, dilation=(1, 2), groups=2,
    ).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.array(layer(mx.array(x))), want, rtol=1e-5, atol=1e-5)


def test_conv_transpose2d_matches_torch():
    torch = pytest.importorskip("torch")
    layer = nn.ConvTranspose2d(4, 6, (3, 2), stride=2, padding=(1, 0), dilation=(1, 2), output_padding=1)
    x = RNG.standard_normal((2, 4, 5, 4)).astype(np.float32)
    # oxmx/MLX weight (out, kH, kW, in) is torch's (in, out, kH, kW)
    want = torch.nn.functional.conv_transpose2d(
        torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(np.array(layer.weight)).permute(3, 0, 1, 2),
        torch.tensor(np.array(layer.bias)), stride=2, padding=(1, 0), output_padding=1, dilation=(1, 2),
    ).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(np.array(layer(mx.array(x))), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,tol", [(mx.float16, 5e-3), (mx.bfloat16, 3e-2)])
def test_conv_low_precision(dtype, tol):
    layer = nn.Conv2d(3, 4, 3, padding=1)
    x = mx.array(RNG.standard_normal((2, 5, 5, 3)).astype(np.float32))
    want = np.array(layer(x))
    # a half-precision input with float32 weights promotes to float32 (as MLX)
    assert layer(x.astype(dtype)).dtype == mx.float32
    layer.set_dtype(dtype)
    y = layer(x.astype(dtype))
    assert y.dtype == dtype
    np.testing.assert_allclose(to_np(y), want, rtol=tol, atol=tol * 4)


def test_conv_empty_batch_and_gradients():
    layer = nn.Conv1d(2, 3, 3, padding=1)
    assert layer(mx.zeros((0, 5, 2))).shape == (0, 5, 3)
    x = RNG.standard_normal((1, 5, 2))
    w = np.array(layer.weight).astype(np.float64)

    def loss(w):
        layer.weight = mx.array(w, dtype=mx.float64)
        return float((layer(mx.array(x, dtype=mx.float64)) ** 2).sum())

    layer.set_dtype(mx.float64)
    g = nn.value_and_grad(layer, lambda mdl, x: (mdl(x) ** 2).sum())(layer, mx.array(x, dtype=mx.float64))[1]["weight"]
    fd = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        hi, lo = w.copy(), w.copy()
        hi[i] += 1e-6
        lo[i] -= 1e-6
        fd[i] = (loss(hi) - loss(lo)) / 2e-6
    np.testing.assert_allclose(np.array(g), fd, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make,x,exc", [
    (lambda: nn.Conv2d(4, 6, 3), lambda: mx.ones((8, 8, 4)), ValueError),  # unbatched
    (lambda: nn.Conv2d(4, 6, 3), lambda: mx.ones((2, 8, 8, 3)), ValueError),  # channels
    (lambda: nn.Conv1d(4, 6, 3), lambda: mx.ones((2, 8, 4), dtype=mx.int32), ValueError),
    (lambda: nn.Conv1d(4, 6, 3), lambda: np.ones((2, 8, 4), np.float32), TypeError),
    (lambda: nn.ConvTranspose1d(4, 6, 3), lambda: mx.ones((2, 8, 5)), ValueError),
    (lambda: nn.Conv2d(2, 3, 3), lambda: mx.ones((1, 2, 2, 2)), ValueError),  # smaller than the kernel
], ids=["unbatched", "channels", "int", "numpy", "transposed-channels", "too-small"])
def test_conv_bad_inputs(make, x, exc):
    with pytest.raises(exc, match=r"^\[(Conv|ConvTranspose)\dd\]|^\[conv"):
        make()(x())


@pytest.mark.parametrize("make", [
    lambda: nn.Conv1d(3, 4, 3, groups=2), lambda: nn.Conv1d(4, 3, 3, groups=2), lambda: nn.Conv1d(0, 3, 3),
    lambda: nn.Conv2d(2, 3, (3, 3, 3)), lambda: nn.Conv2d(2, 3, 0), lambda: nn.ConvTranspose2d(2, 3, (1, 2, 3)),
    lambda: nn.Conv3d(2, 3, 3, stride=(1, 2)),
])
def test_conv_bad_constructor_arguments(make):
    with pytest.raises(ValueError, match=r"^\[(Conv|ConvTranspose)\dd\]"):
        make()


# ---------------------------------------------------------------- pooling
POOLS = ["MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d"]
POOL_ARGS = [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=2, stride=1), dict(kernel_size=(3, 2, 2), stride=(1, 2, 2))]


@pytest.mark.parametrize("name", POOLS)
@pytest.mark.parametrize("kw", POOL_ARGS, ids=str)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int32", "bool_"])
def test_pooling_matches_mlx(name, kw, dtype):
    m, mn = mlx_pair()
    nd = int(name[-2])
    kw = {k: (v[:nd] if isinstance(v, tuple) else v) for k, v in kw.items()}
    if dtype == "bool_" and name.startswith("Avg"):
        pytest.skip("MLX's average of a bool input is not a pooling case")
    ml, ol = getattr(mn, name)(**kw), getattr(nn, name)(**kw)
    assert repr(ol) == repr(ml) and sorted(ol.keys()) == sorted(ml.keys())
    x = (RNG.standard_normal((2,) + (7, 6, 5)[:nd] + (3,)) * 3).astype(np.float32)
    ym = ml(m.array(x).astype(getattr(m, dtype)))
    yo = ol(mx.array(x).astype(getattr(mx, dtype)))
    assert yo.shape == ym.shape and str(yo.dtype).split(".")[-1] == str(ym.dtype).split(".")[-1]
    tol = 2e-2 if dtype in ("float16", "bfloat16") else 1e-6
    np.testing.assert_allclose(to_np(yo.astype(mx.float32)), np.array(ym.astype(m.float32)), rtol=tol, atol=tol)


def test_pooling_numpy_reference_and_torch():
    x = RNG.standard_normal((2, 7, 6, 3)).astype(np.float32)
    # max over 3x3 windows, stride 2, -inf padding 1; average counts the zero padding
    xp_max = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], constant_values=-np.inf)
    xp_avg = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)])
    want_max = np.stack([np.stack([xp_max[:, i:i + 3, j:j + 3].max(axis=(1, 2)) for j in range(0, 6, 2)], 1) for i in range(0, 7, 2)], 1)
    want_avg = np.stack([np.stack([xp_avg[:, i:i + 3, j:j + 3].mean(axis=(1, 2)) for j in range(0, 6, 2)], 1) for i in range(0, 7, 2)], 1)
    np.testing.assert_allclose(np.array(nn.MaxPool2d(3, 2, 1)(mx.array(x))), want_max, rtol=1e-6)
    np.testing.assert_allclose(np.array(nn.AvgPool2d(3, 2, 1)(mx.array(x))), want_avg, rtol=1e-6, atol=1e-6)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x).permute(0, 3, 1, 2)
    np.testing.assert_allclose(want_max, torch.nn.functional.max_pool2d(xt, 3, 2, 1).permute(0, 2, 3, 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(want_avg, torch.nn.functional.avg_pool2d(xt, 3, 2, 1).permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)


def test_pooling_gradients_and_edges():
    # ties share the gradient (as mx.max); padding takes none
    g = mx.grad(lambda x: nn.MaxPool1d(2, stride=1)(x).sum())(mx.array([[[1.0], [1.0], [1.0]]]))
    assert g.reshape(-1).tolist() == [0.5, 1.0, 0.5]
    g = mx.grad(lambda x: nn.MaxPool1d(2, stride=1, padding=1)(x).sum())(mx.array([[[-1.0], [2.0], [-3.0]]]))
    assert g.reshape(-1).tolist() == [1.0, 2.0, 1.0]
    x = RNG.standard_normal((1, 6, 5, 2))
    g = mx.grad(lambda x: (nn.AvgPool2d((3, 2), stride=(2, 1), padding=1)(x) ** 2).sum())(mx.array(x, dtype=mx.float64))
    f = lambda x: float((np.array(nn.AvgPool2d((3, 2), stride=(2, 1), padding=1)(mx.array(x, dtype=mx.float64))) ** 2).sum())
    fd = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        hi, lo = x.copy(), x.copy()
        hi[i] += 1e-6
        lo[i] -= 1e-6
        fd[i] = (f(hi) - f(lo)) / 2e-6
    np.testing.assert_allclose(np.array(g), fd, rtol=1e-6, atol=1e-8)
    assert nn.MaxPool1d(2)(mx.zeros((0, 4, 1))).shape == (0, 2, 1)
    assert nn.MaxPool1d(11)(mx.zeros((1, 10, 1))).shape == (1, 0, 1)
    assert nn.MaxPool2d(2)(mx.zeros((1, 5, 5, 1))).shape == (1, 2, 2, 1)
    np.testing.assert_array_equal(np.array(nn.MaxPool1d(2, padding=1)(mx.array([[[-np.inf], [np.nan], [3.0]]]))).reshape(-1), [-np.inf, np.nan])


@pytest.mark.parametrize("make,exc", [
    (lambda: nn.MaxPool1d(0), ValueError), (lambda: nn.MaxPool1d(2, stride=0), ValueError),
    (lambda: nn.AvgPool1d(2, padding=-1), ValueError), (lambda: nn.MaxPool2d((2, 2, 2)), ValueError),
    (lambda: nn.AvgPool2d(2.0), ValueError),
])
def test_pooling_bad_arguments(make, exc):
    with pytest.raises(exc, match=r"^\[(Max|Avg)Pool\dd\]"):
        make()


@pytest.mark.parametrize("shape", [(10, 2), (2, 2, 10, 2)])
def test_pooling_bad_input_rank(shape):
    with pytest.raises(ValueError, match=r"^\[MaxPool1d\]"):
        nn.MaxPool1d(3)(mx.ones(shape))


# ---------------------------------------------------------------- upsample
UPSAMPLE = [(mode, ac, aa) for mode in ("nearest", "linear", "cubic") for ac in (False, True) for aa in (False, True)
            if not (mode == "nearest" and (ac or aa)) and not (ac and aa)]


@pytest.mark.parametrize("mode,align_corners,antialias", UPSAMPLE)
@pytest.mark.parametrize("scale", [2, 1.5, 0.5, 0.7, 2.5, 3.3, 1.0, (2, 0.75), (0.6, 1.25)])
def test_upsample_matches_mlx(mode, align_corners, antialias, scale):
    m, mn = mlx_pair()
    x = RNG.standard_normal((2, 7, 5, 3)).astype(np.float32)
    ml = mn.Upsample(scale, mode, align_corners, antialias)
    ol = nn.Upsample(scale, mode, align_corners, antialias)
    assert repr(ol) == repr(ml)
    ym, yo = ml(m.array(x)), ol(mx.array(x))
    assert yo.shape == ym.shape
    np.testing.assert_allclose(np.array(yo), np.array(ym), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 10, 13])
@pytest.mark.parametrize("scale", [1.25, 1.5, 1.75, 2.2, 2.5, 3.3, 0.3, 0.4, 0.7, 0.9])
def test_upsample_1d_index_selection_matches_mlx(n, scale):
    m, mn = mlx_pair()
    if int(np.floor(n * scale)) == 0:
        pytest.skip("empty output")
    x = np.arange(n, dtype=np.float32).reshape(1, n, 1)
    for mode in ("nearest", "linear", "cubic"):
        for aa in ((False, True) if mode != "nearest" else (False,)):
            ym = np.array(mn.Upsample(scale, mode, antialias=aa)(m.array(x)))
            yo = np.array(nn.Upsample(scale, mode, antialias=aa)(mx.array(x)))
            np.testing.assert_allclose(yo, ym, rtol=1e-5, atol=1e-5, err_msg=f"{mode} aa={aa}")


def test_upsample_dtypes():
    xi = mx.arange(1, 5).reshape(1, 2, 2, 1)
    y = nn.Upsample(2)(xi)
    assert y.dtype == mx.int32
    assert y.squeeze().tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    # MLX's documented example values
    np.testing.assert_allclose(np.array(nn.Upsample(2, "linear")(xi)).squeeze(),
                               [[1, 1.25, 1.75, 2], [1.5, 1.75, 2.25, 2.5], [2.5, 2.75, 3.25, 3.5], [3, 3.25, 3.75, 4]], rtol=1e-6)
    np.testing.assert_allclose(np.array(nn.Upsample(2, "linear", align_corners=True)(xi)).squeeze()[0], [1, 4 / 3, 5 / 3, 2], rtol=1e-6)
    for dt in (mx.float16, mx.bfloat16):  # interpolation weights are float32 (as MLX)
        assert nn.Upsample(2, "linear")(xi.astype(dt)).dtype == mx.float32
        assert nn.Upsample(2)(xi.astype(dt)).dtype == dt
    assert nn.Upsample(2, "cubic")(xi.astype(mx.float64)).dtype == mx.float64


def test_upsample_matches_torch_integer_scales():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = RNG.standard_normal((2, 6, 8, 3)).astype(np.float32)
    xt = torch.tensor(x).permute(0, 3, 1, 2)
    cases = [
        (nn.Upsample(2, "nearest"), dict(scale_factor=2, mode="nearest")),
        (nn.Upsample(2, "linear"), dict(scale_factor=2, mode="bilinear", align_corners=False)),
        (nn.Upsample(3, "linear", align_corners=True), dict(scale_factor=3, mode="bilinear", align_corners=True)),
        (nn.Upsample(2, "cubic"), dict(scale_factor=2, mode="bicubic", align_corners=False)),
        (nn.Upsample(0.5, "linear", antialias=True), dict(scale_factor=0.5, mode="bilinear", antialias=True)),
        (nn.Upsample(0.5, "cubic", antialias=True), dict(scale_factor=0.5, mode="bicubic", antialias=True)),
    ]
    for layer, kw in cases:
        want = F.interpolate(xt, **kw).permute(0, 2, 3, 1).numpy()
        np.testing.assert_allclose(np.array(layer(mx.array(x))), want, rtol=1e-4, atol=1e-4, err_msg=str(kw))


def test_upsample_functions_and_gradients():
    x = RNG.standard_normal((1, 4, 3, 2))
    np.testing.assert_array_equal(np.array(upsample_nearest(mx.array(x), (2, 1))), np.repeat(x, 2, axis=1).astype(np.float32))
    for fn in (upsample_linear, upsample_cubic):
        f = lambda x: (fn(x, (1.5, 2.0)) ** 2).sum()
        g = mx.grad(f)(mx.array(x, dtype=mx.float64))
        fd = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            hi, lo = x.copy(), x.copy()
            hi[i] += 1e-6
            lo[i] -= 1e-6
            fd[i] = (float(f(mx.array(hi, dtype=mx.float64))) - float(f(mx.array(lo, dtype=mx.float64)))) / 2e-6
        np.testing.assert_allclose(np.array(g), fd, rtol=1e-6, atol=1e-8)
    assert nn.Upsample(2)(mx.zeros((0, 3, 1))).shape == (0, 6, 1)


@pytest.mark.parametrize("scale,shape", [(2, (3, 3)), ((2, 2), (1, 3, 1)), (-2, (1, 3, 1)), (0.1, (1, 3, 1))])
def test_upsample_bad_inputs(scale, shape):
    with pytest.raises(ValueError, match=r"^\[Upsample\]"):
        nn.Upsample(scale)(mx.ones(shape))


@pytest.mark.parametrize("kw", [dict(mode="bogus"), dict(mode="nearest", antialias=True), dict(mode="linear", align_corners=True, antialias=True)])
def test_upsample_bad_arguments(kw):
    with pytest.raises(ValueError, match=r"^\[Upsample\]"):
        nn.Upsample(2, **kw)
