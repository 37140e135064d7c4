"""oxmx.core.einsum and einsum_path.

References: ``np.einsum`` in float64 (values, on seeded random expressions with 1-4
operands, repeated labels, ellipses, implicit output, size-1 broadcasting, empty and 0-d
operands), central finite differences of NumPy's einsum (gradients; an einsum is linear
in each operand, so the difference quotient is exact up to rounding), NumPy's greedy
``einsum_path`` (flop counts) and real MLX where it is installed (values, dtypes, error
types, paths and reports).
"""

import numpy as np
import pytest

import oxmx.core as mx

try:
    import mlx.core as mlx
except ImportError:  # pragma: no cover
    mlx = None

needs_mlx = pytest.mark.skipif(mlx is None, reason="real MLX is not installed")

POOL = "abcdeAB"


# ---------------------------------------------------------------- random expressions
def random_expr(rng, max_ops=4, empty=True):
    """``(subscripts, shapes)`` of a random valid einsum that NumPy also accepts."""
    n_ops = int(rng.integers(1, max_ops + 1))
    sizes = {c: int(rng.choice([0, 1, 2, 3, 4] if empty and rng.random() < 0.1 else [1, 2, 3, 4])) for c in POOL}
    n_ell = int(rng.integers(0, 3)) if rng.random() < 0.3 else 0
    ell_shape = tuple(int(rng.integers(1, 4)) for _ in range(n_ell))
    terms, shapes = [], []
    for _ in range(n_ops):
        labels = list(rng.choice(list(POOL), int(rng.integers(0, 4))))  # repeats allowed
        shape = []
        for c in labels:
            # a label seen once in this operand may be 1 here and broadcast (never against 0)
            once = labels.count(c) == 1 and sizes[c] != 0
            shape.append(1 if once and rng.random() < 0.15 else sizes[c])
        term = "".join(labels)
        if n_ell and rng.random() < 0.7:
            k = int(rng.integers(0, n_ell + 1))
            ell = tuple(1 if rng.random() < 0.2 else s for s in ell_shape[n_ell - k:])
            at = int(rng.integers(0, len(labels) + 1))
            term = term[:at] + "..." + term[at:]
            shape = shape[:at] + list(ell) + shape[at:]
        terms.append(term)
        shapes.append(tuple(shape))
    lhs = ",".join(terms)
    if rng.random() < 0.3:
        return lhs, shapes
    used = sorted(set("".join(terms).replace(".", "")))
    out = [c for c in rng.permutation(used) if rng.random() < 0.5]
    out = "".join(out)
    if any("..." in t for t in terms):
        at = int(rng.integers(0, len(out) + 1))
        out = out[:at] + "..." + out[at:]
    return lhs + "->" + out, shapes


def has_matmul(subscripts, shapes):
    """Whether a label not in the output is held by two operands (MLX contracts it with a
    matmul, which refuses integer operands)."""
    _, arrow, out = subscripts.replace(" ", "").partition("->")
    terms = subscripts.split("->")[0].split(",")
    if not arrow:
        counts = {}
        for t in terms:
            for c in t.replace(".", ""):
                counts[c] = counts.get(c, 0) + 1
        out = "".join(c for c, n in counts.items() if n == 1)
    held = {}
    for t in terms:
        for c in set(t.replace(".", "")):
            held[c] = held.get(c, 0) + 1
    return any(n >= 2 and c not in out for c, n in held.items())


def data(rng, shapes, dtype=np.float64):
    if np.issubdtype(dtype, np.complexfloating):
        return [(rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(dtype) for s in shapes]
    if np.issubdtype(dtype, np.integer):
        return [rng.integers(-5, 6, s).astype(dtype) for s in shapes]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def npy(a):
    return np.array(a.astype(mx.float64) if a.dtype == mx.bfloat16 else a)


EXPRS = [random_expr(np.random.default_rng(seed)) for seed in range(250)]


# ---------------------------------------------------------------- values
@pytest.mark.parametrize("chunk", range(5))
def test_random_expressions_match_numpy_float64(chunk):
    rng = np.random.default_rng(chunk)
    for subscripts, shapes in EXPRS[chunk::5]:
        xs = data(rng, shapes)
        want = np.einsum(subscripts, *xs)
        got = mx.einsum(subscripts, *[mx.array(x, dtype=mx.float64) for x in xs])
        assert got.dtype == mx.float64, subscripts
        assert tuple(got.shape) == want.shape, (subscripts, shapes)
        np.testing.assert_allclose(npy(got), want, rtol=1e-12, atol=1e-12, err_msg=f"{subscripts} {shapes}")


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("bfloat16", 2e-2), ("float16", 4e-3), ("complex64", 2e-6)])
def test_float_dtypes_within_tolerance(dtype, rtol):
    rng = np.random.default_rng(7)
    for subscripts, shapes in EXPRS[:80]:
        xs = data(rng, shapes, np.complex128 if dtype == "complex64" else np.float64)
        ox = [mx.array(x.astype(np.complex64 if dtype == "complex64" else np.float32)).astype(getattr(mx, dtype)) for x in xs]
        exact = [npy(o).astype(np.complex128 if dtype == "complex64" else np.float64) for o in ox]
        want = np.einsum(subscripts, *exact)
        # rounding error is bounded by the same sum over absolute values
        scale = np.einsum(subscripts, *[np.abs(x) for x in exact])
        got = mx.einsum(subscripts, *ox)
        assert got.dtype == getattr(mx, dtype), subscripts
        g = np.array(got) if dtype == "complex64" else npy(got)
        assert g.shape == want.shape
        assert np.all(np.abs(g - want) <= rtol * (scale + 1)), (subscripts, shapes)


def test_int32_without_contraction_is_exact_and_contraction_raises():
    rng = np.random.default_rng(3)
    n_ok = n_err = 0
    for subscripts, shapes in EXPRS:
        xs = data(rng, shapes, np.int32)
        ox = [mx.array(x) for x in xs]
        if has_matmul(subscripts, shapes):
            with pytest.raises(ValueError, match=r"^\[einsum\]"):
                mx.einsum(subscripts, *ox)
            n_err += 1
            continue
        got = mx.einsum(subscripts, *ox)
        assert got.dtype == mx.int32, subscripts
        np.testing.assert_array_equal(np.array(got), np.einsum(subscripts, *[x.astype(np.int64) for x in xs]))
        n_ok += 1
    assert n_ok > 30 and n_err > 30


# dtypes observed with MLX 0.32: sums promote small ints and bool (as mx.sum), labels only
# one operand has are summed before the operands are multiplied, matmul promotes.
DTYPE_CASES = [
    ("ij->i", ["bool_"], "int32"), ("ij->i", ["int8"], "int32"), ("ij->i", ["uint8"], "uint32"),
    ("ij->i", ["float16"], "float16"), ("ii->i", ["bool_"], "bool_"), ("ii->", ["bool_"], "int32"),
    ("i,i->i", ["bool_", "int8"], "int8"), ("i,j->", ["int8", "uint8"], "int64"),
    ("i,j->ij", ["int8", "uint8"], "int16"), ("ij,jk->ik", ["int32", "float16"], "float16"),
    ("ij,jk->ik", ["bfloat16", "float32"], "float32"), ("ij,jk->ik", ["float64", "float32"], "float64"),
    ("ij,jk->ik", ["complex64", "float32"], "complex64"), ("ij,jk->ik", ["bool_", "float32"], "float32"),
    ("ij,jk->ijk", ["bool_", "bool_"], "bool_"), ("ab->a", ["int64"], "int64"), (",", ["int32", "float16"], "float16"),
]


@pytest.mark.parametrize("subscripts, dtypes, out", DTYPE_CASES)
def test_result_dtype_like_mlx(subscripts, dtypes, out):
    shapes = {"ij->i": [(2, 3)], "ii->i": [(3, 3)], "ii->": [(3, 3)], "i,i->i": [(3,), (3,)], "i,j->": [(2,), (3,)],
              "i,j->ij": [(2,), (3,)], "ij,jk->ik": [(2, 3), (3, 2)], "ij,jk->ijk": [(2, 3), (3, 2)], "ab->a": [(2, 2)],
              ",": [(), ()]}[subscripts]
    xs = [mx.ones(s).astype(getattr(mx, d)) for s, d in zip(shapes, dtypes)]
    got = mx.einsum(subscripts, *xs)
    assert got.dtype == getattr(mx, out)
    if mlx is not None:
        ref = mlx.einsum(subscripts, *[mlx.ones(s).astype(getattr(mlx, d)) for s, d in zip(shapes, dtypes)])
        assert str(ref.dtype).split(".")[-1] == str(got.dtype).split(".")[-1]


@pytest.mark.parametrize("subscripts, shapes", [
    ("ii->i", [(4, 4)]), ("ii", [(4, 4)]), ("iii->i", [(3, 3, 3)]), ("iij->ji", [(3, 3, 2)]), ("ijij->ij", [(2, 3, 2, 3)]),
    ("ij,jk", [(3, 4), (4, 2)]), ("...ij,...jk", [(2, 1, 3, 4), (5, 4, 2)]), ("bij,bjk,bkl->bil", [(2, 3, 4), (2, 4, 5), (2, 5, 3)]),
    ("i...->...", [(2, 3, 4)]), ("ij,ij->ij", [(1, 3), (2, 1)]), ("ij,jk->ik", [(2, 3), (1, 4)]), ("ij,jk->ik", [(2, 1), (3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 0), (0, 4)]), ("ij,jk", [(2, 0), (0, 3)]), ("ii->i", [(0, 0)]), ("ij->", [(0, 3)]),
    ("", [()]), (",", [(), ()]), ("i,", [(3,), ()]), ("ij,->i", [(2, 3), ()]), ("aA", [(2, 3)]), ("Ba,aB", [(2, 3), (3, 2)]),
    (" i j , j k -> k i ", [(2, 3), (3, 4)]), ("fbg,bdh,dh,dhg,bed,d->efgh", [(2, 2, 3), (2, 3, 2), (3, 2), (3, 2, 3), (2, 3, 3), (3,)]),
])
def test_named_cases_match_numpy(subscripts, shapes):
    rng = np.random.default_rng(1)
    xs = data(rng, shapes)
    got = mx.einsum(subscripts, *[mx.array(x, dtype=mx.float64) for x in xs])
    np.testing.assert_allclose(npy(got), np.einsum(subscripts, *xs), rtol=1e-12, atol=1e-12)


def test_ellipsis_missing_from_output_is_summed_as_mlx():
    # MLX (not NumPy) accepts broadcast dimensions that the output does not name: summed
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 4))
    got = mx.einsum("...i->i", mx.array(x, dtype=mx.float64))
    np.testing.assert_allclose(npy(got), x.sum(axis=(0, 1)))
    got = mx.einsum("a...b,...b->a", mx.array(x, dtype=mx.float64), mx.array(y, dtype=mx.float64))
    np.testing.assert_allclose(npy(got), np.einsum("a...b,...b->a...", x, y).sum(axis=1))
    assert mx.einsum("...->", mx.ones((2, 3))).item() == 6.0
    assert mx.einsum("i->...i", mx.ones(3)).shape == (3,)


def test_size_one_broadcasts_to_zero_like_numpy():
    # MLX raises "Cannot broadcast array of shape (0) into shape (1)" here (see the report)
    for s, shapes in [("i,i", [(1,), (0,)]), ("ij,j->i", [(2, 1), (0,)]), ("bij,bjk->bik", [(1, 2, 3), (0, 3, 4)])]:
        xs = [np.ones(sh) for sh in shapes]
        got = mx.einsum(s, *[mx.array(x, dtype=mx.float64) for x in xs])
        np.testing.assert_array_equal(npy(got), np.einsum(s, *xs))


def test_non_contiguous_inputs():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((5, 4)).astype(np.float32)
    b = rng.standard_normal((4, 6)).astype(np.float32)
    c = rng.standard_normal((1, 3)).astype(np.float32)
    views = {
        "T": (mx.array(a.T.copy()).T, a),
        "step": (mx.array(np.repeat(a, 2, axis=1))[:, ::2], a),
        "rev": (mx.array(a[::-1].copy())[::-1], a),
    }
    for name, (va, na) in views.items():
        for s, others in [("ij,jk->ki", [b]), ("ij->ji", []), ("ij,ij->i", [a]), ("ii->i", None)]:
            if others is None:
                got = mx.einsum(s, va[:4, :4])
                want = np.einsum(s, na[:4, :4])
            else:
                got = mx.einsum(s, va, *[mx.array(o) for o in others])
                want = np.einsum(s, na, *others)
            np.testing.assert_allclose(np.array(got), want, rtol=1e-5, atol=1e-5, err_msg=f"{name} {s}")
    bc = mx.broadcast_to(mx.array(c), (4, 3))
    np.testing.assert_allclose(np.array(mx.einsum("ij,ik->jk", bc, mx.array(a[:4]))), np.einsum("ij,ik->jk", np.broadcast_to(c, (4, 3)), a[:4]), rtol=1e-5)


def test_result_is_a_new_array_and_stream_is_accepted():
    a = mx.ones((2, 3))
    assert mx.einsum("ij", a) is not a
    np.testing.assert_array_equal(np.array(mx.einsum("ij->ji", a, stream=mx.cpu)), np.ones((3, 2)))


# ---------------------------------------------------------------- gradients
def fd_grads(subscripts, xs, w):
    """d/dx_k sum(einsum(xs) * w), by central differences (exact: linear in x_k)."""
    grads = []
    for k, x in enumerate(xs):
        g = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            hi = [y.copy() for y in xs]
            lo = [y.copy() for y in xs]
            hi[k][idx] += 1.0
            lo[k][idx] -= 1.0
            g[idx] = (np.sum(np.einsum(subscripts, *hi) * w) - np.sum(np.einsum(subscripts, *lo) * w)) / 2
        grads.append(g)
    return grads


GRAD_EXPRS = [e for e in EXPRS if sum(int(np.prod(s)) for s in e[1]) <= 60][:40] + [
    ("ii->i", [(3, 3)]), ("...ij,...jk", [(2, 1, 3, 2), (3, 2, 2)]), ("ij,jk->ik", [(2, 1), (3, 4)]),
    ("ij,ij->ij", [(1, 3), (2, 1)]), ("bii,bj->bj", [(2, 3, 3), (2, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
]


@pytest.mark.parametrize("subscripts, shapes", GRAD_EXPRS)
def test_vjp_and_jvp_match_finite_differences(subscripts, shapes):
    rng = np.random.default_rng(5)
    xs = data(rng, shapes)
    want = np.einsum(subscripts, *xs)
    w = rng.standard_normal(want.shape)
    ox = [mx.array(x, dtype=mx.float64) for x in xs]
    wx = mx.array(w, dtype=mx.float64)
    argnums = tuple(range(len(xs)))
    grads = mx.grad(lambda *a: mx.sum(mx.einsum(subscripts, *a) * wx), argnums=argnums)(*ox)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g, r in zip(grads, fd_grads(subscripts, xs, w)):
        assert g.shape == r.shape
        np.testing.assert_allclose(npy(g), r, rtol=1e-9, atol=1e-9, err_msg=subscripts)
    # jvp: the sum over operands of einsum with one operand replaced by its tangent
    ts = data(rng, shapes)
    _, (jt,) = mx.jvp(lambda *a: mx.einsum(subscripts, *a), ox, [mx.array(t, dtype=mx.float64) for t in ts])
    ref = sum(np.einsum(subscripts, *(xs[:k] + [ts[k]] + xs[k + 1:])) for k in range(len(xs)))
    np.testing.assert_allclose(npy(jt), ref, rtol=1e-9, atol=1e-9, err_msg=subscripts)


@pytest.mark.parametrize("subscripts, shapes", [("ij,jk->ik", [(2, 3), (3, 4)]), ("ii->i", [(3, 3)]),
                                                ("...i,i->...", [(2, 3), (3,)]), ("ij,ij->", [(2, 3), (2, 3)])])
def test_vmap_matches_a_loop(subscripts, shapes):
    rng = np.random.default_rng(6)
    xs = data(rng, shapes)
    stacked = np.stack([xs[0], 2 * xs[0], -xs[0]])
    f = mx.vmap(lambda a, *rest: mx.einsum(subscripts, a, *rest), in_axes=(0,) + (None,) * (len(xs) - 1))
    got = f(mx.array(stacked, dtype=mx.float64), *[mx.array(x, dtype=mx.float64) for x in xs[1:]])
    want = np.stack([np.einsum(subscripts, s, *xs[1:]) for s in stacked])
    np.testing.assert_allclose(npy(got), want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- errors
BAD = [
    ("ij,jk", [(2, 3), (4, 4)]), ("ij->k", [(2, 3)]), ("ij->ii", [(3, 3)]), ("i1", [(2, 3)]), ("ij->ij->", [(2, 3)]),
    ("ij", [(2, 3), (2, 3)]), ("ij,kl", [(2, 3)]), ("ijk", [(2, 3)]), ("i", [(2, 3)]), ("ij-", [(2, 3)]), ("ij>", [(2, 3)]),
    ("..i", [(2, 3)]), ("....", [(2, 3)]), ("...i...", [(2, 3)]), ("...->i", [(3,)]), ("ij->I", [(2, 3)]),
    ("ij...", [(2,)]), ("i", [()]), ("...i", [()]), ("i\tj", [(2, 3)]), ("i->i,i", [(3,)]), ("i->...i...", [(3,)]),
    ("ii", [(2, 3)]), ("ii->i", [(1, 3)]), ("ij,j->i", [(2, 3), (5,)]), ("...,...", [(2, 3), (2,)]),
    ("a...b,b...c->a...c", [(2, 3, 4), (4, 6, 5)]), ("->", [(2,)]), ("i,j->i,j", [(2,), (3,)]), ("é", [(3,)]),
]


@pytest.mark.parametrize("subscripts, shapes", BAD)
def test_bad_subscripts_raise_value_error(subscripts, shapes):
    for name in ("einsum", "einsum_path"):
        with pytest.raises(ValueError, match=rf"^\[{name}\] "):
            getattr(mx, name)(subscripts, *[mx.ones(s) for s in shapes])
    if mlx is not None and subscripts != "é":  # MLX misreads non-ASCII strings (see the report)
        with pytest.raises(ValueError):
            mlx.einsum(subscripts, *[mlx.ones(s) for s in shapes])


def test_integer_contraction_raises_like_mlx():
    for s, shapes in [("ij,jk->ik", [(2, 3), (3, 2)]), ("i,i", [(1,), (1,)]), ("ij,ij->i", [(2, 3), (2, 3)]), ("i,i,i->", [(3,)] * 3)]:
        for dt in ("int32", "bool_", "uint8"):
            with pytest.raises(ValueError, match=r"^\[einsum\] .*matmul"):
                mx.einsum(s, *[mx.ones(sh, dtype=getattr(mx, dt)) for sh in shapes])
            if mlx is not None:
                with pytest.raises(ValueError):
                    mlx.einsum(s, *[mlx.ones(sh, dtype=getattr(mlx, dt)) for sh in shapes])


def test_argument_types():
    with pytest.raises(ValueError, match="At least one operand"):
        mx.einsum("")
    with pytest.raises(TypeError, match=r"^\[einsum\]"):
        mx.einsum(3, mx.ones(3))
    with pytest.raises(TypeError, match=r"^\[einsum\]"):
        mx.einsum(b"i", mx.ones(3))
    for bad in ([1.0, 2.0], np.ones(2, np.float32), 2.0):
        # MLX raises RuntimeError('std::bad_cast'); oxmx's error is both a TypeError and that
        with pytest.raises(TypeError, match=r"^\[einsum\] Operand 1"):
            mx.einsum("i,i", mx.ones(2), bad)
        with pytest.raises(RuntimeError):
            mx.einsum("i,i", mx.ones(2), bad)
        if mlx is not None:
            with pytest.raises(RuntimeError):
                mlx.einsum("i,i", mlx.ones(2), bad)


# ---------------------------------------------------------------- einsum_path
def numpy_report_numbers(report):
    rows = dict(line.split(":", 1) for line in report.splitlines() if ":" in line)
    return {k.strip(): float(v) for k, v in rows.items() if "FLOP" in k or "scaling" in k}


def test_path_structure_and_report_format():
    path, report = mx.einsum_path("ij,jk->ik", mx.ones((2, 3)), mx.ones((3, 4)))
    assert path == [(0, 1)]
    assert report == (
        "  Complete contraction:  ij,jk->ik\n         Naive scaling:  3\n     Optimized scaling:  3\n"
        "      Naive FLOP count:  48\n  Optimized FLOP count:  48\n"
    )
    assert mx.einsum_path("ii->i", mx.ones((3, 3)))[0] == [(0,)]
    assert mx.einsum_path(",", mx.array(1.0), mx.array(2.0))[0] == [(0, 1)]


@pytest.mark.parametrize("sizes, path", [
    ((100, 2, 100, 3), [(1, 2), (0, 1)]),   # (jk)(kl) first: 2x3 intermediate
    ((3, 100, 2, 100), [(0, 1), (0, 1)]),   # (ij)(jk) first: 3x2 intermediate
])
def test_chain_takes_the_cheap_order(sizes, path):
    i, j, k, l = sizes
    ops = [mx.ones((i, j)), mx.ones((j, k)), mx.ones((k, l))]
    got, report = mx.einsum_path("ij,jk,kl->il", *ops)
    assert got == path
    nums = numpy_report_numbers(report)
    cheap = 2 * (min(i * j * k + i * k * l, j * k * l + i * j * l))
    assert nums["Optimized FLOP count"] == cheap
    assert nums["Naive FLOP count"] == 3 * i * j * k * l  # (3 - 1) products and a sum per term


def test_flop_counts_agree_with_numpy_greedy():
    # NumPy's report adds 1 to the optimized count; its naive count calls a product with a
    # shared summed label "inner", as MLX does whenever something is summed (equal here)
    rng = np.random.default_rng(8)
    for _ in range(40):
        n = int(rng.integers(3, 6))
        letters = "abcdefg"[: n + 1]
        terms = [letters[m] + letters[m + 1] for m in range(n)]
        dims = {c: int(rng.integers(2, 30)) for c in letters}
        s = ",".join(terms) + "->" + letters[0] + letters[n]
        shapes = [tuple(dims[c] for c in t) for t in terms]
        path, report = mx.einsum_path(s, *[mx.zeros(sh) for sh in shapes])
        npath, nreport = np.einsum_path(s, *[np.zeros(sh) for sh in shapes], optimize="greedy")
        assert path == npath[1:], s
        ours, theirs = numpy_report_numbers(report), numpy_report_numbers(nreport)
        # NumPy prints the counts with 4 significant digits
        assert float(f'{ours["Naive FLOP count"]:.3e}') == theirs["Naive FLOP count"]
        assert float(f'{ours["Optimized FLOP count"] + 1:.3e}') == theirs["Optimized FLOP count"]
        assert ours["Naive scaling"] == theirs["Naive scaling"]
        assert ours["Optimized scaling"] == theirs["Optimized scaling"]


# ---------------------------------------------------------------- against real MLX
@needs_mlx
def test_random_expressions_match_mlx():
    rng = np.random.default_rng(9)
    for subscripts, shapes in EXPRS[:120]:
        if 0 in sum(shapes, ()):
            # MLX's CPU sum over an empty axis of an array made from NumPy now and then
            # never returns (see the report); empties are checked against NumPy above
            continue
        xs = data(rng, shapes, np.float32)
        ref = mlx.einsum(subscripts, *[mlx.array(x) for x in xs])
        got = mx.einsum(subscripts, *[mx.array(x) for x in xs])
        assert got.shape == ref.shape and str(got.dtype).split(".")[-1] == str(ref.dtype).split(".")[-1]
        np.testing.assert_allclose(np.array(got), np.array(ref), rtol=1e-4, atol=1e-4, err_msg=subscripts)
        assert mx.einsum_path(subscripts, *[mx.array(x) for x in xs]) == tuple(
            mlx.einsum_path(subscripts, *[mlx.array(x) for x in xs]))


@needs_mlx
def test_paths_and_reports_match_mlx_on_larger_expressions():
    rng = np.random.default_rng(10)
    for _ in range(150):
        n = int(rng.integers(3, 7))
        alpha = "abcdefgh"[: int(rng.integers(2, 9))]
        terms = ["".join(rng.choice(list(alpha), int(rng.integers(0, 4)))) for _ in range(n)]
        used = sorted(set("".join(terms)))
        dims = {c: int(rng.choice([0, 1, 2, 3, 5, 7, 10, 20])) for c in used}
        out = "".join(c for c in used if rng.random() < 0.4)
        s = ",".join(terms) + "->" + out
        shapes = [tuple(dims[c] for c in t) for t in terms]
        got = mx.einsum_path(s, *[mx.zeros(sh) for sh in shapes])
        ref = mlx.einsum_path(s, *[mlx.zeros(sh) for sh in shapes])
        assert got == tuple(ref), s
