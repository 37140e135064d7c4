"""The fused Adam/AdamW step (one kernel per parameter) against its composite formula:
bit for bit in float16, bfloat16, float32 and float64, on contiguous and non-contiguous parameters, inside
compile, and differentiated/batched through the composite."""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.optimizers as optim
from oxmx.optimizers import _fused

CASES = [
    (optim.Adam, {}),
    (optim.Adam, {"bias_correction": True, "betas": [0.8, 0.95], "eps": 1e-6}),
    (optim.AdamW, {}),
    (optim.AdamW, {"bias_correction": True, "weight_decay": 0.1}),
]


def _same(a, b):
    """Equal values, NaNs and signs of zeros (halves compared through their exact float32 values)."""
    a, b = (np.array(x.astype(mx.float32) if x.dtype in (mx.float16, mx.bfloat16) else x) for x in (a, b))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a), np.signbit(b))


def _composite_only(monkeypatch):
    monkeypatch.setattr(_fused, "adam_fusable", lambda *a: False)


def _run(cls, kw, params, grads_seq, lr=1e-2):
    opt = cls(learning_rate=lr, **kw)
    p = params
    for g in grads_seq:
        p = opt.apply_gradients(g, p)
        mx.eval(p, opt.state)
    return p, opt.state


def _data(dtype, seed, view):
    rng = np.random.default_rng(seed)
    shapes = [(6, 5), (7,), (), (0, 3), (3, 1, 4)]
    mk = lambda s: rng.standard_normal(s).astype(np.float64)  # noqa: E731
    raw = [mk(s) for s in shapes]
    grads = [[mk(s) for s in shapes] for _ in range(4)]
    grads[1][0][0, 0] = np.inf  # non-finite gradients propagate the same way
    grads[2][1][2] = np.nan

    def arr(x):
        a = mx.array(x, dtype=dtype)
        if view and a.ndim == 2:
            a = mx.array(np.ascontiguousarray(x.T), dtype=dtype).T  # transposed storage
        return a

    params = {f"w{i}": arr(x) for i, x in enumerate(raw)}
    gseq = [{f"w{i}": arr(x) for i, x in enumerate(gs)} for gs in grads]
    return params, gseq


@pytest.mark.parametrize("cls,kw", CASES)
@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16, mx.float32, mx.float64])
@pytest.mark.parametrize("view", [False, True])
def test_fused_is_bit_identical_to_composite(cls, kw, dtype, view, monkeypatch):
    params, gseq = _data(dtype, 0, view)
    called = []
    real = _fused.adam_step
    monkeypatch.setattr(_fused, "adam_step", lambda *a: called.append(1) or real(*a))
    fused_p, fused_s = _run(cls, kw, params, gseq)
    assert called, "the fused kernel was not used"
    monkeypatch.undo()
    _composite_only(monkeypatch)
    comp_p, comp_s = _run(cls, kw, params, gseq)
    for k in params:
        _same(fused_p[k], comp_p[k])
        for s in ("m", "v"):
            _same(fused_s[k][s], comp_s[k][s])
        assert fused_p[k].dtype == dtype and fused_p[k].shape == params[k].shape


def test_fused_matches_float64_formula():
    rng = np.random.default_rng(1)
    p0, g = rng.standard_normal((4, 9)), rng.standard_normal((3, 4, 9))
    opt = optim.AdamW(learning_rate=0.05, betas=[0.7, 0.9], eps=1e-3, weight_decay=0.2, bias_correction=True)
    p = {"w": mx.array(p0, dtype=mx.float64)}
    m = v = np.zeros_like(p0)
    ref = p0.copy()
    for t in range(1, 4):
        p = opt.apply_gradients({"w": mx.array(g[t - 1], dtype=mx.float64)}, p)
        ref = ref * (1 - 0.05 * 0.2)
        m = 0.7 * m + 0.3 * g[t - 1]
        v = 0.9 * v + 0.1 * g[t - 1] ** 2
        ref = ref - (0.05 / (1 - 0.7**t)) * m / (np.sqrt(v) / np.sqrt(1 - 0.9**t) + 1e-3)
    np.testing.assert_allclose(np.array(p["w"]), ref, rtol=1e-6)


def test_compiled_step_matches_eager():
    params, gseq = _data(mx.float32, 2, False)
    opt = optim.Adam(learning_rate=1e-2, bias_correction=True)
    opt.init(params)
    state = [opt.state]

    def step(p, g):
        return opt.apply_gradients(g, p)

    step = mx.compile(step, inputs=state, outputs=state)
    p = params
    for g in gseq:
        p = step(p, g)
    eager, _ = _run(optim.Adam, {"bias_correction": True}, params, gseq)
    for k in params:
        np.testing.assert_array_equal(np.array(p[k]), np.array(eager[k]))


def test_grad_and_vmap_through_the_step_use_the_composite(monkeypatch):
    def loss(g):
        opt = optim.AdamW(learning_rate=0.1, weight_decay=0.05)
        return (opt.apply_gradients({"w": g}, {"w": mx.ones((3,))})["w"] ** 2).sum()

    g0 = mx.array([0.5, -2.0, 3.0])
    fused = mx.grad(loss)(g0)
    batched = mx.vmap(loss)(mx.stack([g0, 2 * g0]))
    _composite_only(monkeypatch)
    np.testing.assert_allclose(np.array(fused), np.array(mx.grad(loss)(g0)), rtol=1e-6)
    np.testing.assert_allclose(np.array(batched), np.array(mx.vmap(loss)(mx.stack([g0, 2 * g0]))), rtol=1e-6)


def test_array_betas_and_mixed_dtypes_take_the_composite(monkeypatch):
    called = []
    real = _fused.adam_step
    monkeypatch.setattr(_fused, "adam_step", lambda *a: called.append(1) or real(*a))
    optim.Adam(1e-2, betas=[mx.array(0.9), 0.99]).apply_gradients({"w": mx.ones((3,))}, {"w": mx.zeros((3,))})
    # a float32 gradient for a bfloat16 parameter: the composite promotes
    optim.Adam(1e-2).apply_gradients({"w": mx.ones((3,))}, {"w": mx.zeros((3,), dtype=mx.bfloat16)})
    assert not called


@pytest.mark.parametrize("dtype", [mx.float16, mx.bfloat16])
def test_half_step_rounds_like_the_composite_at_extremes(dtype, monkeypatch):
    """Gradients at the half type's edges (tiny, huge, signed zeros, subnormals) over
    many steps: the fused kernel and the composite agree bit for bit."""
    info = np.finfo(np.float16) if dtype == mx.float16 else None
    big = float(info.max) / 4 if info is not None else 1e38
    vals = np.array([0.0, -0.0, 1e-7, -3e-6, 6e-8, 1.0, -1.0, 3.14159, big, -big, 1e-3, 250.0], dtype=np.float64)
    rng = np.random.default_rng(5)
    params = {"w": mx.array(rng.standard_normal(vals.size), dtype=dtype)}
    gseq = [{"w": mx.array(vals * s, dtype=dtype)} for s in (1.0, -0.5, 2.0, 0.25, 1.0, -1.0)]
    kw = {"bias_correction": True, "weight_decay": 0.01}
    fused_p, fused_s = _run(optim.AdamW, kw, params, gseq, lr=3e-3)
    _composite_only(monkeypatch)
    comp_p, comp_s = _run(optim.AdamW, kw, params, gseq, lr=3e-3)
    _same(fused_p["w"], comp_p["w"])
    for s in ("m", "v"):
        _same(fused_s["w"][s], comp_s["w"][s])


def test_native_step_rejects_bad_arguments():
    from oxmx import _oxmx

    x, one = mx.zeros((2, 3)), mx.array(1.0)
    c = (0.9, 0.1, 0.999, 0.001, 1e-8)
    with pytest.raises(ValueError, match=r"\[adam_step\]"):
        _oxmx._fast_adam_step(x, mx.zeros((3, 2)), x, x, one, one, one, c)
    with pytest.raises(ValueError, match=r"\[adam_step\]"):
        _oxmx._fast_adam_step(x, x, x, x, mx.ones((1,)), one, one, c)
    with pytest.raises(ValueError, match=r"\[adam_step\]"):
        h = x.astype(mx.float16)
        _oxmx._fast_adam_step(h, h, h, h, one, one, one, c)
