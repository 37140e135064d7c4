"""The fused Adam/AdamW step (one kernel per parameter) against its composite formula:
bit for bit in float32 and float64, on contiguous and non-contiguous parameters, inside
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
@pytest.mark.parametrize("dtype", [mx.float32, mx.float64])
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
        np.testing.assert_array_equal(np.array(fused_p[k]), np.array(comp_p[k]))
        for s in ("m", "v"):
            np.testing.assert_array_equal(np.array(fused_s[k][s]), np.array(comp_s[k][s]))
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


def test_half_precision_and_array_betas_take_the_composite(monkeypatch):
    called = []
    real = _fused.adam_step
    monkeypatch.setattr(_fused, "adam_step", lambda *a: called.append(1) or real(*a))
    for dt in (mx.float16, mx.bfloat16):
        optim.Adam(1e-2).apply_gradients({"w": mx.ones((3,), dtype=dt)}, {"w": mx.zeros((3,), dtype=dt)})
    optim.Adam(1e-2, betas=[mx.array(0.9), 0.99]).apply_gradients({"w": mx.ones((3,))}, {"w": mx.zeros((3,))})
    assert not called


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
