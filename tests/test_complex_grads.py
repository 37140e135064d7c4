"""Gradients with respect to complex inputs follow MLX's (and PyTorch's) convention:
for a real loss L, grad(L)(z) = dL/dRe(z) + i dL/dIm(z), so a holomorphic op's vjp is
the cotangent times the conjugate derivative. Checked against central differences and,
where installed, against real MLX."""

import numpy as np
import pytest

import oxmx.core as mx

Z = np.array([1 + 2j, -0.5 + 0.3j, 0.7 - 1.1j], dtype=np.complex64)
C = np.array([0.5 - 1j, 1.5 + 0.25j, -0.75 + 2j], dtype=np.complex64)

OPS = {
    "multiply": lambda m, z: z * m.array(C),
    "divide": lambda m, z: z / m.array(C),
    "rdivide": lambda m, z: m.array(C) / z,
    "exp": lambda m, z: m.exp(z),
    "log": lambda m, z: m.log(z),
    "sin": lambda m, z: m.sin(z),
    "cos": lambda m, z: m.cos(z),
    "tanh": lambda m, z: m.tanh(z),
    "sqrt": lambda m, z: m.sqrt(z),
    "square": lambda m, z: m.square(z),
    "reciprocal": lambda m, z: m.reciprocal(z),
    "power": lambda m, z: z ** 3,
    "matmul": lambda m, z: m.matmul(m.array(C).reshape(3, 1), z.reshape(1, 3)).sum(axis=0),
    "prod": lambda m, z: m.prod(z * m.array(C), keepdims=True),
    "abs": lambda m, z: m.abs(z),
}


def _loss(m, f):
    w = m.array(np.array([0.3 + 0.9j, -1.2 + 0.4j, 0.8 - 0.6j], dtype=np.complex64))

    def loss(z):
        y = f(m, z)
        y = y.astype(m.complex64) if y.dtype != m.complex64 else y
        return m.real(m.sum(y * w))

    return loss


@pytest.mark.parametrize("name", sorted(OPS))
def test_complex_gradient_is_dl_dre_plus_i_dl_dim(name):
    loss = _loss(mx, OPS[name])
    got = np.array(mx.grad(loss)(mx.array(Z)))
    z = Z.astype(np.complex128)
    eps = 1e-3
    f = lambda v: float(loss(mx.array(v.astype(np.complex64))))  # noqa: E731
    want = np.zeros(3, dtype=np.complex128)
    for k in range(3):
        e = np.zeros(3)
        e[k] = eps
        want[k] = (f(z + e) - f(z - e)) / (2 * eps) + 1j * (f(z + 1j * e) - f(z - 1j * e)) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("name", sorted(set(OPS) - {"power"}))  # power: see below
def test_complex_vjp_matches_mlx(name):
    m = pytest.importorskip("mlx.core")
    u = np.array([1 + 0.5j, -0.25 + 1j, 0.5 - 0.5j], dtype=np.complex64)
    f = OPS[name]

    def run(fw):
        def g(z):
            y = f(fw, z)
            return y.astype(fw.complex64) if y.dtype != fw.complex64 else y

        out = g(fw.array(Z))
        _, (dz,) = fw.vjp(g, [fw.array(Z)], [fw.array(u[: out.size].reshape(out.shape))])
        return np.array(dz)

    np.testing.assert_allclose(run(mx), run(m), rtol=1e-5, atol=1e-5)


def test_power_vjp_agrees_with_square():
    # MLX's power alone does not conjugate its derivative, so its gradient of z ** 2 differs
    # from that of square(z) (known.py "complex-power-vjp"); oxmx's agree (and the finite
    # differences above)
    u = np.array([1 + 0.5j, -0.25 + 1j, 0.5 - 0.5j], dtype=np.complex64)
    got = mx.vjp(lambda z: z ** 2, [mx.array(Z)], [mx.array(u)])[1][0]
    want = mx.vjp(mx.square, [mx.array(Z)], [mx.array(u)])[1][0]
    np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-6)
