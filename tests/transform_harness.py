"""A reusable harness for function transforms.

Every differentiable op is registered once in ``OPS`` with how to make its inputs; the
checks then run on each entry for a sweep of shapes:

* ``check_vjp_jvp``: vjp and jvp against central finite differences in float64 along
  random directions, plus the identity <vjp(u), v> == <u, jvp(v)>;
* ``check_vmap``: ``vmap`` over every valid axis of every input against a Python loop
  plus ``stack``.

Adding an op to oxmx means adding one line here; ``test_transform_coverage`` fails for
any public differentiable function of ``oxmx.core`` that has no entry.
"""

import numpy as np

import oxmx.core as mx

# ---------------------------------------------------------------- input domains
DOMAINS = {
    "any": lambda r, s: r.standard_normal(s),
    "pos": lambda r, s: r.uniform(0.5, 2.0, s),
    "unit": lambda r, s: r.uniform(-0.8, 0.8, s),
    "gt1": lambda r, s: r.uniform(1.2, 3.0, s),
    # values well apart so max/min/sort have no ties and no kinks under a small step
    "distinct": lambda r, s: (r.permutation(int(np.prod(s, dtype=int))).reshape(s) * 0.37 + r.uniform(-0.05, 0.05, s)),
    "nonzero": lambda r, s: r.choice([-1.0, 1.0], s) * r.uniform(0.5, 2.0, s),
}


class Op:
    """``fn(*arrays)``; ``args`` is a list of (shape, domain) per float input (index
    arrays are fixed inside ``fn``). ``eps``/``rtol`` tune the finite differences for
    ops computed in lower precision."""

    def __init__(self, name, fn, args, vmap=True, eps=1e-6, rtol=1e-5, consistency=1e-9, atol=None, vmap_tol=1e-12):
        self.name = name
        # vmap against a loop: exact, unless the batched call may take another kernel path
        # (quantized_matmul: more rows switch from the per-row dot products to gemm)
        self.vmap_tol = vmap_tol
        # absolute tolerance (relative to the largest derivative) for ops whose values are
        # rounded to a lower precision: their finite differences carry rounding noise of
        # about ulp / eps in every element, however small the element
        self.atol = atol
        self.fn = fn
        self.args = args
        self.vmap = vmap
        self.eps = eps
        self.rtol = rtol
        self.consistency = consistency

    def make(self, rng, dtype=np.float64):
        xs = [DOMAINS[d](rng, s).astype(dtype) for s, d in self.args]
        return [mx.array(x, dtype=mx.float64) if dtype == np.float64 else mx.array(x) for x in xs]

    def __call__(self, *xs):
        return self.fn(*xs)

    def __repr__(self):
        return self.name


def U(name, f=None, dom="any", shapes=((3, 4),), **kw):
    f = f or getattr(mx, name)
    return [Op(f"{name}{list(s)}", f, [(s, dom)], **kw) for s in shapes]


def B(name, f=None, doms=("any", "any"), shapes=(((3, 4), (3, 4)), ((2, 1, 4), (3, 1)), ((), (5,))), **kw):
    f = f or getattr(mx, name)
    return [Op(f"{name}{list(a)}{list(b)}", f, [(a, doms[0]), (b, doms[1])], **kw) for a, b in shapes]


IDX = np.array([2, 0, 1, 2])

OPS = []
# unary elementwise
for n, d in [("abs", "nonzero"), ("negative", "any"), ("square", "any"), ("sqrt", "pos"), ("rsqrt", "pos"),
             ("reciprocal", "pos"), ("exp", "any"), ("expm1", "any"), ("log", "pos"), ("log2", "pos"),
             ("log10", "pos"), ("log1p", "pos"), ("sin", "any"), ("cos", "any"), ("tan", "unit"),
             ("arcsin", "unit"), ("arccos", "unit"), ("arctan", "any"), ("sinh", "any"), ("cosh", "any"),
             ("tanh", "any"), ("arcsinh", "any"), ("arccosh", "gt1"), ("arctanh", "unit"), ("erf", "any"),
             ("erfinv", "unit"), ("sigmoid", "any"), ("degrees", "any"), ("radians", "any"),
             ("positive", "any"), ("conjugate", "any")]:
    OPS += U(n, dom=d, shapes=((3, 4), (), (0, 3)))
for n in ["sign", "floor", "ceil", "trunc"]:
    OPS += U(n, dom="nonzero")
OPS += U("round", lambda x: mx.round(x * 3.3), dom="unit")
# binary elementwise (with broadcasting)
for n, ds in [("add", ("any", "any")), ("subtract", ("any", "any")), ("multiply", ("any", "any")),
              ("divide", ("any", "pos")), ("power", ("pos", "any")), ("maximum", ("distinct", "distinct")),
              ("minimum", ("distinct", "distinct")), ("arctan2", ("any", "pos")), ("logaddexp", ("any", "any")),
              ("remainder", ("pos", "gt1")), ("floor_divide", ("pos", "gt1"))]:
    OPS += B(n, doms=ds)
OPS += [Op("where", lambda c, x, y: mx.where(c > 0, x, y), [((3, 4), "nonzero"), ((3, 4), "any"), ((4,), "any")])]
OPS += [Op("clip", lambda x: mx.clip(x, -0.5, 0.5), [((3, 4), "distinct")])]
OPS += [Op("astype", lambda x: x.astype(mx.float32) * 3.0, [((3,), "any")], eps=1e-2, rtol=1e-4, consistency=1e-6, atol=1e-4)]
# reductions
for n in ["sum", "prod", "mean", "logsumexp"]:
    f = getattr(mx, n)
    OPS += [Op(f"{n}-all", lambda x, f=f: f(x), [((3, 4), "pos")]),
            Op(f"{n}-axis", lambda x, f=f: f(x, axis=1), [((3, 4), "pos")]),
            Op(f"{n}-axes-keep", lambda x, f=f: f(x, axis=(0, 2), keepdims=True), [((2, 3, 4), "pos")])]
OPS += [Op("prod-zero", lambda x: mx.prod(x * mx.array([1.0, 0.0, 1.0]), axis=1), [((2, 3), "pos")])]
for n in ["max", "min"]:
    f = getattr(mx, n)
    OPS += [Op(f"{n}-all", lambda x, f=f: f(x), [((3, 4), "distinct")]),
            Op(f"{n}-axis", lambda x, f=f: f(x, axis=0), [((3, 4), "distinct")])]
for n in ["var", "std"]:
    f = getattr(mx, n)
    OPS += [Op(f"{n}", lambda x, f=f: f(x, axis=-1), [((3, 5), "any")]),
            Op(f"{n}-ddof", lambda x, f=f: f(x, ddof=1), [((4, 3), "any")])]
OPS += [Op("softmax", lambda x: mx.softmax(x, axis=-1), [((3, 5), "any")]),
        Op("softmax-axis0", lambda x: mx.softmax(x, axis=0), [((3, 5), "any")]),
        Op("softmax-precise", lambda x: mx.softmax(x, axis=-1, precise=True), [((3, 5), "any")])]
# scans and sorting
for n in ["cumsum", "cumprod", "cummax", "cummin", "logcumsumexp"]:
    f = getattr(mx, n)
    dom = "distinct" if n in ("cummax", "cummin") else "pos"
    OPS += [Op(f"{n}", lambda x, f=f: f(x, axis=1), [((3, 5), dom)]),
            Op(f"{n}-reverse", lambda x, f=f: f(x, axis=0, reverse=True), [((4, 3), dom)]),
            Op(f"{n}-flat", lambda x, f=f: f(x), [((3, 2), dom)])]
# exclusive max/min/logaddexp scans start at -inf: finite differences do not apply
OPS += [Op(f"{n}-exclusive", lambda x, f=getattr(mx, n): f(x, axis=1, inclusive=False), [((3, 5), "pos")]) for n in ("cumsum", "cumprod")]
OPS += [Op(f"{n}-exclusive-reverse", lambda x, f=getattr(mx, n): f(x, axis=1, inclusive=False, reverse=True), [((3, 5), "pos")]) for n in ("cumsum", "cumprod")]
OPS += [Op("cumprod-zero", lambda x: mx.cumprod(x * mx.array([1.0, 0.0, 1.0, 0.0, 1.0]), axis=1), [((2, 5), "pos")])]
OPS += [Op("sort", lambda x: mx.sort(x, axis=-1), [((3, 5), "distinct")]),
        Op("sort-axis0", lambda x: mx.sort(x, axis=0), [((4, 3), "distinct")]),
        Op("topk", lambda x: mx.topk(x, 2, axis=-1), [((3, 5), "distinct")]),
        Op("median", lambda x: mx.median(x, axis=-1), [((3, 5), "distinct")])]
# linear algebra
OPS += [Op("matmul", mx.matmul, [((3, 4), "any"), ((4, 2), "any")]),
        Op("matmul-batched", mx.matmul, [((2, 3, 4), "any"), ((4, 5), "any")]),
        Op("matmul-vec", mx.matmul, [((4,), "any"), ((2, 4, 3), "any")]),
        Op("addmm", lambda c, a, b: mx.addmm(c, a, b, alpha=0.5, beta=2.0), [((3, 2), "any"), ((3, 4), "any"), ((4, 2), "any")]),
        Op("inner", mx.inner, [((3, 4), "any"), ((2, 4), "any")]),
        Op("outer", mx.outer, [((3,), "any"), ((4,), "any")]),
        Op("tensordot", lambda a, b: mx.tensordot(a, b, axes=1), [((2, 3), "any"), ((3, 4), "any")]),
        Op("vecdot", mx.vecdot, [((2, 3), "any"), ((2, 3), "any")]),
        Op("kron", mx.kron, [((2, 2), "any"), ((2, 3), "any")]),
        Op("trace", lambda x: mx.trace(x), [((3, 3), "any")]),
        Op("einsum", lambda a, b, c: mx.einsum("bij,jk,bkk->bik", a, b, c), [((2, 3, 4), "any"), ((4, 3), "any"), ((2, 3, 3), "any")]),
        Op("einsum-ellipsis", lambda a, b: mx.einsum("...ij,j...->i...", a, b), [((2, 1, 3, 4), "any"), ((4, 2, 2), "any")])]
# matmul variants (oxmx.core._matmul_variants); indices, segments and masks are fixed
# inside fn except the float masks of block_masked_mm-masks, which are differentiated
_BOOL_OUT = [[True, False], [True, True]]
OPS += [Op("gather_mm", lambda a, b: mx.gather_mm(a, b, mx.array([2, 0, 2]), mx.array([1, 1, 0])), [((3, 2, 4), "any"), ((2, 4, 3), "any")]),
        Op("gather_mm-broadcast", lambda a, b: mx.gather_mm(a, b, mx.array([[1], [0]]), mx.array([0, 2, 1], mx.uint32)), [((2, 1, 3, 2), "any"), ((3, 2, 2), "any")]),
        Op("gather_mm-vector", lambda a, b: mx.gather_mm(a, b, None, mx.array([1, 1])), [((3,), "any"), ((2, 3, 2), "any")]),
        Op("block_masked_mm", lambda a, b: mx.block_masked_mm(a, b, 32, mx.array(_BOOL_OUT), mx.array([[1.0, 0.5], [0.0, 2.0]]), mx.array([[True, False], [True, True]])),
           [((40, 36), "any"), ((36, 33), "any")]),
        Op("block_masked_mm-batched", lambda a, b: mx.block_masked_mm(a, b, 32, None, mx.array([[[True, False]], [[False, True]]])), [((2, 3, 34), "any"), ((34, 2), "any")]),
        Op("block_masked_mm-masks", lambda a, b, o, l: mx.block_masked_mm(a, b, 32, o, l), [((33, 34), "any"), ((34, 3), "any"), ((2, 1), "any"), ((2, 2), "any")]),
        Op("segmented_mm", lambda a, b: mx.segmented_mm(a, b, mx.array([[0, 2], [1, 4], [3, 3], [4, 1]])), [((3, 4), "any"), ((4, 2), "any")]),
        Op("hadamard_transform", lambda x: mx.hadamard_transform(x), [((3, 8), "any")]),
        Op("hadamard_transform-12", lambda x: mx.hadamard_transform(x, scale=0.5), [((2, 24), "any")]),
        Op("hadamard_transform-20", lambda x: mx.hadamard_transform(x), [((2, 40), "any")]),
        Op("hadamard_transform-28", lambda x: mx.hadamard_transform(x), [((28,), "any")]),
        Op("depends", lambda x, y: mx.depends([x, x * 2.0], y), [((3, 2), "any"), ((4,), "any")])]
# shape and view ops
OPS += [Op("reshape", lambda x: mx.reshape(x, (4, 3)), [((3, 4), "any")]),
        Op("transpose", lambda x: mx.transpose(x, (2, 0, 1)), [((2, 3, 4), "any")]),
        Op("broadcast_to", lambda x: mx.broadcast_to(x, (2, 3, 4)), [((3, 1), "any")]),
        Op("expand_dims", lambda x: mx.expand_dims(x, (0, 2)), [((3, 4), "any")]),
        Op("squeeze", lambda x: mx.squeeze(x), [((3, 1, 4), "any")]),
        Op("flatten", lambda x: mx.flatten(x, 1), [((2, 3, 4), "any")]),
        Op("unflatten", lambda x: mx.unflatten(x, 1, (2, 2)), [((3, 4), "any")]),
        Op("moveaxis", lambda x: mx.moveaxis(x, 0, -1), [((2, 3, 4), "any")]),
        Op("swapaxes", lambda x: mx.swapaxes(x, 0, 2), [((2, 3, 4), "any")]),
        Op("concatenate", lambda a, b: mx.concatenate([a, b, a], axis=1), [((3, 2), "any"), ((3, 4), "any")]),
        Op("stack", lambda a, b: mx.stack([a, b], axis=1), [((3, 2), "any"), ((3, 2), "any")]),
        Op("split", lambda x: mx.split(x, [1, 3], axis=1)[1] * 2 + mx.split(x, 2, axis=0)[0].sum(), [((4, 4), "any")]),
        Op("unstack", lambda x: mx.unstack(x, axis=1)[2], [((3, 4), "any")]),
        Op("slice", lambda x: x[1:, ::-2], [((3, 5), "any")]),
        Op("mx.slice", lambda x: mx.slice(x, mx.array([1, 0]), (0, 1), (2, 2)), [((4, 4), "any")], vmap=False),
        Op("getitem-int-array", lambda x: x[mx.array([2, 0, 2]), 1:], [((3, 4), "any")]),
        Op("getitem-mixed", lambda x: x[None, 1, mx.array([[0, 3], [1, 1]])], [((3, 4), "any")]),
        Op("slice_update", lambda x, u: mx.slice_update(x, u, mx.array([1, 0]), (0, 1)), [((4, 3), "any"), ((2, 3), "any")], vmap=False),
        Op("setitem", lambda x, u: _setitem(x, u), [((4, 3), "any"), ((3,), "any")]),
        Op("at-add", lambda x, u: x.at[mx.array([0, 2, 0])].add(u), [((4, 3), "any"), ((3, 3), "any")]),
        Op("take", lambda x: mx.take(x, mx.array(IDX), axis=1), [((3, 4), "any")]),
        Op("take-flat", lambda x: mx.take(x, mx.array(IDX)), [((2, 3), "any")]),
        Op("take_along_axis", lambda x: mx.take_along_axis(x, mx.array([[0, 2], [1, 1], [2, 0]]), axis=1), [((3, 3), "any")]),
        Op("put_along_axis", lambda x, v: mx.put_along_axis(x, mx.array([[0], [2], [1]]), v, axis=1), [((3, 3), "any"), ((3, 1), "any")]),
        Op("as_strided", lambda x: mx.as_strided(x, (3, 3), (1, 1)), [((6,), "any")]),
        Op("contiguous", lambda x: mx.contiguous(x.T), [((3, 4), "any")]),
        Op("atleast_3d", lambda x: mx.atleast_3d(x), [((4,), "any")]),
        Op("repeat", lambda x: mx.repeat(x, 2, axis=0), [((2, 3), "any")]),
        Op("tile", lambda x: mx.tile(x, (2, 1)), [((2, 3), "any")]),
        Op("pad", lambda x: mx.pad(x, ((1, 0), (2, 1))), [((2, 3), "any")]),
        Op("flip", lambda x: mx.flip(x, axis=1), [((2, 3), "any")]),
        Op("roll", lambda x: mx.roll(x, 2, axis=1), [((2, 3), "any")]),
        Op("diag", lambda x: mx.diag(x), [((3, 3), "any")]),
        Op("diagonal", lambda x: mx.diagonal(x, 1), [((3, 4), "any")]),
        Op("diff", lambda x: mx.diff(x, axis=1), [((2, 4), "any")])]


# convolutions (composites with a custom vjp: both are checked against finite differences)
OPS += [Op("conv1d", lambda x, w: mx.conv1d(x, w, stride=2, padding=1, groups=2), [((2, 7, 4), "any"), ((4, 3, 2), "any")]),
        Op("conv2d", lambda x, w: mx.conv2d(x, w, stride=(2, 1), padding=1, dilation=(1, 2)), [((1, 5, 6, 2), "any"), ((3, 2, 2, 2), "any")]),
        Op("conv2d-depthwise", lambda x, w: mx.conv2d(x, w, padding=1, groups=2), [((1, 4, 4, 2), "any"), ((4, 3, 3, 1), "any")]),
        Op("conv3d", lambda x, w: mx.conv3d(x, w, stride=(1, 2, 1)), [((1, 3, 4, 3, 2), "any"), ((2, 2, 2, 2, 2), "any")]),
        Op("conv_general", lambda x, w: mx.conv_general(x, w, padding=([1, -1], [0, 1]), kernel_dilation=[1, 2], input_dilation=[2, 1], flip=True),
           [((1, 4, 6, 2), "any"), ((2, 2, 2, 2), "any")]),
        Op("conv_general-stride-input-dilation", lambda x, w: mx.conv_general(x, w, stride=2, input_dilation=2), [((1, 4, 3, 1), "any"), ((2, 3, 2, 1), "any")]),
        Op("conv_transpose1d", lambda x, w: mx.conv_transpose1d(x, w, stride=2, padding=1, output_padding=1), [((2, 4, 2), "any"), ((3, 3, 2), "any")]),
        Op("conv_transpose2d", lambda x, w: mx.conv_transpose2d(x, w, stride=(2, 1), dilation=(1, 2), groups=2), [((1, 3, 3, 2), "any"), ((2, 2, 2, 1), "any")]),
        Op("conv_transpose3d", lambda x, w: mx.conv_transpose3d(x, w, stride=2, padding=1), [((1, 2, 3, 2, 1), "any"), ((2, 3, 2, 2, 1), "any")]),
        Op("convolve", lambda a, v: mx.convolve(a, v, mode="same"), [((7,), "any"), ((4,), "any")]),
        Op("convolve-full", lambda a, v: mx.convolve(a, v), [((3,), "any"), ((5,), "any")])]


# Fourier transforms (oxmx.core.fft): complex results are checked as their real and
# imaginary parts; the transforms run in complex64, hence the float32-grade tolerances
def _parts(y):
    return [mx.real(y), mx.imag(y)] if y.dtype == mx.complex64 else y


def FFT(name, f, args, **kw):
    kw = {"eps": 1e-2, "rtol": 1e-4, "atol": 1e-4, "consistency": 1e-5} | kw
    return Op(name, lambda *a: _parts(f(*a)), args, **kw)


_F = mx.fft
OPS += [FFT("fft.fft-pad", lambda x: _F.fft(x, n=6), [((3, 5), "any")]),
        FFT("fft.ifft-axis0", lambda x: _F.ifft(x, axis=0, norm="ortho"), [((4, 3), "any")]),
        FFT("fft.rfft-odd", lambda x: _F.rfft(x, n=7), [((2, 5), "any")]),
        FFT("fft.rfft-even", lambda x: _F.rfft(x, norm="forward"), [((3, 6), "any")]),
        FFT("fft.irfft-odd", lambda x: _F.irfft(x, n=7), [((2, 5), "any")]),
        FFT("fft.irfft-even", lambda x: _F.irfft(x, axis=0), [((4, 3), "any")]),
        FFT("fft.fft2", lambda x: _F.fft2(x, s=(3, 5), axes=(0, 2)), [((2, 3, 4), "any")]),
        FFT("fft.ifft2", lambda x: _F.ifft2(x), [((3, 4), "any")]),
        FFT("fft.rfft2", lambda x: _F.rfft2(x, axes=(1, 0)), [((3, 5), "any")]),
        FFT("fft.irfft2", lambda x: _F.irfft2(x, s=(4, 5), axes=(-2, -1)), [((3, 4), "any")]),
        FFT("fft.fftn", lambda x: _F.fftn(x, norm="ortho"), [((2, 3, 4), "any")]),
        FFT("fft.ifftn", lambda x: _F.ifftn(x, axes=(2, 0)), [((2, 3, 4), "any")]),
        FFT("fft.rfftn", lambda x: _F.rfftn(x), [((2, 3, 5), "any")]),
        FFT("fft.irfftn", lambda x: _F.irfftn(x, s=(3, 7), axes=(0, 1)), [((2, 4), "any")]),
        FFT("fft.fftshift", lambda x: _F.fftshift(x, axes=(0, 1)), [((3, 4), "any")]),
        FFT("fft.ifftshift", lambda x: _F.ifftshift(x), [((5,), "any")]),
        FFT("fft.stft", lambda x, w: _F.stft(x, n_fft=8, hop_length=3, window=w), [((2, 20), "any"), ((6,), "pos")]),
        FFT("fft.istft", lambda s, w: _F.istft(s.astype(mx.complex64), n_fft=8, hop_length=3, window=w, length=12),
            [((5, 6), "any"), ((8,), "pos")])]


# Linear algebra (oxmx.core.linalg): each factorization is a custom_function with its own
# rules. Matrices are well conditioned; outputs whose sign is arbitrary (singular vectors,
# eigenvectors) enter through sign-invariant products.
DOMAINS["wellcond"] = lambda r, s: r.standard_normal(s) * 0.5 + np.eye(s[-1]) * 2.0
DOMAINS["spd"] = lambda r, s: (lambda x: x @ np.swapaxes(x, -1, -2) + np.eye(s[-1]) * s[-1])(r.standard_normal(s))


def _svd_parts(a):
    u, s, vt = mx.linalg.svd(a)
    k = s.shape[-1]
    uk, vk = u[..., :, :k], vt[..., :k, :]
    return [s, uk * uk[..., :1, :], vk * vk[..., :, :1]]


def _eigh_parts(a, uplo="L"):
    w, v = mx.linalg.eigh(a, UPLO=uplo)
    return [w, v * v[..., :1, :]]


_L = mx.linalg
OPS += [Op("linalg.inv", _L.inv, [((2, 3, 3), "wellcond")]),
        Op("linalg.tri_inv", lambda a: _L.tri_inv(a, upper=True), [((3, 3), "wellcond")]),
        Op("linalg.solve", _L.solve, [((2, 3, 3), "wellcond"), ((3, 2), "any")]),
        Op("linalg.solve-vector", _L.solve, [((3, 3), "wellcond"), ((3,), "any")]),
        Op("linalg.solve_triangular", lambda a, b: _L.solve_triangular(a, b, upper=True), [((3, 3), "wellcond"), ((2, 3, 2), "any")]),
        Op("linalg.cholesky", _L.cholesky, [((2, 3, 3), "spd")]),
        Op("linalg.cholesky-upper", lambda a: _L.cholesky(a, upper=True), [((3, 3), "spd")]),
        Op("linalg.cholesky_inv", lambda a: _L.cholesky_inv(a, upper=True), [((3, 3), "wellcond")]),
        Op("linalg.qr", _L.qr, [((4, 3), "any")]),
        Op("linalg.qr-wide", _L.qr, [((2, 3, 4), "any")]),
        Op("linalg.svd", _svd_parts, [((4, 3), "any")]),
        Op("linalg.svd-wide", _svd_parts, [((2, 3, 4), "any")]),
        Op("linalg.svd-values", lambda a: _L.svd(a, compute_uv=False), [((3, 4), "any")]),
        Op("linalg.eigh", _eigh_parts, [((2, 3, 3), "any")]),
        Op("linalg.eigh-upper", lambda a: _eigh_parts(a, "U"), [((3, 3), "any")]),
        Op("linalg.eigvalsh", lambda a: _L.eigvalsh(a, UPLO="U"), [((3, 3), "any")]),
        Op("linalg.det", _L.det, [((2, 3, 3), "any")]),
        Op("linalg.slogdet", lambda a: _L.slogdet(a)[1], [((3, 3), "any")]),
        Op("linalg.pinv", _L.pinv, [((4, 3), "any")]),
        Op("linalg.pinv-wide", _L.pinv, [((2, 3, 4), "any")]),
        Op("linalg.norm", lambda a: [_L.norm(a, o, axis=(0, 2)) for o in ("nuc", 2, -2, "fro", 1, float("inf"))], [((3, 2, 4), "distinct")]),
        Op("linalg.norm-vector", lambda a: [_L.norm(a, o, axis=1) for o in (None, 3, 0.5, 1, float("-inf"))], [((3, 4), "nonzero")]),
        Op("linalg.cross", _L.cross, [((2, 3), "any"), ((3,), "any")]),
        Op("linalg.cross-2", lambda a, b: _L.cross(a, b, axis=0), [((2, 4), "any"), ((3, 4), "any")])]


def _setitem(x, u):
    y = x * 1.0
    y[1] = u
    return y


# Public functions of oxmx.core that are not differentiable (or not functions of
# float arrays) — everything else must have a harness entry.
NOT_DIFFERENTIABLE = set("""
array zeros ones full zeros_like ones_like arange linspace eye identity tri tril triu meshgrid
bartlett blackman hamming hanning from_dlpack eval async_eval synchronize new_stream default_stream
default_device set_default_device stream device_info is_available grad value_and_grad vjp jvp vmap
compile disable_compile enable_compile export_to_dot export_function import_function exporter checkpoint custom_function finfo iinfo result_type can_cast
issubdtype isdtype set_printoptions get_printoptions printoptions argmax argmin argsort argpartition
all any count_nonzero equal not_equal less less_equal greater greater_equal logical_and logical_or
logical_not logical_xor bitwise_and bitwise_or bitwise_xor bitwise_invert left_shift right_shift
isnan isinf isposinf isneginf isfinite isclose allclose array_equal nonzero unique searchsorted
view real imag nan_to_num stop_gradient minmax partition cumulative_sum cumulative_prod
get_active_memory get_peak_memory reset_peak_memory get_cache_memory set_memory_limit
set_cache_limit set_wired_limit clear_cache get_memory_limit empty empty_like full_like asarray
broadcast_shapes clear_streams device_count get_array_buffer_size new_thread_local_stream
new_thread_unsafe_stream set_default_stream bitwise_left_shift bitwise_right_shift
load save savez savez_compressed save_safetensors save_gguf einsum_path
fft.fftfreq fft.rfftfreq
linalg.lu linalg.lu_factor linalg.eig linalg.eigvals
quantize to_fp8 from_fp8 qqmm gather_qqmm
""".split())
# quantize/to_fp8/from_fp8 produce integer codes or read them; qqmm's gradient is
# straight-through by design (tests/nn/test_layer_transforms.py::test_straight_through).

# quantized products (float32 inside: there is no float64 quantized kernel; the products
# are linear in x and in the affine scales/biases, so float32 finite differences are exact
# up to rounding)
_QW = np.random.default_rng(13).standard_normal((5, 64)).astype(np.float32)
_QWQ, _QS, _QB = mx.quantize(mx.array(_QW), group_size=32, bits=4)
_QW3Q, _QS3, _QB3 = mx.quantize(mx.array(np.stack([_QW, -_QW, 0.5 * _QW])), group_size=32, bits=4)
_QX = mx.array(np.random.default_rng(14).standard_normal((3, 64)).astype(np.float32))
_Q32 = dict(eps=1e-2, rtol=1e-3, consistency=1e-5, atol=1e-3, vmap_tol=1e-5)
_F32 = mx.float32
OPS += [
    Op("quantized_matmul", lambda x: mx.quantized_matmul(x.astype(_F32), _QWQ, _QS, _QB, group_size=32, bits=4),
       [((3, 64), "any")], **_Q32),
    Op("quantized_matmul-nt", lambda x: mx.quantized_matmul(x.astype(_F32), _QWQ, _QS, _QB, transpose=False,
                                                            group_size=32, bits=4), [((2, 5), "any")], **_Q32),
    Op("quantized_matmul-params", lambda s, b: mx.quantized_matmul(_QX, _QWQ, s.astype(_F32), b.astype(_F32),
                                                                   group_size=32, bits=4),
       [((5, 2), "any"), ((5, 2), "any")], **_Q32),
    Op("dequantize", lambda s, b: mx.dequantize(_QWQ, s.astype(_F32), b.astype(_F32), group_size=32, bits=4),
       [((5, 2), "any"), ((5, 2), "any")], **_Q32),
    Op("gather_qmm", lambda x: mx.gather_qmm(x.astype(_F32), _QW3Q, _QS3, _QB3, rhs_indices=mx.array([2, 0]),
                                             group_size=32, bits=4), [((2, 1, 64), "any")], **_Q32),
]

# Names exercised through a differently named entry (or a composite checked elsewhere).
COVERED_AS = {"concat": "concatenate", "permute_dims": "transpose", "broadcast_arrays": "broadcast_to",
              "atleast_1d": "atleast_3d", "atleast_2d": "atleast_3d", "put_along_axis": "put_along_axis",
              "matrix_transpose": "swapaxes", "round": "round", "clip": "clip", "where": "where",
              "slice_update": "slice_update", "slice": "mx.slice", "acos": "arccos", "acosh": "arccosh",
              "asin": "arcsin", "asinh": "arcsinh", "atan": "arctan", "atanh": "arctanh", "atan2": "arctan2",
              "conj": "conjugate", "pow": "power", "divmod": "floor_divide",
              "matrix_norm": "linalg.norm"}


def entry_names():
    return {o.name.split("[")[0].split("-")[0] for o in OPS}


# ---------------------------------------------------------------- the checks
def _to_np(a):
    return np.array(a.astype(mx.float64)) if isinstance(a, mx.array) else np.asarray(a)


def _flat_outputs(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def check_vjp_jvp(op, rng, atol=1e-7):
    eps, rtol = op.eps, op.rtol
    atol = op.atol if op.atol is not None else atol
    xs = op.make(rng)
    outs = _flat_outputs(op(*xs))
    us = [mx.array(rng.standard_normal(o.shape), dtype=mx.float64) for o in outs]
    vs = [mx.array(rng.standard_normal(x.shape), dtype=mx.float64) for x in xs]

    f = lambda *a: _flat_outputs(op(*a))
    vals, grads = mx.vjp(f, xs, us)
    vals2, tans = mx.jvp(f, xs, vs)
    for v, o in zip(vals, outs):
        np.testing.assert_allclose(_to_np(v), _to_np(o), rtol=1e-12, err_msg=f"{op}: vjp outputs")
    for v, o in zip(vals2, outs):
        np.testing.assert_allclose(_to_np(v), _to_np(o), rtol=1e-12, err_msg=f"{op}: jvp outputs")
    for g, x in zip(grads, xs):
        assert g.shape == x.shape and g.dtype == x.dtype, f"{op}: cotangent {g.shape} {g.dtype} for {x.shape} {x.dtype}"

    # central differences of the whole output along v
    plus = f(*[x + eps * v for x, v in zip(xs, vs)])
    minus = f(*[x - eps * v for x, v in zip(xs, vs)])
    fd = [(_to_np(p) - _to_np(m)) / (2 * eps) for p, m in zip(plus, minus)]
    for t, d in zip(tans, fd):
        np.testing.assert_allclose(_to_np(t), d, rtol=rtol, atol=atol * max(1.0, np.abs(d).max(initial=0)), err_msg=f"{op}: jvp vs finite differences")
    lhs = sum(float((_to_np(g) * _to_np(v)).sum()) for g, v in zip(grads, vs))
    rhs_fd = sum(float((_to_np(u) * d).sum()) for u, d in zip(us, fd))
    rhs = sum(float((_to_np(u) * _to_np(t)).sum()) for u, t in zip(us, tans))
    scale = max(1.0, abs(rhs_fd))
    assert abs(lhs - rhs_fd) <= rtol * scale, f"{op}: <vjp(u), v> = {lhs} but finite differences give {rhs_fd}"
    assert abs(lhs - rhs) <= op.consistency * scale, f"{op}: <vjp(u), v> = {lhs} but <u, jvp(v)> = {rhs}"


def check_vmap(op, rng, batch=3):
    if not op.vmap:
        return
    base = op.make(rng)
    for i, x in enumerate(base):
        for ax in range(x.ndim + 1):
            stacked = mx.array(np.stack([np.array(op.make(np.random.default_rng(k))[i]) for k in range(batch)], axis=ax), dtype=mx.float64)
            in_axes = tuple(ax if j == i else None for j in range(len(base)))
            args = [stacked if j == i else b for j, b in enumerate(base)]
            got = _flat_outputs(mx.vmap(lambda *a: op(*a), in_axes=in_axes)(*args))
            ref = []
            for k in range(batch):
                a = [mx.take(stacked, k, axis=ax) if j == i else b for j, b in enumerate(base)]
                ref.append(_flat_outputs(op(*a)))
            for n, g in enumerate(got):
                want = np.stack([_to_np(r[n]) for r in ref])
                np.testing.assert_allclose(_to_np(g), want, rtol=op.vmap_tol, atol=op.vmap_tol, err_msg=f"{op}: vmap input {i} axis {ax}")
    # all inputs batched at once
    if len(base) > 1:
        stacked = [mx.array(np.stack([np.array(op.make(np.random.default_rng(k))[i]) for k in range(batch)]), dtype=mx.float64) for i in range(len(base))]
        got = _flat_outputs(mx.vmap(lambda *a: op(*a))(*stacked))
        for n, g in enumerate(got):
            want = np.stack([_to_np(_flat_outputs(op(*[s[k] for s in stacked]))[n]) for k in range(batch)])
            np.testing.assert_allclose(_to_np(g), want, rtol=op.vmap_tol, atol=op.vmap_tol, err_msg=f"{op}: vmap all inputs")
