"""oxmx.core convolutions: conv1d/2d/3d, conv_general, conv_transpose1d/2d/3d, convolve.

References: a direct NumPy loop over kernel offsets in float64 (MLX's semantics: negative
padding crops the input before input dilation), the scatter definition of transposed
convolution, ``np.convolve``, central finite differences, and real MLX (values, error
types, vjp and vmap) where it is installed.
"""

import itertools

import numpy as np
import pytest

import oxmx.core as mx

RNG = np.random.default_rng(20240601)


def f64(a):
    return mx.array(np.asarray(a, dtype=np.float64), dtype=mx.float64)


def npy(a):
    return np.array(a.astype(mx.float64) if a.dtype == mx.bfloat16 else a)


# ---------------------------------------------------------------- NumPy references
def ref_conv(x, w, stride=1, padding=0, kernel_dilation=1, input_dilation=1, groups=1, flip=False):
    """Direct convolution: x (N, *S, C), w (O, *K, C/G); padding an int, a list or (lo, hi)."""
    n = x.ndim - 2
    per = lambda v: list(v) * n if isinstance(v, (list, tuple)) and len(v) == 1 else (list(v) if isinstance(v, (list, tuple)) else [v] * n)
    if isinstance(padding, tuple) and len(padding) == 2 and isinstance(padding[0], list):
        lo, hi = per(padding[0]), per(padding[1])
    else:
        lo = hi = per(padding)
    stride, kdil, idil = per(stride), per(kernel_dilation), per(input_dilation)
    # negative padding crops before the input dilation (MLX)
    crop = tuple([slice(None)] + [slice(-min(a, 0), x.shape[1 + i] + min(b, 0)) for i, (a, b) in enumerate(zip(lo, hi))] + [slice(None)])
    x = x[crop]
    shape = [x.shape[0]] + [(s - 1) * d + 1 for s, d in zip(x.shape[1:-1], idil)] + [x.shape[-1]]
    xd = np.zeros(shape, x.dtype)
    xd[tuple([slice(None)] + [slice(None, None, d) for d in idil] + [slice(None)])] = x
    xp = np.pad(xd, [(0, 0)] + [(max(a, 0), max(b, 0)) for a, b in zip(lo, hi)] + [(0, 0)])
    if flip:
        w = w[(slice(None),) + (slice(None, None, -1),) * n]
    kshape = w.shape[1:-1]
    out = [(s - d * (k - 1) - 1) // st + 1 for s, k, d, st in zip(xp.shape[1:-1], kshape, kdil, stride)]
    O, cg = w.shape[0], w.shape[-1]
    og = O // groups
    y = np.zeros([x.shape[0]] + out + [O])
    for off in itertools.product(*[range(k) for k in kshape]):
        sl = tuple([slice(None)] + [slice(o * d, o * d + (m - 1) * st + 1, st) for o, d, m, st in zip(off, kdil, out, stride)] + [slice(None)])
        patch = xp[sl]
        for g in range(groups):
            wk = w[(slice(g * og, (g + 1) * og),) + off + (slice(None),)]  # (og, cg)
            y[..., g * og:(g + 1) * og] += patch[..., g * cg:(g + 1) * cg] @ wk.T
    return y


def ref_conv_transpose(x, w, stride, padding, dilation, output_padding, groups=1):
    """Scatter definition: y[i * s + k * d - p] += x[i] w[k] (1-D to 3-D)."""
    n = x.ndim - 2
    s, p, d, op = ([v] * n if isinstance(v, int) else list(v) for v in (stride, padding, dilation, output_padding))
    kshape = w.shape[1:-1]
    out = [(L - 1) * s[i] - 2 * p[i] + d[i] * (kshape[i] - 1) + op[i] + 1 for i, L in enumerate(x.shape[1:-1])]
    O, cg = w.shape[0], w.shape[-1]
    og = O // groups
    y = np.zeros([x.shape[0]] + out + [O])
    for pos in itertools.product(*[range(L) for L in x.shape[1:-1]]):
        for off in itertools.product(*[range(k) for k in kshape]):
            tgt = [pos[i] * s[i] + off[i] * d[i] - p[i] for i in range(n)]
            if all(0 <= t < o for t, o in zip(tgt, out)):
                for g in range(groups):
                    wk = w[(slice(g * og, (g + 1) * og),) + off + (slice(None),)]
                    y[(slice(None),) + tuple(tgt) + (slice(g * og, (g + 1) * og),)] += x[(slice(None),) + pos + (slice(g * cg, (g + 1) * cg),)] @ wk.T
    return y


# ---------------------------------------------------------------- values (float64)
GENERAL_CASES = [
    # (spatial, kernel, groups, kwargs)
    ((9,), (3,), 1, {}),
    ((9,), (3,), 2, dict(stride=2, padding=1, kernel_dilation=2)),
    ((8,), (2,), 1, dict(padding=-1, input_dilation=3, flip=True)),
    ((7,), (4,), 4, dict(padding=([2], [0]), stride=3)),
    ((6, 5), (3, 2), 1, dict(stride=[2, 1], padding=([1, 0], [2, 1]))),
    ((6, 5), (3, 3), 2, dict(kernel_dilation=[1, 2], input_dilation=[2, 1], flip=True)),
    ((6, 7), (3, 3), 4, dict(padding=1)),  # depthwise (one input channel per group)
    ((5, 6), (2, 2), 1, dict(stride=2, input_dilation=2)),  # where MLX's weight gradient is wrong
    ((7, 6), (3, 2), 1, dict(stride=2, padding=-1, input_dilation=2, flip=True)),
    ((4, 5, 4), (2, 3, 2), 1, dict(stride=[1, 2, 1], padding=[1, 0, 1])),
    ((4, 4, 5), (2, 2, 2), 1, dict(kernel_dilation=2, input_dilation=[1, 2, 1], padding=([0, 1, -1], [1, 0, 0]))),
]


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: f"{c[0]}-{c[1]}-g{c[2]}-{sorted(c[3])}")
def test_conv_general_matches_direct_loop(case):
    spatial, kernel, groups, kw = case
    cin, cout = 4, 4 if groups == 4 else 6
    x = RNG.standard_normal((2,) + spatial + (cin,))
    w = RNG.standard_normal((cout,) + kernel + (cin // groups,))
    y = mx.conv_general(f64(x), f64(w), groups=groups, **kw)
    assert y.dtype == mx.float64
    np.testing.assert_allclose(npy(y), ref_conv(x, w, groups=groups, **kw), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("stride,padding,dilation,groups", [(1, 0, 1, 1), (2, 1, 1, 1), (1, 2, 2, 1), (3, 1, 1, 2), (2, 0, 2, 2), (1, -1, 1, 1)])
def test_conv_nd_matches_direct_loop(nd, stride, padding, dilation, groups):
    if nd == 3 and groups != 1:
        pytest.skip("conv3d has only groups=1 (as MLX)")
    spatial = (8, 7, 6)[:nd]
    x = RNG.standard_normal((2,) + spatial + (4,))
    w = RNG.standard_normal((6,) + (3, 2, 2)[:nd] + (4 // groups,))
    fn = getattr(mx, f"conv{nd}d")
    y = fn(f64(x), f64(w), stride, padding, dilation, groups)
    np.testing.assert_allclose(npy(y), ref_conv(x, w, stride, padding, dilation, groups=groups), rtol=1e-12, atol=1e-12)
    if nd > 1:  # per-axis tuples
        st, pd, dl = (stride,) + (1,) * (nd - 1), (padding,) + (0,) * (nd - 1), (1,) * (nd - 1) + (dilation,)
        y = fn(f64(x), f64(w), st, pd, dl, groups)
        np.testing.assert_allclose(npy(y), ref_conv(x, w, list(st), list(pd), list(dl), groups=groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("stride,padding,dilation,output_padding,groups", [(1, 0, 1, 0, 1), (2, 1, 1, 1, 1), (3, 2, 1, 2, 2), (2, 0, 2, 0, 1), (1, 1, 2, 0, 2)])
def test_conv_transpose_matches_scatter_definition(nd, stride, padding, dilation, output_padding, groups):
    if nd == 3 and groups != 1:
        pytest.skip("conv_transpose3d has only groups=1 (as MLX)")
    x = RNG.standard_normal((2,) + (5, 4, 3)[:nd] + (4,))
    # padding <= dilation * (kernel - 1): larger padding crops input elements (MLX's extents)
    w = RNG.standard_normal((6,) + (3, 3, 3)[:nd] + (4 // groups,))
    y = getattr(mx, f"conv_transpose{nd}d")(f64(x), f64(w), stride, padding, dilation, output_padding, groups)
    np.testing.assert_allclose(npy(y), ref_conv_transpose(x, w, stride, padding, dilation, output_padding, groups), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("na,nv", [(7, 3), (3, 7), (6, 4), (1, 1), (5, 5), (2, 6)])
def test_convolve_matches_numpy(mode, na, nv):
    a, v = RNG.standard_normal(na), RNG.standard_normal(nv)
    np.testing.assert_allclose(npy(mx.convolve(f64(a), f64(v), mode)), np.convolve(a, v, mode), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- dtypes, empties, layouts
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float16", 3e-3), ("bfloat16", 2e-2)])
def test_low_precision_against_float64(dtype, tol):
    x = RNG.standard_normal((2, 6, 5, 4))
    w = RNG.standard_normal((4, 3, 2, 2))
    dt = getattr(mx, dtype)
    y = mx.conv2d(mx.array(x).astype(dt), mx.array(w).astype(dt), stride=(1, 2), padding=1, groups=2)
    assert y.dtype == dt
    # the reference sees the same rounded inputs
    xr, wr = npy(mx.array(x).astype(dt)), npy(mx.array(w).astype(dt))
    want = ref_conv(xr, wr, [1, 2], 1, groups=2)
    np.testing.assert_allclose(npy(y), want, rtol=tol, atol=tol * np.abs(want).max())


@pytest.mark.parametrize("xdt,wdt,out", [
    ("float16", "float32", "float32"), ("bfloat16", "float16", "float32"), ("float32", "int32", "float32"),
    ("float16", "int32", "float16"), ("bfloat16", "bool_", "bfloat16"), ("float32", "float64", "float64"),
])
def test_result_dtype_promotes_like_mlx(xdt, wdt, out):
    x = mx.ones((1, 4, 2), dtype=getattr(mx, xdt))
    w = mx.ones((3, 2, 2), dtype=getattr(mx, wdt))
    y = mx.conv1d(x, w)
    assert y.dtype == getattr(mx, out)
    np.testing.assert_array_equal(npy(y), np.full((1, 3, 3), 4.0))


def test_empty_shapes():
    w = mx.ones((3, 2, 4))
    assert mx.conv1d(mx.ones((0, 6, 4)), w).shape == (0, 5, 3)
    assert mx.conv_transpose1d(mx.ones((0, 6, 4)), w).shape == (0, 7, 3)
    y = mx.conv1d(mx.ones((2, 6, 0)), mx.ones((3, 2, 0)))  # no input channels: zeros
    assert y.shape == (2, 5, 3) and not npy(y).any()
    assert mx.conv1d(mx.ones((2, 6, 4)), mx.ones((0, 2, 4))).shape == (2, 5, 0)
    # an empty input with only padding left: MLX's extent (0 - 1) * 2 + 1 + 2 + 2 = 3
    y = mx.conv_transpose1d(mx.ones((1, 0, 2)), mx.ones((1, 3, 2)), stride=2)
    assert y.shape == (1, 1, 1) and not npy(y).any()
    # gradients of an empty batch are empty, of the weight zero
    gx, gw = mx.grad(lambda x, w: mx.conv2d(x, w, padding=1).sum(), argnums=(0, 1))(mx.ones((0, 3, 3, 2)), mx.ones((4, 3, 3, 2)))
    assert gx.shape == (0, 3, 3, 2) and gw.shape == (4, 3, 3, 2) and not npy(gw).any()


def test_non_contiguous_inputs():
    x = RNG.standard_normal((2, 7, 6, 4)).astype(np.float32)
    w = RNG.standard_normal((5, 3, 2, 4)).astype(np.float32)
    xt = mx.array(np.ascontiguousarray(x.transpose(0, 2, 1, 3))).transpose(0, 2, 1, 3)  # transposed storage
    xs = mx.array(np.repeat(x, 2, axis=2))[:, :, ::2, :]  # strided view
    wt = mx.array(np.ascontiguousarray(w.T)).T
    xb = mx.broadcast_to(mx.array(x[:1]), x.shape)  # broadcast view
    cases = [(xt, mx.array(w), x, w), (xs, wt, x, w), (xb, wt, np.broadcast_to(x[:1], x.shape), w)]
    for xx, ww, xr, wr in cases:
        got = npy(mx.conv2d(xx, ww, stride=2, padding=1))
        np.testing.assert_allclose(got, ref_conv(xr.astype(np.float64), wr.astype(np.float64), 2, 1), rtol=1e-4, atol=1e-4)
        g = mx.grad(lambda x: mx.conv2d(x, ww, stride=2, padding=1).sum())(xx)
        g0 = mx.grad(lambda x: mx.conv2d(x, ww, stride=2, padding=1).sum())(mx.array(np.ascontiguousarray(xr)))
        np.testing.assert_allclose(npy(g), npy(g0), rtol=1e-5, atol=1e-5)


def test_mlx_extents_for_large_transpose_padding():
    # padding > dilation * (kernel - 1) crops input elements before the stride dilation
    x = mx.array(np.arange(1.0, 9.0).reshape(1, 8, 1))
    w = mx.ones((1, 3, 1))
    assert mx.conv_transpose1d(x, w, stride=2, padding=3).shape == (1, 9, 1)
    assert mx.conv_transpose1d(x, w, padding=4).shape == (1, 2, 1)
    with pytest.raises(ValueError):
        mx.conv_transpose1d(x, w, padding=5)
    # the crop removes whole input elements: x[1:-1] dilated by 2
    y = mx.conv_general(x, mx.ones((1, 1, 1)), input_dilation=2, padding=-1)
    np.testing.assert_array_equal(npy(y).reshape(-1), [2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7])


# ---------------------------------------------------------------- bad arguments
X1, W1 = mx.ones((2, 8, 4)), mx.ones((3, 3, 4))
X2, W2 = mx.ones((2, 8, 8, 4)), mx.ones((6, 3, 3, 4))
X3, W3 = mx.ones((1, 5, 5, 5, 4)), mx.ones((6, 3, 3, 3, 4))

BAD = [
    # (label, fn(m), exception type) -- the types are MLX's (checked below when MLX is installed)
    ("input rank", lambda m, X1=X1, W1=W1: m.conv1d(m.ones((8, 4)), m.ones((3, 3, 4))), ValueError),
    ("weight rank", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 4))), ValueError),
    ("channels", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 5))), ValueError),
    ("groups not dividing C_in", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 2)), groups=3), ValueError),
    ("groups not dividing C_out", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 2)), groups=2), ValueError),
    ("negative groups", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), groups=-1), ValueError),
    ("stride 0", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), stride=0), ValueError),
    ("negative stride", lambda m: m.conv2d(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), stride=(1, -1)), ValueError),
    ("dilation 0", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), dilation=0), ValueError),
    ("input dilation 0", lambda m: m.conv_general(m.ones((2, 8, 4)), m.ones((3, 3, 4)), input_dilation=0), ValueError),
    ("kernel too large", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 9, 4))), ValueError),
    ("dilated kernel too large", lambda m: m.conv1d(m.ones((1, 5, 2)), m.ones((1, 3, 2)), dilation=3), ValueError),
    ("padding crops too much", lambda m: m.conv2d(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), padding=(-3, 0)), ValueError),
    ("integer input", lambda m: m.conv1d(m.ones((2, 8, 4), dtype=m.int32), m.ones((3, 3, 4))), ValueError),
    ("bool input", lambda m: m.conv1d(m.ones((2, 8, 4), dtype=m.bool_), m.ones((3, 3, 4))), ValueError),
    ("complex input", lambda m: m.conv1d(m.ones((2, 8, 4), dtype=m.complex64), m.ones((3, 3, 4))), ValueError),
    ("groups in 3D", lambda m: m.conv3d(m.ones((1, 5, 5, 5, 4)), m.ones((6, 3, 3, 3, 2)), groups=2), ValueError),
    ("groups in transposed 3D", lambda m: m.conv_transpose3d(m.ones((1, 5, 5, 5, 4)), m.ones((6, 3, 3, 3, 2)), groups=2), ValueError),
    ("conv2d on 3D input", lambda m: m.conv2d(m.ones((1, 5, 5, 5, 4)), m.ones((6, 3, 3, 3, 4))), ValueError),
    ("conv_general 4 spatial dims", lambda m: m.conv_general(m.ones((1, 2, 2, 2, 2, 4)), m.ones((3, 1, 1, 1, 1, 4))), ValueError),
    ("strides of the wrong length", lambda m: m.conv_general(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), stride=[1, 2, 3]), ValueError),
    ("padding of the wrong length", lambda m: m.conv_general(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), padding=([1, 2, 3], [1, 1])), ValueError),
    ("padding triple", lambda m: m.conv_general(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), padding=([1, 2], [1, 1], [1, 1])), TypeError),
    ("padding half pair", lambda m: m.conv_general(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), padding=([1, 1], 2)), TypeError),
    ("float stride", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), stride=1.0), TypeError),
    ("tuple stride for conv1d", lambda m: m.conv1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), stride=(1,)), TypeError),
    ("conv2d stride of 3", lambda m: m.conv2d(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), stride=(1, 1, 1)), TypeError),
    ("stride beyond int32", lambda m: m.conv2d(m.ones((2, 8, 8, 4)), m.ones((6, 3, 3, 4)), stride=2**31), TypeError),
    ("None groups", lambda m: m.conv_general(m.ones((2, 8, 4)), m.ones((3, 3, 4)), groups=None), TypeError),
    ("int flip", lambda m: m.conv_general(m.ones((2, 8, 4)), m.ones((3, 3, 4)), flip=1), TypeError),
    ("numpy input", lambda m: m.conv1d(np.ones((2, 8, 4), np.float32), m.ones((3, 3, 4))), TypeError),
    ("scalar weight", lambda m: m.conv2d(m.ones((2, 8, 8, 4)), 1.0), TypeError),
    ("transposed channels", lambda m: m.conv_transpose1d(m.ones((2, 8, 4)), m.ones((3, 3, 5))), ValueError),
    ("transposed stride 0", lambda m: m.conv_transpose1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), stride=0), ValueError),
    ("transposed padding too large", lambda m: m.conv_transpose1d(m.ones((2, 8, 4)), m.ones((3, 3, 4)), padding=9, stride=2), ValueError),
    ("convolve 2-D", lambda m: m.convolve(m.ones((5, 1)), m.ones(3)), ValueError),
    ("convolve empty", lambda m: m.convolve(m.ones(0), m.ones(3)), ValueError),
    ("convolve mode", lambda m: m.convolve(m.ones(5), m.ones(3), "FULL"), ValueError),
    ("convolve None mode", lambda m: m.convolve(m.ones(5), m.ones(3), None), TypeError),
    ("convolve integer signal", lambda m: m.convolve(m.ones(3), m.ones(5, dtype=m.int32)), ValueError),
    ("convolve list", lambda m: m.convolve([1.0, 2.0], m.ones(2)), TypeError),
]


@pytest.mark.parametrize("label,fn,exc", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments(label, fn, exc):
    with pytest.raises(exc) as info:
        fn(mx)
    name = str(info.value).split("]")[0]
    assert name.startswith("[conv") or name.startswith("[convolve"), info.value  # names the function


@pytest.mark.parametrize("label,fn,exc", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_raise_like_mlx(label, fn, exc):
    mlx = pytest.importorskip("mlx.core")
    with pytest.raises(exc):
        fn(mlx)


def test_groups_zero_is_an_error():
    # MLX dies of SIGFPE here; oxmx raises
    with pytest.raises(ValueError, match="groups"):
        mx.conv1d(mx.ones((2, 8, 4)), mx.ones((3, 3, 4)), groups=0)


def test_no_partial_windows_with_a_stride():
    # MLX computes one output from a window reaching past the input when the stride is > 1
    # (its size check divides before comparing); oxmx raises as it does for stride 1
    x, w = mx.ones((1, 2, 2)), mx.ones((1, 2, 2))
    for stride in (1, 3):
        with pytest.raises(ValueError):
            mx.conv1d(x, w, stride=stride, dilation=2)


# ---------------------------------------------------------------- gradients
def _fd_check(fn, xs, rng, eps=1e-6):
    """vjp and jvp of ``fn`` (float64) against central differences along random directions."""
    out = fn(*xs)
    u = f64(rng.standard_normal(out.shape))
    _, grads = mx.vjp(lambda *a: [fn(*a)], list(xs), [u])
    vs = [f64(rng.standard_normal(x.shape)) for x in xs]
    _, tans = mx.jvp(lambda *a: [fn(*a)], list(xs), vs)
    fd = (npy(fn(*[x + eps * v for x, v in zip(xs, vs)])) - npy(fn(*[x - eps * v for x, v in zip(xs, vs)]))) / (2 * eps)
    np.testing.assert_allclose(npy(tans[0]), fd, rtol=1e-6, atol=1e-6 * max(1, np.abs(fd).max()))
    lhs = sum(float((npy(g) * npy(v)).sum()) for g, v in zip(grads, vs))
    assert abs(lhs - float((npy(u) * fd).sum())) <= 1e-6 * max(1.0, abs(lhs))


@pytest.mark.parametrize("case", GENERAL_CASES, ids=lambda c: f"{c[0]}-{c[1]}-g{c[2]}-{sorted(c[3])}")
def test_gradients_against_finite_differences(case):
    spatial, kernel, groups, kw = case
    cin, cout = 4, 4 if groups == 4 else 2 * groups
    x = f64(RNG.standard_normal((1,) + spatial + (cin,)))
    w = f64(RNG.standard_normal((cout,) + kernel + (cin // groups,)))
    _fd_check(lambda x, w: mx.conv_general(x, w, groups=groups, **kw), [x, w], np.random.default_rng(1))


@pytest.mark.parametrize("nd", [1, 2])
def test_transpose_and_convolve_gradients(nd):
    x = f64(RNG.standard_normal((2,) + (4, 3)[:nd] + (2,)))
    w = f64(RNG.standard_normal((4,) + (3, 2)[:nd] + (1,)))
    fn = getattr(mx, f"conv_transpose{nd}d")
    _fd_check(lambda x, w: fn(x, w, stride=2, padding=1, dilation=1, output_padding=1, groups=2), [x, w], np.random.default_rng(2))
    _fd_check(lambda a, v: mx.convolve(a, v, "same"), [f64(RNG.standard_normal(6)), f64(RNG.standard_normal(3))], np.random.default_rng(3))


def test_second_order_and_compile():
    x = f64(RNG.standard_normal((1, 5, 4, 2)))
    w = f64(RNG.standard_normal((3, 2, 2, 2)))
    conv = lambda x, w: mx.conv2d(x, w, stride=(2, 1), padding=1)
    gg = lambda w: (mx.grad(lambda x: (conv(x, w) ** 2).sum())(x) ** 2).sum()
    d = f64(RNG.standard_normal(w.shape))
    eps = 1e-5
    fd = (float(gg(w + eps * d)) - float(gg(w - eps * d))) / (2 * eps)
    got = float((mx.grad(gg)(w) * d).sum())
    assert abs(got - fd) <= 1e-6 * max(1.0, abs(fd))
    np.testing.assert_allclose(npy(mx.compile(conv)(x, w)), npy(conv(x, w)), rtol=1e-12)
    g = mx.grad(lambda x, w: conv(x, w).sum(), argnums=(0, 1))
    for a, b in zip(mx.compile(g)(x, w), g(x, w)):
        np.testing.assert_allclose(npy(a), npy(b), rtol=1e-12)


def test_vmap_over_input_and_weight():
    conv = lambda x, w: mx.conv2d(x, w, stride=(2, 1), padding=1, groups=2)
    xs = f64(RNG.standard_normal((2, 3, 6, 5, 4)))
    ws = f64(RNG.standard_normal((3, 4, 3, 2, 2)))
    got = mx.vmap(conv, in_axes=(1, 0))(xs, ws)
    want = np.stack([npy(conv(xs[:, i], ws[i])) for i in range(3)])
    np.testing.assert_allclose(npy(got), want, rtol=1e-12, atol=1e-12)
    g = mx.grad(lambda ws: mx.vmap(conv, in_axes=(1, 0))(xs, ws).sum())(ws)
    want = np.stack([npy(mx.grad(lambda w: conv(xs[:, i], w).sum())(ws[i])) for i in range(3)])
    np.testing.assert_allclose(npy(g), want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- against real MLX
# (name, input shape, weight shape, kwargs, whether MLX's vjp is right): MLX's input
# gradient of a transposed convolution with stride > 1 and output_padding > 0 has the
# wrong shape (e.g. (2, 3, 2, 4) for an input of (2, 4, 3, 4)); oxmx's is checked against
# finite differences in test_transpose_and_convolve_gradients.
MLX_CASES = [
    ("conv1d", (2, 9, 4), (6, 3, 2), dict(stride=2, padding=1, dilation=2, groups=2), True),
    ("conv1d", (2, 9, 4), (6, 3, 4), dict(padding=-1), True),
    ("conv2d", (2, 7, 6, 4), (6, 3, 2, 4), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2)), True),
    ("conv2d", (1, 6, 6, 4), (8, 3, 3, 1), dict(padding=1, groups=4), True),
    ("conv3d", (1, 4, 5, 4, 2), (3, 2, 3, 2, 2), dict(stride=(1, 2, 1), padding=1), True),
    ("conv_general", (2, 7, 6, 4), (6, 3, 2, 2), dict(padding=([1, 0], [2, 1]), kernel_dilation=[2, 1], input_dilation=[1, 2], groups=2, flip=True), True),
    ("conv_general", (2, 8, 3), (4, 3, 3), dict(stride=3, padding=([-1], [2]), flip=True), True),
    ("conv_transpose1d", (2, 5, 4), (6, 3, 2), dict(stride=2, padding=1, groups=2), True),
    ("conv_transpose2d", (2, 4, 3, 4), (6, 3, 2, 4), dict(stride=(2, 3), padding=(1, 0), dilation=(1, 2)), True),
    ("conv_transpose2d", (2, 4, 3, 4), (6, 3, 2, 4), dict(stride=(2, 3), padding=(1, 0), output_padding=(1, 2)), False),
    ("conv_transpose3d", (1, 3, 2, 3, 2), (3, 2, 3, 2, 2), dict(stride=2, padding=1), True),
    ("conv_transpose1d", (1, 8, 2), (3, 3, 2), dict(stride=2, padding=3), True),  # MLX's crop of large padding
]


@pytest.mark.parametrize("name,xs,ws,kw,grad_ok", MLX_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(MLX_CASES)])
def test_values_vjp_and_vmap_match_mlx(name, xs, ws, kw, grad_ok):
    m = pytest.importorskip("mlx.core")
    x = RNG.standard_normal(xs).astype(np.float32)
    w = RNG.standard_normal(ws).astype(np.float32)
    ref = np.array(getattr(m, name)(m.array(x), m.array(w), **kw))
    got = npy(getattr(mx, name)(mx.array(x), mx.array(w), **kw))
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    ct = RNG.standard_normal(ref.shape).astype(np.float32)
    gm = m.grad(lambda x, w: (getattr(m, name)(x, w, **kw) * m.array(ct)).sum(), argnums=(0, 1))(m.array(x), m.array(w))
    go = mx.grad(lambda x, w: (getattr(mx, name)(x, w, **kw) * mx.array(ct)).sum(), argnums=(0, 1))(mx.array(x), mx.array(w))
    assert go[0].shape == x.shape and go[1].shape == w.shape
    for a, b in zip(gm, go) if grad_ok else zip(gm[1:], go[1:]):
        np.testing.assert_allclose(npy(b), np.array(a), rtol=1e-3, atol=1e-3)
    xb = np.stack([x, 0.5 * x])
    vm = np.array(m.vmap(lambda x: getattr(m, name)(x, m.array(w), **kw))(m.array(xb)))
    vo = npy(mx.vmap(lambda x: getattr(mx, name)(x, mx.array(w), **kw))(mx.array(xb)))
    np.testing.assert_allclose(vo, vm, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_matches_mlx(dtype):
    m = pytest.importorskip("mlx.core")
    x = RNG.integers(-3, 4, (2, 6, 5, 4)).astype(np.float32)
    w = RNG.integers(-2, 3, (4, 3, 3, 2)).astype(np.float32)
    ref = m.conv2d(m.array(x).astype(getattr(m, dtype)), m.array(w).astype(getattr(m, dtype)), padding=1, groups=2)
    got = mx.conv2d(mx.array(x).astype(getattr(mx, dtype)), mx.array(w).astype(getattr(mx, dtype)), padding=1, groups=2)
    assert str(got.dtype).split(".")[-1] == str(ref.dtype).split(".")[-1]
    np.testing.assert_array_equal(npy(got), np.array(ref.astype(m.float32)))  # small integers: exact


def test_weight_gradient_with_stride_and_input_dilation_is_right():
    # MLX's weight gradient is wrong here (it disagrees with finite differences); oxmx's agrees
    x = f64(RNG.standard_normal((1, 7, 6, 1)))
    w = f64(RNG.standard_normal((1, 3, 2, 1)))
    _fd_check(lambda x, w: mx.conv_general(x, w, stride=2, input_dilation=2), [x, w], np.random.default_rng(4))


def test_complex_weight_is_a_complex_convolution():
    # MLX returns a complex64 result but drops the weight's imaginary part; oxmx computes it
    x = np.arange(6.0).reshape(1, 3, 2)
    w = np.array([[[1 + 1j, 2 - 1j]]])
    y = mx.conv1d(mx.array(x.astype(np.float32)), mx.array(w.astype(np.complex64)))
    assert y.dtype == mx.complex64
    np.testing.assert_allclose(np.array(y), (x @ w[0].T).reshape(1, 3, 1), rtol=1e-6)


def test_vmap_over_an_empty_mapped_axis():
    """A mapped axis of length 0 gives an empty batch of the right shape (MLX's shapes),
    for a mapped input, a mapped weight and the weight gradient's rule."""
    w = mx.ones((3, 3, 3, 2))
    assert mx.vmap(lambda a: mx.conv2d(a, w))(mx.ones((0, 1, 5, 5, 2))).shape == (0, 1, 3, 3, 3)
    assert mx.vmap(lambda b: mx.conv2d(mx.ones((1, 5, 5, 2)), b))(mx.ones((0, 3, 3, 3, 2))).shape == (0, 1, 3, 3, 3)
    g = mx.vmap(mx.grad(lambda b, x: mx.conv2d(x, b).sum()), in_axes=(None, 0))(w, mx.ones((0, 1, 5, 5, 2)))
    assert g.shape == (0, 3, 3, 3, 2)


def test_zero_sized_kernel_is_an_error():
    with pytest.raises(ValueError, match=r"^\[conv2d\] The kernel's spatial sizes must be positive"):
        mx.conv2d(mx.zeros((1, 5, 5, 3)), mx.zeros((2, 0, 3, 3)))


@pytest.mark.parametrize("n,padding", [(1, 3), (4, 0), (3, 2)])
def test_native_gradients_with_padding_match_a_padded_valid_convolution(n, padding):
    """The nodes' own padding (input and weight gradients scatter/gather only inside the
    input) agrees with padding the input first and convolving without any."""
    x = mx.array(RNG.standard_normal((n, 7, 6, 4)))
    w = mx.array(RNG.standard_normal((5, 3, 2, 4)))
    ct = mx.array(RNG.standard_normal(mx.conv2d(x, w, padding=padding, stride=(2, 1)).shape))
    _, (dx, dw) = mx.vjp(lambda a, b: mx.conv2d(a, b, padding=padding, stride=(2, 1)), [x, w], [ct])
    pad = [(0, 0), (padding, padding), (padding, padding), (0, 0)]
    _, (dxp, dwp) = mx.vjp(lambda a, b: mx.conv2d(mx.pad(a, pad), b, stride=(2, 1)), [x, w], [ct])
    np.testing.assert_allclose(np.array(dx), np.array(dxp), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.array(dw), np.array(dwp), rtol=1e-5, atol=1e-5)
