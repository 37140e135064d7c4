"""oxmx.core.linalg — MLX's ``mlx.core.linalg``.

The factorizations run as native nodes (``_oxmx._linalg``, batched over the leading
dimensions); everything else is composed from them and oxmx.core ops. Each
differentiable factorization is a ``custom_function`` whose vjp and jvp are the standard
matrix-calculus formulas, written with these same functions (so they differentiate
again), and whose vmap moves the mapped axes to the front and calls the batched node once.

Unlike MLX, no CPU stream is needed: every function runs on the default device, and
``stream=`` is accepted and honoured as elsewhere in oxmx.core.
"""

import contextlib as _contextlib
import math as _math
import numbers as _numbers

import oxmx.core as _mx
from oxmx import _oxmx as _native
from oxmx._errors import AxisError as _AxisError
from oxmx._oxmx import array as _array

from ._device import stream as _stream
from ._transforms import custom_function as _custom_function

__all__ = [
    "inv", "pinv", "solve", "solve_triangular", "cholesky", "cholesky_inv", "tri_inv", "qr",
    "svd", "eig", "eigh", "eigvals", "eigvalsh", "lu", "lu_factor", "det", "slogdet", "cross",
    "norm",
]


# ================================================================== argument checks
def _on(stream):
    return _contextlib.nullcontext() if stream is None else _stream(stream)


def _name(dtype):
    return str(dtype).rsplit(".", 1)[-1]


def _shape_str(shape):
    return "(" + ",".join(str(s) for s in shape) + ")"


def _real_types():
    return (_mx.float32, _mx.float64)


def _need_array(op, a, what="a"):
    if not isinstance(a, _array):
        raise TypeError(f"[linalg::{op}] {what} must be an array, got {type(a).__name__}.")


def _need_bool(op, what, v):
    if not isinstance(v, bool) and type(v).__name__ != "bool_":
        raise TypeError(f"[linalg::{op}] {what} must be a bool, got {type(v).__name__}.")
    return bool(v)


def _matrix(op, a, complex_ok=False, square=None):
    """MLX's checks, in MLX's order: an array of float32/float64 (or complex64), at least
    2-D, and square when ``square`` (the message) is given."""
    _need_array(op, a)
    ok = _real_types() + ((_mx.complex64,) if complex_ok else ())
    if a.dtype not in ok:
        kinds = "float32, float64 or complex64" if complex_ok else "float32 or float64"
        raise ValueError(f"[linalg::{op}] Arrays must have type {kinds}. Received array with type {_name(a.dtype)}.")
    if a.ndim < 2:
        raise ValueError(f"[linalg::{op}] Arrays must have >= 2 dimensions. Received array with {a.ndim} dimensions.")
    if square is not None and a.shape[-1] != a.shape[-2]:
        raise ValueError(f"[linalg::{op}] {square}")


# ================================================================== matrix helpers
def _T(x):
    return _mx.swapaxes(x, -1, -2)


def _diag(x):
    return _mx.diagonal(x, 0, -2, -1)


def _diag_embed(v):
    """(..., n) -> (..., n, n) with v on the diagonal (no inf * 0 off it)."""
    n = v.shape[-1]
    return _mx.where(_mx.eye(n) > 0, _mx.expand_dims(v, -2), _mx.zeros((), dtype=v.dtype))


def _tri(x, upper, k=0):
    return _mx.triu(x, k) if upper else _mx.tril(x, -k)


def _sym_from(x, upper):
    """The symmetric matrix that has the selected triangle of ``x`` (what the
    factorizations reading one triangle see)."""
    return _tri(x, upper) + _T(_tri(x, upper, 1))


def _sym_adjoint(g, upper):
    """The adjoint of :func:`_sym_from`: off-diagonal entries of the triangle get both
    g_ij and g_ji, the other triangle nothing."""
    return _tri(g, upper) + _tri(_T(g), upper, 1)


def _gap_inv(w):
    """F with F_ij = 1 / (w_j - w_i) off the diagonal and 0 on it."""
    d = _mx.expand_dims(w, -2) - _mx.expand_dims(w, -1)
    n = w.shape[-1]
    return _mx.where(_mx.eye(n) > 0, _mx.zeros((), dtype=w.dtype), 1 / d)


def _expand_to(x, ndim):
    return x.reshape(tuple(x.shape) + (1,) * (ndim - x.ndim))


# ================================================================== native nodes
def _node(kind, xs, upper=False, flag=True):
    """The native node. Its inputs go through stop_gradient: the node has no rules of its
    own (each op's custom_function supplies them), and the transforms then never ask it
    for a tangent while walking the function's body."""
    xs = [_mx.stop_gradient(x) for x in xs]
    return _native._linalg(kind, xs, upper=upper, flag=flag)


def _node_or_nan(kind, a, eye=False, **kw):
    """``kind`` of ``a``, where every output of a matrix holding NaN or inf is NaN (the
    iterative kernels would not converge on it). The kernel sees such a matrix with its
    non-finite entries zeroed, or (``eye``, for kernels that refuse singular input) as
    the identity."""
    finite = _mx.isfinite(a)
    bad = _mx.logical_not(_mx.all(finite, axis=(-2, -1)))
    clean = _mx.where(finite, a, _mx.zeros((), dtype=a.dtype))
    if eye:
        clean = _mx.where(_expand_to(bad, a.ndim), _mx.eye(a.shape[-1], dtype=a.dtype), clean)
    outs = _node(kind, [clean], **kw)
    return [_mx.where(_expand_to(bad, o.ndim), float("nan"), o) for o in outs]


def _front(primals, axes):
    """vmap: the mapped axis of every input moved to the front; inputs without one are
    broadcast along it (the nodes want equal batch shapes)."""
    n = next(p.shape[ax] for p, ax in zip(primals, axes) if ax is not None)
    out = []
    for p, ax in zip(primals, axes):
        if ax is None:
            out.append(_mx.broadcast_to(_mx.expand_dims(p, 0), (n,) + tuple(p.shape)))
        else:
            out.append(_mx.moveaxis(p, ax, 0))
    return out


def _op(fwd, vjp, jvp, again):
    """``fwd`` as a custom_function with the given rules; ``again`` is the same op (same
    flags), called once on the batched inputs by the vmap rule.

    The rules recompute the op's outputs with ``again`` rather than use the outputs the
    engine hands them: those come from the native node, which has no derivative, while
    ``again``'s are differentiable (so grad(grad(f)) works) at the price of one more
    factorization per backward pass."""
    cf = _custom_function(fwd)
    cf.vjp(vjp)
    cf.jvp(jvp)
    cf.vmap(lambda primals, axes: (again(*_front(primals, axes)), 0))
    return cf


def _no_complex_grad(op, a):
    if a.dtype == _mx.complex64:
        raise ValueError(f"[linalg::{op}] Gradients of complex matrices are not supported.")


def _not_differentiable(op, again):
    def refuse(*_):
        raise ValueError(f"[linalg::{op}] Not differentiable: it has no vjp or jvp (as in MLX).")

    return lambda fwd: _op(fwd, refuse, refuse, again)


# ================================================================== differentiable cores
def _inv_op(a):
    def vjp(p, c, _):
        yt = _T(_inv_op(p[0]))
        return (-(yt @ c @ yt),)

    def jvp(p, t):
        y = _inv_op(p[0])
        return -(y @ t[0] @ y)

    # a matrix holding NaN or inf gives NaN (not a singularity error) on every backend
    return _op(lambda x: _node_or_nan("inv", x, eye=True)[0], vjp, jvp, _inv_op)(a)


def _tri_inv_op(a, upper):
    def again(x):
        return _tri_inv_op(x, upper)

    def vjp(p, c, _):
        yt = _T(again(p[0]))
        return (_tri(-(yt @ c @ yt), upper),)

    def jvp(p, t):
        y = again(p[0])
        return -(y @ _tri(t[0], upper) @ y)

    return _op(lambda x: _node("tri_inv", [x], upper=upper)[0], vjp, jvp, again)(a)


def _solve_op(a, b):
    """x = a^-1 b for a (..., n, n), b (..., n, k) of one batch shape and dtype."""

    def vjp(p, c, _):
        gb = _solve_op(_T(p[0]), c)
        return (-(gb @ _T(_solve_op(*p))), gb)

    def jvp(p, t):
        x = _solve_op(*p)
        return _solve_op(p[0], t[1] - t[0] @ x)

    return _op(lambda a, b: _node("solve", [a, b])[0], vjp, jvp, _solve_op)(a, b)


def _solve_tri_op(a, b, upper):
    def again(a, b):
        return _solve_tri_op(a, b, upper)

    def vjp(p, c, _):
        gb = _solve_tri_op(_T(p[0]), c, not upper)
        return (_tri(-(gb @ _T(again(*p))), upper), gb)

    def jvp(p, t):
        x = again(*p)
        return again(p[0], t[1] - _tri(t[0], upper) @ x)

    return _op(lambda a, b: _node("solve_triangular", [a, b], upper=upper)[0], vjp, jvp, again)(a, b)


def _phi(x):
    """The lower triangle of x with its diagonal halved."""
    return _mx.tril(x, -1) + _diag_embed(0.5 * _diag(x))


def _cholesky_op(a, upper):
    """L (or U = L^T) of the symmetric matrix given by one triangle of ``a``. The rules
    are written for L; U's follow by transposition."""

    def again(x):
        return _cholesky_op(x, upper)

    def vjp(p, c, _):
        out = again(p[0])
        l, lbar = (_T(out), _T(c)) if upper else (out, c)
        lt = _T(l)
        x = _solve_tri_op(lt, _phi(lt @ lbar), True)  # L^-T P
        sbar = _T(_solve_tri_op(lt, _T(x), True))  # L^-T P L^-1
        return (_sym_adjoint(sbar, upper),)

    def jvp(p, t):
        out = again(p[0])
        l = _T(out) if upper else out
        y = _solve_tri_op(l, _sym_from(t[0], upper), False)  # L^-1 S'
        x = _solve_tri_op(l, _T(y), False)  # L^-1 S' L^-T (S' symmetric)
        ldot = l @ _phi(x)
        return _T(ldot) if upper else ldot

    return _op(lambda x: _node("cholesky", [x], upper=upper)[0], vjp, jvp, again)(a)


def _eigh_op(a, upper):
    """(w, V) of the symmetric matrix given by one triangle of real ``a``."""

    def again(x):
        return _eigh_op(x, upper)

    def vjp(p, c, _):
        w, v = again(p[0])
        wbar, vbar = c
        inner = _diag_embed(wbar) + _gap_inv(w) * (_T(v) @ vbar)
        return (_sym_adjoint(v @ inner @ _T(v), upper),)

    def jvp(p, t):
        w, v = again(p[0])
        pm = _T(v) @ _sym_from(t[0], upper) @ v
        return [_diag(pm), v @ (_gap_inv(w) * pm)]

    return _op(lambda x: tuple(_node_or_nan("eigh", x, upper=upper, flag=True)), vjp, jvp, again)(a)


def _eigvalsh_op(a, upper):
    def again(x):
        return _eigvalsh_op(x, upper)

    def vjp(p, c, _):
        _, v = _eigh_op(p[0], upper)
        return (_sym_adjoint((v * _mx.expand_dims(c, -2)) @ _T(v), upper),)

    def jvp(p, t):
        _, v = _eigh_op(p[0], upper)
        return _mx.sum(v * (_sym_from(t[0], upper) @ v), axis=-2)

    return _op(lambda x: _node_or_nan("eigh", x, upper=upper, flag=False)[0], vjp, jvp, again)(a)


# ---------------------------------------------------------------- QR
def _qr_vjp_tall(q, r, qbar, rbar):
    """m >= n: A-bar = (Q-bar + Q copyu(M)) R^-T with M = R-bar R^T - Q^T Q-bar."""
    m = rbar @ _T(r) - _T(q) @ qbar
    g = _mx.triu(m) + _T(_mx.triu(m, 1))
    return _T(_solve_tri_op(r, _T(qbar + q @ g), True))


def _qr_jvp_tall(q, r, adot):
    y = _T(_solve_tri_op(_T(r), _T(adot), False))  # A' R^-1
    x = _T(q) @ y
    z = _mx.triu(x) + _T(_mx.tril(x, -1))  # X minus its antisymmetric part C
    return y - q @ z, z @ r


def _qr_op(a):
    """Q (m, k), R (k, n). A wide matrix [X Y] is handled as qr(X) and R2 = Q^T Y."""
    m, n = a.shape[-2:]

    def vjp(p, c, _):
        q, r = _qr_op(p[0])
        qbar, rbar = c
        if m >= n:
            return (_qr_vjp_tall(q, r, qbar, rbar),)
        y, r2bar = p[0][..., :, m:], rbar[..., :, m:]
        g1 = _qr_vjp_tall(q, r[..., :, :m], qbar + y @ _T(r2bar), rbar[..., :, :m])
        return (_mx.concatenate([g1, q @ r2bar], axis=-1),)

    def jvp(p, t):
        q, r = _qr_op(p[0])
        if m >= n:
            return list(_qr_jvp_tall(q, r, t[0]))
        qdot, r1dot = _qr_jvp_tall(q, r[..., :, :m], t[0][..., :, :m])
        r2dot = _T(qdot) @ p[0][..., :, m:] + _T(q) @ t[0][..., :, m:]
        return [qdot, _mx.concatenate([r1dot, r2dot], axis=-1)]

    return _op(lambda x: tuple(_node("qr", [x])), vjp, jvp, _qr_op)(a)


# ---------------------------------------------------------------- SVD
def _svd_node(a, uv):
    outs = _node_or_nan("svd", a, flag=uv)
    if a.dtype == _mx.complex64:  # the node returns S as complex with zero imaginary part
        outs[len(outs) // 2] = _mx.real(outs[len(outs) // 2])
    return tuple(outs) if uv else outs[0]


def _thin(u, vt, k):
    return u[..., :, :k], _T(vt[..., :k, :])


def _svd_vjp(u, s, vt, ubar, sbar, vtbar):
    """Townsend's formula on the first k = min(m, n) singular vectors (gradients of the
    other columns of the full U and V are ignored: they are any basis of a complement)."""
    m, n, k = u.shape[-1], vt.shape[-1], s.shape[-1]
    uk, vk = _thin(u, vt, k)
    ub, vb = _thin(ubar, vtbar, k)
    f = _gap_inv(s * s)
    srow, scol = _mx.expand_dims(s, -2), _mx.expand_dims(s, -1)
    j = f * (_T(uk) @ ub - _T(ub) @ uk)
    kk = f * (_T(vk) @ vb - _T(vb) @ vk)
    g = uk @ (j * srow + scol * kk + _diag_embed(sbar)) @ _T(vk)
    if m > k:
        g = g + ((ub - uk @ (_T(uk) @ ub)) / srow) @ _T(vk)
    if n > k:
        g = g + (uk / srow) @ _T(vb - vk @ (_T(vk) @ vb))
    return g


def _svd_jvp(u, s, vt, adot):
    m, n, k = u.shape[-1], vt.shape[-1], s.shape[-1]
    uk, vk = _thin(u, vt, k)
    srow, scol = _mx.expand_dims(s, -2), _mx.expand_dims(s, -1)
    dp = _T(uk) @ adot @ vk
    f = _gap_inv(s * s)
    dps, sdp = dp * srow, scol * dp
    du = uk @ (f * (dps + _T(dps)))
    dv = vk @ (f * (sdp + _T(sdp)))
    if m > k:
        av = adot @ vk
        du = du + (av - uk @ (_T(uk) @ av)) / srow
    if n > k:
        au = _T(adot) @ uk
        dv = dv + (au - vk @ (_T(vk) @ au)) / srow
    batch = tuple(u.shape[:-2])
    du = _mx.concatenate([du, _mx.zeros(batch + (m, m - k), dtype=u.dtype)], axis=-1)
    dvt = _mx.concatenate([_T(dv), _mx.zeros(batch + (n - k, n), dtype=u.dtype)], axis=-2)
    return [du, _diag(dp), dvt]


def _svd_op(a):
    def vjp(p, c, _):
        _no_complex_grad("svd", p[0])
        return (_svd_vjp(*_svd_op(p[0]), *c),)

    def jvp(p, t):
        _no_complex_grad("svd", p[0])
        return _svd_jvp(*_svd_op(p[0]), t[0])

    return _op(lambda x: _svd_node(x, True), vjp, jvp, _svd_op)(a)


def _svdvals_op(a):
    def vjp(p, c, _):
        _no_complex_grad("svd", p[0])
        u, s, vt = _svd_op(p[0])
        k = s.shape[-1]
        return ((u[..., :, :k] * _mx.expand_dims(c, -2)) @ vt[..., :k, :],)

    def jvp(p, t):
        _no_complex_grad("svd", p[0])
        u, s, vt = _svd_op(p[0])
        uk, vk = _thin(u, vt, s.shape[-1])
        return _mx.sum(uk * (t[0] @ vk), axis=-2)

    return _op(lambda x: _svd_node(x, False), vjp, jvp, _svdvals_op)(a)


# ---------------------------------------------------------------- determinants
def _lu_parts(a):
    """diag(U) and the parity sign (+-1) of the row swaps of a's LU factorization, and
    where a finite matrix came out NaN. (The native factorization divides by a zero
    pivot, so an exactly singular matrix can give 0/0; its determinant is 0.) A matrix
    holding NaN or inf has NaN factors on every backend (cuSOLVER's pivot search does
    not carry NaN through as LAPACK's does)."""
    lu_, piv = _node_or_nan("lu_factor", a)
    k = piv.shape[-1]
    swaps = _mx.sum(piv != _mx.arange(k, dtype=piv.dtype), axis=-1)
    d = _diag(lu_)
    singular = _mx.any(_mx.isnan(d), axis=-1) & _mx.all(_mx.isfinite(a), axis=(-2, -1))
    return d, (1 - 2 * (swaps % 2)).astype(a.dtype), singular


def _det_value(a):
    d, sign, singular = _lu_parts(a)
    return _mx.where(singular, _mx.zeros((), dtype=a.dtype), sign * _mx.prod(d, axis=-1))


def _cofactor(a):
    """The cofactor matrix (transposed adjugate) of square ``a`` from its SVD: U diag(prod
    of the other singular values) V^T times det(U) det(V). It is exact for singular
    matrices too, where det * a^-T is not defined."""
    u, s, vt = _svd_op(a)
    others = _mx.cumprod(s, axis=-1, inclusive=False) * _mx.cumprod(s, axis=-1, inclusive=False, reverse=True)
    sign = _mx.stop_gradient(_det_value(u) * _det_value(vt))
    return _expand_to(sign, a.ndim) * ((u * _mx.expand_dims(others, -2)) @ vt)


def _det_op(a):
    def vjp(p, c, _):
        return (_expand_to(c, p[0].ndim) * _cofactor(p[0]),)

    def jvp(p, t):
        return _mx.sum(_cofactor(p[0]) * t[0], axis=(-2, -1))

    return _op(_det_value, vjp, jvp, _det_op)(a)


def _inv_transpose_svd(a):
    """a^-T = U S^-1 V^T (inf/NaN, not an error, for a singular matrix)."""
    u, s, vt = _svd_op(a)
    return (u / _mx.expand_dims(s, -2)) @ vt


def _slogdet_value(a):
    d, parity, singular = _lu_parts(a)
    sign = _mx.where(singular, _mx.zeros((), dtype=a.dtype), parity * _mx.prod(_mx.sign(d), axis=-1))
    return sign, _mx.where(singular, -_math.inf, _mx.sum(_mx.log(_mx.abs(d)), axis=-1))


def _slogdet_op(a):
    def vjp(p, c, _):
        return (_expand_to(c[1], p[0].ndim) * _inv_transpose_svd(p[0]),)

    def jvp(p, t):
        sign, _ = _slogdet_op(p[0])
        return [_mx.zeros_like(sign), _mx.sum(_inv_transpose_svd(p[0]) * t[0], axis=(-2, -1))]

    return _op(_slogdet_value, vjp, jvp, _slogdet_op)(a)


# ---------------------------------------------------------------- pseudo-inverse
def _pinv_value(a):
    m, n = a.shape[-2:]
    k = min(m, n)
    if k == 0:
        return _mx.zeros(tuple(a.shape[:-2]) + (n, m), dtype=a.dtype)
    u, s, vt = _svd_node(a, True)
    # MLX's cutoff: singular values up to 10 * max(m, n) * eps of the largest are dropped
    cutoff = _mx.max(s, axis=-1, keepdims=True) * (10 * max(m, n) * _mx.finfo(a.dtype).eps)
    sinv = _mx.where(s > cutoff, 1 / s, _mx.zeros((), dtype=s.dtype))
    uk, vk = _thin(u, vt, k)
    return (vk * _mx.expand_dims(sinv, -2)) @ _T(uk)


def _pinv_op(a):
    """Golub and Pereyra's derivative of the pseudo-inverse (for a locally constant
    rank); unlike the SVD's it stays finite at repeated singular values."""

    def vjp(p, c, _):
        a, pi = p[0], _pinv_op(p[0])
        pt = _T(pi)
        g = -(pt @ c @ pt)
        g = g + (_T(c) - a @ (pi @ _T(c))) @ pi @ pt
        return (g + pt @ pi @ (_T(c) - (_T(c) @ pi) @ a),)

    def jvp(p, t):
        a, ad = p[0], t[0]
        pi = _pinv_op(a)
        at = _T(ad)
        d = -(pi @ ad @ pi)
        d = d + pi @ _T(pi) @ (at - (at @ a) @ pi)
        return d + (at - pi @ (a @ at)) @ _T(pi) @ pi

    return _op(_pinv_value, vjp, jvp, _pinv_op)(a)


# ---------------------------------------------------------------- non-differentiable
def _lu_factor_op(a, op="lu_factor"):
    def fwd(x):
        lu_, piv = _node("lu_factor", [x])
        return lu_, piv.astype(_mx.uint32)

    return _not_differentiable(op, lambda x: _lu_factor_op(x, op))(fwd)(a)


def _eig_op(a, vectors):
    def again(x):
        return _eig_op(x, vectors)

    def fwd(x):
        outs = _node_or_nan("eig", x, flag=vectors)
        return (outs[0], _unit_columns(outs[1])) if vectors else outs[0]

    return _not_differentiable("eig" if vectors else "eigvals", again)(fwd)(a)


def _unit_columns(v):
    """Eigenvectors as LAPACK returns them: unit norm, the largest component real and
    positive."""
    if v.shape[-2] == 0:
        return v
    mag = _mx.abs(v)
    big = _mx.take_along_axis(v, _mx.argmax(mag, axis=-2, keepdims=True), axis=-2)
    phase = _mx.conj(big) / _mx.maximum(_mx.abs(big), _mx.finfo(_mx.float32).tiny)
    norm = _mx.sqrt(_mx.sum(mag * mag, axis=-2, keepdims=True))
    return v * (phase / _mx.maximum(norm, _mx.finfo(_mx.float32).tiny))


def _perm_from_pivots(piv, m):
    """MLX's row indices P (A = L[P] @ U) from LAPACK's pivots (row i was swapped with
    row piv[i], in order): the swaps applied to 0..m-1, inverted."""
    iota = _mx.arange(m, dtype=_mx.uint32)
    perm = _mx.broadcast_to(iota, tuple(piv.shape[:-1]) + (m,))
    for i in range(piv.shape[-1]):
        j = piv[..., i : i + 1]
        at_j = _mx.take_along_axis(perm, j, axis=-1)
        at_i = perm[..., i : i + 1]
        perm = _mx.where(iota == j, at_i, perm)
        perm = _mx.where(iota == i, at_j, perm)
    return _mx.argsort(perm, axis=-1).astype(_mx.uint32)


# ================================================================== public API
def inv(a, *, stream=None):
    """Compute the inverse of a square matrix (of each matrix in the last two axes)."""
    _matrix("inv", a, square="Inverses are only defined for square matrices.")
    with _on(stream):
        return _inv_op(a)


def tri_inv(a, upper=False, *, stream=None):
    """Compute the inverse of a triangular square matrix (only the lower triangle, or
    the upper one with ``upper=True``, is read)."""
    upper = _need_bool("tri_inv", "upper", upper)
    _matrix("tri_inv", a, square="Inverses are only defined for square matrices.")
    with _on(stream):
        return _tri_inv_op(a, upper)


def cholesky(a, upper=False, *, stream=None):
    """Compute the Cholesky factor of a symmetric positive definite matrix: lower ``L``
    with ``L @ L.T = a`` (from a's lower triangle), or upper ``U`` with ``U.T @ U = a``
    (from its upper triangle). A matrix that is not positive definite gives NaNs."""
    upper = _need_bool("cholesky", "upper", upper)
    _matrix("cholesky", a, square="Cholesky decomposition is only defined for square matrices.")
    with _on(stream):
        return _cholesky_op(a, upper)


def cholesky_inv(a, upper=False, *, stream=None):
    """The inverse of ``A = L @ L.T`` (or ``U.T @ U`` with ``upper=True``) given its
    Cholesky factor ``a``."""
    upper = _need_bool("cholesky_inv", "upper", upper)
    _matrix("cholesky_inv", a, square="Cholesky inverse is only defined for square matrices.")
    with _on(stream):
        li = _tri_inv_op(a, upper)
        return li @ _T(li) if upper else _T(li) @ li


def _solve_args(op, a, b):
    """MLX's checks of solve's operands; returns them promoted and broadcast to one batch
    shape, b as a (..., n, k) matrix, and whether b was a vector."""
    _need_array(op, a)
    _need_array(op, b, "b")
    if a.ndim < 2:
        raise ValueError(f"[linalg::{op}] First input must have >= 2 dimensions. Received array with {a.ndim} dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"[linalg::{op}] First input must be a square matrix. Received array with shape {_shape_str(a.shape)}.")
    if b.ndim < 1:
        raise ValueError(f"[linalg::{op}] Second input must have >= 1 dimensions. Received array with {b.ndim} dimensions.")
    n, vec = a.shape[-1], b.ndim == 1
    if (b.shape[0] if vec else b.shape[-2]) != n:
        raise ValueError(
            f"[linalg::{op}] Last dimension of first input with shape {_shape_str(a.shape)} must match second to "
            f"last dimension of second input with shape {_shape_str(b.shape)}."
        )
    out = _mx.result_type(a, b)
    if out not in _real_types():
        raise ValueError(
            f"[linalg::{op}] Input arrays must promote to float32 or float64.  Received arrays with type "
            f"{_name(a.dtype)} and {_name(b.dtype)}."
        )
    if a.dtype not in _real_types():
        raise ValueError(f"[linalg::{op}] Arrays must have type float32 or float64. Received array with type {_name(a.dtype)}.")
    a, b = a.astype(out), b.astype(out)
    if vec:
        b = _mx.expand_dims(b, -1)
    batch = tuple(_mx.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2])))
    return _mx.broadcast_to(a, batch + (n, n)), _mx.broadcast_to(b, batch + tuple(b.shape[-2:])), vec


def solve(a, b, *, stream=None):
    """Solve ``a @ x = b``. ``b`` is a vector (n,) or a stack of matrices (..., n, k);
    batch dimensions broadcast."""
    a, b, vec = _solve_args("solve", a, b)
    with _on(stream):
        x = _solve_op(a, b)
        return x[..., 0] if vec else x


def solve_triangular(a, b, *, upper=False, stream=None):
    """Solve ``a @ x = b`` for triangular ``a`` (only its lower, or upper, triangle is
    read)."""
    upper = _need_bool("solve_triangular", "upper", upper)
    a, b, vec = _solve_args("solve_triangular", a, b)
    with _on(stream):
        x = _solve_tri_op(a, b, upper)
        return x[..., 0] if vec else x


def qr(a, *, stream=None):
    """The QR factorization ``a = Q @ R``: Q (..., m, k) with orthonormal columns and
    upper triangular R (..., k, n), k = min(m, n)."""
    _matrix("qr", a)
    with _on(stream):
        return _qr_op(a)


def _svd_dtype(a):
    if a.dtype not in _real_types() + (_mx.complex64,):
        raise ValueError(
            "[linalg::svd] Arrays must have type float32, float64 or complex64. "
            f"Received array with type {_name(a.dtype)}."
        )


def svd(a, compute_uv=True, *, stream=None):
    """The singular value decomposition ``a = U @ diag(S) @ Vt`` (full U and Vt, S in
    descending order), or only ``S`` with ``compute_uv=False``."""
    compute_uv = _need_bool("svd", "compute_uv", compute_uv)
    _need_array("svd", a)
    _svd_dtype(a)
    if a.ndim < 2:
        raise ValueError(f"[linalg::svd] Input array must have >= 2 dimensions. Received array with {a.ndim} dimensions.")
    with _on(stream):
        return _svd_op(a) if compute_uv else _svdvals_op(a)


def _uplo(op, uplo):
    if not isinstance(uplo, str):
        raise TypeError(f"[linalg::{op}] UPLO must be a string, got {type(uplo).__name__}.")
    return not uplo.startswith("L")  # as MLX: anything not starting with "L" means upper


def _eigh_complex(a, upper, vectors):
    """Hermitian eigendecomposition through the SVD of the positive semi-definite
    ``H + c I`` (c = ||H||_F), whose singular vectors are H's eigenvectors; the
    eigenvalues are their Rayleigh quotients, sorted."""
    low = _mx.conj(_T(_mx.triu(a, 1))) if upper else _mx.tril(a, -1)
    h = low + _mx.conj(_T(low)) + _diag_embed(_mx.real(_diag(a)).astype(a.dtype))
    n = a.shape[-1]
    c = _mx.sqrt(_mx.sum(_mx.square(_mx.abs(h)), axis=(-2, -1), keepdims=True))
    u, _, _ = svd(h + c * _mx.eye(n, dtype=a.dtype))
    w = _mx.real(_mx.sum(_mx.conj(u) * (h @ u), axis=-2))
    order = _mx.argsort(w, axis=-1)
    w = _mx.take_along_axis(w, order, axis=-1)
    if not vectors:
        return w
    return w, _mx.take_along_axis(u, _mx.expand_dims(order, -2), axis=-1)


def eigh(a, UPLO="L", *, stream=None):  # noqa: N803 - MLX's name
    """Eigenvalues (ascending) and eigenvectors (columns) of a real symmetric or complex
    Hermitian matrix, read from its lower (``UPLO="L"``) or upper triangle."""
    upper = _uplo("eigh", UPLO)
    _matrix("eigh", a, complex_ok=True, square="Only defined for square matrices.")
    with _on(stream):
        if a.dtype == _mx.complex64:
            return _eigh_complex(a, upper, True)
        return _eigh_op(a, upper)


def eigvalsh(a, UPLO="L", *, stream=None):  # noqa: N803 - MLX's name
    """Eigenvalues (ascending) of a real symmetric or complex Hermitian matrix."""
    upper = _uplo("eigvalsh", UPLO)
    _matrix("eigvalsh", a, complex_ok=True, square="Only defined for square matrices.")
    with _on(stream):
        if a.dtype == _mx.complex64:
            return _eigh_complex(a, upper, False)
        return _eigvalsh_op(a, upper)


def _eig_check(op, a):
    _matrix(op, a, complex_ok=True, square="Only defined for square matrices.")


def eig(a, *, stream=None):
    """Eigenvalues and right eigenvectors (columns, unit norm) of a square matrix; both
    complex64 whatever the input type. Not differentiable, as in MLX."""
    _eig_check("eig", a)
    with _on(stream):
        return _eig_op(a, True)


def eigvals(a, *, stream=None):
    """Eigenvalues (complex64) of a square matrix."""
    _eig_check("eigvals", a)
    with _on(stream):
        return _eig_op(a, False)


def lu_factor(a, *, stream=None):
    """The compact LU factorization: ``LU`` (L's strict lower part and U) and the pivots
    (uint32, LAPACK's: row i was swapped with row pivots[i])."""
    _matrix("lu_factor", a)
    with _on(stream):
        return _lu_factor_op(a)


def lu(a, *, stream=None):
    """The LU factorization ``(P, L, U)`` with ``a = L[P, :] @ U``: P row indices
    (uint32), L (m, k) unit lower triangular, U (k, n) upper triangular."""
    _matrix("lu", a)
    with _on(stream):
        lu_, piv = _lu_factor_op(a, "lu")
        m, n = a.shape[-2:]
        k = min(m, n)
        low = _mx.tril(lu_[..., :, :k], -1) + _mx.eye(m, k, dtype=a.dtype)
        return _perm_from_pivots(piv, m), low, _mx.triu(lu_[..., :k, :])


def _det_input(op, a):
    """det/slogdet accept any real type, computed in float32 for other than float32 and
    float64; the result is float32 for integers and bool, and float16/bfloat16 stay (as
    MLX, which computes these only up to 3x3): the array to factorize and the result
    dtype."""
    _need_array(op, a)
    if a.dtype == _mx.complex64:
        raise ValueError(f"[linalg::{op}] Complex inputs are not supported.")
    if a.ndim < 2:
        raise ValueError(f"[linalg::{op}] Arrays must have >= 2 dimensions. Received array with {a.ndim} dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"[linalg::{op}] Only defined for square matrices.")
    if a.dtype in _real_types():
        return a, a.dtype
    out = a.dtype if a.dtype in (_mx.float16, _mx.bfloat16) else _mx.float32
    return a.astype(_mx.float32), out


def det(a, *, stream=None):
    """The determinant of a square matrix (of each matrix in the last two axes)."""
    x, out = _det_input("det", a)
    with _on(stream):
        return _det_op(x).astype(out)


def slogdet(a, *, stream=None):
    """``(sign, logabsdet)`` of the determinant: sign is -1, 0 or +1 (NaN for a NaN
    input), a singular matrix gives (0, -inf)."""
    x, out = _det_input("slogdet", a)
    with _on(stream):
        sign, logdet = _slogdet_op(x)
        return sign.astype(out), logdet.astype(out)


def pinv(a, *, stream=None):
    """The Moore-Penrose pseudo-inverse, from the SVD; singular values below
    ``10 * max(m, n) * eps`` times the largest count as zero (MLX's cutoff)."""
    _matrix("pinv", a)
    with _on(stream):
        return _pinv_op(a)


# ---------------------------------------------------------------- cross
def _axis_int(op, axis):
    if isinstance(axis, bool) or not isinstance(axis, _numbers.Integral):
        raise TypeError(f"[linalg::{op}] axis must be an integer, got {type(axis).__name__}.")
    return int(axis)


def cross(a, b, axis=-1, *, stream=None):
    """The cross product of vectors of size 3 (or 2, whose third component is taken as
    0) along ``axis``. As MLX: the inputs are broadcast together (with ``axis`` of size
    3 in both), the product is taken along ``axis`` of the result, and the products
    with a missing third component are left out (so an infinity there gives no NaN)."""
    _need_array("cross", a)
    _need_array("cross", b, "b")
    axis = _axis_int("cross", axis)
    for x in (a, b):
        if not -x.ndim <= axis < x.ndim:
            raise _AxisError(f"[linalg::cross] Axis {axis} is out of bounds for array with {x.ndim} dimensions.")
    if a.shape[axis] not in (2, 3) or b.shape[axis] not in (2, 3):
        raise ValueError("[linalg::cross] The specified axis must have size 2 or 3.")
    with _on(stream):
        nd = max(a.ndim, b.ndim)
        ax = axis % nd
        shapes = []
        for x in (a, b):  # right-aligned, the result's axis left out
            s = [1] * (nd - x.ndim) + list(x.shape)
            s[ax] = 1
            shapes.append(tuple(s))
        try:
            shape = list(_mx.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(f"[linalg::cross] Shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be broadcast.") from None
        shape[ax] = 3
        shape = tuple(shape)
        pa, pb = _components(a, axis % a.ndim, shape, ax), _components(b, axis % b.ndim, shape, ax)
        out = _mx.result_type(a, b)
        parts = [_difference(_times(pa[i], pb[j]), _times(pa[j], pb[i]), out, shape, ax)
                 for i, j in ((1, 2), (2, 0), (0, 1))]
        return _mx.concatenate(parts, axis=ax)


def _components(x, own, shape, ax):
    """x's components along ``ax`` of the broadcast result, each of ``shape`` with size 1
    at ``ax``; None for a missing third one. (When x's own axis does not land on ``ax``,
    as MLX: x padded with zeros along its axis, broadcast, then split along ``ax``.)"""
    one = list(shape)
    one[ax] = 1
    if own + len(shape) - x.ndim != ax:
        x = _mx.broadcast_to(_pad3(x, own), shape)
        own = ax
    comps = [_mx.broadcast_to(c, tuple(one)) for c in _mx.split(x, x.shape[own], axis=own)]
    return comps + [None] * (3 - len(comps))


def _pad3(x, ax):
    if x.shape[ax] == 3:
        return x
    widths = [(0, 0)] * x.ndim
    widths[ax] = (0, 1)
    return _mx.pad(x, widths)


def _times(p, q):
    return None if p is None or q is None else p * q


def _difference(p, q, dtype, shape, ax):
    if p is None and q is None:
        one = list(shape)
        one[ax] = 1
        return _mx.zeros(tuple(one), dtype=dtype)
    if q is None:
        return p
    return -q if p is None else p - q


# ---------------------------------------------------------------- norm
def _ord_value(ord):
    """ord as MLX reads it: None, a string, or a float (bools, NumPy scalars and 0-d
    arrays included)."""
    if ord is None or isinstance(ord, str):
        return ord
    if isinstance(ord, _array):
        return float(ord.item())
    if isinstance(ord, _numbers.Real):
        return float(ord)
    raise TypeError(f"[linalg::norm] ord must be None, a number or a string, got {type(ord).__name__}.")


def _norm_axes(a, axis):
    """``axis`` as a list of ints (None: every axis)."""
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        return [_axis_int("norm", ax) for ax in axis]
    return [_axis_int("norm", axis)]


def _check_axes(a, axes):
    out = []
    for ax in axes:
        if not -a.ndim <= ax < a.ndim:
            raise _AxisError(f"[linalg::norm] Invalid axis {ax} for array with {a.ndim} dimensions.")
        out.append(ax % a.ndim)
    if len(set(out)) != len(out):
        raise _AxisError(f"[linalg::norm] Duplicate axes {axes}.")
    return out


def _float_input(a):
    """Norms are computed in a's float type (integers and bool in float32) from |a|
    (real for complex a)."""
    x = _mx.abs(a) if a.dtype == _mx.complex64 else a
    if not _mx.issubdtype(x.dtype, _mx.floating):
        x = x.astype(_mx.float32)
    return x


def _vector_norm(a, ord, ax, keepdims):
    x = _mx.abs(_float_input(a))
    if ord == _math.inf:
        return _mx.max(x, axis=ax, keepdims=keepdims)
    if ord == -_math.inf:
        return _mx.min(x, axis=ax, keepdims=keepdims)
    if ord == 0:
        return _mx.sum(x != 0, axis=ax, keepdims=keepdims).astype(x.dtype)
    if ord == 1:
        return _mx.sum(x, axis=ax, keepdims=keepdims)
    if ord == 2:
        return _mx.sqrt(_mx.sum(x * x, axis=ax, keepdims=keepdims))
    return _mx.power(_mx.sum(_mx.power(x, ord), axis=ax, keepdims=keepdims), 1.0 / ord)


def _singular_values(a, r, c):
    """Singular values of the matrices held by axes (r, c), in a's float type."""
    _svd_dtype(a)
    rest = [i for i in range(a.ndim) if i not in (r, c)]
    return _svdvals_op(_mx.transpose(a, rest + [r, c]))


def _matrix_norm(a, ord, axes, keepdims):
    r, c = axes
    if ord in ("nuc", 2.0, -2.0):
        s = _singular_values(a, r, c)
        red = {"nuc": _mx.sum, 2.0: _mx.max, -2.0: _mx.min}[ord]
        out = red(s, axis=-1)
        return _mx.expand_dims(out, sorted((r, c))) if keepdims else out
    x = _mx.abs(_float_input(a))
    if ord is None or ord == "fro":
        return _mx.sqrt(_mx.sum(x * x, axis=(r, c), keepdims=keepdims))
    sum_ax, red_ax = (c, r) if ord in (_math.inf, -_math.inf) else (r, c)
    red = _mx.max if ord > 0 else _mx.min
    out = red(_mx.sum(x, axis=sum_ax, keepdims=True), axis=red_ax, keepdims=True)
    return out if keepdims else _mx.squeeze(out, (r, c))


def _ord_str(ord):
    return f"{ord:g}"


def norm(a, /, ord=None, axis=None, keepdims=False, *, stream=None):  # noqa: A002 - MLX's name
    """Matrix or vector norm (see MLX's table of ``ord`` values): vector norms over one
    axis, matrix norms over two; with ``axis=None`` a 1-D or 2-D ``a`` is normed whole,
    and with ``ord=None`` too any ``a`` is flattened (2-norm)."""
    _need_array("norm", a)
    ord = _ord_value(ord)
    if not isinstance(keepdims, bool):
        raise TypeError(f"[linalg::norm] keepdims must be a bool, got {type(keepdims).__name__}.")
    axes = _norm_axes(a, axis)
    with _on(stream):
        if axes is None:
            if ord is None:
                out = _vector_norm(a.reshape(-1), 2.0, 0, False)
                return out.reshape((1,) * a.ndim) if keepdims else out
            axes = list(range(a.ndim))
        count = len(axes)
        if isinstance(ord, str):
            if count != 2:
                raise ValueError(f"[linalg::norm] Norm '{ord}' only supported for matrices, but received {count} axis/axes.")
            if ord not in ("fro", "nuc"):
                raise ValueError(f"[linalg::norm] Invalid ord value '{ord}' for matrix norm.")
        elif count > 2 or (ord is not None and count == 0):
            raise ValueError("[linalg::norm] Received too many axes for norm.")
        elif count == 2 and ord is not None and ord not in (_math.inf, -_math.inf, 1.0, -1.0, 2.0, -2.0):
            raise ValueError(f"[linalg::norm] Invalid ord {_ord_str(ord)} for matrix norm.")
        axes = _check_axes(a, axes)
        if count == 2:
            return _matrix_norm(a, ord, axes, keepdims)
        return _vector_norm(a, 2.0 if ord is None else ord, tuple(axes), keepdims)
