"""Maximum ulp error of the elementwise math functions, per function and dtype.

This is the accuracy specification for the math kernels (issue #18) of the CPU
(oxmx-cpu/src/vmath) and, with ``OXMX_ULP_DEVICE=gpu``, of the GPU (CUDA device math):
both must stay within ``ULP_BOUND``.  The reference is evaluated in higher precision:

* ``np.longdouble`` (x87 80-bit extended on x86-64: 11 more bits than float64) for
  everything except erf; float64 cases are skipped where longdouble is not wider;
* erf: ``mpmath`` for float64 (smaller sample: it is slow), ``math.erf`` in float64 for
  float32/float16/bfloat16 (about 1 float64 ulp, i.e. ~2**-29 float32 ulp);
* the few hundred worst points of every case are then re-measured against ``mpmath``
  (longdouble loses digits where a function cancels, e.g. logaddexp near 0).

ulp error = |computed - ref| / ulp_T(ref rounded to T), where ulp_T is the spacing of
T at that value (with the subnormal floor).  Non-finite results are checked exactly:
same NaN-ness, and wherever the reference rounded to T is +-inf (including a finite
reference that overflows T) the result must be that infinity.  A computed inf where
the reference rounds to a finite value counts as 2**maxexp (one ulp past T's max).

Sampling: float16/bfloat16 are exhaustive (every bit pattern); float32/float64 use a
bit-pattern (log-uniform) sweep over each function's interesting domain, random bit
patterns of all finite values, and a list of special and edge values.  Binary ops use
structured random pairs, random bit-pattern pairs and the special-value cross product.

Run with ``-s`` to print the measured table (copied into the docs).
"""

import math
import os

import ml_dtypes
import numpy as np
import pytest

import oxmx.core as mx

mpmath = pytest.importorskip("mpmath")

UNARY = [
    "exp", "expm1", "log", "log2", "log10", "log1p",
    "sin", "cos", "tan", "tanh", "sinh", "cosh",
    "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh",
    "erf", "sigmoid",
]  # fmt: skip
BINARY = ["arctan2", "power", "logaddexp"]
DTYPES = ["float32", "float64", "float16", "bfloat16"]

# The specification: max ulp error per (function, dtype).
ULP_BOUND = {
    # float32 and the half types: at most 1 ulp for every function
    **{(f, d): 1.0 for f in UNARY + BINARY for d in ("float32", "float16", "bfloat16")},
    # float64: 2 ulp ...
    **{(f, "float64"): 2.0 for f in UNARY + BINARY},
    # ... except these, 3 ulp
    **{(f, "float64"): 3.0 for f in ("tan", "arcsin", "arccos", "arctan2", "erf")},
}
# float64 power is held to its bound only where the result is in the normal range
# (subnormal results may lose relative accuracy); inf/NaN/0 are still checked exactly.
NORMAL_RANGE_ONLY = {("power", "float64")}
# float64 logaddexp is max + log1p(exp(-|x - y|)): where the two terms cancel its error is
# bounded in ulps of the larger term, not of the small result (as NumPy's formula; a
# relative bound there would need double-double exp and log1p).
SCALED_BY_LARGER_INPUT = {("logaddexp", "float64")}

# The device under test: the CPU kernels (oxmx-cpu/src/vmath) by default, whatever the
# suite's default device; OXMX_ULP_DEVICE=gpu holds the CUDA kernels to the same bounds
# (scripts/gpu_test.sh runs it so on the GPU machine).
DEVICE = os.environ.get("OXMX_ULP_DEVICE", "cpu")


# Cases that miss their bound: (function, dtype) -> what was measured.  They still run,
# are measured and printed, and xfail (non-strict).
_HARD_X = "x=6381956970095103*2**797, the hardest float64 argument reduction"
KNOWN_EXCESS_CPU = {
    # libm's own reduction (the vector kernels hand |x| > 2^19 to it): glibc's cos/tan
    # miss at this one input; 0.77 ulp (cos) and 0.68 ulp (tan) everywhere else
    ("cos", "float64"): f"7.96 ulp at {_HARD_X} (libm)",
    ("tan", "float64"): f"14.4 ulp at {_HARD_X} (libm)",
}
KNOWN_EXCESS_GPU = {}
KNOWN_EXCESS = KNOWN_EXCESS_GPU if DEVICE == "gpu" else KNOWN_EXCESS_CPU

# Functions with f(-x) = -f(x): a +-0 input must give a zero of the same sign.
ODD_AT_ZERO = {
    "sin", "tan", "tanh", "sinh", "arcsin", "arctan", "arcsinh", "arctanh",
    "erf", "expm1", "log1p",
}  # fmt: skip

# Sample sizes (float32 / float64); the half types are exhaustive.
N_SWEEP = {"float32": 3_500_000, "float64": 800_000}
N_RANDOM = {"float32": 500_000, "float64": 200_000}
N_PAIRS = {"float32": 2_000_000, "float64": 600_000, "float16": 500_000, "bfloat16": 500_000}
N_ERF_MPMATH = 40_000  # float64 erf: mpmath takes ~10 us a point
N_REFINE = 200  # worst points re-measured against mpmath (see refine)

LD = np.longdouble
LD_WIDER = np.finfo(LD).nmant >= 63  # needed to measure float64 errors
NP = {"float32": np.float32, "float64": np.float64, "float16": np.float16,
      "bfloat16": ml_dtypes.bfloat16}  # fmt: skip
UINT = {"float32": np.uint32, "float64": np.uint64, "float16": np.uint16, "bfloat16": np.uint16}

MEASURED = {}  # (function, dtype) -> dict(max=..., n=..., worst=...)


@pytest.fixture(autouse=True)
def _on_device():
    if DEVICE == "gpu" and not mx.is_available(mx.gpu):
        pytest.skip("OXMX_ULP_DEVICE=gpu but no GPU is available")
    with mx.stream(getattr(mx, DEVICE)):
        yield


def finfo(d):
    return ml_dtypes.finfo(NP[d]) if d == "bfloat16" else np.finfo(NP[d])


# --------------------------------------------------------------------------- conversions
def to_mx(a, d):
    if d == "bfloat16":  # exact: every bfloat16 value is a float32 value
        return mx.array(np.asarray(a, np.float32)).astype(mx.bfloat16)
    out = mx.array(np.asarray(a, NP[d]), dtype=getattr(mx, d))  # float64 needs asking
    assert out.dtype == getattr(mx, d)
    return out


def to_np(x, d):
    """oxmx result -> NumPy array holding exactly the same values."""
    assert x.dtype == getattr(mx, d)
    if d in ("float16", "bfloat16"):
        return np.array(x.astype(mx.float32))
    return np.array(x)


def round_to(ref, d):
    """Reference rounded to T, returned as float64 (exact).  Narrow types go through
    float64 (NumPy casts longdouble -> float16 through float32: a double rounding)."""
    r = ref.astype(np.float64)
    return r if d == "float64" else r.astype(NP[d]).astype(np.float64)


def ulp(r, d):
    """Spacing of T at the T-value r (float64 array, finite), subnormal floor included."""
    fi = finfo(d)
    _, e = np.frexp(r)  # |r| = m * 2**e with 0.5 <= m < 1, so floor(log2|r|) = e - 1
    expo = np.where(r == 0, fi.minexp, np.maximum(e - 1, fi.minexp))
    return np.ldexp(1.0, expo - fi.nmant)


# --------------------------------------------------------------------------- references
def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


REF = {
    **{f: getattr(np, f) for f in UNARY + BINARY if f not in ("erf", "sigmoid")},
    "sigmoid": _sigmoid,
}


def erf_ref(x, d):
    x64 = x.astype(np.float64)  # inputs are exact in float64
    if d != "float64":
        return np.frompyfunc(math.erf, 1, 1)(x64).astype(np.float64).astype(LD)
    return np.array([np.nan if math.isnan(v) else mp_value("erf", [v]) for v in x64.tolist()], LD)


def reference(name, args, d):
    with np.errstate(all="ignore"):
        xs = [a.astype(np.float64).astype(LD) for a in args]  # exact
        if name == "erf":
            return erf_ref(xs[0], d)
        return np.asarray(REF[name](*xs), LD)


def mp_to_ld(r):
    """mpmath number -> longdouble, keeping 64 bits even where float64 would underflow."""
    if not mpmath.isfinite(r) or r == 0:
        return LD(float(r))
    man, exp = r.man_exp  # r = man * 2**exp exactly
    shift = max(abs(man).bit_length() - 64, 0)
    m = abs(man) >> shift  # top 64 bits, as two exact 32-bit halves
    v = LD(m >> 32) * LD(2.0**32) + LD(m & 0xFFFFFFFF)
    v = np.ldexp(v, int(np.clip(exp + shift, -20000, 20000)))  # clip: past longdouble's range
    return -v if r < 0 else v


def mp_value(name, xs):
    """The function at float64 inputs xs in 256-bit arithmetic (mpmath reduces huge
    trigonometric arguments exactly), as a longdouble."""
    m = mpmath
    fns = {
        "exp": m.exp, "expm1": m.expm1, "log": m.log, "log2": lambda x: m.log(x, 2),
        "log10": m.log10, "log1p": m.log1p, "sin": m.sin, "cos": m.cos, "tan": m.tan,
        "tanh": m.tanh, "sinh": m.sinh, "cosh": m.cosh, "arcsin": m.asin, "arccos": m.acos,
        "arctan": m.atan, "arcsinh": m.asinh, "arccosh": m.acosh, "arctanh": m.atanh,
        "erf": m.erf, "sigmoid": lambda x: 1 / (1 + m.exp(-x)), "arctan2": m.atan2,
        "power": lambda x, y: x**y, "logaddexp": lambda a, b: m.log(m.exp(a) + m.exp(b)),
    }  # fmt: skip
    with m.workprec(256):
        return mp_to_ld(fns[name](*[m.mpf(x) for x in xs]))


def refine(name, args, idx):
    """mpmath references at the points idx.  The longdouble reference loses digits
    where the function cancels (logaddexp near 0, tan near a pole at a huge argument:
    up to ~0.4 float64 ulp), so the worst candidates are re-measured this way."""
    return np.array([mp_value(name, [float(a[i]) for a in args]) for i in idx], LD)


# --------------------------------------------------------------------------- samples
def cast(x, d):
    """float64 data rounded to T (overflow to inf allowed)."""
    x = np.asarray(x, np.float64)
    with np.errstate(all="ignore"):
        return x.astype(NP[d])


def bit_sweep(lo, hi, n, d):
    """About n positive T values from lo to hi, evenly spaced in bit pattern (log-uniform)."""
    fi = finfo(d)
    lo, hi = min(lo, float(fi.max)), min(hi, float(fi.max))
    a = int(np.array(lo, NP[d]).view(UINT[d]))
    b = int(np.array(hi, NP[d]).view(UINT[d]))
    bits = np.linspace(a, b, max(n, 2)).astype(UINT[d])
    bits = bits[np.r_[True, bits[1:] != bits[:-1]]]  # sorted: drop the repeats
    return bits.view(NP[d])


def random_finite(rng, n, d):
    bits = rng.integers(0, np.iinfo(UINT[d]).max, n, dtype=UINT[d], endpoint=True)
    x = bits.view(NP[d])
    return x[np.isfinite(x)]


def all_values(d):
    """Every bit pattern of a 16-bit type (NaNs and infinities included)."""
    return np.arange(1 << 16, dtype=np.uint16).view(NP[d])


def segments(name, d):
    """(center, lo, hi, sign) pieces: x = center + sign * m, m log-uniform in [lo, hi]."""
    fi = finfo(d)
    big, e = float(fi.max), float(fi.eps) / 4
    ln_max = math.log(big)
    ln_sub = -math.log(float(fi.smallest_subnormal))  # exp underflows to 0 past -ln_sub
    both = (1, -1)
    by_name = {
        "exp": [(0, e, 1.01 * ln_sub, s) for s in both],
        "expm1": [(0, e, 1.01 * ln_sub, s) for s in both],
        "sigmoid": [(0, e, 1.01 * ln_sub, s) for s in both],
        "sinh": [(0, e, 1.01 * (ln_max + math.log(2)), s) for s in both],
        "cosh": [(0, e, 1.01 * (ln_max + math.log(2)), s) for s in both],
        "tanh": [(0, e, 50.0, s) for s in both],
        "erf": [(0, e, 8.0, s) for s in both],
        "log1p": [(0, e, big, 1), (0, e, 1.0, -1), (-1, e, 0.5, 1)],
        "arccosh": [(1, e, big, 1)],
        "arctan": [(0, e, big, s) for s in both],
        "arcsinh": [(0, e, big, s) for s in both],
    }
    for f in ("log", "log2", "log10"):
        by_name[f] = [(0, float(fi.smallest_subnormal), big, 1), (1, e, 0.5, 1), (1, e, 0.5, -1)]
    for f in ("sin", "cos", "tan"):  # dense below 1e5, then the huge arguments
        by_name[f] = [(0, e, 1e5, s) for s in both] + [(0, 1e5, big, s) for s in both]
    for f in ("arcsin", "arccos", "arctanh"):  # and dense next to +-1
        by_name[f] = [(0, e, 1.0, s) for s in both] + [(1, e, 0.5, -1), (-1, e, 0.5, 1)]
    return by_name[name]


def with_neighbours(v, d, k):
    """The T values v, their negatives and the k nearest T values on either side."""
    T = NP[d]
    x = cast(np.array(v + [-t for t in v]), d)
    out = [x]
    with np.errstate(all="ignore"):
        up, down = x, x
        for _ in range(k):
            up, down = np.nextafter(up, T(np.inf)), np.nextafter(down, T(-np.inf))
            out += [up, down]
    return np.concatenate(out)


def specials(d):
    """NaN, infinities, zeros, subnormal/normal/overflow edges and hard arguments."""
    fi = finfo(d)
    tiny, tnorm, big = float(fi.smallest_subnormal), float(fi.smallest_normal), float(fi.max)
    ln_max, ln2 = math.log(big), math.log(2)
    v = [np.nan, np.inf, 0.0, tiny, tnorm - tiny, tnorm, big, 0.5, 1.0, 2.0, 3.0, 10.0]
    v += [math.pi / 2, math.pi, 2 * math.pi, 1e6, 1e20, 1e22, 1e100, 1e300, 3e38]
    # overflow / underflow edges of exp, expm1, sinh, cosh, sigmoid
    v += [ln_max, ln_max + ln2, -math.log(tnorm), -math.log(tiny), -math.log(tiny) + ln2]
    v += [88.72, 89.0, 87.3, 103.97, 104.0, 709.78, 710.0, 708.4, 745.13, 746.0]
    # hardest float32 / float64 arguments for trigonometric range reduction
    v += [16367173 * 2.0**72, 6381956970095103 * 2.0**797]
    v += [k * math.pi / 2 for k in range(1, 65)] + [k * math.pi / 2 for k in (1e3, 1e5, 1e6, 1e7)]
    v += [big ** (k / 30) for k in range(30)]  # log-spaced up to the max
    # 4 ulp either side of all of them: 1 for log/arccosh, +-1 for arcsin/arccos/
    # arctanh/log1p, the exp edges, k * pi / 2, ...
    return with_neighbours(v, d, 4)


def pair_specials(d):
    """Special-value cross product for the binary ops (x, y)."""
    fi = finfo(d)
    odd = 2.0 ** (fi.nmant + 1) - 1  # largest odd integer: sign rules of power
    v = [np.nan, np.inf, 0.0, float(fi.smallest_subnormal), float(fi.smallest_normal)]
    v += [float(fi.max), 0.5, 1.0, 1.5, 2.0, 3.0, 10.0, odd, odd + 1]
    s = np.unique(with_neighbours(v, d, 1))
    sx, sy = np.meshgrid(s, s)
    return sx.ravel(), sy.ravel()


def unary_inputs(name, d, rng):
    if d in ("float16", "bfloat16"):
        return [all_values(d)]
    n_sweep, n_rand = N_SWEEP[d], N_RANDOM[d]
    if name == "erf" and d == "float64":
        n_sweep, n_rand = N_ERF_MPMATH, N_ERF_MPMATH // 10
    fi = finfo(d)
    T = NP[d]
    segs = segments(name, d)
    parts = []
    # every function: subnormals and tiny values of both signs
    tiny = bit_sweep(float(fi.smallest_subnormal), float(fi.eps) / 4, n_sweep // 20, d)
    parts += [tiny, -tiny]
    for center, lo, hi, sign in segs:
        m = bit_sweep(lo, hi, n_sweep // len(segs), d)
        with np.errstate(all="ignore"):
            parts.append(T(center) + T(sign) * m)
    parts.append(random_finite(rng, n_rand, d))
    parts.append(specials(d))
    return [np.concatenate(parts).astype(T)]


def binary_inputs(name, d, rng):
    """Structured random pairs (drawn in float64, rounded to T) + bit pairs + specials."""
    with np.errstate(all="ignore"):  # some draws overflow T: fine, they become inf
        return _binary_inputs(name, d, rng)


def _binary_inputs(name, d, rng):
    n = N_PAIRS[d]
    fi = finfo(d)
    big = float(fi.max)
    emax, emin = fi.maxexp, fi.minexp - fi.nmant  # log2 of max / smallest subnormal
    sign = lambda k: rng.choice([-1.0, 1.0], k)  # noqa: E731
    logu = lambda a, b, k: 10.0 ** rng.uniform(a, b, k)  # noqa: E731
    q = n // 4
    if name == "arctan2":
        x = sign(2 * q) * 2.0 ** rng.uniform(emin, emax, 2 * q)
        y = x * sign(2 * q) * logu(-8, 8, 2 * q)  # ratios where atan2 is not trivial
        xs, ys = [x], [y]
    elif name == "power":
        # x log-uniform (half of them close to 1); y chosen so that the result spans
        # the whole range of T from below the smallest subnormal to overflow
        x = np.concatenate([logu(-6, 6, q), 1 + sign(q) * logu(-8, -1, q)])
        z = rng.uniform(emin - 2, emax + 2, 2 * q)  # log2 of the result
        y = z / np.log2(x)
        # negative bases with integer exponents
        xn = -logu(-3, 3, q)
        yn = np.round(rng.uniform(-2, 2, q) * emax / np.maximum(np.abs(np.log2(-xn)), 1))
        xs, ys = [x, xn], [y, yn]
    else:  # logaddexp: any magnitudes, and close pairs
        x = sign(2 * q) * logu(-5, math.log10(big), 2 * q)
        y = x + sign(2 * q) * logu(-8, 3, 2 * q)
        xs, ys = [x], [y]
    xs = [cast(a, d) for a in xs]
    ys = [cast(a, d) for a in ys]
    bits = random_finite(rng, n // 2, d)  # random pairs of any finite values
    xs.append(bits[: len(bits) // 2])
    ys.append(bits[len(bits) // 2 : 2 * (len(bits) // 2)])
    sx, sy = pair_specials(d)
    xs.append(sx)
    ys.append(sy)
    x, y = np.concatenate(xs).astype(NP[d]), np.concatenate(ys).astype(NP[d])
    return [x, y]


# --------------------------------------------------------------------------- measuring
def measure(name, d, args, got):
    """Max ulp error and the list of exactness violations, with examples."""
    fi = finfo(d)
    ref = reference(name, args, d)
    # float64 needs the longdouble's extra bits; for the narrower types float64 arithmetic
    # is exact enough (2**-29 float32 ulp) and much faster
    W = LD if d == "float64" else np.float64
    with np.errstate(all="ignore"):
        ref = ref.astype(W)
        got = got.astype(W)
        rT = round_to(ref, d)
        ref_nan, got_nan = np.isnan(ref), np.isnan(got)
        problems = {"NaN-ness differs": ref_nan != got_nan}
        want_inf = np.isinf(rT) & ~ref_nan
        problems["expected +-inf (overflow or exact inf)"] = want_inf & (got != rT)
        if name in ODD_AT_ZERO:
            x = args[0].astype(np.float64)
            problems["sign of zero"] = (x == 0) & (np.signbit(got) != np.signbit(x))
        if name == "arctan2":  # atan2 exists for its signed zeros
            problems["sign of zero"] = (ref == 0) & (np.signbit(got) != np.signbit(ref))

        finite = ~ref_nan & ~got_nan & ~want_inf
        if (name, d) in NORMAL_RANGE_ONLY:
            finite &= np.abs(rT) >= float(fi.smallest_normal)
        past_max = W(2.0) ** int(fi.maxexp)
        g = np.where(np.isinf(got), np.sign(got) * past_max, got)  # inf = 1 ulp past max

        def scale(r):
            if (name, d) not in SCALED_BY_LARGER_INPUT:
                return r
            # the larger input m and the log1p term r - m: the two summed terms
            larger = np.maximum(args[0], args[1]).astype(W)
            terms = np.maximum(np.abs(larger), np.abs(r - larger))
            return round_to(np.maximum(np.abs(r), terms), d)

        err = np.zeros(len(ref), W)
        sc = scale(rT)
        err[finite] = np.abs(g[finite] - ref[finite]) / ulp(sc[finite], d).astype(W)
        # re-measure the worst few hundred points (finite inputs) against mpmath
        top = np.argpartition(err, -N_REFINE)[-N_REFINE:] if len(err) > N_REFINE else np.arange(len(err))
        finite_in = np.all([np.isfinite(a[top].astype(np.float64)) for a in args], axis=0)
        top = top[(err[top] > 0) & finite_in]
        if len(top):
            ref[top] = refine(name, args, top).astype(W)
            rT[top] = round_to(ref[top], d)
            ok = np.isfinite(rT[top])
            top = top[ok]
            err[top] = np.abs(g[top] - ref[top]) / ulp(scale(rT)[top], d).astype(W)
    i = int(np.argmax(err))
    worst = dict(args=[float(a[i]) for a in args], got=float(got[i]), ref=float(ref[i]))
    bad = {k: np.flatnonzero(m) for k, m in problems.items() if m.any()}
    return float(err[i]), worst, bad


def check(name, d, args):
    if d == "float64" and not LD_WIDER:
        pytest.skip("np.longdouble is no wider than float64 here: no reference")
    f = getattr(mx, name)
    got = to_np(f(*[to_mx(a, d) for a in args]), d)
    max_err, worst, bad = measure(name, d, args, got)
    MEASURED[(name, d)] = dict(max=max_err, n=len(args[0]), worst=worst, bad=bad)
    msgs = []
    for what, idx in bad.items():
        ex = [tuple(float(a[i]) for a in args) + (float(got[i]),) for i in idx[:5]]
        msgs.append(f"{what}: {len(idx)} points, e.g. (input..., got) {ex}")
    bound = ULP_BOUND[(name, d)]
    if max_err > bound:
        msgs.append(
            f"max error {max_err:.3f} ulp > bound {bound} at inputs {worst['args']!r} "
            f"(got {worst['got']!r}, reference {worst['ref']!r})"
        )
    if msgs:  # the sample arrays are too big for a useful traceback
        pytest.fail(f"{name} {d}: " + "; ".join(msgs), pytrace=False)


# --------------------------------------------------------------------------- the table
def fmt(e):
    return f"{e:.3f}" if e < 1000 else f"{e:.3g}"


@pytest.fixture(scope="module", autouse=True)
def _print_table():
    yield
    if not MEASURED:
        return
    names = [f for f in UNARY + BINARY if any((f, d) in MEASURED for d in DTYPES)]
    print("\n\nmax ulp error (measured / bound) and points checked")
    print(f"{'function':<10}" + "".join(f"{d:>22}" for d in DTYPES))
    for f in names:
        row = f"{f:<10}"
        for d in DTYPES:
            m = MEASURED.get((f, d))
            cell = "-" if m is None else f"{fmt(m['max'])}/{ULP_BOUND[(f, d)]:g} ({m['n']})"
            row += f"{cell:>22}"
        print(row)
    over = [(k, m) for k, m in MEASURED.items() if m["max"] > ULP_BOUND[k] or m["bad"]]
    for (f, d), m in over:
        w = m["worst"]
        print(f"  over bound: {f} {d}: {fmt(m['max'])} ulp at {w['args']} got {w['got']!r} ref {w['ref']!r};"
              f" exactness: {{{', '.join(f'{k}: {len(v)}' for k, v in m['bad'].items())}}}")


def _params(names):
    out = []
    for f in names:
        for d in DTYPES:
            known = KNOWN_EXCESS.get((f, d))
            marks = [pytest.mark.xfail(reason=f"current build: {known}", strict=False)] if known else []
            out.append(pytest.param(f, d, marks=marks, id=f"{f}-{d}"))
    return out


@pytest.mark.parametrize("name,d", _params(UNARY))
def test_unary_ulp(name, d, rng):
    check(name, d, unary_inputs(name, d, rng))


@pytest.mark.parametrize("name,d", _params(BINARY))
def test_binary_ulp(name, d, rng):
    check(name, d, binary_inputs(name, d, rng))


# --------------------------------------------------------------------------- layout
def same_bits(a, b):
    """Bit-identical, except that any NaN matches any NaN (payloads are not specified)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    nan = np.isnan(a)
    assert (nan == np.isnan(b)).all()
    u = np.uint64 if a.dtype.itemsize == 8 else np.uint32 if a.dtype.itemsize == 4 else np.uint16
    assert (a[~nan].view(u) == b[~nan].view(u)).all()


LAYOUT_FUNCS = ["exp", "log1p", "sin", "tan", "tanh", "arcsin", "erf", "sigmoid"]


def mixed_values(rng, shape, d):
    """Ordinary values with a sprinkling of specials, so every kernel path is exercised."""
    n = int(np.prod(shape))
    x = rng.uniform(-3, 3, n) * 10.0 ** rng.integers(-3, 3, n)
    s = specials(d).astype(np.float64)
    pick = rng.random(n) < 0.1
    x[pick] = rng.choice(s, pick.sum())
    return cast(x, d).reshape(shape)


@pytest.mark.parametrize("d", DTYPES)
@pytest.mark.parametrize("name", LAYOUT_FUNCS)
def test_noncontiguous_inputs(name, d, rng):
    f = getattr(mx, name)
    a = mixed_values(rng, (67, 45), d)
    # transposed 2-D view vs the same values made contiguous
    same_bits(to_np(f(to_mx(a, d).T), d), to_np(f(to_mx(np.ascontiguousarray(a.T), d)), d))
    # strided and reversed slices
    v = a.ravel()
    for sl in (slice(None, None, 3), slice(5, -2, 7), slice(None, None, -1)):
        same_bits(to_np(f(to_mx(v, d)[sl]), d), to_np(f(to_mx(np.ascontiguousarray(v[sl]), d)), d))


@pytest.mark.parametrize("d", DTYPES)
@pytest.mark.parametrize("name", BINARY)
def test_noncontiguous_binary(name, d, rng):
    f = getattr(mx, name)
    a, b = mixed_values(rng, (33, 50), d), mixed_values(rng, (50, 33), d)
    ref = to_np(f(to_mx(a, d), to_mx(np.ascontiguousarray(b.T), d)), d)
    same_bits(to_np(f(to_mx(a, d), to_mx(b, d).T), d), ref)
    # a broadcast row (stride 0) against a full matrix
    row = a[:1]
    full_rows = to_mx(np.repeat(row, 33, 0), d)
    same_bits(to_np(f(to_mx(row, d), to_mx(a, d)), d), to_np(f(full_rows, to_mx(a, d)), d))


@pytest.mark.parametrize("d", DTYPES)
@pytest.mark.parametrize("name", LAYOUT_FUNCS + BINARY)
def test_result_independent_of_size_and_position(name, d, rng):
    """A block (and multithreaded) kernel must not let a result depend on where it sits."""
    f = getattr(mx, name)
    n = 200_003  # big enough to be split across threads; not a multiple of any vector width
    args = [mixed_values(rng, (n,), d) for _ in range(2 if name in BINARY else 1)]
    full = to_np(f(*[to_mx(a, d) for a in args]), d)
    pieces = [(int(rng.integers(0, n - 10_007)), 10_007)]  # a mid-size piece at an odd offset
    for _ in range(40):  # short runs at odd offsets
        k = int(rng.integers(1, 70))
        pieces.append((int(rng.integers(0, n - k)), k))
    for o, k in pieces:  # as fresh arrays and as slices of the big one
        same_bits(to_np(f(*[to_mx(a[o : o + k], d) for a in args]), d), full[o : o + k])
        same_bits(to_np(f(*[to_mx(a, d)[o : o + k] for a in args]), d), full[o : o + k])
    for i in rng.integers(0, n, 25):  # single elements and 0-d arrays
        i = int(i)
        same_bits(to_np(f(*[to_mx(a[i : i + 1], d) for a in args]), d), full[i : i + 1])
        same_bits(to_np(f(*[to_mx(a[i], d) for a in args]), d), full[i])
