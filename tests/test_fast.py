"""oxmx.core.fast: the fused kernels against three references.

* the composite formula ``oxmx.core._fast_composite`` (the kernel must equal it up to float
  rounding: one ulp of the result dtype, float32 accumulation-order differences);
* NumPy float64 formulas written here from the documented definitions;
* real MLX's ``mlx.core.fast`` (skipped without MLX).

Then gradients (vjp/jvp/grad/vmap against central finite differences in float64 and
against MLX), second-order gradients, ``compile``, every argument check and the GPU-only
kernel factories. Nothing here names a device: on the GPU machine the same tests run with
the GPU as the default device.
"""

import numpy as np
import pytest

import oxmx.core as mx
from oxmx.core import _fast_composite as comp
from oxmx_testing import npdt

FLOATS = ["float32", "float16", "bfloat16", "float64"]
INTS = ["uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64"]
# |got - want| <= tol * (1 + |want|): the kernel against the composite formula (rounding
# of the result, float32 accumulation order), against float64 NumPy, against MLX (whose
# fast functions compute float64 inputs with float32 precision, and whose CPU reduces
# half-precision rows in half precision)
TOL_COMP = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2, "float64": 1e-12}
TOL_REF = {"float32": 3e-5, "float16": 2e-3, "bfloat16": 1.6e-2, "float64": 1e-10}
TOL_MLX = {"float32": 3e-5, "float16": 4e-3, "bfloat16": 3.2e-2, "float64": 3e-5}


# =============================================================================== helpers
def mlx_or_skip():
    return pytest.importorskip("mlx.core")


def rounded(values, dtype):
    """``values`` rounded to ``dtype``, as float64 (the exact inputs the kernels see)."""
    return np.asarray(values, np.float64).astype(npdt(dtype)).astype(np.float64)


def to_fw(m, values, dtype):
    """A ``m`` (oxmx or mlx) array of ``dtype`` holding ``values`` (already rounded)."""
    values = np.asarray(values)
    if dtype == "bfloat16":
        return m.array(values.astype(np.float32)).astype(m.bfloat16)
    if dtype == "bool_":
        return m.array(values.astype(np.bool_))
    return m.array(values.astype(npdt(dtype)), dtype=getattr(m, dtype))


def ox(values, dtype):
    return to_fw(mx, values, dtype)


def rand(rng, shape, dtype, scale=1.0):
    """(oxmx array, its exact float64 values) of normal random numbers."""
    r = rounded(rng.standard_normal(shape) * scale, dtype)
    return ox(r, dtype), r


def to_np(a):
    """Any oxmx/MLX array (or NumPy value) as float64 NumPy."""
    if isinstance(a, np.ndarray):
        return a.astype(np.float64)
    name = str(a.dtype).rsplit(".", 1)[-1]
    if name in ("bfloat16", "float16"):
        a = a.astype(_module_of(a).float32)
    return np.array(a).astype(np.float64)


def _module_of(a):
    if isinstance(a, mx.array):
        return mx
    import mlx.core

    return mlx.core


def dname(dt):
    return str(dt).rsplit(".", 1)[-1]


def assert_close(got, want, tol, what=""):
    """Same shape, same NaN positions, same infinities, finite values within
    ``tol * (1 + |want|)``."""
    g, w = to_np(got), to_np(want)
    assert g.shape == w.shape, f"{what}: shape {g.shape} != {w.shape}"
    assert np.array_equal(np.isnan(g), np.isnan(w)), f"{what}: NaN positions differ\n got {g}\n want {w}"
    inf = np.isinf(g) | np.isinf(w)
    assert np.array_equal(g[inf], w[inf]), f"{what}: infinities differ: {g[inf]} vs {w[inf]}"
    fin = ~(np.isnan(w) | inf)
    err = np.abs(g[fin] - w[fin])
    bound = tol * (1 + np.abs(w[fin]))
    if err.size and not (err <= bound).all():
        i = int(np.argmax(err - bound))
        raise AssertionError(f"{what}: |got - want| = {err[i]:.3g} > {bound[i]:.3g} (got {g[fin][i]!r}, want {w[fin][i]!r})")


# =============================================================================== NumPy references
def rms_norm_ref(x, w, eps):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        y = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
        return y if w is None else y * w


def layer_norm_ref(x, w, b, eps):
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        mean = np.mean(x, axis=-1, keepdims=True)
        y = (x - mean) / np.sqrt(np.mean((x - mean) ** 2, axis=-1, keepdims=True) + eps)
        y = y if w is None else y * w
        return y if b is None else y + b


def rope_ref(x, dims, traditional, base, scale, offset, freqs):
    """Rotation of feature pairs by ``(offset + t) * scale * inv_freq``; ``offset`` an int,
    a 0-d or a (B,) NumPy integer array."""
    t_len, half = x.shape[-2], dims // 2
    inv = base ** (-2.0 * np.arange(half) / dims) if freqs is None else 1.0 / np.asarray(freqs, np.float64)
    off = np.asarray(offset, np.float64)
    if off.ndim == 1:
        pos = np.arange(t_len)[None, :] + off[:, None]
        pos = pos.reshape((off.shape[0],) + (1,) * (x.ndim - 3) + (t_len,))
    else:
        pos = np.arange(t_len) + off
    theta = (pos * scale)[..., None] * inv
    c, s = np.cos(theta), np.sin(theta)
    out = np.array(x, np.float64)
    if traditional:
        x1, x2 = x[..., 0:dims:2], x[..., 1:dims:2]
        out[..., 0:dims:2], out[..., 1:dims:2] = x1 * c - x2 * s, x1 * s + x2 * c
    else:
        x1, x2 = x[..., :half], x[..., half:dims]
        out[..., :half], out[..., half:dims] = x1 * c - x2 * s, x1 * s + x2 * c
    return out


def sdpa_ref(q, k, v, scale, mask=None, sinks=None):
    """softmax(q k^T * scale + mask) v per head, k/v heads shared by groups of query heads;
    boolean masks (and "causal", aligned bottom-right) give excluded keys the lowest
    finite score, as MLX does, so a row without any key left averages the values.""" 
    rep = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        s = q @ np.swapaxes(k, -1, -2) * scale
        tq, tk = s.shape[-2:]
        if isinstance(mask, str):
            allowed = np.arange(tq)[:, None] + (tk - tq) >= np.arange(tk)[None, :]
            s = np.where(allowed, s, np.finfo(np.float64).min)
        elif mask is not None:
            s = np.where(mask, s, np.finfo(np.float64).min) if mask.dtype == np.bool_ else s + mask
        if sinks is not None:
            col = np.broadcast_to(np.asarray(sinks, np.float64).reshape(1, -1, 1, 1), s.shape[:-1] + (1,))
            s = np.concatenate([col, s], axis=-1)
        if s.shape[-1] == 0:
            return np.zeros(q.shape[:-1] + (v.shape[-1],))
        e = np.exp(s - s.max(axis=-1, keepdims=True))
        p = e / e.sum(axis=-1, keepdims=True)
        if sinks is not None:
            p = p[..., 1:]
        return p @ v


def cross_entropy_ref(logits, targets):
    with np.errstate(invalid="ignore", over="ignore"):
        m = logits.max(axis=-1, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        lse = np.log(np.exp(logits - m).sum(axis=-1)) + m[..., 0]
        return lse - np.take_along_axis(logits, targets[..., None].astype(np.int64), axis=-1)[..., 0]


# =============================================================================== rms_norm / layer_norm
NORM_SHAPES = [(1,), (3,), (17,), (4, 1), (2, 33), (3, 130), (2, 3, 17), (2, 1, 3, 33), (1, 2, 2, 3, 130)]
# (function, uses weight, uses bias)
NORM_VARIANTS = {
    "rms": ("rms_norm", False, False),
    "rms_w": ("rms_norm", True, False),
    "ln": ("layer_norm", False, False),
    "ln_w": ("layer_norm", True, False),
    "ln_b": ("layer_norm", False, True),
    "ln_wb": ("layer_norm", True, True),
}


def norm_call(m, variant, x, w, b, eps=1e-5):
    op, _, _ = NORM_VARIANTS[variant]
    if op == "rms_norm":
        return m.fast.rms_norm(x, w, eps)
    return m.fast.layer_norm(x, w, b, eps)


def norm_comp(variant, x, w, b, eps=1e-5):
    op, _, _ = NORM_VARIANTS[variant]
    return comp.rms_norm(x, w, eps) if op == "rms_norm" else comp.layer_norm(x, w, b, eps)


def norm_ref(variant, x, w, b, eps=1e-5):
    op, _, _ = NORM_VARIANTS[variant]
    return rms_norm_ref(x, w, eps) if op == "rms_norm" else layer_norm_ref(x, w, b, eps)


def norm_inputs(rng, variant, shape, dtype):
    _, use_w, use_b = NORM_VARIANTS[variant]
    x, xr = rand(rng, shape, dtype, 2.0)
    w, wr = rand(rng, shape[-1:], dtype) if use_w else (None, None)
    b, br = rand(rng, shape[-1:], dtype) if use_b else (None, None)
    return (x, w, b), (xr, wr, br)


@pytest.mark.parametrize("shape", NORM_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("variant", list(NORM_VARIANTS))
def test_norm_values(variant, dtype, shape):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    (x, w, b), (xr, wr, br) = norm_inputs(rng, variant, shape, dtype)
    got = norm_call(mx, variant, x, w, b)
    assert got.shape == x.shape and got.dtype == x.dtype
    assert_close(got, norm_comp(variant, x, w, b), TOL_COMP[dtype], f"{variant} {dtype} {shape} vs composite")
    assert_close(got, norm_ref(variant, xr, wr, br), TOL_REF[dtype], f"{variant} {dtype} {shape} vs NumPy")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("variant", list(NORM_VARIANTS))
def test_norm_matches_mlx(variant, dtype):
    mlx = mlx_or_skip()
    rng = np.random.default_rng(7)
    for shape in NORM_SHAPES:
        (x, w, b), (xr, wr, br) = norm_inputs(rng, variant, shape, dtype)
        mw = None if wr is None else to_fw(mlx, wr, dtype)
        mb = None if br is None else to_fw(mlx, br, dtype)
        want = norm_call(mlx, variant, to_fw(mlx, xr, dtype), mw, mb)
        got = norm_call(mx, variant, x, w, b)
        assert dname(got.dtype) == dname(want.dtype)
        assert_close(got, want, TOL_MLX[dtype], f"{variant} {dtype} {shape} vs MLX")


@pytest.mark.parametrize("shape", [(0,), (0, 4), (3, 0), (2, 0, 5), (0, 3, 1)], ids=str)
@pytest.mark.parametrize("variant", ["rms_w", "ln_wb", "ln"])
def test_norm_empty(variant, shape):
    rng = np.random.default_rng(0)
    (x, w, b), _ = norm_inputs(rng, variant, shape, "float32")
    got = norm_call(mx, variant, x, w, b)
    mx.eval(got)
    assert got.shape == shape and got.dtype == mx.float32


def _views(x):
    """Non-contiguous arrays with the same values as ``x`` (ndim >= 2 here): the data stored
    transposed, every other element of a wider array, reversed, broadcast rows."""
    xt = mx.swapaxes(mx.contiguous(mx.swapaxes(x, 0, -1)), 0, -1)
    wide = mx.repeat(x, 2, axis=-1)[..., ::2]
    rev = mx.contiguous(x[::-1])[::-1]
    return {"transposed": xt, "strided": wide, "reversed": rev}


@pytest.mark.parametrize("variant", list(NORM_VARIANTS))
def test_norm_non_contiguous(variant):
    rng = np.random.default_rng(3)
    (x, w, b), (xr, wr, br) = norm_inputs(rng, variant, (5, 4, 9), "float32")
    want = norm_ref(variant, xr, wr, br)
    for name, v in _views(x).items():
        assert_close(norm_call(mx, variant, v, w, b), want, TOL_REF["float32"], f"{variant} {name}")
    # a broadcast input (every row the same) and a strided weight/bias
    bx = mx.broadcast_to(x[:1], x.shape)
    assert_close(norm_call(mx, variant, bx, w, b), np.broadcast_to(want[:1], want.shape), TOL_REF["float32"], "broadcast")
    ws = None if w is None else mx.repeat(w, 3)[::3]
    bs = None if b is None else mx.repeat(b, 2)[1::2]
    assert_close(norm_call(mx, variant, x, ws, bs), want, TOL_REF["float32"], f"{variant} strided weight/bias")


def _norm_dtype(x_dt, w_dt, b_dt, op):
    """MLX's result type: that of ``x`` without a weight; ``result_type(x, weight[, bias])``
    with one (a bias alone does not promote); it must be floating."""
    if w_dt is None:
        return x_dt
    ts = [getattr(mx, x_dt), getattr(mx, w_dt)] + ([getattr(mx, b_dt)] if b_dt and op == "layer_norm" else [])
    return dname(mx.result_type(*ts))


@pytest.mark.parametrize("op", ["rms_norm", "layer_norm"])
@pytest.mark.parametrize("x_dt", FLOATS + ["int32", "uint8", "bool_"])
def test_norm_result_dtype_matches_mlx(op, x_dt):
    """Mixed dtypes of x, weight and bias: MLX's result dtype (or its ValueError when
    that is not a floating type), with values of the promoted computation."""
    mlx = mlx_or_skip()
    xr = np.array([[1.0, 2.0, 0.0, 5.0], [3.0, 1.0, 1.0, 2.0]])
    wr, br = np.array([1.0, 2.0, 0.5, 1.0]), np.array([0.0, 1.0, 2.0, -1.0])
    b_opts = [None, "float32", "float16"] if op == "layer_norm" else [None]
    for w_dt in [None, "float32", "float16", "bfloat16", "float64", "int32"]:
        for b_dt in b_opts:
            outs = []
            for m in (mlx, mx):
                w = None if w_dt is None else to_fw(m, wr, w_dt)
                b = None if b_dt is None else to_fw(m, br, b_dt)
                try:
                    r = m.fast.rms_norm(to_fw(m, xr, x_dt), w, 1e-5) if op == "rms_norm" else m.fast.layer_norm(to_fw(m, xr, x_dt), w, b, 1e-5)
                    outs.append((dname(r.dtype), to_np(r)))
                except ValueError as e:
                    outs.append(("ValueError", str(e)))
            label = f"{op}(x {x_dt}, weight {w_dt}, bias {b_dt})"
            assert outs[1][0] == outs[0][0], f"{label}: MLX {outs[0][0]}, oxmx {outs[1][0]} ({outs[1][1] if outs[1][0] == 'ValueError' else ''})"
            if outs[0][0] == "ValueError":
                assert f"[{op}]" in outs[1][1]
            else:
                assert_close(outs[1][1], outs[0][1], TOL_MLX[outs[0][0]], label)


@pytest.mark.parametrize("x_dt", ["int32", "uint8", "int64", "bool_"])
def test_norm_integer_input_with_float_weight(x_dt):
    """Integer/bool inputs are normalised as float32 when the weight is float32 (MLX)."""
    xr = np.array([[1, 2, 0, 5], [3, 1, 1, 0], [1, 1, 1, 1]], np.float64)
    if x_dt == "bool_":
        xr = (xr > 1).astype(np.float64)
    w = mx.array([1.0, 2.0, 0.5, 1.0])
    got = mx.fast.rms_norm(ox(xr, x_dt), w, 1e-5)
    assert got.dtype == mx.float32
    assert_close(got, rms_norm_ref(xr, np.array([1.0, 2.0, 0.5, 1.0]), 1e-5), TOL_REF["float32"])
    got = mx.fast.layer_norm(ox(xr, x_dt), w, None, 1e-5)
    assert got.dtype == mx.float32
    assert_close(got, layer_norm_ref(xr, np.array([1.0, 2.0, 0.5, 1.0]), None, 1e-5), TOL_REF["float32"])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("eps", [0.0, 1e-6, 0.5, 10.0])
def test_norm_eps_and_constant_rows(dtype, eps):
    """eps enters under the square root; rows of zeros (0/0 when eps = 0) and constant rows
    (zero variance: layer_norm gives exactly the bias) agree with the formula."""
    xr = rounded(np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [3.0, 3.0, 3.0, 3.0, 3.0], [1.0, -2.0, 0.5, 4.0, 0.0],
                           [1e3, 1e3 + 1, 1e3 - 1, 1e3, 1e3]]), dtype)
    br = rounded(np.array([0.5, -1.0, 0.0, 2.0, 1.0]), dtype)
    x, b = ox(xr, dtype), ox(br, dtype)
    tol = TOL_COMP[dtype]
    for got, c, want in [
        (mx.fast.rms_norm(x, None, eps), comp.rms_norm(x, None, eps), rms_norm_ref(xr, None, eps)),
        (mx.fast.layer_norm(x, None, b, eps), comp.layer_norm(x, None, b, eps), layer_norm_ref(xr, None, br, eps)),
    ]:
        assert_close(got, c, tol, f"eps={eps} vs composite")
        assert_close(got, want, TOL_REF[dtype], f"eps={eps} vs NumPy")
    if eps > 0:
        np.testing.assert_array_equal(to_np(mx.fast.layer_norm(x, None, b, eps))[1], br)


@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_norm_special_values(dtype, special):
    """NaN/inf in the input or the weight: same NaN/inf positions and values as the
    composite formula (and MLX)."""
    rng = np.random.default_rng(11)
    xr = rounded(rng.standard_normal((3, 6)), dtype)
    xr[1, 2] = special
    wr = rounded(rng.standard_normal(6), dtype)
    wr[4] = special
    x, w = ox(xr, dtype), ox(wr, dtype)
    cases = [
        (mx.fast.rms_norm(x, None, 1e-5), comp.rms_norm(x, None, 1e-5)),
        (mx.fast.rms_norm(x, w, 1e-5), comp.rms_norm(x, w, 1e-5)),
        (mx.fast.layer_norm(x, w, w, 1e-5), comp.layer_norm(x, w, w, 1e-5)),
        (mx.fast.layer_norm(x, None, None, 1e-5), comp.layer_norm(x, None, None, 1e-5)),
    ]
    for got, want in cases:
        assert_close(got, want, TOL_COMP[dtype], f"special {special}")
    try:
        import mlx.core as mlx
    except ImportError:
        return
    mxr, mwr = to_fw(mlx, xr, dtype), to_fw(mlx, wr, dtype)
    assert_close(cases[1][0], mlx.fast.rms_norm(mxr, mwr, 1e-5), TOL_MLX[dtype], "rms vs MLX")
    assert_close(cases[2][0], mlx.fast.layer_norm(mxr, mwr, mwr, 1e-5), TOL_MLX[dtype], "ln vs MLX")


# =============================================================================== rope
# (shape, dims, "base" or "freqs", scale, offset kind); offsets: an int, a negative int, a
# 0-d array, a (B,) array of per-example offsets
ROPE_CASES = [
    ((1, 1, 2), 2, "base", 1.0, 0),
    ((2, 3, 8), 8, "base", 1.0, 5),
    ((2, 3, 8), 4, "base", 1.0, "0d"),
    ((1, 17, 64), 64, "freqs", 1.0, 3),
    ((2, 17, 64), 32, "base", 0.5, "B"),
    ((2, 2, 33, 130), 130, "base", 1.0, "B"),
    ((2, 2, 33, 130), 64, "freqs", 0.25, "0d"),
    ((1, 2, 2, 5, 16), 16, "base", 2.0, 7),
    ((3, 1, 2, 5, 16), 10, "freqs", 1.0, "B"),
    ((3, 4, 1, 128), 128, "base", 1.0, -4),
    ((1, 3, 1, 6), 6, "base", 1.0, 40),
]


def rope_args(m, case, rng_seed=0):
    """The kwargs of ``case`` for framework ``m`` plus their NumPy equivalents."""
    shape, dims, kind, scale, off = case
    r = np.random.default_rng(rng_seed)
    fr = r.uniform(1.0, 200.0, dims // 2).astype(np.float32).astype(np.float64) if kind == "freqs" else None
    if off == "0d":
        off_np = np.array(3)
        off_m = m.array(3)
    elif off == "B":
        off_np = np.arange(shape[0]) * 3 + 1
        off_m = m.array(off_np.astype(np.int32))
    else:
        off_np, off_m = off, off
    kw = dict(traditional=False, base=None if fr is not None else 10000.0, scale=scale, offset=off_m,
              freqs=None if fr is None else m.array(fr.astype(np.float32)))
    ref = dict(base=10000.0, scale=scale, offset=off_np, freqs=fr)
    return dims, kw, ref


@pytest.mark.parametrize("case", ROPE_CASES, ids=lambda c: f"{c[0]}-d{c[1]}-{c[2]}-s{c[3]}-o{c[4]}")
@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_rope_values(dtype, traditional, case):
    rng = np.random.default_rng(case[1])
    x, xr = rand(rng, case[0], dtype)
    dims, kw, ref = rope_args(mx, case)
    kw["traditional"] = traditional
    got = mx.fast.rope(x, dims, **kw)
    assert got.shape == x.shape and got.dtype == x.dtype
    want_c = comp.rope(x, dims, traditional, kw["base"], kw["scale"], kw["offset"], kw["freqs"])
    assert_close(got, want_c, TOL_COMP[dtype], "vs composite")
    want = rope_ref(xr, dims, traditional, ref["base"], ref["scale"], ref["offset"], ref["freqs"])
    assert_close(got, want, TOL_REF[dtype] * (3 if dtype == "float32" else 1), "vs NumPy")
    # the features past dims are untouched, bit for bit
    np.testing.assert_array_equal(to_np(got)[..., dims:], xr[..., dims:])


@pytest.mark.parametrize("traditional", [False, True])
@pytest.mark.parametrize("dtype", FLOATS)
def test_rope_matches_mlx(dtype, traditional):
    mlx = mlx_or_skip()
    rng = np.random.default_rng(2)
    for case in ROPE_CASES:
        xr = rounded(rng.standard_normal(case[0]), dtype)
        outs = []
        for m in (mlx, mx):
            dims, kw, _ = rope_args(m, case)
            kw["traditional"] = traditional
            outs.append(m.fast.rope(to_fw(m, xr, dtype), dims, **kw))
        assert dname(outs[0].dtype) == dname(outs[1].dtype)
        assert_close(outs[1], outs[0], TOL_MLX[dtype], f"{case} vs MLX")


@pytest.mark.parametrize("traditional", [False, True])
def test_rope_offset_forms(traditional):
    """An int, a NumPy int, 0-d arrays of every integer dtype and a (B,) array: each
    example is rotated from its own offset."""
    rng = np.random.default_rng(4)
    x, xr = rand(rng, (3, 2, 5, 8), "float32")
    kw = dict(traditional=traditional, base=500.0, scale=1.0)
    want = [rope_ref(xr[i : i + 1], 8, traditional, 500.0, 1.0, o, None) for i, o in enumerate([2, 0, 9])]
    by_batch = mx.fast.rope(x, 8, offset=mx.array([2, 0, 9]), **kw)
    assert_close(by_batch, np.concatenate(want), TOL_REF["float32"], "(B,) offsets")
    for i, o in enumerate([2, 0, 9]):
        assert_close(mx.fast.rope(x[i : i + 1], 8, offset=o, **kw), want[i], TOL_REF["float32"], "int offset")
    base = mx.fast.rope(x, 8, offset=3, **kw)
    for dt in INTS:
        got = mx.fast.rope(x, 8, offset=mx.array(3, dtype=getattr(mx, dt)), **kw)
        np.testing.assert_array_equal(to_np(got), to_np(base), err_msg=f"0-d {dt} offset")
    np.testing.assert_array_equal(to_np(mx.fast.rope(x, 8, offset=np.int64(3), **kw)), to_np(base))
    for dt in ["int32", "int64", "uint8"]:
        got = mx.fast.rope(x, 8, offset=mx.array([2, 0, 9], dtype=getattr(mx, dt)), **kw)
        np.testing.assert_array_equal(to_np(got), to_np(by_batch), err_msg=f"(B,) {dt} offsets")


def test_rope_base_equals_matching_freqs():
    """``base`` is the special case freqs = base ** (2 i / dims)."""
    x, _ = rand(np.random.default_rng(5), (2, 7, 12), "float32")
    freqs = mx.array((10000.0 ** (np.arange(6) * 2 / 12)).astype(np.float32))
    for trad in (False, True):
        a = mx.fast.rope(x, 12, traditional=trad, base=10000.0, scale=1.0, offset=2)
        b = mx.fast.rope(x, 12, traditional=trad, base=None, scale=1.0, offset=2, freqs=freqs)
        assert_close(a, b, 1e-5)


@pytest.mark.parametrize("freqs_dt", ["float16", "bfloat16", "float64"])
def test_rope_freqs_dtypes(freqs_dt):
    """freqs of any floating dtype: the result keeps the input's dtype and uses the
    frequencies' values."""
    fr = rounded(np.array([1.0, 4.0, 50.0, 300.0]), freqs_dt)
    x, xr = rand(np.random.default_rng(6), (1, 5, 8), "float32")
    got = mx.fast.rope(x, 8, traditional=False, base=None, scale=1.0, offset=1, freqs=ox(fr, freqs_dt))
    assert got.dtype == mx.float32
    assert_close(got, rope_ref(xr, 8, False, None, 1.0, 1, fr), TOL_REF["float32"])


def test_rope_integer_freqs_and_single_offset():
    """As MLX: integer freqs are frequencies like float ones, and a one-element offset
    array applies to every example of the batch."""
    x, _ = rand(np.random.default_rng(6), (3, 5, 8), "float32")
    kw = dict(traditional=False, scale=1.0)
    want = mx.fast.rope(x, 8, base=None, freqs=mx.array([1.0, 4.0, 50.0, 300.0]), offset=2, **kw)
    got = mx.fast.rope(x, 8, base=None, freqs=mx.array([1, 4, 50, 300]), offset=2, **kw)
    assert got.dtype == mx.float32
    assert_close(got, want, 1e-6, "int freqs")
    got = mx.fast.rope(x, 8, base=None, freqs=mx.array([1.0, 4.0, 50.0, 300.0]), offset=mx.array([2]), **kw)
    assert_close(got, want, 1e-6, "(1,) offset for B = 3")


def test_rope_empty_and_single():
    x = mx.zeros((1, 0, 8))
    assert mx.fast.rope(x, 8, traditional=False, base=1e4, scale=1.0, offset=0).shape == (1, 0, 8)
    x = mx.zeros((0, 3, 8))
    out = mx.fast.rope(x, 8, traditional=True, base=1e4, scale=1.0, offset=0)
    mx.eval(out)
    assert out.shape == (0, 3, 8)
    # a (0,) offset array for an empty batch (MLX raises a broadcast error here)
    out = mx.fast.rope(x, 8, traditional=False, base=1e4, scale=1.0, offset=mx.zeros((0,), dtype=mx.int32))
    mx.eval(out)
    assert out.shape == (0, 3, 8)
    # position 0 with offset 0 is the identity
    x, xr = rand(np.random.default_rng(0), (2, 1, 6), "float32")
    np.testing.assert_allclose(to_np(mx.fast.rope(x, 6, traditional=False, base=1e4, scale=1.0, offset=0)), xr, rtol=0, atol=0)


def test_rope_non_contiguous():
    x, xr = rand(np.random.default_rng(8), (3, 4, 5, 10), "float32")
    want = rope_ref(xr, 8, True, 1e4, 1.0, 2, None)
    for name, v in _views(x).items():
        assert_close(mx.fast.rope(v, 8, traditional=True, base=1e4, scale=1.0, offset=2), want, TOL_REF["float32"], name)
    # positions along a transposed axis
    xt = mx.swapaxes(x, 1, 2)  # (3, 5, 4, 10): T = 4
    want_t = rope_ref(np.swapaxes(xr, 1, 2), 8, False, 1e4, 1.0, 1, None)
    assert_close(mx.fast.rope(xt, 8, traditional=False, base=1e4, scale=1.0, offset=1), want_t, TOL_REF["float32"], "swapped")


@pytest.mark.parametrize("special", [np.nan, np.inf])
def test_rope_special_values(special):
    x, xr = rand(np.random.default_rng(9), (1, 2, 3, 8), "float32")
    xr[0, 1, 1, 3] = special
    x = ox(xr, "float32")
    for trad in (False, True):
        got = mx.fast.rope(x, 8, traditional=trad, base=1e4, scale=1.0, offset=1)
        assert_close(got, comp.rope(x, 8, trad, 1e4, 1.0, 1, None), TOL_COMP["float32"])


# =============================================================================== attention
# (B, N_q, N_kv, T_q, T_kv, D_k, D_v)
SDPA_SHAPES = {
    "mha": (1, 2, 2, 5, 5, 64, 64),
    "gqa": (2, 8, 2, 17, 17, 64, 64),
    "mqa": (1, 4, 1, 3, 33, 128, 128),
    "tq<tk": (1, 2, 2, 3, 17, 32, 32),
    "decode": (2, 4, 2, 1, 33, 128, 128),
    "dv!=dk": (1, 2, 1, 5, 9, 64, 32),
    "d256": (1, 2, 2, 4, 7, 256, 256),
    "d300": (1, 2, 2, 4, 5, 300, 300),  # beyond the fused kernel's head size: composite path
    "tiny": (2, 3, 3, 1, 1, 3, 5),
    "long": (1, 1, 1, 130, 130, 16, 16),
}
SDPA_MASKS = ["none", "causal", "bool2", "bool1", "bool3", "bool4", "add2", "add4", "add_inf"]


def make_mask(kind, shape, dtype, rng):
    """A NumPy mask (bool or float64 rounded to ``dtype``) or None/"causal"; random
    boolean masks always keep the diagonal so that no row is empty."""
    b, nq, _, tq, tk, _, _ = shape
    if kind in ("none", "causal"):
        return None if kind == "none" else "causal"
    keep = np.arange(tq)[:, None] + (tk - tq) == np.arange(tk)[None, :]
    if kind.startswith("bool"):
        full = {"bool1": (tk,), "bool2": (tq, tk), "bool3": (nq, tq, tk), "bool4": (b, 1, tq, tk)}[kind]
        m = rng.random(full) > 0.4
        if kind == "bool1":
            m[-1] = True
            return m
        return m | np.broadcast_to(keep, full)
    full = (tq, tk) if kind != "add4" else (b, nq, tq, tk)
    m = rounded(rng.standard_normal(full), dtype)
    if kind == "add_inf":
        m = np.where((rng.random(full) > 0.6) & ~keep, -np.inf, m)
    return m


def sdpa_inputs(rng, shape, dtype, mask_kind, sinks):
    b, nq, nkv, tq, tk, dk, dv = shape
    q = rounded(rng.standard_normal((b, nq, tq, dk)), dtype)
    k = rounded(rng.standard_normal((b, nkv, tk, dk)), dtype)
    v = rounded(rng.standard_normal((b, nkv, tk, dv)), dtype)
    mask = make_mask(mask_kind, shape, dtype, rng)
    s = rounded(rng.standard_normal(nq), dtype) if sinks else None
    return q, k, v, mask, s


def sdpa_call(m, dtype, q, k, v, mask, s, scale):
    if isinstance(mask, np.ndarray):
        mask = to_fw(m, mask, "bool_" if mask.dtype == np.bool_ else dtype)
    s = None if s is None else to_fw(m, s, dtype)
    return m.fast.scaled_dot_product_attention(
        to_fw(m, q, dtype), to_fw(m, k, dtype), to_fw(m, v, dtype), scale=scale, mask=mask, sinks=s
    )


@pytest.mark.parametrize("shape", list(SDPA_SHAPES), ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_sdpa_values(dtype, shape):
    """Every mask kind, with and without sinks: kernel = composite, and = float64 NumPy."""
    dims = SDPA_SHAPES[shape]
    rng = np.random.default_rng(dims[3] * 7 + dims[5])
    scale = dims[5] ** -0.5
    for i, mask_kind in enumerate(SDPA_MASKS):
        sinks = i % 2 == 1
        q, k, v, mask, s = sdpa_inputs(rng, dims, dtype, mask_kind, sinks)
        got = sdpa_call(mx, dtype, q, k, v, mask, s, scale)
        label = f"{shape} {dtype} mask={mask_kind} sinks={sinks}"
        assert got.shape == dims[:2] + (dims[3], dims[6]) and dname(got.dtype) == dtype, label
        m_ox = mask if not isinstance(mask, np.ndarray) else ox(mask, "bool_" if mask.dtype == np.bool_ else dtype)
        c = comp.scaled_dot_product_attention(ox(q, dtype), ox(k, dtype), ox(v, dtype), scale, m_ox, None if s is None else ox(s, dtype))
        assert_close(got, c, TOL_COMP[dtype], label + " vs composite")
        assert_close(got, sdpa_ref(q, k, v, scale, mask, s), TOL_REF[dtype], label + " vs NumPy")


# MLX's CPU attention multiplies in the half type itself (its own error against float64
# NumPy reaches 4e-3 in float16 and 4e-2 in bfloat16 on these inputs)
SDPA_TOL_MLX = {**TOL_MLX, "float16": 1e-2, "bfloat16": 8e-2}


@pytest.mark.parametrize("dtype", FLOATS)
def test_sdpa_matches_mlx(dtype):
    mlx = mlx_or_skip()
    rng = np.random.default_rng(1)
    for shape, dims in SDPA_SHAPES.items():
        for i, mask_kind in enumerate(SDPA_MASKS):
            sinks = (i + len(shape)) % 2 == 1
            q, k, v, mask, s = sdpa_inputs(rng, dims, dtype, mask_kind, sinks)
            want = sdpa_call(mlx, dtype, q, k, v, mask, s, 0.3)
            got = sdpa_call(mx, dtype, q, k, v, mask, s, 0.3)
            assert dname(got.dtype) == dname(want.dtype)
            assert_close(got, want, SDPA_TOL_MLX[dtype], f"{shape} {dtype} mask={mask_kind} sinks={sinks} vs MLX")


def _fully_masked_cases(rng, dtype):
    """(label, q, k, v, mask, sinks): rows that see no key at all."""
    q, k, v = (rounded(rng.standard_normal(s), dtype) for s in [(1, 2, 4, 8), (1, 2, 3, 8), (1, 2, 3, 8)])
    bool_mask = np.array([[False, False, False], [True, False, False], [True, True, True], [False, False, False]])
    add_mask = np.where(bool_mask, 0.0, -np.inf)
    return [
        ("bool", q, k, v, bool_mask, None),
        ("causal T_q > T_kv", q, k, v, "causal", None),
        ("additive -inf", q, k, v, add_mask, None),
        ("bool + sinks", q, k, v, bool_mask, rounded(rng.standard_normal(2), dtype)),
    ]


@pytest.mark.parametrize("dtype", FLOATS)
def test_sdpa_fully_masked_rows_follow_the_composite(dtype):
    rng = np.random.default_rng(12)
    for label, q, k, v, mask, s in _fully_masked_cases(rng, dtype):
        got = sdpa_call(mx, dtype, q, k, v, mask, s, 0.5)
        m_ox = mask if not isinstance(mask, np.ndarray) else ox(mask, "bool_" if mask.dtype == np.bool_ else dtype)
        c = comp.scaled_dot_product_attention(ox(q, dtype), ox(k, dtype), ox(v, dtype), 0.5, m_ox, None if s is None else ox(s, dtype))
        assert_close(got, c, TOL_COMP[dtype], f"{label} vs composite")
        assert_close(got, sdpa_ref(q, k, v, 0.5, mask, s), TOL_REF[dtype], f"{label} vs NumPy")


def test_sdpa_fully_masked_rows_match_mlx():
    """MLX fills excluded scores (boolean masks, "causal") with the lowest finite value, so
    a row that sees no key averages all values (a sink takes all the weight when given);
    an additive -inf row is NaN in both."""
    mlx = mlx_or_skip()
    rng = np.random.default_rng(12)
    for label, q, k, v, mask, s in _fully_masked_cases(rng, "float32"):
        want = sdpa_call(mlx, "float32", q, k, v, mask, s, 0.5)
        got = sdpa_call(mx, "float32", q, k, v, mask, s, 0.5)
        assert_close(got, want, TOL_MLX["float32"], f"{label} vs MLX")


@pytest.mark.parametrize("which", ["q", "k", "v"])
@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_sdpa_special_values(which, special):
    rng = np.random.default_rng(13)
    for mask in (None, "causal"):
        xs = {c: rounded(rng.standard_normal((1, 2, 4, 8)), "float32") for c in "qkv"}
        xs[which][0, 1, 2, 3] = special
        a = [ox(xs[c], "float32") for c in "qkv"]
        got = mx.fast.scaled_dot_product_attention(*a, scale=0.3, mask=mask)
        assert_close(got, comp.scaled_dot_product_attention(*a, 0.3, mask), TOL_COMP["float32"], f"{which}={special} {mask}")
        assert_close(got, sdpa_ref(xs["q"], xs["k"], xs["v"], 0.3, mask), TOL_REF["float32"], f"{which}={special} {mask} NumPy")


@pytest.mark.parametrize("lq,lk", [(200, 200), (150, 230), (230, 150)])
def test_causal_attention_over_many_query_blocks_matches_composite(lq, lk):
    """The CPU scores each block of 64 queries only against the keys its last query
    sees: equal to the composite with more queries than keys (rows that see no key
    average every value), with a NaN in a value row most blocks do not see (0 * NaN is
    NaN everywhere, as the composite), and with a row whose visible scores are all -inf
    (it averages the hidden values). The gradient route too, with its dtype kept."""
    rng = np.random.default_rng(lq + lk)
    q, k, v = (rounded(rng.standard_normal(s), "float32") for s in [(1, 2, lq, 8), (1, 2, lk, 8), (1, 2, lk, 8)])
    cases = {"plain": (q, k, v)}
    vn = v.copy()
    vn[0, 1, min(lk, lq) // 2 + 40 if lk >= lq else lk - 5, 3] = np.nan
    cases["hidden NaN value"] = (q, k, vn)
    qi, ki = q.copy(), k.copy()
    ki[..., 0] = 1.0
    qi[0, 0, lq - 70, :] = 0.0
    qi[0, 0, lq - 70, 0] = -np.inf
    cases["row of -inf scores"] = (qi, ki, v)
    for name, (a, b, c) in cases.items():
        args = [ox(t, "float32") for t in (a, b, c)]
        with mx.stream(mx.cpu):
            got = mx.fast.scaled_dot_product_attention(*args, scale=0.3, mask="causal")
            want = comp.scaled_dot_product_attention(*args, 0.3, "causal", None)
            assert_close(got, want, TOL_COMP["float32"], f"{name} {lq}x{lk}")
    args = [ox(t, "bfloat16") for t in (q, k, v)]
    ct = ox(rng.standard_normal((1, 2, lq, 8)), "bfloat16")
    with mx.stream(mx.cpu):
        f = lambda a, b, c: mx.fast.scaled_dot_product_attention(a, b, c, scale=0.3, mask="causal")  # noqa: E731
        g = lambda a, b, c: comp.scaled_dot_product_attention(a, b, c, 0.3, "causal", None)  # noqa: E731
        got, want = mx.vjp(f, args, [ct])[1], mx.vjp(g, args, [ct])[1]
    for name, x, w in zip("qkv", got, want):
        assert x.dtype == mx.bfloat16
        assert_close(x, w, 6e-2, f"d{name} bfloat16")


def test_attention_gradient_with_another_value_head_size():
    """No mask or causal, value head size unlike the keys': the composite's vjp (the
    native gradient node takes equal head sizes only)."""
    rng = np.random.default_rng(3)
    q, k = (ox(rng.standard_normal((1, 2, 5, 8)), "float32") for _ in range(2))
    v, ct = ox(rng.standard_normal((1, 2, 5, 4)), "float32"), ox(rng.standard_normal((1, 2, 5, 4)), "float32")
    for mask in (None, "causal"):
        f = lambda a, b, c: mx.fast.scaled_dot_product_attention(a, b, c, scale=0.3, mask=mask)  # noqa: E731
        g = lambda a, b, c: comp.scaled_dot_product_attention(a, b, c, 0.3, mask, None)  # noqa: E731
        for x, w in zip(mx.vjp(f, [q, k, v], [ct])[1], mx.vjp(g, [q, k, v], [ct])[1]):
            assert_close(x, w, TOL_COMP["float32"], f"{mask}")


def test_sdpa_special_values_match_mlx():
    """NaN/inf inputs where every row still sees a finite-scored key."""
    mlx = mlx_or_skip()
    rng = np.random.default_rng(14)
    for which in "qkv":
        for special in (np.nan, np.inf, -np.inf):
            xs = [rounded(rng.standard_normal((1, 2, 4, 8)), "float32") for _ in range(3)]
            xs["qkv".index(which)][0, 1, 2, 3] = special
            outs = [m.fast.scaled_dot_product_attention(*[to_fw(m, a, "float32") for a in xs], scale=0.3) for m in (mlx, mx)]
            assert_close(outs[1], outs[0], TOL_MLX["float32"], f"{which}={special}")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("head", [64, 256])
def test_sdpa_masked_key_prefix(dtype, head):
    """Left padding: the first keys (whole tiles of a blocked kernel) hidden from a query,
    by a boolean or an additive -inf mask; only the last keys are visible."""
    rng = np.random.default_rng(head)
    tk = 130
    q, k, v = (rounded(rng.standard_normal(s), dtype) for s in [(2, 2, 3, head), (2, 2, tk, head), (2, 2, tk, head)])
    visible = np.zeros((2, 1, 3, tk), bool)
    visible[0, :, :, -3:] = True  # example 0: 127 padded keys
    visible[1, :, :, 40:] = True  # example 1: 40 padded keys
    for mask in (visible, np.where(visible, 0.0, -np.inf)):
        got = sdpa_call(mx, dtype, q, k, v, mask, None, head ** -0.5)
        m_ox = ox(mask, "bool_" if mask.dtype == np.bool_ else dtype)
        c = comp.scaled_dot_product_attention(ox(q, dtype), ox(k, dtype), ox(v, dtype), head ** -0.5, m_ox, None)
        assert_close(got, c, TOL_COMP[dtype], f"{mask.dtype} vs composite")
        assert_close(got, sdpa_ref(q, k, v, head ** -0.5, mask), TOL_REF[dtype], f"{mask.dtype} vs NumPy")


def test_sdpa_semantics():
    """GQA equals MHA with k/v heads repeated; a decode step (T_q = 1) with the causal mask
    is the last row of full causal attention (bottom-right alignment); T_q < T_kv causal
    rows are the last T_q rows of the square causal attention."""
    rng = np.random.default_rng(15)
    q, _ = rand(rng, (2, 8, 6, 16), "float32")
    k, _ = rand(rng, (2, 2, 6, 16), "float32")
    v, _ = rand(rng, (2, 2, 6, 16), "float32")
    sdpa = mx.fast.scaled_dot_product_attention
    gqa = sdpa(q, k, v, scale=0.25, mask="causal")
    mha = sdpa(q, mx.repeat(k, 4, axis=1), mx.repeat(v, 4, axis=1), scale=0.25, mask="causal")
    assert_close(gqa, mha, 1e-5, "GQA vs tiled MHA")
    assert_close(sdpa(q[:, :, -1:], k, v, scale=0.25, mask="causal"), gqa[:, :, -1:], 1e-5, "decode")
    assert_close(sdpa(q[:, :, -3:], k, v, scale=0.25, mask="causal"), gqa[:, :, -3:], 1e-5, "T_q < T_kv")
    # a boolean mask and the equivalent additive one
    bm = mx.array(rng.random((6, 6)) > 0.3) | mx.eye(6, dtype=mx.bool_)
    am = mx.where(bm, 0.0, -mx.inf)
    assert_close(sdpa(q, k, v, scale=0.25, mask=bm), sdpa(q, k, v, scale=0.25, mask=am), 1e-5, "bool vs additive")


def test_sdpa_empty_and_degenerate():
    sdpa = mx.fast.scaled_dot_product_attention
    z = lambda *s: mx.zeros(s)  # noqa: E731
    for q, k, v, out in [
        (z(0, 2, 3, 8), z(0, 2, 5, 8), z(0, 2, 5, 8), (0, 2, 3, 8)),  # B = 0
        (z(1, 2, 0, 8), z(1, 2, 5, 8), z(1, 2, 5, 8), (1, 2, 0, 8)),  # T_q = 0
        (z(1, 2, 3, 0), z(1, 2, 5, 0), z(1, 2, 5, 4), (1, 2, 3, 4)),  # D = 0: uniform weights
        (z(1, 2, 3, 8), z(1, 2, 5, 8), z(1, 2, 5, 0), (1, 2, 3, 0)),  # D_v = 0
    ]:
        r = sdpa(q, k, v, scale=1.0)
        mx.eval(r)
        assert r.shape == out
    # no keys: the output is 0 (as MLX), with or without sinks or the causal mask
    q = mx.ones((1, 2, 3, 4))
    for kw in ({}, {"mask": "causal"}, {"sinks": mx.zeros((2,))}):
        r = sdpa(q, z(1, 2, 0, 4), z(1, 2, 0, 4), scale=1.0, **kw)
        np.testing.assert_array_equal(to_np(r), np.zeros((1, 2, 3, 4)))
    # D = 0: every key scores 0, the output is the mean of the values
    v = mx.arange(10, dtype=mx.float32).reshape(1, 1, 5, 2)
    r = sdpa(z(1, 1, 2, 0), z(1, 1, 5, 0), v, scale=1.0)
    np.testing.assert_allclose(to_np(r), np.broadcast_to([4.0, 5.0], (1, 1, 2, 2)), rtol=1e-6)


def test_sdpa_mixed_dtypes():
    """The result has result_type(q, k, v); float16 additive masks on float32 inputs, and
    sinks of a narrower type, promote."""
    rng = np.random.default_rng(16)
    qr, kr, vr = (rounded(rng.standard_normal(s), "float16") for s in [(1, 2, 3, 8), (1, 2, 5, 8), (1, 2, 5, 8)])
    sdpa = mx.fast.scaled_dot_product_attention
    for dq, dk, dv, want in [("float16", "float32", "float16", "float32"), ("float16", "bfloat16", "float16", "float32"),
                             ("bfloat16", "bfloat16", "bfloat16", "bfloat16"), ("float32", "float64", "float32", "float64")]:
        got = sdpa(ox(qr, dq), ox(kr, dk), ox(vr, dv), scale=0.4)
        assert dname(got.dtype) == want
        ref = sdpa_ref(rounded(qr, dq), rounded(kr, dk), rounded(vr, dv), 0.4)
        assert_close(got, ref, TOL_REF[want], f"{dq},{dk},{dv}")
    mr = rounded(rng.standard_normal((3, 5)), "float16")
    got = sdpa(ox(qr, "float32"), ox(kr, "float32"), ox(vr, "float32"), scale=0.4, mask=ox(mr, "float16"), sinks=ox(np.zeros(2), "float16"))
    assert got.dtype == mx.float32
    assert_close(got, sdpa_ref(qr, kr, vr, 0.4, mr, np.zeros(2)), TOL_REF["float32"], "f16 mask and sinks")


def test_sdpa_integer_operands_promote():
    """As MLX: the result type is result_type(q, k, v) (an integer query with float keys
    computes in float32); integer additive masks and sinks are promoted like floats."""
    rng = np.random.default_rng(18)
    qr = rng.integers(-2, 3, (1, 2, 3, 4)).astype(np.float64)
    kr, vr = rng.standard_normal((1, 2, 5, 4)), rng.standard_normal((1, 2, 5, 4))
    k, v = ox(kr, "float32"), ox(vr, "float32")
    sdpa = mx.fast.scaled_dot_product_attention
    want = sdpa(ox(qr, "float32"), k, v, scale=0.5)
    got = sdpa(ox(qr, "int32"), k, v, scale=0.5)
    assert got.dtype == mx.float32
    assert_close(got, want, 1e-6, "int q")
    mr = rng.integers(-3, 1, (3, 5)).astype(np.float64)
    want = sdpa(ox(qr, "float32"), k, v, scale=0.5, mask=ox(mr, "float32"), sinks=ox(np.array([1.0, -2.0]), "float32"))
    got = sdpa(ox(qr, "float32"), k, v, scale=0.5, mask=ox(mr, "int32"), sinks=ox(np.array([1, -2]), "int32"))
    assert got.dtype == mx.float32
    assert_close(got, want, 1e-6, "int mask and sinks")


def test_sdpa_non_contiguous():
    rng = np.random.default_rng(17)
    q, qr = rand(rng, (2, 5, 3, 8), "float32")
    sdpa = mx.fast.scaled_dot_product_attention
    want = sdpa_ref(qr, qr * 0.5, qr, 0.3, "causal")
    for name, view in _views(q).items():
        assert_close(sdpa(view, view * 0.5, view, scale=0.3, mask="causal"), want, TOL_REF["float32"], name)
    # heads and time swapped in memory; a transposed mask
    qt = mx.swapaxes(mx.contiguous(mx.swapaxes(q, 1, 2)), 1, 2)
    mr = rng.random((3, 3)) > 0.3
    mr[np.arange(3), np.arange(3)] = True
    mt = mx.swapaxes(mx.array(np.ascontiguousarray(mr.T)), 0, 1)
    assert_close(sdpa(qt, qt, qt, scale=0.3, mask=mt), sdpa_ref(qr, qr, qr, 0.3, mr), TOL_REF["float32"], "transposed mask")


# =============================================================================== cross_entropy
CE_SHAPES = [(1,), (5,), (3, 17), (2, 3, 33), (4, 130), (2, 1, 2, 3, 7), (2, 4097)]


def ce_inputs(rng, shape, dtype, tdt="int32"):
    lr = rounded(rng.standard_normal(shape) * 3, dtype)
    tr = rng.integers(0, shape[-1], shape[:-1])
    return ox(lr, dtype), lr, ox(tr, tdt), tr


@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_values(dtype, shape):
    rng = np.random.default_rng(shape[-1])
    logits, lr, t, tr = ce_inputs(rng, shape, dtype)
    got = mx.fast.cross_entropy(logits, t)
    assert got.shape == shape[:-1] and got.dtype == mx.float32
    assert_close(got, comp.cross_entropy(logits, t), TOL_COMP["float32"], "vs composite")
    assert_close(got, cross_entropy_ref(lr, tr), TOL_REF["float32"], "vs NumPy")


@pytest.mark.parametrize("tdt", INTS)
def test_cross_entropy_target_dtypes(tdt):
    rng = np.random.default_rng(21)
    logits, lr, _, tr = ce_inputs(rng, (4, 3, 9), "float32")
    got = mx.fast.cross_entropy(logits, ox(tr, tdt))
    assert_close(got, cross_entropy_ref(lr, tr), TOL_REF["float32"], tdt)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_matches_mlx(dtype):
    mlx = mlx_or_skip()
    rng = np.random.default_rng(22)
    for shape in CE_SHAPES:
        for tdt in ("int32", "uint8", "int64"):
            lr = rounded(rng.standard_normal(shape) * 3, dtype)
            tr = rng.integers(0, min(shape[-1], 255), shape[:-1])
            outs = [m.fast.cross_entropy(to_fw(m, lr, dtype), to_fw(m, tr, tdt)) for m in (mlx, mx)]
            assert dname(outs[1].dtype) == dname(outs[0].dtype) == "float32"
            # the result is float32, but MLX's CPU sums half-precision rows in their own type
            assert_close(outs[1], outs[0], TOL_MLX[dtype if dtype in ("float16", "bfloat16") else "float32"], f"{shape} {dtype} {tdt}")


@pytest.mark.parametrize("bad", [5, -1, 100, 2**31 - 1])
@pytest.mark.parametrize("tdt", ["int32", "int64", "uint32"])
def test_cross_entropy_out_of_range_target_raises(bad, tdt):
    if bad < 0 and tdt.startswith("u"):
        bad = 2**32 - 1
    logits = mx.zeros((3, 5))
    t = mx.array(np.array([0, bad, 2]).astype(npdt(tdt)))
    with pytest.raises(IndexError, match=r"cross_entropy"):
        mx.eval(mx.fast.cross_entropy(logits, t))
    big = mx.array(np.array([1, 2**63 + 5], dtype=np.uint64))
    with pytest.raises(IndexError):
        mx.eval(mx.fast.cross_entropy(mx.zeros((2, 5)), big))


def test_cross_entropy_empty():
    r = mx.fast.cross_entropy(mx.zeros((0, 5)), mx.zeros((0,), dtype=mx.int32))
    mx.eval(r)
    assert r.shape == (0,) and r.dtype == mx.float32
    r = mx.fast.cross_entropy(mx.zeros((0, 0)), mx.zeros((0,), dtype=mx.int32))
    mx.eval(r)
    assert r.shape == (0,)
    # no classes: every target is out of range
    with pytest.raises(IndexError):
        mx.eval(mx.fast.cross_entropy(mx.zeros((2, 0)), mx.zeros((2,), dtype=mx.int32)))


def test_cross_entropy_special_and_views():
    rng = np.random.default_rng(23)
    lr = rng.standard_normal((4, 6)).astype(np.float32).astype(np.float64)
    lr[0, 1], lr[1, 2], lr[2, 3] = np.nan, np.inf, -np.inf
    tr = np.array([0, 2, 3, 5])
    logits, t = ox(lr, "float32"), mx.array(tr)
    got = mx.fast.cross_entropy(logits, t)
    assert_close(got, comp.cross_entropy(logits, t), TOL_COMP["float32"])
    assert_close(got, cross_entropy_ref(lr, tr), TOL_REF["float32"])
    # the targeted logit at -inf: an infinite loss
    assert to_np(got)[2] == np.inf
    x, xr = rand(rng, (5, 4, 9), "float32")
    tr = rng.integers(0, 5, (9, 4))
    want = cross_entropy_ref(np.swapaxes(xr, 0, 2), tr)
    got = mx.fast.cross_entropy(mx.swapaxes(x, 0, 2), mx.array(tr.T).T)
    assert_close(got, want, TOL_REF["float32"], "transposed logits and targets")
    tr2 = rng.integers(0, 9, (5, 4))
    for name, v in _views(x).items():
        assert_close(mx.fast.cross_entropy(v, mx.array(tr2)), cross_entropy_ref(xr, tr2), TOL_REF["float32"], name)


@pytest.mark.parametrize("dtype", FLOATS)
def test_cross_entropy_gradient_matches_composite(dtype):
    """The native gradient kernel (softmax * g, minus g at the target) against the
    composite's vjp: half types to one ulp of their dtype and float32/float64 to about
    an ulp (its logsumexp sums in another order); rows with an infinite or NaN logit,
    or all -inf, give the composite's NaN pattern; non-contiguous logits."""
    rng = np.random.default_rng(24)
    for shape in [(5,), (3, 17), (2, 3, 33), (2, 4097)]:
        logits, lr, t, _ = ce_inputs(rng, shape, dtype)
        ct = mx.array(rng.standard_normal(shape[:-1]).astype(np.float32))
        fast = mx.grad(lambda l: (mx.fast.cross_entropy(l, t) * ct).sum())(logits)
        slow = mx.grad(lambda l: (comp.cross_entropy(l, t) * ct).sum())(logits)
        assert fast.dtype == logits.dtype and fast.shape == logits.shape
        if dtype in ("float16", "bfloat16"):
            ulp = 2.0 ** -7 if dtype == "bfloat16" else 2.0 ** -10
            np.testing.assert_allclose(to_np(fast), to_np(slow), rtol=ulp, atol=1e-30)
        else:
            np.testing.assert_allclose(to_np(fast), to_np(slow), rtol=1e-6, atol=1e-7)
    lr = np.zeros((5, 4))
    lr[0, 1], lr[1, 2], lr[2] = np.inf, np.nan, -np.inf
    lr[3, 0] = -np.inf
    logits, t = ox(lr, dtype), mx.array([0, 1, 2, 0, 3])
    fast = to_np(mx.grad(lambda l: mx.fast.cross_entropy(l, t).sum())(logits))
    slow = to_np(mx.grad(lambda l: comp.cross_entropy(l, t).sum())(logits))
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    np.testing.assert_allclose(np.nan_to_num(fast), np.nan_to_num(slow), rtol=1e-6, atol=1e-7)
    x, _ = rand(rng, (9, 4, 5), "float32")
    tr = mx.array(rng.integers(0, 9, (5, 4)))
    v = mx.swapaxes(x, 0, 2)
    fast = mx.grad(lambda v: mx.fast.cross_entropy(v, tr).sum())(v)
    slow = mx.grad(lambda v: comp.cross_entropy(v, tr).sum())(v)
    np.testing.assert_allclose(to_np(fast), to_np(slow), rtol=1e-6, atol=1e-7)


# =============================================================================== bit-for-bit: the fused path is taken
def test_public_functions_run_the_fused_kernels():
    """The public functions return exactly what the native kernels compute (so the
    comparisons above test the kernels, not the composite formulas)."""
    from oxmx import _oxmx as native

    rng = np.random.default_rng(30)
    x, _ = rand(rng, (2, 3, 16), "float32")
    w, _ = rand(rng, (16,), "float32")
    off = mx.array(2, dtype=mx.int64)
    pairs = [
        (mx.fast.rms_norm(x, w, 1e-5), native._fast_rms_norm(x, w, 1e-5)),
        (mx.fast.layer_norm(x, w, w, 1e-5), native._fast_layer_norm(x, w, w, 1e-5)),
        (mx.fast.rope(x, 8, traditional=True, base=1e4, scale=0.5, offset=2),
         native._fast_rope(x, 8, True, 1e4, 0.5, off, None)),
        (mx.fast.cross_entropy(x, mx.zeros((2, 3), dtype=mx.int32)), native._fast_cross_entropy(x, mx.zeros((2, 3), dtype=mx.int32))),
    ]
    q = x[None]
    pairs.append((mx.fast.scaled_dot_product_attention(q, q, q, scale=0.25, mask="causal"), native._fast_sdpa(q, q, q, 0.25, True, None, None)))
    for got, want in pairs:
        np.testing.assert_array_equal(to_np(got), to_np(want))


# =============================================================================== transforms
def _pos(rng, s):
    return rng.uniform(1.0, 5.0, s)


# name -> (function of float arrays, [(shape, domain)]) ; every input is differentiable
GRAD_FNS = {
    "rms_norm": (lambda x, w: mx.fast.rms_norm(x, w, 1e-5), [((3, 7), "n"), ((7,), "n")]),
    "rms_norm_noweight": (lambda x: mx.fast.rms_norm(x, None, 1e-3), [((2, 3, 5), "n")]),
    "layer_norm": (lambda x, w, b: mx.fast.layer_norm(x, w, b, 1e-5), [((3, 7), "n"), ((7,), "n"), ((7,), "n")]),
    "layer_norm_bias": (lambda x, b: mx.fast.layer_norm(x, None, b, 1e-5), [((4, 6), "n"), ((6,), "n")]),
    "rope": (lambda x: mx.fast.rope(x, 6, traditional=True, base=100.0, scale=0.5, offset=2), [((2, 3, 4, 8), "n")]),
    "rope_freqs": (lambda x, f: mx.fast.rope(x, 8, traditional=False, base=None, scale=1.0,
                                             offset=mx.array([1, 3]), freqs=f), [((2, 3, 8), "n"), ((4,), "p")]),
    "sdpa": (lambda q, k, v, m, s: mx.fast.scaled_dot_product_attention(q, k, v, scale=0.4, mask=m, sinks=s),
             [((1, 4, 3, 8), "n"), ((1, 2, 5, 8), "n"), ((1, 2, 5, 6), "n"), ((3, 5), "n"), ((4,), "n")]),
    "sdpa_causal": (lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask="causal"),
                    [((2, 2, 4, 8), "n"), ((2, 1, 6, 8), "n"), ((2, 1, 6, 8), "n")]),
    "cross_entropy": (lambda x: mx.fast.cross_entropy(x, mx.array([[0, 6, 3], [1, 1, 2]])), [((2, 3, 7), "n")]),
}
# cross_entropy returns float32 even for float64 logits: its finite differences need a
# larger step and a looser tolerance
FD = {"cross_entropy": (1e-2, 2e-3)}


def grad_inputs(name, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    _, specs = GRAD_FNS[name]
    vals = [(_pos(rng, s) if d == "p" else rng.standard_normal(s)) for s, d in specs]
    if dtype == np.float64:
        return [mx.array(v, dtype=mx.float64) for v in vals], vals
    return [mx.array(v.astype(np.float32)) for v in vals], vals


def _fd_check(name, f, xs, direction_of, what):
    """<derivative, direction> from the transform against central differences of f."""
    h, tol = FD.get(name, (1e-6, 1e-6))
    rng = np.random.default_rng(1)
    out = f(*xs)
    ct = mx.array(rng.standard_normal(out.shape), dtype=out.dtype)
    for i in range(len(xs)):
        d = mx.array(rng.standard_normal(xs[i].shape), dtype=mx.float64)
        plus = [x + h * d if j == i else x for j, x in enumerate(xs)]
        minus = [x - h * d if j == i else x for j, x in enumerate(xs)]
        fd = float(mx.sum((f(*plus).astype(mx.float64) - f(*minus).astype(mx.float64)) * ct)) / (2 * h)
        got = direction_of(xs, ct, i, d)
        assert abs(got - fd) <= tol * (1 + abs(fd)), f"{name} {what} input {i}: {got} vs finite differences {fd}"


@pytest.mark.parametrize("name", list(GRAD_FNS))
def test_vjp_against_finite_differences(name):
    f, _ = GRAD_FNS[name]
    xs, _ = grad_inputs(name)

    def via_vjp(xs, ct, i, d):
        _, g = mx.vjp(f, xs, [ct])
        return float(mx.sum(g[i] * d))

    _fd_check(name, f, xs, via_vjp, "vjp")

    def via_grad(xs, ct, i, d):
        g = mx.grad(lambda *a: mx.sum(f(*a) * ct), argnums=i)(*xs)
        return float(mx.sum(g * d))

    _fd_check(name, f, xs, via_grad, "grad")


@pytest.mark.parametrize("name", list(GRAD_FNS))
def test_jvp_against_finite_differences(name):
    f, _ = GRAD_FNS[name]
    xs, _ = grad_inputs(name)

    def via_jvp(xs, ct, i, d):
        tangents = [d if j == i else mx.zeros_like(x) for j, x in enumerate(xs)]
        _, t = mx.jvp(f, xs, tangents)
        return float(mx.sum(t[0].astype(mx.float64) * ct))

    _fd_check(name, f, xs, via_jvp, "jvp")


def _mlx_fn(name, mlx):
    """The same function written for MLX."""
    fast = mlx.fast
    return {
        "rms_norm": lambda x, w: fast.rms_norm(x, w, 1e-5),
        "rms_norm_noweight": lambda x: fast.rms_norm(x, None, 1e-3),
        "layer_norm": lambda x, w, b: fast.layer_norm(x, w, b, 1e-5),
        "layer_norm_bias": lambda x, b: fast.layer_norm(x, None, b, 1e-5),
        "rope": lambda x: fast.rope(x, 6, traditional=True, base=100.0, scale=0.5, offset=2),
        "rope_freqs": lambda x, f: fast.rope(x, 8, traditional=False, base=None, scale=1.0, offset=mlx.array([1, 3]), freqs=f),
        "sdpa": lambda q, k, v, m, s: fast.scaled_dot_product_attention(q, k, v, scale=0.4, mask=m, sinks=s),
        "sdpa_causal": lambda q, k, v: fast.scaled_dot_product_attention(q, k, v, scale=0.3, mask="causal"),
        "cross_entropy": lambda x: fast.cross_entropy(x, mlx.array([[0, 6, 3], [1, 1, 2]])),
    }[name]


@pytest.mark.parametrize("mode", ["grad", "jvp", "vmap"])
@pytest.mark.parametrize("name", list(GRAD_FNS))
def test_transforms_match_mlx(name, mode):
    mlx = mlx_or_skip()
    _, vals = grad_inputs(name, np.float32, seed=3)
    rng = np.random.default_rng(4)
    outs = []
    for m, f in ((mlx, _mlx_fn(name, mlx)), (mx, GRAD_FNS[name][0])):
        xs = [m.array(v.astype(np.float32)) for v in vals]
        if mode == "grad":
            ct = m.array(rng.standard_normal(f(*xs).shape).astype(np.float32))
            rng = np.random.default_rng(4)
            outs.append(m.grad(lambda *a: m.sum(f(*a) * ct), argnums=tuple(range(len(xs))))(*xs))
        elif mode == "jvp":
            ts = [m.array(np.full(x.shape, 0.5, np.float32) * np.cos(np.arange(x.size)).reshape(x.shape).astype(np.float32)) for x in xs]
            outs.append(m.jvp(f, xs, ts)[1])
        else:
            stacked = [m.stack([x, x * 0.5 + 0.25], axis=0) for x in xs]
            outs.append([m.vmap(f)(*stacked)])
    for i, (want, got) in enumerate(zip(outs[0], outs[1])):
        assert_close(got, want, 1e-4, f"{name} {mode} output {i}")


# vmap over different axes: (name, in_axes, out_axis)
VMAP_CASES = [
    ("rms_norm", (0, None)), ("rms_norm", (1, None)), ("rms_norm", (None, 0)), ("rms_norm", (2, 0)),
    ("rms_norm_noweight", (-1,)), ("rms_norm_noweight", (1,)),
    ("layer_norm", (1, 0, None)), ("layer_norm", (-1, None, None)), ("layer_norm", (None, None, 0)),
    ("rope", (0,)), ("rope", (3,)), ("rope", (-1,)),
    ("rope_freqs", (1, None)), ("rope_freqs", (None, 0)),
    ("sdpa", (0, None, None, None, None)), ("sdpa", (2, None, None, None, None)), ("sdpa", (None, 1, 1, None, None)),
    ("sdpa", (0, 0, 0, 0, 0)), ("sdpa", (None, None, None, 1, 0)),
    ("sdpa_causal", (3, None, None)), ("sdpa_causal", (1, 1, 1)),
    ("cross_entropy", (0,)), ("cross_entropy", (2,)), ("cross_entropy", (-1,)),
]


@pytest.mark.parametrize("name,in_axes", VMAP_CASES, ids=lambda v: str(v))
def test_vmap_over_axes(name, in_axes):
    """vmap over a new axis at each position: the same as calling per example."""
    f, _ = GRAD_FNS[name]
    xs, _ = grad_inputs(name, np.float32, seed=5)
    n = 3
    batched = []
    for x, ax in zip(xs, in_axes):
        if ax is None:
            batched.append(x)
            continue
        examples = [x * (1 + 0.5 * j) + 0.1 * j for j in range(n)]
        batched.append(mx.stack(examples, axis=ax if ax >= 0 else x.ndim + 1 + ax))
    got = mx.vmap(f, in_axes=in_axes)(*batched)
    for j in range(n):
        args = [x if ax is None else mx.take(b, j, axis=ax) for x, b, ax in zip(xs, batched, in_axes)]
        assert_close(got[j], f(*args), TOL_COMP["float32"], f"{name} in_axes={in_axes} example {j}")


@pytest.mark.parametrize("name", ["rms_norm", "layer_norm", "layer_norm_bias"])
def test_second_order_gradients(name):
    """grad of grad (float64) against finite differences of the first gradient."""
    f, _ = GRAD_FNS[name]
    xs, _ = grad_inputs(name, seed=6)
    rng = np.random.default_rng(7)
    ct = mx.array(rng.standard_normal(f(*xs).shape), dtype=mx.float64)
    ct2 = mx.array(rng.standard_normal(xs[0].shape), dtype=mx.float64)

    def g1(*a):
        return mx.grad(lambda *b: mx.sum(f(*b) * ct))(*a)  # d/dx

    def scalar(*a):
        return mx.sum(g1(*a) * ct2)

    h = 1e-5
    for i in range(len(xs)):
        gg = mx.grad(scalar, argnums=i)(*xs)
        d = mx.array(rng.standard_normal(xs[i].shape), dtype=mx.float64)
        plus = [x + h * d if j == i else x for j, x in enumerate(xs)]
        minus = [x - h * d if j == i else x for j, x in enumerate(xs)]
        fd = (float(scalar(*plus)) - float(scalar(*minus))) / (2 * h)
        got = float(mx.sum(gg * d))
        assert abs(got - fd) <= 1e-5 * (1 + abs(fd)), f"{name} second derivative input {i}: {got} vs {fd}"


def test_cross_entropy_gradient_kernel_has_the_composites_transforms():
    """The native gradient kernel's own derivatives, tangents and batching (grad of grad,
    jvp of grad, vmap of grad) go through the composite's vjp: each equals the same
    transform of the composite formula."""
    rng = np.random.default_rng(31)
    x = mx.array(rng.standard_normal((2, 3, 7)), dtype=mx.float64)
    t = mx.array(rng.integers(0, 7, (2, 3)))
    ct = mx.array(rng.standard_normal((2, 3)).astype(np.float32))
    d = mx.array(rng.standard_normal((2, 3, 7)), dtype=mx.float64)
    for ce in (mx.fast.cross_entropy, comp.cross_entropy):
        g1 = lambda l, ce=ce: mx.grad(lambda a: (ce(a, t) * ct).sum())(l)  # noqa: E731
        got = (
            mx.grad(lambda l: (mx.sin(g1(l)) * d).sum())(x),
            mx.jvp(g1, [x], [d])[1][0],
            mx.vmap(g1)(mx.stack([x, 2 * x, -x])),
        )
        if ce is comp.cross_entropy:
            for name, g, w in zip(("grad of grad", "jvp of grad", "vmap of grad"), fast, got):
                assert_close(g, w, 1e-6, name)
        fast = got


@pytest.mark.parametrize("name", ["rms_norm", "layer_norm"])
def test_second_order_gradients_match_mlx(name):
    mlx = mlx_or_skip()
    _, vals = grad_inputs(name, np.float32, seed=8)
    outs = []
    for m, f in ((mlx, _mlx_fn(name, mlx)), (mx, GRAD_FNS[name][0])):
        xs = [m.array(v.astype(np.float32)) for v in vals]
        inner = lambda *a: m.grad(lambda *b: m.sum(f(*b) ** 2))(*a)  # noqa: E731
        outs.append(m.grad(lambda *a: m.sum(m.sin(inner(*a))), argnums=tuple(range(len(xs))))(*xs))
    for want, got in zip(*outs):
        assert_close(got, want, 1e-4, f"{name} grad of grad")


@pytest.mark.parametrize("name", list(GRAD_FNS))
def test_inside_compile(name):
    """compile(f), compile(grad f) and compile(vmap f) give the uncompiled results."""
    f, _ = GRAD_FNS[name]
    xs, _ = grad_inputs(name, np.float32, seed=9)
    assert_close(mx.compile(f)(*xs), f(*xs), 1e-6, "compile")
    loss = lambda *a: mx.sum(f(*a) * f(*a))  # noqa: E731
    argnums = tuple(range(len(xs)))
    for got, want in zip(mx.compile(mx.grad(loss, argnums=argnums))(*xs), mx.grad(loss, argnums=argnums)(*xs)):
        assert_close(got, want, 1e-5, "compile(grad)")
    stacked = [mx.stack([x, x * 2]) for x in xs]
    assert_close(mx.compile(mx.vmap(f))(*stacked), mx.vmap(f)(*stacked), 1e-6, "compile(vmap)")


def test_jvp_with_respect_to_one_input():
    """Forward mode w.r.t. one argument ignores the others' derivatives: rope is linear in
    x, so its jvp is rope of the tangent even where x is infinite (with base or freqs)."""
    xr = np.random.default_rng(10).standard_normal((1, 3, 4)).astype(np.float32)
    xr[0, 1, 0] = np.inf
    x, t = mx.array(xr), mx.array(np.linspace(-1, 1, 12, dtype=np.float32).reshape(1, 3, 4))
    for kw in ({"base": 100.0}, {"base": None, "freqs": mx.array([3.0, 7.0])}):
        f = lambda a: mx.fast.rope(a, 4, traditional=False, scale=1.0, offset=1, **kw)  # noqa: E731
        _, (jt,) = mx.jvp(f, [x], [t])
        assert_close(jt, f(t), 1e-6, f"jvp of rope {kw}")


def test_jvp_with_respect_to_one_input_matches_mlx():
    """Non-finite values in an argument that is held fixed: the same NaN pattern as MLX."""
    mlx = mlx_or_skip()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 2, 4)).astype(np.float32)
    w = rng.standard_normal(4).astype(np.float32)
    x_inf = x.copy()
    x_inf[0, 1, 2] = np.inf
    cases = [  # (function, arguments, index of the one with a tangent)
        (lambda m, a, f: m.fast.rope(a, 4, traditional=False, base=None, scale=1.0, offset=0, freqs=f), [x_inf, np.array([3.0, 7.0], np.float32)], 0),
        (lambda m, a, b: m.fast.rms_norm(a, b, 1e-5), [x_inf, w], 1),
        (lambda m, a, b: m.fast.layer_norm(a, b, None, 1e-5), [x_inf, w], 1),
        (lambda m, q, k, v: m.fast.scaled_dot_product_attention(q, k, v, scale=0.5), [x[None], x_inf[None], x[None]], 2),
    ]
    for i, (f, args, which) in enumerate(cases):
        outs = []
        for m in (mlx, mx):
            xs = [m.array(a) for a in args]

            def g(a, m=m, xs=xs):
                ys = list(xs)
                ys[which] = a
                return f(m, *ys)

            outs.append(m.jvp(g, [xs[which]], [m.ones_like(xs[which])])[1][0])
        assert_close(outs[1], outs[0], 1e-5, f"case {i}")


def test_integer_arguments_get_zero_gradients():
    """vjp w.r.t. cross_entropy's targets and rope's offsets gives zeros (MLX raises for
    the targets and returns arbitrary integers for the offsets); the float argument gets
    its true gradient (softmax - one-hot for cross_entropy)."""
    logits = mx.array(np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32))
    t = mx.array([1, 4])
    _, (gl, gt) = mx.vjp(lambda a, b: mx.fast.cross_entropy(a, b), [logits, t], [mx.ones((2,))])
    sm = np.exp(np.array(logits)) / np.exp(np.array(logits)).sum(-1, keepdims=True)
    sm[np.arange(2), [1, 4]] -= 1
    assert_close(gl, sm, 1e-5, "softmax - onehot")
    assert gt.dtype == t.dtype
    np.testing.assert_array_equal(np.array(gt), [0, 0])
    x, off = mx.ones((2, 3, 4)), mx.array([1, 2])
    rope = lambda a, o: mx.fast.rope(a, 4, traditional=False, base=1e4, scale=1.0, offset=o)  # noqa: E731
    _, (gx, goff) = mx.vjp(rope, [x, off], [mx.ones((2, 3, 4))])
    np.testing.assert_array_equal(np.array(goff), [0, 0])
    assert_close(gx, mx.grad(lambda a: mx.sum(rope(a, off)))(x), 0, "rope vjp vs grad")


# =============================================================================== argument checks
def _t(*s, dt="float32"):
    return mx.ones(s, dtype=getattr(mx, dt))


def _sd(q, k, v, **kw):
    kw.setdefault("scale", 0.5)
    return mx.fast.scaled_dot_product_attention(q, k, v, **kw)


def _rope(x, dims=8, **kw):
    args = dict(traditional=False, base=1e4, scale=1.0, offset=0)
    args.update(kw)
    return mx.fast.rope(x, dims, **args)


# label -> (call, exception type, op named in the message). Each type is the one MLX
# raises for the same call (test_errors_match_mlx).
ERRORS = {
    "rms 0-d": (lambda: mx.fast.rms_norm(_t(), None, 1e-5), ValueError, "rms_norm"),
    "rms weight size": (lambda: mx.fast.rms_norm(_t(2, 4), _t(3), 1e-5), ValueError, "rms_norm"),
    "rms weight 2-d": (lambda: mx.fast.rms_norm(_t(2, 4), _t(1, 4), 1e-5), ValueError, "rms_norm"),
    "rms complex": (lambda: mx.fast.rms_norm(_t(2, 4, dt="complex64"), None, 1e-5), ValueError, "rms_norm"),
    "rms complex weight": (lambda: mx.fast.rms_norm(_t(2, 4), _t(4, dt="complex64"), 1e-5), ValueError, "rms_norm"),
    "rms int no weight": (lambda: mx.fast.rms_norm(_t(2, 4, dt="int32"), None, 1e-5), ValueError, "rms_norm"),
    "rms numpy x": (lambda: mx.fast.rms_norm(np.ones((2, 4), np.float32), None, 1e-5), TypeError, None),
    "rms weight list": (lambda: mx.fast.rms_norm(_t(2, 4), [1.0] * 4, 1e-5), TypeError, None),
    "rms eps None": (lambda: mx.fast.rms_norm(_t(2, 4), None, None), TypeError, None),
    "rms eps str": (lambda: mx.fast.rms_norm(_t(2, 4), None, "1e-5"), TypeError, None),
    "ln 0-d": (lambda: mx.fast.layer_norm(_t(), None, None, 1e-5), ValueError, "layer_norm"),
    "ln weight size": (lambda: mx.fast.layer_norm(_t(2, 4), _t(5), None, 1e-5), ValueError, "layer_norm"),
    "ln bias size": (lambda: mx.fast.layer_norm(_t(2, 4), None, _t(3), 1e-5), ValueError, "layer_norm"),
    "ln bias 2-d": (lambda: mx.fast.layer_norm(_t(2, 4), _t(4), _t(2, 4), 1e-5), ValueError, "layer_norm"),
    "ln int no weight": (lambda: mx.fast.layer_norm(_t(2, 4, dt="int32"), None, _t(4), 1e-5), ValueError, "layer_norm"),
    "ln complex": (lambda: mx.fast.layer_norm(_t(2, 4, dt="complex64"), None, None, 1e-5), ValueError, "layer_norm"),
    "rope 2-d": (lambda: _rope(_t(3, 8)), ValueError, "rope"),
    "rope 1-d": (lambda: _rope(_t(8)), ValueError, "rope"),
    "rope odd dims": (lambda: _rope(_t(1, 3, 8), 5), ValueError, "rope"),
    "rope dims > D": (lambda: _rope(_t(1, 3, 8), 10), ValueError, "rope"),
    "rope dims 0": (lambda: _rope(_t(1, 3, 8), 0), ValueError, "rope"),
    "rope dims < 0": (lambda: _rope(_t(1, 3, 8), -2), ValueError, "rope"),
    "rope base and freqs": (lambda: _rope(_t(1, 3, 8), freqs=_t(4)), ValueError, "rope"),
    "rope neither": (lambda: _rope(_t(1, 3, 8), base=None), ValueError, "rope"),
    "rope freqs size": (lambda: _rope(_t(1, 3, 8), base=None, freqs=_t(3)), ValueError, "rope"),
    "rope freqs 2-d": (lambda: _rope(_t(1, 3, 8), base=None, freqs=_t(1, 4)), ValueError, "rope"),
    "rope int input": (lambda: _rope(_t(1, 3, 8, dt="int32")), ValueError, "rope"),
    "rope float offset array": (lambda: _rope(_t(1, 3, 8), offset=mx.array(1.0)), ValueError, "rope"),
    "rope bool offset array": (lambda: _rope(_t(1, 3, 8), offset=mx.array(True)), ValueError, "rope"),
    "rope 2-d offset": (lambda: _rope(_t(1, 3, 8), offset=mx.array([[1]])), ValueError, "rope"),
    "rope offset length": (lambda: _rope(_t(2, 3, 8), offset=mx.array([1, 2, 3])), ValueError, "rope"),
    "rope float offset": (lambda: _rope(_t(1, 3, 8), offset=1.5), ValueError, "rope"),
    "rope bool offset": (lambda: _rope(_t(1, 3, 8), offset=True), ValueError, "rope"),
    "rope dims float": (lambda: _rope(_t(1, 3, 8), 8.0), TypeError, None),
    "rope missing offset": (lambda: mx.fast.rope(_t(1, 3, 8), 8, traditional=False, base=1e4, scale=1.0), TypeError, None),
    "sdpa q 3-d": (lambda: _sd(_t(2, 3, 8), _t(2, 5, 8), _t(2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa q 5-d": (lambda: _sd(_t(1, 1, 2, 3, 8), _t(1, 1, 2, 5, 8), _t(1, 1, 2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa k 3-d": (lambda: _sd(_t(1, 2, 3, 8), _t(2, 5, 8), _t(1, 2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa D_q != D_k": (lambda: _sd(_t(1, 2, 3, 16), _t(1, 2, 5, 8), _t(1, 2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa T_k != T_v": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 4, 8)), ValueError, None),
    "sdpa N_k != N_v": (lambda: _sd(_t(1, 4, 3, 8), _t(1, 2, 5, 8), _t(1, 1, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa batch": (lambda: _sd(_t(2, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa batch k/v": (lambda: _sd(_t(2, 2, 3, 8), _t(2, 2, 5, 8), _t(1, 2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa heads": (lambda: _sd(_t(1, 3, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8)), ValueError, "scaled_dot_product_attention"),
    "sdpa int": (lambda: _sd(_t(1, 2, 3, 8, dt="int32"), _t(1, 2, 5, 8, dt="int32"), _t(1, 2, 5, 8, dt="int32")), ValueError, "scaled_dot_product_attention"),
    "sdpa complex": (lambda: _sd(*[_t(1, 1, 2, 4, dt="complex64")] * 3), ValueError, "scaled_dot_product_attention"),
    "sdpa q list": (lambda: _sd([[[[1.0]]]], _t(1, 1, 5, 1), _t(1, 1, 5, 1)), TypeError, None),
    "sdpa scale str": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), scale="0.5"), TypeError, None),
    "sdpa mask string": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), mask="full"), ValueError, "scaled_dot_product_attention"),
    "sdpa mask list": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), mask=[[True]]), TypeError, None),
    "sdpa mask 5-d": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), mask=_t(1, 1, 2, 3, 5, dt="bool_")), ValueError, "scaled_dot_product_attention"),
    "sdpa mask shape": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), mask=_t(3, 4, dt="bool_")), ValueError, None),
    "sdpa mask too big": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), mask=_t(2, 2, 3, 5)), ValueError, None),
    "sdpa mask f64 on f32": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), mask=_t(3, 5, dt="float64")), ValueError, "scaled_dot_product_attention"),
    "sdpa mask f32 on f16": (lambda: _sd(*[_t(1, 2, 3, 8, dt="float16")] * 3, mask=_t(3, 3)), ValueError, "scaled_dot_product_attention"),
    "sdpa mask bf16 on f16": (lambda: _sd(*[_t(1, 2, 3, 8, dt="float16")] * 3, mask=_t(3, 3, dt="bfloat16")), ValueError, "scaled_dot_product_attention"),
    "sdpa sinks size": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), sinks=_t(3)), ValueError, "scaled_dot_product_attention"),
    "sdpa sinks 2-d": (lambda: _sd(_t(1, 2, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), sinks=_t(1, 2)), ValueError, "scaled_dot_product_attention"),
    "sdpa sinks of k/v heads": (lambda: _sd(_t(1, 4, 3, 8), _t(1, 2, 5, 8), _t(1, 2, 5, 8), sinks=_t(2)), ValueError, "scaled_dot_product_attention"),
    "sdpa sinks f32 on f16": (lambda: _sd(*[_t(1, 2, 3, 8, dt="float16")] * 3, sinks=_t(2)), ValueError, "scaled_dot_product_attention"),
    "sdpa sinks f64 on f32": (lambda: _sd(*[_t(1, 2, 3, 8)] * 3, sinks=_t(2, dt="float64")), ValueError, "scaled_dot_product_attention"),
    "ce 0-d": (lambda: mx.fast.cross_entropy(_t(), mx.array(1)), ValueError, "cross_entropy"),
    "ce int logits": (lambda: mx.fast.cross_entropy(_t(2, 5, dt="int32"), mx.array([1, 2])), ValueError, "cross_entropy"),
    "ce float targets": (lambda: mx.fast.cross_entropy(_t(2, 5), mx.array([1.0, 2.0])), ValueError, "cross_entropy"),
    "ce bool targets": (lambda: mx.fast.cross_entropy(_t(2, 5), mx.array([True, False])), ValueError, "cross_entropy"),
    "ce targets shape": (lambda: mx.fast.cross_entropy(_t(2, 5), mx.array([1, 2, 3])), ValueError, "cross_entropy"),
    "ce targets 0-d": (lambda: mx.fast.cross_entropy(_t(2, 5), mx.array(1)), ValueError, "cross_entropy"),
    "ce targets list": (lambda: mx.fast.cross_entropy(_t(2, 5), [1, 2]), TypeError, None),
    "ce logits numpy": (lambda: mx.fast.cross_entropy(np.ones((2, 5), np.float32), mx.array([1, 2])), TypeError, None),
}


@pytest.mark.parametrize("label", list(ERRORS))
def test_errors(label):
    fn, exc, op = ERRORS[label]
    with pytest.raises(exc) as info:
        mx.eval(fn())
    if op is not None:
        assert f"[{op}]" in str(info.value), str(info.value)


def _as_mlx(fn, mlx):
    """Run an ERRORS call with MLX: rebind the module-level helpers to MLX."""
    g = dict(fn.__globals__)
    g["mx"] = mlx
    g["_t"] = lambda *s, dt="float32": mlx.ones(s, dtype=getattr(mlx, dt))
    g["_sd"] = lambda q, k, v, **kw: mlx.fast.scaled_dot_product_attention(q, k, v, **{"scale": 0.5, **kw})

    def rope(x, dims=8, **kw):
        args = dict(traditional=False, base=1e4, scale=1.0, offset=0)
        args.update(kw)
        return mlx.fast.rope(x, dims, **args)

    g["_rope"] = rope
    import types

    return types.FunctionType(fn.__code__, g)


@pytest.mark.parametrize("label", list(ERRORS))
def test_errors_match_mlx(label):
    mlx = mlx_or_skip()
    fn, exc, _ = ERRORS[label]
    with pytest.raises(exc):
        mlx.eval(_as_mlx(fn, mlx)())


def test_force_fused_without_a_fused_kernel_raises():
    """Head sizes above the fused kernel's limit take the composite path: force_fused=True
    must refuse them (MLX's documented behaviour) and accept fused sizes."""
    q = mx.ones((1, 1, 2, 300))
    with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention\]"):
        mx.eval(mx.fast.scaled_dot_product_attention(q, q, q, scale=1.0, force_fused=True))
    q = mx.ones((1, 1, 2, 64))
    mx.eval(mx.fast.scaled_dot_product_attention(q, q, q, scale=1.0, force_fused=True))


def _launch_custom_kernel(name):
    """Build a trivial custom kernel and launch it on a 4-element input."""
    x = mx.ones((4,))
    common = dict(output_shapes=[(4,)], output_dtypes=[mx.float32], grid=(4, 1, 1), threadgroup=(4, 1, 1))
    if name == "precompiled_cuda_kernel":
        return mx.fast.precompiled_cuda_kernel(name="k", compiled_source=b"", inputs=[x], scalars=[], **common)
    kernel = getattr(mx.fast, name)(name="k", input_names=["a"], output_names=["o"], source="o[0] = a[0];")
    return kernel(inputs=[x], **common)


@pytest.mark.parametrize("name", ["cuda_kernel", "precompiled_cuda_kernel"])
def test_cuda_kernels_need_a_gpu(name):
    """Without a CUDA device, launching a custom kernel raises RuntimeError naming the
    function (MLX: "No CUDA back-end"), before any compilation."""
    if mx.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(RuntimeError, match=rf"\[{name}\]"):
        mx.eval(_launch_custom_kernel(name))


def test_metal_kernel_is_unavailable():
    """MLX builds the kernel object and raises when it is called; oxmx (no Metal) raises
    at once. Either way, no kernel runs."""
    with pytest.raises(RuntimeError, match=r"\[metal_kernel\]"):
        mx.eval(_launch_custom_kernel("metal_kernel"))


def test_fast_namespace():
    """mx.fast exposes MLX's functions and no other public name (helpers it imports stay
    private)."""
    ours = {n for n in dir(mx.fast) if not n.startswith("_")}
    wanted = {"rms_norm", "layer_norm", "rope", "scaled_dot_product_attention", "cross_entropy",
              "cuda_kernel", "precompiled_cuda_kernel", "metal_kernel"}
    assert ours == wanted, f"extra: {sorted(ours - wanted)}, missing: {sorted(wanted - ours)}"


def test_sdpa_zero_kv_heads_is_an_error():
    """MLX dies of SIGFPE on N_kv = 0; oxmx refuses it (N_q must be a multiple of N_kv)."""
    q = mx.zeros((1, 2, 3, 4))
    kv = mx.zeros((1, 0, 5, 4))
    with pytest.raises(ValueError, match="scaled_dot_product_attention"):
        mx.fast.scaled_dot_product_attention(q, kv, kv, scale=1.0)


def test_cross_entropy_grad_kernel_checks_its_inputs():
    from oxmx import _oxmx as native

    logits, t, g = mx.zeros((2, 5)), mx.array([0, 4]), mx.ones((2,))
    assert native._fast_cross_entropy_grad(logits, t, g).shape == (2, 5)
    for bad in [(logits, t.astype(mx.float32), g), (logits, mx.array([0, 1, 2]), g),
                (logits, t, mx.ones((3,))), (mx.zeros((2, 5), mx.int32), t, g), (mx.array(1.0), t, g)]:
        with pytest.raises(ValueError, match=r"\[cross_entropy_grad\]"):
            native._fast_cross_entropy_grad(*bad)
    # a target outside [0, C) contributes no -g (the forward raised for it already)
    got = native._fast_cross_entropy_grad(logits, mx.array([-1, 9]), g)
    np.testing.assert_allclose(to_np(got), np.full((2, 5), 0.2), rtol=1e-6)


def _norm_grad_split(flat, x, has_w, has_b):
    n, size = x.shape[-1], x.size
    got = [flat[:size].reshape(x.shape)]
    if has_w:
        got.append(flat[size:size + n])
    if has_b:
        got.append(flat[flat.size - n:])
    return got


NORM_GRAD_SHAPES = [(3, 7), (2, 3, 16), (1, 1), (5, 1), (40, 33), (1100, 8), (2, 0, 4), (0, 5), (3, 0)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("kind", ["rms", "rms_noweight", "layer", "layer_bias", "layer_none"])
def test_norm_gradient_kernel_matches_composite_vjp(dtype, kind):
    """FastKernel::NormGrad (dx, then dw and db, flattened) against the composite's vjp
    on the CPU: row counts above the kernel's split into tasks (1,100 rows), rows of one
    element, empty axes, non-contiguous inputs; the same bits on a second run."""
    from oxmx import _oxmx as native

    rms = kind.startswith("rms")
    has_w = kind in ("rms", "layer", "layer_bias")
    has_b = kind == "layer_bias"
    rng = np.random.default_rng(41)
    tol = {"float64": 1e-12, "float32": 2e-5, "float16": 4e-3, "bfloat16": 3e-2}[dtype]
    for shape in NORM_GRAD_SHAPES:
        n = shape[-1]
        x, g = (ox(rng.standard_normal(shape) * 2 + 0.5, dtype) for _ in range(2))
        w, b = ox(rng.standard_normal((n,)), dtype), ox(rng.standard_normal((n,)), dtype)
        primals = [x] + ([w] if has_w else []) + ([b] if has_b else [])

        def f(*p):
            it = iter(p)
            xx, ww, bb = next(it), next(it) if has_w else None, next(it) if has_b else None
            return comp.rms_norm(xx, ww, 1e-5) if rms else comp.layer_norm(xx, ww, bb, 1e-5)

        with mx.stream(mx.cpu):
            _, want = mx.vjp(f, primals, [g])
            views = _views(x) if x.ndim >= 2 and x.size else {"contiguous": x}
            for vname, xv in views.items():
                flat = native._fast_norm_grad(xv, w if has_w else None, g, 1e-5, rms, has_b)
                again = native._fast_norm_grad(xv, w if has_w else None, g, 1e-5, rms, has_b)
                mx.eval(flat, again)
                assert flat.dtype == x.dtype and flat.shape == (x.size + n * (has_w + has_b),)
                np.testing.assert_array_equal(np.array(flat.astype(mx.float64)), np.array(again.astype(mx.float64)))
                got = _norm_grad_split(flat, x, has_w, has_b)
                for name, gv, wv in zip(("dx", "dw", "db"), got, want):
                    # sums over rows (dw, db) grow with the row count: compare relative to their scale
                    scale = 1 + np.abs(to_np(wv)).max(initial=0) if name != "dx" else 1
                    np.testing.assert_allclose(to_np(gv), to_np(wv), rtol=tol, atol=tol * scale,
                                               err_msg=f"{kind} {dtype} {shape} {vname} {name}")


def test_norm_gradient_kernel_special_values_and_checks():
    """A NaN or an infinity in a row makes that row's dx NaN (as the composite), leaves
    other rows alone; bad arguments are ValueErrors naming the op."""
    from oxmx import _oxmx as native

    xr = np.random.default_rng(2).standard_normal((4, 6))
    xr[1, 2], xr[2, 0] = np.nan, np.inf
    x, g, w = mx.array(xr), mx.ones((4, 6), dtype=mx.float64), mx.ones((6,), dtype=mx.float64)
    x = x.astype(mx.float64)
    with mx.stream(mx.cpu):
        got = to_np(native._fast_norm_grad(x, w, g, 1e-5, False, True)[:24]).reshape(4, 6)
        _, (want,) = mx.vjp(lambda a: comp.layer_norm(a, w, None, 1e-5), [x], [g])
    want = to_np(want)
    assert np.array_equal(np.isnan(got), np.isnan(want)) and np.isnan(got[1:3]).all()
    np.testing.assert_allclose(got[[0, 3]], want[[0, 3]], rtol=1e-12, atol=1e-12)
    x, g = mx.zeros((2, 5)), mx.ones((2, 5))
    for args, op in [((x, mx.ones((4,)), g, 1e-5, True, False), "rms_norm_grad"),
                     ((x, None, mx.ones((2, 4)), 1e-5, False, False), "layer_norm_grad"),
                     ((x.astype(mx.int32), None, g, 1e-5, False, False), "layer_norm_grad"),
                     ((mx.array(1.0), None, mx.array(1.0), 1e-5, True, False), "rms_norm_grad"),
                     ((x, None, g, 1e-5, True, True), "rms_norm_grad")]:
        with pytest.raises(ValueError, match=rf"\[{op}\]"):
            native._fast_norm_grad(*args)


def test_current_device_follows_stream_blocks():
    from oxmx import _oxmx as native

    assert native._current_device() == mx.default_device()
    with mx.stream(mx.cpu):
        assert native._current_device() == mx.cpu
        with mx.stream(mx.default_stream(mx.cpu)):
            assert native._current_device() == mx.cpu
    assert native._current_device() == mx.default_device()


def test_norm_gradient_kernel_exports_and_compiles(tmp_path):
    from oxmx import _oxmx as native

    rng = np.random.default_rng(6)
    x, g = (ox(rng.standard_normal((5, 12)), "float32") for _ in range(2))
    w = ox(rng.standard_normal((12,)), "float32")
    f = lambda x, w, g: native._fast_norm_grad(x, w, g, 1e-5, False, True)
    with mx.stream(mx.cpu):
        want = f(x, w, g)
        path = str(tmp_path / "norm_grad.mlxfn")
        mx.export_function(path, f, x, w, g)
        (got,) = mx.import_function(path)(x, w, g)
        compiled = mx.compile(f)(x, w, g)
        mx.eval(want, got, compiled)
    np.testing.assert_array_equal(to_np(got), to_np(want))
    np.testing.assert_array_equal(to_np(compiled), to_np(want))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_attention_gradient_kernel_matches_composite_vjp(dtype):
    # FastKernel::SdpaGrad (dq, dk, dv flattened) against the composite's vjp: GQA,
    # causal with fewer, equal and more queries than keys (rows that see no key average
    # every value and pass no gradient to q or k), no mask. The CPU runs this node; the
    # GPU runs it only where cuDNN takes it (tests/test_gpu.py).
    from oxmx import _oxmx as native

    rng = np.random.default_rng(31)
    tol = 1e-5 if dtype == "float32" else 1e-10
    for b, hq, hkv, lq, lk, causal in [(1, 2, 2, 5, 5, True), (2, 4, 2, 7, 7, True), (1, 2, 1, 3, 6, True),
                                       (1, 2, 2, 6, 3, True), (2, 2, 2, 4, 9, False), (1, 3, 1, 1, 4, False)]:
        d, scale = 8, 0.3
        q, k, v, g = (ox(rng.standard_normal(s), dtype) for s in
                      ((b, hq, lq, d), (b, hkv, lk, d), (b, hkv, lk, d), (b, hq, lq, d)))
        mask = "causal" if causal else None
        with mx.stream(mx.cpu):
            f = lambda q, k, v: comp.scaled_dot_product_attention(q, k, v, scale, mask, None)
            o, want = mx.vjp(f, [q, k, v], [g])
            flat = native._fast_sdpa_grad(q, k, v, o[0], g, scale, causal)
            mx.eval(flat)
        assert flat.dtype == q.dtype and flat.shape == (q.size + 2 * k.size,)
        nq, nk = q.size, k.size
        got = [flat[:nq].reshape(q.shape), flat[nq:nq + nk].reshape(k.shape), flat[nq + nk:].reshape(v.shape)]
        for name, x, w in zip("qkv", got, want):
            np.testing.assert_allclose(to_np(x), to_np(w), rtol=tol, atol=tol, err_msg=f"d{name} {(b, hq, hkv, lq, lk, causal)}")


def test_attention_gradient_kernel_checks_its_inputs():
    from oxmx import _oxmx as native

    q, kv = mx.zeros((1, 4, 3, 8)), mx.zeros((1, 2, 5, 8))
    assert native._fast_sdpa_grad(q, kv, kv, q, q, 1.0, False).shape == (q.size + 2 * kv.size,)
    for bad in [(q, mx.zeros((1, 3, 5, 8)), mx.zeros((1, 3, 5, 8)), q, q), (q, kv, kv, kv, q),
                (q, kv, mx.zeros((1, 2, 5, 4)), q, q), (q[0], kv, kv, q, q), (q, kv, kv, q, mx.zeros((1, 4, 3, 4)))]:
        with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention_grad\]"):
            native._fast_sdpa_grad(*bad, 1.0, True)
    with pytest.raises(ValueError, match=r"\[scaled_dot_product_attention_grad\]"):
        native._fast_sdpa_grad(q.astype(mx.int32), kv, kv, q, q, 1.0, True)
    # empty axes: zero gradients of the right size (no queries, no keys, no batch)
    for qs, ks in [((1, 0, 3, 8), (1, 2, 5, 8)), ((1, 4, 0, 8), (1, 2, 5, 8)), ((1, 4, 3, 8), (1, 2, 0, 8)),
                   ((0, 4, 3, 8), (0, 2, 5, 8)), ((1, 4, 3, 0), (1, 2, 5, 0))]:
        e, kk = mx.ones(qs), mx.ones(ks)
        with mx.stream(mx.cpu):
            got = native._fast_sdpa_grad(e, kk, kk, e, e, 1.0, True)
            mx.eval(got)
        assert got.shape == (e.size + 2 * kk.size,) and not to_np(got).any()


def test_attention_gradient_kernel_exports_and_compiles(tmp_path):
    # the SdpaGrad node survives export/import and compile (its codec and rebuild
    # entries): the same values as the direct call
    from oxmx import _oxmx as native

    rng = np.random.default_rng(5)
    q, o, g = (ox(rng.standard_normal((1, 4, 6, 8)), "float32") for _ in range(3))
    k, v = (ox(rng.standard_normal((1, 2, 6, 8)), "float32") for _ in range(2))
    f = lambda q, k, v, o, g: native._fast_sdpa_grad(q, k, v, o, g, 0.35, True)
    with mx.stream(mx.cpu):
        want = f(q, k, v, o, g)
        path = str(tmp_path / "grad.mlxfn")
        mx.export_function(path, f, q, k, v, o, g)
        (got,) = mx.import_function(path)(q, k, v, o, g)
        compiled = mx.compile(f)(q, k, v, o, g)
        mx.eval(want, got, compiled)
    np.testing.assert_array_equal(to_np(got), to_np(want))
    np.testing.assert_array_equal(to_np(compiled), to_np(want))
