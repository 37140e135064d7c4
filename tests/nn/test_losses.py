"""The 14 losses of oxmx.nn.losses.

Values and result dtypes against real MLX (the same inputs, every reduction,
float32/float16/bfloat16), against NumPy float64 formulas and against torch where it
has the loss; gradients against central finite differences in float64; bad shapes,
reductions and arguments raise clear errors.
"""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn

L = nn.losses
REDUCTIONS = ["none", "mean", "sum"]
DTYPES = {"float32": 1e-5, "float16": 4e-3, "bfloat16": 3e-2}


def to_np(a):
    return np.array(a.astype(mx.float32)) if a.dtype in (mx.bfloat16, mx.float16) else np.array(a)


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def dtype_name(dt):
    return str(dt).split(".")[-1]


def check_grad_fd(f, x, rng, eps=1e-6, rtol=1e-6, directions=3):
    """``mx.grad`` of the scalar ``f(x)`` (or of ``sum(f(x) * u)``) against central
    differences along random directions, in float64."""
    xm = mx.array(x, dtype=mx.float64)
    out = f(xm)
    u = mx.array(rng.standard_normal(out.shape), dtype=mx.float64)

    def scalar(a):
        return mx.sum(f(a) * u)

    g = np.array(mx.grad(scalar)(xm))
    assert g.shape == x.shape and np.all(np.isfinite(g))
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        fd = (scalar(mx.array(x + eps * v, dtype=mx.float64)).item() - scalar(mx.array(x - eps * v, dtype=mx.float64)).item()) / (2 * eps)
        ad = float((g * v).sum())
        assert abs(ad - fd) <= rtol * max(1.0, abs(fd)) + 1e-7, (ad, fd)


# ---------------------------------------------------------------- shared inputs
def make_inputs(rng):
    """NumPy inputs for every case (float32 unless integer)."""
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    probs = rng.dirichlet(np.ones(5), size=(4, 3)).astype(np.float32)
    return {
        "logits": f(4, 3, 5) * 3,
        "idx": rng.integers(0, 5, (4, 3)).astype(np.int32),
        "idx0": rng.integers(0, 4, (3, 5)).astype(np.int32),
        "probs": probs,
        "w": rng.uniform(0.5, 2, (4, 3)).astype(np.float32),
        "x": f(4, 6) * 2,
        "y": f(4, 6) * 2,
        "bits": rng.integers(0, 2, (4, 6)).astype(np.float32),
        "p01": rng.uniform(0.02, 0.98, (4, 6)).astype(np.float32),
        "sign": rng.choice([-1.0, 1.0], (4, 6)).astype(np.float32),
        "var": rng.uniform(0.1, 2, (4, 6)).astype(np.float32),
        "logq": np.log(rng.dirichlet(np.ones(6), size=4)).astype(np.float32),
        "logp": np.log(rng.dirichlet(np.ones(6), size=4)).astype(np.float32),
        "a": f(4, 6), "p": f(4, 6), "n": f(4, 6),
    }  # fmt: skip


# name -> (loss, positional input keys, kwargs); float inputs follow the tested dtype
CASES = {
    "ce_idx": ("cross_entropy", ("logits", "idx"), {}),
    "ce_idx_axis0": ("cross_entropy", ("logits", "idx0"), {"axis": 0}),
    "ce_idx_smooth_w": ("cross_entropy", ("logits", "idx"), {"label_smoothing": 0.2, "weights": "w"}),
    "ce_probs": ("cross_entropy", ("logits", "probs"), {}),
    "ce_probs_smooth": ("cross_entropy", ("logits", "probs"), {"label_smoothing": 0.1, "weights": "w"}),
    "bce_logits": ("binary_cross_entropy", ("x", "bits"), {}),
    "bce_logits_w": ("binary_cross_entropy", ("x", "p01"), {"weights": "var"}),
    "bce_probs": ("binary_cross_entropy", ("p01", "bits"), {"with_logits": False}),
    "nll": ("nll_loss", ("logits", "idx"), {}),
    "nll_axis0": ("nll_loss", ("logits", "idx0"), {"axis": 0}),
    "kl": ("kl_div_loss", ("logq", "logp"), {}),
    "kl_axis0": ("kl_div_loss", ("logq", "logp"), {"axis": 0}),
    "hinge": ("hinge_loss", ("x", "sign"), {}),
    "margin": ("margin_ranking_loss", ("x", "y", "sign"), {"margin": 0.3}),
    "l1": ("l1_loss", ("x", "y"), {}),
    "mse": ("mse_loss", ("x", "y"), {}),
    "smooth_l1": ("smooth_l1_loss", ("x", "y"), {}),
    "smooth_l1_beta": ("smooth_l1_loss", ("x", "y"), {"beta": 2.5}),
    "huber": ("huber_loss", ("x", "y"), {}),
    "huber_delta": ("huber_loss", ("x", "y"), {"delta": 0.4}),
    "log_cosh": ("log_cosh_loss", ("x", "y"), {}),
    "gnll": ("gaussian_nll_loss", ("x", "y", "var"), {}),
    "gnll_full": ("gaussian_nll_loss", ("x", "y", "var"), {"full": True, "eps": 0.5}),
    "cosine": ("cosine_similarity_loss", ("x", "y"), {}),
    "cosine_axis": ("cosine_similarity_loss", ("x", "y"), {"axis": 0, "eps": 1e-3}),
    "triplet": ("triplet_loss", ("a", "p", "n"), {}),
    "triplet_p1": ("triplet_loss", ("a", "p", "n"), {"p": 1, "margin": 0.5, "axis": 0}),
    "triplet_p3": ("triplet_loss", ("a", "p", "n"), {"p": 3, "margin": 2.0}),
}


def call_case(losses, array, case, inputs, dtype, reduction):
    """Run ``case`` with ``losses`` (oxmx's or MLX's module) and its ``array(np, dtype)``."""
    name, keys, kwargs = CASES[case]

    def conv(k):
        v = inputs[k]
        return array(v, "int32" if v.dtype == np.int32 else dtype)

    kw = {k: conv(v) if isinstance(v, str) else v for k, v in kwargs.items()}
    return getattr(losses, name)(*[conv(k) for k in keys], reduction=reduction, **kw)


def ours_array(v, dtype):
    return mx.array(v).astype(getattr(mx, dtype))


# ---------------------------------------------------------------- vs MLX
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_matches_mlx(case, dtype, rng):
    mlx_core, mlx_nn = mlx_pair()
    inputs = make_inputs(rng)
    for reduction in REDUCTIONS:
        ours = call_case(L, ours_array, case, inputs, dtype, reduction)
        ref = call_case(
            mlx_nn.losses, lambda v, d: mlx_core.array(v).astype(getattr(mlx_core, d)), case, inputs, dtype, reduction
        )
        assert ours.shape == ref.shape, (reduction, ours.shape, ref.shape)
        assert dtype_name(ours.dtype) == dtype_name(ref.dtype), (reduction, ours.dtype, ref.dtype)
        tol = DTYPES[dtype] * (4 if reduction != "none" else 1)
        np.testing.assert_allclose(to_np(ours), np.array(ref.astype(mlx_core.float32)), rtol=tol, atol=tol)


def test_default_reductions_match_mlx():
    mlx_core, mlx_nn = mlx_pair()
    import inspect

    for name in L.__all__:
        ours = inspect.signature(getattr(L, name)).parameters
        ref = inspect.signature(getattr(mlx_nn.losses, name)).parameters
        assert list(ours) == list(ref), name
        for p in ours:
            assert ours[p].default == ref[p].default, (name, p)


def test_cross_entropy_docstring_examples():
    logits = mx.array([[2.0, -1.0], [-1.0, 2.0]])
    np.testing.assert_allclose(np.array(L.cross_entropy(logits, mx.array([0, 1]))), [0.0485873, 0.0485873], rtol=1e-5)
    probs = mx.array([[0.9, 0.1], [0.1, 0.9]])
    np.testing.assert_allclose(np.array(L.cross_entropy(logits, probs)), [0.348587, 0.348587], rtol=1e-5)
    bf = L.cross_entropy(logits.astype(mx.bfloat16), mx.array([0, 1]))
    assert bf.dtype == mx.bfloat16
    np.testing.assert_allclose(to_np(bf), [0.048584, 0.048584], rtol=1e-3)


def test_bce_and_margin_docstring_examples():
    logits = mx.array([0.105361, 0.223144, 1.20397, 0.916291])
    targets = mx.array([0, 0, 1, 1])
    assert L.binary_cross_entropy(logits, targets).item() == pytest.approx(0.539245, rel=1e-5)
    probs = mx.array([0.1, 0.1, 0.4, 0.4])
    assert L.binary_cross_entropy(probs, targets, with_logits=False).item() == pytest.approx(0.510826, rel=1e-5)
    out = L.margin_ranking_loss(
        mx.array([-0.573409, -0.765166, -0.0638]), mx.array([0.75596, 0.225763, 0.256995]), mx.array([1, 1, -1])
    )
    np.testing.assert_allclose(np.array(out), [1.32937, 0.990929, 0.0], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- vs NumPy formulas
def _np_log_softmax(x, axis):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def test_formulas_match_numpy(rng):
    i = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in make_inputs(rng).items()}
    A = lambda v: mx.array(v, dtype=mx.float64) if v.dtype == np.float64 else mx.array(v)  # noqa: E731
    d = i["x"] - i["y"]
    logp = _np_log_softmax(i["logits"], -1)
    picked = np.take_along_axis(logp, i["idx"][..., None], -1)[..., 0]
    expect = {
        "ce_idx": (L.cross_entropy(A(i["logits"]), A(i["idx"])), -picked),
        "ce_smooth": (
            L.cross_entropy(A(i["logits"]), A(i["idx"]), label_smoothing=0.2),
            -(0.8 * picked + 0.2 * logp.mean(-1)),
        ),
        "ce_probs": (L.cross_entropy(A(i["logits"]), A(i["probs"])), -(i["probs"] * logp).sum(-1)),
        "bce": (
            L.binary_cross_entropy(A(i["x"]), A(i["bits"]), reduction="none"),
            -(i["bits"] * np.log(1 / (1 + np.exp(-i["x"]))) + (1 - i["bits"]) * np.log(1 - 1 / (1 + np.exp(-i["x"])))),
        ),
        "bce_probs": (
            L.binary_cross_entropy(A(i["p01"]), A(i["bits"]), with_logits=False, reduction="sum"),
            -(i["bits"] * np.log(i["p01"]) + (1 - i["bits"]) * np.log(1 - i["p01"])).sum(),
        ),
        "nll": (L.nll_loss(A(logp), A(i["idx"]), reduction="mean"), -picked.mean()),
        "kl": (L.kl_div_loss(A(i["logq"]), A(i["logp"])), (np.exp(i["logp"]) * (i["logp"] - i["logq"])).sum(-1)),
        "hinge": (L.hinge_loss(A(i["x"]), A(i["sign"])), np.maximum(0, 1 - i["x"] * i["sign"])),
        "margin": (L.margin_ranking_loss(A(i["x"]), A(i["y"]), A(i["sign"]), 0.3), np.maximum(0, -i["sign"] * d + 0.3)),
        "l1": (L.l1_loss(A(i["x"]), A(i["y"])), np.abs(d).mean()),
        "mse": (L.mse_loss(A(i["x"]), A(i["y"]), reduction="sum"), (d**2).sum()),
        "smooth_l1": (
            L.smooth_l1_loss(A(i["x"]), A(i["y"]), beta=1.5, reduction="none"),
            np.where(np.abs(d) < 1.5, 0.5 * d**2 / 1.5, np.abs(d) - 0.75),
        ),
        "huber": (
            L.huber_loss(A(i["x"]), A(i["y"]), delta=0.7),
            np.where(np.abs(d) <= 0.7, 0.5 * d**2, 0.7 * (np.abs(d) - 0.35)),
        ),
        "log_cosh": (L.log_cosh_loss(A(i["x"]), A(i["y"])), np.log(np.cosh(d))),
        "gnll": (
            L.gaussian_nll_loss(A(i["x"]), A(i["y"]), A(i["var"]), full=True, reduction="none"),
            0.5 * (np.log(i["var"]) + d**2 / i["var"]) + 0.5 * np.log(2 * np.pi),
        ),
        "cosine": (
            L.cosine_similarity_loss(A(i["x"]), A(i["y"]), axis=1),
            (i["x"] * i["y"]).sum(1) / (np.linalg.norm(i["x"], axis=1) * np.linalg.norm(i["y"], axis=1)),
        ),
        "triplet": (
            L.triplet_loss(A(i["a"]), A(i["p"]), A(i["n"]), p=3, margin=1.5),
            np.maximum(
                ((np.abs(i["a"] - i["p"]) ** 3).sum(-1) + 1e-6) ** (1 / 3)
                - ((np.abs(i["a"] - i["n"]) ** 3).sum(-1) + 1e-6) ** (1 / 3)
                + 1.5,
                0,
            ),
        ),
    }
    for key, (ours, ref) in expect.items():
        assert ours.dtype == mx.float64, key
        np.testing.assert_allclose(np.array(ours), ref, rtol=1e-10, atol=1e-12, err_msg=key)


def test_cross_entropy_unnormalised_probabilities_follow_the_definition():
    # -sum(t * log_softmax) for any targets (PyTorch's definition); for normalised
    # targets this equals MLX's result, which the MLX comparison covers
    logits = np.array([[2.0, -1.0, 0.5], [-1.0, 2.0, 0.1]])
    targets = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    out = L.cross_entropy(mx.array(logits, dtype=mx.float64), mx.array(targets, dtype=mx.float64))
    np.testing.assert_allclose(np.array(out), -(targets * _np_log_softmax(logits, -1)).sum(-1), rtol=1e-12)


# ---------------------------------------------------------------- vs torch
def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    i = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in make_inputs(rng).items()}
    A = lambda v: mx.array(v, dtype=mx.float64) if v.dtype == np.float64 else mx.array(v)  # noqa: E731
    T = lambda v: torch.tensor(v, dtype=torch.float64) if v.dtype == np.float64 else torch.tensor(v, dtype=torch.long)  # noqa: E731
    lg, lg_t = i["logits"].reshape(12, 5), T(i["logits"].reshape(12, 5))
    idx, probs = i["idx"].reshape(12), i["probs"].reshape(12, 5)
    cases = {
        "ce_idx": (L.cross_entropy(A(lg), A(idx), reduction="mean"), F.cross_entropy(lg_t, T(idx))),
        "ce_smooth": (
            L.cross_entropy(A(lg), A(idx), label_smoothing=0.3, reduction="sum"),
            F.cross_entropy(lg_t, T(idx), label_smoothing=0.3, reduction="sum"),
        ),
        "ce_probs_smooth": (
            L.cross_entropy(A(lg), A(probs), label_smoothing=0.1),
            F.cross_entropy(lg_t, T(probs), label_smoothing=0.1, reduction="none"),
        ),
        "ce_unnormalised": (
            L.cross_entropy(A(lg), A(probs * 3)),
            F.cross_entropy(lg_t, T(probs * 3), reduction="none"),
        ),
        "bce_logits_w": (
            L.binary_cross_entropy(A(i["x"]), A(i["p01"]), weights=A(i["var"]), reduction="sum"),
            F.binary_cross_entropy_with_logits(T(i["x"]), T(i["p01"]), weight=T(i["var"]), reduction="sum"),
        ),
        "bce_probs": (
            L.binary_cross_entropy(A(i["p01"]), A(i["bits"]), with_logits=False),
            F.binary_cross_entropy(T(i["p01"]), T(i["bits"])),
        ),
        "nll": (
            L.nll_loss(A(_np_log_softmax(lg, -1)), A(idx), reduction="mean"),
            F.nll_loss(T(_np_log_softmax(lg, -1)), T(idx)),
        ),
        "kl": (
            L.kl_div_loss(A(i["logq"]), A(i["logp"]), reduction="sum"),
            F.kl_div(T(i["logq"]), T(i["logp"]), log_target=True, reduction="sum"),
        ),
        "l1": (L.l1_loss(A(i["x"]), A(i["y"])), F.l1_loss(T(i["x"]), T(i["y"]))),
        "mse": (L.mse_loss(A(i["x"]), A(i["y"])), F.mse_loss(T(i["x"]), T(i["y"]))),
        "smooth_l1": (
            L.smooth_l1_loss(A(i["x"]), A(i["y"]), beta=0.6, reduction="none"),
            F.smooth_l1_loss(T(i["x"]), T(i["y"]), beta=0.6, reduction="none"),
        ),
        "smooth_l1_beta0": (
            L.smooth_l1_loss(A(i["x"]), A(i["y"]), beta=0.0, reduction="none"),
            F.smooth_l1_loss(T(i["x"]), T(i["y"]), beta=0.0, reduction="none"),
        ),
        "huber": (
            L.huber_loss(A(i["x"]), A(i["y"]), delta=0.8, reduction="mean"),
            F.huber_loss(T(i["x"]), T(i["y"]), delta=0.8),
        ),
        "margin": (
            L.margin_ranking_loss(A(i["x"]), A(i["y"]), A(i["sign"]), margin=0.2, reduction="mean"),
            F.margin_ranking_loss(T(i["x"]), T(i["y"]), T(i["sign"]), margin=0.2),
        ),
        "gnll": (
            L.gaussian_nll_loss(A(i["x"]), A(i["y"]), A(i["var"]), full=True),
            F.gaussian_nll_loss(T(i["x"]), T(i["y"]), T(i["var"]), full=True),
        ),
        "cosine": (
            L.cosine_similarity_loss(A(i["x"]), A(i["y"])),
            F.cosine_similarity(T(i["x"]), T(i["y"]), dim=1),
        ),
    }
    for key, (ours, ref) in cases.items():
        np.testing.assert_allclose(np.array(ours), ref.numpy(), rtol=1e-10, atol=1e-12, err_msg=key)
    # torch adds eps to the difference, MLX to the sum of powers: equal to ~eps
    ours = L.triplet_loss(A(i["a"]), A(i["p"]), A(i["n"]), margin=0.5, reduction="none")
    ref = F.triplet_margin_loss(T(i["a"]), T(i["p"]), T(i["n"]), margin=0.5, reduction="none")
    np.testing.assert_allclose(np.array(ours), ref.numpy(), atol=1e-4)


# ---------------------------------------------------------------- gradients
GRAD_CASES = {
    # name: (function of the differentiated float64 array, how to draw it)
    "ce_idx": (lambda x, c: L.cross_entropy(x, c["idx"]), "logits"),
    "ce_idx_axis0": (lambda x, c: L.cross_entropy(x, c["idx0"], axis=0, reduction="mean"), "logits"),
    "ce_smooth": (lambda x, c: L.cross_entropy(x, c["idx"], label_smoothing=0.3, weights=c["w"]), "logits"),
    "ce_probs": (lambda x, c: L.cross_entropy(x, c["probs"], label_smoothing=0.1), "logits"),
    "ce_probs_wrt_targets": (lambda t, c: L.cross_entropy(c["logits"], t), "probs"),
    "bce_logits": (lambda x, c: L.binary_cross_entropy(x, c["p01"], weights=c["var"], reduction="none"), "x"),
    "bce_probs": (lambda p, c: L.binary_cross_entropy(p, c["bits"], with_logits=False, reduction="none"), "p01"),
    "nll": (lambda x, c: L.nll_loss(x, c["idx"], reduction="sum"), "logits"),
    "kl": (lambda x, c: L.kl_div_loss(x, c["logp"]), "logq"),
    "kl_wrt_targets": (lambda t, c: L.kl_div_loss(c["logq"], t), "logp"),
    "hinge": (lambda x, c: L.hinge_loss(x, c["sign"]), "x"),
    "margin": (lambda x, c: L.margin_ranking_loss(x, c["y"], c["sign"], margin=0.1), "x"),
    "l1": (lambda x, c: L.l1_loss(x, c["y"], reduction="none"), "x"),
    "mse": (lambda x, c: L.mse_loss(x, c["y"]), "x"),
    "smooth_l1": (lambda x, c: L.smooth_l1_loss(x, c["y"], beta=0.8, reduction="none"), "x"),
    "huber": (lambda x, c: L.huber_loss(x, c["y"], delta=0.8), "x"),
    "log_cosh": (lambda x, c: L.log_cosh_loss(x, c["y"]), "x"),
    "gnll_mean": (lambda x, c: L.gaussian_nll_loss(x, c["y"], c["var"], reduction="none"), "x"),
    "gnll_var": (lambda v, c: L.gaussian_nll_loss(c["x"], c["y"], v, reduction="none"), "var"),
    "cosine": (lambda x, c: L.cosine_similarity_loss(x, c["y"]), "x"),
    "triplet": (lambda a, c: L.triplet_loss(a, c["p"], c["n"], margin=3.0), "a"),
    "triplet_p3": (lambda a, c: L.triplet_loss(a, c["p"], c["n"], p=3, margin=3.0), "a"),
}


@pytest.mark.parametrize("case", sorted(GRAD_CASES))
def test_gradients_finite_differences(case, rng):
    f, key = GRAD_CASES[case]
    inputs = make_inputs(rng)
    consts = {k: mx.array(v, dtype=mx.float64) if v.dtype == np.float32 else mx.array(v) for k, v in inputs.items()}
    x = inputs[key].astype(np.float64)
    if key in ("x", "a"):
        # keep |x - y|, 1 - x*t, ... away from the kinks of the piecewise losses
        x = x + np.where(np.abs(x - inputs["y"]) < 0.05, 0.2, 0.0)
        x = x + np.where(np.abs(1 - x * inputs["sign"]) < 0.05, 0.2, 0.0)
        x = x + np.where(np.abs(np.abs(x - inputs["y"]) - 0.8) < 0.05, 0.2, 0.0)
    check_grad_fd(lambda a: f(a, consts), x, rng)


# ---------------------------------------------------------------- stability
def test_stable_at_extreme_values():
    big = mx.array([-1000.0, 1000.0, -100.0, 100.0])
    bce = L.binary_cross_entropy(big, mx.array([1.0, 0.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(np.array(bce), [1000.0, 1000.0, 0.0, 0.0], atol=1e-30)
    g = mx.grad(lambda x: L.binary_cross_entropy(x, mx.array([1.0, 0.0, 0.0, 1.0]), reduction="sum"))(big)
    np.testing.assert_allclose(np.array(g), [-1.0, 1.0, 0.0, 0.0], atol=1e-30)
    # probabilities of exactly 0 and 1: log clipped at -100, gradients finite
    p = mx.array([0.0, 1.0, 0.0, 1.0])
    t = mx.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(np.array(L.binary_cross_entropy(p, t, with_logits=False, reduction="none")), [100, 100, 0, 0])
    g = mx.grad(lambda q: L.binary_cross_entropy(q, t, with_logits=False, reduction="sum"))(p)
    assert np.all(np.isfinite(np.array(g)))
    # log cosh of huge errors is |a| - log 2, not inf
    np.testing.assert_allclose(np.array(L.log_cosh_loss(mx.array([1000.0, -5000.0]), mx.zeros(2))), [1000 - np.log(2), 5000 - np.log(2)], rtol=1e-6)
    # cross entropy with a dominant logit
    np.testing.assert_allclose(np.array(L.cross_entropy(mx.array([[1000.0, 0.0]]), mx.array([1]))), [1000.0])
    np.testing.assert_allclose(np.array(L.cross_entropy(mx.array([[1000.0, 0.0]]), mx.array([[0.0, 1.0]]))), [1000.0])
    # smooth L1 with beta = 0 (pure L1) keeps finite gradients
    g = mx.grad(lambda x: L.smooth_l1_loss(x, mx.zeros(3), beta=0.0, reduction="sum"))(mx.array([0.5, -2.0, 3.0]))
    np.testing.assert_array_equal(np.array(g), [1.0, -1.0, 1.0])
    # half-precision logits: the reduction runs in float32 (no overflow of exp)
    half = L.cross_entropy(mx.array([[60000.0, 0.0, -60000.0]], dtype=mx.float16), mx.array([0]))
    assert half.dtype == mx.float16 and to_np(half)[0] == 0.0


# ---------------------------------------------------------------- shapes, reductions, errors
def test_reductions_and_zero_size_batches():
    x = mx.zeros((0, 4))
    assert L.mse_loss(x, x, reduction="none").shape == (0, 4)
    assert L.mse_loss(x, x, reduction="sum").item() == 0.0
    assert np.isnan(L.mse_loss(x, x, reduction="mean").item())
    ce = L.cross_entropy(mx.zeros((0, 5)), mx.zeros((0,), dtype=mx.int32))
    assert ce.shape == (0,)
    assert L.cross_entropy(mx.zeros((0, 5)), mx.zeros((0, 5)), reduction="sum").item() == 0.0
    assert L.nll_loss(mx.zeros((0, 5)), mx.zeros((0,), dtype=mx.int32)).shape == (0,)
    assert L.triplet_loss(x, x, x).shape == (0,)
    assert L.cosine_similarity_loss(mx.zeros((0, 3)), mx.zeros((0, 3))).shape == (0,)


def test_batched_shapes():
    logits = mx.zeros((2, 3, 4, 7))
    assert L.cross_entropy(logits, mx.zeros((2, 3, 4), dtype=mx.int32)).shape == (2, 3, 4)
    assert L.cross_entropy(logits, mx.zeros((3, 4, 7), dtype=mx.int32), axis=0).shape == (3, 4, 7)
    assert L.cross_entropy(logits, logits, axis=1).shape == (2, 4, 7)
    assert L.kl_div_loss(logits, logits, axis=2).shape == (2, 3, 7)
    assert L.triplet_loss(logits, logits, logits, axis=1).shape == (2, 4, 7)
    # the broadcasting losses broadcast, as in MLX
    assert L.huber_loss(mx.zeros((2, 4)), mx.zeros((4,))).shape == (2, 4)
    assert L.hinge_loss(mx.zeros((2, 4)), mx.ones((4,))).shape == (2, 4)
    assert L.nll_loss(mx.zeros((3, 5)), mx.array([1])).shape == (3,)


@pytest.mark.parametrize("name", L.__all__)
def test_invalid_reduction_is_a_clear_value_error(name):
    args = {
        "binary_cross_entropy": 2, "cosine_similarity_loss": 2, "cross_entropy": 2, "gaussian_nll_loss": 3,
        "hinge_loss": 2, "huber_loss": 2, "kl_div_loss": 2, "l1_loss": 2, "log_cosh_loss": 2,
        "margin_ranking_loss": 3, "mse_loss": 2, "nll_loss": 2, "smooth_l1_loss": 2, "triplet_loss": 3,
    }[name]  # fmt: skip
    x = mx.ones((2, 3))
    inputs = [x] * args
    if name in ("nll_loss", "cross_entropy"):
        inputs[1] = mx.zeros((2,), dtype=mx.int32)
    for bad in ("avg", "Mean", None, 1):
        with pytest.raises(ValueError, match=rf"\[{name}\] Invalid reduction"):
            getattr(L, name)(*inputs, reduction=bad)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.array([0, 1, 2])), r"\[cross_entropy\] targets shape \(3,\)"),
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.zeros((2, 2))), r"\[cross_entropy\] targets shape \(2, 2\)"),
        (lambda: L.cross_entropy(mx.zeros((2, 3, 4)), mx.zeros((2, 3), dtype=mx.int32), axis=1), r"\[cross_entropy\].*\(2, 4\)"),
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.array([0.0, 1.0])), r"\[cross_entropy\].*integers"),
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.array([0, 1]), weights=mx.ones(3)), r"\[cross_entropy\] weights"),
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.array([0, 1]), label_smoothing=1.0), r"\[cross_entropy\] label_smoothing"),
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.array([0, 1]), label_smoothing=-0.1), r"\[cross_entropy\] label_smoothing"),
        (lambda: L.cross_entropy(mx.zeros((2, 3)), mx.array([0, 1]), axis=2), r"\[cross_entropy\] axis 2"),
        (lambda: L.cross_entropy(mx.array(1.0), mx.array(0)), r"\[cross_entropy\]"),
        (lambda: L.binary_cross_entropy(mx.zeros((2, 3)), mx.zeros(3)), r"\[binary_cross_entropy\] inputs shape \(2, 3\)"),
        (lambda: L.binary_cross_entropy(mx.zeros(3), mx.zeros(3), weights=mx.ones(2)), r"\[binary_cross_entropy\] weights"),
        (lambda: L.l1_loss(mx.zeros((2, 4)), mx.zeros(4)), r"\[l1_loss\] predictions shape \(2, 4\)"),
        (lambda: L.mse_loss(mx.zeros(4), mx.zeros((4, 1))), r"\[mse_loss\] predictions shape \(4,\)"),
        (lambda: L.smooth_l1_loss(mx.zeros(2), mx.zeros(4)), r"\[smooth_l1_loss\]"),
        (lambda: L.gaussian_nll_loss(mx.zeros(2), mx.zeros(1), mx.ones(2)), r"\[gaussian_nll_loss\].*targets"),
        (lambda: L.gaussian_nll_loss(mx.zeros((2, 3)), mx.zeros((2, 3)), mx.ones((2, 1))), r"\[gaussian_nll_loss\].*vars"),
        (lambda: L.margin_ranking_loss(mx.zeros(3), mx.zeros(2), mx.ones(3)), r"\[margin_ranking_loss\]"),
        (lambda: L.margin_ranking_loss(mx.zeros(3), mx.zeros(3), mx.ones(2)), r"\[margin_ranking_loss\]"),
        (lambda: L.nll_loss(mx.zeros((2, 3)), mx.array([0, 1, 2])), r"\[nll_loss\] targets shape \(3,\)"),
        (lambda: L.nll_loss(mx.zeros((2, 3)), mx.array([0.0, 1.0])), r"\[nll_loss\].*integer"),
        (lambda: L.huber_loss(mx.zeros((2, 4)), mx.zeros(3)), r"\[huber_loss\].*broadcast"),
        (lambda: L.hinge_loss(mx.zeros((2, 4)), mx.zeros(3)), r"\[hinge_loss\].*broadcast"),
        (lambda: L.log_cosh_loss(mx.zeros((2, 4)), mx.zeros(3)), r"\[log_cosh_loss\].*broadcast"),
        (lambda: L.kl_div_loss(mx.zeros((2, 4)), mx.zeros(3)), r"\[kl_div_loss\].*broadcast"),
        (lambda: L.cosine_similarity_loss(mx.zeros((2, 3)), mx.zeros((2, 2))), r"\[cosine_similarity_loss\].*broadcast"),
        (lambda: L.triplet_loss(mx.zeros((2, 2)), mx.zeros((2, 3)), mx.zeros((2, 2))), r"\[triplet_loss\].*broadcast"),
    ],
)
def test_bad_shapes_and_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_out_of_range_class_index_is_an_error():
    with pytest.raises(IndexError):
        mx.eval(L.cross_entropy(mx.zeros((2, 3)), mx.array([0, 5])))


def test_non_array_inputs_are_type_errors():
    with pytest.raises(TypeError, match=r"\[mse_loss\] predictions must be an array"):
        L.mse_loss([1.0, 2.0], mx.zeros(2))
    with pytest.raises(TypeError, match=r"\[cross_entropy\] targets must be an array"):
        L.cross_entropy(mx.zeros((2, 3)), [0, 1])
