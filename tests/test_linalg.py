"""oxmx.core.linalg (and mx.matrix_norm, random.multivariate_normal).

References: NumPy's ``np.linalg`` in float64 (values on random batched shapes, float32
and float64, transposed/sliced views, empty and 1x1 matrices), PyTorch's ``torch.linalg``
with autograd in float64 (vjp and jvp of every differentiable function, second order
for some), loops over the batch (vmap) and real MLX where it is installed (lu's
conventions, pivots, the pseudo-inverse's cutoff, eig's normalisation, error types and
message prefixes, multivariate_normal's samples). MLX's linalg needs ``stream=mx.cpu``;
oxmx's runs on the default device. Inputs that crash MLX (0x0 inv, NaN eig) never reach
it.
"""

import math

import numpy as np
import pytest

import oxmx.core as mx

try:
    import mlx.core as mlx
except ImportError:  # pragma: no cover
    mlx = None

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_mlx = pytest.mark.skipif(mlx is None, reason="real MLX is not installed")
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
L = mx.linalg
NAN = float("nan")
TOL = {"float32": 2e-4, "float64": 1e-10}


# ---------------------------------------------------------------- helpers
def rand(rng, shape, kind="any"):
    """float64 NumPy data: ``any`` normals, ``well`` well conditioned square matrices,
    ``spd`` symmetric positive definite ones."""
    x = rng.standard_normal(shape)
    if kind == "well":
        return x * 0.5 + 2 * np.eye(shape[-1])
    if kind == "spd":
        return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])
    return x


def view(data, dtype, how):
    """``data`` as an oxmx array of ``dtype``: contiguous, a transposed view or a strided
    slice, with the same logical value."""
    dt = getattr(mx, dtype)
    if how == "T" and data.ndim >= 2:
        return mx.array(np.ascontiguousarray(np.swapaxes(data, -1, -2)), dtype=dt).mT
    if how == "step":
        return mx.array(np.repeat(data, 2, axis=-1), dtype=dt)[..., ::2]
    return mx.array(data, dtype=dt)


def as_np(x):
    return np.array(x)


def close(got, want, dtype, scale=1.0):
    got, want = as_np(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    tol = TOL[dtype] * scale
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, np.abs(want).max(initial=0)))


CASES = [(dt, how, batch) for dt in ("float32", "float64") for how in ("", "T", "step") for batch in ((), (2,), (2, 1))]


def assert_same_eigenvalues(got, want, atol):
    """Each matrix's eigenvalues equal up to order: every wanted value is matched to the
    nearest value not matched yet (sorting is fragile when a conjugate pair's real parts
    differ in the last bits)."""
    got, want = np.asarray(got).reshape(-1, got.shape[-1]), np.asarray(want).reshape(-1, want.shape[-1])
    for g, w in zip(got, want):
        left = list(g)
        for v in w:
            i = int(np.argmin([abs(x - v) for x in left]))
            assert abs(left[i] - v) <= atol * max(1.0, abs(v)), (g, w)
            left.pop(i)


def rounded(data, dtype):
    """The float64 value of ``data`` after rounding to ``dtype`` (NumPy's input)."""
    return data.astype(np.float32).astype(np.float64) if dtype == "float32" else data


# ---------------------------------------------------------------- values vs NumPy
@pytest.mark.parametrize("dtype,how,batch", CASES)
def test_square_functions_match_numpy(dtype, how, batch):
    rng = np.random.default_rng(len(batch) * 7 + len(how) + (dtype == "float64"))
    for n in (1, 3, 4):
        a = rounded(rand(rng, batch + (n, n), "well"), dtype)
        s = rounded(rand(rng, batch + (n, n), "spd"), dtype)
        x, xs = view(a, dtype, how), view(s, dtype, how)
        tril, triu = np.tril(a), np.triu(a)
        close(L.inv(x), np.linalg.inv(a), dtype)
        close(L.tri_inv(x), np.linalg.inv(tril), dtype)
        close(L.tri_inv(x, upper=True), np.linalg.inv(triu), dtype)
        close(L.cholesky(xs), np.linalg.cholesky(s), dtype)
        close(L.cholesky(xs, upper=True), np.swapaxes(np.linalg.cholesky(s), -1, -2), dtype)
        factor = np.linalg.cholesky(s)
        close(L.cholesky_inv(view(factor, dtype, how)), np.linalg.inv(s), dtype, 10)
        close(L.cholesky_inv(view(np.swapaxes(factor, -1, -2), dtype, how), upper=True), np.linalg.inv(s), dtype, 10)
        close(L.det(x), np.linalg.det(a), dtype)
        sign, logdet = L.slogdet(x)
        ref = np.linalg.slogdet(a)
        close(sign, ref[0], dtype)
        close(logdet, ref[1], dtype)
        w, v = L.eigh(xs)
        close(w, np.linalg.eigvalsh(s), dtype, 10)
        close((v * mx.expand_dims(w, -2)) @ v.mT, s, dtype, 10)
        close(L.eigvalsh(x, UPLO="U"), np.linalg.eigvalsh(a, UPLO="U"), dtype, 10)
        close(L.eigvalsh(x), np.linalg.eigvalsh(a, UPLO="L"), dtype, 10)
        ev = L.eigvals(x)
        assert ev.dtype == mx.complex64
        assert_same_eigenvalues(as_np(ev), np.linalg.eigvals(a), 1e-4)


@pytest.mark.parametrize("dtype,how,batch", CASES)
def test_rectangular_functions_match_numpy(dtype, how, batch):
    rng = np.random.default_rng(len(batch) * 5 + len(how) + (dtype == "float64"))
    for m, n in ((1, 1), (4, 3), (3, 5)):
        a = rounded(rand(rng, batch + (m, n)), dtype)
        x, k = view(a, dtype, how), min(m, n)
        q, r = L.qr(x)
        assert q.shape == batch + (m, k) and r.shape == batch + (k, n)
        close(q @ r, a, dtype)
        close(q.mT @ q, np.broadcast_to(np.eye(k), batch + (k, k)), dtype)
        np.testing.assert_array_equal(as_np(mx.tril(r, -1)), 0)
        np.testing.assert_allclose(np.abs(as_np(r)), np.abs(np.linalg.qr(a)[1]), atol=TOL[dtype] * 10)
        u, s, vt = L.svd(x)
        assert u.shape == batch + (m, m) and s.shape == batch + (k,) and vt.shape == batch + (n, n)
        close(s, np.linalg.svd(a, compute_uv=False), dtype)
        close(L.svd(x, compute_uv=False), np.linalg.svd(a, compute_uv=False), dtype)
        close((u[..., :, :k] * mx.expand_dims(s, -2)) @ vt[..., :k, :], a, dtype)
        close(u.mT @ u, np.broadcast_to(np.eye(m), batch + (m, m)), dtype)
        close(vt @ vt.mT, np.broadcast_to(np.eye(n), batch + (n, n)), dtype)
        close(L.pinv(x), np.linalg.pinv(a), dtype, 10)
        p, low, up = L.lu(x)
        assert p.dtype == mx.uint32 and low.shape == batch + (m, k) and up.shape == batch + (k, n)
        rows = mx.take_along_axis(low, mx.expand_dims(p, -1).astype(mx.int32), axis=-2)
        close(rows @ up, a, dtype)
        np.testing.assert_array_equal(as_np(mx.triu(low, 1)), 0)
        np.testing.assert_array_equal(np.diagonal(as_np(low), axis1=-2, axis2=-1), 1)
        np.testing.assert_array_equal(as_np(mx.tril(up, -1)), 0)
        assert np.abs(as_np(low)).max() <= 1 + 1e-6  # partial pivoting
        lu_, piv = L.lu_factor(x)
        assert piv.dtype == mx.uint32 and piv.shape == batch + (k,)
        close(mx.tril(lu_[..., :, :k], -1), as_np(mx.tril(low, -1)), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_solve_shapes_and_broadcasting(dtype):
    rng = np.random.default_rng(3)
    a = rounded(rand(rng, (2, 1, 3, 3), "well"), dtype)
    for bshape in [(3,), (3, 2), (4, 3, 1), (2, 4, 3, 2), (1, 3, 2)]:
        b = rounded(rand(rng, bshape), dtype)
        x, y = view(a, dtype, "T"), view(b, dtype, "step" if len(bshape) > 1 else "")
        want = np.linalg.solve(a, b[..., None])[..., 0] if b.ndim == 1 else np.linalg.solve(a, b)
        close(L.solve(x, y), want, dtype)
        for upper, tri in ((False, np.tril(a)), (True, np.triu(a))):
            want = np.linalg.solve(tri, b[..., None])[..., 0] if b.ndim == 1 else np.linalg.solve(tri, b)
            close(L.solve_triangular(x, y, upper=upper), want, dtype)
    # dtypes promote as in MLX: an integer or float16 b takes a's type, float64 wins
    a32 = mx.array(np.eye(2) * 2, dtype=mx.float32)
    assert L.solve(a32, mx.array([2, 4])).dtype == mx.float32
    assert L.solve(a32, mx.array([2.0, 4.0], dtype=mx.float16)).dtype == mx.float32
    assert L.solve(a32, mx.array([2.0, 4.0], dtype=mx.float64)).dtype == mx.float64
    assert L.solve_triangular(a32, mx.array([2, 4])).tolist() == [1.0, 2.0]


def test_empty_and_one_by_one():
    for shape in [(0, 0), (2, 0, 0), (0, 3, 3)]:
        n = shape[-1]
        x = mx.zeros(shape)
        for f in (L.inv, L.tri_inv, L.cholesky, L.cholesky_inv, L.pinv):
            assert f(x).shape == shape[:-2] + (n, n)
        assert L.solve(x, mx.zeros(shape[:-1] + (2,))).shape == shape[:-1] + (2,)
        assert L.solve_triangular(x, mx.zeros(shape[:-1] + (1,))).shape == shape[:-1] + (1,)
        assert L.solve(mx.zeros((0, 0)), mx.zeros((0,))).shape == (0,)
        w, v = L.eigh(x)
        assert w.shape == shape[:-1] and v.shape == shape
        w, v = L.eig(x)
        assert w.shape == shape[:-1] and w.dtype == mx.complex64 and v.shape == shape
        assert as_np(L.det(x)).tolist() == (np.ones(shape[:-2]).tolist() if n == 0 else [])
        sign, logdet = L.slogdet(x)
        assert as_np(sign).tolist() == as_np(L.det(x)).tolist() and np.all(as_np(logdet) == 0)
        p, low, up = L.lu(x)
        assert p.shape == shape[:-1] and low.shape == shape and up.shape == shape
    for shape, qs, rs in [((0, 3), (0, 0), (0, 3)), ((3, 0), (3, 0), (0, 0))]:
        q, r = L.qr(mx.zeros(shape))
        assert q.shape == qs and r.shape == rs
        u, s, vt = L.svd(mx.zeros(shape))
        assert u.shape == (shape[0],) * 2 and s.shape == (0,) and vt.shape == (shape[1],) * 2
        assert L.pinv(mx.zeros(shape)).shape == shape[::-1]
        assert L.lu_factor(mx.zeros(shape))[1].shape == (0,)
    one = mx.array([[4.0]])
    assert L.inv(one).tolist() == [[0.25]] and L.cholesky(one).tolist() == [[2.0]]
    assert L.det(one).item() == 4.0 and L.eigvalsh(one).tolist() == [4.0]
    assert [t.tolist() for t in L.lu(one)] == [[0], [[1.0]], [[4.0]]]


def test_singular_not_positive_definite_and_nan():
    singular = mx.array([[1.0, 2.0], [2.0, 4.0]])
    for f in (L.inv, lambda a: L.solve(a, mx.ones((2,))), lambda a: L.tri_inv(a - mx.tril(a))):
        with pytest.raises(RuntimeError, match=r"^\[linalg::\w+\] The matrix is singular"):
            mx.eval(f(singular))
    with pytest.raises(RuntimeError, match="singular"):
        mx.eval(L.cholesky_inv(mx.zeros((3, 3))))
    # exactly singular determinants, also where the LU meets a vanishing column
    for a in (singular, mx.ones((3, 3)), mx.array([[0.0, 1, 2], [0, 3, 4], [0, 5, 6]])):
        assert L.det(a).item() == 0.0
        sign, logdet = L.slogdet(a)
        assert sign.item() == 0.0 and logdet.item() == -math.inf
    assert L.slogdet(-mx.eye(3))[0].item() == -1.0
    assert np.all(np.isnan(as_np(L.cholesky(-mx.eye(3)))))  # not positive definite
    good = L.cholesky(mx.stack([mx.eye(2), -mx.eye(2)]))
    assert as_np(good)[0].tolist() == [[1, 0], [0, 1]] and np.all(np.isnan(as_np(good)[1]))
    # NaN in, NaN out (only for the matrix that holds it)
    a = mx.array(np.stack([np.eye(3), np.full((3, 3), NAN)]))
    for outs in (L.svd(a), [L.svd(a, compute_uv=False)], L.eigh(a), [L.eigvalsh(a)], L.eig(a), [L.eigvals(a)],
                 [L.det(a)], [L.inv(a)], [L.pinv(a)], [L.norm(a, 2, axis=(1, 2))]):
        for o in outs:
            o = as_np(o)
            assert np.all(np.isnan(o[1])) and not np.any(np.isnan(o[0]))
    assert np.isnan(L.slogdet(mx.full((2, 2), NAN))[0].item())  # NumPy's sign; MLX says 0
    assert np.all(np.isnan(as_np(L.svd(mx.array([[1.0, math.inf], [0.0, 1.0]]), compute_uv=False))))


def test_zero_pivot_columns_of_lu_are_zero():
    """LAPACK (and MLX) leave a column with a zero pivot unscaled."""
    p, low, up = L.lu(mx.ones((3, 3)))
    assert as_np(low).tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert as_np(up).tolist() == [[1, 1, 1], [0, 0, 0], [0, 0, 0]]


def test_pinv_cutoff():
    """MLX's (and NumPy-like) cutoff: singular values up to 10 * max(m, n) * eps times the
    largest are dropped."""
    for dtype, npdt in (("float32", np.float32), ("float64", np.float64)):
        eps = np.finfo(npdt).eps
        for m, n in ((2, 2), (2, 5)):
            cut = 10 * max(m, n) * eps
            for s, kept in ((cut * 0.9, False), (cut * 1.1, True)):
                a = np.zeros((m, n), npdt)
                a[0, 0], a[1, 1] = 1, s
                got = as_np(L.pinv(mx.array(a, dtype=getattr(mx, dtype))))
                assert (got[1, 1] != 0) == kept and got[0, 0] == 1
    assert as_np(L.pinv(mx.zeros((3, 2)))).tolist() == np.zeros((2, 3)).tolist()


def test_complex_eig_and_eigvals():
    rng = np.random.default_rng(7)
    for n in (1, 3, 5):
        a = (rng.standard_normal((2, n, n)) + 1j * rng.standard_normal((2, n, n))).astype(np.complex64)
        w, v = L.eig(mx.array(a))
        w, v = as_np(w), as_np(v)
        # A v = v diag(w), unit columns; eigenvalues as NumPy's up to order
        np.testing.assert_allclose(a @ v, v * w[..., None, :], atol=1e-4 * max(1, np.abs(a).max()) * n)
        np.testing.assert_allclose(np.linalg.norm(v, axis=-2), 1, rtol=1e-5)
        assert_same_eigenvalues(as_np(L.eigvals(mx.array(a))), np.linalg.eigvals(a.astype(np.complex128)), 1e-4 * n)


def test_complex_svd_and_eigh():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((2, 3, 4)) + 1j * rng.standard_normal((2, 3, 4))
    x = mx.array(z.astype(np.complex64))
    u, s, vt = L.svd(x)
    assert u.dtype == mx.complex64 and s.dtype == mx.float32 and vt.dtype == mx.complex64
    np.testing.assert_allclose(as_np(s), np.linalg.svd(z, compute_uv=False), rtol=1e-5)
    rec = (u[..., :, :3] * mx.expand_dims(s, -2).astype(mx.complex64)) @ vt[..., :3, :]
    np.testing.assert_allclose(as_np(rec), z, atol=1e-5)
    h = z[..., :3]
    for uplo in ("L", "U"):
        herm = np.tril(h) if uplo == "L" else np.triu(h)
        herm = herm + np.conj(np.swapaxes(herm, -1, -2)) - np.eye(3) * np.diagonal(herm, axis1=-2, axis2=-1)[..., None, :]
        herm = herm - 1j * np.eye(3) * herm.imag  # the imaginary part of the diagonal is not read
        w, v = L.eigh(mx.array(h.astype(np.complex64)), UPLO=uplo)
        assert w.dtype == mx.float32 and v.dtype == mx.complex64
        np.testing.assert_allclose(as_np(w), np.linalg.eigvalsh(herm), atol=1e-5)
        vn = as_np(v)
        np.testing.assert_allclose((vn * as_np(w)[..., None, :]) @ np.conj(np.swapaxes(vn, -1, -2)), herm, atol=1e-5)
        w = L.eigvalsh(mx.array(h.astype(np.complex64)), UPLO=uplo)
        np.testing.assert_allclose(as_np(w), np.linalg.eigvalsh(herm), atol=1e-5)


def test_eig_vectors_are_normalised_like_lapack():
    rng = np.random.default_rng(5)
    a = rand(rng, (3, 4, 4))
    w, v = L.eig(mx.array(a, dtype=mx.float64))
    assert w.dtype == mx.complex64 and v.dtype == mx.complex64
    vn, wn = as_np(v).astype(np.complex128), as_np(w).astype(np.complex128)
    np.testing.assert_allclose(a @ vn, vn * wn[..., None, :], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vn, axis=-2), 1, rtol=1e-6)
    big = np.take_along_axis(vn, np.abs(vn).argmax(axis=-2)[..., None, :], axis=-2)
    np.testing.assert_allclose(big.imag, 0, atol=1e-7)
    assert np.all(big.real > 0)


# ---------------------------------------------------------------- norm and cross
VECTOR_ORDS = [None, math.inf, -math.inf, 0, 1, -1, 2, -2, 3, 0.5]
MATRIX_ORDS = [None, "fro", "nuc", math.inf, -math.inf, 1, -1, 2, -2]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.filterwarnings("ignore:divide by zero")  # NumPy's own negative ords of a 0
def test_norm_matches_numpy(dtype):
    rng = np.random.default_rng(6)
    a = rounded(rand(rng, (3, 4, 5)), dtype)
    a[0, 0, 0] = 0.0
    x = view(a, dtype, "T")  # the transposed view of a (3, 5, 4) array: logical value a
    for o in VECTOR_ORDS:
        for axis in (0, 1, -1):
            for keep in (False, True):
                close(L.norm(x, o, axis=axis, keepdims=keep), np.linalg.norm(a, o, axis=axis, keepdims=keep), dtype, 10)
        close(L.norm(x[0, 0], o), np.linalg.norm(a[0, 0], o), dtype, 10)
    for o in MATRIX_ORDS:
        for axis in ((1, 2), (2, 0), (-1, -3)):
            for keep in (False, True):
                close(L.norm(x, o, axis=axis, keepdims=keep), np.linalg.norm(a, o, axis=axis, keepdims=keep), dtype, 10)
        close(L.norm(x[1], o), np.linalg.norm(a[1], o), dtype, 10)
    close(L.norm(x), np.linalg.norm(a.reshape(-1)), dtype)
    assert L.norm(x, keepdims=True).shape == (1, 1, 1)
    assert mx.matrix_norm is L.norm  # as in MLX, the same function


def test_norm_dtypes_and_edge_cases():
    assert L.norm(mx.array([3, 4])).item() == 5.0 and L.norm(mx.array([3, 4])).dtype == mx.float32
    assert L.norm(mx.array([17, 12], dtype=mx.uint8)).item() == pytest.approx(math.hypot(17, 12))  # no wrap
    assert L.norm(mx.array([True, True, False, True]), 0).item() == 3.0
    assert L.norm(mx.ones((4,), dtype=mx.float16), 3).dtype == mx.float16
    assert L.norm(mx.ones((4,), dtype=mx.bfloat16), 1).dtype == mx.bfloat16
    z = mx.array([3 + 4j, 1j])
    for o in (None, 1, 2, 3, math.inf, -math.inf, 0):
        got = L.norm(z, o)
        assert got.dtype == mx.float32
        assert got.item() == pytest.approx(np.linalg.norm(np.array([3 + 4j, 1j]), o), rel=1e-6)
    zz = mx.array([[3 + 4j, 1j], [1.0, 2j]])
    for o in MATRIX_ORDS:
        assert L.norm(zz, o).item() == pytest.approx(np.linalg.norm(np.array(zz.tolist()), o), rel=1e-5)
    assert L.norm(mx.zeros((0,))).item() == 0.0 and L.norm(mx.zeros((0,)), -1).item() == math.inf
    assert L.norm(mx.zeros((0, 3)), "nuc").item() == 0.0 and L.norm(mx.zeros((0, 3)), 1).item() == 0.0
    with pytest.raises(ValueError):
        L.norm(mx.zeros((0,)), math.inf)
    assert L.norm(mx.array([-1.0, 2.0]), axis=()).tolist() == [1.0, 2.0]  # no axis: |x|, as MLX
    assert L.norm(mx.eye(2), ord=np.float32(2)).item() == 1.0
    assert L.norm(mx.eye(2), ord=mx.array(2.0)).item() == 1.0
    assert L.norm(mx.eye(2), ord=True).item() == 1.0  # ord 1


def test_cross_matches_numpy_and_mlx_rules():
    rng = np.random.default_rng(7)
    a, b = rand(rng, (4, 3)), rand(rng, (2, 1, 3))
    close(L.cross(mx.array(a, dtype=mx.float64), mx.array(b, dtype=mx.float64)), np.cross(a, b), "float64")
    at, bt = rand(rng, (3, 5)), rand(rng, (3, 5))
    close(L.cross(view(at, "float64", "step"), view(bt, "float64", "T"), axis=0), np.cross(at, bt, axis=0), "float64")
    pad = np.pad(a[:, :2], ((0, 0), (0, 1)))
    close(L.cross(mx.array(a[:, :2], dtype=mx.float64), mx.array(a, dtype=mx.float64)), np.cross(pad, a), "float64")
    # a missing third component takes part in no product: no inf * 0
    assert L.cross(mx.array([1.0, 2.0]), mx.array([3.0, math.inf, 4.0])).tolist() == [8.0, -4.0, math.inf]
    assert L.cross(mx.array([1, 2]), mx.array([3, 4])).tolist() == [0, 0, -2]
    assert L.cross(mx.array([1, 2], dtype=mx.uint8), mx.array([3, 4, 5], dtype=mx.uint8)).tolist() == [10, 251, 254]
    assert L.cross(mx.ones((0, 3)), mx.ones((0, 3))).shape == (0, 3)


# ---------------------------------------------------------------- transforms vs PyTorch
def _sym(t, upper=False):
    return (t.triu() + t.triu(1).mT) if upper else (t.tril() + t.tril(-1).mT)


def _signfree_svd(m, full):
    def f(a):
        if m is torch:
            u, s, vt = torch.linalg.svd(a, full_matrices=False)
        else:
            u, s, vt = L.svd(a)
        k = s.shape[-1]
        uk, vk = u[..., :, :k], vt[..., :k, :]
        return [s, uk * uk[..., :1, :], vk * vk[..., :, :1]] if full else [s]

    return f


def _signfree_eigh(m, upper=False):
    def f(a):
        w, v = torch.linalg.eigh(_sym(a, upper)) if m is torch else L.eigh(a, UPLO="U" if upper else "L")
        return [w, v * v[..., :1, :]]

    return f


def _grad_cases():
    T = torch.linalg if torch is not None else None
    return [
        ("inv", L.inv, lambda a: T.inv(a), [(2, 3, 3)], "well"),
        ("tri_inv", lambda a: L.tri_inv(a, upper=True), lambda a: T.inv(a.triu()), [(3, 3)], "well"),
        ("solve", L.solve, lambda a, b: T.solve(a, b), [(2, 3, 3), (2, 3, 2)], "well"),
        ("solve-vector", L.solve, lambda a, b: T.solve(a, b), [(3, 3), (3,)], "well"),
        ("solve_triangular", L.solve_triangular, lambda a, b: T.solve_triangular(a.tril(), b, upper=False),
         [(3, 3), (3, 2)], "well"),
        ("cholesky", L.cholesky, lambda a: T.cholesky(_sym(a)), [(2, 3, 3)], "spd"),
        ("cholesky-upper", lambda a: L.cholesky(a, upper=True), lambda a: T.cholesky(_sym(a, True)).mT, [(3, 3)], "spd"),
        ("cholesky_inv", L.cholesky_inv, lambda a: T.inv(a.tril() @ a.tril().mT), [(3, 3)], "well"),
        ("qr-tall", L.qr, lambda a: T.qr(a), [(2, 4, 3)], "any"),
        ("qr-wide", L.qr, lambda a: T.qr(a), [(3, 5)], "any"),
        ("svd-tall", _signfree_svd(mx, True), _signfree_svd(torch, True), [(5, 3)], "any"),
        ("svd-wide", _signfree_svd(mx, True), _signfree_svd(torch, True), [(2, 3, 4)], "any"),
        ("svd-values", lambda a: L.svd(a, compute_uv=False), lambda a: T.svdvals(a), [(3, 4)], "any"),
        ("eigh", _signfree_eigh(mx), _signfree_eigh(torch), [(2, 3, 3)], "any"),
        ("eigh-upper", _signfree_eigh(mx, True), _signfree_eigh(torch, True), [(3, 3)], "any"),
        ("eigvalsh", L.eigvalsh, lambda a: T.eigvalsh(_sym(a)), [(3, 3)], "any"),
        ("det", L.det, lambda a: T.det(a), [(2, 3, 3)], "any"),
        ("slogdet", lambda a: L.slogdet(a)[1], lambda a: T.slogdet(a)[1], [(3, 3)], "any"),
        ("pinv", L.pinv, lambda a: T.pinv(a), [(2, 4, 3)], "any"),
        ("norm-nuc", lambda a: L.norm(a, "nuc", axis=(1, 2)), lambda a: T.matrix_norm(a, "nuc"), [(2, 4, 3)], "any"),
        ("norm-2", lambda a: L.norm(a, 2), lambda a: T.matrix_norm(a, 2), [(4, 3)], "any"),
        ("norm-vector", lambda a: L.norm(a, 3, axis=0), lambda a: T.vector_norm(a, 3, dim=0), [(4, 3)], "any"),
        ("cross", L.cross, lambda a, b: T.cross(a, b), [(2, 3), (2, 3)], "any"),
    ]


def _flat(o):
    return list(o) if isinstance(o, (list, tuple)) else [o]


@needs_torch
@pytest.mark.parametrize("case", _grad_cases(), ids=lambda c: c[0])
def test_vjp_jvp_match_torch(case):
    name, f_ox, f_t, shapes, kind = case
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    xs = [rand(rng, s, kind if len(s) >= 2 and s[-1] == s[-2] else "any") for s in shapes]
    outs = _flat(f_ox(*[mx.array(x, dtype=mx.float64) for x in xs]))
    cots = [rng.standard_normal(o.shape) for o in outs]
    tans = [rng.standard_normal(x.shape) for x in xs]
    tx = [torch.tensor(x, requires_grad=True) for x in xs]
    loss = sum((o * torch.tensor(c)).sum() for o, c in zip(_flat(f_t(*tx)), cots))
    want_g = torch.autograd.grad(loss, tx)
    primals_t, tangents_t = tuple(torch.tensor(x) for x in xs), tuple(torch.tensor(t) for t in tans)
    _, want_t = torch.func.jvp(lambda *a: tuple(_flat(f_t(*a))), primals_t, tangents_t)
    f = lambda *a: _flat(f_ox(*a))  # noqa: E731
    _, got_g = mx.vjp(f, [mx.array(x, dtype=mx.float64) for x in xs], [mx.array(c, dtype=mx.float64) for c in cots])
    _, got_t = mx.jvp(f, [mx.array(x, dtype=mx.float64) for x in xs], [mx.array(t, dtype=mx.float64) for t in tans])
    for g, w in zip(got_g, want_g):
        np.testing.assert_allclose(as_np(g), w.numpy(), rtol=1e-7, atol=1e-9, err_msg=f"{name} vjp")
    for g, w in zip(got_t, want_t):
        np.testing.assert_allclose(as_np(g), w.numpy(), rtol=1e-7, atol=1e-9, err_msg=f"{name} jvp")


@needs_torch
@pytest.mark.parametrize("name", ["inv", "cholesky", "svd-values", "eigvalsh", "qr-tall", "det", "pinv"])
def test_second_order_matches_torch(name):
    _, f_ox, f_t, shapes, kind = next(c for c in _grad_cases() if c[0] == name)
    rng = np.random.default_rng(8)
    x = rand(rng, shapes[0], kind)
    v = rng.standard_normal(x.shape)
    loss_ox = lambda a: sum(mx.sum(o**3) for o in _flat(f_ox(a)))  # noqa: E731
    got = mx.grad(lambda a: mx.sum(mx.grad(loss_ox)(a) * mx.array(v, dtype=mx.float64)))(mx.array(x, dtype=mx.float64))
    tx = torch.tensor(x, requires_grad=True)
    g = torch.autograd.grad(sum((o**3).sum() for o in _flat(f_t(tx))), tx, create_graph=True)[0]
    want = torch.autograd.grad((g * torch.tensor(v)).sum(), tx)[0]
    np.testing.assert_allclose(as_np(got), want.numpy(), rtol=1e-6, atol=1e-8)


def test_det_gradient_of_singular_matrices_is_the_cofactor_matrix():
    """d det / dA = cof(A), defined (and non-zero at rank n - 1) for singular A too."""
    for a, cof in (([[1.0, 2.0], [2.0, 4.0]], [[4.0, -2.0], [-2.0, 1.0]]),
                   ([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], [[-3, 6, -3], [6, -12, 6], [-3, 6, -3]])):
        g = mx.grad(L.det)(mx.array(a, dtype=mx.float64))
        np.testing.assert_allclose(as_np(g), cof, atol=1e-12)


@pytest.mark.parametrize("name,f,shapes,kind", [
    ("inv", L.inv, [(3, 3)], "well"), ("solve", L.solve, [(3, 3), (3,)], "well"),
    ("solve_triangular", lambda a, b: L.solve_triangular(a, b, upper=True), [(3, 3), (3, 2)], "well"),
    ("cholesky", L.cholesky, [(3, 3)], "spd"), ("qr", L.qr, [(4, 3)], "any"), ("svd", L.svd, [(3, 4)], "any"),
    ("eigh", L.eigh, [(3, 3)], "any"), ("eig", L.eig, [(3, 3)], "any"), ("lu", L.lu, [(3, 4)], "any"),
    ("lu_factor", L.lu_factor, [(4, 3)], "any"), ("det", L.det, [(3, 3)], "any"), ("slogdet", L.slogdet, [(3, 3)], "any"),
    ("pinv", L.pinv, [(4, 3)], "any"), ("tri_inv", L.tri_inv, [(3, 3)], "well"),
    ("cholesky_inv", L.cholesky_inv, [(3, 3)], "well"),
])
def test_vmap_matches_a_loop(name, f, shapes, kind):
    rng = np.random.default_rng(9)
    per = [[rand(rng, s, kind if len(s) >= 2 and s[-1] == s[-2] else "any") for _ in range(3)] for s in shapes]
    for axes in [(0,) * len(shapes), (1,) + (None,) * (len(shapes) - 1), (None,) * (len(shapes) - 1) + (-1,)]:
        args = [mx.array(np.stack(p, axis=ax) if ax is not None else p[0], dtype=mx.float64) for p, ax in zip(per, axes)]
        got = _flat(mx.vmap(f, in_axes=axes)(*args))
        for i in range(3):
            one = _flat(f(*[mx.array(p[i] if ax is not None else p[0], dtype=mx.float64) for p, ax in zip(per, axes)]))
            for g, o in zip(got, one):
                if name == "slogdet" and mx.default_device() == mx.gpu:
                    # batched and single slogdet differ in the last bit on the GPU (seen:
                    # 2.8e-17, 1 ulp; batched against single LU or reduction kernels)
                    np.testing.assert_array_max_ulp(as_np(g)[i], as_np(o), maxulp=2)
                    continue
                np.testing.assert_array_equal(as_np(g)[i], as_np(o), err_msg=f"{name} {axes}")


def test_not_differentiable_functions_raise():
    a = mx.array(np.eye(3) + 0.1)
    for f in (lambda a: L.lu(a)[1], lambda a: L.lu_factor(a)[0], lambda a: mx.real(L.eigvals(a)), lambda a: mx.real(L.eig(a)[1])):
        with pytest.raises(ValueError, match=r"\[linalg::\w+\] Not differentiable"):
            mx.grad(lambda x: mx.sum(f(x)))(a)
        with pytest.raises(ValueError, match="Not differentiable"):
            mx.jvp(f, [a], [a])
    with pytest.raises(ValueError, match="complex"):
        mx.grad(lambda x: mx.sum(L.svd(x, compute_uv=False)))(mx.array(np.eye(2), dtype=mx.complex64))


def test_streams():
    a = mx.array([[2.0, 1.0], [1.0, 3.0]])
    want = np.linalg.inv(np.array([[2.0, 1.0], [1.0, 3.0]]))
    for s in (None, mx.cpu, mx.default_device()):
        np.testing.assert_allclose(as_np(L.inv(a, stream=s)), want, rtol=1e-6)
        assert L.norm(a, 2, stream=s).item() == pytest.approx(np.linalg.norm(np.array(a.tolist()), 2), rel=1e-6)


# ---------------------------------------------------------------- argument errors vs MLX
def _errors():
    f32 = lambda m, s, t="float32": m.ones(s, dtype=getattr(m, t))  # noqa: E731
    return [
        ("inv", lambda m: m.linalg.inv(f32(m, (3, 3), "int32"))),
        ("inv", lambda m: m.linalg.inv(f32(m, (3,)))),
        ("inv", lambda m: m.linalg.inv(f32(m, (3, 4)))),
        ("inv", lambda m: m.linalg.inv(f32(m, (3, 3), "complex64"))),
        ("tri_inv", lambda m: m.linalg.tri_inv(f32(m, (2, 3)))),
        ("tri_inv", lambda m: m.linalg.tri_inv(f32(m, (3, 3)), upper=1)),
        ("cholesky", lambda m: m.linalg.cholesky(f32(m, (3, 3), "float16"))),
        ("cholesky", lambda m: m.linalg.cholesky(f32(m, (3, 4)))),
        ("cholesky_inv", lambda m: m.linalg.cholesky_inv(f32(m, (3,)))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3, 3)), f32(m, (4,)))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3, 3)), f32(m, ()))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3,)), f32(m, (3,)))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3, 2)), f32(m, (3,)))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3, 3), "int32"), f32(m, (3,), "int32"))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3, 3), "int32"), f32(m, (3,)))),
        ("solve", lambda m: m.linalg.solve(f32(m, (3, 3)), f32(m, (3,), "complex64"))),
        ("solve_triangular", lambda m: m.linalg.solve_triangular(f32(m, (3, 3)), f32(m, (2, 3)))),
        ("solve_triangular", lambda m: m.linalg.solve_triangular(f32(m, (3, 3), "float16"), f32(m, (3,)))),
        ("qr", lambda m: m.linalg.qr(f32(m, (3, 3), "complex64"))),
        ("qr", lambda m: m.linalg.qr(f32(m, (3,)))),
        ("svd", lambda m: m.linalg.svd(f32(m, (3, 3), "int32"))),
        ("svd", lambda m: m.linalg.svd(f32(m, (3,)))),
        ("svd", lambda m: m.linalg.svd(f32(m, (3, 3)), None)),
        ("eigh", lambda m: m.linalg.eigh(f32(m, (3, 4)))),
        ("eigh", lambda m: m.linalg.eigh(f32(m, (3, 3)), UPLO=1)),
        ("eigvalsh", lambda m: m.linalg.eigvalsh(f32(m, (3, 3), "float16"))),
        ("eig", lambda m: m.linalg.eig(f32(m, (3, 4)))),
        ("eigvals", lambda m: m.linalg.eigvals(f32(m, (3,)))),
        ("lu", lambda m: m.linalg.lu(f32(m, (3, 3), "int32"))),
        ("lu_factor", lambda m: m.linalg.lu_factor(f32(m, (3,)))),
        ("det", lambda m: m.linalg.det(f32(m, (3, 3), "complex64"))),
        ("det", lambda m: m.linalg.det(f32(m, (3, 4)))),
        ("slogdet", lambda m: m.linalg.slogdet(f32(m, (3,)))),
        ("pinv", lambda m: m.linalg.pinv(f32(m, (3, 3), "int32"))),
        ("cross", lambda m: m.linalg.cross(f32(m, (4,)), f32(m, (4,)))),
        ("cross", lambda m: m.linalg.cross(f32(m, (3, 2)), f32(m, (3, 2)), axis=2)),
        ("cross", lambda m: m.linalg.cross(f32(m, (3,)), f32(m, (3,)), axis=0.0)),
        ("norm", lambda m: m.linalg.norm(f32(m, (2, 3, 4)), 2)),
        ("norm", lambda m: m.linalg.norm(f32(m, (3,)), "fro")),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), 3)),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), "foo")),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), axis=(0, 1, 1))),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), 1, axis=(0, 2))),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), None, axis=(1, 1))),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), axis=3)),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3), "int32"), 2)),
        ("norm", lambda m: m.linalg.norm(f32(m, (3, 3)), keepdims=1)),
        ("norm", lambda m: m.linalg.norm([1.0, 2.0])),
    ]


@needs_mlx
@pytest.mark.parametrize("i", range(len(_errors())))
def test_errors_match_mlx(i):
    name, call = _errors()[i]
    with pytest.raises(Exception) as ref:
        kw = {"stream": mlx.cpu}
        mlx.eval(call(_CpuMLX(kw)))
    with pytest.raises(Exception) as got:
        mx.eval(call(mx))
    assert isinstance(got.value, ref.type), f"MLX {ref.type.__name__}: {ref.value}; oxmx {got.type.__name__}: {got.value}"
    if isinstance(got.value, ValueError):  # the function's name, or the one MLX names
        prefixes = (f"[linalg::{name}]", str(ref.value).split("]")[0] + "]")
        assert str(got.value).startswith(prefixes), str(got.value)


class _CpuMLX:
    """mlx.core with linalg calls on the CPU stream (as MLX requires)."""

    def __init__(self, kw):
        self._kw = kw
        self.linalg = self

    def __getattr__(self, name):
        if hasattr(mlx.linalg, name):
            f = getattr(mlx.linalg, name)
            return lambda *a, **k: f(*a, **{**self._kw, **k})
        return getattr(mlx, name)


# ---------------------------------------------------------------- conventions vs MLX
@needs_mlx
def test_lu_qr_pinv_eig_agree_with_mlx():
    rng = np.random.default_rng(10)
    for shape in [(4, 4), (2, 3, 5), (5, 3)]:
        a = rand(rng, shape).astype(np.float32)
        p, low, up = L.lu(mx.array(a))
        pm, lm, um = mlx.linalg.lu(mlx.array(a), stream=mlx.cpu)
        assert as_np(p).tolist() == np.array(pm).tolist()
        np.testing.assert_allclose(as_np(low), np.array(lm), atol=1e-5)
        np.testing.assert_allclose(as_np(up), np.array(um), atol=1e-5)
        lu_, piv = L.lu_factor(mx.array(a))
        lum, pivm = mlx.linalg.lu_factor(mlx.array(a), stream=mlx.cpu)
        assert as_np(piv).tolist() == np.array(pivm).tolist() and piv.dtype == mx.uint32
        np.testing.assert_allclose(as_np(lu_), np.array(lum), atol=1e-5)
        q, r = L.qr(mx.array(a))
        qm, rm = mlx.linalg.qr(mlx.array(a), stream=mlx.cpu)
        np.testing.assert_allclose(as_np(q), np.array(qm), atol=1e-5)  # the same signs
        np.testing.assert_allclose(as_np(r), np.array(rm), atol=1e-5)
        np.testing.assert_allclose(as_np(L.pinv(mx.array(a))), np.array(mlx.linalg.pinv(mlx.array(a), stream=mlx.cpu)), atol=1e-4)
    a = rand(rng, (4, 4)).astype(np.float32)
    w, v = L.eig(mx.array(a))
    wm, vm = mlx.linalg.eig(mlx.array(a), stream=mlx.cpu)
    order, order_m = np.argsort(as_np(w).round(4)), np.argsort(np.array(wm).round(4))
    np.testing.assert_allclose(as_np(w)[order], np.array(wm)[order_m], atol=1e-4)
    np.testing.assert_allclose(as_np(v)[:, order], np.array(vm)[:, order_m], atol=1e-4)  # LAPACK's phases


@needs_mlx
def test_multivariate_normal_matches_mlx():
    rng = np.random.default_rng(11)
    a = rng.standard_normal((2, 3, 3)).astype(np.float32)
    cov = a @ np.swapaxes(a, -1, -2)
    mean = rng.standard_normal((2, 3)).astype(np.float32)
    for m, c, shape in [(mean, cov, None), (mean[0], cov[0], (4,)), (mean[0], cov, (5, 2)), (mean, cov, (1,))]:
        kw = {} if shape is None else {"shape": shape}
        got = mx.random.multivariate_normal(mx.array(m), mx.array(c), key=mx.random.key(5), **kw)
        want = mlx.random.multivariate_normal(mlx.array(m), mlx.array(c), key=mlx.random.key(5), stream=mlx.cpu, **kw)
        assert got.shape == want.shape and got.dtype == mx.float32
        np.testing.assert_allclose(as_np(got), np.array(want), rtol=1e-4, atol=1e-4)
    for args, kw in [((mean[0, 0], cov[0]), {}), ((mean[0], cov[0, 0]), {}), ((mean[0], cov[0, :2]), {}),
                     ((mean[0, :2], cov[0]), {}), ((mean[0], cov[0]), {"dtype": "float64"}), ((mean, cov), {"shape": (4,)})]:
        kw_ox = {k: getattr(mx, v) if k == "dtype" else v for k, v in kw.items()}
        kw_m = {k: getattr(mlx, v) if k == "dtype" else v for k, v in kw.items()}
        with pytest.raises(ValueError) as e:
            mlx.random.multivariate_normal(*[mlx.array(x) for x in args], stream=mlx.cpu, **kw_m)
        with pytest.raises(ValueError, match=r"^\[(multivariate_normal|broadcast_shapes)\]") as g:
            mx.random.multivariate_normal(*[mx.array(x) for x in args], **kw_ox)
        assert str(e.value).split("]")[0] == str(g.value).split("]")[0]


def test_multivariate_normal_statistics():
    cov = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    x = as_np(mx.random.multivariate_normal(mx.array([1.0, -1.0, 0.0]), mx.array(cov), shape=(20000,), key=mx.random.key(0)))
    np.testing.assert_allclose(x.mean(axis=0), [1.0, -1.0, 0.0], atol=0.05)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.05)
