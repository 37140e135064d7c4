"""The initialisers of oxmx.nn.init.

oxmx's random numbers match MLX's bit for bit, so under the same seed every initialiser
must give MLX's array (orthogonal to rounding: its QR runs in NumPy). Independently of
MLX, the distributions are checked statistically (mean, standard deviation, bounds, with
tolerances of several standard errors that a wrong scale or fan would still fail), the
fan conventions on linear and convolution weight shapes, dtypes and errors.
"""

import inspect
import math

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn

I = nn.init  # noqa: E741


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def sample(init_fn, shape, seed=0, **kwargs):
    mx.random.seed(seed)
    out = init_fn(mx.zeros(shape), **kwargs)
    assert out.shape == shape
    return np.array(out.astype(mx.float32)).astype(np.float64)


def assert_mean_std(a, mean, std):
    """Sample mean and standard deviation within 6 standard errors of the targets."""
    n = a.size
    assert abs(a.mean() - mean) <= 6 * std / math.sqrt(n), (a.mean(), mean)
    assert abs(a.std() - std) <= 6 * std / math.sqrt(2 * n), (a.std(), std)


# ---------------------------------------------------------------- vs MLX (same seed)
MLX_CASES = {
    "constant": (lambda n, mxm: n.init.constant(0.7), {}),
    "normal": (lambda n, mxm: n.init.normal(1.5, 0.3), {}),
    "normal-f16": (lambda n, mxm: n.init.normal(-1.0, 2.0, dtype=mxm.float16), {}),
    "uniform": (lambda n, mxm: n.init.uniform(-2.0, 5.0), {}),
    "uniform-bf16": (lambda n, mxm: n.init.uniform(dtype=mxm.bfloat16), {}),
    "glorot_normal": (lambda n, mxm: n.init.glorot_normal(), {"gain": 2.0}),
    "glorot_uniform": (lambda n, mxm: n.init.glorot_uniform(), {"gain": 0.5}),
    "he_normal": (lambda n, mxm: n.init.he_normal(), {"mode": "fan_out", "gain": 3.0}),
    "he_uniform": (lambda n, mxm: n.init.he_uniform(), {}),
    "he_uniform-fan_out": (lambda n, mxm: n.init.he_uniform(mxm.float16), {"mode": "fan_out"}),
    "sparse": (lambda n, mxm: n.init.sparse(0.35, 1.0, 2.0), {}),
    "orthogonal": (lambda n, mxm: n.init.orthogonal(1.5), {}),
}


@pytest.mark.parametrize("case", sorted(MLX_CASES))
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5), (3, 2, 2, 4)])
def test_same_seed_gives_mlx_values(case, shape):
    mlx_core, mlx_nn = mlx_pair()
    make, kwargs = MLX_CASES[case]
    if case in ("sparse", "orthogonal") and len(shape) != 2:
        return
    mx.random.seed(11)
    ours = make(nn, mx)(mx.zeros(shape), **kwargs)
    mlx_core.random.seed(11)
    ref = make(mlx_nn, mlx_core)(mlx_core.zeros(shape), **kwargs)
    assert str(ours.dtype).split(".")[-1] == str(ref.dtype).split(".")[-1]
    ours_np = np.array(ours.astype(mx.float32))
    ref_np = np.array(ref.astype(mlx_core.float32))
    if case == "orthogonal":
        np.testing.assert_allclose(ours_np, ref_np, atol=2e-6)
    else:
        np.testing.assert_array_equal(ours_np, ref_np)


def test_signatures_match_mlx():
    mlx_core, mlx_nn = mlx_pair()
    for name in I.__all__:
        ours, ref = inspect.signature(getattr(I, name)), inspect.signature(getattr(mlx_nn.init, name))
        assert list(ours.parameters) == list(ref.parameters), name
        for p in ours.parameters:
            d_ours, d_ref = ours.parameters[p].default, ref.parameters[p].default
            assert str(d_ours).split(".")[-1] == str(d_ref).split(".")[-1], (name, p)
    for name in ("glorot_normal", "glorot_uniform", "he_normal", "he_uniform"):
        ours = inspect.signature(getattr(I, name)()).parameters
        ref = inspect.signature(getattr(mlx_nn.init, name)()).parameters
        assert [(p, ours[p].default) for p in ours][1:] == [(p, ref[p].default) for p in ref][1:], name


# ---------------------------------------------------------------- distributions
def test_constant_identity():
    a = sample(I.constant(-2.5), (3, 4))
    np.testing.assert_array_equal(a, np.full((3, 4), -2.5))
    assert I.constant(3, dtype=mx.int32)(mx.zeros((2,))).dtype == mx.int32
    np.testing.assert_array_equal(sample(I.identity(), (4, 4)), np.eye(4))
    assert I.identity(mx.float16)(mx.zeros((3, 3))).dtype == mx.float16


def test_normal_and_uniform_statistics():
    assert_mean_std(sample(I.normal(1.5, 0.3), (200, 300)), 1.5, 0.3)
    u = sample(I.uniform(-2.0, 5.0), (200, 300))
    assert u.min() >= -2.0 and u.max() < 5.0
    assert u.min() < -1.99 and u.max() > 4.99  # the whole interval is used
    assert_mean_std(u, 1.5, 7.0 / math.sqrt(12))


# (shape, fan_in, fan_out): MLX's layout is (out, *kernel, in)
FAN_SHAPES = [((300, 200), 200, 300), ((64, 3, 3, 32), 288, 576), ((48, 5, 40), 200, 240), ((8, 2, 3, 4, 50), 1200, 192)]


@pytest.mark.parametrize("shape, fan_in, fan_out", FAN_SHAPES)
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_glorot_statistics(shape, fan_in, fan_out, gain):
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    assert_mean_std(sample(I.glorot_normal(), shape, gain=gain), 0.0, std)
    limit = gain * math.sqrt(6.0 / (fan_in + fan_out))
    u = sample(I.glorot_uniform(), shape, gain=gain)
    assert np.abs(u).max() <= limit and np.abs(u).max() > 0.99 * limit
    assert_mean_std(u, 0.0, limit / math.sqrt(3))


@pytest.mark.parametrize("shape, fan_in, fan_out", FAN_SHAPES)
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
def test_he_statistics(shape, fan_in, fan_out, mode):
    fan = fan_in if mode == "fan_in" else fan_out
    assert_mean_std(sample(I.he_normal(), shape, mode=mode, gain=2.0), 0.0, 2.0 / math.sqrt(fan))
    limit = math.sqrt(3.0 / fan)
    u = sample(I.he_uniform(), shape, mode=mode)
    assert np.abs(u).max() <= limit and np.abs(u).max() > 0.99 * limit
    assert_mean_std(u, 0.0, limit / math.sqrt(3))


def test_default_mode_is_fan_in():
    a = sample(I.he_uniform(), (400, 100), seed=3)
    b = sample(I.he_uniform(), (400, 100), seed=3, mode="fan_in")
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).max() > math.sqrt(3.0 / 400)  # fan_out's bound would be exceeded


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (7, 7), (1, 5), (50, 30)])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_is_orthogonal(shape, gain):
    q = sample(I.orthogonal(gain), shape)
    rows, cols = shape
    gram = q.T @ q if rows >= cols else q @ q.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(shape)), atol=2e-6)


def test_orthogonal_is_random_and_typed():
    a, b = sample(I.orthogonal(), (5, 5), seed=1), sample(I.orthogonal(), (5, 5), seed=2)
    assert not np.allclose(a, b)
    assert I.orthogonal(dtype=mx.bfloat16)(mx.zeros((3, 3))).dtype == mx.bfloat16
    # rows of a square orthogonal matrix have unit norm, whatever the seed
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("sparsity, cols", [(0.5, 6), (0.3, 7), (0.35, 10), (0.99, 10), (0.0, 10), (1.0, 10), (0.1, 1000)])
def test_sparse_zeros_per_row(sparsity, cols):
    a = sample(I.sparse(sparsity), (20, cols))
    zeros = (a == 0).sum(axis=1)
    np.testing.assert_array_equal(zeros, math.ceil(sparsity * cols))


def test_sparse_statistics_and_randomness():
    a = sample(I.sparse(0.25, mean=2.0, std=0.5), (100, 400))
    assert_mean_std(a[a != 0], 2.0, 0.5)
    # the zeroed positions differ between rows
    patterns = {tuple(np.flatnonzero(row == 0)) for row in a[:, :40]}
    assert len(patterns) > 50


def test_dtypes_follow_the_argument_not_the_input():
    for init_fn in (I.normal(dtype=mx.float16), I.uniform(dtype=mx.bfloat16), I.glorot_normal(mx.float16),
                    I.he_uniform(mx.bfloat16), I.sparse(0.5, dtype=mx.float16)):  # fmt: skip
        out = init_fn(mx.zeros((4, 4), dtype=mx.int32))
        assert out.dtype in (mx.float16, mx.bfloat16) and out.shape == (4, 4)
    assert I.normal()(mx.zeros((2, 2), dtype=mx.float16)).dtype == mx.float32


def test_initialises_a_layer():
    layer = nn.Linear(16, 8)
    layer.weight = I.he_uniform()(layer.weight)
    assert layer.weight.shape == (8, 16) and np.abs(np.array(layer.weight)).max() <= math.sqrt(3.0 / 16)


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ["glorot_normal", "glorot_uniform", "he_normal", "he_uniform"])
@pytest.mark.parametrize("shape", [(), (5,)])
def test_fans_need_two_dimensions(name, shape):
    with pytest.raises(ValueError, match=rf"\[{name}\].*at least 2 dimensions"):
        getattr(I, name)()(mx.zeros(shape))


@pytest.mark.parametrize("name", ["he_normal", "he_uniform"])
def test_bad_mode(name):
    with pytest.raises(ValueError, match=rf"\[{name}\] Invalid mode: 'fan_avg'"):
        getattr(I, name)()(mx.zeros((3, 3)), mode="fan_avg")


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\[identity\].*square.*\(3, 4\)"):
        I.identity()(mx.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"\[identity\]"):
        I.identity()(mx.zeros((3, 3, 3)))
    with pytest.raises(ValueError, match=r"\[orthogonal\].*2D.*3D"):
        I.orthogonal()(mx.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"\[orthogonal\].*1D"):
        I.orthogonal()(mx.zeros((4,)))
    with pytest.raises(ValueError, match=r"\[sparse\].*2 dimensions"):
        I.sparse(0.5)(mx.zeros((2, 3, 4)))


@pytest.mark.parametrize("sparsity", [-0.1, 1.5])
def test_sparse_rejects_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match=r"\[sparse\] sparsity must be in \[0, 1\]"):
        I.sparse(sparsity)
