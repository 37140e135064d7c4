"""oxmx.optimizers against real MLX, torch.optim and NumPy re-implementations.

Every optimizer runs five steps on the same parameter tree and gradients; the tree has
a matrix, a tall matrix (Muon transposes it), a 3-D tensor (Muon flattens it, Adafactor
factors it), a vector, a scalar and an empty module inside a list.
"""

import math

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.optimizers as optim
from oxmx.utils import tree_flatten, tree_unflatten

STEPS = 5

# (optimizer, kwargs): every hyper-parameter of every optimizer is moved at least once.
CONFIGS = [
    ("SGD", dict(learning_rate=0.1)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9)),
    ("SGD", dict(learning_rate=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", dict(learning_rate=0.1, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("RMSprop", dict(learning_rate=0.01)),
    ("RMSprop", dict(learning_rate=0.01, alpha=0.5, eps=1e-3)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("Adagrad", dict(learning_rate=0.1, eps=1e-2)),
    ("AdaDelta", dict(learning_rate=0.5)),
    ("AdaDelta", dict(learning_rate=0.5, rho=0.5, eps=1e-3)),
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, betas=[0.8, 0.9], eps=1e-4, bias_correction=True)),
    ("AdamW", dict(learning_rate=0.01)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.1, bias_correction=True)),
    ("Adamax", dict(learning_rate=0.01)),
    ("Adamax", dict(learning_rate=0.01, betas=[0.5, 0.7], eps=1e-2)),
    ("Lion", dict(learning_rate=0.01)),
    ("Lion", dict(learning_rate=0.01, betas=[0.5, 0.8], weight_decay=0.1)),
    ("Adafactor", dict()),
    ("Adafactor", dict(beta_1=0.9, weight_decay=0.1)),
    ("Adafactor", dict(warmup_init=True)),
    ("Adafactor", dict(learning_rate=0.01, relative_step=False)),
    (
        "Adafactor",
        dict(
            learning_rate=0.05,
            relative_step=False,
            scale_parameter=False,
            clip_threshold=0.5,
            decay_rate=-0.5,
            eps=(1e-20, 1e-2),
        ),
    ),
    ("Muon", dict(learning_rate=0.01)),
    ("Muon", dict(learning_rate=0.01, nesterov=False, momentum=0.5, weight_decay=0.0, ns_steps=3)),
]
IDS = [f"{name}-{i}" for i, (name, _) in enumerate(CONFIGS)]


# ------------------------------------------------------------------ tree helpers


def np_tree(rng, dtype=np.float32):
    """The test parameter (or gradient) tree as NumPy arrays."""
    return {
        "w": rng.standard_normal((4, 6)).astype(dtype),
        "b": rng.standard_normal(6).astype(dtype),
        "layers": [
            {"k": rng.standard_normal((3, 2, 5)).astype(dtype)},
            {},
            {"s": np.asarray(rng.standard_normal(), dtype)},
        ],
        "t": rng.standard_normal((7, 3)).astype(dtype),
    }


def tmap(fn, tree):
    if isinstance(tree, dict):
        return {k: tmap(fn, v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [tmap(fn, v) for v in tree]
    return fn(tree)


def as_np(tree):
    return dict(tree_flatten(tmap(lambda a: np.array(a.astype(mx.float32)) if isinstance(a, mx.array) else a, tree)))


def mlx_to_np(tree):
    from mlx.utils import tree_flatten as mlx_flatten

    import mlx.core as mlx_mx

    return {k: np.array(v.astype(mlx_mx.float32)) for k, v in mlx_flatten(tree)}


def gradient_stream(seed, dtype=np.float32, steps=STEPS):
    rng = np.random.default_rng(seed)
    return [np_tree(rng, dtype) for _ in range(steps)]


def assert_trees_close(actual, expected, rtol, atol, what=""):
    """Leaf by leaf; besides ``atol``, elements may be off by ``rtol`` of the leaf's
    largest magnitude (a moment that cancels to ~0 keeps its neighbours' rounding)."""
    assert actual.keys() == expected.keys(), (what, actual.keys(), expected.keys())
    for key in expected:
        scale = float(np.max(np.abs(expected[key]), initial=0.0))
        np.testing.assert_allclose(
            actual[key], expected[key], rtol=rtol, atol=atol + rtol * scale, err_msg=f"{what} {key}"
        )


def tolerance(name):
    # Adafactor takes means and Muon matmuls: oxmx sums float32 more accurately than
    # MLX's CPU backend (sequential accumulation), so these agree to rounding only.
    return (2e-5, 1e-7) if name in ("Adafactor", "Muon") else (1e-6, 1e-8)


# ------------------------------------------------------------------ vs real MLX


def run_mlx(name, kwargs, params, grads):
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_optim = pytest.importorskip("mlx.optimizers")
    opt = getattr(mlx_optim, name)(**kwargs)
    p = tmap(mlx_mx.array, params)
    history = []
    for g in grads:
        p = opt.apply_gradients(tmap(mlx_mx.array, g), p)
        history.append((mlx_to_np(p), mlx_to_np(opt.state)))
    return history, opt


def run_oxmx(name, kwargs, params, grads):
    opt = getattr(optim, name)(**kwargs)
    p = tmap(mx.array, params)
    history = []
    for g in grads:
        p = opt.apply_gradients(tmap(mx.array, g), p)
        history.append((as_np(p), as_np(opt.state)))
    return history, opt


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_matches_mlx_float32(name, kwargs):
    params = np_tree(np.random.default_rng(0))
    grads = gradient_stream(1)
    expected, mlx_opt = run_mlx(name, kwargs, params, grads)
    actual, opt = run_oxmx(name, kwargs, params, grads)
    rtol, atol = tolerance(name)
    for step, ((p_a, s_a), (p_e, s_e)) in enumerate(zip(actual, expected), 1):
        assert_trees_close(p_a, p_e, rtol, atol, f"params after step {step}")
        assert_trees_close(s_a, s_e, rtol, atol, f"state after step {step}")
    # same state layout and dtypes (step is uint64, hyper-parameters float32)
    from mlx.utils import tree_flatten as mlx_flatten

    ours = {k: str(v.dtype).split(".")[-1] for k, v in tree_flatten(opt.state)}
    theirs = {k: str(v.dtype).split(".")[-1] for k, v in mlx_flatten(mlx_opt.state)}
    assert ours == theirs


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name,kwargs", CONFIGS[::2], ids=IDS[::2])
def test_matches_mlx_half_precision(name, kwargs, dtype):
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_optim = pytest.importorskip("mlx.optimizers")
    params = np_tree(np.random.default_rng(0))
    grads = gradient_stream(1)
    m_opt = getattr(mlx_optim, name)(**kwargs)
    o_opt = getattr(optim, name)(**kwargs)
    m_dt, o_dt = getattr(mlx_mx, dtype), getattr(mx, dtype)
    pm = tmap(lambda a: mlx_mx.array(a).astype(m_dt), params)
    po = tmap(lambda a: mx.array(a).astype(o_dt), params)
    for g in grads:
        pm = m_opt.apply_gradients(tmap(lambda a: mlx_mx.array(a).astype(m_dt), g), pm)
        po = o_opt.apply_gradients(tmap(lambda a: mx.array(a).astype(o_dt), g), po)
    # parameters and state keep the low precision dtype, as in MLX
    for _, leaf in tree_flatten(po):
        assert leaf.dtype == o_dt
    for key, leaf in tree_flatten(o_opt.state):
        if key not in ("step", "learning_rate"):
            assert leaf.dtype == o_dt, key
    # a few units in the last place of the half type, relative to each leaf's scale
    ulp = 2.0**-10 if dtype == "float16" else 2.0**-7
    expected, actual = mlx_to_np(pm), as_np(po)
    assert expected.keys() == actual.keys()
    for key in expected:
        scale = max(1.0, float(np.max(np.abs(expected[key]), initial=0.0)))
        np.testing.assert_allclose(actual[key], expected[key], rtol=0, atol=8 * ulp * scale, err_msg=key)


# ------------------------------------------------------------------ vs NumPy formulas (float64)


def np_update(name, kw, g, p, s, t):
    """One step of the documented update rule in float64; mutates ``s``."""
    lr = kw.get("learning_rate")
    if name == "SGD":
        mom, wd, damp, nest = (kw.get(k, 0.0) for k in ("momentum", "weight_decay", "dampening", "nesterov"))
        g = g + wd * p
        if mom <= 0:
            return p - lr * g
        s["v"] = mom * s.get("v", 0 * p) + (1 - damp) * g
        return p - lr * (g + mom * s["v"] if nest else s["v"])
    if name == "RMSprop":
        a, eps = kw.get("alpha", 0.99), kw.get("eps", 1e-8)
        s["v"] = a * s.get("v", 0 * p) + (1 - a) * g**2
        return p - lr * g / (np.sqrt(s["v"]) + eps)
    if name == "Adagrad":
        s["v"] = s.get("v", 0 * p) + g**2
        return p - lr * g / (np.sqrt(s["v"]) + kw.get("eps", 1e-8))
    if name == "AdaDelta":
        rho, eps = kw.get("rho", 0.9), kw.get("eps", 1e-6)
        v = rho * s.get("v", 0 * p) + (1 - rho) * g**2
        u = s.get("u", 0 * p)
        d = np.sqrt(u + eps) / np.sqrt(v + eps) * g
        s["v"], s["u"] = v, rho * u + (1 - rho) * d**2
        return p - lr * d
    if name in ("Adam", "AdamW"):
        b1, b2 = kw.get("betas", [0.9, 0.999])
        eps = kw.get("eps", 1e-8)
        if name == "AdamW":
            p = p * (1 - lr * kw.get("weight_decay", 0.01))
        s["m"] = b1 * s.get("m", 0 * p) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0 * p) + (1 - b2) * g**2
        if kw.get("bias_correction", False):
            return p - lr / (1 - b1**t) * s["m"] / (np.sqrt(s["v"] / (1 - b2**t)) + eps)
        return p - lr * s["m"] / (np.sqrt(s["v"]) + eps)
    if name == "Adamax":
        b1, b2 = kw.get("betas", [0.9, 0.999])
        s["m"] = b1 * s.get("m", 0 * p) + (1 - b1) * g
        s["v"] = np.maximum(b2 * s.get("v", 0 * p), np.abs(g))
        return p - lr * s["m"] / (s["v"] + kw.get("eps", 1e-8))
    if name == "Lion":
        b1, b2 = kw.get("betas", [0.9, 0.99])
        m = s.get("m", 0 * p)
        c = b1 * m + (1 - b1) * g
        s["m"] = b2 * m + (1 - b2) * g
        return p * (1 - lr * kw.get("weight_decay", 0.0)) - lr * np.sign(c)
    if name == "Adafactor":
        return np_adafactor(kw, g, p, s, t)
    if name == "Muon":
        return np_muon(kw, g, p, s)
    raise AssertionError(name)


def np_adafactor(kw, g, p, s, t):
    eps1, eps2 = kw.get("eps", (1e-30, 1e-3))
    beta_1 = kw.get("beta_1")
    if kw.get("relative_step", True):
        step_size = min(1e-6 * t if kw.get("warmup_init", False) else 1e-2, 1 / math.sqrt(t))
    else:
        step_size = kw["learning_rate"]
    rms = lambda x: np.sqrt(np.mean(x**2))  # noqa: E731
    lr = max(eps2, rms(p)) * step_size if kw.get("scale_parameter", True) else step_size
    beta_2 = 1 - t ** kw.get("decay_rate", -0.8)
    u = g**2 + eps1
    if p.ndim >= 2:
        s["row"] = beta_2 * s.get("row", 0) + (1 - beta_2) * u.mean(-1)
        s["col"] = beta_2 * s.get("col", 0) + (1 - beta_2) * u.mean(-2)
        r = 1 / np.sqrt(s["row"] / s["row"].mean(-1, keepdims=True))
        upd = r[..., :, None] * (1 / np.sqrt(s["col"]))[..., None, :] * g
    else:
        s["v"] = beta_2 * s.get("v", 0) + (1 - beta_2) * u
        upd = g / np.sqrt(s["v"])
    upd = upd / max(1.0, rms(upd) / kw.get("clip_threshold", 1.0)) * lr
    if beta_1 is not None:
        s["m"] = beta_1 * s.get("m", 0) + (1 - beta_1) * upd
        upd = s["m"]
    return p - kw.get("weight_decay", 0.0) * lr * p - upd


def np_newton_schulz(x, steps):
    a, b, c = 3.4445, -4.7750, 2.0315
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = x.T
    x = x / (np.linalg.norm(x) + 1e-7)
    for _ in range(steps):
        A = x @ x.T
        x = a * x + (b * A + c * A @ A) @ x
    return x.T if tall else x


def np_muon(kw, g, p, s):
    lr, mom = kw["learning_rate"], kw.get("momentum", 0.95)
    g = g + kw.get("weight_decay", 0.01) * p
    s["v"] = mom * s.get("v", 0 * p) + (1 - mom) * g
    upd = g * (1 - mom) + s["v"] * mom if kw.get("nesterov", True) else s["v"]
    if upd.ndim >= 2:
        mat = np_newton_schulz(upd.reshape(upd.shape[0], -1), kw.get("ns_steps", 5))
        lr = lr * math.sqrt(max(1.0, mat.shape[0] / mat.shape[1]))
        upd = mat.reshape(upd.shape)
    return p - lr * upd


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_matches_numpy_formula(name, kwargs):
    params = np_tree(np.random.default_rng(2))
    grads = gradient_stream(3)
    _, opt = run_oxmx(name, kwargs, params, [])
    flat_p = {k: v.astype(np.float64) for k, v in tree_flatten(params)}
    states = {k: {} for k in flat_p}
    p_ox = tmap(mx.array, params)
    for t, g in enumerate(grads, 1):
        flat_g = dict(tree_flatten(g))
        flat_p = {k: np_update(name, kwargs, flat_g[k].astype(np.float64), v, states[k], t) for k, v in flat_p.items()}
        p_ox = opt.apply_gradients(tmap(mx.array, g), p_ox)
        actual = as_np(p_ox)
        for key, value in flat_p.items():
            np.testing.assert_allclose(actual[key], value, rtol=2e-5, atol=2e-6, err_msg=f"{key} step {t}")


def test_muon_orthogonalises():
    """Newton-Schulz pushes every singular value of the update into roughly [0.7, 1.2]
    (the quintic's fixed band), whatever the gradient's conditioning."""
    rng = np.random.default_rng(4)
    u, _, vt = np.linalg.svd(rng.standard_normal((8, 5)), full_matrices=False)
    g = (u * np.array([40.0, 20.0, 10.0, 5.0, 3.0])) @ vt  # condition number ~13
    opt = optim.Muon(learning_rate=1.0, momentum=0.0, weight_decay=0.0, nesterov=False)
    p = mx.zeros((8, 5))
    out = opt.apply_gradients({"p": mx.array(g.astype(np.float32))}, {"p": p})["p"]
    # update = -lr * sqrt(8/5) * orth(g)
    sv = np.linalg.svd(-np.array(out) / math.sqrt(8 / 5), compute_uv=False)
    assert np.all(sv > 0.6) and np.all(sv < 1.25), sv


# ------------------------------------------------------------------ vs torch.optim


def torch_run(torch_cls, torch_kwargs, params, grads, ours, prepare=None, per_step=None):
    torch = pytest.importorskip("torch")
    flat_p = dict(tree_flatten(params))
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in flat_p.items()}
    topt = torch_cls(list(tensors.values()), foreach=False, **torch_kwargs)
    if prepare is not None:
        prepare(topt, tensors)
    p_ox = tmap(mx.array, params)
    for t, g in enumerate(grads, 1):
        if per_step is not None:
            per_step(topt, t)
        flat_g = dict(tree_flatten(g))
        for k, tensor in tensors.items():
            tensor.grad = torch.tensor(flat_g[k].copy())
        topt.step()
        p_ox = ours.apply_gradients(tmap(mx.array, g), p_ox)
        actual = as_np(p_ox)
        for k, tensor in tensors.items():
            expected = tensor.detach().numpy()
            np.testing.assert_allclose(actual[k], expected, rtol=2e-6, atol=2e-7, err_msg=f"{k} step {t}")


SGD_TORCH = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, weight_decay=0.05),
    dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.01),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
]


@pytest.mark.parametrize("kw", SGD_TORCH)
def test_sgd_matches_torch(kw):
    torch = pytest.importorskip("torch")
    ours = optim.SGD(
        kw["lr"],
        momentum=kw.get("momentum", 0.0),
        weight_decay=kw.get("weight_decay", 0.0),
        dampening=kw.get("dampening", 0.0),
        nesterov=kw.get("nesterov", False),
    )

    def zero_buffers(topt, tensors):
        # torch starts the momentum buffer at g (ignoring dampening) on the first step,
        # MLX at (1 - dampening) g: a zero buffer makes torch take MLX's first step.
        if kw.get("momentum", 0):
            for t in tensors.values():
                topt.state[t]["momentum_buffer"] = torch.zeros_like(t)

    torch_run(torch.optim.SGD, kw, np_tree(np.random.default_rng(5)), gradient_stream(6), ours, prepare=zero_buffers)


def test_rmsprop_adagrad_adadelta_match_torch():
    torch = pytest.importorskip("torch")
    params, grads = np_tree(np.random.default_rng(7)), gradient_stream(8)
    torch_run(
        torch.optim.RMSprop, dict(lr=0.01, alpha=0.9, eps=1e-6), params, grads, optim.RMSprop(0.01, alpha=0.9, eps=1e-6)
    )
    torch_run(torch.optim.Adagrad, dict(lr=0.1, eps=1e-7), params, grads, optim.Adagrad(0.1, eps=1e-7))
    torch_run(
        torch.optim.Adadelta, dict(lr=0.5, rho=0.8, eps=1e-5), params, grads, optim.AdaDelta(0.5, rho=0.8, eps=1e-5)
    )


def test_adam_adamw_match_torch():
    """torch's Adam always corrects the bias: compare with bias_correction=True (MLX's
    default, False, has no torch counterpart)."""
    torch = pytest.importorskip("torch")
    params, grads = np_tree(np.random.default_rng(9)), gradient_stream(10)
    torch_run(
        torch.optim.Adam,
        dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6),
        params,
        grads,
        optim.Adam(0.01, betas=[0.8, 0.95], eps=1e-6, bias_correction=True),
    )
    torch_run(
        torch.optim.AdamW,
        dict(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
        params,
        grads,
        optim.AdamW(0.01, betas=[0.8, 0.95], eps=1e-6, weight_decay=0.1, bias_correction=True),
    )


def test_adamax_matches_torch():
    """torch's Adamax divides the rate by (1 - beta1^t) and puts eps inside the max;
    MLX does neither. With eps=0 and torch's rate scaled by (1 - beta1^t) each step the
    two rules coincide."""
    torch = pytest.importorskip("torch")
    b1, b2, lr = 0.8, 0.9, 0.01

    def rescale(topt, t):
        topt.param_groups[0]["lr"] = lr * (1 - b1**t)

    torch_run(
        torch.optim.Adamax,
        dict(lr=lr, betas=(b1, b2), eps=0.0),
        np_tree(np.random.default_rng(11)),
        gradient_stream(12),
        optim.Adamax(lr, betas=[b1, b2], eps=0.0),
        per_step=rescale,
    )


# ------------------------------------------------------------------ state and API


def test_initial_state_and_lazy_init():
    opt = optim.Adam(learning_rate=0.1)
    assert set(opt.state) == {"step", "learning_rate"}
    assert opt.step.dtype == mx.uint64 and opt.step.item() == 0
    assert opt.learning_rate.dtype == mx.float32
    np.testing.assert_allclose(opt.learning_rate.item(), 0.1, rtol=1e-7)
    params = {"a": mx.ones((2, 3)), "b": [mx.ones((3,))]}
    opt.apply_gradients({"a": mx.ones((2, 3))}, params)  # only the gradients' keys get state
    assert set(opt.state) == {"step", "learning_rate", "a"}
    assert set(opt.state["a"]) == {"m", "v"}
    assert opt.step.item() == 1


def test_explicit_init_covers_all_parameters():
    opt = optim.SGD(learning_rate=0.1, momentum=0.9)
    params = {"weight": mx.ones((2, 2)), "bias": mx.zeros((2,)), "sub": [{"w": mx.ones((1,))}]}
    opt.init(params)
    assert list(opt.state) == ["step", "learning_rate", "weight", "bias", "sub"]
    assert opt.state["sub"][0]["w"]["v"].shape == (1,)
    assert opt.step.item() == 0
    # init keeps existing state
    opt.state["weight"]["v"] = mx.full((2, 2), 3.0)
    opt.init(params)
    assert opt.state["weight"]["v"].tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_learning_rate_property():
    opt = optim.SGD(learning_rate=0.5)
    opt.learning_rate = 0.25
    assert opt.learning_rate.dtype == mx.float32 and opt.learning_rate.item() == 0.25
    out = opt.apply_gradients({"w": mx.array([2.0])}, {"w": mx.array([1.0])})
    assert out["w"].item() == 0.5
    opt.learning_rate = mx.array(1.0, mx.float16)
    assert opt.learning_rate.dtype == mx.float16
    with pytest.raises(AttributeError):
        opt.step = 3
    with pytest.raises(TypeError, match=r"\[SGD\]"):
        opt.learning_rate = optim.exponential_decay(0.1, 0.5)


def test_scheduled_learning_rate_uses_step_before_increment():
    schedule = optim.exponential_decay(1.0, 0.5)
    opt = optim.SGD(learning_rate=schedule)
    p = {"w": mx.array([0.0])}
    expected = 0.0
    for t in range(4):
        p = opt.apply_gradients({"w": mx.array([1.0])}, p)
        expected -= 0.5**t
        assert opt.learning_rate.item() == 0.5**t
        assert p["w"].item() == expected


def test_custom_optimizer_subclass():
    """The extension points: init_single, apply_single, _maybe_schedule, schedulers=."""

    class SignSGD(optim.Optimizer):
        def __init__(self, learning_rate):
            super().__init__(schedulers={"scale": lambda step: 2.0 ** (-step.astype(mx.float32))})
            self._maybe_schedule("learning_rate", learning_rate)
            self.state["scale"] = mx.array(1.0)

        def init_single(self, parameter, state):
            state["count"] = mx.zeros_like(parameter)

        def apply_single(self, gradient, parameter, state):
            state["count"] = state["count"] + 1
            return parameter - self.learning_rate * self.state["scale"] * mx.sign(gradient)

    opt = SignSGD(learning_rate=1.0)
    p = {"w": mx.array([0.0, 0.0])}
    for _ in range(3):
        p = opt.apply_gradients({"w": mx.array([1.0, -1.0])}, p)
    assert p["w"].tolist() == [-1.75, 1.75]
    assert opt.state["w"]["count"].tolist() == [3.0, 3.0]


def test_update_calls_model_update():
    class Model(dict):
        def update(self, new):
            for key, value in new.items():
                self[key] = value

    model = Model(w=mx.array([1.0, 2.0]), frozen=mx.array([5.0]))
    opt = optim.SGD(learning_rate=0.5)
    opt.update(model, {"w": mx.array([2.0, 2.0])})  # the model is a superset of the gradients
    assert model["w"].tolist() == [0.0, 1.0]
    assert model["frozen"].tolist() == [5.0]


def test_nn_linear_training_step_matches_mlx():
    nn = pytest.importorskip("oxmx.nn")
    if not hasattr(nn, "Linear"):
        pytest.skip("oxmx.nn.Linear is not available yet")
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_nn = pytest.importorskip("mlx.nn")
    mlx_optim = pytest.importorskip("mlx.optimizers")
    from mlx.utils import tree_flatten as mlx_flatten

    rng = np.random.default_rng(13)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    ours, theirs = nn.Linear(3, 2), mlx_nn.Linear(3, 2)
    ours.update(tree_unflatten([(k, mx.array(np.array(v))) for k, v in mlx_flatten(theirs.parameters())]))

    def loss_ours(model, x):
        return mx.sum(mx.square(model(x)))

    def loss_theirs(model, x):
        return mlx_mx.sum(mlx_mx.square(model(x)))

    opt_o = optim.AdamW(learning_rate=0.05, bias_correction=True)
    opt_t = mlx_optim.AdamW(learning_rate=0.05, bias_correction=True)
    for _ in range(3):
        _, g_o = nn.value_and_grad(ours, loss_ours)(ours, mx.array(x))
        opt_o.update(ours, g_o)
        _, g_t = mlx_nn.value_and_grad(theirs, loss_theirs)(theirs, mlx_mx.array(x))
        opt_t.update(theirs, g_t)
    assert_trees_close(as_np(ours.parameters()), mlx_to_np(theirs.parameters()), 1e-5, 1e-7, "Linear")
    assert_trees_close(as_np(opt_o.state), mlx_to_np(opt_t.state), 1e-5, 1e-7, "state")


def test_gradients_subset_of_parameters_and_empty_modules():
    opt = optim.Adam(learning_rate=0.1)
    params = {"a": mx.ones((2,)), "frozen": mx.ones((3,)), "empty": {}, "seq": [{"w": mx.ones((1,))}, {}]}
    grads = {"a": mx.ones((2,)), "empty": {}, "seq": [{"w": mx.ones((1,))}, {}]}
    out = opt.apply_gradients(grads, params)
    assert set(out) == {"a", "empty", "seq"} and out["empty"] == {} and out["seq"][1] == {}
    assert "frozen" not in opt.state


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=IDS)
def test_zero_size_parameters(name, kwargs):
    opt = getattr(optim, name)(**kwargs)
    params = {"a": mx.zeros((0, 3)), "b": mx.zeros((3, 0)), "c": mx.zeros((0,)), "d": mx.ones((2,))}
    for _ in range(2):
        params = opt.apply_gradients({k: mx.ones(v.shape) for k, v in params.items()}, params)
    assert {k: v.shape for k, v in params.items()} == {"a": (0, 3), "b": (3, 0), "c": (0,), "d": (2,)}
    assert np.all(np.isfinite(np.array(params["d"])))


# ------------------------------------------------------------------ save / restore


SAVE_CONFIGS = [
    ("SGD", dict(learning_rate=optim.cosine_decay(0.1, 8), momentum=0.9, nesterov=True)),
    ("Adam", dict(learning_rate=0.01, bias_correction=True)),
    ("AdamW", dict(learning_rate=optim.linear_schedule(0.0, 0.1, 4))),
    ("RMSprop", dict(learning_rate=0.01)),
    ("Adagrad", dict(learning_rate=0.1)),
    ("AdaDelta", dict(learning_rate=0.5)),
    ("Adamax", dict(learning_rate=0.01)),
    ("Lion", dict(learning_rate=0.01, weight_decay=0.1)),
    ("Adafactor", dict(beta_1=0.9)),
    ("Muon", dict(learning_rate=0.01)),
]


@pytest.mark.parametrize("name,kwargs", SAVE_CONFIGS, ids=[c[0] for c in SAVE_CONFIGS])
def test_state_round_trip_through_safetensors(name, kwargs, tmp_path):
    params = np_tree(np.random.default_rng(14))
    grads = [tmap(mx.array, g) for g in gradient_stream(15, steps=6)]
    straight = getattr(optim, name)(**kwargs)
    p_straight = tmap(mx.array, params)
    for g in grads:
        p_straight = straight.apply_gradients(g, p_straight)

    first = getattr(optim, name)(**kwargs)
    p = tmap(mx.array, params)
    for g in grads[:3]:
        p = first.apply_gradients(g, p)
    mx.save_safetensors(str(tmp_path / "opt.safetensors"), dict(tree_flatten(first.state)))

    resumed = getattr(optim, name)(**kwargs)
    resumed.state = tree_unflatten(list(mx.load(str(tmp_path / "opt.safetensors")).items()))
    assert resumed.step.item() == 3 and resumed.step.dtype == mx.uint64
    for g in grads[3:]:
        p = resumed.apply_gradients(g, p)
    a, b = as_np(p), as_np(p_straight)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert_trees_close(as_np(resumed.state), as_np(straight.state), 0, 0, "state")


def saved_sgd_state(tmp_path):
    opt = optim.SGD(learning_rate=0.1, momentum=0.9)
    params = {"a": mx.ones((2,)), "layers": [{"w": mx.ones((2, 3))}, {}, {"w": mx.ones((3,))}]}
    opt.apply_gradients(params, params)
    path = str(tmp_path / "s.safetensors")
    mx.save_safetensors(path, dict(tree_flatten(opt.state)))
    return params, dict(mx.load(path))


@pytest.mark.parametrize(
    "edit,error,pattern",
    [
        (lambda s: s.update({"a.v": mx.ones((5,))}), ValueError, r"\[SGD\].*'a\.v' has shape \(5,\).*needs \(2,\)"),
        (lambda s: s.update({"layers.0.w.v": mx.ones((3, 2))}), ValueError, r"'layers\.0\.w\.v' has shape"),
        (lambda s: s.update({"unknown.v": mx.ones((2,))}), ValueError, r"'unknown' matches no parameter"),
        (lambda s: s.update({"a.m": mx.ones((2,))}), ValueError, r"unknown optimizer state key 'a\.m'"),
        (lambda s: s.pop("learning_rate"), KeyError, r"no 'learning_rate' entry"),
        (lambda s: s.pop("step"), KeyError, r"no 'step' entry"),
    ],
)
def test_bad_restored_state_names_the_key(tmp_path, edit, error, pattern):
    params, flat = saved_sgd_state(tmp_path)
    edit(flat)
    opt = optim.SGD(learning_rate=0.1, momentum=0.9)
    with pytest.raises(error, match=pattern):
        opt.state = tree_unflatten(list(flat.items()))
        opt.apply_gradients(params, params)


def test_restoring_another_optimizers_state_fails(tmp_path):
    params, flat = saved_sgd_state(tmp_path)
    opt = optim.Adam(learning_rate=0.1)
    opt.state = tree_unflatten(list(flat.items()))
    with pytest.raises(KeyError, match=r"\[Adam\] optimizer state 'a\.m' is missing"):
        opt.apply_gradients(params, params)


# ------------------------------------------------------------------ errors


def test_mismatched_gradients_raise_and_leave_state_untouched():
    opt = optim.SGD(learning_rate=0.1, momentum=0.9)
    params = {"a": mx.ones((2,)), "l": [mx.ones((3,))]}
    with pytest.raises(KeyError, match=r"\[SGD\] gradient 'z' has no matching parameter"):
        opt.apply_gradients({"z": mx.ones((2,))}, params)
    with pytest.raises(ValueError, match=r"gradient 'a' has shape \(3,\) but the parameter has shape \(2,\)"):
        opt.apply_gradients({"a": mx.ones((3,))}, params)
    with pytest.raises(ValueError, match=r"gradient 'l\.0' has shape"):
        opt.apply_gradients({"l": [mx.ones((1,))]}, params)
    with pytest.raises(ValueError, match=r"gradients at 'l' do not match"):
        opt.apply_gradients({"l": [mx.ones((3,)), mx.ones((3,))]}, params)
    with pytest.raises(TypeError, match=r"gradient 'a' is a NoneType"):
        opt.apply_gradients({"a": None}, params)
    with pytest.raises(TypeError, match=r"gradients must be a dict"):
        opt.apply_gradients([mx.ones((2,))], params)
    assert set(opt.state) == {"step", "learning_rate"} and opt.step.item() == 0
    # after initialisation a gradient for a parameter without state is reported too
    opt.apply_gradients({"a": mx.ones((2,))}, params)
    with pytest.raises(KeyError, match=r"no optimizer state for 'l'"):
        opt.apply_gradients({"l": [mx.ones((3,))]}, params)
    assert opt.step.item() == 1


def test_parameter_named_like_a_hyper_parameter():
    with pytest.raises(ValueError, match=r"parameter 'step' clashes"):
        optim.SGD(0.1).apply_gradients({"step": mx.ones((2,))}, {"step": mx.ones((2,))})


def test_constructor_errors_match_mlx():
    mlx_optim = pytest.importorskip("mlx.optimizers")
    cases = [
        ("SGD", dict(learning_rate=0.1, nesterov=True)),
        ("SGD", dict(learning_rate=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
        ("Adam", dict(learning_rate=0.1, eps=-1)),
        ("Adam", dict(learning_rate=0.1, betas=[1.0, 0.9])),
        ("AdamW", dict(learning_rate=0.1, betas=[0.9, -0.1])),
        ("Adamax", dict(learning_rate=0.1, eps=-1)),
        ("RMSprop", dict(learning_rate=0.1, alpha=-1)),
        ("RMSprop", dict(learning_rate=0.1, eps=0)),
        ("Adagrad", dict(learning_rate=0.1, eps=0)),
        ("AdaDelta", dict(learning_rate=0.1, rho=-1)),
        ("AdaDelta", dict(learning_rate=0.1, eps=0)),
        ("Lion", dict(learning_rate=0.1, betas=[0.9, 1.0])),
    ]
    for name, kwargs in cases:
        with pytest.raises(ValueError) as theirs:
            getattr(mlx_optim, name)(**kwargs)
        with pytest.raises(ValueError, match=rf"^\[{name}\]") as ours:
            getattr(optim, name)(**kwargs)
        # same complaint, prefixed with the class name
        their_words = str(theirs.value).split(" ", 1)[1] if name != "SGD" else str(theirs.value)
        assert their_words in str(ours.value), (str(ours.value), str(theirs.value))


def test_other_constructor_errors():
    with pytest.raises(ValueError, match=r"\[Adam\] betas must be a pair"):
        optim.Adam(0.1, betas=[0.9])
    with pytest.raises(ValueError, match=r"\[SGD\] invalid learning_rate 'x'"):
        optim.SGD("x")
    with pytest.raises(TypeError, match=r"\[SGD\] learning_rate must be a number"):
        optim.SGD(None)
    with pytest.raises(ValueError, match=r"\[Muon\] ns_steps"):
        optim.Muon(0.1, ns_steps=-1)
    with pytest.raises(ValueError, match=r"\[Adafactor\] eps must be a pair"):
        optim.Adafactor(eps=(1e-30,))


def test_adafactor_learning_rate_modes():
    opt = optim.Adafactor()
    assert "learning_rate" not in opt.state
    with pytest.raises(KeyError, match=r"\[Adafactor\] this optimizer has no learning_rate"):
        opt.learning_rate
    opt = optim.Adafactor(relative_step=False)
    p = {"w": mx.ones((2, 3))}
    with pytest.raises(KeyError, match=r"relative_step=False needs a learning_rate"):
        opt.apply_gradients(p, p)
    assert opt.step.item() == 0
    opt.learning_rate = 0.01  # as in MLX, the rate may be set after construction
    opt.apply_gradients(p, p)
    # factored second moments for ndim >= 2 (batch dims kept), full ones below
    opt = optim.Adafactor(beta_1=0.5)
    opt.init({"m": mx.ones((2, 3, 4)), "v": mx.ones((4,)), "s": mx.array(1.0)})
    shapes = {k: v.shape for k, v in tree_flatten(opt.state) if k != "step"}
    assert shapes == {
        "m.exp_avg_sq_row": (2, 3),
        "m.exp_avg_sq_col": (2, 4),
        "m.exp_avg": (2, 3, 4),
        "v.exp_avg_sq": (4,),
        "v.exp_avg": (4,),
        "s.exp_avg_sq": (),
        "s.exp_avg": (),
    }


# ------------------------------------------------------------------ MultiOptimizer


def make_multi(lib):
    return lib.MultiOptimizer(
        [lib.SGD(0.1, momentum=0.9), lib.Adam(0.01, bias_correction=True), lib.Lion(0.001)],
        [lambda path, g: g.ndim >= 2, lambda path, g: path.startswith("layers")],
    )


def test_multi_optimizer_matches_mlx():
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_optim = pytest.importorskip("mlx.optimizers")
    def without_empty_module(tree):
        # MLX's MultiOptimizer fails to merge its results when a list holds an empty
        # module (test_multi_optimizer_state_and_learning_rate covers that case here).
        tree["layers"] = [tree["layers"][0], tree["layers"][2]]
        return tree

    params = without_empty_module(np_tree(np.random.default_rng(16)))
    ours, theirs = make_multi(optim), make_multi(mlx_optim)
    po, pm = tmap(mx.array, params), tmap(mlx_mx.array, params)
    for g in map(without_empty_module, gradient_stream(17)):
        po = ours.apply_gradients(tmap(mx.array, g), po)
        pm = theirs.apply_gradients(tmap(mlx_mx.array, g), pm)
        assert_trees_close(as_np(po), mlx_to_np(pm), 1e-6, 1e-8, "params")
    assert_trees_close(as_np(ours.state), mlx_to_np(theirs.state), 1e-6, 1e-8, "state")
    # the same split: SGD got the matrices, Adam the rest of layers, Lion b
    assert set(ours.state["states"][0]) == {"step", "learning_rate", "w", "layers", "t"}
    assert set(ours.state["states"][2]) == {"step", "learning_rate", "b"}


def test_multi_optimizer_state_and_learning_rate(tmp_path):
    params = tmap(mx.array, np_tree(np.random.default_rng(18)))
    grads = [tmap(mx.array, g) for g in gradient_stream(19, steps=4)]
    a = make_multi(optim)
    for g in grads[:2]:
        params = a.apply_gradients(g, params)
    # the empty module keeps its place between the two optimizers' parts of the list
    assert len(params["layers"]) == 3 and params["layers"][1] == {}
    assert set(a.state["states"][0]["layers"][0]) == {"k"} and set(a.state["states"][1]["layers"][2]) == {"s"}
    mx.save_safetensors(str(tmp_path / "m.safetensors"), dict(tree_flatten(a.state)))
    b = make_multi(optim)
    b.state = tree_unflatten(list(mx.load(str(tmp_path / "m.safetensors")).items()))
    pa = pb = params
    for g in grads[2:]:
        pa, pb = a.apply_gradients(g, pa), b.apply_gradients(g, pb)
    a_np, b_np = as_np(pa), as_np(pb)
    for key in a_np:
        np.testing.assert_array_equal(a_np[key], b_np[key])
    assert b.step.item() == 4
    b.learning_rate = 0.5
    assert all(o.learning_rate.item() == 0.5 for o in b.optimizers)
    with pytest.raises(KeyError, match=r"\[MultiOptimizer\] gradient 'zz' has no matching parameter"):
        b.apply_gradients({"zz": mx.ones((1,))}, params)
    assert b.step.item() == 4
    with pytest.raises(ValueError, match=r"\[MultiOptimizer\] state must be"):
        b.state = {"states": [{}]}
    with pytest.raises(ValueError, match=r"\[MultiOptimizer\] Given 1 filters but 2 needed"):
        optim.MultiOptimizer([optim.SGD(0.1)] * 3, [lambda p, g: True])
    with pytest.raises(ValueError, match=r"\[MultiOptimizer\] needs at least one"):
        optim.MultiOptimizer([])


def test_multi_optimizer_with_an_idle_optimizer_matches_mlx():
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_optim = pytest.importorskip("mlx.optimizers")

    def make(lib):
        return lib.MultiOptimizer([lib.Adam(0.1), lib.SGD(0.1)], [lambda path, g: path == "nothing"])

    ours, theirs = make(optim), make(mlx_optim)
    p = {"a": np.array([1.0, 2.0], np.float32)}
    out_o = ours.apply_gradients(tmap(mx.array, p), tmap(mx.array, p))
    out_t = theirs.apply_gradients(tmap(mlx_mx.array, p), tmap(mlx_mx.array, p))
    assert_trees_close(as_np(out_o), mlx_to_np(out_t), 0, 0, "params")
    assert_trees_close(as_np(ours.state), mlx_to_np(theirs.state), 0, 0, "state")
    assert ours.optimizers[0].step.item() == 1 and set(ours.state["states"][0]) == {"step", "learning_rate"}


# ------------------------------------------------------------------ clip_grad_norm


def test_clip_grad_norm_matches_numpy():
    rng = np.random.default_rng(20)
    tree = np_tree(rng)
    flat = [v.astype(np.float64) for _, v in tree_flatten(tree)]
    norm = math.sqrt(sum(float(np.sum(v**2)) for v in flat))
    for max_norm in (0.5 * norm, 2.0 * norm, 0.0):
        clipped, total = optim.clip_grad_norm(tmap(mx.array, tree), max_norm)
        assert total.dtype == mx.float32
        np.testing.assert_allclose(total.item(), norm, rtol=1e-6)
        scale = min(max_norm / (norm + 1e-6), 1.0)
        for key, value in dict(tree_flatten(tree)).items():
            np.testing.assert_allclose(as_np(clipped)[key], value * scale, rtol=1e-6, atol=1e-7)
        if max_norm > 0:
            new_norm = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in as_np(clipped).values()))
            assert new_norm <= max_norm * (1 + 1e-6)


def test_clip_grad_norm_dtypes_and_edges():
    # float16 squares would overflow; the norm is summed in float32
    clipped, total = optim.clip_grad_norm({"a": mx.array([30000.0, 30000.0], mx.float16)}, 2.0)
    np.testing.assert_allclose(total.item(), 30000 * math.sqrt(2), rtol=1e-6)
    assert clipped["a"].dtype == mx.float16
    np.testing.assert_allclose(np.array(clipped["a"]).astype(np.float64), [math.sqrt(2)] * 2, rtol=1e-3)
    # integer gradients come back as float32, like MLX
    clipped, total = optim.clip_grad_norm({"a": mx.array([3, 4])}, 10.0)
    assert clipped["a"].dtype == mx.float32 and clipped["a"].tolist() == [3.0, 4.0] and total.item() == 5.0
    clipped, total = optim.clip_grad_norm({}, 1.0)
    assert clipped == {} and total.item() == 0.0
    clipped, total = optim.clip_grad_norm([mx.zeros((0, 3)), (mx.array([3.0, 4.0]),)], 1.0)
    assert clipped[0].shape == (0, 3) and isinstance(clipped[1], tuple)
    np.testing.assert_allclose(np.array(clipped[1][0]), [0.6, 0.8], rtol=1e-5)
    with pytest.raises(ValueError, match=r"\[clip_grad_norm\] max_norm should be >=0"):
        optim.clip_grad_norm({"a": mx.ones((2,))}, -1.0)
    with pytest.raises(TypeError, match=r"\[clip_grad_norm\] gradient 'a'"):
        optim.clip_grad_norm({"a": None}, 1.0)


def test_clip_grad_norm_matches_mlx():
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_optim = pytest.importorskip("mlx.optimizers")
    tree = np_tree(np.random.default_rng(21))
    for max_norm in (1.0, 100.0):
        ours, n_o = optim.clip_grad_norm(tmap(mx.array, tree), max_norm)
        theirs, n_t = mlx_optim.clip_grad_norm(tmap(mlx_mx.array, tree), max_norm)
        np.testing.assert_allclose(n_o.item(), n_t.item(), rtol=1e-6)
        assert_trees_close(as_np(ours), mlx_to_np(theirs), 1e-6, 1e-8, "clipped")
