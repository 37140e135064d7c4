"""Activation functions and modules of oxmx.nn.

Values against real MLX (same inputs, float32/float16/bfloat16/int32, edge values ±inf,
NaN and large |x|), against NumPy float64 formulas and against torch where installed;
gradients against central finite differences in float64.
"""

import math

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn

ELEMENTWISE = [
    "celu", "elu", "gelu", "gelu_approx", "gelu_fast_approx", "hard_shrink", "hard_tanh",
    "hardswish", "leaky_relu", "log_sigmoid", "mish", "relu", "relu2", "relu6", "selu",
    "sigmoid", "silu", "softplus", "softshrink", "softsign", "step", "tanh",
]  # fmt: skip
AXIS_FUNCS = ["softmax", "softmin", "log_softmax"]
CLASSES = {
    "CELU": "celu", "ELU": "elu", "GELU": "gelu", "HardShrink": "hard_shrink",
    "HardTanh": "hard_tanh", "Hardswish": "hardswish", "LeakyReLU": "leaky_relu",
    "LogSigmoid": "log_sigmoid", "LogSoftmax": "log_softmax", "Mish": "mish", "ReLU": "relu",
    "ReLU2": "relu2", "ReLU6": "relu6", "SELU": "selu", "SiLU": "silu", "Sigmoid": "sigmoid",
    "Softmax": "softmax", "Softmin": "softmin", "Softplus": "softplus",
    "Softshrink": "softshrink", "Softsign": "softsign", "Step": "step", "Tanh": "tanh",
    "GLU": "glu",
}  # fmt: skip

EDGES = np.array(
    [-np.inf, -1e4, -100.0, -20.0, -3.0, -1.0, -0.5, -1e-7, 0.0, 1e-7, 0.5, 1.0, 3.0, 20.0, 100.0, 1e4, np.inf, np.nan],
    np.float32,
)
DTYPES = {"float32": 1e-6, "float16": 1e-3, "bfloat16": 8e-3}

# NumPy float64 references (MLX's documented formulas and constants).
_erf = np.vectorize(math.erf)


def _np_softplus(x):
    return np.logaddexp(x, 0.0)


NP_REF = {
    "celu": lambda x: np.maximum(x, 0) + np.minimum(0, np.expm1(x)),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "gelu": lambda x: x * (1 + _erf(x / np.sqrt(2))) / 2,
    "gelu_approx": lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3))),
    "gelu_fast_approx": lambda x: x / (1 + np.exp(-1.702 * x)),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0),
    "hard_tanh": lambda x: np.clip(x, -1, 1),
    "hardswish": lambda x: x * np.clip(x + 3, 0, 6) / 6,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.01 * x),
    "log_sigmoid": lambda x: -_np_softplus(-x),
    "mish": lambda x: x * np.tanh(_np_softplus(x)),
    "relu": lambda x: np.maximum(x, 0),
    "relu2": lambda x: np.maximum(x, 0) ** 2,
    "relu6": lambda x: np.clip(x, 0, 6),
    "selu": lambda x: 1.0507 * np.where(x > 0, x, 1.67326 * np.expm1(np.minimum(x, 0))),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "silu": lambda x: x / (1 + np.exp(-x)),
    "softplus": _np_softplus,
    "softshrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "step": lambda x: (x >= 0).astype(np.int32),
    "tanh": np.tanh,
}

# Points where a function is not differentiable: finite differences must stay clear.
KINKS = {
    "hard_shrink": [-0.5, 0.5], "softshrink": [-0.5, 0.5], "hard_tanh": [-1, 1],
    "hardswish": [-3, 3], "relu6": [0, 6], "relu": [0], "relu2": [0], "leaky_relu": [0],
    "elu": [0], "celu": [0], "selu": [0], "step": [0],
}  # fmt: skip


def to_np(a):
    return np.array(a.astype(mx.float32)) if a.dtype in (mx.bfloat16, mx.float16) else np.array(a)


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def dtype_name(dt):
    return str(dt).split(".")[-1]


def smooth_points(rng, name, shape, low=-4.0, high=4.0):
    """Random float64 points at least 0.05 away from the kinks of ``name``."""
    x = rng.uniform(low, high, shape)
    for k in KINKS.get(name, []):
        x = np.where(np.abs(x - k) < 0.05, x + 0.1, x)
    return x


def check_grad_fd(f, x, rng, eps=1e-6, rtol=1e-6, directions=3):
    """``mx.grad`` of ``sum(f(x) * u)`` against central differences along random
    directions, in float64."""
    xm = mx.array(x, dtype=mx.float64)
    u = mx.array(rng.standard_normal(f(xm).shape), dtype=mx.float64)

    def scalar(a):
        return mx.sum(f(a) * u)

    g = np.array(mx.grad(scalar)(xm))
    assert g.shape == x.shape
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        fd = (scalar(mx.array(x + eps * v, dtype=mx.float64)).item() - scalar(mx.array(x - eps * v, dtype=mx.float64)).item()) / (2 * eps)
        ad = float((g * v).sum())
        assert abs(ad - fd) <= rtol * max(1.0, abs(fd)) + 1e-7, (ad, fd)


# ---------------------------------------------------------------- vs MLX
@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("dtype", list(DTYPES) + ["int32"])
def test_elementwise_matches_mlx(name, dtype):
    mlx_core, mlx_nn = mlx_pair()
    x = EDGES if dtype != "int32" else np.array([-7, -3, -1, 0, 1, 2, 6, 9], np.int32)
    ours = getattr(nn, name)(mx.array(x).astype(getattr(mx, dtype)))
    ref = getattr(mlx_nn, name)(mlx_core.array(x).astype(getattr(mlx_core, dtype)))
    assert dtype_name(ours.dtype) == dtype_name(ref.dtype)
    tol = DTYPES.get(dtype, 1e-6)
    np.testing.assert_allclose(to_np(ours), np.array(ref.astype(mlx_core.float32)), rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("name", ["celu", "elu", "leaky_relu", "hard_shrink", "softshrink", "step", "hard_tanh"])
def test_parameters_match_mlx(name):
    mlx_core, mlx_nn = mlx_pair()
    args = {
        "celu": (2.5,), "elu": (0.3,), "leaky_relu": (0.2,), "hard_shrink": (1.2,),
        "softshrink": (1.2,), "step": (0.7,), "hard_tanh": (-2.0, 0.5),
    }[name]  # fmt: skip
    x = np.linspace(-4, 4, 33).astype(np.float32)
    ours = getattr(nn, name)(mx.array(x), *args)
    ref = getattr(mlx_nn, name)(mlx_core.array(x), *args)
    assert dtype_name(ours.dtype) == dtype_name(ref.dtype)
    np.testing.assert_allclose(np.array(ours), np.array(ref), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", AXIS_FUNCS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_axis_functions_match_mlx(name, dtype, axis, rng):
    mlx_core, mlx_nn = mlx_pair()
    x = (rng.standard_normal((3, 5, 4)) * 4).astype(np.float32)
    x[0, 0, 0] = 80.0  # a dominant logit: the max-shift must keep it finite
    ours = getattr(nn, name)(mx.array(x).astype(getattr(mx, dtype)), axis=axis)
    ref = getattr(mlx_nn, name)(mlx_core.array(x).astype(getattr(mlx_core, dtype)), axis=axis)
    assert dtype_name(ours.dtype) == dtype_name(ref.dtype)
    tol = DTYPES[dtype] * 4
    np.testing.assert_allclose(to_np(ours), np.array(ref.astype(mlx_core.float32)), rtol=tol, atol=tol)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_glu_and_prelu_match_mlx(axis, rng):
    mlx_core, mlx_nn = mlx_pair()
    x = rng.standard_normal((4, 6, 2)).astype(np.float32)
    np.testing.assert_allclose(
        np.array(nn.glu(mx.array(x), axis=axis)), np.array(mlx_nn.glu(mlx_core.array(x), axis=axis)), rtol=1e-6, atol=1e-7
    )
    alpha = rng.uniform(0, 1, (2,)).astype(np.float32)
    np.testing.assert_allclose(
        np.array(nn.prelu(mx.array(x), mx.array(alpha))),
        np.array(mlx_nn.prelu(mlx_core.array(x), mlx_core.array(alpha))),
        rtol=1e-6,
    )


@pytest.mark.parametrize("cls", sorted(CLASSES))
def test_modules_match_mlx(cls, rng):
    mlx_core, mlx_nn = mlx_pair()
    x = (rng.standard_normal((2, 3, 4)) * 3).astype(np.float32)
    ours, ref = getattr(nn, cls)(), getattr(mlx_nn, cls)()
    assert repr(ours) == repr(ref) == f"{cls}()"
    assert ours.parameters() == {} and isinstance(ours, nn.Module)
    np.testing.assert_allclose(np.array(ours(mx.array(x))), np.array(ref(mlx_core.array(x))), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("approx", ["none", "precise", "tanh", "fast"])
def test_gelu_module_approximations_match_mlx(approx):
    mlx_core, mlx_nn = mlx_pair()
    x = np.linspace(-6, 6, 49).astype(np.float32)
    ours = nn.GELU(approx)(mx.array(x))
    ref = mlx_nn.GELU(approx)(mlx_core.array(x))
    # the exact form's 1 + erf(x) cancels for x << 0: an ulp of erf is ~1e-7 absolute
    np.testing.assert_allclose(np.array(ours), np.array(ref), rtol=1e-6, atol=1e-6)


def test_prelu_module_matches_mlx(rng):
    mlx_core, mlx_nn = mlx_pair()
    ours, ref = nn.PReLU(3, init=0.1), mlx_nn.PReLU(3, init=0.1)
    assert np.array_equal(np.array(ours.weight), np.array(ref.weight)) and ours.weight.dtype == mx.float32
    x = rng.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(np.array(ours(mx.array(x))), np.array(ref(mlx_core.array(x))), rtol=1e-6)


# ---------------------------------------------------------------- vs NumPy formulas
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_matches_numpy(name, rng):
    x = np.concatenate([rng.uniform(-8, 8, 200), [-30.0, -15.0, 15.0, 30.0]])
    ours = getattr(nn, name)(mx.array(x, dtype=mx.float64))
    expect = NP_REF[name](x)
    np.testing.assert_allclose(np.array(ours), expect, rtol=1e-12, atol=1e-14)
    ours32 = getattr(nn, name)(mx.array(x.astype(np.float32)))
    np.testing.assert_allclose(np.array(ours32), expect, rtol=3e-6, atol=1e-6)


def test_axis_functions_match_numpy(rng):
    x = rng.standard_normal((4, 7)) * 5
    for axis in (0, 1, -1):
        shifted = x - x.max(axis=axis, keepdims=True)
        logsm = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        np.testing.assert_allclose(np.array(nn.log_softmax(mx.array(x, dtype=mx.float64), axis=axis)), logsm, rtol=1e-12)
        np.testing.assert_allclose(np.array(nn.softmax(mx.array(x, dtype=mx.float64), axis=axis)), np.exp(logsm), rtol=1e-12)
        shifted = -x - (-x).max(axis=axis, keepdims=True)
        softmin = np.exp(shifted) / np.exp(shifted).sum(axis=axis, keepdims=True)
        np.testing.assert_allclose(np.array(nn.softmin(mx.array(x, dtype=mx.float64), axis=axis)), softmin, rtol=1e-12)


def test_numerically_stable_forms_for_large_inputs():
    big = mx.array([-1e30, -1000.0, -100.0, 100.0, 1000.0, 1e30])
    sp = np.array(nn.softplus(big))
    np.testing.assert_array_equal(sp[3:], np.float32([100.0, 1000.0, 1e30]))
    assert np.all(sp[:3] >= 0) and sp[2] == pytest.approx(np.exp(-100.0), rel=1e-5)
    ls = np.array(nn.log_sigmoid(big))
    np.testing.assert_array_equal(ls[:3], np.float32([-1e30, -1000.0, -100.0]))
    assert np.all(np.isfinite(ls)) and ls[3] == pytest.approx(-np.exp(-100.0), rel=1e-5)
    # float16: no overflow to inf and no log(0)
    h = mx.array([-60000.0, -20.0, 20.0, 60000.0], dtype=mx.float16)
    assert np.all(np.isfinite(to_np(nn.softplus(h)))) and np.all(np.isfinite(to_np(nn.log_sigmoid(h))))
    np.testing.assert_allclose(to_np(nn.log_sigmoid(h)), [-60000.0, -20.0, -2.06e-9, 0.0], rtol=1e-3, atol=1e-8)
    # log_softmax with a huge gap: exact, no -inf
    np.testing.assert_allclose(np.array(nn.log_softmax(mx.array([0.0, 1000.0]))), [-1000.0, 0.0])


# ---------------------------------------------------------------- vs torch
def _torch_cases(F):
    return {
        "celu": (lambda x: nn.celu(x, 1.5), lambda t: F.celu(t, 1.5)),
        "elu": (lambda x: nn.elu(x, 0.7), lambda t: F.elu(t, 0.7)),
        "gelu": (nn.gelu, F.gelu),
        "gelu_approx": (nn.gelu_approx, lambda t: F.gelu(t, approximate="tanh")),
        "hard_shrink": (lambda x: nn.hard_shrink(x, 0.3), lambda t: F.hardshrink(t, 0.3)),
        "hard_tanh": (lambda x: nn.hard_tanh(x, -0.5, 2.0), lambda t: F.hardtanh(t, -0.5, 2.0)),
        "hardswish": (nn.hardswish, F.hardswish),
        "leaky_relu": (lambda x: nn.leaky_relu(x, 0.1), lambda t: F.leaky_relu(t, 0.1)),
        "log_sigmoid": (nn.log_sigmoid, F.logsigmoid),
        "log_softmax": (lambda x: nn.log_softmax(x, axis=0), lambda t: F.log_softmax(t, dim=0)),
        "mish": (nn.mish, F.mish),
        "relu": (nn.relu, F.relu),
        "relu6": (nn.relu6, F.relu6),
        "sigmoid": (nn.sigmoid, F.sigmoid),
        "silu": (nn.silu, F.silu),
        "softmax": (lambda x: nn.softmax(x, axis=1), lambda t: F.softmax(t, dim=1)),
        "softmin": (lambda x: nn.softmin(x, axis=1), lambda t: F.softmin(t, dim=1)),
        "softplus": (nn.softplus, F.softplus),
        "softshrink": (lambda x: nn.softshrink(x, 0.3), lambda t: F.softshrink(t, 0.3)),
        "softsign": (nn.softsign, F.softsign),
        "tanh": (nn.tanh, F.tanh),
        "glu": (lambda x: nn.glu(x, axis=0), lambda t: F.glu(t, dim=0)),
        # torch's PReLU weights the channels of axis 1; ours the last axis (3 of them here)
        "prelu": (lambda x: nn.prelu(x, mx.array([0.2, 0.4, 0.6], dtype=mx.float64)),
                  lambda t: F.prelu(t, t.new_tensor([0.2, 0.4, 0.6]))),
    }  # fmt: skip


TORCH_NAMES = [
    "celu", "elu", "gelu", "gelu_approx", "hard_shrink", "hard_tanh", "hardswish", "leaky_relu",
    "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "sigmoid", "silu", "softmax", "softmin",
    "softplus", "softshrink", "softsign", "tanh", "glu", "prelu",
]  # fmt: skip


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_matches_torch_values_and_gradients(name, rng):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    ours_f, torch_f = _torch_cases(F)[name]
    x = (rng.standard_normal((4, 3)) * 3).astype(np.float64)
    t = torch.tensor(x, requires_grad=True)
    out_t = torch_f(t)
    u = rng.standard_normal(tuple(out_t.shape))
    (out_t * torch.tensor(u)).sum().backward()
    xm = mx.array(x, dtype=mx.float64)
    np.testing.assert_allclose(np.array(ours_f(xm)), out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = mx.grad(lambda a: mx.sum(ours_f(a) * mx.array(u, dtype=mx.float64)))(xm)
    np.testing.assert_allclose(np.array(g), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_selu_uses_mlx_constants_close_to_torch():
    torch = pytest.importorskip("torch")
    x = np.linspace(-5, 5, 41)
    ours = np.array(nn.selu(mx.array(x, dtype=mx.float64)))
    ref = torch.nn.functional.selu(torch.tensor(x)).numpy()
    # MLX documents lambda = 1.0507, alpha = 1.67326 (torch: 1.0507009873..., 1.6732632423...)
    np.testing.assert_allclose(ours, ref, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(ours, NP_REF["selu"](x), rtol=1e-13)


# ---------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", [n for n in ELEMENTWISE if n != "step"])
def test_elementwise_gradients_finite_differences(name, rng):
    f = getattr(nn, name)
    check_grad_fd(f, smooth_points(rng, name, (3, 5)), rng)


@pytest.mark.parametrize("name", AXIS_FUNCS)
def test_axis_function_gradients_finite_differences(name, rng):
    for axis in (0, -1):
        check_grad_fd(lambda a: getattr(nn, name)(a, axis=axis), rng.standard_normal((3, 4)) * 2, rng)


def test_glu_prelu_gradients_finite_differences(rng):
    check_grad_fd(lambda a: nn.glu(a, axis=1), rng.standard_normal((3, 4, 2)), rng)
    x = smooth_points(rng, "relu", (4, 3))
    alpha = mx.array([0.1, 0.5, 2.0], dtype=mx.float64)
    check_grad_fd(lambda a: nn.prelu(a, alpha), x, rng)
    check_grad_fd(lambda w: nn.prelu(mx.array(x, dtype=mx.float64), w), np.array([0.1, 0.5, 2.0]), rng)


def test_step_gradient_is_zero():
    g = mx.grad(lambda a: mx.sum(nn.step(a) * a))(mx.array([-1.0, 2.0]))
    np.testing.assert_array_equal(np.array(g), [0.0, 1.0])


@pytest.mark.parametrize("name", ["softplus", "log_sigmoid", "elu", "celu", "selu", "mish", "silu", "gelu", "sigmoid"])
def test_gradients_finite_at_large_inputs(name):
    x = mx.array([-1000.0, -100.0, 100.0, 1000.0])
    g = np.array(mx.grad(lambda a: mx.sum(getattr(nn, name)(a)))(x))
    assert np.all(np.isfinite(g)), g
    # the slopes at the far ends: 0 or the asymptotic slope
    far_right = {"softplus": 1.0, "log_sigmoid": 0.0, "elu": 1.0, "celu": 1.0, "selu": 1.0507,
                 "mish": 1.0, "silu": 1.0, "gelu": 1.0, "sigmoid": 0.0}[name]  # fmt: skip
    assert g[-1] == pytest.approx(far_right, abs=1e-6)


# ---------------------------------------------------------------- shapes, dtypes, errors
@pytest.mark.parametrize("name", ELEMENTWISE + AXIS_FUNCS)
@pytest.mark.parametrize("shape", [(), (0,), (0, 3), (2, 0, 3), (2, 3, 4)])
def test_shapes_preserved(name, shape, rng):
    if name in AXIS_FUNCS and shape == ():
        return
    x = mx.array(rng.standard_normal(shape).astype(np.float32))
    y = getattr(nn, name)(x)
    assert y.shape == shape
    assert y.dtype == (mx.int32 if name == "step" else mx.float32)


def test_glu_shapes_and_errors():
    assert nn.glu(mx.ones((2, 6, 4))).shape == (2, 6, 2)
    x = mx.ones((2, 6, 3))
    assert nn.glu(x, axis=1).shape == (2, 3, 3)
    assert nn.GLU(axis=1)(x).shape == (2, 3, 3)
    with pytest.raises(ValueError, match=r"\[glu\].*even"):
        nn.glu(x)
    with pytest.raises(ValueError, match=r"\[glu\].*out of bounds"):
        nn.glu(x, axis=3)


def test_prelu_errors_and_broadcast():
    layer = nn.PReLU(4)
    assert layer(mx.ones((2, 3, 4))).shape == (2, 3, 4)
    with pytest.raises(ValueError, match=r"\[prelu\]"):
        layer(mx.ones((2, 3)))


def test_gelu_module_rejects_unknown_approximation():
    with pytest.raises(ValueError, match=r"\[GELU\].*'foo'"):
        nn.GELU("foo")


def test_module_arguments_are_used():
    x = mx.array([-2.0, -0.4, 0.4, 2.0])
    np.testing.assert_allclose(np.array(nn.ELU(2.0)(x)), np.array(nn.elu(x, 2.0)))
    np.testing.assert_allclose(np.array(nn.CELU(2.0)(x)), np.array(nn.celu(x, 2.0)))
    np.testing.assert_allclose(np.array(nn.LeakyReLU(0.3)(x)), [-0.6, -0.12, 0.4, 2.0], rtol=1e-6)
    np.testing.assert_array_equal(np.array(nn.Softshrink(1.0)(x)), [-1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(np.array(nn.HardShrink(1.0)(x)), [-2.0, 0.0, 0.0, 2.0])
    np.testing.assert_array_equal(np.array(nn.Step(0.4)(x)), [0, 0, 1, 1])
    # the module classes take MLX's constructor arguments, no more
    with pytest.raises(TypeError):
        nn.HardTanh(-2.0, 2.0)


def test_prelu_weight_is_trainable_and_gradients_flow(rng):
    layer = nn.PReLU(3, init=0.5)
    assert [k for k in layer.trainable_parameters()] == ["weight"]
    x = mx.array(rng.standard_normal((6, 3)).astype(np.float32))

    def loss(params):
        layer.update(params)
        return mx.sum(layer(x))

    g = mx.grad(loss)(layer.trainable_parameters())["weight"]
    np.testing.assert_allclose(np.array(g), np.minimum(np.array(x), 0).sum(0), rtol=1e-5)


def test_activations_compose_with_transforms(rng):
    x = mx.array(rng.standard_normal((4, 5)).astype(np.float32))
    for f in (nn.gelu, nn.silu, nn.log_softmax, nn.mish):
        np.testing.assert_allclose(np.array(mx.compile(f)(x)), np.array(f(x)), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.array(mx.vmap(f)(x)), np.array(f(x)), rtol=1e-6, atol=1e-7)
